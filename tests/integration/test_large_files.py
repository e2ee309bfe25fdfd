"""Metadata files too large for a Lambda response reach the client by a 302, never a 502.

Local store: a signed, expiring ``/_blobs/<commit>/<path>`` URL on the local gateway.
GitHub store: the contents API's ``download_url`` (a short-lived ``?token=`` raw URL).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from ghapt import serving
from ghapt.clientconfig import auth_entry
from ghapt.github import GitHubClient, TokenAuth
from ghapt.githubstore import GitHubBranchStore
from ghapt.gitstore import BlobUrlSigner, LocalGitStore
from ghapt.services import Services
from ghapt.serving import BranchCache, serve_dists
from ghapt.settings import Settings
from ghapt.users import UserFile

from tests.support.aptclient import AptClient
from tests.support.debbuild import build_deb, control_text
from tests.support.fakegithub import FakeGitHub
from tests.support.servers import RunningServer, serve

AUTH = ("alice", "large-files-pw")
PACKAGES = "dists/stable/main/binary-amd64/Packages"
LAMBDA_LIMIT = 6 * 1024 * 1024


def _services(tmp_path: Path, debs: int = 1, description_bytes: int = 0) -> Services:
    releases = tmp_path / "releases"
    for i in range(debs):
        desc = "large-file test package"
        if description_bytes:
            # Random text does not compress: Packages.xz/.gz stay as large as Packages.
            text = base64.b64encode(secrets.token_bytes(description_bytes * 3 // 4)).decode()
            desc += "\n" + "\n".join(f" {text[j : j + 76]}" for j in range(0, len(text), 76))
        control = control_text(f"big{i}", "1.0-1", "amd64", description=desc)
        build_deb(releases / "v1", f"big{i}", "1.0-1", "amd64", control=control)
    UserFile(tmp_path / "state" / "users.json").add(*AUTH)
    settings = Settings.from_env(
        {}, releases_dir=releases, state_dir=tmp_path / "state", architectures="amd64"
    )
    services = Services(settings, {})
    assert services.indexer.rebuild().changed
    return services


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(serving, "MAX_INLINE_BYTES", 200)
    return 200


@pytest.fixture
def server(tmp_path: Path, small_limit: int) -> Iterator[RunningServer]:
    services = _services(tmp_path)
    with serve(services) as running:
        yield running


def _branch_file(services: Services, path: str) -> bytes:
    store = services.store
    head = store.head()
    assert head is not None
    data = store.read_file(head, path)
    assert data is not None
    return data


def test_a_file_over_the_limit_is_a_302_to_a_signed_blob_url(server: RunningServer) -> None:
    url = f"{server.url}/{PACKAGES}"
    r = requests.get(url, auth=AUTH, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.content == b""
    location = r.headers["Location"]
    assert location.startswith(f"{server.url}/_blobs/")
    assert "sig=" in location
    assert "expires=" in location
    assert r.headers["Cache-Control"] == "no-store"
    # The blob URL needs no repository credentials: it is signed.
    blob = requests.get(location, timeout=10)
    assert blob.status_code == 200
    assert blob.content == _branch_file(server.services, PACKAGES)
    # requests follows the redirect (and keeps the credentials on the same host) to the same bytes.
    assert requests.get(url, auth=AUTH, timeout=10).content == blob.content
    # Small files are still served inline.
    assert requests.get(f"{server.url}/dists/stable/InRelease", auth=AUTH, timeout=10).status_code == 200
    # HEAD redirects too.
    assert requests.head(url, auth=AUTH, timeout=10).status_code == 302


def test_by_hash_copies_redirect_to_bytes_matching_their_name(server: RunningServer) -> None:
    release = requests.get(f"{server.url}/dists/stable/Release", auth=AUTH, timeout=10).text
    sha256 = release.split("SHA256:")[1].split("SHA512:")[0].split()
    digest = sha256[sha256.index("main/binary-amd64/Packages") - 2]
    r = requests.get(
        f"{server.url}/dists/stable/main/binary-amd64/by-hash/SHA256/{digest}", auth=AUTH, timeout=10
    )
    assert r.history
    assert r.history[0].status_code == 302
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == digest


def test_blob_urls_are_checked(server: RunningServer) -> None:
    location = requests.get(f"{server.url}/{PACKAGES}", auth=AUTH, allow_redirects=False, timeout=10).headers[
        "Location"
    ]
    parts = urlsplit(location)
    query = dict(parse_qsl(parts.query))
    base = f"{server.url}{parts.path}"
    forged = {**query, "sig": "0" * 64}
    assert requests.get(base, params=forged, timeout=10).status_code == 403
    later = {**query, "expires": str(int(query["expires"]) + 1)}
    assert requests.get(base, params=later, timeout=10).status_code == 403
    other_path = base.replace("/Packages", "/Packages.xz")
    assert requests.get(other_path, params=query, timeout=10).status_code == 403
    assert requests.get(f"{server.url}/_blobs/nothex/x", params=query, timeout=10).status_code == 400
    assert requests.post(base, params=query, timeout=10).status_code == 405
    store = server.services.store
    assert isinstance(store, LocalGitStore)
    assert store.links is not None
    head = store.head()
    assert head is not None
    past = BlobUrlSigner(store.links.key, clock=lambda: 1_000_000.0)
    old = past.url(server.url, head, PACKAGES)  # signed long ago: expired
    assert requests.get(old, timeout=10).status_code == 403


@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_real_apt_follows_the_redirects(server: RunningServer, tmp_path: Path) -> None:
    key = tmp_path / "ghapt.asc"
    key.write_text(server.services.signer.public_key_armored())
    apt = AptClient(tmp_path / "apt")
    apt.add_source(server.url, "stable", key)
    apt.set_auth(auth_entry(server.url, *AUTH))
    res = apt.run("update")
    assert res.returncode == 0, res.output
    assert "E:" not in res.output, res.output
    assert "Hash Sum" not in res.output, res.output
    assert any("/_blobs/" in p for p in server.paths(200)), server.log
    assert not server.paths(502)
    assert not server.paths(500)
    res = apt.run("download", "big0")
    assert res.returncode == 0, res.output


@pytest.mark.slow
def test_a_real_packages_file_over_six_megabytes(tmp_path: Path) -> None:
    """No monkeypatching: eight packages with 0.9 MB descriptions make a 7 MB Packages file."""
    services = _services(tmp_path, debs=8, description_bytes=900_000)
    data = _branch_file(services, PACKAGES)
    assert len(data) > LAMBDA_LIMIT
    with serve(services) as running:
        url = f"{running.url}/{PACKAGES}"
        first = requests.get(url, auth=AUTH, allow_redirects=False, timeout=30)
        assert first.status_code == 302
        r = requests.get(url, auth=AUTH, timeout=30)
        assert r.status_code == 200
        assert r.content == data
        assert not running.paths(502)
        assert not running.paths(500)
        if shutil.which("apt-get"):
            key = tmp_path / "ghapt.asc"
            key.write_text(services.signer.public_key_armored())
            apt = AptClient(tmp_path / "apt")
            apt.add_source(running.url, "stable", key)
            apt.set_auth(auth_entry(running.url, *AUTH))
            res = apt.run("update")
            assert res.returncode == 0, res.output
            assert "E:" not in res.output, res.output
            assert any("/_blobs/" in p for p in running.paths(200))
            assert "big7" in apt.cache("policy", "big7").output


# --- the GitHub store ------------------------------------------------------------------------------
REPO = "acme/apt-meta"


@pytest.fixture
def gh_repos() -> tuple[str, ...]:
    return (REPO,)


def test_github_store_links_to_the_raw_download_url(gh: FakeGitHub, small_limit: int) -> None:
    client = GitHubClient(gh.api_url, TokenAuth(gh.token), sleep=lambda s: None)
    store = GitHubBranchStore(client, REPO, "apt-metadata")
    big = secrets.token_bytes(1_500_000)  # over the contents API's 1 MB: only raw/object work
    commit = store.commit_files(None, {PACKAGES: big, "dists/stable/InRelease": b"small\n"}, "index")
    url = store.large_file_url(commit, PACKAGES, "https://apt.example.com")
    assert url.startswith(gh.storage_url)
    assert "token=" in url
    calls = gh.calls("GET", r"/contents/")
    assert calls
    assert "object" in calls[-1].headers["accept"]
    assert calls[-1].query.get("ref") == commit
    # Fetched like apt would after the redirect: no Authorization header at all.
    r = requests.get(url, timeout=10)
    assert r.status_code == 200
    assert r.content == big
    # serve_dists answers with the redirect instead of a body.
    reply = serve_dists(BranchCache(store), "stable/main/binary-amd64/Packages", {}, "https://x")
    assert reply.status == 302
    assert reply.headers["Location"].startswith(gh.storage_url)
    assert reply.body == b""
    assert serve_dists(BranchCache(store), "stable/InRelease", {}, "https://x").status == 200
