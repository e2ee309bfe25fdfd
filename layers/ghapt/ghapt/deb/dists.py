"""The APT index: pool paths, Packages stanzas, entry selection, and the dists/ tree.

Pure functions: bytes in, bytes out, no I/O besides compression. A stanza is exactly what
``dpkg-scanpackages -m`` writes for the same .deb, so a client sees the same index whether
the repository was built by ghapt or by Debian's own tools. The rules come from dpkg 1.21's
``Dpkg::Control::HashCore`` (parse/output) and ``Dpkg::Control::FieldsCore`` (field order
and names for ``CTRL_INDEX_PKG``); the tests compare against the real tool byte for byte.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from debian.debian_support import Version

from ghapt.core.errors import BadDebError
from ghapt.core.layout import MAX_INDEX_FILE_BYTES
from ghapt.core.model import DebInfo, IndexedAsset, Skipped
from ghapt.deb.compression import PackagesCompressor
from ghapt.deb.control import PERL_BLANKS, render_stanza, version_problem

# Names that are safe as pool path segments (a hostile control file must not leave the pool).
_SAFE_PACKAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$")
_SAFE_VERSION_RE = re.compile(r"^[A-Za-z0-9.+~:-]+$")
_SAFE_ARCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

# Release: the digests listed, strongest last (apt fetches by-hash with the strongest one).
RELEASE_HASHES: tuple[tuple[str, str], ...] = (("SHA256", "sha256"), ("SHA512", "sha512"))
PACKAGES_FILES = ("Packages", "Packages.gz", "Packages.xz")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --- pool paths ----------------------------------------------------------------------------


def pool_path(deb: DebInfo, component: str) -> str:
    """``pool/<component>/<prefix>/<source>/<package>_<version sans epoch>_<arch>.deb``.

    Built from the control data only: GitHub renames assets (``~`` and ``:`` become ``.``).
    Raises ``BadDebError`` for names that are not safe as path segments, so a hostile
    control file cannot point outside the pool."""
    package, version, arch = _pva(deb)
    source = deb.source.strip(PERL_BLANKS)
    label = f"{package or '?'}_{version or '?'}_{arch or '?'}"
    for what, value, pattern in (
        ("Package", package, _SAFE_PACKAGE_RE),
        ("Source", source, _SAFE_PACKAGE_RE),
        ("Version", version, _SAFE_VERSION_RE),
        ("Architecture", arch, _SAFE_ARCH_RE),
    ):
        if not pattern.match(value):
            raise BadDebError(label, f"{what} {value!r} is missing or not a valid name")
    if not _SAFE_NAME_RE.match(component):
        raise ValueError(f"component {component!r} is not a valid name")
    prefix = source[:4] if source.startswith("lib") and len(source) > 3 else source[:1]
    noepoch = version.split(":", 1)[1] if ":" in version else version
    return f"pool/{component}/{prefix}/{source}/{package}_{noepoch}_{arch}.deb"


def _pva(deb: DebInfo) -> tuple[str, str, str]:
    """Package, Version, Architecture as dpkg reads them (surrounding blanks ignored)."""
    return deb.package.strip(PERL_BLANKS), deb.version.strip(PERL_BLANKS), deb.architecture.strip(PERL_BLANKS)


# --- stanzas -------------------------------------------------------------------------------


# --- selection -----------------------------------------------------------------------------


def _natural(text: str) -> tuple[tuple[int, str], ...]:
    """Digits compared as numbers: tag v1.9 before v1.10, asset id 99 before 123."""
    parts = re.split(r"([0-9]+)", text)
    return tuple((int(p), p) if i % 2 else (0, p) for i, p in enumerate(parts))


def _preference(entry: IndexedAsset) -> tuple[object, ...]:
    """Which of two clashing entries wins: the earlier release, then asset name, then key.

    Releases and keys compare naturally, so the older tag (and, for GitHub, the older asset
    id) wins and a new upload cannot displace what clients already have."""
    a = entry.asset
    return (_natural(a.release), _natural(a.name), _natural(a.key), entry.deb.hashes.sha256)


def _entry_key(entry: IndexedAsset) -> tuple[object, ...]:
    """Index order: package, Debian version order, architecture, pool path."""
    package, version, arch = _pva(entry.deb)
    return (package, Version(version), arch, entry.pool_path, _preference(entry))


def _sorted_entries(entries: Iterable[IndexedAsset]) -> list[IndexedAsset]:
    return sorted(entries, key=_entry_key)


def _describe(entry: IndexedAsset) -> str:
    a = entry.asset
    return f"{a.name} (release {a.release}, {a.key})"


def _invalid(entry: IndexedAsset) -> str | None:
    package, version, arch = _pva(entry.deb)
    if not package or not arch:
        return "the control file lacks Package or Architecture"
    if version_problem(version):
        return f"Version {version!r} is not a valid Debian version"
    return None


def select_entries(candidates: Iterable[IndexedAsset]) -> tuple[list[IndexedAsset], list[Skipped]]:
    """Keep every version of every package; drop duplicates and conflicts.

    Two entries clash when they share a pool path (``1:2.0`` and ``2.0``) or have the same
    Package and Architecture and versions dpkg considers equal (``1.0``, ``1.00``,
    ``0:1.0``). Identical contents (same sha256) are merged silently; different contents
    are a conflict: the preferred entry (see ``_preference``) is kept and the other one is
    returned as Skipped naming both. The result does not depend on the input order and is
    sorted by package, Debian version, architecture and pool path."""
    kept: list[IndexedAsset] = []
    skipped: list[Skipped] = []
    by_path: dict[str, IndexedAsset] = {}
    by_name: dict[tuple[str, str], list[IndexedAsset]] = {}
    for entry in sorted(candidates, key=_preference):
        problem = _invalid(entry)
        if problem:
            skipped.append(Skipped(entry.asset, problem))
            continue
        deb = entry.deb
        package, version, arch = _pva(deb)
        clash, why = None, ""
        for other in by_name.get((package, arch), []):
            other_version = _pva(other.deb)[1]
            if Version(other_version) == Version(version):
                clash = other
                why = f"same Package/Version/Architecture {package} {version} {arch}"
                if other_version != version:
                    why += f" (dpkg treats {other_version} and {version} as equal)"
                break
        if clash is None and entry.pool_path in by_path:
            clash, why = by_path[entry.pool_path], f"same pool path {entry.pool_path}"
        if clash is None:
            kept.append(entry)
            by_path[entry.pool_path] = entry
            by_name.setdefault((package, arch), []).append(entry)
        elif clash.deb.hashes.sha256 != deb.hashes.sha256:
            skipped.append(
                Skipped(
                    entry.asset,
                    f"conflict: {_describe(entry)} and {_describe(clash)} have the {why} but different "
                    f"contents (sha256 {deb.hashes.sha256[:16]}… vs {clash.deb.hashes.sha256[:16]}…); "
                    f"kept {clash.asset.name} from release {clash.asset.release}",
                )
            )
        # else: the same bytes published twice; one copy is enough.
    return _sorted_entries(kept), skipped


# --- Packages and dists/ -------------------------------------------------------------------


def _arch_entries(entries: Iterable[IndexedAsset], arch: str) -> list[IndexedAsset]:
    return [e for e in _sorted_entries(entries) if _pva(e.deb)[2] in (arch, "all")]


def packages_for_arch(entries: Iterable[IndexedAsset], arch: str) -> bytes:
    """The Packages file of ``arch``: its packages and every ``all`` package.

    Framed like dpkg-scanpackages (each stanza ends with a blank line); entries are sorted
    here, so the same set of entries always gives the same bytes."""
    return b"".join(render_stanza(e.deb, e.pool_path) + b"\n" for e in _arch_entries(entries, arch))


def rfc1123(when: datetime) -> str:
    """``Sat, 27 Nov 2026 02:00:00 UTC``, independent of the locale. Naive times are refused."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("Release dates must be timezone-aware (use datetime.now(UTC))")
    t = when.astimezone(UTC)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} UTC"
    )


