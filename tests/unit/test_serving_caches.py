"""The serving path's per-blob caches: the branch cache's base64 text, the gateway's decoded
bodies and the local store's head; each bounded, and never serving anything stale."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest
from ghapt.local.gateway import DecodedBodies, request_id
from ghapt.local.gitstore import LocalGitStore
from ghapt.serving import BranchCache, serve_dists

from tests.support.memstore import MemoryStore

INRELEASE = "dists/stable/InRelease"
PACKAGES = "dists/stable/main/binary-amd64/Packages.xz"


class CountingStore(MemoryStore):
    """A memory store that counts the file reads the cache makes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read_file(self, commit: str, path: str) -> bytes | None:
        self.reads += 1
        return super().read_file(commit, path)


def test_a_blob_and_its_base64_are_read_and_encoded_once_and_match() -> None:
    store = CountingStore()
    data = bytes(range(256)) * 40
    store.commit_files(None, {PACKAGES: data}, "index")
    cache = BranchCache(store, ttl=0)
    first = serve_dists(cache, "stable/main/binary-amd64/Packages.xz", {})
    second = serve_dists(cache, "stable/main/binary-amd64/Packages.xz", {})
    assert first.body == second.body == data
    assert first.body_base64 is not None and base64.b64decode(first.body_base64) == data
    assert second.body_base64 is first.body_base64  # the very same text: nothing encoded again
    assert store.reads == 1


def test_a_new_commit_is_served_on_the_next_request() -> None:
    store = MemoryStore()
    base = store.commit_files(None, {INRELEASE: b"old\n"}, "one")
    cache = BranchCache(store, ttl=0)
    old = serve_dists(cache, "stable/InRelease", {})
    store.commit_files(base, {INRELEASE: b"new\n"}, "two")
    new = serve_dists(cache, "stable/InRelease", {})
    assert (old.body, new.body) == (b"old\n", b"new\n")
    assert new.body_base64 == base64.b64encode(b"new\n").decode()
    assert new.headers["ETag"] != old.headers["ETag"]
    assert serve_dists(cache, "stable/InRelease", {"If-None-Match": old.headers["ETag"]}).status == 200
    assert serve_dists(cache, "stable/InRelease", {"If-None-Match": new.headers["ETag"]}).status == 304


def test_the_branch_cache_keeps_bytes_and_base64_within_its_bound() -> None:
    store = CountingStore()
    files = {f"dists/stable/f{i}": bytes([i]) * 3000 for i in range(10)}
    store.commit_files(None, files, "index")
    cache = BranchCache(store, ttl=0, max_bytes=20_000)  # room for about two files and their text
    for _ in range(2):
        for i in range(10):
            reply = serve_dists(cache, f"stable/f{i}", {})
            assert reply.body == files[f"dists/stable/f{i}"]
            assert reply.body_base64 == base64.b64encode(reply.body).decode()
            assert cache.cached_bytes <= 20_000
    assert store.reads == 20  # the least recently used went out: every round read again
    reads = store.reads
    serve_dists(cache, "stable/f9", {})  # the most recent stayed
    assert store.reads == reads


def test_decoded_bodies_are_right_bounded_and_only_kept_when_large() -> None:
    bodies = DecodedBodies(max_bytes=40_000, min_text=100)
    texts = [base64.b64encode(bytes([i]) * 3000).decode() for i in range(20)]
    for text in texts * 2:
        assert bodies.decode(text) == base64.b64decode(text)
        assert bodies.cached_bytes <= 40_000
    assert bodies.cached_bytes > 0
    small = base64.b64encode(b"tiny").decode()
    before = bodies.cached_bytes
    assert bodies.decode(small) == b"tiny"
    assert bodies.cached_bytes == before


def test_an_equal_text_from_elsewhere_decodes_to_the_same_bytes() -> None:
    bodies = DecodedBodies(min_text=10)
    text = base64.b64encode(b"x" * 1000).decode()
    assert bodies.decode(text) == b"x" * 1000
    assert bodies.decode("".join(list(text))) == b"x" * 1000  # another object, same content
    other = base64.b64encode(b"y" * 1000).decode()
    assert bodies.decode(other) == b"y" * 1000


# --- the local store's head ------------------------------------------------------------------
def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def no_git(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Record (and refuse) every git process the store would start."""
    calls: list[tuple[str, ...]] = []

    def refuse(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        calls.append(tuple(cmd))
        raise AssertionError(f"git process started: {cmd}")

    monkeypatch.setattr(subprocess, "run", refuse)
    return calls


def test_head_is_read_without_a_git_process_loose_or_packed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "meta.git"
    store = LocalGitStore(repo)
    first = store.commit_files(None, {"f": b"1"}, "one")
    second = store.commit_files(first, {"f": b"2"}, "two")
    started: list[object] = []
    real_run = subprocess.run

    def counting(*args: object, **kwargs: object) -> object:
        started.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", counting)
    reader = LocalGitStore(repo)
    assert [reader.head() for _ in range(5)] == [second] * 5
    assert started == []

    monkeypatch.setattr(subprocess, "run", real_run)
    _git(repo, "pack-refs", "--all", "--prune")  # the loose ref is gone: only packed-refs has it
    assert not (repo / "refs" / "heads" / "apt-metadata").exists()
    monkeypatch.setattr(subprocess, "run", counting)
    assert [reader.head() for _ in range(5)] == [second] * 5
    assert started == []

    monkeypatch.setattr(subprocess, "run", real_run)
    third = store.commit_files(second, {"f": b"3"}, "three")  # a loose ref again, over the packed one
    monkeypatch.setattr(subprocess, "run", counting)
    assert reader.head() == third
    assert started == []


def test_a_store_without_the_branch_has_no_head_without_a_git_process(
    tmp_path: Path, no_git: list[tuple[str, ...]]
) -> None:
    repo = tmp_path / "meta.git"
    repo.mkdir()
    (repo / "HEAD").write_text("ref: refs/heads/apt-metadata\n")  # an empty repository
    (repo / "packed-refs").write_text(
        "# pack-refs with: peeled fully-peeled sorted\n" + "a" * 40 + " refs/heads/other\n"
    )
    assert LocalGitStore(repo).head() is None
    assert no_git == []


def test_request_ids_are_unique_uuid_shaped_and_drawn_anew_in_a_forked_child() -> None:
    ids = [request_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    shape = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert all(shape.fullmatch(i) for i in ids)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id, then out at once
        os.write(write_end, request_id().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert shape.fullmatch(child)
    assert child[:24] != ids[0][:24]  # another process, another prefix: never the parent's ids


def test_threads_check_a_free_head_at_once_instead_of_queueing_behind_each_other() -> None:
    """Locally the head check is a ``stat`` (the GIL is released meanwhile): a lock held across
    it would make every request wait for the one before it."""
    store = MemoryStore()
    store.commit_files(None, {INRELEASE: b"x\n"}, "one")
    cache = BranchCache(store, ttl=0)
    first = cache.snapshot()
    inside, release = threading.Semaphore(0), threading.Event()
    real_head = store.head

    def slow_head() -> str | None:
        inside.release()
        release.wait(30)
        return real_head()

    store.head = slow_head  # type: ignore[method-assign]
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(cache.snapshot())) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        assert inside.acquire(timeout=30)
        assert inside.acquire(timeout=30), "the second thread waited for the first one's head check"
    finally:
        release.set()
        for t in threads:
            t.join(30)
    assert seen == [first, first]
