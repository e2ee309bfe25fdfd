"""The ghapt console script, run for real in subprocesses."""

from __future__ import annotations

import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support.aptclient import AptClient
from tests.support.cli import background, free_port, run, wait_for
from tests.support.debbuild import build_deb


@pytest.mark.parametrize("args", [[], ["rebuild"], ["serve"], ["users"], ["users", "add"], ["demo"]])
def test_help_for_every_command(args: list[str]) -> None:
    res = run(*args, "--help")
    assert res.returncode == 0, res.stderr
    assert "usage: ghapt" in res.stdout


def test_rebuild_prints_a_summary_and_makes_no_commit_when_nothing_changed(
    tmp_path: Path, seed_signing_key: Callable[[Path], Path]
) -> None:
    seed_signing_key(tmp_path / "st")
    build_deb(tmp_path / "rel" / "v1", "tool", "1.0-1", "amd64")
    (tmp_path / "rel" / "v2").mkdir()
    (tmp_path / "rel" / "v2" / "bad.deb").write_bytes(b"garbage")
    first = run("rebuild", "--releases", str(tmp_path / "rel"), "--state", str(tmp_path / "st"))
    assert first.returncode == 0, first.stderr
    assert "1 indexed, 1 added, 0 removed, 1 skipped" in first.stdout
    assert "bad.deb" in first.stdout
    assert "not an ar archive" in first.stdout
    assert "commit: " in first.stdout
    # The same settings through the environment instead of flags.
    env = {"GHAPT_RELEASES_DIR": str(tmp_path / "rel"), "GHAPT_STATE_DIR": str(tmp_path / "st")}
    second = run("rebuild", env=env)
    assert second.returncode == 0
    assert "unchanged: no commit" in second.stdout
    dry = run("rebuild", "--dry-run", "--suite", "testing", env=env)
    assert dry.returncode == 0
    assert "nothing was committed" in dry.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["rebuild"], "GHAPT_STATE_DIR"),
        (["rebuild", "--state", "/tmp/x"], "GHAPT_RELEASES_DIR"),
        (["rebuild", "--architectures", "all"], "GHAPT_ARCHITECTURES"),
        (["rebuild", "--github-repo", "nope"], "OWNER/NAME"),
        (["users", "list"], "--state"),
    ],
)
def test_configuration_errors_name_the_setting_and_exit_2(args: list[str], needle: str) -> None:
    res = run(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def test_users_add_list_remove(tmp_path: Path) -> None:
    state = str(tmp_path / "st")
    res = run("users", "add", "alice", "--state", state, "--password-stdin", input="pa55word\n")
    assert res.returncode == 0, res.stderr
    assert "pa55word" not in res.stdout
    users = tmp_path / "st" / "users.json"
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert "pa55word" not in users.read_text()
    assert "scrypt$" in users.read_text()
    gen = run("users", "add", "bob", "--state", state, "--generate")
    assert gen.returncode == 0
    assert "password: " in gen.stdout
    assert run("users", "list", "--state", state).stdout.split() == ["alice", "bob"]
    assert run("users", "remove", "alice", "--state", state).returncode == 0
    assert run("users", "list", "--state", state).stdout.split() == ["bob"]
    missing = run("users", "remove", "alice", "--state", state)
    assert missing.returncode == 1
    assert "no such user" in missing.stderr


def test_serve_rebuilds_when_the_folder_changes(
    tmp_path: Path, seed_signing_key: Callable[[Path], Path]
) -> None:
    rel, state = tmp_path / "rel", seed_signing_key(tmp_path / "st")
    build_deb(rel / "v1", "tool", "1.0-1", "amd64")
    assert (
        run("users", "add", "u", "--state", str(state), "--password-stdin", input="pw-123456\n").returncode
        == 0
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"GHAPT_POLL_SECONDS": "0.2"}
    with background(
        "serve", "--releases", str(rel), "--state", str(state), "--port", str(port), env=env
    ) as proc:
        wait_for(f"{url}/public.key", proc)
        packages = f"{url}/dists/stable/main/binary-amd64/Packages"
        assert "Version: 1.0-1" in requests.get(packages, auth=("u", "pw-123456"), timeout=10).text
        build_deb(rel / "v2", "tool", "2.0-1", "amd64")
        for _ in range(100):
            text = requests.get(packages, auth=("u", "pw-123456"), timeout=10).text
            if "Version: 2.0-1" in text:
                break
            time.sleep(0.1)
        assert "Version: 2.0-1" in text
        assert "Version: 1.0-1" in text


@pytest.mark.apt
def test_demo_prints_a_client_config_that_real_apt_can_use(
    tmp_path: Path, seed_signing_key: Callable[[Path], Path]
) -> None:
    seed_signing_key(tmp_path / "demo" / "state")
    port = free_port()
    with background("demo", "--dir", str(tmp_path / "demo"), "--port", str(port)) as proc:
        wait_for(f"http://127.0.0.1:{port}/public.key", proc)
        client = tmp_path / "demo" / "client"
        auth = (client / "ghapt.conf").read_text()
        assert auth.startswith(f"machine http://127.0.0.1:{port} login demo password ")
        assert stat.S_IMODE((client / "ghapt.conf").stat().st_mode) == 0o600
        apt = AptClient(tmp_path / "apt")
        apt.add_source(f"http://127.0.0.1:{port}", "stable", client / "ghapt.asc")
        apt.set_auth(auth)
        res = apt.run("update")
        assert res.returncode == 0, res.output
        res = apt.run("download", "hello-ghapt=1.1.0-1")
        assert res.returncode == 0, res.output
        deb = next((apt.root / "downloads").glob("hello-ghapt_1.1.0-1_all.deb"))
        info = subprocess.run(
            ["dpkg-deb", "--field", str(deb), "Package", "Version"], capture_output=True, text=True
        )
        assert info.stdout.split() == ["Package:", "hello-ghapt", "Version:", "1.1.0-1"]
        contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True).stdout
        assert "./usr/bin/hello-ghapt" in contents
