"""The APT index: pool paths, Packages stanzas, entry selection, and the dists/ tree.

Pure functions: bytes in, bytes out, no I/O besides compression. A stanza is exactly what
``dpkg-scanpackages -m`` writes for the same .deb, so a client sees the same index whether
the repository was built by ghapt or by Debian's own tools. The rules come from dpkg 1.21's
``Dpkg::Control::HashCore`` (parse/output) and ``Dpkg::Control::FieldsCore`` (field order
and names for ``CTRL_INDEX_PKG``); the tests compare against the real tool byte for byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter

from ghapt.core.errors import BadDebError
from ghapt.core.layout import MAX_INDEX_FILE_BYTES
from ghapt.core.model import DebInfo, IndexedAsset, Skipped
from ghapt.deb.compression import PackagesCompressor, PendingCompression
from ghapt.deb.control import PERL_BLANKS, render_stanza, version_problem
from ghapt.deb.versions import VersionKey, version_key

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


_DIGIT_RUNS = re.compile(r"([0-9]+)")

# package, Debian version, architecture, pool path: the index order (see _entry_key)
EntryKey = tuple[str, VersionKey, str, str]
_first = itemgetter(0)
_rank = itemgetter(0, 1)  # preference, then input position: a stable sort by preference


def _natural(text: str) -> tuple[str | tuple[int, str], ...]:
    """Digits compared as numbers: tag v1.9 before v1.10, asset id 99 before 123.

    Text runs and ``(number, digits)`` alternate, starting with text (maybe empty), so two
    keys compare like for like; built by slices so no Python code runs per run."""
    runs: list[str] = _DIGIT_RUNS.split(text)
    digits = runs[1::2]
    parts: list[str | tuple[int, str]] = list(runs)
    parts[1::2] = zip(map(int, digits), digits, strict=True)
    return tuple(parts)


def _preference(entry: IndexedAsset) -> tuple[object, ...]:
    """Which of two clashing entries wins: the earlier release, then asset name, then key.

    Releases and keys compare naturally, so the older tag (and, for GitHub, the older asset
    id) wins and a new upload cannot displace what clients already have."""
    a = entry.asset
    return (_natural(a.release), _natural(a.name), _natural(a.key), entry.deb.hashes.sha256)


def _entry_key(entry: IndexedAsset, pva: tuple[str, str, str]) -> EntryKey:
    """Index order: package, Debian version order, architecture, pool path (then preference).

    Plain tuples (``version_key``), so a sort compares them natively; callers compute each
    entry's key once. ``pva`` is ``_pva(entry.deb)``, with a valid version (``_invalid``).
    Entries with equal keys share a pool path; only they need ``_preference`` (``_order_ties``)."""
    package, version, arch = pva
    return (package, version_key(version), arch, entry.pool_path)


def _index_order(entries: Iterable[IndexedAsset]) -> list[tuple[EntryKey, IndexedAsset]]:
    """Entries with their keys, in index order: one key per entry, one sort."""
    keyed = [(_entry_key(e, _pva(e.deb)), e) for e in entries]
    keyed.sort(key=_first)
    _order_ties(keyed)
    return keyed


def _order_ties(keyed: list[tuple[EntryKey, IndexedAsset]]) -> None:
    """Put runs of equal keys (one pool path given twice) in preference order, in place.

    The same order as sorting by key and preference together, with the preference computed
    only where keys tie (rare: ``select_entries`` leaves one entry per pool path)."""
    start = 0
    for end in range(1, len(keyed) + 1):
        if end == len(keyed) or keyed[end][0] != keyed[start][0]:
            if end - start > 1:
                keyed[start:end] = sorted(keyed[start:end], key=lambda ke: _preference(ke[1]))
            start = end


def _describe(entry: IndexedAsset) -> str:
    a = entry.asset
    return f"{a.name} (release {a.release}, {a.key})"


def _invalid(package: str, version: str, arch: str) -> str | None:
    """Why an entry with this Package/Version/Architecture (``_pva``) cannot be indexed, or None."""
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
    skipped: list[tuple[tuple[object, ...], int, Skipped]] = []  # with preference, input position
    valid: list[tuple[int, IndexedAsset, tuple[str, str, str], VersionKey]] = []
    paths: Counter[str] = Counter()
    versions: Counter[tuple[str, str, VersionKey]] = Counter()
    for i, entry in enumerate(candidates):
        pva = _pva(entry.deb)
        problem = _invalid(*pva)
        if problem:
            skipped.append((_preference(entry), i, Skipped(entry.asset, problem)))
            continue
        vkey = version_key(pva[1])
        valid.append((i, entry, pva, vkey))
        paths[entry.pool_path] += 1
        versions[(pva[0], pva[2], vkey)] += 1
    # An entry alone with its pool path and its version clashes with nothing: kept without
    # ranking. The others are decided in preference order, among themselves.
    kept: list[tuple[EntryKey, IndexedAsset]] = []
    contested: list[tuple[tuple[object, ...], int, IndexedAsset, tuple[str, str, str], VersionKey]] = []
    for i, entry, pva, vkey in valid:
        if paths[entry.pool_path] == 1 and versions[(pva[0], pva[2], vkey)] == 1:
            kept.append(((pva[0], vkey, pva[2], entry.pool_path), entry))
        else:
            contested.append((_preference(entry), i, entry, pva, vkey))
    contested.sort(key=_rank)
    by_path: dict[str, IndexedAsset] = {}
    # (Package, Architecture, version key) -> the kept entry and its version as written
    by_version: dict[tuple[str, str, VersionKey], tuple[IndexedAsset, str]] = {}
    for preference, i, entry, (package, version, arch), vkey in contested:
        deb = entry.deb
        clash, why = None, ""
        same = by_version.get((package, arch, vkey))
        if same is not None:
            clash, other_version = same
            why = f"same Package/Version/Architecture {package} {version} {arch}"
            if other_version != version:
                why += f" (dpkg treats {other_version} and {version} as equal)"
        if clash is None and entry.pool_path in by_path:
            clash, why = by_path[entry.pool_path], f"same pool path {entry.pool_path}"
        if clash is None:
            kept.append(((package, vkey, arch, entry.pool_path), entry))
            by_path[entry.pool_path] = entry
            by_version[(package, arch, vkey)] = (entry, version)
        elif clash.deb.hashes.sha256 != deb.hashes.sha256:
            reason = (
                f"conflict: {_describe(entry)} and {_describe(clash)} have the {why} but different "
                f"contents (sha256 {deb.hashes.sha256[:16]}… vs {clash.deb.hashes.sha256[:16]}…); "
                f"kept {clash.asset.name} from release {clash.asset.release}"
            )
            skipped.append((preference, i, Skipped(entry.asset, reason)))
        # else: the same bytes published twice; one copy is enough.
    kept.sort(key=_first)  # no ties: kept pool paths are unique
    skipped.sort(key=_rank)
    return [e for _, e in kept], [s for _, _, s in skipped]


# --- Packages and dists/ -------------------------------------------------------------------


def _arch_entries(entries: Iterable[IndexedAsset], arch: str) -> list[IndexedAsset]:
    """The entries of ``arch`` and ``all``, in the order given (already index order: no sort)."""
    return [e for e in entries if e.deb.architecture.strip(PERL_BLANKS) in (arch, "all")]


def packages_for_arch(entries: Iterable[IndexedAsset], arch: str) -> bytes:
    """The Packages file of ``arch``: its packages and every ``all`` package.

    Framed like dpkg-scanpackages (each stanza ends with a blank line); entries are sorted
    here, so the same set of entries always gives the same bytes."""
    ordered = [e for _, e in _index_order(entries)]
    return b"".join(render_stanza(e.deb, e.pool_path) + b"\n" for e in _arch_entries(ordered, arch))


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


def _index_orders(suites: Mapping[str, Sequence[IndexedAsset]]) -> dict[str, list[IndexedAsset]]:
    """Each suite's entries in index order (keyed and sorted once), checked for conflicts left in.

    Within a suite, whatever ``select_entries`` would have left out (an invalid entry, two
    contents under one pool path or under dpkg-equal versions of one Package/Architecture)
    raises ``ValueError``. The pool is shared by every suite: one pool path must name one
    content everywhere. Identical entries given twice are not a conflict."""
    ordered: dict[str, list[IndexedAsset]] = {}
    owner: dict[str, IndexedAsset] = {}
    for suite in sorted(suites):
        keyed: list[tuple[EntryKey, IndexedAsset]] = []
        problems: list[str] = []
        for entry in suites[suite]:
            pva = _pva(entry.deb)
            problem = _invalid(*pva)
            if problem:
                problems.append(f"{_describe(entry)}: {problem}")
            else:
                keyed.append((_entry_key(entry, pva), entry))
        if problems:
            raise ValueError(f"suite {suite}: run select_entries first: " + "; ".join(problems))
        keyed.sort(key=_first)
        _order_ties(keyed)
        conflicts = _conflicts(keyed)
        if conflicts:
            raise ValueError(f"suite {suite}: run select_entries first: " + "; ".join(conflicts))
        for _, entry in keyed:
            first = owner.setdefault(entry.pool_path, entry)
            if first.deb.hashes.sha256 != entry.deb.hashes.sha256:
                raise ValueError(
                    f"{entry.pool_path} is {_describe(first)} and {_describe(entry)} with different contents"
                )
        ordered[suite] = [e for _, e in keyed]
    return ordered


def _conflicts(keyed: Sequence[tuple[EntryKey, IndexedAsset]]) -> list[str]:
    """Different contents under one pool path, or under dpkg-equal versions, in one suite.

    ``keyed`` is in index order, so dpkg-equal versions of one Package/Architecture (equal
    version keys) are neighbours; pool paths (``1:2.0`` and ``2.0`` share one) go by a dict."""
    found: list[str] = []
    group: tuple[object, ...] | None = None
    group_first: IndexedAsset | None = None
    by_path: dict[str, IndexedAsset] = {}
    for key, entry in keyed:
        sha = entry.deb.hashes.sha256
        if key[:3] != group or group_first is None:
            group, group_first = key[:3], entry
        elif group_first.deb.hashes.sha256 != sha:
            found.append(
                f"conflict: {_describe(group_first)} and {_describe(entry)} have the same "
                f"Package/Version/Architecture {key[0]} {_pva(entry.deb)[1]} {key[2]} but different contents"
            )
            continue  # the same pool path too, most likely: one message is enough
        first = by_path.setdefault(entry.pool_path, entry)
        if first.deb.hashes.sha256 != sha:
            found.append(
                f"conflict: {_describe(first)} and {_describe(entry)} have the same pool path "
                f"{entry.pool_path} but different contents"
            )
    return found


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
    with PackagesCompressor() if compressor is None else contextlib.nullcontext(compressor) as used:
        return start_dists(
            suites,
            component=component,
            architectures=architectures,
            origin=origin,
            label=label,
            date=date,
            valid_until=valid_until,
            max_file_bytes=max_file_bytes,
            compressor=used,
        ).finish()


def start_dists(
    suites: Mapping[str, Sequence[IndexedAsset]],
    *,
    component: str,
    architectures: Sequence[str],
    origin: str,
    label: str,
    date: datetime,
    compressor: PackagesCompressor,
    valid_until: datetime | None = None,
    max_file_bytes: int | None = None,
    rendered: Mapping[str, bytes] | None = None,
) -> PendingDists:
    """``build_dists`` in two halves: this checks the names, renders every stanza and starts
    the compression on ``compressor``'s threads; ``finish()`` waits for it and writes the rest.
    What the caller does in between runs while the files compress (lzma and zlib free the GIL).

    ``rendered``: pool path -> ``render_stanza``'s output for the entry at that path, known
    already (the caller vouches that it is exactly what rendering would give)."""
    if max_file_bytes is None:
        max_file_bytes = MAX_INDEX_FILE_BYTES
    arches = _check_names(suites, component, architectures)
    origin, label = _one_line("Origin", origin), _one_line("Label", label)
    if valid_until is not None and valid_until <= date:
        raise ValueError("Valid-Until must be after Date")
    suites = _index_orders(suites)  # each suite sorted once, conflicts left in refused
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
    started = {
        suite: _packages_files(
            suites[suite], component, arches, compressor, f"dists/{suite}/", rendered or {}
        )
        for suite in sorted(suites)
    }
    return PendingDists(started, head, tail, label, max_file_bytes)


class PendingDists:
    """The index ``start_dists`` began, while its Packages files compress."""

    def __init__(
        self,
        started: Mapping[str, Callable[[], dict[str, bytes]]],
        head: list[str],
        tail: list[str],
        label: str,
        max_file_bytes: int,
    ) -> None:
        self._started = started
        self._head, self._tail, self._label = head, tail, label
        self._max = max_file_bytes

    def finish(self) -> dict[str, bytes]:
        """Every file, path -> bytes, as ``build_dists`` returns them."""
        files: dict[str, bytes] = {}
        for suite, listing in self._started.items():
            listed = listing()
            for rel, data in listed.items():
                if len(data) <= self._max:
                    files[f"dists/{suite}/{rel}"] = data
                    folder = rel.rsplit("/", 1)[0]
                    for title, algo in RELEASE_HASHES:
                        digest = hashlib.new(algo, data).hexdigest()
                        files[f"dists/{suite}/{folder}/by-hash/{title}/{digest}"] = data
                elif rel.endswith(".xz"):
                    raise ValueError(
                        f"dists/{suite}/{rel} is {len(data)} bytes, over the {self._max} bytes one "
                        "response can carry: too many packages for one index"
                    )
                # else: listed in Release, not served (apt fetches the .xz and checks what it unpacks)
            lines = [
                *self._head,
                f"Suite: {suite}",
                f"Codename: {suite}",
                *self._tail,
                f"Description: {self._label} {suite} packages",
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
    rendered: Mapping[str, bytes],
) -> Callable[[], dict[str, bytes]]:
    """``<component>/binary-<arch>/Packages{,.gz,.xz}`` of one suite, each stanza rendered once;
    the compression starts now, and the returned function waits for it.

    ``entries`` are in index order already (``_index_orders``): nothing is sorted here."""
    ordered = entries
    stanzas = {
        id(e): (rendered.get(e.pool_path) or render_stanza(e.deb, e.pool_path)) + b"\n" for e in ordered
    }
    started: list[tuple[str, PendingCompression]] = []
    for arch in arches:
        pairs = [(_pva(e.deb)[0], stanzas[id(e)]) for e in _arch_entries(ordered, arch)]
        started.append((f"{component}/binary-{arch}", compressor.submit(pairs)))

    def listing() -> dict[str, bytes]:
        listed: dict[str, bytes] = {}
        for folder, pending in started:
            out = pending.result()
            compressor.table_for(f"{prefix}{folder}/Packages.xz", f"{prefix}{folder}/Packages.gz", out)
            for name, data in zip(PACKAGES_FILES, (out.plain, out.gz, out.xz), strict=True):
                listed[f"{folder}/{name}"] = data
        return listed

    return listing
