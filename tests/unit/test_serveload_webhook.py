"""Webhook edges: malformed but signed payloads are 400s, oversized ones 413s, and a delivery
replayed (same id, or the same body under fresh ids) is recognised and answered honestly."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from ghapt.core.errors import BadRequest, PayloadTooLarge
from ghapt.local.queue import LocalQueue
from ghapt.webhook import MAX_BODY, RecentDeliveries, handle_delivery

SECRET = b"edge-secret"


def _headers(body: bytes, delivery: str = "d-1") -> dict[str, str]:
    sig = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={sig}",
        "X-GitHub-Event": "release",
        "X-GitHub-Delivery": delivery,
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"action": "published", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"action": "published", "repository": "acme/tool"}',
        b'{"action": "published", "repository": ["acme/tool"]}',
        b'{"action": "published", "release": 7}',
        b'{"action": "published", "repository": {"full_name": 42}}',
        b'{"action": ["published"]}',
        b'{"action": {"a": 1}}',
        b'"published"',
        b"[]",
    ],
    ids=lambda b: b[:40].decode(),
)
def test_malformed_signed_payloads_are_400(body: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        handle_delivery(_headers(body), body, SECRET, LocalQueue(lambda: None))
    assert info.value.status == 400


def test_an_oversized_payload_is_413_before_its_signature_is_checked() -> None:
    body = b" " * (MAX_BODY + 1)
    with pytest.raises(PayloadTooLarge) as info:
        handle_delivery({}, body, SECRET, LocalQueue(lambda: None))
    assert info.value.status == 413


def test_a_replayed_body_under_fresh_ids_is_one_rebuild_and_said_to_be_ignored() -> None:
    runs: list[int] = []
    clock = Clock()
    queue = LocalQueue(lambda: runs.append(1), RecentDeliveries(window=300, clock=clock))
    body = json.dumps({"action": "published", "release": {"tag_name": "v1"}}).encode()
    first = handle_delivery(_headers(body, "d-1"), body, SECRET, queue)
    assert (first.status, first.message) == (202, "rebuild queued")
    replies = [handle_delivery(_headers(body, f"fresh-{i}"), body, SECRET, queue) for i in range(20)]
    assert {(r.status, r.message) for r in replies} == {(200, "duplicate ignored")}
    # GitHub's own redelivery keeps the id: a duplicate too.
    again = handle_delivery(_headers(body, "d-1"), body, SECRET, queue)
    assert (again.status, again.message) == (200, "duplicate ignored")
    queue.drain()
    assert runs == [1]
    # Another event (another body) is work; after the window the same body is again.
    other = json.dumps({"action": "edited", "release": {"tag_name": "v1"}}).encode()
    assert handle_delivery(_headers(other, "d-2"), other, SECRET, queue).status == 202
    clock.now += 301
    assert handle_delivery(_headers(body, "d-3"), body, SECRET, queue).status == 202
    queue.drain()
    assert len(runs) in (2, 3)  # the last two may coalesce into one rebuild


def test_recent_deliveries_stay_bounded() -> None:
    recent = RecentDeliveries(window=300, size=100, clock=Clock())
    for i in range(1000):
        assert recent.add(f"d-{i}", f"{i:064x}")
    assert len(recent._seen) <= 100
