"""The webhook and indexer Lambda handlers with moto (SQS FIFO, Secrets Manager) and the fake GitHub.

webhook_handler: a canned API Gateway REST event, signed here with the secret that moto's
Secrets Manager holds, lands on a real (moto) FIFO queue in the ``rebuild`` group with the
delivery id as deduplication id. indexer_handler: an SQS batch becomes exactly one rebuild
(counted in the fake's commits), a failed rebuild reports every record, and the EventBridge
schedule reconciles.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import ghapt.aws.handlers as handlers
import pytest
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from ghapt.aws.queue import MESSAGE_GROUP
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings
from ghapt.github.auth import github_auth_from_settings
from ghapt.github.client import GitHubClient
from moto import mock_aws

from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub
from tests.support.paths import CANNED_EVENTS

REGION = "eu-west-1"
META = "acme/apt-meta"
BRANCH = "apt-metadata"
HOOK_SECRET = "whsec-7c1f0e2a9b"


class FakeContext:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name = "ghapt-IndexerFunction"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:ghapt-IndexerFunction"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/ghapt-IndexerFunction"
    log_stream_name = "2026/11/26/[$LATEST]0123456789abcdef"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


@dataclass
class Aws:
    gh: FakeGitHub
    sqs: Any
    queue_url: str
    queue_arn: str
    services: Services


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("debs")
    return {
        "tool_1.0": build_deb(out, "tool", "1.0-1", "amd64").read_bytes(),
        "tool_2.0": build_deb(out, "tool", "2.0-1", "amd64").read_bytes(),
        "lib_1.0": build_deb(out, "libbar1", "1.0-1", "amd64", extra={"Source": "libbar"}).read_bytes(),
    }


@pytest.fixture
def gh_repos() -> tuple[str, ...]:
    return (META, "acme/tool", "acme/lib")


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub) -> Iterator[Aws]:
    for name, value in (
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("POWERTOOLS_SERVICE_NAME", "ghapt"),
    ):
        monkeypatch.setenv(name, value)
    # Powertools keeps one default Secrets provider (and its cache) per process: build it in the mock.
    monkeypatch.delitem(DEFAULT_PROVIDERS, "secrets", raising=False)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(
            QueueName="ghapt-rebuild.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "900"}
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sm = boto3.client("secretsmanager", region_name=REGION)
        hook_arn = sm.create_secret(Name="ghapt/webhook", SecretString=HOOK_SECRET)["ARN"]
        github_arn = sm.create_secret(Name="ghapt/github", SecretString=json.dumps({"token": gh.token}))[
            "ARN"
        ]
        environ = {
            "GHAPT_BACKEND": "github",
            "GITHUB_API_URL": gh.api_url,
            "GHAPT_GITHUB_REPOS": "acme/tool acme/lib",
            "GHAPT_METADATA_REPO": META,
            "GHAPT_STATE_DIR": str(tmp_path / "state"),
            "GHAPT_ARCHITECTURES": "amd64",
            "GHAPT_QUEUE_URL": queue_url,
            "GHAPT_WEBHOOK_SECRET_ARN": hook_arn,
            "GHAPT_GITHUB_SECRET_ARN": github_arn,
        }
        settings = Settings.from_env(environ)
        services = Services(settings, environ)
        # The client the handlers use, with retries that do not really sleep.
        services.__dict__["github"] = GitHubClient(
            settings.api_url, github_auth_from_settings(settings, services.secrets), sleep=lambda s: None
        )
        handlers.configure(services)
        try:
            yield Aws(gh, sqs, queue_url, queue_arn, services)
        finally:
            handlers.configure(None)
            monkeypatch.delitem(DEFAULT_PROVIDERS, "secrets", raising=False)


# --- helpers ------------------------------------------------------------------------------------
def webhook_event(
    *,
    delivery: str | None = None,
    event: str | None = None,
    body: bytes | None = None,
    secret: str = HOOK_SECRET,
) -> dict[str, Any]:
    """The canned delivery, re-signed over its (possibly replaced) body."""
    ev: dict[str, Any] = json.loads((CANNED_EVENTS / "webhook_release_published.json").read_text())
    raw = body if body is not None else ev["body"].encode()
    ev["body"] = raw.decode()
    headers = {
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
        "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest(),
    }
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    if event is not None:
        headers["X-GitHub-Event"] = event
    ev["headers"].update(headers)
    ev["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    return ev


def queued(aws: Aws) -> list[dict[str, Any]]:
    """Every message on the queue (received, so they become invisible; tests look only once)."""
    out: list[dict[str, Any]] = []
    while True:
        got = aws.sqs.receive_message(
            QueueUrl=aws.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return out
        out.extend(got)


def sqs_event(aws: Aws, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping builds from received messages."""
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
                "eventSourceARN": aws.queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def commits(gh: FakeGitHub) -> int:
    return len(gh.calls("POST", r"/git/commits$"))


