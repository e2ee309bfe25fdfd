"""Hand-built .deb files, broken on purpose, for the reader's tests.

dpkg-deb refuses to build most of these, so the ar and tar layers are written here directly.
Everything is built in memory or streamed; nothing large ever touches the disk.
"""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterable, Iterator

import zstandard

AR_MAGIC = b"!<arch>\n"
CONTROL_NAMES = {
    "gzip": "control.tar.gz",
    "xz": "control.tar.xz",
    "zstd": "control.tar.zst",
    "none": "control.tar",
}


def ar_header(name: str | bytes, size: int | bytes, *, magic: bytes = b"`\n") -> bytes:
    """A 60-byte ar member header; ``size`` may be raw bytes to forge a bad size field."""
    raw_name = name.encode() if isinstance(name, str) else name
    raw_size = str(size).encode() if isinstance(size, int) else size
    return (
        raw_name.ljust(16)
        + b"1700000000".ljust(12)
        + b"0".ljust(6)
        + b"0".ljust(6)
        + b"100644".ljust(8)
        + raw_size.ljust(10)
        + magic
    )


def ar_member(name: str | bytes, data: bytes, *, size: int | bytes | None = None, pad: bool = True) -> bytes:
    """Header, content and the 2-byte alignment padding (``size`` forges the declared size)."""
    out = ar_header(name, len(data) if size is None else size) + data
    if pad and len(data) % 2:
        out += b"\n"
    return out


def ar(*members: bytes) -> bytes:
    return AR_MAGIC + b"".join(members)


def tar(files: Iterable[tuple[str, bytes]]) -> bytes:
    """An uncompressed GNU tar holding regular files, in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 1700000000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_header(path: str, size: int) -> bytes:
    """One 512-byte tar header for a regular file of ``size`` bytes (the content is not included)."""
    info = tarfile.TarInfo(path)
    info.size = size
    info.mtime = 1700000000
    return info.tobuf(format=tarfile.GNU_FORMAT)


def tar_entry(path: str, data: bytes) -> bytes:
    """One regular file as tar blocks (header, content, padding), without an end-of-archive."""
    return tar_header(path, len(data)) + data + bytes(-len(data) % 512)


def compress(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if kind == "none":
        return data
    raise ValueError(kind)


def control_tar(control: bytes, kind: str = "gzip", *, extra: Iterable[tuple[str, bytes]] = ()) -> bytes:
    """A compressed control tar with ``./control`` followed by ``extra`` files."""
    return compress(kind, tar([("./control", control), *extra]))


def deb(
    control: bytes,
    kind: str = "gzip",
    *,
    data: bytes = b"",
    control_member: bytes | None = None,
    control_name: str | None = None,
    version: bytes = b"2.0\n",
) -> bytes:
    """A structurally valid .deb around ``control`` (the data member holds an empty tar by default)."""
    member = control_member if control_member is not None else control_tar(control, kind)
    return ar(
        ar_member("debian-binary", version),
        ar_member(control_name or CONTROL_NAMES[kind], member),
        ar_member("data.tar.xz", data or compress("xz", tar([]))),
    )


MINIMAL_CONTROL = b"Package: hostile\nVersion: 1.0\nArchitecture: all\nDescription: x\n"


def zeros_then_control(zero_bytes: int, control: bytes = MINIMAL_CONTROL) -> Iterator[bytes]:
    """An uncompressed control tar, piece by piece: ``./big`` of ``zero_bytes`` zeros, then ``./control``.

    ``zero_bytes`` must be a multiple of 512 (no tar padding needed)."""
    assert zero_bytes % 512 == 0
    yield tar_header("./big", zero_bytes)
    chunk = bytes(1 << 20)
    left = zero_bytes
    while left:
        n = min(left, len(chunk))
        yield chunk if n == len(chunk) else bytes(n)
        left -= n
    yield tar([("./control", control)])


def compress_stream(kind: str, pieces: Iterable[bytes]) -> bytes:
    """One compressed stream over ``pieces``, compressed as they come (never all in memory)."""
    out: list[bytes] = []
    if kind == "gzip":
        z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9, zlib.Z_RLE)
        out.extend(z.compress(p) for p in pieces)
        out.append(z.flush())
    elif kind == "xz":
        x = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=0)
        out.extend(x.compress(p) for p in pieces)
        out.append(x.flush())
    elif kind == "zstd":
        c = zstandard.ZstdCompressor().compressobj()
        out.extend(c.compress(p) for p in pieces)
        out.append(c.flush())
    else:
        raise ValueError(kind)
    return b"".join(out)


def concatenated_bomb(
    kind: str, zero_bytes: int, *, control: bytes = MINIMAL_CONTROL, first: bool = False
) -> bytes:
    """A control member of concatenated streams (valid for gzip, xz and zstd) with a file of
    ``zero_bytes`` zeros; ``./control`` comes after it, or before it when ``first``.

    One 64 MiB stream of zeros is compressed once and repeated, so gigabytes cost a few MiB."""
    unit = 64 << 20
    assert zero_bytes % unit == 0
    zeros = compress_stream(kind, [bytes(unit)])
    head = tar_header("./big", zero_bytes)
    parts = [compress(kind, tar_entry("./control", control) + head)] if first else [compress(kind, head)]
    parts.extend(zeros for _ in range(zero_bytes // unit))
    parts.append(compress(kind, bytes(1024) if first else tar([("./control", control)])))
    return b"".join(parts)


def xz_needing_memory(data: bytes, dict_byte: int = 0x24) -> bytes:
    """``data`` as xz whose block header claims a huge LZMA2 dictionary (0x24: 1 GiB).

    The data still decodes with a small dictionary; only the claimed memory changes."""
    raw = bytearray(
        lzma.compress(data, format=lzma.FORMAT_XZ, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 16}])
    )
    size = (raw[12] + 1) * 4
    assert raw[13] == 0
    assert raw[14] == 0x21
    assert raw[15] == 1
    raw[16] = dict_byte
    raw[12 + size - 4 : 12 + size] = zlib.crc32(bytes(raw[12 : 12 + size - 4])).to_bytes(4, "little")
    return bytes(raw)


def zstd_needing_memory(data: bytes, window_log: int = 30) -> bytes:
    """``data`` as a zstd frame whose header asks for a ``2**window_log`` byte window."""
    raw = bytearray(zstandard.ZstdCompressor(write_content_size=False).compress(data))
    assert raw[4] & 0x20 == 0  # no single-segment flag, so byte 5 is the window descriptor
    raw[5] = (window_log - 10) << 3
    return bytes(raw)
