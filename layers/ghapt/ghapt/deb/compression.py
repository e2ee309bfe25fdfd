"""Packages.xz and Packages.gz built from segments compressed on their own, and reused.

A Packages file changes by a stanza or two between rebuilds, yet compressing it whole costs
more than everything else a rebuild does (``xz -6`` of 15 MB takes seconds). So the file is cut
into segments at stanza boundaries chosen by content (a package's name, not its offset), each
segment is compressed independently, on every core, and a segment whose bytes did not change
is copied from the previous index instead of being compressed again. An insertion changes the
segment it lands in; the cuts after it stay where they were.

Both results are ordinary single files that every decompressor reads:

* ``.xz``: one stream of several blocks (the layout ``xz -T`` writes), each block an LZMA2
  preset-6 encoding of one segment with a CRC32 check, then the index and the footer.
* ``.gz``: one gzip member whose deflate stream is the segments' deflate data, each ended by a
  full flush (byte-aligned, no back-references across it, as ``pigz`` does), then an empty
  final block, the CRC32 and the size of the whole.

The output depends only on the stanzas: the same Packages gives the same bytes, whether a
segment was compressed now or copied from a previous index made by the same zlib and liblzma.
"""

from __future__ import annotations

import functools
import hashlib
import lzma
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

# Cuts: at least MIN bytes per segment, then a cut before a new package name with a probability
# that grows with the stanza's size (about one per SPREAD bytes), and always at MAX.
SEGMENT_MIN = 32 * 1024
SEGMENT_SPREAD = 64 * 1024
SEGMENT_MAX = 1024 * 1024
XZ_PRESET = 6
_DICT_SIZE = SEGMENT_MAX  # a segment never needs a larger LZMA2 dictionary
_DICT_BYTE = 16  # LZMA2's encoding of a 1 MiB dictionary: 2 ** (16 // 2 + 12)
_XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": XZ_PRESET, "dict_size": _DICT_SIZE}]
_XZ_MAGIC = b"\xfd7zXZ\x00"
_XZ_CHECK_CRC32 = 1
_STREAM_FLAGS = bytes([0, _XZ_CHECK_CRC32])
_GZ_LEVEL = 9
_GZ_END = b"\x03\x00"  # an empty final fixed-Huffman block: what ends every deflate stream here
# gzip header: magic, deflate, no flags, mtime 0 (reproducible), "maximum compression", OS unknown
_GZ_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"

XZ, GZ = "xz", "gz"


@dataclass(frozen=True)
class Piece:
    """One segment compressed one way: its bytes in the file, and what the xz index needs."""

    data: bytes
    unpadded: int = 0  # xz only: block header + compressed data + check, without the padding


@dataclass(frozen=True)
class Compressed:
    """The compressed files of one Packages file, and the table that lets the next build reuse them."""

    plain: bytes
    xz: bytes
    gz: bytes
    segments: list[list[Any]]  # [sha256, xz offset, xz length, xz unpadded, gz offset, gz length]
    pieces: list[tuple[Piece, Piece]]  # (xz block, deflate segment) of each segment


# --- cutting ---------------------------------------------------------------------------------


def split_segments(stanzas: Iterable[tuple[str, bytes]]) -> list[bytes]:
    """Join ``(package name, stanza)`` pairs, in order, into segments cut by content.

    All stanzas of one package stay together unless the segment reaches ``SEGMENT_MAX``."""
    segments: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    previous = None
    for name, stanza in stanzas:
        if parts and (
            size >= SEGMENT_MAX or (name != previous and size >= SEGMENT_MIN and _cut(name, stanza))
        ):
            segments.append(b"".join(parts))
            parts, size = [], 0
        parts.append(stanza)
        size += len(stanza)
        previous = name
    if parts:
        segments.append(b"".join(parts))
    return segments


