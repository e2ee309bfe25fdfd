"""Visible at once, locally: with the local backend a rebuild from any process is served on the
next request (the head check is a file read); the GitHub backend keeps its cache window,
where a head check costs an API call."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.cli.clientconfig import auth_entry
from ghapt.core.settings import Settings
from ghapt.local.gitstore import LocalGitStore

from tests.support.aptclient import AptClient
from tests.support.debbuild import build_deb
from tests.support.servers import serve

GHAPT = str(Path(sys.executable).parent / "ghapt")
USER, PASSWORD = "alice", "visible-at-once-pass"


def test_the_cache_window_is_zero_locally_and_kept_for_github(tmp_path: Path) -> None:
    local = Services(Settings.from_env({}, releases_dir=tmp_path / "r", state_dir=tmp_path / "s"), {})
    assert local.settings.cache_seconds == 30
    assert local.branch_cache.ttl == 0
    github = Services(
        Settings.from_env(
            {"GITHUB_TOKEN": "t0ken", "GHAPT_CACHE_SECONDS": "45"},
            metadata_repo="acme/apt-metadata",
            backend="github",
        ),
        {},
    )
    assert github.branch_cache.ttl == 45


def test_the_local_head_is_read_from_the_ref_file_and_survives_packed_refs(tmp_path: Path) -> None:
    writer = LocalGitStore(tmp_path / "metadata.git")
    reader = LocalGitStore(tmp_path / "metadata.git")
    assert reader.head() is None
    first = writer.commit_files(None, {"a": b"1"}, "one")
    assert reader.head() == first
    second = writer.commit_files(first, {"a": b"2"}, "two")
    assert reader.head() == second
    subprocess.run(["git", "pack-refs", "--all"], cwd=tmp_path / "metadata.git", check=True)
    assert not (tmp_path / "metadata.git" / "refs" / "heads" / "apt-metadata").exists()
    assert reader.head() == second
    third = writer.commit_files(second, {"a": b"3"}, "three")
    assert reader.head() == third


@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_a_rebuild_from_another_process_is_seen_by_the_next_apt_update(tmp_path: Path) -> None:
    releases, state = tmp_path / "releases", tmp_path / "state"
    build_deb(releases / "v1.0", "hello-ghapt", "1.0-1", "all")
    UserFile(state / "users.json").add(USER, PASSWORD)
    # The server's settings as `ghapt serve` reads them: the default 30 s GHAPT_CACHE_SECONDS.
    services = Services(Settings.from_env({}, releases_dir=releases, state_dir=state), {})
    assert services.settings.cache_seconds == 30
    services.indexer.rebuild()
    with serve(services) as server:
        key = tmp_path / "ghapt.asc"
        key.write_text(services.signer.public_key_armored())
        apt = AptClient(tmp_path / "apt")
        apt.add_source(server.url, "stable", key)
        apt.set_auth(auth_entry(server.url, USER, PASSWORD))
        assert apt.run("update").returncode == 0
        assert "1.0-1" in apt.cache("policy", "hello-ghapt").output

        build_deb(releases / "v2.0", "hello-ghapt", "2.0-1", "all")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}
        rebuilt = subprocess.run(
            [GHAPT, "rebuild", "--releases", str(releases), "--state", str(state)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert rebuilt.returncode == 0 and "1 added" in rebuilt.stdout, rebuilt.stderr

        res = apt.run("update")
        assert res.returncode == 0, res.output
        madison = apt.cache("madison", "hello-ghapt").output
        assert "2.0-1" in madison
        assert "1.0-1" in madison
