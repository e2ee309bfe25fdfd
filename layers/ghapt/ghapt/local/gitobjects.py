"""Git's loose object format, read and written from Python (SHA-1 repositories).

Starting a ``git`` process costs milliseconds; a rebuild needs a dozen steps, so the local store
writes its blobs, trees and commit itself. A loose object is ``zlib(b"<kind> <size>\\0" + data)``
at ``objects/<2 hex>/<38 hex>``, named by the SHA-1 of the uncompressed bytes. Objects that are
not loose (packed by ``git gc``, or in an alternate) are not read here: ``read`` answers None and
the caller asks git.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ghapt.core.errors import GhaptError

TREE_MODE = b"40000"
BLOB_MODE = b"100644"

# Deflating what is compressed already (Packages.gz, .xz, .zst, .bz2) gains nothing and costs as
# much as the text: such blobs are stored (zlib level 0); the rest at git's default for loose
# objects, level 1 (core.looseCompression).
_COMPRESSED = (b"\x1f\x8b", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"BZh")
_serial = itertools.count()  # with the pid and thread: a temporary name no live writer shares

TreeEntries = dict[bytes, tuple[bytes, str]]
"""A tree's entries: name -> (mode as git writes it, object id in hex)."""


class BadObject(GhaptError):
    """A loose object that is not what its name or its reader expects."""


def object_id(kind: bytes, data: bytes) -> str:
    """The id git gives ``data`` as an object of ``kind`` (blob, tree, commit)."""
    return hashlib.sha1(b"%s %d\0" % (kind, len(data)) + data, usedforsecurity=False).hexdigest()


def _order(item: tuple[bytes, tuple[bytes, str]]) -> bytes:
    """Git sorts tree entries by name, a subtree's name as if it ended in a slash."""
    name, (mode, _oid) = item
    return name + b"/" if mode == TREE_MODE else name


def encode_tree(entries: Mapping[bytes, tuple[bytes, str]]) -> bytes:
    """A tree object's body, entries in git's order (so the id is the one git would give)."""
    return b"".join(
        b"%s %s\0%s" % (mode, name, bytes.fromhex(oid))
        for name, (mode, oid) in sorted(entries.items(), key=_order)
    )


def parse_tree(data: bytes) -> TreeEntries:
    """A tree object's body as entries; modes are kept byte for byte so re-encoding is exact."""
    entries: TreeEntries = {}
    pos, end = 0, len(data)
    while pos < end:
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        if nul + 21 > end:
            raise BadObject("truncated tree entry")
        entries[data[space + 1 : nul]] = (data[pos:space], data[nul + 1 : nul + 21].hex())
        pos = nul + 21
    return entries


@dataclass(frozen=True)
class CommitInfo:
    tree: str
    parents: tuple[str, ...]
    committer_time: int


def parse_commit(data: bytes) -> CommitInfo:
    """The fields of a commit object the store needs (its headers end at the first blank line)."""
    headers = data.split(b"\n\n", 1)[0].split(b"\n")
    tree, parents, when = "", [], None
    for line in headers:
        key, _, value = line.partition(b" ")
        if key == b"tree":
            tree = value.decode("ascii")
        elif key == b"parent":
            parents.append(value.decode("ascii"))
        elif key == b"committer":
            # "Name <email> 1700000000 +0000": the time is the second field from the end.
            when = int(value.rsplit(b" ", 2)[1])
    if not tree or when is None:
        raise BadObject("a commit without a tree or a committer")
    return CommitInfo(tree, tuple(parents), when)


def encode_commit(tree: str, parents: tuple[str, ...], ident: bytes, when: int, message: str) -> bytes:
    """A commit object's body as ``git commit-tree`` writes it (message verbatim, UTC times)."""
    lines = [b"tree " + tree.encode("ascii")]
    lines += [b"parent " + parent.encode("ascii") for parent in parents]
    stamp = b"%s %d +0000" % (ident, when)
    lines += [b"author " + stamp, b"committer " + stamp]
    return b"\n".join(lines) + b"\n\n" + message.encode()


class LooseObjects:
    """The loose objects of one repository's object directory.

    Holds no per-call state, so one instance serves every thread; writers in other processes
    are safe too, since every object appears whole (written aside, then linked into place)."""

    def __init__(self, objects_dir: Path) -> None:
        self.dir = objects_dir

    def _path(self, oid: str) -> str:
        return os.path.join(self.dir, oid[:2], oid[2:])

    def read(self, oid: str, kind: bytes) -> bytes | None:
        """The body of loose object ``oid``, or None when it is not loose here (ask git)."""
        try:
            with open(self._path(oid), "rb") as fh:
                raw = fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            full = zlib.decompress(raw)
        except zlib.error as exc:
            raise BadObject(f"loose object {oid} is corrupt: {exc}") from None
        header, nul, body = full.partition(b"\0")
        if not nul or header != b"%s %d" % (kind, len(body)):
            raise BadObject(f"loose object {oid} is not a {kind.decode()}: {header[:40]!r}")
        return body

    def write(self, kind: bytes, data: bytes, oid: str | None = None) -> str:
        """Store ``data`` as a loose object of ``kind`` unless it is already loose; its id
        (``oid``, when the caller has hashed it already).

        The object is written to a temporary file in its fan-out directory (named ``tmp_obj_*``
        like git's, so ``git prune`` clears leftovers) and hard-linked into place: readers see
        the whole object or none, and a concurrent writer of the same object is harmless."""
        full = b"%s %d\0" % (kind, len(data)) + data
        if oid is None:
            oid = hashlib.sha1(full, usedforsecurity=False).hexdigest()
        final = self._path(oid)
        if self._freshen(final):
            return oid
        folder = os.path.dirname(final)
        packed = zlib.compress(full, 0 if data.startswith(_COMPRESSED) else 1)
        while True:
            temp = os.path.join(folder, f"tmp_obj_{os.getpid()}_{threading.get_ident()}_{next(_serial)}")
            try:
                # Mode 0444 (less the umask), as git leaves loose objects.
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            except FileExistsError:
                continue
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)  # the first object of this fan-out directory
                continue
            break
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(packed)
            try:
                os.link(temp, final)
            except FileExistsError:
                pass  # another writer stored the same bytes first
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                os.replace(temp, final)  # no hard links here: rename, still atomic
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return oid

    def has(self, oid: str) -> bool:
        """Whether the object is loose here (its time bumped, as ``write`` would)."""
        return self._freshen(self._path(oid))

    @staticmethod
    def _freshen(path: str) -> bool:
        """True when the object is already loose; its time is bumped, as git does, so a
        concurrent ``git prune`` does not take an old unreachable object we now reference."""
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:
            return os.path.exists(path)
        return True
