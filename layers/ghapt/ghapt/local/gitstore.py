"""The metadata store as a branch of a local bare git repository (local mode).

It mirrors what the GitHub store does through the Git Data API: write blobs, build a tree
on the base tree, make one commit, and move the branch only if it still points at the base
(a compare-and-swap, as ``git update-ref NEW OLD``), so every rebuild is one atomic commit.

Objects are read and written in Python (``gitobjects``): a ``git`` process per step cost more
than the rest of an incremental rebuild. The branch moves by git's own lock-file protocol
(``_swap_ref``), or through ``git update-ref`` where git would do more (reflogs, hooks,
reftable); whatever is not a loose object (after ``git gc`` packs the repository) is read by git.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ghapt.core.errors import GhaptError, StaleHead
from ghapt.core.layout import check_path, git_blob_id
from ghapt.local.gitobjects import (
    BLOB_MODE,
    TREE_MODE,
    CommitInfo,
    LooseObjects,
    TreeEntries,
    encode_commit,
    encode_tree,
    object_id,
    parse_commit,
    parse_tree,
)

if TYPE_CHECKING:
    import subprocess

_ZERO = "0" * 40
_PARALLEL_BLOB = 64 * 1024  # blobs at least this large are worth a thread of their own
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_OBJECT_FORMAT_RE = re.compile(rb"^\s*objectformat\s*=\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_IDENT = b"ghapt <ghapt@localhost>"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "ghapt",
    "GIT_AUTHOR_EMAIL": "ghapt@localhost",
    "GIT_COMMITTER_NAME": "ghapt",
    "GIT_COMMITTER_EMAIL": "ghapt@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}

# What a commit changes in one directory: a name maps to new file bytes, None (delete the
# file) or the changes inside a subdirectory of that name.
_Changes = dict[bytes, Union[bytes, "_Changes", None]]


def _stamp(path: str) -> tuple[int, ...] | None:
    """What changes when git replaces ``path`` (a new inode) or rewrites it; None when absent."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class GitError(GhaptError):
    """A git command failed unexpectedly."""


class _NotLoose(Exception):
    """An object this walk needs is packed (or elsewhere): git must answer instead."""


