"""Read a .deb in one streaming pass: its control file, its size and four digests.

The ar and tar containers, the decompressors and HTTP Range reads live here; what the control
file says and whether it is valid is ``ghapt.deb.control``'s business.

A .deb reaches us from anyone who can upload a release asset, so every layer is bounded:
ar member sizes are checked against what is left, the control member is capped before and
after decompression, decompression stops at the control file, and only the control file is
ever held whole in memory. Every broken or hostile input raises ``BadDebError``.

Layout (deb(5)): ``!<arch>\\n``, then ar members ``debian-binary`` ("2.x"), ``control.tar[.gz|.xz|.zst]``
and ``data.tar[.*]``; members named ``_*`` may sit in between and are skipped, like dpkg does.
"""

from __future__ import annotations

import hashlib
import lzma
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Protocol, cast

from ghapt.core.errors import BadDebError
from ghapt.core.model import Control, DebInfo, Hashes
from ghapt.deb.control import parse_control

# Limits. A real control member is a few KiB; these leave room for odd but honest packages.
CHUNK = 1 << 20  # read and hash the file in 1 MiB pieces
MAX_DEBIAN_BINARY = 1024  # "2.0\n" is 4 bytes
MAX_CONTROL_MEMBER = 64 << 20  # compressed control member
MAX_CONTROL_TAR = 256 << 20  # decompressed bytes we read from it before giving up
MAX_CONTROL_FILE = 1 << 20  # the ./control file itself
MAX_TAR_METADATA = 1 << 20  # one pax header or GNU long name
XZ_MEMLIMIT = 128 << 20  # enough for xz -9 (64 MiB dictionary)
ZSTD_MAX_WINDOW = 1 << 27  # zstd's own default decoder limit
RANGE_WINDOW = 1 << 16  # first HTTP Range read: usually the ar header and the whole control member

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
_CONTROL_MEMBERS = {
    "control.tar": "none",
    "control.tar.gz": "gzip",
    "control.tar.xz": "xz",
    "control.tar.zst": "zstd",
}
_DATA_MEMBERS = frozenset(
    {"data.tar", "data.tar.gz", "data.tar.xz", "data.tar.zst", "data.tar.bz2", "data.tar.lzma"}
)
_CONTROL_PATHS = (b"./control", b"control")


def _mib(n: int) -> str:
    return f"{n >> 20} MiB"


# ---------------------------------------------------------------------------------------------
# Public API


def read_deb(stream: BinaryIO, name: str) -> DebInfo:
    """Read the control paragraph, size and digests of the .deb in ``stream``, in one pass.

    ``name`` is only used in error messages. Raises ``BadDebError`` for any broken file."""
    src = _StreamSource(stream)
    control = _walk(src, name, whole=True)
    return DebInfo(control=control, size=src.pos, hashes=src.hashes())


def read_deb_path(path: Path, name: str | None = None) -> DebInfo:
    """``read_deb`` on a file; ``name`` defaults to the file's name."""
    with path.open("rb") as f:
        return read_deb(f, name if name is not None else path.name)


def read_control_by_ranges(fetch: Callable[[int, int], bytes], size: int, name: str) -> Control:
    """The control paragraph of a remote .deb of ``size`` bytes, read with HTTP Range requests.

    ``fetch(start, end_inclusive)`` returns those bytes (fewer if the file is shorter). The
    first fetch takes ``RANGE_WINDOW`` bytes, which usually hold the whole control member; a
    second one is made only when the control member goes past it, and it stops at the data
    member's header, so the data member's content is never fetched beyond that first window."""
    if size <= 0:
        raise BadDebError(name, "empty file")
    return _walk(_RangeSource(fetch, size), name, whole=False)


# ---------------------------------------------------------------------------------------------
# Control file validation


# ---------------------------------------------------------------------------------------------
# Byte sources: a hashing stream, or HTTP Range reads


