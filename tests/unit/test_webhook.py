"""Webhook signature checks, event classification, and deduplicated, coalesced rebuilds."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from typing import Any

import pytest
from ghapt.core.errors import BadRequest, Unauthorized
from ghapt.local.queue import LocalQueue
from ghapt.webhook import REBUILD_ACTIONS, handle_delivery, verify_signature

SECRET = b"it's a secret to everybody"


class RecordingQueue:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def enqueue(self, reason: str, delivery_id: str, digest: str = "") -> bool:
        self.items.append((reason, delivery_id))
        return True


def _headers(
    body: bytes, event: str = "release", delivery: str = "d-1", secret: bytes = SECRET
) -> dict[str, str]:
    sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={sig}", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}


def _release(action: str) -> bytes:
    return json.dumps(
        {"action": action, "release": {"tag_name": "v1.0"}, "repository": {"full_name": "acme/tool"}}
    ).encode()


@pytest.mark.parametrize("action", sorted(REBUILD_ACTIONS))
def test_release_actions_enqueue_a_rebuild_and_answer_202(action: str) -> None:
    queue = RecordingQueue()
    body = _release(action)
    reply = handle_delivery(_headers(body), body, SECRET, queue)
    assert reply.status == 202
    assert queue.items == [(f"release {action}: acme/tool@v1.0", "d-1")]


def test_ping_succeeds_and_queues_nothing() -> None:
    queue = RecordingQueue()
    body = b'{"zen": "Keep it logically awesome."}'
    assert handle_delivery(_headers(body, event="ping"), body, SECRET, queue).status == 200
    assert queue.items == []


@pytest.mark.parametrize("event", ["push", "issues", "workflow_run", ""])
def test_other_events_are_ignored_with_2xx(event: str) -> None:
    queue = RecordingQueue()
    body = b"{}"
    reply = handle_delivery(_headers(body, event=event), body, SECRET, queue)
    assert 200 <= reply.status < 300
    assert "ignored" in reply.message
    assert queue.items == []


def test_unknown_release_action_is_ignored() -> None:
    queue = RecordingQueue()
    body = _release("archived")
    assert handle_delivery(_headers(body), body, SECRET, queue).status == 200
    assert queue.items == []


@pytest.mark.parametrize(
    "header",
    [None, "", "sha1=abc", "sha256=", "sha256=" + "0" * 64, "sha256=zz", "md5=" + "0" * 32],
)
def test_bad_or_missing_signatures_are_401(header: str | None) -> None:
    queue = RecordingQueue()
    body = _release("published")
    headers = _headers(body)
    if header is None:
        del headers["X-Hub-Signature-256"]
    else:
        headers["X-Hub-Signature-256"] = header
    with pytest.raises(Unauthorized):
        handle_delivery(headers, body, SECRET, queue)
    assert queue.items == []


def test_signature_over_a_different_body_or_secret_is_401() -> None:
    body = _release("published")
    with pytest.raises(Unauthorized):
        verify_signature(SECRET, body + b" ", _headers(body)["X-Hub-Signature-256"])
    with pytest.raises(Unauthorized):
        verify_signature(SECRET, body, _headers(body, secret=b"other")["X-Hub-Signature-256"])


def test_signature_uses_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    body = b"{}"
    verify_signature(SECRET, body, _headers(body)["X-Hub-Signature-256"])
    assert calls == [1]


def test_a_signed_non_json_release_body_is_400() -> None:
    body = b"not json"
    with pytest.raises(BadRequest):
        handle_delivery(_headers(body), body, SECRET, RecordingQueue())


def test_local_queue_ignores_a_replayed_delivery_and_coalesces_a_burst() -> None:
    gate = threading.Event()
    started = threading.Event()
    runs: list[int] = []

    def rebuild() -> None:
        started.set()
        gate.wait(10)
        runs.append(1)

    queue = LocalQueue(rebuild)
    queue.enqueue("first", "d-1")
    assert started.wait(10)
    # While the first rebuild runs, a burst (with a replay) arrives: it must cost one more rebuild.
    for i in range(5):
        queue.enqueue("burst", f"d-{i + 2}")
    queue.enqueue("replay", "d-1")
    gate.set()
    queue.drain()
    assert len(runs) == 2
    queue.enqueue("replay again", "d-3")
    queue.drain()
    assert len(runs) == 2, "a delivery already seen causes no work"
