"""GitHub's release webhook: verify the HMAC, then ask for a rebuild and answer at once.

The rebuild itself runs elsewhere (the indexer behind an SQS FIFO queue, or a local worker
thread), because GitHub gives a delivery 10 s and does not redeliver on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ghapt.core.errors import BadRequest, Unauthorized
from ghapt.core.ports import RebuildQueue

log = logging.getLogger(__name__)

REBUILD_ACTIONS = frozenset(
    {"published", "unpublished", "created", "edited", "deleted", "prereleased", "released"}
)
MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


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
        raise BadRequest("payload too large")
    verify_signature(secret, body, lowered.get("x-hub-signature-256"))
    event = lowered.get("x-github-event", "")
    delivery = lowered.get("x-github-delivery", "")
    if event == "ping":
        return WebhookReply(200, "pong")
    if event != "release":
        return WebhookReply(200, f"ignored event {event or '(none)'}")
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    action = payload.get("action") if isinstance(payload, dict) else None
    if action not in REBUILD_ACTIONS:
        return WebhookReply(200, f"ignored release action {action!r}")
    if not delivery:
        raise BadRequest("missing X-GitHub-Delivery")
    repo = (payload.get("repository") or {}).get("full_name", "?")
    tag = (payload.get("release") or {}).get("tag_name", "?")
    queue.enqueue(f"release {action}: {repo}@{tag}", delivery)
    log.info("rebuild requested", extra={"delivery": delivery, "action": action, "repository": repo})
    return WebhookReply(202, "rebuild queued")