class _Source(Protocol):
    pos: int

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the file."""
        ...

    def skip(self, n: int) -> int:
        """Move ``n`` bytes forward; returns how many there were."""
        ...

    def expect(self, end: int) -> None:
        """Hint that everything up to offset ``end`` is about to be read."""
        ...

    def known_size(self) -> int | None:
        """The file's size when known up front, to catch over-long members before reading them."""
        ...


_PARALLEL_HASH_MIN = 64 * 1024
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _hash_pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ghapt-hash")
        return _POOL


class _StreamSource:
    """Reads a stream forward, hashing every byte, so the digests cover the whole file."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.pos = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        # The three digests a Packages stanza lists (as dpkg-scanpackages writes it); SHA512 of
        # every .deb would cost more CPU than the other three together and nothing reads it.
        self._sha256 = hashlib.sha256()
        self._pending: Future[None] | None = None

    def read(self, n: int) -> bytes:
        parts: list[bytes] = []
        want = n
        while want > 0:
            piece = self._stream.read(want)  # a pipe or raw file may return less than asked
            if not piece:
                break
            parts.append(piece)
            want -= len(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._digest(data)
        self.pos += len(data)
        return data

    def _digest(self, data: bytes) -> None:
        """Feed the three digests; big chunks are split over two threads (hashlib frees the GIL).

        At most one chunk is in flight, so memory stays at two chunks and order is kept."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        if len(data) < _PARALLEL_HASH_MIN:
            for h in (self._md5, self._sha1, self._sha256):
                h.update(data)
            return
        # md5 is the slowest of the three: it runs on its own while this thread does the others.
        self._pending = _hash_pool().submit(self._md5.update, data)
        self._sha1.update(data)
        self._sha256.update(data)

    def skip(self, n: int) -> int:
        done = 0
        while done < n:
            piece = self.read(min(CHUNK, n - done))
            if not piece:
                break
            done += len(piece)
        return done

    def expect(self, end: int) -> None:
        pass

    def known_size(self) -> int | None:
        return None

    def hashes(self) -> Hashes:
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        return Hashes(
            sha256=self._sha256.hexdigest(),
            md5=self._md5.hexdigest(),
            sha1=self._sha1.hexdigest(),
        )


