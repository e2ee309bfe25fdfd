"""The local git store writes git's objects itself: git must read them, agree on every id, and
still be asked when the objects are packed. Real git is the oracle throughout."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ghapt.core.errors import GhaptError, StaleHead
from ghapt.core.layout import git_blob_id
from ghapt.local.gitstore import LocalGitStore

BRANCH = "apt-metadata"
ROOT = Path(__file__).resolve().parents[2]


def _h(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


BYHASH = "dists/stable/main/binary-amd64/by-hash/SHA256"
BASE: dict[str, bytes] = {
    "dists/stable/Release": b"Suite: stable\n",
    "dists/stable/InRelease": b"signed\n",
    "dists/stable/main/binary-amd64/Packages": b"Package: tool\n",
    # Compressed content is stored as it is (zlib level 0), the rest deflated: git reads both.
    "dists/stable/main/binary-amd64/Packages.gz": b"\x1f\x8b gz",
    "dists/stable/main/binary-amd64/Packages.xz": b"\xfd7zXZ\x00 xz",
    # Names around a directory's: git sorts a subtree as if its name ended in "/".
    "dists/stable/main/binary-amd64.txt": b"dot sorts before slash\n",
    "dists/stable/main/binary-amd64-x/f": b"dash sorts before slash\n",
    "dists/stable/main/binary-amd640": b"0 sorts after slash\n",
    f"{BYHASH}/{_h('1')}": b"old packages 1\n",
    f"{BYHASH}/{_h('2')}": b"old packages 2\n",
    "dists/stable/main/binary-arm64/Packages": b"Package: tool-arm\n",
    f"dists/stable/main/binary-arm64/by-hash/SHA256/{_h('3')}": b"arm\n",
    "dists/testing/main/binary-amd64/Packages": b"Package: tool-testing\n",
    "ghapt/assets.json": b"{}\n",
    "ghapt/generations.json": b"{}\n",
    "index.html": b"<html></html>\n",
    "empty": b"",
}
CHANGES: dict[str, bytes | None] = {
    "dists/stable/main/binary-amd64/Packages": b"Package: tool\nVersion: 2\n",
    f"{BYHASH}/{_h('1')}": None,
    f"{BYHASH}/{_h('4')}": b"new packages\n",
    # Every file of binary-arm64 goes: the directory must go with them.
    "dists/stable/main/binary-arm64/Packages": None,
    f"dists/stable/main/binary-arm64/by-hash/SHA256/{_h('3')}": None,
    f"dists/unstable/main/binary-all/by-hash/SHA256/{_h('5')}": b"deep and new\n",
    "ghapt/assets.json": b"{}\n",  # unchanged bytes
    "not/there": None,
    "dists/stable/main/binary-amd64.txt": b"changed\n",
}


def _git(repo: Path, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> bytes:
    proc = subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        input=input,
        capture_output=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def _apply(files: Mapping[str, bytes], changes: Mapping[str, bytes | None]) -> dict[str, bytes]:
    out = dict(files)
    for path, data in changes.items():
        if data is None:
            out.pop(path, None)
        else:
            out[path] = data
    return out


def _git_tree(repo: Path, files: Mapping[str, bytes], tmp: Path) -> str:
    """The tree git's own plumbing makes for ``files`` (hash-object, update-index, write-tree)."""
    tmp.mkdir(parents=True, exist_ok=True)
    staged = []
    for i, data in enumerate(files.values()):
        staged.append(tmp / f"blob-{i}")
        staged[-1].write_bytes(data)
    ids = _git(repo, "hash-object", "-w", "--stdin-paths", input="\n".join(map(str, staged)).encode() + b"\n")
    lines = [f"100644 {oid}\t{path}" for oid, path in zip(ids.decode().split(), files, strict=True)]
    env = {"GIT_INDEX_FILE": str(tmp / "index")}
    _git(
        repo, "update-index", "--add", "-z", "--index-info", input="\0".join(lines).encode() + b"\0", env=env
    )
    return _git(repo, "write-tree", env=env).decode().strip()


def _loose(repo: Path) -> set[str]:
    return {
        p.parent.name + p.name
        for p in (repo / "objects").glob("??/*")
        if len(p.parent.name) == 2 and not p.name.startswith("tmp_")
    }


def _files_of(store: LocalGitStore, commit: str) -> dict[str, bytes]:
    return {path: store.read_file(commit, path) or b"" for path in store.list_files(commit)}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "metadata.git"


