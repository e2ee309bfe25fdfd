"""The local server over real HTTP: HEAD answers like GET, redirects never follow a client's
Host, bodies are refused before they are read, and metrics stay silent when they are off."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import ghapt.aws.handlers as handlers
import pytest
import requests
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings

from tests.support.debbuild import build_deb
from tests.support.servers import RunningServer, serve

AUTH = ("alice", "http-edges-pass")
HOOK_SECRET = "http-edges-hook"
POOL = "pool/main/t/tool/tool_1.0-1_amd64.deb"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    releases = tmp_path / "releases"
    build_deb(releases / "v1.0", "tool", "1.0-1", "amd64")
    UserFile(tmp_path / "state" / "users.json").add(*AUTH)
    settings = Settings.from_env(
        {"GHAPT_WEBHOOK_SECRET": HOOK_SECRET},
        releases_dir=releases,
        state_dir=tmp_path / "state",
        architectures="amd64",
    )
    services = Services(settings, {})
    services.indexer.rebuild()
    with serve(services) as running:
        yield running


def _raw(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection; the body read is exactly what the server sent."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request(method, path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


BASIC = {"Authorization": "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/public.key", {}),
        ("/dists/stable/InRelease", BASIC),
        ("/dists/stable/main/binary-amd64/Packages.xz", BASIC),
        ("/dists/stable/Release", {}),  # 401
        ("/dists/stable/nope", BASIC),  # 404 from the handler
        (f"/{POOL}", BASIC),  # 302
        ("/nowhere", {}),  # 404 from the gateway
    ],
)
def test_head_has_the_status_and_content_length_of_get(
    server: RunningServer, path: str, headers: dict[str, str]
) -> None:
    get_status, get_headers, get_body = _raw(server.url, "GET", path, headers)
    head_status, head_headers, head_body = _raw(server.url, "HEAD", path, headers)
    assert head_status == get_status
    assert head_body == b""
    assert int(head_headers["content-length"]) == len(get_body) == int(get_headers["content-length"])
    for name in ("content-type", "etag", "last-modified", "cache-control"):
        assert head_headers.get(name) == get_headers.get(name), name


def test_head_keeps_a_keep_alive_connection_in_step(server: RunningServer) -> None:
    """A HEAD body on the wire would be read as the start of the next response."""
    with requests.Session() as session:
        session.auth = AUTH
        for _ in range(3):
            assert session.head(f"{server.url}/public.key", timeout=10).status_code == 200
            r = session.get(f"{server.url}/dists/stable/InRelease", timeout=10)
            assert r.status_code == 200
            assert r.content.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")


def test_a_clients_host_header_never_reaches_another_clients_redirect(server: RunningServer) -> None:
    own = urlsplit(server.url).netloc
    for headers in (
        {"Host": "evil.example"},
        {"Host": "evil.example", "X-Forwarded-Proto": "https"},
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "gopher"},
    ):
        status, answer, _ = _raw(server.url, "GET", f"/{POOL}", {**BASIC, **headers})
        assert status == 302 and urlsplit(answer["location"]).netloc == own, answer["location"]
    # Everyone else, within the pool URL cache's window:
    r = requests.get(f"{server.url}/{POOL}", auth=AUTH, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.headers["Location"].startswith(f"http://{own}/_assets/"), r.headers["Location"]
    assert requests.get(r.headers["Location"], timeout=10).status_code == 200


def _signed(body: bytes) -> dict[str, str]:
    sig = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={sig}", "X-GitHub-Event": "release", "X-GitHub-Delivery": "x"}


def test_a_chunked_body_over_the_cap_is_refused_once_it_passes_it(server: RunningServer) -> None:
    def chunks() -> Iterator[bytes]:
        block = b"x" * (1 << 20)
        for _ in range(30):  # 30 MB, over the webhook's 25 MB
            yield block

    try:
        r = requests.post(f"{server.url}/webhook", data=chunks(), headers=_signed(b""), timeout=60)
        assert r.status_code == 413
    except requests.ConnectionError:
        pass  # the server may close while the rest is still being sent; nothing was accepted
    body = json.dumps({"action": "published", "release": {"tag_name": "v1"}}).encode()
    r = requests.post(f"{server.url}/webhook", data=body, headers=_signed(body), timeout=30)
    assert r.status_code == 202, r.text


def test_signed_malformed_webhooks_are_400_over_http(server: RunningServer) -> None:
    for body in (b"[" * 100_000, b'{"action": "published", "repository": "acme/tool"}'):
        r = requests.post(f"{server.url}/webhook", data=body, headers=_signed(body), timeout=30)
        assert r.status_code == 400, r.text


def test_no_metric_output_while_metrics_are_off(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    handlers.metrics.clear_metrics()
    capsys.readouterr()
    with requests.Session() as session:
        session.auth = AUTH
        for _ in range(250):  # Powertools prints its set every 100 values of a metric
            assert session.get(f"{server.url}/dists/stable/InRelease", timeout=10).status_code == 200
    out = capsys.readouterr()
    assert "_aws" not in out.out + out.err
    assert "CloudWatchMetrics" not in out.out + out.err


def test_a_large_file_goes_out_whole_in_step_with_head_and_a_new_commit_is_seen_next(
    server: RunningServer,
) -> None:
    """A body past the gateway's file-wrapper size (sent from the cached bytes, decoded once)
    keeps a kept-alive connection in step with HEAD and 304s, and a new commit shows at once."""
    store = server.services.store
    old_body = bytes(range(256)) * 600  # 150 KB, not text
    head = store.commit_files(store.head(), {"dists/stable/big.bin": old_body}, "a large file")
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:

        def ask(method: str, extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
            conn.request(method, "/dists/stable/big.bin", headers={**BASIC, **(extra or {})})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()

        status, headers, body = ask("GET")
        assert (status, body) == (200, old_body)
        assert int(headers["content-length"]) == len(old_body)
        status, head_headers, head_body = ask("HEAD")
        assert (status, head_body, head_headers["content-length"]) == (200, b"", str(len(old_body)))
        assert ask("GET", {"If-None-Match": headers["etag"]})[0] == 304
        assert ask("GET")[2] == old_body  # again, from the caches

        new_body = old_body[::-1]
        store.commit_files(head, {"dists/stable/big.bin": new_body}, "the large file, changed")
        status, new_headers, body = ask("GET")
        assert (status, body) == (200, new_body)
        assert new_headers["etag"] != headers["etag"]
        assert ask("GET", {"If-None-Match": headers["etag"]})[0] == 200
    finally:
        conn.close()
