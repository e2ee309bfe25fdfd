"""The local API Gateway over real HTTP: authorizer first, then the route; validators and path tricks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import ghapt.aws.handlers as handlers
import pytest
import requests
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings
from ghapt.local.queue import LocalQueue

from tests.support.debbuild import build_deb
from tests.support.servers import RunningServer, serve

AUTH = ("alice", "s3cret-pass")
HOOK_SECRET = "hook-secret"


@dataclass
class Local:
    """The local gateway over a folder of releases (``v1.0/tool_1.0-1_amd64.deb``)."""

    server: RunningServer
    services: Services
    releases: Path

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Local]:
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
        yield Local(running, services, releases)


def test_public_key_needs_no_credentials(server: Local) -> None:
    r = requests.get(f"{server.url}/public.key", timeout=10)
    assert r.status_code == 200
    assert r.text.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert r.headers["Content-Type"].startswith("application/pgp-keys")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Digest username=alice"},
    ],
)
def test_dists_without_valid_credentials_is_401_with_basic_challenge(
    server: Local, headers: dict[str, str]
) -> None:
    r = requests.get(f"{server.url}/dists/stable/InRelease", headers=headers, timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="ghapt"'
    assert b"PGP" not in r.content


def test_dists_serves_files_with_validators_and_304s(server: Local) -> None:
    url = f"{server.url}/dists/stable/InRelease"
    r = requests.get(url, auth=AUTH, timeout=10)
    assert r.status_code == 200
    assert r.content.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    assert modified.endswith(" GMT")
    assert parsedate_to_datetime(modified).tzinfo is not None
    assert "max-age=30" in r.headers["Cache-Control"]
    assert requests.get(url, auth=AUTH, headers={"If-None-Match": etag}, timeout=10).status_code == 304
    assert (
        requests.get(url, auth=AUTH, headers={"If-Modified-Since": modified}, timeout=10).status_code == 304
    )
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert requests.get(url, auth=AUTH, headers={"If-Modified-Since": old}, timeout=10).status_code == 200
    assert (
        requests.get(url, auth=AUTH, headers={"If-Modified-Since": "garbage"}, timeout=10).status_code == 200
    )
    head = requests.head(url, auth=AUTH, timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["ETag"] == etag


def test_by_hash_files_are_immutable_and_match_their_name(server: Local) -> None:
    release = requests.get(f"{server.url}/dists/stable/Release", auth=AUTH, timeout=10).text
    sha256 = release.split("SHA256:")[1].split("SHA512:")[0].split()
    digest = sha256[sha256.index("main/binary-amd64/Packages.xz") - 2]
    r = requests.get(
        f"{server.url}/dists/stable/main/binary-amd64/by-hash/SHA256/{digest}", auth=AUTH, timeout=10
    )
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == digest
    assert "immutable" in r.headers["Cache-Control"]
    assert r.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    "path",
    [
        "/dists/../state/users.json",
        "/dists/stable/../../ghapt/pool.json",
        "/dists/stable/%2e%2e/%2e%2e/ghapt/pool.json",
        "/dists/stable%2fInRelease",
        "/dists/stable%2FInRelease",
        "/dists/stable/InRelease%00",
        "/dists/stable/..%5c..%5cfoo",
        "/dists//stable/InRelease",
        "/pool/../dists/stable/InRelease",
        "/pool/main/t/tool/%2e%2e%2ftool_1.0-1_amd64.deb",
    ],
)
def test_path_tricks_are_400_or_404(server: Local, path: str) -> None:
    # http.client sends the path as given; requests would normalise the dot segments away.
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    token = base64.b64encode(":".join(AUTH).encode()).decode()
    conn.request("GET", path, headers={"Authorization": f"Basic {token}"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status in (400, 404), (path, resp.status, body[:200])
    assert b"PGP" not in body
    assert b"scrypt" not in body


def test_unknown_routes_and_methods(server: Local) -> None:
    assert requests.get(f"{server.url}/nothing-here", auth=AUTH, timeout=10).status_code == 404
    assert requests.get(f"{server.url}/dists/stable/Nope", auth=AUTH, timeout=10).status_code == 404
    assert requests.post(f"{server.url}/dists/stable/InRelease", auth=AUTH, timeout=10).status_code == 405


def test_pool_redirects_to_a_signed_expiring_url_that_serves_the_file(server: Local) -> None:
    path = "/pool/main/t/tool/tool_1.0-1_amd64.deb"
    r = requests.get(server.url + path, auth=AUTH, timeout=10, allow_redirects=False)
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith(f"{server.url}/_assets/v1.0/")
    original = (server.releases / "v1.0" / "tool_1.0-1_amd64.deb").read_bytes()
    fetched = requests.get(location, timeout=10)  # no credentials: the signature is the credential
    assert fetched.status_code == 200
    assert fetched.content == original
    tampered = location.replace("sig=", "sig=0")
    assert requests.get(tampered, timeout=10).status_code == 403
    other = location.replace("tool_1.0-1_amd64.deb", "other.deb")
    assert requests.get(other, timeout=10).status_code == 403
    assert requests.get(server.url + "/pool/main/t/tool/nope.deb", auth=AUTH, timeout=10).status_code == 404


def test_an_expired_asset_url_is_refused(server: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    r = requests.get(
        server.url + "/pool/main/t/tool/tool_1.0-1_amd64.deb", auth=AUTH, timeout=10, allow_redirects=False
    )
    signer = server.services.asset_urls
    monkeypatch.setattr(signer, "clock", lambda: time.time() + 3600)
    assert requests.get(r.headers["Location"], timeout=10).status_code == 403


def test_an_asset_rewritten_after_indexing_is_gone_until_rebuilt(server: Local) -> None:
    r = requests.get(
        server.url + "/pool/main/t/tool/tool_1.0-1_amd64.deb", auth=AUTH, timeout=10, allow_redirects=False
    )
    deb = server.releases / "v1.0" / "tool_1.0-1_amd64.deb"
    deb.write_bytes(deb.read_bytes() + b"\n")
    assert requests.get(r.headers["Location"], timeout=10).status_code == 410


def test_explicit_deny_is_403_and_a_broken_authorizer_is_500(
    server: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    def deny(event: dict[str, Any], context: object) -> dict[str, Any]:
        return {
            "principalId": "x",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "*"}],
            },
        }

    monkeypatch.setattr(handlers, "authorizer_handler", deny)
    hdr = {"Authorization": "Basic " + base64.b64encode(b"someone:else").decode()}
    assert requests.get(f"{server.url}/dists/stable/Release", headers=hdr, timeout=10).status_code == 403

    def broken(event: dict[str, Any], context: object) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(handlers, "authorizer_handler", broken)
    hdr = {"Authorization": "Basic " + base64.b64encode(b"third:user").decode()}
    assert requests.get(f"{server.url}/dists/stable/Release", headers=hdr, timeout=10).status_code == 500


def test_authorizer_decisions_are_cached_per_header_like_api_gateway(
    server: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = handlers.authorizer_handler

    def counting(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event["methodArn"])
        decision: dict[str, Any] = real(event, context)
        return decision

    monkeypatch.setattr(handlers, "authorizer_handler", counting)
    for path in (
        "/dists/stable/Release",
        "/dists/stable/InRelease",
        "/pool/main/t/tool/tool_1.0-1_amd64.deb",
    ):
        r = requests.get(server.url + path, auth=AUTH, timeout=10, allow_redirects=False)
        assert r.status_code in (200, 302)
    assert len(calls) == 1, "one decision covers the whole API for the TTL"


def test_signed_webhook_triggers_a_rebuild_through_the_local_queue(server: Local) -> None:
    build_deb(server.releases / "v2.0", "tool", "2.0-1", "amd64")
    body = json.dumps(
        {
            "action": "published",
            "release": {"tag_name": "v2.0"},
            "repository": {"full_name": "local/releases"},
        }
    ).encode()
    sig = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": sig,
        "X-GitHub-Event": "release",
        "X-GitHub-Delivery": "abc-1",
        "Content-Type": "application/json",
    }
    bad = requests.post(
        f"{server.url}/webhook",
        data=body,
        headers={**headers, "X-Hub-Signature-256": "sha256=00"},
        timeout=10,
    )
    assert bad.status_code == 401
    r = requests.post(f"{server.url}/webhook", data=body, headers=headers, timeout=10)
    assert r.status_code == 202, r.text
    queue = server.services.queue
    assert isinstance(queue, LocalQueue)
    queue.drain()
    packages = requests.get(
        f"{server.url}/dists/stable/main/binary-amd64/Packages", auth=AUTH, timeout=10
    ).text
    assert "Version: 2.0-1" in packages
    runs = queue.runs
    again = requests.post(f"{server.url}/webhook", data=body, headers=headers, timeout=10)
    assert again.status_code == 200
    assert again.text == "duplicate ignored\n"
    queue.drain()
    assert queue.runs == runs, "a replayed delivery does no work"


def test_a_decision_made_while_the_users_file_changed_is_not_reused_under_the_new_file(
    server: Local, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Request 1 reads the users file's version, then its authorizer runs; meanwhile `users`
    # changes the file and another request drops every cached decision. Request 1's decision,
    # stored after that, was made for the old file: request 2 must ask the authorizer again.
    calls: list[str] = []
    real = handlers.authorizer_handler

    def racing(event: dict[str, Any], context: Any) -> dict[str, Any]:
        decision: dict[str, Any] = real(event, context)
        calls.append(event["path"])
        if len(calls) == 1:
            UserFile(tmp_path / "state" / "users.json").add("bob", "bob-pass-1")  # the file changes
            server.server.app._forget_policies_if_users_changed()  # another request sees it
        return decision

    monkeypatch.setattr(handlers, "authorizer_handler", racing)
    url = f"{server.url}/dists/stable/Release"
    assert requests.get(url, auth=AUTH, timeout=10).status_code == 200
    assert requests.get(url, auth=AUTH, timeout=10).status_code == 200
    assert len(calls) == 2, "the decision made for the old users file was reused"
    assert requests.get(url, auth=AUTH, timeout=10).status_code == 200
    assert len(calls) == 2, "a decision made for the file as it is is reused"