def _one_line(what: str, value: str) -> str:
    if not value or "\n" in value or value != value.strip():
        raise ValueError(f"{what} {value!r} must be one non-empty line")
    return value


def release_paths(suites: Iterable[str]) -> list[str]:
    """``dists/<suite>/Release`` of every suite, sorted (InRelease and Release.gpg sit beside)."""
    return sorted({f"dists/{s}/Release" for s in suites})


def byhash_paths(files: Mapping[str, bytes]) -> set[str]:
    """The by-hash copies in a build: the files a caller keeps for older generations."""
    return {p for p in files if "/by-hash/" in p}


def _check_pool(suites: Mapping[str, Sequence[IndexedAsset]]) -> None:
    """The pool is shared by every suite: one pool path must name one content everywhere."""
    owner: dict[str, IndexedAsset] = {}
    for suite in sorted(suites):
        kept, lost = select_entries(suites[suite])
        if lost:
            raise ValueError(f"suite {suite}: run select_entries first: " + "; ".join(s.reason for s in lost))
        for entry in kept:
            first = owner.setdefault(entry.pool_path, entry)
            if first.deb.hashes.sha256 != entry.deb.hashes.sha256:
                raise ValueError(
                    f"{entry.pool_path} is {_describe(first)} and {_describe(entry)} with different contents"
                )