def versions(gh: FakeGitHub) -> set[str]:
    data = gh.read_branch_file(META, BRANCH, "dists/stable/main/binary-amd64/Packages") or b""
    return {
        ln.split(": ", 1)[1]
        for block in data.decode().split("\n\n")
        for ln in block.splitlines()
        if ln.startswith("Version: ")
    }


def distinct_body(i: int) -> bytes:
    """The canned delivery's body as GitHub would send it for a later event (another updated_at):
    identical bodies are one delivery replayed, and deduplicated."""
    payload = json.loads(json.loads((CANNED_EVENTS / "webhook_release_published.json").read_text())["body"])
    payload["release"]["updated_at"] = f"2026-01-01T00:00:{i:02d}Z"
    return json.dumps(payload).encode()


def deliver(aws: Aws, delivery: str, n: int) -> list[dict[str, Any]]:
    for i in range(n):
        event = webhook_event(delivery=f"{delivery}-{i}", body=distinct_body(i))
        status = handlers.webhook_handler(event, FakeContext())["statusCode"]
        assert status == 202
    return queued(aws)


# --- webhook_handler --------------------------------------------------------------------------
def test_a_signed_release_delivery_is_queued_once_in_the_rebuild_group(aws: Aws) -> None:
    delivery = "5c9e7f40-ac1b-11ef-9d6b-2f1f8f0e6a11"
    first = handlers.webhook_handler(webhook_event(), FakeContext())
    assert first["statusCode"] == 202
    assert "queued" in first["body"]
    # GitHub redelivers with the same X-GitHub-Delivery (and body): it is said to be ignored.
    again = handlers.webhook_handler(webhook_event(), FakeContext())
    assert again["statusCode"] == 200
    assert "duplicate ignored" in again["body"]

    messages = queued(aws)
    assert len(messages) == 1
    attrs = messages[0]["Attributes"]
    assert attrs["MessageGroupId"] == MESSAGE_GROUP == "rebuild"
    raw = webhook_event()["body"].encode()
    assert attrs["MessageDeduplicationId"] == hashlib.sha256(raw).hexdigest()
    body = json.loads(messages[0]["Body"])
    assert body == {"reason": "release published: acme/tool@v2.0", "delivery": delivery}
    assert aws.gh.requests_log == [], "the webhook never talks to GitHub"


def test_distinct_deliveries_are_distinct_messages(aws: Aws) -> None:
    bodies = {"d-1": distinct_body(1), "d-2": distinct_body(2), "d-3": distinct_body(3)}
    statuses = [
        handlers.webhook_handler(webhook_event(delivery=d, body=bodies[d]), FakeContext())["statusCode"]
        for d in ("d-1", "d-2", "d-1", "d-3")
    ]
    assert statuses == [202, 202, 200, 202]
    messages = queued(aws)
    assert [m["Attributes"]["MessageDeduplicationId"] for m in messages] == [
        hashlib.sha256(bodies[d]).hexdigest() for d in ("d-1", "d-2", "d-3")
    ]


def test_ping_answers_200_and_queues_nothing(aws: Aws) -> None:
    body = json.dumps({"zen": "Design for failure.", "hook_id": 512345678}).encode()
    reply = handlers.webhook_handler(webhook_event(event="ping", body=body, delivery="ping-1"), FakeContext())
    assert reply["statusCode"] == 200
    assert "pong" in reply["body"]
    assert queued(aws) == []


@pytest.mark.parametrize("how", ["wrong secret", "body changed after signing", "no signature"])
def test_a_bad_signature_is_401_and_queues_nothing(aws: Aws, how: str) -> None:
    if how == "wrong secret":
        event = webhook_event(secret="not-the-secret")
    else:
        event = webhook_event()
        if how == "body changed after signing":
            event["body"] = event["body"].replace('"v2.0"', '"v6.6"')
        else:
            del event["headers"]["X-Hub-Signature-256"]
            del event["multiValueHeaders"]["X-Hub-Signature-256"]
    reply = handlers.webhook_handler(event, FakeContext())
    assert reply["statusCode"] == 401
    assert HOOK_SECRET not in reply["body"]
    assert queued(aws) == []