class _RangeSource:
    """A forward reader over ``fetch(start, end_inclusive)`` that keeps one buffered span.

    The first fetch reads ``RANGE_WINDOW`` bytes; later fetches read exactly what is needed
    (or what ``expect`` announced), so skipped members are never downloaded."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int) -> None:
        self._fetch = fetch
        self.size = size
        self.pos = 0
        self._start = 0
        self._buf = b""
        self._first = True

    def _ensure(self, end: int) -> None:
        end = min(end, self.size)
        have = self._start + len(self._buf)
        if end <= have:
            return
        start = max(have, self.pos)
        if self._first:
            end = min(max(end, RANGE_WINDOW), self.size)
            self._first = False
        new = bytes(self._fetch(start, end - 1))[: end - start]
        if len(new) < end - start:
            self.size = start + len(new)  # the file is shorter than its metadata says
        if self.pos < have:
            self._buf = self._buf[self.pos - self._start :] + new
            self._start = self.pos
        else:
            self._buf = new
            self._start = start

    def read(self, n: int) -> bytes:
        self._ensure(self.pos + n)
        end = min(self.pos + n, self._start + len(self._buf))
        if end <= self.pos:
            return b""
        data = self._buf[self.pos - self._start : end - self._start]
        self.pos = end
        return data

    def skip(self, n: int) -> int:
        done = max(0, min(n, self.size - self.pos))
        self.pos += done
        return done

    def expect(self, end: int) -> None:
        self._ensure(end)

    def known_size(self) -> int | None:
        return self.size


# ---------------------------------------------------------------------------------------------
# The ar layer


@dataclass(frozen=True)
class _Member:
    name: str
    size: int
    start: int  # offset of the content


def _truncated(name: str, member: _Member, got: int) -> BadDebError:
    return BadDebError(
        name, f"truncated: member {member.name!r} declares {member.size} bytes but only {got} remain"
    )


def _next_member(src: _Source, name: str, *, trailing: bool = False) -> _Member | None:
    """The next ar member header, or None at the end of the file."""
    at = src.pos
    raw = src.read(AR_HEADER)
    if not raw:
        return None
    if len(raw) < AR_HEADER:
        if trailing:
            raise BadDebError(name, f"{len(raw)} bytes of junk after the last member at offset {at}")
        raise BadDebError(name, f"truncated: file ends inside the ar member header at offset {at}")
    if raw[58:60] != b"`\n":
        raise BadDebError(name, f"bad ar member header at offset {at}: wrong magic {raw[58:60]!r}")
    member_name = raw[:16].rstrip(b" ")
    if len(member_name) > 1 and member_name.endswith(b"/"):
        member_name = member_name[:-1]  # GNU ar terminates names with '/'
    shown = member_name.decode("ascii", "backslashreplace")
    size_field = raw[48:58].rstrip(b" ")
    if not size_field.isdigit():
        raise BadDebError(
            name,
            f"bad ar member header for {shown!r} at offset {at}: size "
            f"{size_field.decode('ascii', 'backslashreplace')!r} is not a number",
        )
    member = _Member(shown, int(size_field), at + AR_HEADER)
    total = src.known_size()
    if total is not None and member.start + member.size > total:
        raise _truncated(name, member, max(0, total - member.start))
    return member


def _skip_padding(src: _Source, member: _Member) -> None:
    if member.size % 2:
        src.skip(1)  # a missing pad byte at the very end is harmless, as for dpkg


def _read_member(src: _Source, name: str, member: _Member) -> bytes:
    data = src.read(member.size)
    if len(data) < member.size:
        raise _truncated(name, member, len(data))
    _skip_padding(src, member)
    return data


def _skip_member(src: _Source, name: str, member: _Member) -> None:
    got = src.skip(member.size)
    if got < member.size:
        raise _truncated(name, member, got)
    _skip_padding(src, member)


def _walk(src: _Source, name: str, *, whole: bool) -> Control:
    """Check the ar structure and return the parsed control paragraph.

    ``whole`` reads the data member and anything after it (so a stream is fully hashed);
    otherwise the walk stops at the data member's header."""
    _check_magic(src, name)
    _check_debian_binary(src, name)
    member = _control_member(src, name)
    # Read the control member and the next header in one go (a single Range read).
    src.expect(member.start + member.size + member.size % 2 + AR_HEADER)
    control_file = _extract_control(src, name, member)
    data = _data_member(src, name)
    if whole:
        _skip_member(src, name, data)
        while (extra := _next_member(src, name, trailing=True)) is not None:
            _skip_member(src, name, extra)
    return parse_control(control_file, name)


def _check_magic(src: _Source, name: str) -> None:
    magic = src.read(len(AR_MAGIC))
    if not magic:
        raise BadDebError(name, "empty file")
    if magic != AR_MAGIC:
        if AR_MAGIC.startswith(magic):
            raise BadDebError(name, "truncated: file ends inside the ar global header")
        raise BadDebError(name, "not an ar archive (no '!<arch>' magic), so not a .deb")


def _check_debian_binary(src: _Source, name: str) -> None:
    first = _next_member(src, name)
    if first is None:
        raise BadDebError(name, "debian-binary member missing: the ar archive is empty")
    if first.name != "debian-binary":
        raise BadDebError(name, f"debian-binary member missing or not first: first member is {first.name!r}")
    if first.size > MAX_DEBIAN_BINARY:
        raise BadDebError(name, f"debian-binary member is {first.size} bytes, more than {MAX_DEBIAN_BINARY}")
    version = _read_member(src, name, first)
    if not version.startswith(b"2."):
        shown = version.split(b"\n", 1)[0][:20].decode("ascii", "backslashreplace")
        raise BadDebError(name, f"unsupported .deb format version {shown!r} in debian-binary (need 2.x)")


