"""``ghapt list``, run for real in a subprocess: from the local state and from a running server
(with credentials), as a table and as JSON; both agree with the ``Packages`` files apt reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from debian.deb822 import Packages
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings

from tests.support.debbuild import build_deb
from tests.support.servers import RunningServer, serve

GHAPT = str(Path(sys.executable).parent / "ghapt")
USER, PASSWORD = "alice", "list-cli-pass"


def ghapt(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}
    return subprocess.run([GHAPT, *args], input=input, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[Path, RunningServer]]:
    releases, state = tmp_path / "releases", tmp_path / "state"
    build_deb(releases / "v1.0", "hello-ghapt", "1.0-1", "all")
    build_deb(releases / "v1.10", "hello-ghapt", "1.10-1", "all")
    build_deb(releases / "v1.9", "hello-ghapt", "1.9-1", "all")
    build_deb(releases / "v3.0", "libdemo1", "2:3.0-1", "amd64", extra={"Source": "libdemo (3.0-1)"})
    UserFile(state / "users.json").add(USER, PASSWORD)
    services = Services(Settings.from_env({}, releases_dir=releases, state_dir=state), {})
    assert services.indexer.rebuild().changed
    with serve(services) as server:
        yield state, server


def _packages(server: RunningServer) -> set[tuple[str, str, str]]:
    out = set()
    for arch in ("amd64", "arm64"):
        r = requests.get(
            f"{server.url}/dists/stable/main/binary-{arch}/Packages", auth=(USER, PASSWORD), timeout=10
        )
        out |= {(p["Package"], p["Version"], p["Architecture"]) for p in Packages.iter_paragraphs(r.text)}
    return out


def _sources(state: Path, server: RunningServer) -> dict[str, tuple[str, ...]]:
    return {
        "local": ("--state", str(state)),
        "remote": ("--url", server.url, "--user", USER, "--password-stdin"),
    }


@pytest.mark.parametrize("where", ["local", "remote"])
def test_json_lists_what_packages_lists(repo: tuple[Path, RunningServer], where: str) -> None:
    state, server = repo
    res = ghapt("list", "--format", "json", *_sources(state, server)[where], input=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    rows: list[dict[str, Any]] = json.loads(res.stdout)
    assert {(r["package"], r["version"], r["architecture"]) for r in rows} == _packages(server)
    assert {r["suite"] for r in rows} == {"stable"}
    # Debian version order within a package, not string order.
    assert [r["version"] for r in rows if r["package"] == "hello-ghapt"] == ["1.0-1", "1.9-1", "1.10-1"]
    lib = next(r for r in rows if r["package"] == "libdemo1")
    assert lib["release"] == "v3.0"
    assert lib["filename"] == "pool/main/libd/libdemo/libdemo1_3.0-1_amd64.deb"
    assert lib["size"] > 0
    assert len(lib["sha256"]) == 64


@pytest.mark.parametrize("where", ["local", "remote"])
def test_table_has_a_header_and_one_line_per_version(repo: tuple[Path, RunningServer], where: str) -> None:
    state, server = repo
    res = ghapt("list", "--suite", "stable", *_sources(state, server)[where], input=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    header, *lines = res.stdout.splitlines()
    assert header.split() == ["SUITE", "PACKAGE", "VERSION", "ARCHITECTURE", "SIZE", "RELEASE"]
    cells = [line.split() for line in lines]
    assert {(c[1], c[2], c[3]) for c in cells} == _packages(server)
    assert all(c[0] == "stable" and c[4].isdigit() for c in cells)
    assert ["hello-ghapt", "2:3.0-1"] not in [c[1:3] for c in cells]
    assert ["libdemo1", "2:3.0-1", "amd64"] in [c[1:4] for c in cells]


def test_local_and_remote_agree(repo: tuple[Path, RunningServer]) -> None:
    state, server = repo
    local = ghapt("list", "--format", "json", "--state", str(state))
    remote = ghapt(
        "list",
        "--format",
        "json",
        "--url",
        server.url,
        "--user",
        USER,
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert local.returncode == remote.returncode == 0
    assert json.loads(local.stdout) == json.loads(remote.stdout)


def test_errors_say_what_is_wrong(repo: tuple[Path, RunningServer], tmp_path: Path) -> None:
    state, server = repo
    unknown = ghapt("list", "--suite", "nope", "--state", str(state))
    assert unknown.returncode == 1
    assert "no suite 'nope'" in unknown.stderr
    assert "stable" in unknown.stderr
    wrong = ghapt("list", "--url", server.url, "--user", USER, "--password-stdin", input="wrong-password\n")
    assert wrong.returncode == 1
    assert "401" in wrong.stderr
    assert "credentials" in wrong.stderr
    assert "wrong-password" not in wrong.stderr + wrong.stdout
    empty = ghapt("list", "--state", str(tmp_path / "empty-state"))
    assert empty.returncode == 1
    assert "ghapt rebuild" in empty.stderr
    assert not (tmp_path / "empty-state").exists()  # looking does not create a state directory
    no_creds = ghapt("list", "--url", server.url)
    assert no_creds.returncode == 2
    assert "--user" in no_creds.stderr
    no_state = ghapt("list")
    assert no_state.returncode == 2
    assert "GHAPT_STATE_DIR" in no_state.stderr
