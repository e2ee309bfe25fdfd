"""The ``ghapt`` console script leaves a finished rebuild without the interpreter's teardown:
nothing it printed or committed may be lost, and its exit status stays ``main``'s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.debbuild import build_deb

SCRIPT = Path(sys.executable).parent / "ghapt"

pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="needs the installed ghapt console script")


def _rebuild(releases: Path, state: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(SCRIPT),
        "rebuild",
        "--releases",
        str(releases),
        "--state",
        str(state),
        "--architectures",
        "amd64",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)


def test_a_rebuild_through_the_script_prints_its_whole_summary_into_a_pipe_and_commits(
    tmp_path: Path,
) -> None:
    releases = tmp_path / "releases"
    for i in range(3):
        build_deb(releases / f"v{i}", f"exit-{i}", "1.0-1", "amd64")
    done = _rebuild(releases, tmp_path / "state")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()  # a pipe is block-buffered: all of it was flushed before the exit
    assert lines[-1].startswith("commit: ")
    assert any(line.startswith("assets: 3 read") for line in lines)
    head = subprocess.run(
        ["git", "--git-dir", str(tmp_path / "state" / "metadata.git"), "rev-parse", "apt-metadata"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert lines[-1] == f"commit: {head}"


def test_a_failed_rebuild_through_the_script_keeps_its_status_and_message(tmp_path: Path) -> None:
    done = _rebuild(tmp_path / "no-such-folder", tmp_path / "state")
    assert done.returncode == 2
    assert done.stderr.startswith("ghapt: configuration error:")
    assert "no-such-folder" in done.stderr


def test_other_commands_exit_normally_through_the_script() -> None:
    done = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("ghapt ")
