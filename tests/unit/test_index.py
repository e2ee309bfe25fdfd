"""ghapt.index against the real tools: dpkg-scanpackages, gzip, xz, python-debian and apt."""

from __future__ import annotations

import functools
import gzip
import hashlib
import itertools
import lzma
import random
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from debian.deb822 import Packages, Release
from debian.debian_support import Version
from ghapt.core.errors import BadDebError
from ghapt.core.model import Asset, Control, DebInfo, Hashes, IndexedAsset, Skipped
from ghapt.deb.control import parse_control, render_stanza, version_problem
from ghapt.deb.dists import (
    _preference,
    build_dists,
    byhash_paths,
    packages_for_arch,
    pool_path,
    release_paths,
    rfc1123,
    select_entries,
)
from ghapt.deb.reader import read_deb_path

from tests.support import realcontrols
from tests.support.debbuild import build_deb
from tests.support.dpkgversions import dpkg_binary_compare, dpkg_perl_compare, random_version

DATE = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)
T = TypeVar("T")
STATUS_ONLY = ("Status", "Conffiles", "Config-Version", "Triggers-Pending", "Triggers-Awaited")


# --- helpers -------------------------------------------------------------------------------


def asset(name: str, release: str = "v1.0", key: str | None = None, suite: str = "stable") -> Asset:
    return Asset(
        key=key or f"local:{release}/{name}",
        fingerprint="f",
        name=name,
        release=release,
        suite=suite,
        size=0,
    )


def publish(root: Path, control: str, *, release: str = "v1.0", name: str | None = None) -> IndexedAsset:
    """Build a .deb from ``control`` and put it at its pool path under ``root``."""
    fields = dict(parse_control(control.encode(), "control"))
    lower = {k.lower(): v.strip() for k, v in fields.items()}
    work = root.parent / "build"
    deb_path = build_deb(work, lower["package"], lower["version"], lower["architecture"], control=control)
    info = read_deb_path(deb_path)
    path = pool_path(info, "main")
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(deb_path, target)
    return IndexedAsset(asset(name or target.name, release), info, path)


def scanpackages(root: Path) -> bytes:
    return subprocess.run(
        ["dpkg-scanpackages", "-m", "pool", "/dev/null"], cwd=root, check=True, capture_output=True
    ).stdout


def stanzas_by_filename(packages: bytes) -> dict[str, bytes]:
    """Split a Packages file into its stanzas (each ending in one newline), by Filename."""
    assert packages == b"" or packages.endswith(b"\n\n")
    out = {}
    for stanza in packages.split(b"\n\n")[:-1]:
        filename = re.search(rb"^Filename: (.*)$", stanza, re.M)
        assert filename is not None
        out[filename.group(1).decode()] = stanza + b"\n"
    return out


def fake(
    package: str,
    version: str,
    arch: str = "amd64",
    *,
    content: str = "a",
    release: str = "v1.0",
    name: str | None = None,
    key: str | None = None,
    suite: str = "stable",
    extra: Iterable[tuple[str, str]] = (),
) -> IndexedAsset:
    """An entry without a real .deb, for the selection and dists rules."""
    control: Control = (
        ("Package", package),
        ("Version", version),
        ("Architecture", arch),
        ("Maintainer", "ghapt tests <tests@example.invalid>"),
        *extra,
        ("Description", f"{package} test\n built for the index tests."),
    )
    seed = f"{package}|{version}|{arch}|{content}".encode()
    deb = DebInfo(control=control, size=len(seed), hashes=Hashes(sha256=hashlib.sha256(seed).hexdigest()))
    noepoch = version.split(":", 1)[-1]
    return IndexedAsset(
        asset(name or f"{package}_{noepoch}_{arch}.deb", release, key, suite), deb, pool_path(deb, "main")
    )


def shuffled(items: list[T], seed: int) -> list[T]:
    """A reproducible shuffle (test data order, nothing secret)."""
    return random.Random(seed).sample(items, len(items))  # noqa: S311


