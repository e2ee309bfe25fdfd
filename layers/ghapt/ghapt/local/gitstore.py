"""The metadata store as a branch of a local bare git repository (local mode).

It mirrors what the GitHub store does through the Git Data API: write blobs, build a tree
on the base tree, make one commit, and move the branch only if it still points at the base
(``git update-ref NEW OLD`` is a compare-and-swap), so every rebuild is one atomic commit.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from ghapt.core.errors import GhaptError, StaleHead
from ghapt.core.layout import check_path

_ZERO = "0" * 40
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_IDENTITY = {
    "GIT_AUTHOR_NAME": "ghapt",
    "GIT_AUTHOR_EMAIL": "ghapt@localhost",
    "GIT_COMMITTER_NAME": "ghapt",
    "GIT_COMMITTER_EMAIL": "ghapt@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def _stamp(path: str) -> tuple[int, ...] | None:
    """What changes when git replaces ``path`` (a new inode) or rewrites it; None when absent."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class GitError(GhaptError):
    """A git command failed unexpectedly."""


class LocalGitStore:
    """``MetadataStore`` over ``repo`` (a bare repository, created on first use)."""

    def __init__(self, repo: Path, branch: str = "apt-metadata") -> None:
        self.repo = Path(repo)
        self.branch = branch
        self._listing: tuple[str, dict[str, tuple[str, int]]] | None = None
        self.ref = f"refs/heads/{branch}"
        self._loose_ref = str(self.repo / self.ref)
        self._packed_refs = str(self.repo / "packed-refs")
        self._reftable = str(self.repo / "reftable" / "tables.list")
        self._head: tuple[tuple[tuple[int, ...] | None, ...], str | None] | None = None
        if not (self.repo / "HEAD").exists():
            self.repo.mkdir(parents=True, exist_ok=True)
            self._git("init", "--bare", "--quiet", "--initial-branch", branch, cwd=self.repo)

    # --- reading ----------------------------------------------------------------------------
    def head(self) -> str | None:
        """The branch head, read from the ref files and remembered with their stat: serving checks
        it on every request, so an unchanged branch costs a ``stat`` call and no git process (a
        packed ref is read from ``packed-refs``; git answers only for other ref formats)."""
        loose_stamp = _stamp(self._loose_ref)
        # A loose ref wins over the others; only without one do they matter.
        reftable = None if loose_stamp else _stamp(self._reftable)
        stamps = (loose_stamp,) if loose_stamp else (None, _stamp(self._packed_refs), reftable)
        known = self._head  # one read: another thread may replace it meanwhile
        if known is not None and known[0] == stamps:
            return known[1]
        try:
            with open(self._loose_ref, encoding="ascii", errors="replace") as fh:
                loose = fh.read().strip()
        except (FileNotFoundError, NotADirectoryError):
            loose = None
        if loose is not None and not _COMMIT_RE.match(loose):
            return self._rev_parse_head()  # a symbolic ref: its target may change under it
        head = loose or self._packed_head()
        if head is None and reftable is not None:
            head = self._rev_parse_head()
        self._head = (stamps, head)
        return head

    def _packed_head(self) -> str | None:
        try:
            with open(self._packed_refs, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except (FileNotFoundError, NotADirectoryError):
            return None
        for line in lines:
            sha, _, name = line.partition(" ")
            if name == self.ref and _COMMIT_RE.match(sha):
                return sha
        return None

    def _rev_parse_head(self) -> str | None:
        proc = self._run("rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def list_files(self, commit: str) -> dict[str, str]:
        return {path: sha for path, (sha, _size) in self._entries(commit).items()}

    def file_sizes(self, commit: str) -> dict[str, int]:
        """Sizes from ``git ls-tree --long``: git reads object headers, never the blobs."""
        return {path: size for path, (_sha, size) in self._entries(commit).items()}

    def _entries(self, commit: str) -> dict[str, tuple[str, int]]:
        listed = self._listing  # one read: another thread may replace it meanwhile
        if listed is not None and listed[0] == commit:
            return listed[1]
        out = self._git("ls-tree", "-r", "-z", "--long", "--full-tree", commit)
        files: dict[str, tuple[str, int]] = {}
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            _mode, kind, sha, size = meta.decode().split()
            if kind == "blob":
                files[path.decode()] = (sha, int(size))
        if _COMMIT_RE.match(commit):  # a commit id names fixed content; a ref name does not
            self._listing = (commit, files)
        return files

    def read_file(self, commit: str, path: str) -> bytes | None:
        proc = self._run("cat-file", "blob", f"{commit}:{path}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def read_blob(self, blob: str) -> bytes:
        return self._git("cat-file", "blob", blob)

    def commit_time(self, commit: str) -> int:
        return int(self._git("show", "-s", "--format=%ct", commit).decode().strip())

    def commit_message(self, commit: str) -> str:
        return self._git("show", "-s", "--format=%B", commit).decode()

    # --- writing ----------------------------------------------------------------------------
    def commit_files(self, base: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        with tempfile.TemporaryDirectory(prefix="ghapt-git-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            if base:
                self._git("read-tree", base, env=env)
            for path in changes:
                check_path(path)
            written = sorted(p for p, d in changes.items() if d is not None)
            # One git process writes every blob (from temp files), not one process per file.
            staged = []
            for i, path in enumerate(written):
                staged.append(os.path.join(tmp, f"blob-{i}"))
                with open(staged[-1], "wb") as fh:
                    fh.write(changes[path] or b"")
            shas = (
                self._git("hash-object", "-w", "--stdin-paths", input="\n".join(staged).encode() + b"\n")
                .decode()
                .split()
                if staged
                else []
            )
            blob_of = dict(zip(written, shas, strict=True))
            lines = [
                f"100644 {blob_of[path]}\t{path}" if path in blob_of else f"0 {_ZERO}\t{path}"
                for path in sorted(changes)
            ]
            if lines:
                self._git(
                    "update-index", "-z", "--index-info", input="\0".join(lines).encode() + b"\0", env=env
                )
            tree = self._git("write-tree", env=env).decode().strip()
        parents = ["-p", base] if base else []
        # Commit times must strictly increase along the branch: they are the Last-Modified that
        # apt's If-Modified-Since is compared with, at one-second resolution.
        when = int(time.time())
        if base:
            when = max(when, self.commit_time(base) + 1)
        dates = {"GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"}
        commit = self._git("commit-tree", tree, *parents, input=message.encode(), env=dates).decode().strip()
        proc = self._run("update-ref", "-m", "ghapt rebuild", self.ref, commit, base or _ZERO, check=False)
        if proc.returncode != 0:
            raise StaleHead(f"branch {self.branch} moved while rebuilding: {proc.stderr.decode().strip()}")
        return commit

    # --- plumbing ---------------------------------------------------------------------------
    def _run(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        full_env = {**os.environ, **_IDENTITY, **(env or {})}
        cmd = ["git", *([] if cwd else ["--git-dir", str(self.repo)]), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, env=full_env, cwd=cwd, check=False)
        if check and proc.returncode != 0:
            raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc

    def _git(self, *args: str, **kwargs: object) -> bytes:
        return self._run(*args, **kwargs).stdout  # type: ignore[arg-type]