def _control_member(src: _Source, name: str) -> _Member:
    member = _next_significant(src, name)
    if member is None:
        raise BadDebError(name, "no control member (control.tar*)")
    if member.name not in _CONTROL_MEMBERS:
        if member.name.startswith("control.tar"):
            raise BadDebError(name, f"unknown compression of the control member {member.name!r}")
        if member.name.startswith("data.tar"):
            raise BadDebError(name, f"no control member before the data member {member.name!r}")
        if member.name == "debian-binary":
            raise BadDebError(name, "a second debian-binary member where the control member should be")
        raise BadDebError(name, f"unexpected member {member.name!r} where the control member should be")
    if member.size > MAX_CONTROL_MEMBER:
        raise BadDebError(
            name,
            f"control member {member.name!r} is {member.size} bytes, more than the "
            f"{_mib(MAX_CONTROL_MEMBER)} limit",
        )
    return member


def _data_member(src: _Source, name: str) -> _Member:
    data = _next_significant(src, name)
    if data is None:
        raise BadDebError(name, "no data member (data.tar*) after the control member")
    if data.name not in _DATA_MEMBERS:
        if data.name.startswith("data.tar"):
            raise BadDebError(name, f"unknown compression of the data member {data.name!r}")
        raise BadDebError(name, f"unexpected member {data.name!r} where the data member should be")
    return data


def _next_significant(src: _Source, name: str) -> _Member | None:
    """The next member whose name does not start with '_' (dpkg skips those as optional)."""
    while True:
        member = _next_member(src, name)
        if member is None or not member.name.startswith("_"):
            return member
        _skip_member(src, name, member)


# ---------------------------------------------------------------------------------------------
# The control member: decompression and tar


class _Reader(Protocol):
    def read(self, n: int) -> bytes: ...


class _MemberReader:
    """The content of one ar member; raises when the file ends before the member does."""

    def __init__(self, src: _Source, name: str, member: _Member) -> None:
        self._src = src
        self._name = name
        self._member = member
        self._left = member.size

    def read(self, n: int = CHUNK) -> bytes:
        if n < 0:
            n = CHUNK
        data = self._src.read(min(n, self._left))
        if len(data) < min(n, self._left):
            raise _truncated(self._name, self._member, self._member.size - self._left + len(data))
        self._left -= len(data)
        return data

    def drain(self) -> None:
        got = self._src.skip(self._left)
        if got < self._left:
            raise _truncated(self._name, self._member, self._member.size - self._left + got)
        self._left = 0


class _Corrupt(Exception):
    """Raised inside a decoder; turned into BadDebError with the member's name."""


class _Inflater:
    """gzip or xz, decompressed at most ``n`` bytes at a time; concatenated streams are fine."""

    def __init__(self, source: _MemberReader, kind: str) -> None:
        self._source = source
        self._kind = kind
        self._z: zlib._Decompress | None = None
        self._x: lzma.LZMADecompressor | None = None
        self._tail = b""  # input zlib has not consumed yet
        self._restart()

    def _restart(self) -> None:
        self._tail = b""
        if self._kind == "gzip":
            self._z, self._x = zlib.decompressobj(16 + zlib.MAX_WBITS), None
        else:
            self._z, self._x = None, lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)

    def _eof(self) -> bool:
        return self._z.eof if self._z is not None else bool(self._x and self._x.eof)

    def _unused(self) -> bytes:
        return self._z.unused_data if self._z is not None else (self._x.unused_data if self._x else b"")

    def _needs_input(self) -> bool:
        return not self._tail if self._z is not None else bool(self._x and self._x.needs_input)

    def _step(self, data: bytes, n: int) -> bytes:
        if self._z is not None:
            out = self._z.decompress(self._tail + data, n)
            self._tail = self._z.unconsumed_tail
            return out
        assert self._x is not None
        return self._x.decompress(data, n)

    def read(self, n: int) -> bytes:
        try:
            while True:
                if self._eof():
                    rest = self._unused() or self._source.read(CHUNK)
                    if not rest:
                        return b""
                    self._restart()
                    out = self._step(rest, n)
                elif self._needs_input():
                    data = self._source.read(CHUNK)
                    out = self._step(data, n)
                    if not data and not out and not self._eof():
                        raise _Corrupt("compressed data ends before its end marker")
                else:
                    out = self._step(b"", n)
                if out:
                    return out
        except (zlib.error, lzma.LZMAError, EOFError) as exc:
            raise _Corrupt(str(exc)) from exc


