"""GitHubBranchStore against the fake GitHub: atomic commits through the Git Data API, the
fast-forward-only ref update, and reads that work for big files and big trees."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from ghapt.core.errors import StaleHead, UpstreamError
from ghapt.core.layout import UnsafePath, git_blob_id
from ghapt.core.ports import MetadataStore
from ghapt.github.auth import TokenAuth
from ghapt.github.client import GitHubClient
from ghapt.github.store import GitHubBranchStore

from tests.support.fakegithub import FakeGitHub

REPO = "acme/apt-meta"
BRANCH = "apt-metadata"
T0 = 1_700_000_000


@pytest.fixture
def gh_clock() -> Callable[[], float]:
    return lambda: T0


@pytest.fixture
def gh_repos() -> tuple[str, ...]:
    return (REPO,)


@pytest.fixture
def store(gh: FakeGitHub) -> GitHubBranchStore:
    client = GitHubClient(gh.api_url, TokenAuth(gh.token), sleep=lambda s: None)
    return GitHubBranchStore(client, REPO, BRANCH, clock=lambda: T0)


def git(*args: str, cwd: Path, input: bytes | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    out = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True, env=env)
    return out.stdout.decode()


def test_is_a_metadata_store(store: GitHubBranchStore) -> None:
    assert isinstance(store, MetadataStore)


def test_first_commit_creates_the_branch(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    assert store.head() is None

    sha = store.commit_files(None, {"dists/stable/Release": b"r1\n", "README": b"hi\n"}, "first")

    assert store.head() == sha == gh.branch_head(REPO, BRANCH)
    assert gh.branch_files(REPO, BRANCH) == {"dists/stable/Release": b"r1\n", "README": b"hi\n"}
    info = gh.commit_info(REPO, sha)
    assert info["parents"] == []
    assert info["message"] == "first"
    (create,) = gh.calls("POST", r"/git/refs$")
    assert create.json() == {"ref": f"refs/heads/{BRANCH}", "sha": sha}
    assert "base_tree" not in gh.calls("POST", "/git/trees")[0].json()
    assert gh.calls("PATCH") == []


def test_commit_is_one_atomic_commit_with_exactly_the_expected_tree(
    gh: FakeGitHub, store: GitHubBranchStore, tmp_path: Path
) -> None:
    base = store.commit_files(None, {"a/one": b"1\n", "a/two": b"2\n", "b/keep": b"keep\n"}, "base")
    gh.clear_log()

    # "a-b" < "a/" < "a0": git sorts the directory "a" as if it were named "a/".
    files = {
        "a/one": b"1 changed\n",
        "a/three": b"3\n",
        "c/d/e/deep": b"deep\n" * 1000,
        "a-b": b"-",
        "a0": b"0",
    }
    sha = store.commit_files(base, files, "second")

    expected = {
        "a/one": b"1 changed\n",
        "a/two": b"2\n",
        "a/three": b"3\n",
        "b/keep": b"keep\n",
        "c/d/e/deep": b"deep\n" * 1000,
        "a-b": b"-",
        "a0": b"0",
    }
    assert gh.branch_files(REPO, BRANCH) == expected
    assert gh.commit_info(REPO, sha)["parents"] == [
        {"sha": base, "url": gh.commit_info(REPO, sha)["parents"][0]["url"]}
    ]
    assert len(gh.calls("POST", "/git/commits")) == 1
    (patch,) = gh.calls("PATCH")
    assert patch.path == f"/repos/{REPO}/git/refs/heads/{BRANCH}"
    assert patch.json() == {"sha": sha, "force": False}
    assert store.list_files(sha) == {p: git_blob_id(d) for p, d in expected.items()}

    # Cross-check with the real git: the objects GitHub built are valid and hashed the git way.
    bare = tmp_path / "check.git"
    git("init", "--bare", "--quiet", str(bare), cwd=tmp_path)
    gh.export_git(REPO, bare)
    git("fsck", "--strict", "--no-dangling", cwd=bare)
    listed = {}
    for line in git("ls-tree", "-r", sha, cwd=bare).splitlines():
        meta, path = line.split("\t")
        listed[path] = meta.split()[2]
    for path, data in expected.items():
        assert listed[path] == git("hash-object", "--stdin", cwd=tmp_path, input=data).strip()
    assert git("rev-list", f"refs/heads/{BRANCH}", cwd=bare).split() == [sha, base]


def test_deletes_paths(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    base = store.commit_files(None, {"x/1": b"1", "x/2": b"2", "y": b"y"}, "base")
    sha = store.commit_files(base, {"x/1": None, "y": None, "never/existed": None}, "delete")
    assert gh.branch_files(REPO, BRANCH) == {"x/2": b"2"}
    deletes = gh.calls("POST", "/git/trees")[-1].json()["tree"]
    assert {e["path"] for e in deletes} == {"x/1", "y"}
    assert all(e["sha"] is None for e in deletes)
    assert store.read_file(sha, "y") is None


def test_unchanged_blobs_are_not_uploaded_again(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    base = store.commit_files(None, {"a": b"same", "b": b"old"}, "base")
    assert len(gh.calls("POST", "/git/blobs")) == 2
    gh.clear_log()

    # "a" unchanged; "b" changes; "copy" reuses a blob already in the base tree.
    store.commit_files(base, {"a": b"same", "b": b"new", "copy": b"same"}, "second")

    uploads = gh.calls("POST", "/git/blobs")
    assert len(uploads) == 1
    tree_paths = sorted(e["path"] for e in gh.calls("POST", "/git/trees")[0].json()["tree"])
    assert tree_paths == ["b", "copy"]
    assert gh.read_branch_file(REPO, BRANCH, "copy") == b"same"


def test_lost_race_raises_stale_head_and_keeps_the_winner(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    base = store.commit_files(None, {"Release": b"v1"}, "base")
    winner: list[str] = []
    gh.before_next(
        r"/git/refs/heads/",
        lambda: winner.append(gh.commit_to_branch(REPO, BRANCH, {"Release": b"other writer"})),
        method="PATCH",
    )

    with pytest.raises(StaleHead):
        store.commit_files(base, {"Release": b"mine"}, "loser")

    assert gh.branch_head(REPO, BRANCH) == winner[0]
    assert gh.read_branch_file(REPO, BRANCH, "Release") == b"other writer"
    assert gh.calls("PATCH")[-1].status == 422
    assert store.head() == winner[0]


def test_lost_race_to_create_the_branch_raises_stale_head(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    winner: list[str] = []
    gh.before_next(
        r"/git/refs$",
        lambda: winner.append(gh.commit_to_branch(REPO, BRANCH, {"x": b"theirs"})),
        method="POST",
    )
    with pytest.raises(StaleHead):
        store.commit_files(None, {"x": b"mine"}, "first")
    assert gh.branch_head(REPO, BRANCH) == winner[0]
    assert gh.read_branch_file(REPO, BRANCH, "x") == b"theirs"


def test_ref_update_whose_answer_was_lost_is_not_a_false_stale_head(
    gh: FakeGitHub, store: GitHubBranchStore
) -> None:
    gh.fail_next(r"/git/refs$", method="POST", kind="lost_reply")
    sha = store.commit_files(None, {"x": b"1"}, "first")
    assert gh.branch_head(REPO, BRANCH) == sha
    assert [c.status for c in gh.calls("POST", r"/git/refs$")] == [502, 422]

    gh.fail_next(r"/git/refs/heads/", method="PATCH", kind="lost_reply")
    second = store.commit_files(sha, {"x": b"2"}, "second")
    assert gh.branch_head(REPO, BRANCH) == second
    assert [c.status for c in gh.calls("PATCH")] == [502, 200]


@pytest.mark.parametrize("step", ["/git/blobs", "/git/trees", "/git/commits"])
def test_failure_before_the_ref_update_leaves_the_branch_alone(
    gh: FakeGitHub, store: GitHubBranchStore, step: str
) -> None:
    base = store.commit_files(None, {"Release": b"v1"}, "base")
    gh.fail_next(step, status=500, count=10, method="POST")

    with pytest.raises(UpstreamError):
        store.commit_files(base, {"Release": b"v2"}, "second")

    assert gh.branch_head(REPO, BRANCH) == base
    assert gh.read_branch_file(REPO, BRANCH, "Release") == b"v1"
    assert gh.calls("PATCH") == []


def test_reads_files_over_one_megabyte(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    big = os.urandom(3 * 1024 * 1024 + 7)
    sha = store.commit_files(None, {"dists/stable/main/binary-amd64/Packages": big, "small": b"s"}, "big")

    assert store.read_file(sha, "dists/stable/main/binary-amd64/Packages") == big
    assert store.read_file(sha, "small") == b"s"
    assert store.read_file(sha, "missing") is None
    raw = store.client.get_json(f"repos/{REPO}/git/blobs/{git_blob_id(b's' * 100)}", allow_404=True)
    assert raw is None
    blob = store.client.get_json(f"repos/{REPO}/git/blobs/{git_blob_id(big)}")
    assert blob["content"].count("\n") > 1000  # GitHub-style base64 with newlines was decoded


def test_list_files_walks_a_truncated_tree(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    files = {f"pool/{d}/f{i}.txt": f"{d}{i}".encode() for d in ("a", "b", "c") for i in range(30)}
    files["top"] = b"top"
    sha = store.commit_files(None, files, "many")
    gh.tree_entry_limit = 50
    fresh = GitHubBranchStore(store.client, REPO, BRANCH)
    gh.clear_log()

    listed = fresh.list_files(sha)

    assert listed == {p: git_blob_id(d) for p, d in files.items()}
    trees = gh.calls("GET", "/git/trees/")
    assert any("recursive" not in c.query for c in trees)  # fell back to walking level by level
    assert fresh.read_file(sha, "pool/b/f29.txt") == b"b29"


def test_commit_time_and_conditional_head(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    sha = store.commit_files(None, {"x": b"1"}, "first")
    assert store.commit_time(sha) == T0
    gh.clear_log()
    assert store.head() == sha
    assert store.head() == sha
    assert [c.status for c in gh.calls("GET")] == [200, 304]


def test_commits_carry_strictly_increasing_dates(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    first = store.commit_files(None, {"x": b"1"}, "first")
    second = store.commit_files(first, {"x": b"2"}, "second")
    assert store.commit_time(second) == T0 + 1, "same clock second: bumped past the parent"
    sent = [c.json() for c in gh.calls("POST") if c.path.endswith("/git/commits")]
    assert [s["committer"]["date"] for s in sent] == ["2023-11-14T22:13:20Z", "2023-11-14T22:13:21Z"]


def test_unsafe_paths_are_refused_before_any_call(gh: FakeGitHub, store: GitHubBranchStore) -> None:
    for bad in ("../x", "/abs", "a//b", "a/./b", ".git/config", ""):
        with pytest.raises(UnsafePath):
            store.commit_files(None, {bad: b"x"}, "bad")
    assert gh.requests_log == []
