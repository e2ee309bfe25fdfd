"""An in-memory ``MetadataStore``: the real stores' semantics without git or HTTP.

It keeps what the Protocol promises and contract/test_metadata_store.py checks for every
adapter: blob ids are git's (content hashes), a commit is atomic and immutable, the branch moves
only by compare-and-swap from the base the writer read (``StaleHead`` otherwise, and nothing is
published), commit times strictly increase along the branch, and unsafe paths are refused before
anything is written.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ghapt.core.errors import GhaptError, StaleHead


def blob_id(data: bytes) -> str:
    """The id git gives ``data`` as a blob (what both real stores list)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class UnsafePath(GhaptError):
    """A path that git or GitHub would refuse or misread."""


@dataclass(frozen=True)
class MemoryCommit:
    id: str
    parent: str | None
    files: Mapping[str, str]
    """Path to blob id."""
    time: int
    message: str


class MemoryStore:
    """``MetadataStore`` held in memory; ``clock`` gives commit times (Unix seconds)."""

    def __init__(self, clock: Callable[[], float] = time.time, branch: str = "apt-metadata") -> None:
        self.clock = clock
        self.branch = branch
        self.commits: dict[str, MemoryCommit] = {}
        self.blobs: dict[str, bytes] = {}
        self._head: str | None = None
        self._serial = itertools.count()
        self._lock = threading.Lock()

    # --- reading ----------------------------------------------------------------------------
    def head(self) -> str | None:
        return self._head

    def list_files(self, commit: str) -> dict[str, str]:
        return dict(self._commit(commit).files)

    def file_sizes(self, commit: str) -> dict[str, int]:
        return {path: len(self.blobs[blob]) for path, blob in self._commit(commit).files.items()}

    def read_file(self, commit: str, path: str) -> bytes | None:
        blob = self._commit(commit).files.get(path)
        return None if blob is None else self.blobs[blob]

    def commit_time(self, commit: str) -> int:
        return self._commit(commit).time

    def commit_message(self, commit: str) -> str:
        return self._commit(commit).message

    # --- writing ----------------------------------------------------------------------------
    def commit_files(self, base: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        for path in changes:
            _check_path(path)
        with self._lock:
            files = dict(self._commit(base).files) if base is not None else {}
            for path, data in changes.items():
                if data is None:
                    files.pop(path, None)
                else:
                    files[path] = blob_id(data)
                    self.blobs[files[path]] = bytes(data)
            # Commit times are Last-Modified; apt compares them at one-second resolution.
            when = int(self.clock())
            if base is not None:
                when = max(when, self._commit(base).time + 1)
            ident = hashlib.sha1(
                f"{next(self._serial)}\n{base}\n{when}\n{message}\n{sorted(files.items())}".encode(),
                usedforsecurity=False,
            ).hexdigest()
            # Like git and GitHub, the commit exists before the branch is moved to it.
            self.commits[ident] = MemoryCommit(ident, base, files, when, message)
            if self._head != base:
                raise StaleHead(f"branch {self.branch} moved while rebuilding (now at {self._head})")
            self._head = ident
            return ident

    def _commit(self, commit: str) -> MemoryCommit:
        try:
            return self.commits[commit]
        except KeyError:
            raise GhaptError(f"no commit {commit!r} in the in-memory store") from None


def _check_path(path: str) -> None:
    parts = path.split("/")
    if not path or "\0" in path or any(p in ("", ".", "..", ".git") for p in parts):
        raise UnsafePath(f"refusing to write unsafe path {path!r}")
