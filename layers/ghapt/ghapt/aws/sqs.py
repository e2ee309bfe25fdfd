"""The indexer function's event handling: SQS batches and the reconcile schedule.

A burst of webhooks arrives as one SQS batch (FIFO, one message group, so two rebuilds never
run at once); the first record runs the rebuild and the others ride on it. If the rebuild
fails, its records are reported as batch item failures and SQS retries them, up to the DLQ.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ghapt.indexer import Indexer, RebuildResult


def run_indexer_event(
    event: dict[str, Any], context: Any, indexer: Indexer, *, logger: Any, metrics: Any
) -> dict[str, Any]:
    if "Records" not in event:  # EventBridge schedule: reconcile, in case a webhook was missed
        result = _rebuild(indexer, "schedule", logger, metrics)
        return {"changed": result.changed, "commit": result.commit, "packages": result.packages}

    outcome: list[RebuildResult] = []

    def record_handler(record: SQSRecord) -> None:
        if not outcome:
            outcome.append(_rebuild(indexer, record.body, logger, metrics))

    processor = SqsFifoPartialProcessor()
    # Report a failed rebuild per record (batchItemFailures) even when it fails every record,
    # instead of Powertools' default of raising, which would count as a function error.
    processor.raise_on_entire_batch_failure = False
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )


def _rebuild(indexer: Indexer, reason: str, logger: Any, metrics: Any) -> RebuildResult:
    started = time.monotonic()
    result = indexer.rebuild()
    elapsed = time.monotonic() - started
    metrics.add_metric("RebuildDuration", MetricUnit.Seconds, elapsed)
    metrics.add_metric("PackagesIndexed", MetricUnit.Count, result.packages)
    metrics.add_metric("AssetsRead", MetricUnit.Count, result.read)
    metrics.add_metric("AssetsSkipped", MetricUnit.Count, len(result.skipped))
    logger.info(
        "rebuild done",
        extra={
            "reason": reason[:200],
            "changed": result.changed,
            "commit": result.commit,
            "added": len(result.added),
            "removed": len(result.removed),
            "skipped": [f"{s.asset.key}: {s.reason}" for s in result.skipped],
            "attempts": result.attempts,
        },
    )
    return result
