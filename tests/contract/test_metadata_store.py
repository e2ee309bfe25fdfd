"""The MetadataStore contract, run against every adapter: the local git store, the GitHub store
(through the fake GitHub) and the in-memory store the unit tests use, which this keeps honest."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ghapt.core.errors import GhaptError, StaleHead
from ghapt.core.layout import git_blob_id
from ghapt.core.ports import MetadataStore
from ghapt.github.auth import TokenAuth
from ghapt.github.client import GitHubClient
from ghapt.github.store import GitHubBranchStore
from ghapt.local.gitstore import LocalGitStore

from tests.support.fakegithub import FakeGitHub
from tests.support.memstore import MemoryStore

StoreFactory = Callable[[], MetadataStore]


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    store = MemoryStore()
    yield lambda: store  # one store: every factory call sees the same branch, like the others


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield lambda: LocalGitStore(tmp_path / "meta.git", "apt-metadata")


def _github(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    gh: FakeGitHub = request.getfixturevalue("gh")
    gh.add_repo("acme/apt-meta")
    client = GitHubClient(gh.api_url, TokenAuth(gh.token))
    yield lambda: GitHubBranchStore(client, "acme/apt-meta", "apt-metadata")


@pytest.fixture(params=["memory", "local", "github"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from {"memory": _memory, "local": _local, "github": _github}[request.param](request, tmp_path)


def test_is_a_metadata_store(make_store: StoreFactory) -> None:
    assert isinstance(make_store(), MetadataStore)


def test_a_new_store_has_no_head(make_store: StoreFactory) -> None:
    assert make_store().head() is None


def test_first_commit_creates_the_branch_with_exactly_the_files(make_store: StoreFactory) -> None:
    store = make_store()
    files = {
        "dists/stable/Release": b"Suite: stable\n",
        "ghapt/pool.json": b"{}\n",
        "dists/x/y/z": b"\x00\xff",
    }
    commit = store.commit_files(None, files, "first")
    assert store.head() == commit
    assert store.list_files(commit) == {p: git_blob_id(d) for p, d in files.items()}
    for path, data in files.items():
        assert store.read_file(commit, path) == data
    assert store.read_file(commit, "dists/missing") is None
    assert store.commit_time(commit) > 1_600_000_000


def test_changes_apply_on_top_of_the_base_and_deletions_remove(make_store: StoreFactory) -> None:
    store = make_store()
    first = store.commit_files(None, {"a/1": b"one", "a/2": b"two", "b/3": b"three"}, "first")
    second = store.commit_files(first, {"a/1": b"uno", "a/2": None, "c/4": b"four"}, "second")
    assert set(store.list_files(second)) == {"a/1", "b/3", "c/4"}
    assert store.read_file(second, "a/1") == b"uno"
    assert store.read_file(first, "a/1") == b"one", "old commits stay readable"
    assert store.head() == second


def test_a_stale_base_raises_and_keeps_the_other_writers_commit(make_store: StoreFactory) -> None:
    store = make_store()
    base = store.commit_files(None, {"f": b"0"}, "base")
    winner = store.commit_files(base, {"f": b"winner"}, "winner")
    with pytest.raises(StaleHead):
        store.commit_files(base, {"f": b"loser"}, "loser")
    assert store.head() == winner
    assert store.read_file(winner, "f") == b"winner"


def test_creating_an_existing_branch_is_stale(make_store: StoreFactory) -> None:
    store = make_store()
    first = store.commit_files(None, {"f": b"0"}, "first")
    with pytest.raises(StaleHead):
        store.commit_files(None, {"f": b"1"}, "again")
    assert store.head() == first


def test_commit_times_strictly_increase_along_the_branch(make_store: StoreFactory) -> None:
    # They are served as Last-Modified, and apt revalidates with If-Modified-Since at 1 s resolution.
    store = make_store()
    commit = store.commit_files(None, {"f": b"0"}, "c0")
    times = [store.commit_time(commit)]
    for i in range(1, 4):
        commit = store.commit_files(commit, {"f": str(i).encode()}, f"c{i}")
        times.append(store.commit_time(commit))
    assert times == sorted(set(times))


def test_large_files_round_trip(make_store: StoreFactory) -> None:
    store = make_store()
    big = bytes(range(256)) * 8192  # 2 MiB, over the contents API's 1 MB limit
    commit = store.commit_files(None, {"dists/stable/main/binary-amd64/Packages": big}, "big")
    assert store.read_file(commit, "dists/stable/main/binary-amd64/Packages") == big


def test_two_stores_on_one_branch_see_each_others_commits(make_store: StoreFactory) -> None:
    writer, reader = make_store(), make_store()
    commit = writer.commit_files(None, {"f": b"x"}, "first")
    assert reader.head() == commit
    assert reader.read_file(commit, "f") == b"x"


def test_deleting_a_path_that_is_not_there_changes_nothing_else(make_store: StoreFactory) -> None:
    store = make_store()
    first = store.commit_files(None, {"a": b"1", "d/b": b"2"}, "first")
    second = store.commit_files(first, {"missing": None, "d/missing": None}, "second")
    assert store.head() == second
    assert store.list_files(second) == store.list_files(first)


@pytest.mark.parametrize(
    "path", ["", "../x", "/abs", "a//b", "a/./b", "a/../b", ".git/config", "a/.git/b", "a/\0b"]
)
def test_unsafe_paths_are_refused_and_nothing_is_written(make_store: StoreFactory, path: str) -> None:
    store = make_store()
    with pytest.raises(GhaptError, match="refusing to write"):
        store.commit_files(None, {"fine/path": b"ok", path: b"x"}, "bad")
    assert store.head() is None
    base = store.commit_files(None, {"f": b"0"}, "base")
    with pytest.raises(GhaptError, match="refusing to write"):
        store.commit_files(base, {"f": b"1", path: b"x"}, "bad")
    assert store.head() == base
    assert store.read_file(base, "f") == b"0"


def test_local_store_is_a_real_git_repository(tmp_path: Path) -> None:
    store = LocalGitStore(tmp_path / "meta.git", "apt-metadata")
    commit = store.commit_files(None, {"dists/a": b"x"}, "ghapt: one commit\n")
    out = subprocess.run(
        ["git", "--git-dir", str(tmp_path / "meta.git"), "log", "--format=%H %s", "apt-metadata"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"{commit} ghapt: one commit"
    fsck = subprocess.run(
        ["git", "--git-dir", str(tmp_path / "meta.git"), "fsck", "--strict"], capture_output=True
    )
    assert fsck.returncode == 0, fsck.stderr


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b", "a/./b", ".git/config", "a/\0b"])
def test_local_store_refuses_unsafe_paths(tmp_path: Path, path: str) -> None:
    store = LocalGitStore(tmp_path / "meta.git")
    with pytest.raises(Exception, match="unsafe path"):
        store.commit_files(None, {path: b"x"}, "bad")
    assert store.head() is None