class _Zstd:
    """zstd through a stream reader, whose output per call is bounded (decompressobj's is not)."""

    def __init__(self, source: _MemberReader) -> None:
        import zstandard  # only for zstd members: it imports `platform`, 12 ms of every start

        self._error = zstandard.ZstdError
        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        # stream_reader only ever calls .read(size) on its source.
        self._reader = dctx.stream_reader(cast(IO[bytes], source), read_size=CHUNK, read_across_frames=True)

    def read(self, n: int) -> bytes:
        try:
            return self._reader.read(n)
        except self._error as exc:
            raise _Corrupt(str(exc)) from exc


class _Capped:
    """Counts decompressed bytes and stops a compression bomb at ``MAX_CONTROL_TAR``."""

    def __init__(self, inner: _Reader, name: str, member: str) -> None:
        self._inner = inner
        self._name = name
        self._member = member
        self.total = 0

    def read(self, n: int) -> bytes:
        try:
            data = self._inner.read(n)
        except _Corrupt as exc:
            raise BadDebError(self._name, f"corrupt control member {self._member!r}: {exc}") from exc
        self.total += len(data)
        if self.total > MAX_CONTROL_TAR:
            raise BadDebError(
                self._name,
                f"control member {self._member!r} decompresses to more than {_mib(MAX_CONTROL_TAR)} "
                "before its control file (compression bomb?)",
            )
        return data

    def read_exact(self, n: int) -> bytes:
        parts: list[bytes] = []
        want = n
        while want > 0:
            piece = self.read(min(want, CHUNK))
            if not piece:
                break
            parts.append(piece)
            want -= len(piece)
        return b"".join(parts)

    def skip(self, n: int) -> bool:
        while n > 0:
            piece = self.read(min(n, CHUNK))
            if not piece:
                return False
            n -= len(piece)
        return True


def _extract_control(src: _Source, name: str, member: _Member) -> bytes:
    """The ``./control`` file of the control member; the rest of the member is skipped."""
    source = _MemberReader(src, name, member)
    kind = _CONTROL_MEMBERS[member.name]
    decoder: _Reader
    if kind == "none":
        decoder = source
    elif kind == "zstd":
        decoder = _Zstd(source)
    else:
        decoder = _Inflater(source, kind)
    control = _find_control_file(_Capped(decoder, name, member.name), name, member.name)
    source.drain()  # hashed, never decompressed
    _skip_padding(src, member)
    return control


_TAR_BLOCK = 512
_NO_DATA_TYPES = frozenset(b"123456")  # links, devices, directories, fifos carry no content