class LocalGitStore:
    """``MetadataStore`` over ``repo`` (a bare repository, created on first use)."""

    def __init__(self, repo: Path, branch: str = "apt-metadata") -> None:
        self.repo = Path(repo)
        self.branch = branch
        self._listing: tuple[str, dict[str, str]] | None = None
        self._sized: tuple[str, dict[str, tuple[str, int]]] | None = None
        self.ref = f"refs/heads/{branch}"
        self._loose_ref = str(self.repo / self.ref)
        self._packed_refs = str(self.repo / "packed-refs")
        self._reftable = str(self.repo / "reftable" / "tables.list")
        self._head: tuple[tuple[tuple[int, ...] | None, ...], str | None] | None = None
        if not (self.repo / "HEAD").exists():
            self.repo.mkdir(parents=True, exist_ok=True)
            self._git(
                "init", "--bare", "--quiet", "--object-format=sha1", "--initial-branch", branch, cwd=self.repo
            )
        self._check_object_format()
        self.objects = LooseObjects(self.repo / "objects")

    def _check_object_format(self) -> None:
        """Blob ids here are SHA-1 (``git_blob_id``); a SHA-256 repository cannot be written."""
        try:
            config = (self.repo / "config").read_bytes()
        except FileNotFoundError:
            return
        found = _OBJECT_FORMAT_RE.search(config)
        if found and found.group(1).lower() != b"sha1":
            raise GitError(
                f"{self.repo} uses {found.group(1).decode()} object ids; ghapt needs a SHA-1 repository"
            )

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
        """Read from the tree objects in Python; from git when they are packed."""
        listed = self._listing  # one read: another thread may replace it meanwhile
        if listed is not None and listed[0] == commit:
            return dict(listed[1])
        if _COMMIT_RE.match(commit):
            try:
                files: dict[str, str] = {}
                self._walk(self._commit(commit).tree, "", files)
            except _NotLoose:
                pass
            else:
                self._listing = (commit, files)
                return dict(files)
        return {path: sha for path, (sha, _size) in self._entries(commit).items()}

    def file_sizes(self, commit: str) -> dict[str, int]:
        """Sizes from ``git ls-tree --long``: git reads object headers, never the blobs.

        Measured no slower than inflating each loose object's header in Python, and git does it
        without holding the GIL that the serving threads share."""
        return {path: size for path, (_sha, size) in self._entries(commit).items()}

    def _entries(self, commit: str) -> dict[str, tuple[str, int]]:
        listed = self._sized  # one read: another thread may replace it meanwhile
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
            self._sized = (commit, files)
        return files

    def read_file(self, commit: str, path: str) -> bytes | None:
        parts = path.split("/")
        if _COMMIT_RE.match(commit) and all(p not in ("", ".", "..") for p in parts):
            try:
                return self._read_path(commit, parts)
            except _NotLoose:
                pass
        proc = self._run("cat-file", "blob", f"{commit}:{path}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def read_blob(self, blob: str) -> bytes:
        data = self.objects.read(blob, b"blob") if _COMMIT_RE.match(blob) else None
        return data if data is not None else self._git("cat-file", "blob", blob)

    def commit_time(self, commit: str) -> int:
        if _COMMIT_RE.match(commit):
            return self._commit(commit).committer_time
        return int(self._git("show", "-s", "--format=%ct", commit).decode().strip())

    def commit_message(self, commit: str) -> str:
        return self._git("show", "-s", "--format=%B", commit).decode()

    def _commit(self, commit: str) -> CommitInfo:
        body = self.objects.read(commit, b"commit")
        if body is None:
            body = self._git("cat-file", "commit", commit)
        return parse_commit(body)

    def _tree(self, tree: str) -> TreeEntries:
        body = self.objects.read(tree, b"tree")
        if body is None:
            raise _NotLoose(tree)
        return parse_tree(body)

    def _walk(self, tree: str, prefix: str, files: dict[str, str]) -> None:
        for name, (mode, oid) in self._tree(tree).items():
            if mode == TREE_MODE:
                self._walk(oid, f"{prefix}{name.decode()}/", files)
            elif mode != b"160000":  # a submodule's commit is not a file (ls-tree says "commit")
                files[prefix + name.decode()] = oid

    def _read_path(self, commit: str, parts: list[str]) -> bytes | None:
        oid, mode = self._commit(commit).tree, TREE_MODE
        for part in parts:
            if mode != TREE_MODE:
                return None
            entry = self._tree(oid).get(part.encode())
            if entry is None:
                return None
            mode, oid = entry
        if mode == TREE_MODE or mode == b"160000":
            return None
        data = self.objects.read(oid, b"blob")
        if data is None:
            raise _NotLoose(oid)
        return data

    def _trees_from_git(self, root: str) -> dict[str, TreeEntries]:
        """Every tree under ``root`` by id, from one ``git ls-tree`` (git reads packs too)."""
        out = self._git("ls-tree", "-r", "-t", "-z", "--full-tree", root)
        trees: dict[bytes, str] = {b"": root}
        found: dict[str, TreeEntries] = {root: {}}
        for line in out.split(b"\0"):
            if not line:
                continue
            meta, _, path = line.partition(b"\t")
            mode, kind, oid = meta.split(b" ")
            parent, _, name = path.rpartition(b"/")
            if kind == b"tree":
                mode = TREE_MODE  # ls-tree pads it to 040000; a tree object says 40000
                trees[path] = oid.decode()
                found.setdefault(oid.decode(), {})
            found[trees[parent]][name] = (mode, oid.decode())
        return found

    # --- writing ----------------------------------------------------------------------------
    def commit_files(self, base: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        for path in changes:
            check_path(path)
        # Nested by directory, applied in path order as git's update-index would: a file
        # replaces a directory of that name and a later "a/b" replaces a file "a".
        root: _Changes = {}
        for path in sorted(changes):
            *dirs, name = path.encode().split(b"/")
            node = root
            for part in dirs:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
            node[name] = changes[path]
        info = self._commit(base) if base else None
        blobs = self._store_blobs(changes.values())
        tree = _TreeWriter(self.objects, info.tree if info else None, self._trees_from_git, blobs).build(root)
        # Commit times must strictly increase along the branch: they are the Last-Modified that
        # apt's If-Modified-Since is compared with, at one-second resolution.
        when = int(time.time())
        if info:
            when = max(when, info.committer_time + 1)
        body = encode_commit(tree, (base,) if base else (), _IDENT, when, message)
        commit = self.objects.write(b"commit", body)
        swapped = self._swap_ref(base, commit)
        if swapped is None:  # a repository whose refs git must move (see _swap_ref)
            old = base or _ZERO
            proc = self._run("update-ref", "-m", "ghapt rebuild", self.ref, commit, old, check=False)
            swapped = proc.returncode == 0
            why = proc.stderr.decode().strip()
        else:
            why = f"it is no longer {base or 'absent'}"
        if not swapped:
            raise StaleHead(f"branch {self.branch} moved while rebuilding: {why}")
        return commit

    def _swap_ref(self, expected: str | None, new: str) -> bool | None:
        """Move the branch from ``expected`` (None: absent) to ``new`` as ``git update-ref NEW OLD``
        does in a files-backend repository, without starting git: take ``<ref>.lock`` (created
        exclusively; git and every other writer respect it), check the current value under it,
        write the new one and rename it into place. False when the branch moved or another
        writer holds the lock (the caller rebuilds on the new head, as after git's refusal).

        None, and git does it, wherever git would do more: a reftable repository, a reflog kept
        for the branch (or ``core.logAllRefUpdates`` set), a ``reference-transaction`` hook (or
        ``core.hooksPath`` set), or a branch that is not a plain loose or packed ref."""
        if self._refs_need_git():
            return None
        lock = self._loose_ref + ".lock"
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except (FileNotFoundError, NotADirectoryError):
            return None  # no refs/heads folder: unusual, let git create what it needs
        try:
            try:
                with open(self._loose_ref, encoding="ascii", errors="replace") as fh:
                    current: str | None = fh.read().strip()
            except FileNotFoundError:
                current = self._packed_head()
            if current is not None and not _COMMIT_RE.match(current):
                return None  # a symbolic ref
            if current != expected:
                return False
            os.write(fd, new.encode() + b"\n")
            os.close(fd)
            fd = -1
            os.rename(lock, self._loose_ref)
            return True
        finally:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)  # still there unless renamed into place

    def _refs_need_git(self) -> bool:
        repo = self.repo
        if (repo / "reftable").exists() or (repo / "logs" / self.ref).exists():
            return True
        if (repo / "hooks" / "reference-transaction").exists():
            return True
        try:
            config = (repo / "config").read_bytes().lower()
        except FileNotFoundError:
            return False
        return any(key in config for key in (b"logallrefupdates", b"hookspath", b"refstorage"))

    def stage_blob(self, data: bytes) -> str:
        """Write one blob ahead of the commit that will name it (safe from any thread: objects
        are content-addressed and written whole); its object id."""
        return self.objects.write(b"blob", data, git_blob_id(data))

    def _store_blobs(self, contents: Iterable[bytes | None]) -> dict[int, str]:
        """Every distinct blob written as a loose object: ``id(bytes)`` -> object id.

        Those not written yet (``stage_blob``), when several are large, on several threads:
        zlib and SHA-1 free the GIL, and a commit carries a few large files (Packages, the
        asset record, the page) and their by-hash copies (the same bytes)."""
        distinct = list({id(d): d for d in contents if d is not None}.values())
        ids = {id(d): git_blob_id(d) for d in distinct}
        missing = [d for d in distinct if not self.objects.has(ids[id(d)])]
        if sum(len(d) >= _PARALLEL_BLOB for d in missing) < 2:
            for data in missing:
                self.objects.write(b"blob", data, ids[id(data)])
            return ids
        workers = min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ghapt-blobs") as pool:
            list(pool.map(lambda d: self.objects.write(b"blob", d, ids[id(d)]), missing))
        return ids

    # --- plumbing ---------------------------------------------------------------------------
    def _run(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        import subprocess  # a rebuild of a plain repository starts no git process

        full_env = {**os.environ, **_IDENTITY, **(env or {})}
        cmd = ["git", *([] if cwd else ["--git-dir", str(self.repo)]), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, env=full_env, cwd=cwd, check=False)
        if check and proc.returncode != 0:
            raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc

    def _git(self, *args: str, **kwargs: object) -> bytes:
        return self._run(*args, **kwargs).stdout  # type: ignore[arg-type]


class _TreeWriter:
    """Builds one commit's trees on its base tree, rewriting only the directories that change;
    an unchanged subtree keeps its id and is not even read. Lives for one ``commit_files``."""

    def __init__(
        self,
        objects: LooseObjects,
        base_tree: str | None,
        from_git: Callable[[str], dict[str, TreeEntries]],
        stored: Mapping[int, str],
    ) -> None:
        """``stored``: the blobs written already, ``id(bytes)`` -> object id."""
        self.objects = objects
        self.base_tree = base_tree
        self.from_git = from_git
        self.stored = stored
        self._packed: dict[str, TreeEntries] | None = None

    def build(self, changes: _Changes) -> str:
        """The new root tree's id (the empty tree when nothing is left)."""
        tree = self._build(self.base_tree, changes)
        return tree if tree is not None else self.objects.write(b"tree", b"")

    def _build(self, base: str | None, changes: _Changes) -> str | None:
        entries = self._entries(base) if base else {}
        for name, change in changes.items():
            old = entries.get(name)
            if isinstance(change, dict):
                was_tree = old is not None and old[0] == TREE_MODE
                sub = self._build(old[1] if old and was_tree else None, change)
                if sub is not None:
                    entries[name] = (TREE_MODE, sub)
                elif was_tree:
                    del entries[name]  # every file in it was deleted
            elif change is None:
                if old is not None and old[0] != TREE_MODE:  # deleting only ever removes a file
                    del entries[name]
            else:
                entries[name] = (BLOB_MODE, self.stored[id(change)])
        if not entries:
            return None
        body = encode_tree(entries)
        tree = object_id(b"tree", body)
        return tree if tree == base else self.objects.write(b"tree", body, tree)

    def _entries(self, tree: str) -> TreeEntries:
        body = self.objects.read(tree, b"tree")
        if body is not None:
            return parse_tree(body)
        if self._packed is None:
            assert self.base_tree is not None
            self._packed = self.from_git(self.base_tree)
        try:
            return dict(self._packed[tree])
        except KeyError:
            raise GitError(f"tree {tree} is missing from the base commit") from None
