"""Issue 9, queue operations in the SAM template (translated offline, like test_template.py).

A failed rebuild is retried within about 30 minutes, never while the previous attempt may still
run; two alarms cover the path the Errors alarm cannot see (a batch item failure is not a
function error); the indexer may queue its own continuation and nothing else.
"""

from __future__ import annotations

import inspect
from typing import Any

import ghapt.aws.handlers as handlers
import ghapt.aws.sqs as sqs_module
import pytest

from tests.e2e.test_template import _actions, _referenced, _statements, _translate


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return _translate()


def _props(cfn: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = cfn["Resources"][name]["Properties"]
    return props


def test_a_failed_rebuild_is_retried_within_about_30_minutes_never_during_the_last_attempt(
    cfn: dict[str, Any],
) -> None:
    visibility = int(_props(cfn, "RebuildQueue")["VisibilityTimeout"])
    timeout = int(_props(cfn, "IndexerFunction")["Timeout"])
    assert timeout <= visibility <= 1800
    # The indexer stops reading with the publish reserve left, so it ends within its timeout.
    assert timeout > sqs_module.PUBLISH_RESERVE_SECONDS


def test_failed_and_stalled_rebuilds_raise_alarms(cfn: dict[str, Any]) -> None:
    alarms = {
        k: v["Properties"] for k, v in cfn["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"
    }

    age = alarms["RebuildQueueAgeAlarm"]
    assert (age["Namespace"], age["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert [d["Name"] for d in age["Dimensions"]] == ["QueueName"]
    assert _referenced(age["Dimensions"]) == {"RebuildQueue"}
    # Past one retry (the visibility timeout) but well before the DLQ (hours).
    assert int(_props(cfn, "RebuildQueue")["VisibilityTimeout"]) < float(age["Threshold"]) <= 3600

    failed = alarms["RebuildFailedAlarm"]
    assert (failed["Namespace"], failed["MetricName"]) == (handlers.metrics.namespace, "RebuildFailed")
    assert {d["Name"]: d["Value"] for d in failed["Dimensions"]} == {"service": handlers.metrics.service}
    assert '"RebuildFailed"' in inspect.getsource(sqs_module), "the indexer emits the alarmed metric"
    assert failed["ComparisonOperator"] == "GreaterThanThreshold"
    assert float(failed["Threshold"]) == 0
    assert int(failed["Period"]) * int(failed["EvaluationPeriods"]) <= 3600

    for alarm in (age, failed):
        assert "AlarmTopicArn" in _referenced(alarm["AlarmActions"]), "the alarm notifies the topic"


def test_the_indexer_may_queue_only_its_own_continuation(cfn: dict[str, Any]) -> None:
    env = _props(cfn, "IndexerFunction")["Environment"]["Variables"]
    assert _referenced(env["GHAPT_QUEUE_URL"]) == {"RebuildQueue"}
    sends = [
        s for s in _statements(cfn, "IndexerFunction") if any(a.startswith("sqs:Send") for a in _actions(s))
    ]
    assert len(sends) == 1
    assert _actions(sends[0]) == ["sqs:SendMessage"]
    assert _referenced(sends[0]["Resource"]) == {"RebuildQueue"}