def _cut(name: str, stanza: bytes) -> bool:
    """Whether a segment may end before this package: decided by its name alone (and its size)."""
    chance = max(1, (len(stanza) << 16) // SEGMENT_SPREAD)
    return zlib.crc32(name.encode("utf-8", "surrogateescape")) & 0xFFFF < chance


# --- compressing one segment -------------------------------------------------------------------


def xz_block(data: bytes) -> Piece:
    """One xz block holding ``data``: header (both sizes, the LZMA2 filter), data, padding, CRC32."""
    body = lzma.compress(data, format=lzma.FORMAT_RAW, filters=_XZ_FILTERS)
    fields = bytes([0xC0]) + _vli(len(body)) + _vli(len(data)) + b"\x21\x01" + bytes([_DICT_BYTE])
    size = -(-(1 + len(fields) + 4) // 4) * 4
    header = bytes([size // 4 - 1]) + fields
    header += bytes(size - 4 - len(header))
    header += struct.pack("<I", zlib.crc32(header))
    padding = bytes(-len(body) % 4)
    check = struct.pack("<I", zlib.crc32(data))
    return Piece(header + body + padding + check, unpadded=len(header) + len(body) + len(check))


def deflate_segment(data: bytes) -> Piece:
    """Raw deflate of ``data`` ended by a full flush: it can be followed by any other segment."""
    encoder = zlib.compressobj(_GZ_LEVEL, zlib.DEFLATED, -15)
    return Piece(encoder.compress(data) + encoder.flush(zlib.Z_FULL_FLUSH))


# --- whole files -----------------------------------------------------------------------------


def xz_file(blocks: Sequence[tuple[Piece, int]]) -> bytes:
    """A single-stream .xz of ``(block, uncompressed size)`` pairs, in order."""
    index = b"\x00" + _vli(len(blocks)) + b"".join(_vli(b.unpadded) + _vli(n) for b, n in blocks)
    index += bytes(-len(index) % 4)
    index += struct.pack("<I", zlib.crc32(index))
    footer_fields = struct.pack("<I", len(index) // 4 - 1) + _STREAM_FLAGS
    return b"".join(
        [
            _XZ_MAGIC + _STREAM_FLAGS + struct.pack("<I", zlib.crc32(_STREAM_FLAGS)),
            *(b.data for b, _ in blocks),
            index,
            struct.pack("<I", zlib.crc32(footer_fields)) + footer_fields + b"YZ",
        ]
    )


def gz_file(pieces: Sequence[Piece], plain: bytes) -> bytes:
    """One gzip member of the deflate ``pieces`` of ``plain``; mtime 0 and no name, so reproducible."""
    trailer = struct.pack("<II", zlib.crc32(plain), len(plain) & 0xFFFFFFFF)
    return b"".join([_GZ_HEADER, *(p.data for p in pieces), _GZ_END, trailer])


def _vli(value: int) -> bytes:
    """xz's variable-length integer: seven bits a byte, least significant first."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# --- reuse -----------------------------------------------------------------------------------

Reader = Callable[[str], bytes | None]


class SegmentCache:
    """Compressed segments by (kind, sha256 of the plain bytes): this process's, and the previous index's.

    ``previous`` is the table the last build wrote (compressed file path -> segment rows) and
    ``read`` reads a file of that build; a file is read only when one of its segments is wanted,
    and a slice is used only if it checks out: its sha256 is the one recorded, and an xz block's
    CRC32 is that of the plain bytes, a deflate segment inflates to exactly them. Anything else
    is compressed again: reuse is never needed for a correct result, only for a fast one."""

    def __init__(
        self, previous: Mapping[str, Sequence[Sequence[Any]]] | None = None, read: Reader | None = None
    ) -> None:
        self.memory: dict[tuple[str, str], Piece] = {}
        self._wanted: dict[tuple[str, str], tuple[str, int, int, int, str]] = {}
        self._files: dict[str, bytes | None] = {}
        self._read = read
        self.reused = 0
        self.compressed = 0
        for path, rows in (previous or {}).items():
            kind = XZ if path.endswith(".xz") else GZ if path.endswith(".gz") else None
            if kind is None:
                continue
            for row in rows:
                parsed = _parse_row(row)
                if parsed is not None:
                    self._wanted.setdefault((kind, parsed[0]), (path, *parsed[1:]))

    def get(self, kind: str, digest: str, plain: bytes) -> Piece | None:
        piece = self.memory.get((kind, digest))
        if piece is None:
            piece = self._from_previous(kind, digest, plain)
        if piece is not None:
            self.reused += 1
        return piece

    def _from_previous(self, kind: str, digest: str, plain: bytes) -> Piece | None:
        where = self._wanted.get((kind, digest))
        if where is None or self._read is None:
            return None
        path, offset, length, unpadded, sealed = where
        if path not in self._files:
            self._files[path] = self._read(path)
        data = self._files[path]
        if data is None or offset + length > len(data):
            return None
        piece = Piece(data[offset : offset + length], unpadded)
        if hashlib.sha256(piece.data).hexdigest() != sealed or not _checks_out(kind, piece, plain):
            return None
        return piece

    def keep(self, kind: str, digest: str, piece: Piece) -> None:
        self.memory[(kind, digest)] = piece

    def retain(self, used: Iterable[tuple[str, str]]) -> None:
        """Forget every segment but ``used`` (a warm process must not grow without bound)."""
        wanted = set(used)
        self.memory = {k: v for k, v in self.memory.items() if k in wanted}
        self._wanted.clear()
        self._files.clear()


def _parse_row(row: Any) -> tuple[str, int, int, int, str] | None:
    """``[plain sha256, offset, length, unpadded, piece sha256]`` with sane types, else None (a
    damaged table is ignored)."""
    if (
        not isinstance(row, list)
        or len(row) != 5
        or not isinstance(row[0], str)
        or not isinstance(row[4], str)
    ):
        return None
    numbers = row[1:4]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        return None
    return row[0], numbers[0], numbers[1], numbers[2], row[4]


def _checks_out(kind: str, piece: Piece, plain: bytes) -> bool:
    if kind == GZ:
        try:
            decoder = zlib.decompressobj(-15)
            return decoder.decompress(piece.data, len(plain) + 1) == plain and not decoder.unconsumed_tail
        except zlib.error:
            return False
    data = piece.data
    if len(data) < 12 or len(data) % 4:
        return False
    header_size = (data[0] + 1) * 4
    header = data[:header_size]
    if len(header) != header_size or struct.unpack("<I", header[-4:])[0] != zlib.crc32(header[:-4]):
        return False
    return struct.unpack("<I", data[-4:])[0] == zlib.crc32(plain) and 0 < piece.unpadded <= len(data)


# --- the whole job ---------------------------------------------------------------------------


class PackagesCompressor:
    """Compresses Packages files segment by segment on ``workers`` threads, reusing ``cache``.

    ``submit`` starts a file's segments and returns at once, so the caller can do other work
    (lzma and zlib release the GIL) before ``result``; ``compress`` is both. The threads are
    the compressor's own, shared by every file it is given (at most ``workers`` encoders, and
    their memory, at a time) until ``close``."""

    def __init__(self, cache: SegmentCache | None = None, workers: int | None = None) -> None:
        self.cache = cache if cache is not None else SegmentCache()
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.used: set[tuple[str, str]] = set()
        self.tables: dict[str, list[list[Any]]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def compress(self, stanzas: Iterable[tuple[str, bytes]]) -> Compressed:
        """The Packages file of ``(package name, stanza)`` pairs, in order, and its .xz and .gz."""
        return self.submit(stanzas).result()

    def submit(self, stanzas: Iterable[tuple[str, bytes]]) -> PendingCompression:
        """Start compressing what the cache does not hold; ``result()`` waits for it."""
        segments = split_segments(stanzas)
        digests = [hashlib.sha256(s).hexdigest() for s in segments]
        pieces: dict[tuple[str, str], Piece] = {}
        todo: list[tuple[str, str, bytes]] = []
        queued: set[tuple[str, str]] = set()
        for digest, segment in zip(digests, segments, strict=True):
            for kind in (XZ, GZ):
                if (kind, digest) in pieces or (kind, digest) in queued:
                    continue
                found = self.cache.get(kind, digest, segment)
                if found is not None:
                    pieces[(kind, digest)] = found
                else:
                    todo.append((kind, digest, segment))
                    queued.add((kind, digest))
        futures = self._start(todo)
        return PendingCompression(functools.partial(self._assemble, segments, digests, pieces, todo), futures)

    def _start(self, todo: Sequence[tuple[str, str, bytes]]) -> list[Future[Piece]]:
        work = [xz_block if kind == XZ else deflate_segment for kind, _, _ in todo]
        if self.workers <= 1 or not todo:
            return [_done(f(data)) for f, (_, _, data) in zip(work, todo, strict=True)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ghapt-compress")
        # Biggest xz blocks first: they take longest, and the gz pieces fill the gaps.
        order = sorted(range(len(todo)), key=lambda i: (todo[i][0] != XZ, -len(todo[i][2])))
        futures = {i: self._pool.submit(work[i], todo[i][2]) for i in order}
        return [futures[i] for i in range(len(todo))]

    def close(self) -> None:
        """Let the threads go (after finishing what was submitted); a later ``submit`` starts new ones."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> PackagesCompressor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _assemble(
        self,
        segments: list[bytes],
        digests: list[str],
        pieces: dict[tuple[str, str], Piece],
        todo: Sequence[tuple[str, str, bytes]],
        made: list[Piece],
    ) -> Compressed:
        for (kind, digest, _), piece in zip(todo, made, strict=True):
            pieces[(kind, digest)] = piece
            self.cache.compressed += 1
        for (kind, digest), piece in pieces.items():  # compressed now or reused: kept for the next build
            self.cache.keep(kind, digest, piece)
            self.used.add((kind, digest))
        plain = b"".join(segments)
        xz_pieces = [(pieces[(XZ, d)], len(s)) for d, s in zip(digests, segments, strict=True)]
        gz_pieces = [pieces[(GZ, d)] for d in digests]
        xz = xz_file(xz_pieces)
        gz = gz_file(gz_pieces, plain)
        rows: list[list[Any]] = []
        xz_at, gz_at = 12, len(_GZ_HEADER)
        for digest, (xp, _), gp in zip(digests, xz_pieces, gz_pieces, strict=True):
            rows.append([digest, xz_at, len(xp.data), xp.unpadded, gz_at, len(gp.data)])
            xz_at += len(xp.data)
            gz_at += len(gp.data)
        return Compressed(
            plain, xz, gz, rows, [(x, g) for (x, _), g in zip(xz_pieces, gz_pieces, strict=True)]
        )

    def table_for(self, xz_path: str, gz_path: str, compressed: Compressed) -> None:
        """Record where ``compressed``'s segments sit, for the next build's ``SegmentCache``."""
        seals = [(_seal(x), _seal(g)) for x, g in compressed.pieces]
        self.tables[xz_path] = [
            [r[0], r[1], r[2], r[3], s[0]] for r, s in zip(compressed.segments, seals, strict=True)
        ]
        self.tables[gz_path] = [
            [r[0], r[4], r[5], 0, s[1]] for r, s in zip(compressed.segments, seals, strict=True)
        ]


class PendingCompression:
    """One Packages file being compressed: ``result()`` waits for its segments and joins them."""

    def __init__(self, assemble: Callable[[list[Piece]], Compressed], futures: list[Future[Piece]]) -> None:
        self._assemble = assemble
        self._futures = futures
        self._result: Compressed | None = None

    def result(self) -> Compressed:
        if self._result is None:
            self._result = self._assemble([f.result() for f in self._futures])
        return self._result


def _done(piece: Piece) -> Future[Piece]:
    future: Future[Piece] = Future()
    future.set_result(piece)
    return future


def _seal(piece: Piece) -> str:
    return hashlib.sha256(piece.data).hexdigest()
