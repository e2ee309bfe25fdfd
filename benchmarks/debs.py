"""Benchmark inputs: a pool of real .debs built with dpkg-deb, and one huge .deb written by hand.

The pool is deterministic for a given ``seed``: package names, versions, architectures,
compressors and payload sizes (log-uniform, incompressible random bytes) all come from it.
Control files start from real Debian control paragraphs (``tests/support/realcontrols.REAL``: long
dependency lists, multi-line descriptions, ``Source: name (version)``, vendor fields) with the
package's own name, version, architecture and Installed-Size put in.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import random
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.support.debbuild import build_deb
from tests.support.realcontrols import REAL

COMPRESSORS = ("gzip", "xz", "zstd")
ARCHES = ("amd64", "amd64", "arm64", "all")  # amd64 most common, like a real release
_MTIME = 1_700_000_000


@dataclass(frozen=True)
class DebSpec:
    package: str
    source: str
    version: str
    arch: str
    compression: str
    payload: int  # bytes of incompressible data
    template: str

    @property
    def folder(self) -> str:
        """The pool folder (one per source package; the local backend reads it as a release tag)."""
        return self.source


def plan(n: int, *, min_size: int, max_size: int, seed: int = 1) -> list[DebSpec]:
    """``n`` distinct packages/versions: about one package name per three debs, several versions each."""
    rng = random.Random(seed)
    templates = sorted(REAL)
    names = max(1, n // 3)
    specs = []
    for i in range(n):
        k, rev = i % names, i // names
        template = templates[k % len(templates)]
        package = f"{template}-b{k:03d}"
        source_field = _field(REAL[template], "Source")
        source_base = source_field.split()[0] if source_field else template
        source = f"{source_base}-b{k:03d}"
        version = f"{1 + k % 4}.{rev}.{rng.randrange(20)}-{1 + rng.randrange(3)}"
        if rng.random() < 0.1:
            version = f"1:{version}"
        elif rng.random() < 0.1:
            version = version.replace("-", "~rc1-", 1)
        size = int(math.exp(rng.uniform(math.log(min_size), math.log(max_size))))
        specs.append(
            DebSpec(
                package=package,
                source=source,
                version=version,
                arch=ARCHES[i % len(ARCHES)],
                compression=COMPRESSORS[i % len(COMPRESSORS)],
                payload=size,
                template=template,
            )
        )
    return specs


def _field(control: str, name: str) -> str:
    for line in control.splitlines():
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def control_for(spec: DebSpec, installed_kb: int) -> str:
    """The template's control paragraph with this package's identity in it."""
    out = []
    skip_continuation = False
    for line in REAL[spec.template].splitlines(keepends=True):
        if line[:1] in (" ", "\t"):
            if not skip_continuation:
                out.append(line)
            continue
        skip_continuation = False
        name = line.split(":", 1)[0].lower()
        if name == "package":
            out.append(f"Package: {spec.package}\n")
        elif name == "version":
            out.append(f"Version: {spec.version}\n")
        elif name == "architecture":
            out.append(f"Architecture: {spec.arch}\n")
        elif name == "source":
            out.append(f"Source: {spec.source}\n" if spec.source != spec.package else "")
        elif name == "installed-size":
            out.append(f"Installed-Size: {installed_kb}\n")
        elif name == "multi-arch" and spec.arch == "all" and "same" in line:
            out.append("Multi-Arch: foreign\n")
        else:
            out.append(line)
    text = "".join(out)
    if "\nSource:" not in "\n" + text and spec.source != spec.package:
        text = text.replace(
            f"Package: {spec.package}\n", f"Package: {spec.package}\nSource: {spec.source}\n", 1
        )
    return text


def build_pool(pool: Path, specs: list[DebSpec], *, seed: int = 1, workers: int | None = None) -> list[Path]:
    """Build every spec into ``pool/<source>/`` with dpkg-deb; returns the .deb paths."""

    def one(item: tuple[int, DebSpec]) -> Path:
        i, spec = item
        rng = random.Random(seed * 1_000_003 + i)
        doc = f"usr/share/doc/{spec.package}"
        files = {
            f"usr/lib/{spec.package}/payload.bin": rng.randbytes(spec.payload),
            f"{doc}/README": (f"{spec.package} {spec.version}\n" * 20).encode(),
            f"{doc}/copyright": b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            * 10,
        }
        installed = max(1, sum(len(v) for v in files.values()) // 1024)
        return build_deb(
            pool / spec.folder,
            spec.package,
            spec.version,
            spec.arch,
            compression=spec.compression,
            control=control_for(spec, installed),
            files=files,
        )

    with ThreadPoolExecutor(max_workers=workers or 2) as ex:
        return list(ex.map(one, enumerate(specs)))


# --- one huge .deb, streamed to disk --------------------------------------------------------
def _ar_header(name: str, size: int) -> bytes:
    header = f"{name:<16}{_MTIME:<12}{0:<6}{0:<6}{'100644':<8}{size:<10}`\n".encode()
    assert len(header) == 60
    return header


def _control_tar_gz(control: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("./")
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _MTIME
        tar.addfile(info)
        data = control.encode()
        info = tarfile.TarInfo("./control")
        info.size, info.mode, info.mtime = len(data), 0o644, _MTIME
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _chunks(total: int, seed: int) -> Iterator[bytes]:
    """``total`` random-looking bytes, 1 MiB at a time, never holding more than one block."""
    block = bytearray(random.Random(seed).randbytes(1 << 20))
    done = 0
    counter = 0
    while done < total:
        counter += 1
        block[:8] = counter.to_bytes(8, "little")  # no two blocks alike
        piece = bytes(block[: min(len(block), total - done)])
        done += len(piece)
        yield piece


def write_big_deb(
    path: Path, payload: int, *, seed: int = 7, progress: Callable[[int], None] | None = None
) -> str:
    """A valid .deb of about ``payload`` bytes with an uncompressed data.tar; returns its SHA256.

    Written with the ar and tar formats by hand, streaming: memory stays at one 1 MiB block."""
    control = (
        "Package: huge-blob\nVersion: 1.0-1\nArchitecture: amd64\n"
        "Maintainer: ghapt benchmarks <bench@example.invalid>\n"
        f"Installed-Size: {payload // 1024}\nSection: misc\nPriority: optional\n"
        "Description: one very large file\n A benchmark package holding a single large payload.\n"
    )
    ctrl = _control_tar_gz(control)
    head = io.BytesIO()
    for name in ("./", "./usr/", "./usr/share/", "./usr/share/huge-blob/"):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _MTIME
        head.write(info.tobuf(format=tarfile.GNU_FORMAT))
    info = tarfile.TarInfo("./usr/share/huge-blob/blob.bin")
    info.size, info.mode, info.mtime = payload, 0o644, _MTIME
    head.write(info.tobuf(format=tarfile.GNU_FORMAT))
    pad = (-payload) % 512
    tail = b"\0" * pad + b"\0" * 1024
    data_size = len(head.getvalue()) + payload + len(tail)

    sha = hashlib.sha256()

    def put(f: io.BufferedWriter, data: bytes) -> None:
        f.write(data)
        sha.update(data)

    with path.open("wb") as f:
        put(f, b"!<arch>\n")
        for name, data in (("debian-binary", b"2.0\n"), ("control.tar.gz", ctrl)):
            put(f, _ar_header(name, len(data)) + data + (b"\n" if len(data) % 2 else b""))
        put(f, _ar_header("data.tar", data_size) + head.getvalue())
        written = 0
        for piece in _chunks(payload, seed):
            put(f, piece)
            written += len(piece)
            if progress is not None and written % (64 << 20) < len(piece):
                progress(written)
        put(f, tail + (b"\n" if data_size % 2 else b""))
    return sha.hexdigest()