def _padded(size: int) -> int:
    return -(-size // _TAR_BLOCK) * _TAR_BLOCK


def _tar_number(field: bytes) -> int | None:
    """A tar numeric field: octal text, or GNU base-256 when the high bit is set."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] and field[0] & 0x80:
        return None  # negative base-256
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if any(c not in b"01234567" for c in text):
        return None
    return int(text, 8)


def _tar_checksum_ok(block: bytes) -> bool:
    stored = _tar_number(block[148:156])
    if stored is None:
        return False
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * 0x20
    if stored == unsigned:
        return True
    # Old tars summed signed chars: every byte above 127 counts 256 less.
    return stored == unsigned - 256 * (len(rest) - len(rest.translate(None, _HIGH_BYTES)))


_HIGH_BYTES = bytes(range(128, 256))


def _pax_records(meta: bytes) -> dict[bytes, bytes] | None:
    """``"<len> key=value\\n"`` records of a pax header, or None when malformed."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(meta):
        if meta[pos:].strip(b"\0") == b"":
            break
        space = meta.find(b" ", pos)
        length_text = meta[pos:space] if space > 0 else b""
        if not length_text.isdigit():
            return None
        end = pos + int(length_text)
        record = meta[space + 1 : end]
        if end <= space or end > len(meta) or not record.endswith(b"\n") or b"=" not in record:
            return None
        key, _, value = record[:-1].partition(b"=")
        records[key] = value
        pos = end
    return records


class _TarNames:
    """Names and sizes that GNU long-name and pax headers set for the next tar entry."""

    def __init__(self, bad: Callable[[str], BadDebError]) -> None:
        self.bad = bad
        self.long_path: bytes | None = None
        self.pax_path: bytes | None = None
        self.pax_size: int | None = None

    def take(self, kind: int, meta: bytes) -> None:
        """Remember what an extended header (``kind`` in ``xgLK``) says about the next entry."""
        if kind == ord("L"):
            self.long_path = meta.split(b"\0", 1)[0]
        elif kind == ord("x"):
            records = _pax_records(meta)
            if records is None:
                raise self.bad("malformed pax header")
            self.pax_path = records.get(b"path", self.pax_path)
            if b"size" in records:
                if not records[b"size"].isdigit():
                    raise self.bad("malformed pax size")
                self.pax_size = int(records[b"size"])

    def entry(self, block: bytes, size: int) -> tuple[bytes, int]:
        """The entry's (path, size), extended headers first; they apply to this entry only."""
        path = self.pax_path if self.pax_path is not None else self.long_path
        if path is None:
            path = block[:100].split(b"\0", 1)[0]
            prefix = block[345:500].split(b"\0", 1)[0]
            if block[257:263] == b"ustar\0" and prefix:  # POSIX ustar splits long paths
                path = prefix + b"/" + path
        if self.pax_size is not None:
            size = self.pax_size
        self.long_path = self.pax_path = self.pax_size = None
        return path, size


def _tar_header(tar: _Capped, name: str, member: str, bad: Callable[[str], BadDebError]) -> tuple[bytes, int]:
    """The next tar header block and its size; raises at the end of the archive."""
    block = tar.read_exact(_TAR_BLOCK)
    if block == bytes(_TAR_BLOCK):  # the end-of-archive marker
        raise BadDebError(name, f"control member {member!r} has no control file")
    if not block:
        raise BadDebError(
            name, f"control member {member!r} ends before its control file, without a tar end marker"
        )
    if len(block) < _TAR_BLOCK:
        raise bad("it ends inside a header")
    if not _tar_checksum_ok(block):
        raise bad("header checksum mismatch")
    size = _tar_number(block[124:136])
    if size is None:
        raise bad("a header has a malformed size")
    return block, size


def _find_control_file(tar: _Capped, name: str, member: str) -> bytes:
    """Walk the tar headers (ustar, GNU and pax) until ``./control``; returns its content."""

    def bad(why: str) -> BadDebError:
        return BadDebError(name, f"control member {member!r} is not a valid tar archive: {why}")

    names = _TarNames(bad)
    while True:
        block, size = _tar_header(tar, name, member, bad)
        kind = block[156]
        if kind in b"xgLK":  # pax extended header, pax global header, GNU long name / long link
            if size > MAX_TAR_METADATA:
                raise bad(f"a {size}-byte extended header (limit {_mib(MAX_TAR_METADATA)})")
            meta = tar.read_exact(_padded(size))
            if len(meta) < _padded(size):
                raise bad("it ends inside an extended header")
            names.take(kind, meta[:size])
            continue
        path, size = names.entry(block, size)
        if path in _CONTROL_PATHS:
            return _control_file_content(tar, name, member, kind, size, bad)
        if kind not in _NO_DATA_TYPES and not tar.skip(_padded(size)):
            raise bad(f"it ends inside {path.decode('utf-8', 'backslashreplace')!r}")


def _control_file_content(
    tar: _Capped, name: str, member: str, kind: int, size: int, bad: Callable[[str], BadDebError]
) -> bytes:
    if kind not in b"07\0":
        raise BadDebError(name, f"control member {member!r}: its control file is not a regular file")
    if size > MAX_CONTROL_FILE:
        raise BadDebError(name, f"control file is {size} bytes, more than the {_mib(MAX_CONTROL_FILE)} limit")
    content = tar.read_exact(size)
    if len(content) < size:
        raise bad("it ends inside the control file")
    return content
