"""Hand-built .deb files, broken on purpose, for the reader's tests.

dpkg-deb refuses to build most of these, so the ar and tar layers are written here directly.
Everything is built in memory or streamed; nothing large ever touches the disk.
"""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
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


def zero_gzip_members(total: int, member_size: int = 64 << 20) -> Iterator[bytes]:
    """Concatenated gzip members that inflate to ``total`` zero bytes, built from one member.

    A valid multi-member gzip stream; a few KiB per 64 MiB, so gigabytes cost nothing to make."""
    assert total % member_size == 0
    one = gzip.compress(bytes(member_size), compresslevel=9, mtime=0)
    for _ in range(total // member_size):
        yield one


def zero_xz_streams(total: int, stream_size: int = 64 << 20) -> Iterator[bytes]:
    """Concatenated xz streams that decompress to ``total`` zero bytes (valid per xz's format)."""
    assert total % stream_size == 0
    one = lzma.compress(bytes(stream_size), format=lzma.FORMAT_XZ, preset=0)
    for _ in range(total // stream_size):
        yield one
