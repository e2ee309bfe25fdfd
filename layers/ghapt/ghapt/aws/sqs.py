"""The indexer function's event handling: SQS batches and the reconcile schedule.

A burst of webhooks arrives as one SQS batch (FIFO, one message group, so two rebuilds never
run at once); the first record runs the rebuild and the others ride on it. If the rebuild
fails, its records are reported as batch item failures and SQS retries them, up to the DLQ,
and the ``RebuildFailed`` metric (alarmed in the template) counts it.

Each rebuild works to the invocation's remaining time minus ``PUBLISH_RESERVE_SECONDS`` (to
sign and commit). A backlog larger than that is committed as far as it was read, and a
continuation message goes on the queue, so the next invocation carries on at once.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ghapt.core.ports import RebuildQueue
from ghapt.indexer import Indexer, RebuildResult

# Left of the invocation's time for what follows the reads: render, sign (KMS), commit (Git
# Data API, one blob per changed file). Generous: a read in flight when the budget ends finishes.
PUBLISH_RESERVE_SECONDS = 180.0
MIN_BUDGET_SECONDS = 10.0


def run_indexer_event(
    event: dict[str, Any],
    context: Any,
    indexer: Indexer,
    *,
    logger: Any,
    metrics: Any,
    queue: RebuildQueue | None = None,
) -> dict[str, Any]:
    budget = time_budget(context)
    if "Records" not in event:  # EventBridge schedule (or a first `aws lambda invoke`): reconcile
        result = _rebuild(indexer, "schedule", budget, logger, metrics, queue)
        return {"changed": result.changed, "commit": result.commit, "packages": result.packages}

    outcome: list[RebuildResult] = []

    def record_handler(record: SQSRecord) -> None:
        if not outcome:
            outcome.append(_rebuild(indexer, record.body, budget, logger, metrics, queue))

    processor = SqsFifoPartialProcessor()
    # Report a failed rebuild per record (batchItemFailures) even when it fails every record,
    # instead of Powertools' default of raising, which would count as a function error.
    processor.raise_on_entire_batch_failure = False
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )


def time_budget(context: Any) -> float | None:
    """Seconds the reads may take: the invocation's remaining time less the publish reserve."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return max(MIN_BUDGET_SECONDS, float(remaining()) / 1000 - PUBLISH_RESERVE_SECONDS)


def _rebuild(
    indexer: Indexer,
    reason: str,
    budget: float | None,
    logger: Any,
    metrics: Any,
    queue: RebuildQueue | None,
) -> RebuildResult:
    started = time.monotonic()
    try:
        result = indexer.rebuild(time_budget=budget)
    except Exception:
        metrics.add_metric("RebuildFailed", MetricUnit.Count, 1)
        raise
    elapsed = time.monotonic() - started
    metrics.add_metric("AssetsRemaining", MetricUnit.Count, result.remaining)
    if not result.complete and queue is not None:
        # Continue at once rather than at the next schedule; the id makes a retry of this
        # invocation (same commit) not queue a second continuation.
        queue.enqueue(
            f"continue: {result.remaining} assets left",
            f"continue-{result.commit or result.head or 'none'}",
        )
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
            "remaining": result.remaining,
        },
    )
    return result
