"""The rebuild queue in AWS: SQS FIFO, one message group.

It makes a burst of events cost one rebuild, never run two rebuilds at once, and let a
repeated delivery cause no extra work: the deduplication id is the body's digest, so SQS drops
a GitHub redelivery (same id, same body) and a captured delivery replayed under fresh ids alike
within its 5-minute window. SQS does not say when it dropped one, so the container also
remembers what it sent, to answer those it has seen "duplicate ignored".
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ghapt.webhook import RecentDeliveries

log = logging.getLogger(__name__)

MESSAGE_GROUP = "rebuild"  # one group: SQS FIFO hands out one batch at a time


class SqsQueue:
    """``RebuildQueue`` over an SQS FIFO queue; the body digest is the deduplication id."""

    def __init__(self, queue_url: str, client: Any, recent: RecentDeliveries | None = None) -> None:
        self.queue_url = queue_url
        self.client = client
        self._recent = recent or RecentDeliveries()

    def enqueue(self, reason: str, delivery_id: str, digest: str = "") -> bool:
        if not self._recent.add(delivery_id, digest):
            log.info("duplicate delivery ignored", extra={"delivery": delivery_id})
            return False
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"reason": reason, "delivery": delivery_id}),
            MessageGroupId=MESSAGE_GROUP,
            MessageDeduplicationId=(digest or delivery_id)[:128],
        )
        return True
