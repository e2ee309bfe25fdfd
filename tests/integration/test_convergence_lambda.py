"""Issue 9: the indexer function over a backlog and on failure (moto SQS, the fake GitHub).

A rebuild that runs out of the invocation's time (the context's remaining time less the publish
reserve; the clock is injected) commits what it read and queues its own continuation on the
FIFO queue; following the continuations converges. A failed rebuild emits ``RebuildFailed``,
the metric the template alarms on (the Errors metric never sees a batch item failure).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import ghapt.aws.handlers as handlers
import pytest
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from ghapt.aws.sqs import PUBLISH_RESERVE_SECONDS
from ghapt.bootstrap import Services
from ghapt.core.model import Asset, DebInfo
from ghapt.core.settings import Settings
from ghapt.github.auth import github_auth_from_settings
from ghapt.github.client import GitHubClient
from ghapt.indexer import Indexer
from moto import mock_aws

from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub

REGION = "eu-west-1"
META = "acme/apt-meta"
BRANCH = "apt-metadata"
SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


class Context:
    """The parts of Lambda's context the handler reads; ``left`` seconds remain."""

    function_name = "ghapt-IndexerFunction"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:ghapt-IndexerFunction"
    memory_limit_in_mb = 1024

    def __init__(self, left: float) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.left = left

    def get_remaining_time_in_millis(self) -> int:
        return int(self.left * 1000)


class TickingSource:
    """The real source; every read takes four 'seconds' of the injected clock."""

    def __init__(self, inner: Any, clock: list[float]) -> None:
        self.inner, self.clock, self.reads = inner, clock, 0

    def list_assets(self) -> list[Asset]:
        return list(self.inner.list_assets())

    def read_deb(self, asset: Asset) -> DebInfo:
        self.reads += 1
        self.clock[0] += 4.0
        return cast(DebInfo, self.inner.read_deb(asset))

    def download_url(self, locator: Any, base_url: str) -> str:
        return str(self.inner.download_url(locator, base_url))


@pytest.fixture
def lambda_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeGitHub, Any, str]]:
    for name, value in (
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("POWERTOOLS_SERVICE_NAME", "ghapt"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(DEFAULT_PROVIDERS, "secrets", raising=False)
    with FakeGitHub() as gh, mock_aws():
        gh.add_repo(META)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(
            QueueName="ghapt-rebuild.fifo",
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": "1800",
                "ContentBasedDeduplication": "true",
            },
        )["QueueUrl"]
        environ = {
            "GITHUB_TOKEN": gh.token,
            "GHAPT_BACKEND": "github",
            "GITHUB_API_URL": gh.api_url,
            "GHAPT_GITHUB_REPOS": "acme/tool",
            "GHAPT_METADATA_REPO": META,
            "GHAPT_STATE_DIR": str(tmp_path / "state"),
            "GHAPT_ARCHITECTURES": "amd64",
            "GHAPT_QUEUE_URL": queue_url,
        }
        settings = Settings.from_env(environ)
        services = Services(settings, environ)
        services.__dict__["github"] = GitHubClient(
            settings.api_url, github_auth_from_settings(settings, services.secrets), sleep=lambda s: None
        )
        handlers.configure(services)
        try:
            yield gh, sqs, queue_url
        finally:
            handlers.configure(None)
            monkeypatch.delitem(DEFAULT_PROVIDERS, "secrets", raising=False)


def fresh_indexer(clock: list[float]) -> TickingSource:
    """A new container's indexer over the handlers' services, on the injected clock."""
    services = handlers.services()
    source = TickingSource(services.source, clock)
    services.__dict__["indexer"] = Indexer(
        source, services.store, services.signer, services.settings, monotonic=lambda: clock[0], workers=1
    )
    return source


def receive(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])
    return list(got.get("Messages", []))


def as_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:ghapt-rebuild.fifo",
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def test_an_unfinished_rebuild_queues_its_continuation_until_the_backlog_converges(
    lambda_env: tuple[FakeGitHub, Any, str], tmp_path: Path
) -> None:
    gh, sqs, queue_url = lambda_env
    for i in range(10):
        deb = build_deb(tmp_path / "debs", "tool", f"1.{i}-1", "amd64").read_bytes()
        gh.add_release("acme/tool", f"v1.{i}", [(f"tool_1.{i}-1_amd64.deb", deb)], with_digest=i % 2 == 0)
    clock = [0.0]
    # 12 s left: a budget of the 10 s minimum; each read takes 4 s, so 3 reads an invocation.
    left = PUBLISH_RESERVE_SECONDS + 12

    source = fresh_indexer(clock)
    handlers.indexer_handler(SCHEDULE, Context(left))
    assert source.reads == 3
    head = gh.branch_head(META, BRANCH)
    messages = receive(sqs, queue_url)
    assert len(messages) == 1
    assert messages[0]["Attributes"]["MessageGroupId"] == "rebuild"
    assert messages[0]["Attributes"]["MessageDeduplicationId"] == f"continue-{head}"
    assert json.loads(messages[0]["Body"])["reason"] == "continue: 7 assets left"

    invocations = 1
    while messages:
        invocations += 1
        assert invocations < 10, "the continuations do not converge"
        source = fresh_indexer(clock)
        reply = handlers.indexer_handler(as_event(messages), Context(left))
        assert reply == {"batchItemFailures": []}
        for m in messages:  # the event source mapping deletes what succeeded
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        messages = receive(sqs, queue_url)
    assert invocations == 4
    packages = gh.read_branch_file(META, BRANCH, "dists/stable/main/binary-amd64/Packages") or b""
    assert packages.count(b"Package: tool\n") == 10


def test_a_failed_rebuild_emits_the_rebuild_failed_metric(
    lambda_env: tuple[FakeGitHub, Any, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gh, sqs, queue_url = lambda_env
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # an in-process CLI run may have set it
    gh.add_repo("acme/tool")
    gh.fail_next(r"^/repos/acme/tool/releases$", status=500, count=4)
    sqs.send_message(QueueUrl=queue_url, MessageBody="release", MessageGroupId="rebuild")
    messages = receive(sqs, queue_url)
    capsys.readouterr()

    reply = handlers.indexer_handler(as_event(messages), Context(900))

    assert [f["itemIdentifier"] for f in reply["batchItemFailures"]] == [messages[0]["MessageId"]]
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    failed = [e for e in emitted if "RebuildFailed" in e]
    assert failed
    assert failed[0]["RebuildFailed"] in (1, 1.0, [1.0])
    assert failed[0]["service"] == "ghapt"
    assert receive(sqs, queue_url) == [], "no continuation is queued for a failed rebuild"
