"""GitHub's release webhook: verify the HMAC, then ask for a rebuild and answer at once.

The rebuild itself runs elsewhere (the indexer behind an SQS FIFO queue, or a local worker
thread), because GitHub gives a delivery 10 s and does not redeliver on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ghapt.core.errors import BadRequest, PayloadTooLarge, Unauthorized
from ghapt.core.ports import RebuildQueue

log = logging.getLogger(__name__)

REBUILD_ACTIONS = frozenset(
    {"published", "unpublished", "created", "edited", "deleted", "prereleased", "released"}
)
MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
DEDUP_WINDOW = 300.0  # seconds; SQS FIFO deduplicates within 5 minutes, the local queue alike


class RecentDeliveries:
    """Delivery ids and body digests seen in the last ``window`` seconds (at most ``size``).

    A GitHub redelivery keeps its ``X-GitHub-Delivery``; a captured delivery replayed under
    fresh ids keeps its body: either is a duplicate within the window."""

    def __init__(
        self, window: float = DEDUP_WINDOW, size: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self.size = size
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, delivery_id: str, digest: str = "") -> bool:
        """Remember the delivery; False when its id or its digest was seen within the window."""
        keys = [f"id:{delivery_id}"] + ([f"sha256:{digest}"] if digest else [])
        now = self.clock()
        with self._lock:
            while self._seen and (
                len(self._seen) + len(keys) > self.size
                or now - next(iter(self._seen.values())) >= self.window
            ):
                self._seen.popitem(last=False)
            if any(k in self._seen for k in keys):
                return False
            for k in keys:
                self._seen[k] = now
            return True


@dataclass(frozen=True)
class WebhookReply:
    status: int
    message: str


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Check ``X-Hub-Signature-256`` against the raw body, in constant time."""
    if not header:
        raise Unauthorized("missing X-Hub-Signature-256")
    scheme, _, given = header.partition("=")
    if scheme != "sha256" or not given:
        raise Unauthorized("X-Hub-Signature-256 is not 'sha256=<hex>'")
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        raise Unauthorized("X-Hub-Signature-256 does not match the body")


def handle_delivery(
    headers: Mapping[str, str], body: bytes, secret: bytes, queue: RebuildQueue
) -> WebhookReply:
    """Verify, classify and enqueue one delivery. Raises Unauthorized/BadRequest."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(f"the payload is larger than {MAX_BODY} bytes")
    verify_signature(secret, body, lowered.get("x-hub-signature-256"))
    event = lowered.get("x-github-event", "")
    delivery = lowered.get("x-github-delivery", "")
    if event == "ping":
        return WebhookReply(200, "pong")
    if event != "release":
        return WebhookReply(200, f"ignored event {event or '(none)'}")
    try:
        payload = json.loads(body)
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("the body is not a JSON object")
    action = payload.get("action")
    if not isinstance(action, str):
        raise BadRequest("the release event has no 'action' string")
    if action not in REBUILD_ACTIONS:
        return WebhookReply(200, f"ignored release action {action!r}")
    if not delivery:
        raise BadRequest("missing X-GitHub-Delivery")
    repo = _field(payload, "repository", "full_name")
    tag = _field(payload, "release", "tag_name")
    digest = hashlib.sha256(body).hexdigest()
    if queue.enqueue(f"release {action}: {repo}@{tag}", delivery, digest) is False:
        log.info("duplicate delivery ignored", extra={"delivery": delivery, "sha256": digest})
        return WebhookReply(200, "duplicate ignored")
    log.info("rebuild requested", extra={"delivery": delivery, "action": action, "repository": repo})
    return WebhookReply(202, "rebuild queued")


def _field(payload: Mapping[str, Any], obj: str, name: str) -> str:
    """``payload[obj][name]`` as a string for logs, '?' when absent; BadRequest for wrong shapes."""
    value = payload.get(obj)
    if value is None:
        return "?"
    if not isinstance(value, dict):
        raise BadRequest(f"'{obj}' is not a JSON object")
    inner = value.get(name, "?")
    if not isinstance(inner, str):
        raise BadRequest(f"'{obj}.{name}' is not a string")
    return inner