def test_the_webhook_secret_comes_from_secrets_manager(aws: Aws) -> None:
    assert aws.services.settings.webhook_secret == ""
    assert aws.services.webhook_secret == HOOK_SECRET.encode()


# --- indexer_handler ----------------------------------------------------------------------------
def test_an_sqs_batch_of_several_deliveries_is_exactly_one_rebuild(aws: Aws, debs: dict[str, bytes]) -> None:
    gh = aws.gh
    gh.add_release("acme/tool", "v1.0", [("tool_1.0-1_amd64.deb", debs["tool_1.0"])])
    gh.add_release("acme/tool", "v2.0", [("tool_2.0-1_amd64.deb", debs["tool_2.0"])])
    gh.add_release("acme/lib", "v1.0", [("libbar1_1.0-1_amd64.deb", debs["lib_1.0"])])
    messages = deliver(aws, "burst", 3)
    assert len(messages) == 3

    reply = handlers.indexer_handler(sqs_event(aws, messages), FakeContext())

    assert reply == {"batchItemFailures": []}
    assert commits(gh) == 1
    assert len(gh.calls("GET", r"^/repos/acme/tool/releases$")) == 1, "the releases were listed once"
    head = gh.branch_head(META, BRANCH)
    assert head is not None
    assert gh.commit_info(META, head)["parents"] == []
    assert versions(gh) == {"1.0-1", "2.0-1"}


def test_a_failed_rebuild_reports_every_record_as_a_batch_item_failure(
    aws: Aws, debs: dict[str, bytes]
) -> None:
    gh = aws.gh
    gh.add_release("acme/tool", "v1.0", [("tool_1.0-1_amd64.deb", debs["tool_1.0"])])
    handlers.indexer_handler(json.loads((CANNED_EVENTS / "schedule.json").read_text()), FakeContext())
    head = gh.branch_head(META, BRANCH)
    gh.add_release("acme/tool", "v2.0", [("tool_2.0-1_amd64.deb", debs["tool_2.0"])])
    messages = deliver(aws, "failing", 3)
    # Beyond the client's retries (1 + 3 attempts) on the releases listing.
    gh.fail_next(r"^/repos/acme/tool/releases$", status=500, count=4)
    gh.clear_log()

    reply = handlers.indexer_handler(sqs_event(aws, messages), FakeContext())

    failures = reply["batchItemFailures"]
    assert sorted(f["itemIdentifier"] for f in failures) == sorted(m["MessageId"] for m in messages)
    assert [r.status for r in gh.calls("GET", r"/releases$")] == [500] * 4, "one rebuild was tried, once"
    assert commits(gh) == 0
    assert gh.branch_head(META, BRANCH) == head

    # SQS hands the records back; once GitHub recovers the retry succeeds.
    reply = handlers.indexer_handler(sqs_event(aws, messages), FakeContext())
    assert reply == {"batchItemFailures": []}
    assert commits(gh) == 1
    assert versions(gh) == {"1.0-1", "2.0-1"}


def test_the_schedule_reconciles_releases_whose_webhook_was_missed(aws: Aws, debs: dict[str, bytes]) -> None:
    gh = aws.gh
    schedule = json.loads((CANNED_EVENTS / "schedule.json").read_text())
    assert schedule["detail-type"] == "Scheduled Event"
    assert "Records" not in schedule
    gh.add_release("acme/lib", "v1.0", [("libbar1_1.0-1_amd64.deb", debs["lib_1.0"])])

    reply = handlers.indexer_handler(schedule, FakeContext())

    head = gh.branch_head(META, BRANCH)
    assert reply == {"changed": True, "commit": head, "packages": 1}
    assert versions(gh) == {"1.0-1"}
    assert commits(gh) == 1
    assert queued(aws) == [], "the schedule needs no queue"

    # Nothing new: the next reconcile commits nothing.
    again = handlers.indexer_handler(schedule, FakeContext())
    assert again == {"changed": False, "commit": None, "packages": 1}
    assert commits(gh) == 1
    assert gh.branch_head(META, BRANCH) == head
