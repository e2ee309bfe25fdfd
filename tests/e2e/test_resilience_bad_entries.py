"""One odd file never stops publishing (issue 10, item 6): the real CLI over real files.

Each odd entry is skipped with a reason that names it; everything else is published; neither
``ghapt rebuild`` nor ``ghapt serve`` prints a traceback or refuses to start."""

from __future__ import annotations

import os
from pathlib import Path

import requests

from tests.support.debbuild import build_deb
from tests.support.ghaptcli import background, eventually, free_port, run, wait_for_server

NON_UTF8 = b"caf\xe9_1.0-1_all.deb"


def odd_folder(tmp_path: Path) -> Path:
    """A releases folder with two good packages and one of every odd entry."""
    rel = tmp_path / "rel"
    build_deb(rel / "v1", "good", "1.0-1", "all")
    build_deb(rel / "v1", "evil", "1.0-1", "all", extra={"Source": "../../etc"}, filename="evil.deb")
    linked = build_deb(rel / "v0", "linked", "1.0-1", "all")
    (rel / "v2").mkdir()
    os.symlink(os.path.relpath(linked, rel / "v2"), rel / "v2" / "inside.deb")  # followed
    outside = build_deb(tmp_path / "elsewhere", "secret", "1.0-1", "all")
    os.symlink(outside, rel / "v2" / "outside.deb")
    os.symlink(tmp_path / "nothing-here.deb", rel / "v2" / "dangling.deb")
    (rel / "v2" / "folder.deb").mkdir()
    os.mkfifo(rel / "v2" / "pipe.deb")
    weird = build_deb(tmp_path / "weird", "weird", "1.0-1", "all")
    os.rename(weird, os.path.join(os.fsencode(rel / "v2"), NON_UTF8))
    # A release folder that is itself a symlink out of the releases folder: its plain files lead out too.
    build_deb(tmp_path / "elsewhere-release", "escaped", "1.0-1", "all", filename="escaped.deb")
    os.symlink(tmp_path / "elsewhere-release", rel / "v4")
    return rel


def packages_of(state: Path) -> str:
    import subprocess

    git = ["git", "--git-dir", str(state / "metadata.git")]
    return subprocess.run(
        [*git, "show", "apt-metadata:dists/stable/main/binary-amd64/Packages"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_rebuild_skips_every_odd_entry_with_a_reason_and_publishes_the_rest(tmp_path: Path) -> None:
    rel, state = odd_folder(tmp_path), tmp_path / "st"
    res = run("rebuild", "--releases", str(rel), "--state", str(state))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Traceback" not in out
    # linked.deb and the symlink inside the folder to it are one package.
    assert "2 indexed" in res.stdout and "7 skipped" in res.stdout, res.stdout
    expected = {
        "v1/evil.deb": "Source '../../etc' is missing or not a valid name",
        "v2/outside.deb": "outside the releases folder",
        "v4/escaped.deb": "outside the releases folder",
        "v2/dangling.deb": "which does not exist",
        "v2/folder.deb": "a directory, not a .deb file",
        "v2/pipe.deb": "a FIFO, not a .deb file",
        "v2/caf\\xe9_1.0-1_all.deb": "not valid UTF-8",
    }
    for name, reason in expected.items():
        line = next((ln for ln in res.stdout.splitlines() if f"local:{name}" in ln), "")
        assert reason in line, f"{name}: {reason!r} not in the summary:\n{res.stdout}"
    # The warning on stderr names the file and the reason too (for the entries read this time).
    assert "skipping local:v1/evil.deb: Source '../../etc'" in res.stderr, res.stderr
    packages = packages_of(state)
    assert "Package: good" in packages
    assert "Package: linked" in packages
    assert "secret" not in packages
    assert "escaped" not in packages
    assert "weird" not in packages
    assert "evil" not in packages
    again = run("rebuild", "--releases", str(rel), "--state", str(state))
    assert again.returncode == 0 and "unchanged: no commit" in again.stdout, again.stdout + again.stderr


def test_serve_starts_with_odd_entries_and_keeps_publishing(tmp_path: Path) -> None:
    rel, state = odd_folder(tmp_path), tmp_path / "st"
    assert (
        run("users", "add", "u", "--state", str(state), "--password-stdin", input="pw-123456\n").returncode
        == 0
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    packages = f"{url}/dists/stable/main/binary-amd64/Packages"
    with background(
        "serve", "--releases", str(rel), "--state", str(state), "--port", str(port),
        env={"GHAPT_POLL_SECONDS": "0.05"},
    ) as proc:  # fmt: skip
        wait_for_server(f"{url}/public.key", proc)
        assert "Package: good" in requests.get(packages, auth=("u", "pw-123456"), timeout=10).text
        # A new odd entry and a new good package later: the watcher is alive and publishes.
        os.mkfifo(rel / "v1" / "later-pipe.deb")
        build_deb(rel / "v3", "newer", "2.0-1", "all")
        eventually(
            lambda: "Package: newer" in requests.get(packages, auth=("u", "pw-123456"), timeout=10).text,
            "the new package is published",
        )
    output = proc.stdout.read() if proc.stdout else ""
    assert "Traceback" not in output, output


def test_unexpected_errors_are_one_line_and_exit_non_zero(tmp_path: Path) -> None:
    """Not a GhaptError (here: the state directory is a file): one line, exit 1, no traceback."""
    build_deb(tmp_path / "rel" / "v1", "good", "1.0-1", "all")
    (tmp_path / "state-file").write_text("not a folder\n")
    res = run("rebuild", "--releases", str(tmp_path / "rel"), "--state", str(tmp_path / "state-file"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("ghapt: ") and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "state-file" in res.stderr
