"""Serving the repository page: behind the authorizer at / and /index.html, through the local
gateway and through the metadata handler with API Gateway's own events (a stage in the path)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ghapt.aws.handlers as handlers
import pytest
import requests
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings
from ghapt.local.gateway import ROUTES, LambdaContext
from ghapt.page import CONTENT_SECURITY_POLICY

from tests.support.debbuild import build_deb
from tests.support.servers import RunningServer, serve

ROOT = Path(__file__).resolve().parents[2]
AUTH = ("alice", "page-serving-pass")


@pytest.fixture
def services(tmp_path: Path) -> Services:
    build_deb(tmp_path / "releases" / "v1.0", "hello-ghapt", "1.0-1", "all")
    UserFile(tmp_path / "state" / "users.json").add(*AUTH)
    settings = Settings.from_env({}, releases_dir=tmp_path / "releases", state_dir=tmp_path / "state")
    return Services(settings, {})


@pytest.fixture
def server(services: Services) -> Iterator[RunningServer]:
    services.indexer.rebuild()
    with serve(services) as running:
        yield running


def test_the_page_needs_credentials_and_asks_browsers_for_them(server: RunningServer) -> None:
    for path in ("/", "/index.html"):
        r = requests.get(server.url + path, timeout=10)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="ghapt"'
        assert "hello-ghapt" not in r.text


def test_the_page_is_html_with_a_strict_csp_the_head_commit_and_validators(
    server: RunningServer, services: Services
) -> None:
    r = requests.get(server.url + "/", auth=AUTH, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    head = services.store.head()
    assert head
    assert f"<code>{head}</code>" in r.text
    assert f"URIs: {server.url}/" in r.text
    assert "<ghapt:" not in r.text
    same = requests.get(server.url + "/index.html", auth=AUTH, timeout=10)
    assert same.text == r.text
    assert same.headers["ETag"] == r.headers["ETag"]
    cached = requests.get(
        server.url + "/", auth=AUTH, headers={"If-None-Match": r.headers["ETag"]}, timeout=10
    )
    assert cached.status_code == 304
    assert cached.content == b""
    head_only = requests.head(server.url + "/", auth=AUTH, timeout=10)
    assert head_only.status_code == 200
    assert head_only.content == b""
    assert requests.post(server.url + "/", auth=AUTH, timeout=10).status_code == 405


def test_a_new_commit_changes_the_page_and_its_etag(
    server: RunningServer, services: Services, tmp_path: Path
) -> None:
    before = requests.get(server.url + "/", auth=AUTH, timeout=10)
    build_deb(tmp_path / "releases" / "v2.0", "hello-ghapt", "2.0-1", "all")
    result = services.indexer.rebuild()
    after = requests.get(
        server.url + "/", auth=AUTH, headers={"If-None-Match": before.headers["ETag"]}, timeout=10
    )
    assert after.status_code == 200
    assert ">2.0-1<" in after.text
    assert f"<code>{result.commit}</code>" in after.text


def test_the_root_route_is_exact_and_unknown_paths_stay_404_without_credentials(
    server: RunningServer,
) -> None:
    root = next(r for r in ROUTES if r.path == "/")
    assert root.resource == "/"
    assert root.matches("/")
    assert not root.matches("/nothing-here")
    for path in ("/nothing-here", "/index.htm", "/index.html/x"):
        r = requests.get(server.url + path, timeout=10)
        assert r.status_code == 404, path


def test_no_page_yet_is_a_404_that_says_what_to_do(services: Services) -> None:
    services.indexer.rebuild()
    store: Any = services.store
    # An index from before pages existed: drop index.html from the head.
    head = store.head()
    store.commit_files(head, {"index.html": None}, "no page")
    with serve(services) as running:
        r = requests.get(running.url + "/", auth=AUTH, timeout=10)
    assert r.status_code == 404
    assert "run a rebuild" in r.text


def _event(name: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "events" / f"{name}.json").read_text()))


@pytest.mark.parametrize("name", ["page_get", "page_index_html_get"])
def test_api_gateway_events_get_the_page_with_the_stage_url(services: Services, name: str) -> None:
    services.indexer.rebuild()
    handlers.configure(services)
    try:
        response = handlers.metadata_handler(_event(name), LambdaContext("metadata"))
    finally:
        handlers.configure(None)
    assert response["statusCode"] == 200
    body = response.get("body") or ""
    page = base64.b64decode(body).decode() if response.get("isBase64Encoded") else body
    assert "hello-ghapt" in page
    # The stage is part of the repository's URL: the client setup must carry it.
    assert "URIs: https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod/\n" in page
    assert "machine a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod login" in page
    headers = response.get("headers") or {k: v[0] for k, v in response["multiValueHeaders"].items()}
    assert headers["Content-Type"] == "text/html; charset=utf-8"


def test_a_page_too_large_for_a_response_is_a_clear_500_not_a_broken_one(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ghapt.serving

    services.indexer.rebuild()
    monkeypatch.setattr(ghapt.serving, "MAX_INLINE_BYTES", 1000)  # page reads it when serving
    with serve(services) as running:
        r = requests.get(running.url + "/", auth=AUTH, timeout=10)
    assert r.status_code == 500
    assert "ghapt list" in r.text