def test_objects_written_in_python_are_what_git_writes_and_reads(repo: Path, tmp_path: Path) -> None:
    store = LocalGitStore(repo, BRANCH)
    base = store.commit_files(None, BASE, "ghapt: base\n")
    commit = store.commit_files(base, CHANGES, "ghapt: änderung\n\nbody\n")
    want = _apply(BASE, CHANGES)

    fsck = subprocess.run(["git", "--git-dir", str(repo), "fsck", "--strict", "--full"], capture_output=True)
    assert fsck.returncode == 0, fsck.stderr.decode()
    assert fsck.stderr == b"", "fsck has no complaint at all"
    # Identical ids to git's plumbing: the same trees (sorted, no empty directories) ...
    assert _git(repo, "rev-parse", f"{base}^{{tree}}").decode().strip() == _git_tree(
        repo, BASE, tmp_path / "b"
    )
    tree = _git(repo, "rev-parse", f"{commit}^{{tree}}").decode().strip()
    assert tree == _git_tree(repo, want, tmp_path / "c")
    # ... and the same commit as git commit-tree with the same tree, parent, time and message.
    when = store.commit_time(commit)
    ident = {"GIT_AUTHOR_NAME": "ghapt", "GIT_AUTHOR_EMAIL": "ghapt@localhost"}
    ident |= {"GIT_COMMITTER_NAME": "ghapt", "GIT_COMMITTER_EMAIL": "ghapt@localhost"}
    ident |= {"GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"}
    again = _git(repo, "commit-tree", tree, "-p", base, input="ghapt: änderung\n\nbody\n".encode(), env=ident)
    assert again.decode().strip() == commit
    assert _git(repo, "log", "--format=%H %s", BRANCH).decode().splitlines() == [
        f"{commit} ghapt: änderung",
        f"{base} ghapt: base",
    ]
    for path, data in want.items():
        assert _git(repo, "cat-file", "-p", f"{commit}:{path}") == data
    assert (
        "dists/stable/main/binary-arm64"
        not in _git(repo, "ls-tree", "-r", "-t", "--name-only", commit).decode()
    )

    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "-b", BRANCH, str(repo), str(clone)], check=True, capture_output=True
    )
    checked_out = {
        str(p.relative_to(clone)): p.read_bytes()
        for p in clone.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(clone).parts
    }
    assert checked_out == want


def test_a_commit_writes_only_the_objects_it_adds(repo: Path) -> None:
    store = LocalGitStore(repo, BRANCH)
    base = store.commit_files(None, BASE, "base")
    before = _loose(repo)
    commit = store.commit_files(base, CHANGES, "change")
    listed = _git(repo, "rev-list", "--objects", commit, f"^{base}").decode().splitlines()
    added = {line.split()[0] for line in listed}
    assert _loose(repo) - before == added, "unchanged subtrees are reused, never rewritten"
    for untouched in ("dists/testing", "ghapt", "dists/stable/main/binary-amd64-x"):
        assert _git(repo, "rev-parse", f"{commit}:{untouched}") == _git(
            repo, "rev-parse", f"{base}:{untouched}"
        )
    assert not list((repo / "objects").glob("??/tmp_*")), "no temporary files are left behind"
    for name in before | added:
        mode = (repo / "objects" / name[:2] / name[2:]).stat().st_mode
        assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), "objects are read-only, as git's"


