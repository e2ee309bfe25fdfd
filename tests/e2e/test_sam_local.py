"""``sam local`` support: env.json matches the template exactly, and the sample events under
``events/`` drive the real handlers (in-process, local backend; moto for Secrets Manager and SQS)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import ghapt.aws.handlers as handlers
import pytest
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings
from ghapt.local.gateway import LambdaContext
from samtranslator.yaml_helper import yaml_parse

from tests.support.debbuild import build_deb
from tests.support.paths import ROOT, SAM_EVENTS

REGION = "eu-west-1"
WEBHOOK_SECRET = "sam-local-webhook-secret"  # what events/webhook_release_published.json is signed with
BASIC_USER, BASIC_PASSWORD = "alice", "sam-local-pass"  # the Authorization header of the events


def _template() -> dict[str, Any]:
    return dict(yaml_parse((ROOT / "template.yaml").read_text()))


def _function_variables() -> dict[str, set[str]]:
    template = _template()
    common = set(
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}) or {}
    )
    out = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            own = resource["Properties"].get("Environment", {}).get("Variables", {}) or {}
            out[name] = common | set(own)
    return out


def event(name: str) -> dict[str, Any]:
    return dict(json.loads((SAM_EVENTS / f"{name}.json").read_text()))


# --- env.json ------------------------------------------------------------------------------------
def test_env_json_names_exactly_the_variables_each_function_declares() -> None:
    env = json.loads((ROOT / "env.json").read_text())
    declared = _function_variables()
    assert set(env) == set(declared), "env.json must have one entry per function logical id"
    for function, variables in declared.items():
        assert set(env[function]) == variables, function
        assert all(isinstance(v, str) for v in env[function].values()), function


def test_env_json_values_are_valid_settings() -> None:
    """Every function's env.json values pass the same validation a cold start does."""
    env = json.loads((ROOT / "env.json").read_text())
    for values in env.values():
        Settings.from_env(values)


def test_there_is_an_event_for_every_route_and_trigger() -> None:
    names = {p.stem for p in SAM_EVENTS.glob("*.json")}
    assert {
        "metadata_inrelease",
        "pool_get",
        "publickey_get",
        "webhook_release_published",
        "authorizer_request",
        "indexer_sqs_batch",
        "indexer_schedule",
    } <= names
    template_paths = {
        e["Properties"]["Path"]
        for r in _template()["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
        for e in (r["Properties"].get("Events") or {}).values()
        if e["Type"] == "Api"
    }
    event_resources = {event(n).get("resource") for n in names}
    for path in template_paths - {"/token"}:  # the token exchange has its own tests
        assert path in event_resources, f"no sample event for {path}"


# --- the events against the real handlers ---------------------------------------------------------
@pytest.fixture
def aws(moto_aws: None) -> None:
    assert REGION == "eu-west-1"  # moto_aws's region


@pytest.fixture
def services(tmp_path: Path, aws: None) -> Iterator[Services]:
    releases = tmp_path / "releases"
    build_deb(releases / "v1.0.0", "hello-sam", "1.0~rc1-1", "all", filename="hello-sam_1.0.rc1-1_all.deb")
    UserFile(tmp_path / "state" / "users.json").add(BASIC_USER, BASIC_PASSWORD)
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"ghapt-webhook-{tmp_path.name}", SecretString=WEBHOOK_SECRET
    )["ARN"]
    queue = boto3.client("sqs", region_name=REGION).create_queue(
        QueueName="ghapt-rebuild.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    settings = Settings.from_env(
        {},
        releases_dir=releases,
        state_dir=tmp_path / "state",
        architectures="amd64",
        webhook_secret_arn=secret,
        queue_url=queue,
        cache_seconds=0,
    )
    svc = Services(settings, {})
    handlers.configure(svc)
    try:
        yield svc
    finally:
        handlers.configure(None)


def _body(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()


def test_metadata_events(services: Services) -> None:
    services.indexer.rebuild()
    response = handlers.metadata_handler(event("metadata_inrelease"), LambdaContext("metadata"))
    assert response["statusCode"] == 200
    assert _body(response).startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    response = handlers.metadata_handler(
        event("metadata_packages_if_modified_since"), LambdaContext("metadata")
    )
    assert response["statusCode"] == 304


def test_pool_event_redirects(services: Services) -> None:
    services.indexer.rebuild()
    response = handlers.pool_handler(event("pool_get"), LambdaContext("pool"))
    assert response["statusCode"] == 302
    location = (response.get("headers") or {}).get("Location") or response["multiValueHeaders"]["Location"][0]
    # The stage is part of the public URL, taken from the request context.
    assert location.startswith("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod/_assets/")


def test_public_key_event(services: Services) -> None:
    response = handlers.publickey_handler(event("publickey_get"), LambdaContext("publickey"))
    assert response["statusCode"] == 200
    assert _body(response).startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_webhook_event_is_verified_and_queued(services: Services) -> None:
    response = handlers.webhook_handler(event("webhook_release_published"), LambdaContext("webhook"))
    assert response["statusCode"] == 202, _body(response)
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=services.settings.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    assert "acme/hello-sam@v1.0.0" in messages[0]["Body"]
    tampered = event("webhook_release_published")
    tampered["headers"]["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    tampered["multiValueHeaders"]["X-Hub-Signature-256"] = ["sha256=" + "0" * 64]
    assert handlers.webhook_handler(tampered, LambdaContext("webhook"))["statusCode"] == 401


def test_authorizer_event_allows_the_whole_api(services: Services) -> None:
    policy = handlers.authorizer_handler(event("authorizer_request"), LambdaContext("authorizer"))
    assert policy["principalId"] == f"basic:{BASIC_USER}"
    statement = policy["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert str(
        statement["Resource"][0] if isinstance(statement["Resource"], list) else statement["Resource"]
    ).endswith("/prod/*/*")
    wrong = event("authorizer_request")
    wrong["headers"]["Authorization"] = "Basic " + base64.b64encode(b"alice:nope").decode()
    with pytest.raises(Exception, match="Unauthorized"):
        handlers.authorizer_handler(wrong, LambdaContext("authorizer"))


def test_indexer_events_rebuild(services: Services) -> None:
    assert services.store.head() is None
    result = handlers.indexer_handler(event("indexer_sqs_batch"), LambdaContext("indexer"))
    assert result == {"batchItemFailures": []}
    head = services.store.head()
    assert head is not None
    result = handlers.indexer_handler(event("indexer_schedule"), LambdaContext("indexer"))
    assert result["changed"] is False
    assert result["packages"] == 1
