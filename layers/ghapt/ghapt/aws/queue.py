"""The rebuild queue in AWS: SQS FIFO, one message group.

It makes a burst of events cost one rebuild, never run two rebuilds at once, and let a
repeated delivery (same ``X-GitHub-Delivery``) cause no extra work.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

MESSAGE_GROUP = "rebuild"  # one group: SQS FIFO hands out one batch at a time


class SqsQueue:
    """``RebuildQueue`` over an SQS FIFO queue; the delivery id is the deduplication id."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def enqueue(self, reason: str, delivery_id: str) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"reason": reason, "delivery": delivery_id}),
            MessageGroupId=MESSAGE_GROUP,
            MessageDeduplicationId=delivery_id[:128],
        )