def real_and_odd_controls() -> dict[str, str]:
    controls = {**realcontrols.REAL, **realcontrols.ODD}
    controls["epoch-all"] = (
        "Package: epoch-all\nVersion: 1:2.0-1\nArchitecture: all\n"
        "Maintainer: ghapt tests <tests@example.invalid>\nDescription: an epoch and arch all\n"
        " .\n second paragraph\n"
    )
    return controls


# --- equivalence with dpkg-scanpackages ----------------------------------------------------


def test_stanzas_are_byte_identical_to_dpkg_scanpackages(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    entries = [publish(root, text) for text in real_and_odd_controls().values()]
    # Several versions of one package, ordered the same by string and by Debian rules.
    entries += [
        publish(root, realcontrols.ODD["empty-first-line"].replace("0.1~rc1", v)) for v in ("0.2", "0.3")
    ]
    theirs = scanpackages(root)

    ours = {e.pool_path: render_stanza(e.deb, e.pool_path) for e in entries}
    assert ours == stanzas_by_filename(theirs)
    kept, skipped = select_entries(entries)
    assert skipped == []
    # The whole file, framing included, matches too.
    assert b"".join(render_stanza(e.deb, e.pool_path) + b"\n" for e in kept) == theirs


def test_odd_control_rewrites_match_what_dpkg_does(tmp_path: Path) -> None:
    """Spell out the rewrites the equivalence test relies on, so a regression is readable."""
    root = tmp_path / "repo"
    entry = publish(root, realcontrols.ODD["odd-caps"])
    ours = render_stanza(entry.deb, entry.pool_path)
    assert ours == stanzas_by_filename(scanpackages(root))[entry.pool_path]
    text = ours.decode()
    names = [line.split(":", 1)[0] for line in text.splitlines() if not line.startswith(" ")]
    assert names == [
        "Package", "Source", "Version", "Architecture", "Maintainer", "Pre-Depends", "Built-Using",
        "Filename", "Size", "MD5sum", "SHA1", "SHA256", "Multi-Arch", "Homepage", "Description",
        "Aaa-First", "X-Custom-Field", "Zzz-Last",
    ]  # fmt: skip
    assert "X-Empty" not in text
    assert "Foo" not in text
    assert "X-Custom-Field: value with trailing blanks\n" in text
    assert "Description: odd control file\n first line with trailing blanks\n .\n ..\n ...\n" in text
    assert " \ttab after the blank\n   three blanks\n a line started by a tab\n" in text
    assert "at the end\u00a0\n last line\nAaa-First" in text  # the final " ." line is gone
    assert entry.pool_path == "pool/main/libo/libodd/odd-caps_2.0-1_amd64.deb"


@pytest.mark.parametrize("package", ["bash", "coreutils", "libc6", "apt", "perl-base", "tzdata"])
def test_this_machines_installed_packages_match_dpkg_scanpackages(tmp_path: Path, package: str) -> None:
    status = subprocess.run(["dpkg-query", "-s", package], capture_output=True)
    if status.returncode != 0:
        pytest.skip(f"{package} is not installed here")
    control = "".join(
        f"{name}: {value}\n" if not value.startswith("\n") else f"{name}:{value}\n"
        for name, value in parse_control(status.stdout, f"{package} status")
        if name not in STATUS_ONLY
    )
    root = tmp_path / "repo"
    entry = publish(root, control)
    assert {entry.pool_path: render_stanza(entry.deb, entry.pool_path)} == stanzas_by_filename(
        scanpackages(root)
    )


def test_only_sha256_known_leaves_md5_and_sha1_out(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    entry = publish(root, realcontrols.REAL["libc6"])
    theirs = stanzas_by_filename(scanpackages(root))[entry.pool_path]
    github = DebInfo(entry.deb.control, entry.deb.size, Hashes(sha256=entry.deb.hashes.sha256))
    ours = render_stanza(github, entry.pool_path)
    assert ours == re.sub(rb"^(MD5sum|SHA1): .*\n", b"", theirs, flags=re.M)
    assert b"\nSHA256: " + entry.deb.hashes.sha256.encode() + b"\n" in ours


def test_undecodable_bytes_and_a_stale_sha512_in_control() -> None:
    control: Control = (
        ("Package", "latin1"),
        ("Version", "1.0"),
        ("Architecture", "all"),
        ("Maintainer", "J\udcf6rg <j@example.invalid>"),  # a Latin-1 byte, kept as is
        ("SHA512", "deadbeef"),
        ("Description", "x\n y"),
    )
    deb = DebInfo(control, 10, Hashes(sha256="ab" * 32))
    out = render_stanza(deb, "pool/main/l/latin1/latin1_1.0_all.deb")
    assert b"Maintainer: J\xf6rg <j@example.invalid>\n" in out
    assert b"SHA512" not in out
    assert b"Sha512" not in out
    assert out.endswith(b"Description: x\n y\n")


def test_a_control_without_package_is_refused() -> None:
    deb = DebInfo((("Version", "1"), ("Architecture", "all")), 1, Hashes(sha256="00" * 32))
    with pytest.raises(BadDebError, match="no Package field"):
        render_stanza(deb, "pool/x.deb")


# --- pool paths ----------------------------------------------------------------------------


def _deb(package: str, version: str, arch: str = "amd64", source: str | None = None) -> DebInfo:
    control: Control = (("Package", package), ("Version", version), ("Architecture", arch))
    if source is not None:
        control += (("Source", source),)
    return DebInfo(control, 1, Hashes(sha256="00" * 32))


@pytest.mark.parametrize(
    ("deb", "expected"),
    [
        (_deb("hello", "2.10-3"), "pool/main/h/hello/hello_2.10-3_amd64.deb"),
        (_deb("libfoo1", "1.0-1", source="libfoo (1.0-1)"), "pool/main/libf/libfoo/libfoo1_1.0-1_amd64.deb"),
        (_deb("libc6", "2.36-9", source="glibc"), "pool/main/g/glibc/libc6_2.36-9_amd64.deb"),
        (_deb("lib", "1.0"), "pool/main/l/lib/lib_1.0_amd64.deb"),
        (
            _deb("bash", "5.2.15-2+b8", source="bash (5.2.15-2)"),
            "pool/main/b/bash/bash_5.2.15-2+b8_amd64.deb",
        ),
        (_deb("tool", "1:2.0~rc1-1", "all"), "pool/main/t/tool/tool_2.0~rc1-1_all.deb"),
        (_deb("tool", " 3.0 ", " arm64"), "pool/main/t/tool/tool_3.0_arm64.deb"),
    ],
)
def test_pool_path_follows_the_debian_layout(deb: DebInfo, expected: str) -> None:
    assert pool_path(deb, "main") == expected


@pytest.mark.parametrize(
    "deb",
    [
        _deb("../../etc", "1.0"),
        _deb("ok", "1.0/../../x"),
        _deb("ok", "1.0", "amd64/.."),
        _deb("ok", "1.0", source="../evil"),
        _deb("", "1.0"),
        _deb("ok", ""),
    ],
)
def test_pool_path_refuses_names_that_are_not_path_safe(deb: DebInfo) -> None:
    with pytest.raises(BadDebError):
        pool_path(deb, "main")


def test_pool_path_refuses_a_bad_component() -> None:
    with pytest.raises(ValueError, match="component"):
        pool_path(_deb("ok", "1.0"), "../main")


# --- selection -----------------------------------------------------------------------------


def _all_orders(entries: list[IndexedAsset]) -> Iterable[list[IndexedAsset]]:
    return (list(p) for p in itertools.permutations(entries))


def test_conflicting_contents_keep_one_and_skip_the_other_whatever_the_order() -> None:
    first = fake("foo", "1.0-1", content="one", release="v1.0")
    second = fake("foo", "1.0-1", content="two", release="v1.1")
    other = fake("bar", "2.0", content="x")
    results = {repr(select_entries(order)) for order in _all_orders([first, second, other])}
    assert len(results) == 1
    kept, skipped = select_entries([second, other, first])
    assert kept == [other, first]
    assert [s.asset for s in skipped] == [second.asset]
    reason = skipped[0].reason
    assert "conflict" in reason
    assert "foo 1.0-1 amd64" in reason
    assert first.asset.name in reason
    assert "v1.0" in reason
    assert "v1.1" in reason


def test_the_earlier_release_wins_in_natural_order() -> None:
    old = fake("foo", "1.0", content="old", release="v1.9")
    new = fake("foo", "1.0", content="new", release="v1.10")
    kept, skipped = select_entries([new, old])
    assert kept == [old]
    assert [s.asset for s in skipped] == [new.asset]


def test_github_asset_ids_compare_as_numbers() -> None:
    older = fake("foo", "1.0", content="a", release="v1", name="foo.deb", key="github:o/r:99")
    newer = fake("foo", "1.0", content="b", release="v1", name="foo.deb", key="github:o/r:123")
    kept, _ = select_entries([newer, older])
    assert kept == [older]


def test_identical_contents_are_merged_silently() -> None:
    a = fake("foo", "1.0", content="same", release="v1.0", name="foo_1.0_amd64.deb")
    b = fake("foo", "1.0", content="same", release="v2.0", name="foo_1.0_amd64.deb")
    for order in ([a, b], [b, a]):
        kept, skipped = select_entries(order)
        assert kept == [a]
        assert skipped == []


def test_an_epoch_does_not_hide_a_pool_path_clash() -> None:
    plain = fake("foo", "2.0", content="a", release="v1")
    epoch = fake("foo", "1:2.0", content="b", release="v2")
    assert plain.pool_path == epoch.pool_path
    kept, skipped = select_entries([epoch, plain])
    assert kept == [plain]
    assert "same pool path" in skipped[0].reason


def test_versions_dpkg_calls_equal_conflict() -> None:
    a = fake("foo", "1.0", content="a", release="v1")
    b = fake("foo", "1.00", content="b", release="v2")
    assert a.pool_path != b.pool_path
    kept, skipped = select_entries([b, a])
    assert kept == [a]
    assert "treats 1.0 and 1.00 as equal" in skipped[0].reason


def test_every_version_is_kept_in_debian_order() -> None:
    versions = ["1.10", "1.9", "1.0~rc1", "1.0", "1:0.5", "1.0+b1"]
    entries = [fake("foo", v, content=v) for v in versions]
    entries += [fake("foo", "1.0", "arm64"), fake("foo", "1.0", "all"), fake("aaa", "9")]
    kept, skipped = select_entries(shuffled(entries, 7))
    assert skipped == []
    assert [(e.deb.package, e.deb.version, e.deb.architecture) for e in kept] == [
        ("aaa", "9", "amd64"),
        ("foo", "1.0~rc1", "amd64"),
        ("foo", "1.0", "all"),
        ("foo", "1.0", "amd64"),
        ("foo", "1.0", "arm64"),
        ("foo", "1.0+b1", "amd64"),
        ("foo", "1.9", "amd64"),
        ("foo", "1.10", "amd64"),
        ("foo", "1:0.5", "amd64"),
    ]


def test_an_invalid_version_is_skipped_not_fatal() -> None:
    good = fake("foo", "1.0")
    deb = DebInfo(
        (("Package", "foo"), ("Version", "1.0 beta"), ("Architecture", "amd64")), 1, good.deb.hashes
    )
    bad = IndexedAsset(asset("bad.deb"), deb, "pool/main/f/foo/bad.deb")
    kept, skipped = select_entries([bad, good])
    assert kept == [good]
    assert [s.asset for s in skipped] == [bad.asset]
    assert "not a valid Debian version" in skipped[0].reason


def _reference_selection(candidates: list[IndexedAsset]) -> tuple[list[IndexedAsset], list[Skipped]]:
    """The selection rule spelt out plainly: in preference order, keep what clashes with nothing
    kept, merge identical copies, skip conflicts; index order by python-debian's Version.

    The entries have no blanks around Package, Version and Architecture."""
    kept: list[IndexedAsset] = []
    skipped: list[Skipped] = []
    for entry in sorted(candidates, key=_preference):
        version = entry.deb.version
        if version_problem(version):
            skipped.append(Skipped(entry.asset, "invalid"))
            continue
        same_version = [
            k
            for k in kept
            if (k.deb.package, k.deb.architecture) == (entry.deb.package, entry.deb.architecture)
            and Version(k.deb.version) == Version(version)
        ]
        same_path = [k for k in kept if k.pool_path == entry.pool_path]
        clash = (same_version + same_path + [None])[0]  # a version clash is named first
        if clash is None:
            kept.append(entry)
        elif clash.deb.hashes.sha256 != entry.deb.hashes.sha256:
            a = clash.asset
            skipped.append(Skipped(entry.asset, f"{a.name} (release {a.release}, {a.key})"))
    kept.sort(
        key=lambda e: (e.deb.package, Version(e.deb.version), e.deb.architecture, e.pool_path, _preference(e))
    )
    return kept, skipped


def _clashing_candidates(seed: int) -> list[IndexedAsset]:
    """Entries that clash every way: equal versions, shared pool paths, copies, bad versions."""
    rng = random.Random(seed)  # noqa: S311 (test data, nothing secret)
    versions = ("1.0", "1.00", "0:1.0", "1:1.0", "1.0-0", "1.0-1", "1:1.0-1", "2.0~rc1", "2.0", "1.0 beta")
    out: list[IndexedAsset] = []
    for i in range(60):
        package, arch, version = (
            rng.choice(("foo", "bar")),
            rng.choice(("amd64", "all")),
            rng.choice(versions),
        )
        release = rng.choice(("v1", "v2", "v10"))
        entry = fake(
            package, version.split()[0], arch, content=rng.choice("ab"), release=release, key=f"k:{i % 7}"
        )
        if " " in version:  # an invalid version (fake builds its pool path from a valid one)
            control = tuple((k, version if k == "Version" else v) for k, v in entry.deb.control)
            entry = replace(entry, deb=replace(entry.deb, control=control))
        if out and rng.random() < 0.15:  # a copy: the same asset twice, or the same bytes elsewhere
            entry = rng.choice((out[-1], replace(out[-1], asset=entry.asset)))
        out.append(entry)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_selection_follows_the_plain_rule(seed: int) -> None:
    candidates = _clashing_candidates(seed)
    kept, skipped = select_entries(candidates)
    expected_kept, expected_skipped = _reference_selection(candidates)
    assert kept == expected_kept
    assert [s.asset for s in skipped] == [s.asset for s in expected_skipped]
    for got, want in zip(skipped, expected_skipped, strict=True):
        if want.reason == "invalid":
            assert "not a valid Debian version" in got.reason
        else:
            assert got.reason.startswith("conflict: ")
            assert f" and {want.reason} have the " in got.reason


# --- Packages ------------------------------------------------------------------------------


def test_all_packages_go_to_every_architecture() -> None:
    entries = [fake("tool", "1.0", "amd64"), fake("tool", "1.0", "arm64"), fake("data", "1.0", "all")]
    amd64 = Packages.iter_paragraphs(packages_for_arch(entries, "amd64").decode(), use_apt_pkg=False)
    arm64 = Packages.iter_paragraphs(packages_for_arch(entries, "arm64").decode(), use_apt_pkg=False)
    assert [(p["Package"], p["Architecture"]) for p in amd64] == [("data", "all"), ("tool", "amd64")]
    assert [(p["Package"], p["Architecture"]) for p in arm64] == [("data", "all"), ("tool", "arm64")]
    assert packages_for_arch(entries, "riscv64") == packages_for_arch([entries[2]], "amd64")
    assert packages_for_arch([], "amd64") == b""


def test_packages_are_framed_like_dpkg_and_independent_of_order() -> None:
    entries = [fake(f"p{i}", f"1.{i}", "amd64" if i % 2 else "all") for i in range(12)]
    expected = packages_for_arch(entries, "amd64")
    assert expected.endswith(b"\n\n")
    assert b"\n\n\n" not in expected
    assert expected.count(b"\nFilename: ") == 12
    for seed in range(5):
        assert packages_for_arch(shuffled(entries, seed), "amd64") == expected


# --- dists/ --------------------------------------------------------------------------------


def _suites() -> dict[str, list[IndexedAsset]]:
    return {
        "stable": [
            fake("tool", "1.0", "amd64"),
            fake("tool", "1.1", "amd64"),
            fake("data", "1:2.0-1", "all"),
        ],
        "prerelease": [fake("tool", "2.0~rc1", "arm64", suite="prerelease")],
    }


def _build(suites: dict[str, list[IndexedAsset]], **kw: Any) -> dict[str, bytes]:
    args: dict[str, Any] = {
        "component": "main",
        "architectures": ["amd64", "arm64", "riscv64"],
        "origin": "ghapt",
        "label": "ghapt test",
        "date": DATE,
    }
    args.update(kw)
    return build_dists(suites, **args)


def test_build_writes_every_index_with_by_hash_copies() -> None:
    files = _build(_suites())
    for suite in ("stable", "prerelease"):
        for arch in ("amd64", "arm64", "riscv64"):
            folder = f"dists/{suite}/main/binary-{arch}"
            packages = files[f"{folder}/Packages"]
            assert gzip.decompress(files[f"{folder}/Packages.gz"]) == packages
            assert lzma.decompress(files[f"{folder}/Packages.xz"]) == packages
            for name in ("Packages", "Packages.gz", "Packages.xz"):
                data = files[f"{folder}/{name}"]
                assert files[f"{folder}/by-hash/SHA256/{hashlib.sha256(data).hexdigest()}"] == data
                assert files[f"{folder}/by-hash/SHA512/{hashlib.sha512(data).hexdigest()}"] == data
    assert files["dists/prerelease/main/binary-riscv64/Packages"] == b""  # empty, but there
    stable_amd64 = files["dists/stable/main/binary-amd64/Packages"]
    assert stable_amd64 == packages_for_arch(_suites()["stable"], "amd64")
    assert b"Package: data\n" in files["dists/stable/main/binary-riscv64/Packages"]
    assert byhash_paths(files) == {p for p in files if "/by-hash/" in p}
    assert {p for p in files if p.endswith("/Release")} == set(release_paths(_suites()))
    assert release_paths(["stable", "prerelease"]) == ["dists/prerelease/Release", "dists/stable/Release"]
    assert {p for p in files if "/by-hash/" not in p and not p.endswith("Release")} == {
        f"dists/{s}/main/binary-{a}/{n}"
        for s in ("stable", "prerelease")
        for a in ("amd64", "arm64", "riscv64")
        for n in ("Packages", "Packages.gz", "Packages.xz")
    }


def test_release_parses_and_lists_every_file_with_its_hashes() -> None:
    files = _build(_suites())
    for suite in ("stable", "prerelease"):
        release = Release(files[f"dists/{suite}/Release"].decode())
        assert release["Origin"] == "ghapt"
        assert release["Label"] == "ghapt test"
        assert release["Suite"] == suite
        assert release["Codename"] == suite
        assert release["Architectures"].split() == ["amd64", "arm64", "riscv64"]
        assert release["Components"] == "main"
        assert release["Acquire-By-Hash"] == "yes"
        assert release["Description"]
        assert "Valid-Until" not in release
        assert "MD5Sum" not in release
        listed: dict[str, set[str]] = {}
        for title in ("SHA256", "SHA512"):
            for item in release[title]:
                data = files[f"dists/{suite}/{item['name']}"]
                assert int(item["size"]) == len(data)
                assert item[title.lower()] == hashlib.new(title.lower(), data).hexdigest()
                folder = item["name"].rsplit("/", 1)[0]
                assert files[f"dists/{suite}/{folder}/by-hash/{title}/{item[title.lower()]}"] == data
                listed.setdefault(title, set()).add(item["name"])
        assert listed["SHA256"] == listed["SHA512"]
        assert len(listed["SHA256"]) == 9


def test_release_dates_are_rfc1123_utc() -> None:
    local = DATE.astimezone(timezone(timedelta(hours=-5)))
    files = _build(_suites(), date=local, valid_until=DATE + timedelta(days=7))
    release = Release(files["dists/stable/Release"].decode())
    assert release["Date"] == "Fri, 27 Nov 2026 02:00:00 UTC"
    assert release["Valid-Until"] == "Fri, 04 Dec 2026 02:00:00 UTC"
    assert parsedate_to_datetime(release["Date"]) == DATE
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} UTC", rfc1123(DATE))
    with pytest.raises(ValueError, match="timezone"):
        _build(_suites(), date=datetime(2026, 11, 27))  # naive on purpose
    with pytest.raises(ValueError, match="Valid-Until"):
        _build(_suites(), valid_until=DATE)


def test_two_builds_from_shuffled_input_are_byte_identical() -> None:
    suites = {
        "stable": [fake(f"p{i}", f"{i}.0", ("amd64", "arm64", "all")[i % 3]) for i in range(30)],
        "prerelease": [fake("x", "1.0~rc1", suite="prerelease")],
    }
    first = _build(suites)
    for seed in range(3):
        again = {suite: shuffled(suites[suite], seed) for suite in shuffled(list(suites), seed)}
        assert _build(again) == first


def test_one_content_given_twice_is_listed_in_preference_order() -> None:
    """Copies of one .deb (same pool path and sha256) may differ in the digests known for them."""
    plain = fake("foo", "1.0", release="v2")
    known = replace(
        fake("foo", "1.0", release="v10"),
        deb=replace(plain.deb, hashes=replace(plain.deb.hashes, md5="0" * 32)),
    )
    others = [fake("foo", "0.9"), fake("foo", "1.1")]
    first = packages_for_arch([known, plain, *others], "amd64")
    stanzas = first.split(b"\n\n")
    assert [b"MD5sum: " in st for st in stanzas if b"Version: 1.0\n" in st] == [False, True]  # v2, v10
    for order in _all_orders([plain, known, *others]):
        assert packages_for_arch(order, "amd64") == first
        assert _build({"stable": order})["dists/stable/main/binary-amd64/Packages"] == first


def test_compressed_indexes_pass_gzip_and_xz(tmp_path: Path) -> None:
    files = _build(_suites())
    folder = "dists/stable/main/binary-amd64"
    for name, tool in (("Packages.gz", "gzip"), ("Packages.xz", "xz")):
        path = tmp_path / name
        path.write_bytes(files[f"{folder}/{name}"])
        subprocess.run([tool, "-t", str(path)], check=True)
        out = subprocess.run([tool, "-dc", str(path)], check=True, capture_output=True).stdout
        assert out == files[f"{folder}/Packages"]
    header = files[f"{folder}/Packages.gz"][:10]
    assert header[3] == 0  # no FNAME or other optional header fields
    assert header[4:8] == b"\0\0\0\0"  # mtime 0


def test_conflicts_left_in_are_refused() -> None:
    with pytest.raises(ValueError, match="select_entries"):
        _build({"stable": [fake("foo", "1.0", content="a"), fake("foo", "1.0", content="b", release="v2")]})
    # The pool is shared: one path cannot mean two contents in two suites.
    with pytest.raises(ValueError, match="different contents"):
        _build({"stable": [fake("foo", "1.0", content="a")], "prerelease": [fake("foo", "1.0", content="b")]})
    # The same bytes in both suites are fine.
    same = fake("foo", "1.0")
    assert "dists/prerelease/Release" in _build({"stable": [same], "prerelease": [same]})


def test_conflicts_left_in_are_refused_whatever_hides_them() -> None:
    # dpkg-equal versions under two pool paths
    with pytest.raises(ValueError, match=r"select_entries.*different contents"):
        _build({"stable": [fake("foo", "1.0", content="a"), fake("foo", "1.00", content="b")]})
    # An invalid version left in
    bad = replace(
        fake("foo", "1.0"),
        deb=replace(
            fake("foo", "1.0").deb,
            control=(("Package", "foo"), ("Version", "1.0 beta"), ("Architecture", "amd64")),
        ),
    )
    with pytest.raises(ValueError, match=r"select_entries.*not a valid Debian version"):
        _build({"stable": [bad]})
    # 2.0 and 1:2.0 share a pool path; 1:2.0 and 1:2.00 are equal to dpkg. With the same sha256
    # for the first two (made up: real debs of two versions differ), one of them is a mere copy,
    # but 1:2.0 and 1:2.00 would still be two contents of one version in the index.
    plain = fake("foo", "2.0", content="a", release="v1")
    epoch = replace(
        fake("foo", "1:2.0", release="v2"), deb=replace(fake("foo", "1:2.0").deb, hashes=plain.deb.hashes)
    )
    equal = fake("foo", "1:2.00", content="c", release="v3")
    with pytest.raises(ValueError, match="select_entries"):
        _build({"stable": [plain, epoch, equal]})


def test_hundreds_of_versions_are_listed_in_dpkg_order_whatever_the_input_order() -> None:
    rng = random.Random(3)  # noqa: S311 (test data, nothing secret)
    versions = list(dict.fromkeys(random_version(rng) for _ in range(600)))
    assert any("~" in v for v in versions) and any(":" in v for v in versions)
    entries = [fake(p, v, a, content=v) for v in versions for p, a in (("foo", "amd64"), ("bar", "all"))]
    kept, skipped = select_entries(shuffled(entries, 1))
    assert len(kept) > 500 and skipped  # dpkg-equal versions (1.0, 1.00) of different contents clash
    files = _build({"stable": kept}, architectures=["amd64"])
    packages = files["dists/stable/main/binary-amd64/Packages"]
    for seed in range(3):
        assert _build({"stable": shuffled(kept, seed)}, architectures=["amd64"]) == files
    listed = [
        (p["Package"], p["Version"]) for p in Packages.iter_paragraphs(packages.decode(), use_apt_pkg=False)
    ]
    assert len(listed) == len(kept)
    assert [p for p, _ in listed] == sorted(p for p, _ in listed)
    for package in ("bar", "foo"):
        order = [v for p, v in listed if p == package]
        assert order == sorted(order, key=functools.cmp_to_key(_debian_cmp))
        assert set(dpkg_binary_compare(list(itertools.pairwise(order))[:150])) == {-1}
        assert set(dpkg_perl_compare(list(itertools.pairwise(order)))) == {-1}


def _debian_cmp(a: str, b: str) -> int:
    va, vb = Version(a), Version(b)
    return int(va > vb) - int(va < vb)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"architectures": []}, "at least one architecture is needed"),
        ({"architectures": ["all"]}, "'all' is not a binary architecture"),
        ({"architectures": ["../x"]}, "'../x' is not a binary architecture"),
        ({"component": "a/b"}, "component 'a/b' is not a valid name"),
        ({"origin": "two\nlines"}, "Origin 'two\\nlines' must be one non-empty line"),
        ({"label": ""}, "Label '' must be one non-empty line"),
    ],
)
def test_bad_parameters_are_refused(bad: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        _build(_suites(), **bad)


def test_apt_reads_the_repository(tmp_path: Path) -> None:
    """apt-get update from a file:// mirror that has only Release and by-hash/SHA512 files.

    apt must pick the strongest hash and fetch by hash; then apt-cache shows our packages."""
    repo = tmp_path / "repo"
    entries = [publish(repo, realcontrols.REAL["tzdata"]), publish(repo, realcontrols.ODD["odd-caps"])]
    kept, _ = select_entries(entries)
    files = _build({"stable": kept}, architectures=["amd64"])
    for path, data in files.items():
        if path.endswith("/Release") or "/by-hash/SHA512/" in path:  # by-hash must be enough
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_bytes(data)
    state = tmp_path / "apt"
    for sub in ("etc/sources.list.d", "etc/preferences.d", "lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True)
    (state / "status").write_text("")
    (state / "etc/sources.list").write_text(f"deb [trusted=yes] file:{repo} stable main\n")
    opts = [
        f"-oDir::Etc={state}/etc",
        f"-oDir::State::Lists={state}/lists",
        f"-oDir::State::status={state}/status",
        f"-oDir::Cache={state}/cache",
        "-oAPT::Architecture=amd64",
        "-oAPT::Architectures=amd64",
        "-oAPT::Sandbox::User=root",
        "-oAcquire::AllowInsecureRepositories=true",
        "-oDebug::NoLocking=true",
    ]
    update = subprocess.run(["apt-get", *opts, "update"], capture_output=True, text=True)
    assert update.returncode == 0, update.stdout + update.stderr
    assert "W:" not in update.stdout + update.stderr
    assert "E:" not in update.stdout + update.stderr
    show = subprocess.run(
        ["apt-cache", *opts, "show", "odd-caps", "tzdata"], capture_output=True, text=True, check=True
    ).stdout
    assert "Version: 1:2.0-1" in show
    assert "Version: 2025b-0+deb12u2" in show
    assert f"Filename: {entries[1].pool_path}" in show
