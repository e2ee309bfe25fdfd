"""The real apt-get against the local gateway with GitHub as the backend (the fake GitHub).

The index is rebuilt into the fake's ``apt-metadata`` branch, the gateway serves it from
there, and ``apt-get download`` follows the pool's 302 to the fake's storage host, which
answers 400 to any request that carries an Authorization header.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.cli.clientconfig import auth_entry
from ghapt.core.settings import Settings
from ghapt.github.auth import github_auth_from_settings
from ghapt.github.client import GitHubClient

from tests.support.aptclient import AptClient
from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub
from tests.support.servers import RunningServer, serve

pytestmark = [pytest.mark.apt, pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")]

META = "acme/apt-meta"
BRANCH = "apt-metadata"
USER, PASSWORD = "alice", "correct-horse-battery"


@dataclass
class Env:
    gh: FakeGitHub
    services: Services
    server: RunningServer
    apt: AptClient
    debs: dict[str, bytes]
    out: Path


@pytest.fixture
def gh_repos() -> tuple[str, ...]:
    return (META,)


@pytest.fixture
def env(tmp_path: Path, gh: FakeGitHub) -> Iterator[Env]:
    out = tmp_path / "debs"
    debs = {
        "hello_1.0-1": build_deb(out, "hello-ghapt", "1.0-1", "all").read_bytes(),
        "hello_1.1~rc1-1": build_deb(out, "hello-ghapt", "1.1~rc1-1", "all", compression="xz").read_bytes(),
        "libdemo1_2:3.0-1": build_deb(
            out,
            "libdemo1",
            "2:3.0-1",
            "amd64",
            compression="zstd",
            extra={"Source": "libdemo (3.0-1)", "Multi-Arch": "same"},
        ).read_bytes(),
    }
    state = tmp_path / "state"
    UserFile(state / "users.json").add(USER, PASSWORD)
    # GitHub renames ~ and : in asset names; apt must still see the real versions.
    gh.add_release("acme/hello", "v1.0", [("hello-ghapt_1.0-1_all.deb", debs["hello_1.0-1"])])
    gh.add_release("acme/hello", "v1.1-rc1", [("hello-ghapt_1.1~rc1-1_all.deb", debs["hello_1.1~rc1-1"])])
    gh.add_release(
        "acme/libdemo",
        "v3.0",
        [("libdemo1_2:3.0-1_amd64.deb", debs["libdemo1_2:3.0-1"])],
        with_digest=False,
    )
    settings = Settings.from_env(
        {"GITHUB_TOKEN": gh.token},
        backend="github",
        api_url=gh.api_url,
        github_repos=["acme/hello", "acme/libdemo"],
        metadata_repo=META,
        state_dir=state,
        architectures="amd64",
    )
    services = Services(settings, {})
    services.__dict__["github"] = GitHubClient(
        settings.api_url, github_auth_from_settings(settings, services.secrets), sleep=lambda s: None
    )
    result = services.indexer.rebuild()
    assert result.changed
    assert result.packages == 3
    assert result.skipped == []
    assert gh.branch_head(META, BRANCH) == result.commit
    with serve(services) as server:
        key = tmp_path / "ghapt.asc"
        key.write_text(services.signer.public_key_armored())
        apt = AptClient(tmp_path / "apt")
        apt.add_source(server.url, "stable", key)
        apt.set_auth(auth_entry(server.url, USER, PASSWORD))
        yield Env(gh, services, server, apt, debs, out)


def test_update_reads_the_branch_through_by_hash_and_lists_every_version(env: Env) -> None:
    res = env.apt.run("update")
    assert res.returncode == 0, res.output
    assert "NO_PUBKEY" not in res.output
    assert "not signed" not in res.output
    assert any(p.endswith("/dists/stable/InRelease") for p in env.server.paths(200))
    assert any("/by-hash/SHA512/" in p for p in env.server.paths(200)), env.server.log
    madison = env.apt.cache("madison", "hello-ghapt").output
    assert "1.0-1" in madison, madison
    assert "1.1~rc1-1" in madison, madison
    assert "2:3.0-1" in env.apt.cache("madison", "libdemo1").output
    # What apt got came from the fake's branch: the gateway read blobs of the branch's commit.
    assert env.gh.calls("GET", r"/repos/acme/apt-meta/git/blobs/")


def test_download_follows_the_pool_redirect_to_storage_without_credentials(env: Env) -> None:
    assert env.apt.run("update").returncode == 0
    env.gh.clear_log()
    for package, version, original in (
        ("hello-ghapt", "1.1~rc1-1", env.debs["hello_1.1~rc1-1"]),
        ("libdemo1", "2:3.0-1", env.debs["libdemo1_2:3.0-1"]),
    ):
        res = env.apt.run("download", f"{package}={version}")
        assert res.returncode == 0, res.output
        noepoch = version.split(":", 1)[-1]
        got = next((env.apt.root / "downloads").glob(f"{package}_*{noepoch}_*.deb"))
        assert hashlib.sha256(got.read_bytes()).hexdigest() == hashlib.sha256(original).hexdigest()
    assert any(p.startswith("/pool/main/h/hello-ghapt/") for p in env.server.paths(302)), env.server.log
    assert any(p.startswith("/pool/main/libd/libdemo/") for p in env.server.paths(302)), env.server.log
    storage = env.gh.calls("GET", server="storage")
    assert [r.status for r in storage] == [200, 200], storage
    assert all("authorization" not in r.headers for r in storage)
    assert all("apt" in r.headers.get("user-agent", "").lower() for r in storage), "apt itself fetched them"


def test_a_release_published_on_github_appears_on_the_next_update(env: Env) -> None:
    assert env.apt.run("update").returncode == 0
    assert "2.0-1" not in env.apt.cache("madison", "hello-ghapt").output
    new = build_deb(env.out, "hello-ghapt", "2.0-1", "all").read_bytes()
    env.gh.add_release("acme/hello", "v2.0", [("hello-ghapt_2.0-1_all.deb", new)])
    result = env.services.indexer.rebuild()
    assert result.added == ["stable:pool/main/h/hello-ghapt/hello-ghapt_2.0-1_all.deb"]
    assert result.read == 1
    env.services.branch_cache.invalidate()
    res = env.apt.run("update")
    assert res.returncode == 0, res.output
    assert "2.0-1" in env.apt.cache("madison", "hello-ghapt").output
    res = env.apt.run("download", "hello-ghapt=2.0-1")
    assert res.returncode == 0, res.output
    got = env.apt.root / "downloads" / "hello-ghapt_2.0-1_all.deb"
    assert hashlib.sha256(got.read_bytes()).hexdigest() == hashlib.sha256(new).hexdigest()