def build_dists(
    suites: Mapping[str, Sequence[IndexedAsset]],
    *,
    component: str,
    architectures: Sequence[str],
    origin: str,
    label: str,
    date: datetime,
    valid_until: datetime | None = None,
    max_file_bytes: int | None = None,
    compressor: PackagesCompressor | None = None,
) -> dict[str, bytes]:
    """Every index file of every suite, path -> bytes, with by-hash copies and an unsigned Release.

    ``compressor`` makes the .xz and .gz files (and keeps the table of their segments for the
    next build to reuse); a fresh one compresses everything.

    Release lists ``Packages``, ``.gz`` and ``.xz`` of each architecture, but a file over
    ``max_file_bytes`` (too large for one Lambda response) is left out of the tree, by-hash
    copies too, as Debian's archives do with a large uncompressed Packages: apt fetches the
    ``.xz`` first and checks what it decompresses against the listed uncompressed hashes. An
    architecture whose ``.xz`` is still over the limit raises ``ValueError``. The limit is
    ``MAX_INDEX_FILE_BYTES`` unless ``max_file_bytes`` is given.

    Entries should come from ``select_entries``; a conflict left in (also across suites,
    which share the pool) raises ``ValueError`` rather than publishing an index apt cannot
    trust. Signing Release and keeping older by-hash generations is the caller's job."""
    if max_file_bytes is None:
        max_file_bytes = MAX_INDEX_FILE_BYTES
    arches = _check_names(suites, component, architectures)
    origin, label = _one_line("Origin", origin), _one_line("Label", label)
    if valid_until is not None and valid_until <= date:
        raise ValueError("Valid-Until must be after Date")
    _check_pool(suites)
    head = [f"Origin: {origin}", f"Label: {label}"]
    tail = [f"Date: {rfc1123(date)}"]
    if valid_until is not None:
        tail.append(f"Valid-Until: {rfc1123(valid_until)}")
    tail += [
        "Acquire-By-Hash: yes",
        "No-Support-for-Architecture-all: Packages",
        f"Architectures: {' '.join(arches)}",
        f"Components: {component}",
    ]
    files: dict[str, bytes] = {}
    compressor = compressor if compressor is not None else PackagesCompressor()
    for suite in sorted(suites):
        listed = _packages_files(suites[suite], component, arches, compressor, f"dists/{suite}/")
        for rel, data in listed.items():
            if len(data) <= max_file_bytes:
                files[f"dists/{suite}/{rel}"] = data
                for title, algo in RELEASE_HASHES:
                    folder = rel.rsplit("/", 1)[0]
                    files[f"dists/{suite}/{folder}/by-hash/{title}/{hashlib.new(algo, data).hexdigest()}"] = (
                        data
                    )
            elif rel.endswith(".xz"):
                raise ValueError(
                    f"dists/{suite}/{rel} is {len(data)} bytes, over the {max_file_bytes} bytes one "
                    "response can carry: too many packages for one index"
                )
            # else: listed in Release, not served (apt fetches the .xz and checks what it unpacks)
        lines = [
            *head,
            f"Suite: {suite}",
            f"Codename: {suite}",
            *tail,
            f"Description: {label} {suite} packages",
        ]
        for title, algo in RELEASE_HASHES:
            lines.append(f"{title}:")
            lines += [
                f" {hashlib.new(algo, data).hexdigest()} {len(data)} {rel}"
                for rel, data in sorted(listed.items())
            ]
        files[f"dists/{suite}/Release"] = ("\n".join(lines) + "\n").encode("utf-8")
    return files


def _check_names(
    suites: Mapping[str, Sequence[IndexedAsset]], component: str, architectures: Sequence[str]
) -> list[str]:
    """The architectures without repeats; ``ValueError`` for a name unsafe in a path."""
    if not _SAFE_NAME_RE.match(component):
        raise ValueError(f"component {component!r} is not a valid name")
    arches = list(dict.fromkeys(architectures))
    if not arches:
        raise ValueError("at least one architecture is needed")
    for arch in arches:
        if arch == "all" or not _SAFE_ARCH_RE.match(arch):
            raise ValueError(f"{arch!r} is not a binary architecture (`all` goes into each one)")
    for suite in suites:
        if not _SAFE_NAME_RE.match(suite):
            raise ValueError(f"suite {suite!r} is not a valid name")
    return arches


def _packages_files(
    entries: Sequence[IndexedAsset],
    component: str,
    arches: Sequence[str],
    compressor: PackagesCompressor,
    prefix: str,
) -> dict[str, bytes]:
    """``<component>/binary-<arch>/Packages{,.gz,.xz}`` of one suite, each stanza rendered once."""
    ordered = _sorted_entries(entries)
    stanzas = {id(e): render_stanza(e.deb, e.pool_path) + b"\n" for e in ordered}
    listed: dict[str, bytes] = {}
    for arch in arches:
        pairs = [(_pva(e.deb)[0], stanzas[id(e)]) for e in _arch_entries(ordered, arch)]
        folder = f"{component}/binary-{arch}"
        out = compressor.compress(pairs)
        compressor.table_for(f"{prefix}{folder}/Packages.xz", f"{prefix}{folder}/Packages.gz", out)
        for name, data in zip(PACKAGES_FILES, (out.plain, out.gz, out.xz), strict=True):
            listed[f"{folder}/{name}"] = data
    return listed
