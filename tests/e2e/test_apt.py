"""The real apt-get against the local server: update through by-hash, download through a 302."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.cli.clientconfig import auth_entry
from ghapt.core.settings import Settings

from tests.support.aptclient import AptClient
from tests.support.debbuild import build_deb
from tests.support.servers import RunningServer, serve

pytestmark = [pytest.mark.apt, pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")]

PASSWORD = "correct-horse-battery"


Repo = tuple[RunningServer, Services, dict[str, Path], Path, Path]
"""The server, its Services, the debs by name, the public key and the releases folder."""


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    releases = tmp_path / "releases"
    state = tmp_path / "state"
    debs: dict[str, Path] = {}
    # Asset names as GitHub would mangle them: the pool path must come from the control data.
    debs["hello_1.0-1"] = build_deb(
        releases / "v1.0", "hello-ghapt", "1.0-1", "all", filename="hello.1.0-1.deb"
    )
    debs["hello_1.1~rc1-1"] = build_deb(
        releases / "v1.1-rc1",
        "hello-ghapt",
        "1.1~rc1-1",
        "all",
        compression="xz",
        filename="hello-ghapt_1.1.rc1-1_all.deb",
    )
    debs["libdemo1_2:3.0-1"] = build_deb(
        releases / "v3.0",
        "libdemo1",
        "2:3.0-1",
        "amd64",
        compression="zstd",
        extra={"Source": "libdemo (3.0-1)", "Multi-Arch": "same"},
        filename="libdemo1_2.3a3.0-1_amd64.deb",
    )
    (releases / "v9.9").mkdir()
    (releases / "v9.9" / "broken.deb").write_bytes(b"!<arch>\nnot really a deb")
    UserFile(state / "users.json").add("alice", PASSWORD)
    settings = Settings.from_env({}, releases_dir=releases, state_dir=state, architectures="amd64 arm64")
    services = Services(settings, {})
    result = services.indexer.rebuild()
    assert result.changed
    assert result.packages == 3
    assert [s.asset.name for s in result.skipped] == ["broken.deb"]
    with serve(services) as server:
        key = tmp_path / "ghapt.asc"
        key.write_text(services.signer.public_key_armored())
        yield server, services, debs, key, releases


def _client(tmp_path: Path, server: RunningServer, key: Path, password: str | None = PASSWORD) -> AptClient:
    apt = AptClient(tmp_path / "apt")
    apt.add_source(server.url, "stable", key)
    if password is not None:
        apt.set_auth(auth_entry(server.url, "alice", password))
    return apt


def test_update_goes_through_by_hash_and_lists_every_version(repo: Repo, tmp_path: Path) -> None:
    server, _, _, key, _ = repo
    apt = _client(tmp_path, server, key)
    res = apt.run("update")
    assert res.returncode == 0, res.output
    assert "NO_PUBKEY" not in res.output
    assert "not signed" not in res.output
    assert any(p.endswith("/dists/stable/InRelease") for p in server.paths(200))
    assert any("/by-hash/SHA512/" in p for p in server.paths(200)), server.log
    madison = apt.cache("madison", "hello-ghapt")
    assert "1.0-1" in madison.output, madison.output
    assert "1.1~rc1-1" in madison.output, madison.output
    assert "2:3.0-1" in apt.cache("madison", "libdemo1").output


def test_download_follows_the_pool_redirect_and_matches_the_original(repo: Repo, tmp_path: Path) -> None:
    server, _, debs, key, _ = repo
    apt = _client(tmp_path, server, key)
    assert apt.run("update").returncode == 0
    for version, original in (("1.0-1", debs["hello_1.0-1"]), ("1.1~rc1-1", debs["hello_1.1~rc1-1"])):
        res = apt.run("download", f"hello-ghapt={version}")
        assert res.returncode == 0, res.output
        got = next((apt.root / "downloads").glob(f"hello-ghapt_{version}_all.deb"))
        assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(original.read_bytes()).digest()
    res = apt.run("download", "libdemo1")
    assert res.returncode == 0, res.output
    assert any(p.startswith("/pool/main/libd/libdemo/") for p in server.paths(302)), server.log
    assert any(p.startswith("/_assets/v3.0/") for p in server.paths(200))


@pytest.mark.parametrize("password", ["wrong-password", None])
def test_wrong_or_missing_credentials_fail_with_401(repo: Repo, tmp_path: Path, password: str | None) -> None:
    server, _, _, key, _ = repo
    apt = _client(tmp_path, server, key, password)
    res = apt.run("update")
    assert "401" in res.output, res.output
    assert "Failed to fetch" in res.output, res.output
    assert not any(p.endswith("InRelease") for p in server.paths(200))


def test_a_new_release_appears_on_the_next_update(repo: Repo, tmp_path: Path) -> None:
    server, services, _, key, releases = repo
    apt = _client(tmp_path, server, key)
    assert apt.run("update").returncode == 0
    assert "2.0-1" not in apt.cache("madison", "hello-ghapt").output
    build_deb(releases / "v2.0", "hello-ghapt", "2.0-1", "all", filename="hello-ghapt_2.0-1_all.deb")
    result = services.indexer.rebuild()
    assert result.added == ["stable:pool/main/h/hello-ghapt/hello-ghapt_2.0-1_all.deb"]
    services.branch_cache.invalidate()
    res = apt.run("update")
    assert res.returncode == 0, res.output
    assert "2.0-1" in apt.cache("madison", "hello-ghapt").output
    res = apt.run("download", "hello-ghapt=2.0-1")
    assert res.returncode == 0, res.output