def test_an_incremental_rebuild_starts_no_git_process(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalGitStore(repo, BRANCH)
    store.commit_files(None, BASE, "base")
    started: list[list[str]] = []
    real_popen = subprocess.Popen

    class CountingPopen(real_popen):  # type: ignore[valid-type,misc]
        def __init__(self, args: list[str], *rest: Any, **kwargs: Any) -> None:
            started.append(list(args))
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", CountingPopen)
    reader = LocalGitStore(repo, BRANCH)  # what a new `ghapt rebuild` process does, cold
    head = reader.head()
    assert head is not None
    assert set(reader.list_files(head)) == set(BASE)
    assert reader.read_file(head, "ghapt/assets.json") == b"{}\n"
    assert reader.read_file(head, "ghapt/generations.json") == b"{}\n"
    assert reader.read_file(head, "ghapt/missing.json") is None
    reader.commit_time(head)
    commit = reader.commit_files(head, CHANGES, "change")
    assert started == []  # the branch moves by git's own lock-file protocol, from Python
    assert reader.head() == commit
    assert _git(repo, "rev-parse", f"refs/heads/{BRANCH}").decode().strip() == commit
    assert not (repo / "refs" / "heads" / f"{BRANCH}.lock").exists()


def test_a_packed_repository_is_read_and_extended_through_git(repo: Path, tmp_path: Path) -> None:
    store = LocalGitStore(repo, BRANCH)
    base = store.commit_files(None, BASE, "base")
    _git(repo, "gc", "--aggressive", "--prune=now", "--quiet")
    assert not _loose(repo), "everything is packed"
    assert (repo / "packed-refs").exists() and not (repo / "refs/heads" / BRANCH).exists()

    fresh = LocalGitStore(repo, BRANCH)
    assert fresh.head() == base
    assert fresh.list_files(base) == {p: git_blob_id(d) for p, d in BASE.items()}
    assert fresh.file_sizes(base) == {p: len(d) for p, d in BASE.items()}
    assert _files_of(fresh, base) == BASE
    assert fresh.read_blob(git_blob_id(BASE["index.html"])) == BASE["index.html"]
    assert fresh.commit_time(base) > 1_600_000_000

    commit = fresh.commit_files(base, CHANGES, "on a packed base")
    want = _apply(BASE, CHANGES)
    assert fresh.head() == commit
    assert _git(repo, "rev-parse", f"{commit}^{{tree}}").decode().strip() == _git_tree(
        repo, want, tmp_path / "t"
    )
    # The new trees are loose, the subtrees they reuse are packed: a walk meets both.
    assert _files_of(LocalGitStore(repo, BRANCH), commit) == want
    with pytest.raises(StaleHead):
        fresh.commit_files(base, {"f": b"late"}, "stale on a packed ref")
    _git(repo, "repack", "-a", "-d", "-k", "--quiet")
    assert _files_of(LocalGitStore(repo, BRANCH), commit) == want
    fsck = subprocess.run(["git", "--git-dir", str(repo), "fsck", "--strict", "--full"], capture_output=True)
    assert fsck.returncode == 0, fsck.stderr.decode()


def test_git_made_commits_are_read_with_their_own_time(repo: Path) -> None:
    """A commit from elsewhere (another time zone, "committer" in its message) reads right,
    and the next commit still lands a second after it even when its clock is ahead."""
    store = LocalGitStore(repo, BRANCH)
    base = store.commit_files(None, {"f": b"0"}, "base")
    tree = _git(repo, "rev-parse", f"{base}^{{tree}}").decode().strip()
    future = int(time.time()) + 86_400  # a writer whose clock ran a day ahead
    env = {"GIT_AUTHOR_NAME": "Someone", "GIT_AUTHOR_EMAIL": "s@example.invalid", "GIT_COMMITTER_NAME": "C"}
    env |= {
        "GIT_COMMITTER_EMAIL": "c@x",
        "GIT_COMMITTER_DATE": f"@{future} +0530",
        "GIT_AUTHOR_DATE": "1000000000 +0000",
    }
    other = (
        _git(repo, "commit-tree", tree, "-p", base, input=b"committer 5 +0000\n", env=env).decode().strip()
    )
    _git(repo, "update-ref", f"refs/heads/{BRANCH}", other, base)
    assert store.commit_time(other) == int(_git(repo, "show", "-s", "--format=%ct", other))
    commit = store.commit_files(store.head(), {"f": b"1"}, "after")
    assert store.commit_time(commit) == future + 1


def test_writers_racing_from_one_base_leave_exactly_one_winner(repo: Path) -> None:
    store = LocalGitStore(repo, BRANCH)
    base = store.commit_files(None, BASE, "base")
    racers = 6
    start = threading.Barrier(racers)

    def write(i: int) -> str | None:
        mine = LocalGitStore(repo, BRANCH)
        start.wait()
        try:
            return mine.commit_files(
                base, {"dists/stable/Release": b"writer %d\n" % i, f"w/{i}": b"x"}, f"w{i}"
            )
        except StaleHead:
            return None

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(write, range(racers)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert store.head() == winners[0]
    i = results.index(winners[0])
    assert store.read_file(winners[0], "dists/stable/Release") == b"writer %d\n" % i
    assert set(store.list_files(winners[0])) == set(BASE) | {f"w/{i}"}


def test_processes_racing_from_one_base_leave_exactly_one_winner(repo: Path) -> None:
    store = LocalGitStore(repo, BRANCH)
    base = store.commit_files(None, BASE, "base")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ghapt.core.errors import StaleHead\n"
        "from ghapt.local.gitstore import LocalGitStore\n"
        "s = LocalGitStore(Path(sys.argv[1]), 'apt-metadata')\n"
        "sys.stdin.read()\n"  # every process is started and waiting: go
        "try:\n"
        "    print(s.commit_files(sys.argv[2], {'f': sys.argv[3].encode(), 'same': b'x'}, 'p'))\n"
        "except StaleHead:\n"
        "    print('stale')\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(repo), base, str(i)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for i in range(4)
    ]
    outs = [p.communicate(b"go")[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    winners = [o for o in outs if o != "stale"]
    assert len(winners) == 1 and outs.count("stale") == 3
    assert store.head() == winners[0]
    fsck = subprocess.run(["git", "--git-dir", str(repo), "fsck", "--strict"], capture_output=True)
    assert fsck.returncode == 0, fsck.stderr.decode()


def test_readers_see_whole_commits_while_a_writer_commits(repo: Path) -> None:
    store = LocalGitStore(repo, BRANCH)
    pair = ("gen", f"{BYHASH}/gen")  # written together in every commit: never seen apart
    head = store.commit_files(None, {**BASE, pair[0]: b"0", pair[1]: b"0"}, "gen 0")
    done = threading.Event()
    seen: list[bytes | None] = []
    problems: list[str] = []

    def read() -> None:
        reader = LocalGitStore(repo, BRANCH)
        while not done.is_set():
            commit = reader.head()
            assert commit is not None
            files = set(reader.list_files(commit))
            gen, twin = (reader.read_file(commit, path) for path in pair)
            if gen is None or twin != gen or files != set(BASE) | set(pair):
                problems.append(f"{commit}: {gen!r} and {twin!r}, {len(files)} files")
            seen.append(gen)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for gen in range(1, 30):
            data = str(gen).encode()
            head = store.commit_files(head, dict.fromkeys(pair, data), f"gen {gen}")
    finally:
        done.set()
        for t in readers:
            t.join()
    assert not problems
    assert seen, "the readers ran"


def test_a_sha256_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "sha256.git"
    proc = subprocess.run(
        ["git", "init", "--bare", "--quiet", "--object-format=sha256", str(repo)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"this git cannot make SHA-256 repositories: {proc.stderr.decode().strip()}")
    with pytest.raises(GhaptError, match="SHA-1"):
        LocalGitStore(repo, BRANCH)


def test_a_corrupt_loose_object_is_an_error_not_content(repo: Path) -> None:
    store = LocalGitStore(repo, BRANCH)
    commit = store.commit_files(None, {"f": b"data"}, "c")
    blob = git_blob_id(b"data")
    path = repo / "objects" / blob[:2] / blob[2:]
    path.chmod(0o644)
    path.write_bytes(b"not zlib")
    with pytest.raises(GhaptError):
        LocalGitStore(repo, BRANCH).read_file(commit, "f")


def test_a_branch_locked_by_another_writer_is_stale_and_its_lock_is_left_alone(repo: Path) -> None:
    store = LocalGitStore(repo, BRANCH)
    base = store.commit_files(None, BASE, "base")
    lock = repo / "refs" / "heads" / f"{BRANCH}.lock"
    lock.write_text("another writer\n")  # what git holds while it moves the branch
    with pytest.raises(StaleHead):
        store.commit_files(base, CHANGES, "blocked")
    assert lock.read_text() == "another writer\n"
    assert store.head() == base
    lock.unlink()
    assert store.commit_files(base, CHANGES, "free again") == store.head() != base


@pytest.mark.parametrize("setup", ["reflog", "hook"])
def test_a_repository_that_asks_git_for_more_gets_git_to_move_the_branch(
    repo: Path, tmp_path: Path, setup: str
) -> None:
    """A kept reflog and a reference-transaction hook are git's to honour: git moves the branch."""
    store = LocalGitStore(repo, BRANCH)
    base = store.commit_files(None, BASE, "base")
    ran = tmp_path / "hook-ran"
    if setup == "reflog":
        _git(repo, "config", "core.logAllRefUpdates", "always")
    else:
        hook = repo / "hooks" / "reference-transaction"
        hook.write_text(f'#!/bin/sh\necho "$1" >> {ran}\ncat >/dev/null\n')
        hook.chmod(0o755)
    commit = store.commit_files(base, CHANGES, "through git")
    assert _git(repo, "rev-parse", f"refs/heads/{BRANCH}").decode().strip() == commit
    if setup == "reflog":
        log = _git(repo, "reflog", "show", "--format=%H %gs", f"refs/heads/{BRANCH}").decode()
        assert f"{commit} ghapt rebuild" in log
    else:
        assert "committed" in ran.read_text()
    with pytest.raises(StaleHead):
        store.commit_files(base, {"f": b"late"}, "stale through git")
