"""Benchmark inputs: real .debs built with dpkg-deb, real Debian packages fetched with apt, many small
.debs and one huge .deb written by hand.

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
import re
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.support.debbuild import build_deb
from tests.support.realcontrols import REAL

from .common import REPO_ROOT

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


# --- many small .debs, written by hand --------------------------------------------------------
def _tar_gz(members: dict[str, bytes], level: int = 6) -> bytes:
    """A gzipped tar with ``./``, the parent folders of ``members`` and the members themselves."""
    raw = io.BytesIO()
    folders = sorted({"/".join(n.split("/")[:i]) for n in members for i in range(1, n.count("/") + 1)})
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in ["", *folders]:
            info = tarfile.TarInfo(f"./{name}/" if name else "./")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _MTIME
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, _MTIME
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)


def write_small_deb(path: Path, control: str, files: dict[str, bytes]) -> Path:
    """A .deb with gzipped control and data members, written without dpkg-deb.

    Tens of microseconds instead of a dpkg-deb process each: 10,000 of them take seconds."""
    parts = [b"!<arch>\n"]
    members = (
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", _tar_gz({"control": control.encode()})),
        ("data.tar.gz", _tar_gz(files, level=1)),
    )
    for name, data in members:
        parts.append(_ar_header(name, len(data)) + data + (b"\n" if len(data) % 2 else b""))
    path.write_bytes(b"".join(parts))
    return path


def small_pool(
    root: Path,
    n: int,
    *,
    min_size: int = 200,
    max_size: int = 2_000,
    per_folder: int = 10,
    seed: int = 3,
    tag: str = "s",
) -> list[Path]:
    """``n`` distinct packages, one version each, amd64 or ``all``, in ``root/<folder>/`` folders of
    ``per_folder``; returns the paths in order. Names end in ``-<tag><i>``: pools with different
    tags never share a name.

    Control files come from the real templates (as in ``plan``); payloads are random bytes of a
    log-uniform size. Distinct names keep every tool's index at ``n`` stanzas: reprepro keeps one
    version per package name."""
    rng = random.Random(seed)
    templates = sorted(REAL)
    paths = []
    for i in range(n):
        template = templates[i % len(templates)]
        source_field = _field(REAL[template], "Source")
        spec = DebSpec(
            package=f"{template}-{tag}{i:05d}",
            source=f"{(source_field.split()[0] if source_field else template)}-{tag}{i:05d}",
            version=f"{1 + i % 7}.{rng.randrange(30)}-{1 + rng.randrange(3)}",
            arch=("amd64", "amd64", "all")[i % 3],
            compression="gzip",
            payload=int(math.exp(rng.uniform(math.log(min_size), math.log(max_size)))),
            template=template,
        )
        files = {
            f"usr/lib/{spec.package}/payload.bin": rng.randbytes(spec.payload),
            f"usr/share/doc/{spec.package}/README": f"{spec.package} {spec.version}\n".encode(),
        }
        folder = root / f"r{i // per_folder:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        control = control_for(spec, max(1, sum(map(len, files.values())) // 1024))
        deb = folder / f"{spec.package}_{spec.version}_{spec.arch}.deb"
        paths.append(write_small_deb(deb, control, files))
    return paths


# --- real Debian packages, fetched once with apt-get download ---------------------------------
REAL_CACHE = REPO_ROOT / ".ghapt" / "bench" / "debian-debs"
SPARE = 10


def debian_selection(
    count: int, *, min_size: int, max_size: int, exclude: frozenset[str] = frozenset()
) -> list[str]:
    """``count`` package names spread evenly over the sorted names apt knows (amd64 or ``all``,
    ``min_size`` to ``max_size`` bytes, not in ``exclude``): a deterministic sample of the archive."""
    dump = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    sizes: dict[str, int] = {}
    for stanza in dump.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, re.MULTILINE))
        if "Filename" in fields and fields.get("Architecture") in ("amd64", "all"):
            sizes[fields["Package"]] = int(fields.get("Size", "0"))
    names = sorted(k for k, v in sizes.items() if min_size <= v <= max_size and k not in exclude)
    if len(names) < count:
        raise RuntimeError(f"apt knows only {len(names)} packages of {min_size}-{max_size} bytes")
    return [names[i * len(names) // count] for i in range(count)]


def fetch_debian_debs(
    n: int,
    *,
    extra: int = 0,
    total: int = 400,
    cache: Path = REAL_CACHE,
    min_size: int = 20_000,
    max_size: int = 450_000,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """``n`` real Debian .debs (an even subset of a fixed sample of ``total``, sorted by name), then
    ``extra`` more from a spare sample of ``SPARE`` others (the packages added to an existing
    repository); downloaded once with ``apt-get download`` into ``cache`` and reused.

    The samples' names are written to ``cache/selection.txt`` and ``cache/spare.txt`` on first
    use, so later runs use the same packages even after ``apt-get update``. Raises
    ``RuntimeError`` when apt cannot fetch them (no mirror): callers fall back to synthetic ones."""
    if extra > SPARE:
        raise ValueError(f"at most {SPARE} extra packages, not {extra}")
    cache.mkdir(parents=True, exist_ok=True)
    listing, spares = cache / "selection.txt", cache / "spare.txt"
    if not listing.exists():
        sample = debian_selection(total, min_size=min_size, max_size=max_size)
        listing.write_text("\n".join(sample) + "\n")
    sample = listing.read_text().split()
    if not spares.exists():
        others = debian_selection(SPARE, min_size=min_size, max_size=max_size, exclude=frozenset(sample))
        spares.write_text("\n".join(others) + "\n")
    wanted = [sample[i * len(sample) // n] for i in range(n)] if n < len(sample) else sample
    wanted += spares.read_text().split()[:extra]

    def found() -> dict[str, Path]:
        return {p.name.split("_", 1)[0]: p for p in cache.glob("*.deb")}

    missing = [name for name in wanted if name not in found()]
    if missing:
        log(f"  downloading {len(missing)} Debian packages with apt-get download into {cache}")
        proc = subprocess.run(
            ["apt-get", "download", "-q", *missing], cwd=cache, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"apt-get download failed: {proc.stderr.strip()[-500:]}")
    have = found()
    lost = [name for name in wanted if name not in have]
    if lost:
        raise RuntimeError(f"apt-get download did not fetch {len(lost)} packages: {' '.join(lost[:5])}")
    return [have[name] for name in wanted]
