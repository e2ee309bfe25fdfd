"""Powertools in the handlers: EMF metrics, the request's correlation id in logs, GitHub call counts."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ghapt.aws.handlers as handlers
import pytest
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings
from ghapt.local.gateway import LambdaContext

from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub
from tests.support.paths import SAM_EVENTS


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ghapt")
    build_deb(tmp_path / "rel" / "v1", "tool", "1.0-1", "amd64")
    settings = Settings.from_env(
        {}, releases_dir=tmp_path / "rel", state_dir=tmp_path / "st", architectures="amd64"
    )
    services = Services(settings, {})
    services.indexer.rebuild()
    handlers.configure(services)
    yield services
    handlers.configure(None)


def _emf(out: str) -> list[dict[str, Any]]:
    blobs = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    return [b for b in blobs if b["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ghapt"]


def _event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((SAM_EVENTS / name).read_text()))


def test_metadata_handler_emits_served_and_cache_hit_metrics(
    local: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    handlers.metrics.clear_metrics()  # Powertools keeps metric state per process
    event = _event("metadata_inrelease.json")
    first = handlers.metadata_handler(event, LambdaContext("metadata"))
    assert first["statusCode"] == 200
    etag = first["headers"]["ETag"] if "headers" in first and "ETag" in first["headers"] else None
    etag = etag or first["multiValueHeaders"]["ETag"][0]
    event["headers"]["If-None-Match"] = etag
    event["multiValueHeaders"]["If-None-Match"] = [etag]
    assert handlers.metadata_handler(event, LambdaContext("metadata"))["statusCode"] == 304
    metrics = _emf(capsys.readouterr().out)
    flushes = [{m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]} for blob in metrics]
    assert len(flushes) == 2
    assert "Served" in flushes[0]
    assert "CacheHit" in flushes[1]
    assert "CacheHit" not in flushes[0]
    assert "Served" not in flushes[1]
    assert all(m["service"] == "ghapt" for m in metrics)


def test_logs_carry_the_requests_correlation_id(local: Services, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    # Read what Powertools' own JSON formatter writes (its handler holds the stdout of import time).
    sink = io.StringIO()
    tap = logging.StreamHandler(sink)
    tap.setFormatter(handlers.logger.registered_formatter)
    logging.getLogger("ghapt").addHandler(tap)
    try:
        event = _event("metadata_inrelease.json")
        event["path"] = "/dists/stable/..%2f..%2fetc"
        event["pathParameters"] = {"proxy": "stable/../../etc"}
        event["requestContext"]["requestId"] = "req-4242"
        reply = handlers.metadata_handler(event, LambdaContext("metadata"))
    finally:
        logging.getLogger("ghapt").removeHandler(tap)
    assert reply["statusCode"] == 400
    lines = [json.loads(x) for x in sink.getvalue().splitlines()]
    refused = [line for line in lines if line["message"] == "request refused"]
    assert refused
    assert refused[0]["correlation_id"] == "req-4242"
    assert refused[0]["status"] == 400
    assert "Authorization" not in sink.getvalue()
    assert "YWxpY2U6" not in sink.getvalue()


def test_github_calls_are_counted_through_the_client_hook(tmp_path: Path, gh: FakeGitHub) -> None:
    calls: list[tuple[str, int]] = []
    gh.add_repo("acme/apt-meta")
    settings = Settings.from_env(
        {"GITHUB_TOKEN": gh.token},
        backend="github",
        api_url=gh.api_url,
        github_repos=["acme/apt-meta"],
        metadata_repo="acme/apt-meta",
        state_dir=tmp_path / "st",
    )
    services = Services(
        settings, {"GITHUB_TOKEN": gh.token}, on_github_call=lambda m, u, s: calls.append((m, s))
    )
    services.indexer.rebuild()
    assert calls
    assert len(calls) == len(gh.requests_log)
    assert ("PATCH", 200) in calls or ("POST", 201) in calls
