"""The .deb reader: real debs from dpkg-deb, hostile hand-made ones, Range reads and memory."""

from __future__ import annotations

import hashlib
import io
import lzma
import random
import subprocess
import tarfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

import pytest
from ghapt.core.errors import BadDebError
from ghapt.core.model import Control, DebInfo
from ghapt.deb.control import parse_control
from ghapt.deb.reader import (
    MAX_CONTROL_FILE,
    MAX_CONTROL_MEMBER,
    RANGE_WINDOW,
    read_control_by_ranges,
    read_deb,
    read_deb_path,
)

from tests.support import hostiledebs as h
from tests.support.debbuild import COMPRESSORS, build_deb, control_text

EVIL = "evil_1.0_all.deb"
KINDS = ("gzip", "xz", "zstd")  # the compressed control members


def render(control: Control) -> str:
    """A control paragraph as text again ("Field: value" lines, values kept verbatim)."""
    return "".join(f"{k}:{v}\n" if v.startswith("\n") else f"{k}: {v}\n" for k, v in control)


def dpkg_f(path: Path, *fields: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["dpkg-deb", "-f", str(path), *fields], capture_output=True)


def reason(data: bytes, name: str = EVIL) -> str:
    """The reason read_deb gives for ``data``; also checks the file's name is in the message."""
    with pytest.raises(BadDebError) as err:
        read_deb(io.BytesIO(data), name)
    assert err.value.name == name
    assert str(err.value) == f"{name}: {err.value.reason}"
    return err.value.reason


class Fetcher:
    """A fake HTTP Range endpoint over ``data`` that records what was asked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int) -> bytes:
        assert 0 <= start <= end
        self.calls.append((start, end))
        return self.data[start : end + 1]


def ranges_reason(data: bytes, size: int | None = None, name: str = EVIL) -> str:
    with pytest.raises(BadDebError) as err:
        read_control_by_ranges(Fetcher(data), len(data) if size is None else size, name)
    assert err.value.name == name
    return err.value.reason


def noise(n: int, seed: bytes) -> bytes:
    """Deterministic incompressible bytes."""
    return hashlib.shake_256(seed).digest(n)


def members(data: bytes) -> list[tuple[str, int, int]]:
    """(name, content offset, size) of each ar member, parsed independently of ghapt."""
    out = []
    pos = 8
    while pos + 60 <= len(data):
        name = data[pos : pos + 16].decode().strip().rstrip("/")
        size = int(data[pos + 48 : pos + 58].decode())
        out.append((name, pos + 60, size))
        pos += 60 + size + size % 2
    return out


# --------------------------------------------------------------------------------------------
# Real .debs built by dpkg-deb


@pytest.mark.parametrize("compression", COMPRESSORS)
def test_real_deb_fields_match_dpkg_and_hashes_match_hashlib(tmp_path: Path, compression: str) -> None:
    extra = {"Depends": "libc6 (>= 2.36), foo | bar", "Section": "utils", "Multi-Arch": "foreign"}
    deb = build_deb(
        tmp_path, "hello-world", "2:1.0~rc1+dfsg-1", "amd64", compression=compression, extra=extra
    )
    info = read_deb_path(deb)

    dumped = dpkg_f(deb)
    assert dumped.returncode == 0
    assert render(info.control).encode() == dumped.stdout
    for field in ("Package", "Version", "Architecture", "Depends", "Description"):
        value = info.field(field)
        assert value is not None, field
        assert (value + "\n").encode() == dpkg_f(deb, field).stdout
    assert (info.package, info.version, info.architecture) == ("hello-world", "2:1.0~rc1+dfsg-1", "amd64")

    raw = deb.read_bytes()
    assert info.size == len(raw)
    assert info.hashes.md5 == hashlib.md5(raw).hexdigest()
    assert info.hashes.sha1 == hashlib.sha1(raw).hexdigest()
    assert info.hashes.sha256 == hashlib.sha256(raw).hexdigest()
    assert info.hashes.sha512 is None  # the stanza lists MD5sum, SHA1 and SHA256 only


def test_read_deb_path_names_errors_after_the_file_or_the_given_name(tmp_path: Path) -> None:
    path = tmp_path / "broken.deb"
    path.write_bytes(b"not a deb at all")
    with pytest.raises(BadDebError, match=r"^broken\.deb: not an ar archive"):
        read_deb_path(path)
    with pytest.raises(BadDebError, match=r"^asset-42: not an ar archive"):
        read_deb_path(path, "asset-42")


def test_xz_level_9_control_member_fits_the_memory_limit(tmp_path: Path) -> None:
    """xz -9 uses a 64 MiB dictionary; the decoder limit must still accept it."""
    member = lzma.compress(h.tar([("./control", h.MINIMAL_CONTROL)]), preset=9)
    assert member[16] == 0x1C  # the block header's LZMA2 dictionary: 64 MiB
    deb = tmp_path / "x.deb"
    deb.write_bytes(h.deb(h.MINIMAL_CONTROL, control_member=member, control_name="control.tar.xz"))
    assert read_deb_path(deb).package == "hostile"


DESCRIPTION = (
    "frobnicate things, carefully\n"
    " A first paragraph that goes on\n"
    " over two lines.\n"
    " .\n"
    " A second paragraph with a list:\n"
    "   * indented item one\n"
    "   * indented item two\n"
    " .\n"
    "     verbatim   spacing\tand a tab"
)


def test_multiline_description_survives_byte_for_byte(tmp_path: Path) -> None:
    text = control_text(
        "frob", "1.0-1", "all", description=DESCRIPTION, extra={"Homepage": "https://x.invalid"}
    )
    assert render(parse_control(text.encode(), "frob")) == text

    deb = build_deb(tmp_path, "frob", "1.0-1", control=text)
    info = read_deb_path(deb)
    assert info.field("Description") == DESCRIPTION
    assert render(info.control) == text
    assert render(info.control).encode() == dpkg_f(deb).stdout


def test_parse_control_keeps_order_names_and_odd_bytes() -> None:
    raw = b"Package: p1\nX-Custom-THING: a\nversion: 1\nArchitecture: all\nDescription: caf\xe9 \xff\n"
    control = parse_control(raw, "p1.deb")
    assert [k for k, _ in control] == ["Package", "X-Custom-THING", "version", "Architecture", "Description"]
    assert render(control).encode("utf-8", "surrogateescape") == raw


def test_first_line_blanks_go_continuation_lines_stay() -> None:
    control = parse_control(b"Package: \t p1\nVersion: 1\nArchitecture: all\nDepends:\n a,\n\tb\n", "x")
    assert dict(control)["Package"] == "p1"
    assert dict(control)["Depends"] == "\n a,\n\tb"


# dpkg's own parser is the reference: what it tolerates we tolerate, with the same values.
DPKG_ACCEPTS = {
    "trailing blanks": (
        b"Package: hostile  \nVersion: 1.0\t\nArchitecture: all\nDescription: x  \n line2   \n .\n line3 \n"
    ),
    "blank before colon": b"Package : hostile\nVersion: 1.0\nArchitecture: all\nDescription: x\n",
    "leading blank lines": b"\n\nPackage: hostile\nVersion: 1.0\nArchitecture: all\nDescription: x\n",
    "trailing blank lines": b"Package: hostile\nVersion: 1.0\nArchitecture: all\nDescription: x\n\n\n",
    "tab continuation": b"Package: hostile\nVersion: 1.0\nArchitecture: all\nDescription: x\n\tline\n",
    "empty first line": b"Package: hostile\nVersion: 1.0\nArchitecture: all\nDescription:\n line\n",
    "not utf-8": b"Package: hostile\nVersion: 1.0\nArchitecture: all\nDescription: caf\xe9\n",
    "crlf": b"Package: hostile\r\nVersion: 1.0\r\nArchitecture: all\r\nDescription: \r\n line2\r\n line3\r\n",
}


@pytest.mark.parametrize("case", sorted(DPKG_ACCEPTS))
def test_tolerates_what_dpkg_tolerates_with_the_same_values(tmp_path: Path, case: str) -> None:
    path = tmp_path / "t.deb"
    path.write_bytes(h.deb(DPKG_ACCEPTS[case]))
    info = read_deb_path(path)
    for field in ("Package", "Version", "Architecture", "Description"):
        out = dpkg_f(path, field)
        assert out.returncode == 0, out.stderr
        assert (info.field(field) or "").encode("utf-8", "surrogateescape") + b"\n" == out.stdout


DPKG_REJECTS = {
    "comment line": (
        b"# hi\nPackage: hostile\nVersion: 1.0\nArchitecture: all\n",
        "line 1: not a 'Field: value' line",
    ),
    "blank line inside": (
        b"Package: hostile\nVersion: 1.0\n\nArchitecture: all\n",
        "line 4: text after the blank line 3",
    ),
    "blank-only line in a value": (
        b"Package: hostile\nVersion: 1.0\nArchitecture: all\nDescription: x\n \n more\n",
        "line 6: text after the blank line 5",
    ),
    "duplicate in another case": (
        b"Package: hostile\nVersion: 1.0\nArchitecture: all\npackage: x\n",
        "duplicate field 'package'",
    ),
    "no final newline": (
        b"Package: hostile\nVersion: 1.0\nArchitecture: all",
        "the last line does not end with a newline",
    ),
    "version not starting with a digit": (
        b"Package: hostile\nVersion: a1.0\nArchitecture: all\n",
        "invalid version 'a1.0': the upstream version does not start with a digit",
    ),
    "field starting with a hyphen": (
        b"Package: hostile\nVersion: 1.0\nArchitecture: all\n-X: y\n",
        "field name '-X' starts with '-'",
    ),
}


@pytest.mark.parametrize("case", sorted(DPKG_REJECTS))
def test_rejects_what_dpkg_rejects(tmp_path: Path, case: str) -> None:
    text, why = DPKG_REJECTS[case]
    path = tmp_path / "t.deb"
    path.write_bytes(h.deb(text))
    assert dpkg_f(path, "Package").returncode != 0
    with pytest.raises(BadDebError) as err:
        read_deb_path(path)
    assert why in err.value.reason
    assert err.value.reason.startswith("bad control file: ")
    assert "t.deb" in str(err.value)


def _with(**fields: str) -> bytes:
    base = {"Package": "pkg", "Version": "1.0", "Architecture": "all"}
    base.update(fields)
    return "".join(f"{k}: {v}\n" for k, v in base.items() if v != "<drop>").encode()


BAD_CONTROL = [
    (b"", "bad control file: it is empty"),
    (b"\n \n\t\n", "bad control file: it is empty"),
    (b"Package: p\x00q\nVersion: 1\nArchitecture: all\n", "bad control file: it contains a NUL byte"),
    (b" Package: pkg\nVersion: 1\nArchitecture: all\n", "line 1: continuation line before the first field"),
    (b"Package pkg\nVersion: 1\nArchitecture: all\n", "line 1: not a 'Field: value' line: 'Package pkg'"),
    (_with() + b"#Foo: bar\n", "line 4: field name '#Foo' starts with '#'"),
    (_with() + b": bar\n", "line 4: empty field name"),
    (_with() + b"Foo Bar: x\n", "line 4: field name 'Foo Bar' has a blank"),
    (
        _with() + "Prénom: x\n".encode(),
        "field name 'Prénom' has a blank or a character that is not printable ASCII",
    ),
    (_with() + b"Version: 2\n", "line 4: duplicate field 'Version'"),
    (_with(Package="<drop>"), "required field 'Package' is missing"),
    (_with(Version="<drop>"), "required field 'Version' is missing"),
    (_with(Architecture="<drop>"), "required field 'Architecture' is missing"),
    (_with(Version=""), "required field 'Version' is empty"),
    (_with(Package="Hello"), "invalid package name 'Hello'"),
    (_with(Package="a"), "invalid package name 'a'"),
    (_with(Package="-ab"), "invalid package name '-ab'"),
    (_with(Package="a_b"), "invalid package name 'a_b'"),
    (_with(Package="ab\n cd"), "invalid package name 'ab\\n cd'"),
    (_with(Version="1.0-"), "the revision after the last '-' is empty"),
    (_with(Version="-1"), "the upstream version is empty"),
    (_with(Version=":1.0"), "the epoch before ':' is empty"),
    (_with(Version="x:1.0"), "the epoch is not a number"),
    (_with(Version="1.0:2"), "the epoch is not a number"),
    (_with(Version="99999999999:1"), "the epoch is too big"),
    (_with(Version="1.0 2"), "it contains a blank or a line break"),
    (_with(Version="1.0\n 2"), "it contains a blank or a line break"),
    (_with(Version="1:2.0_1"), "the upstream version has a character outside"),
    (_with(Version="1.0-1_2"), "the revision has a character outside"),
    (_with(Version="1.0-1:2"), "the epoch is not a number"),
    (_with(Version="2:1.0-a:b"), "the revision has a character outside"),
    (_with(Version="\uff11.0"), "the upstream version does not start with a digit"),
    (_with(Architecture="AMD64"), "invalid architecture 'AMD64': need one lowercase token"),
    (_with(Architecture="amd64 i386"), "invalid architecture 'amd64 i386'"),
    (_with(Architecture="any"), "invalid architecture 'any': not the architecture of a built package"),
    (_with(Architecture="linux-any"), "not the architecture of a built package"),
    (_with(Architecture="source"), "not the architecture of a built package"),
]


@pytest.mark.parametrize(("text", "why"), BAD_CONTROL, ids=[w for _, w in BAD_CONTROL])
def test_parse_control_rejects(text: bytes, why: str) -> None:
    with pytest.raises(BadDebError) as err:
        parse_control(text, "pkg.deb")
    assert why in err.value.reason
    assert err.value.reason.startswith("bad control file: ")
    assert str(err.value).startswith("pkg.deb: ")


@pytest.mark.parametrize(
    "version",
    ["0", "1.0", "1:2.0~rc1-1", "2.0+dfsg-1ubuntu0.1", "1.0-1-1", "1:2:3-4", "0:1", "1.0~~", "20240101"],
)
def test_valid_versions_pass(version: str) -> None:
    assert dict(parse_control(_with(Version=version), "x"))["Version"] == version


@pytest.mark.parametrize("arch", ["all", "amd64", "arm64", "musl-linux-amd64", "ppc64el"])
def test_valid_architectures_pass(arch: str) -> None:
    assert dict(parse_control(_with(Architecture=arch), "x"))["Architecture"] == arch


# --------------------------------------------------------------------------------------------
# Hostile files: the ar layer

GOOD = h.deb(h.MINIMAL_CONTROL)
DEBIAN_BINARY = h.ar_member("debian-binary", b"2.0\n")
CONTROL_GZ = h.ar_member("control.tar.gz", h.control_tar(h.MINIMAL_CONTROL, "gzip"))
DATA = h.ar_member("data.tar.xz", h.compress("xz", h.tar([])))
CONTROL_SIZE = len(h.control_tar(h.MINIMAL_CONTROL, "gzip"))

# (id, bytes, stable part of the reason, whether read_control_by_ranges sees it too)
HOSTILE: list[tuple[str, bytes, str, bool]] = [
    ("empty", b"", "empty file", True),
    ("cut in global header", b"!<arc", "truncated: file ends inside the ar global header", True),
    ("not ar", b"PK\x03\x04" + bytes(100), "not an ar archive (no '!<arch>' magic), so not a .deb", True),
    (
        "cut in member header",
        h.AR_MAGIC + DEBIAN_BINARY[:30],
        "truncated: file ends inside the ar member header at offset 8",
        True,
    ),
    (
        "bad header magic",
        h.ar(h.ar_header("debian-binary", 4, magic=b"X\n") + b"2.0\n", CONTROL_GZ, DATA),
        "bad ar member header at offset 8: wrong magic b'X\\n'",
        True,
    ),
    (
        "non-numeric size",
        h.ar(h.ar_header("debian-binary", b"4x") + b"2.0\n", CONTROL_GZ, DATA),
        "bad ar member header for 'debian-binary' at offset 8: size '4x' is not a number",
        True,
    ),
    (
        "negative size",
        h.ar(h.ar_header("debian-binary", b"-4") + b"2.0\n", CONTROL_GZ, DATA),
        "size '-4' is not a number",
        True,
    ),
    ("no members", h.AR_MAGIC, "debian-binary member missing: the ar archive is empty", True),
    (
        "debian-binary missing",
        h.ar(CONTROL_GZ, DATA),
        "debian-binary member missing or not first: first member is 'control.tar.gz'",
        True,
    ),
    (
        "debian-binary not first",
        h.ar(CONTROL_GZ, DEBIAN_BINARY, DATA),
        "debian-binary member missing or not first: first member is 'control.tar.gz'",
        True,
    ),
    (
        "wrong format version",
        h.ar(h.ar_member("debian-binary", b"3.0\n"), CONTROL_GZ, DATA),
        "unsupported .deb format version '3.0' in debian-binary (need 2.x)",
        True,
    ),
    (
        "old format",
        h.ar(h.ar_member("debian-binary", b"0.939000\n"), CONTROL_GZ, DATA),
        "unsupported .deb format version '0.939000'",
        True,
    ),
    (
        "huge debian-binary",
        h.ar(h.ar_member("debian-binary", b"2.0\n" + bytes(5000)), CONTROL_GZ, DATA),
        "debian-binary member is 5004 bytes, more than 1024",
        True,
    ),
    ("no control member", h.ar(DEBIAN_BINARY), "no control member (control.tar*)", True),
    (
        "data before control",
        h.ar(DEBIAN_BINARY, DATA, CONTROL_GZ),
        "no control member before the data member 'data.tar.xz'",
        True,
    ),
    (
        "unknown control compression",
        h.ar(DEBIAN_BINARY, h.ar_member("control.tar.bz2", b"BZh9"), DATA),
        "unknown compression of the control member 'control.tar.bz2'",
        True,
    ),
    (
        "second debian-binary",
        h.ar(DEBIAN_BINARY, DEBIAN_BINARY, CONTROL_GZ, DATA),
        "a second debian-binary member where the control member should be",
        True,
    ),
    (
        "stray member",
        h.ar(DEBIAN_BINARY, h.ar_member("README", b"hi"), CONTROL_GZ, DATA),
        "unexpected member 'README' where the control member should be",
        True,
    ),
    (
        "absurd control member",
        h.ar(DEBIAN_BINARY, h.ar_header("control.tar.gz", 100 << 20)),
        f"control member 'control.tar.gz' is {100 << 20} bytes, more than the 64 MiB limit",
        False,  # by ranges the file is too short first; see the test with a virtual large file
    ),
    (
        "cut in control member",
        h.ar(DEBIAN_BINARY, h.ar_member("control.tar.gz", b"\x1f\x8b", size=CONTROL_SIZE, pad=False)),
        f"truncated: member 'control.tar.gz' declares {CONTROL_SIZE} bytes but only 2 remain",
        True,
    ),
    (
        "no data member",
        h.ar(DEBIAN_BINARY, CONTROL_GZ),
        "no data member (data.tar*) after the control member",
        True,
    ),
    (
        "unknown data compression",
        h.ar(DEBIAN_BINARY, CONTROL_GZ, h.ar_member("data.tar.lz4", b"")),
        "unknown compression of the data member 'data.tar.lz4'",
        True,
    ),
    (
        "stray member instead of data",
        h.ar(DEBIAN_BINARY, CONTROL_GZ, h.ar_member("control.tar.gz", b"")),
        "unexpected member 'control.tar.gz' where the data member should be",
        True,
    ),
    (
        "cut in data member",
        h.ar(DEBIAN_BINARY, CONTROL_GZ, h.ar_header("data.tar.xz", 1000) + b"\xfd7zXZ"),
        "truncated: member 'data.tar.xz' declares 1000 bytes but only 5 remain",
        True,
    ),
    (
        "cut in a trailing member",
        h.ar(DEBIAN_BINARY, CONTROL_GZ, DATA, h.ar_header("_gpgorigin", 500) + b"sig"),
        "truncated: member '_gpgorigin' declares 500 bytes but only 3 remain",
        False,
    ),
    ("junk after the last member", GOOD + b"junk", "4 bytes of junk after the last member at offset", False),
    (
        "bad control syntax",
        h.deb(b"Package: x\nVersion: 1\nArchitecture: all\n"),
        "bad control file: invalid package name 'x'",
        True,
    ),
]


@pytest.mark.parametrize(("data", "why"), [(d, w) for _, d, w, _ in HOSTILE], ids=[i for i, *_ in HOSTILE])
def test_hostile_structure(data: bytes, why: str) -> None:
    assert why in reason(data)


@pytest.mark.parametrize(
    ("data", "why"), [(d, w) for _, d, w, r in HOSTILE if r], ids=[i for i, _, _, r in HOSTILE if r]
)
def test_hostile_structure_by_ranges(data: bytes, why: str) -> None:
    assert why in ranges_reason(data)


def test_gnu_names_optional_members_and_odd_sizes_are_fine() -> None:
    """Names ending in '/', '_' members dpkg skips, odd sizes with padding, and a last pad byte missing."""
    control = h.control_tar(h.MINIMAL_CONTROL, "none") + b"x"  # odd size, tar readers ignore the tail
    data = h.ar(
        h.ar_member("debian-binary/", b"2.0\n"),
        h.ar_member("_gpgbuilder", b"abc"),
        h.ar_member("control.tar/", control),
        h.ar_member("_extra", b"12345"),
        h.ar_member("data.tar.gz/", b"odd", pad=False),
    )
    assert len(control) % 2 == 1
    info = read_deb(io.BytesIO(data), "ok.deb")
    assert info.package == "hostile"
    assert info.size == len(data)
    assert info.hashes.sha256 == hashlib.sha256(data).hexdigest()
    assert read_control_by_ranges(Fetcher(data), len(data), "ok.deb") == info.control


def test_signature_member_after_data_is_hashed() -> None:
    data = GOOD + h.ar_member("_gpgorigin", b"-----BEGIN PGP SIGNATURE-----\n")
    info = read_deb(io.BytesIO(data), "signed.deb")
    assert info.size == len(data)
    assert (info.hashes.md5, info.hashes.sha1, info.hashes.sha256) == tuple(
        hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256")
    )


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_every_truncation_is_caught(tmp_path: Path, kind: str) -> None:
    """Cutting a real .deb anywhere before the end of its data member is an error, for both readers."""
    raw = build_deb(tmp_path, "cut", "1.0", compression=kind).read_bytes()
    _, start, size = members(raw)[-1]
    end = start + size
    step = 1 if len(raw) < 4096 else 97  # the 'none' deb has a large uncompressed data member
    for cut in range(0, end, step):
        with pytest.raises(BadDebError):
            read_deb(io.BytesIO(raw[:cut]), "cut.deb")
        with pytest.raises(BadDebError):
            read_control_by_ranges(Fetcher(raw[:cut]), cut, "cut.deb")
        # The metadata says the full size but the server has less.
        with pytest.raises(BadDebError):
            read_control_by_ranges(Fetcher(raw[:cut]), len(raw), "cut.deb")
    assert read_deb(io.BytesIO(raw[:end]), "cut.deb").package == "cut"


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_random_corruption_only_ever_raises_bad_deb(tmp_path: Path, kind: str) -> None:
    raw = build_deb(tmp_path, "fuzz", "1.0", compression=kind).read_bytes()
    rng = random.Random(f"ghapt-{kind}")  # noqa: S311 (a reproducible fuzz, not a secret)
    limit = min(len(raw), 2048)  # the ar headers and the control member
    rejected = 0
    for _ in range(400):
        mutated = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(limit)] = rng.randrange(256)
        readers: tuple[Callable[[bytes], Control], ...] = (
            lambda b: read_deb(io.BytesIO(b), "fuzz.deb").control,
            lambda b: read_control_by_ranges(Fetcher(b), len(b), "fuzz.deb"),
        )
        for read in readers:
            try:
                read(bytes(mutated))
            except BadDebError:
                rejected += 1
    assert rejected > 200  # most single-byte hits in headers or compressed data are fatal


# --------------------------------------------------------------------------------------------
# Hostile files: the control member


def control_member_reason(member: bytes, member_name: str) -> str:
    data = h.ar(DEBIAN_BINARY, h.ar_member(member_name, member), DATA)
    why = reason(data)
    assert ranges_reason(data) == why
    return why


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_compressed_control(kind: str) -> None:
    good = h.control_tar(h.MINIMAL_CONTROL, kind)
    bad = good[:12] + bytes(b ^ 0x5A for b in good[12:])
    assert control_member_reason(bad, h.CONTROL_NAMES[kind]).startswith(
        f"corrupt control member '{h.CONTROL_NAMES[kind]}': "
    )


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_instead_of_compressed_control(kind: str) -> None:
    why = control_member_reason(b"this is not compressed at all" * 10, h.CONTROL_NAMES[kind])
    assert why.startswith(f"corrupt control member '{h.CONTROL_NAMES[kind]}': ")


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_compressed_control_ending_early(kind: str) -> None:
    good = h.control_tar(h.MINIMAL_CONTROL, kind)
    why = control_member_reason(good[: len(good) // 2], h.CONTROL_NAMES[kind])
    assert (
        why == f"corrupt control member '{h.CONTROL_NAMES[kind]}': compressed data ends before its end marker"
    )


def test_zstd_control_ending_early() -> None:
    """zstd's stream reader ends a cut frame quietly; the tar layer notices the missing end marker."""
    good = h.compress("zstd", h.tar([("./control", h.MINIMAL_CONTROL * 40)]))
    why = control_member_reason(good[: len(good) // 2], "control.tar.zst")
    assert why == "control member 'control.tar.zst' ends before its control file, without a tar end marker"


def test_control_tar_without_end_marker() -> None:
    member = h.tar_entry("./md5sums", b"x  y\n")
    assert control_member_reason(member, "control.tar") == (
        "control member 'control.tar' ends before its control file, without a tar end marker"
    )


def test_corrupt_uncompressed_control_tar() -> None:
    good = h.control_tar(h.MINIMAL_CONTROL, "none")
    bad = b"x" * 10 + good[10:]
    assert control_member_reason(bad, "control.tar") == (
        "control member 'control.tar' is not a valid tar archive: header checksum mismatch"
    )


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_control_tar_without_control_file(kind: str) -> None:
    member = h.compress(kind, h.tar([("./md5sums", b"x  y\n"), ("./postinst", b"#!/bin/sh\n")]))
    assert control_member_reason(member, h.CONTROL_NAMES[kind]) == (
        f"control member '{h.CONTROL_NAMES[kind]}' has no control file"
    )


def test_control_tar_with_control_symlink() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo("./control")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/shadow"
        tf.addfile(info)
    assert control_member_reason(h.compress("gzip", buf.getvalue()), "control.tar.gz") == (
        "control member 'control.tar.gz': its control file is not a regular file"
    )


@pytest.mark.parametrize("path", ["./control", "control"])
def test_control_found_after_other_files(path: str) -> None:
    member = h.compress("xz", h.tar([("./", b""), ("./md5sums", b"0" * 5000), (path, h.MINIMAL_CONTROL)]))
    data = h.ar(DEBIAN_BINARY, h.ar_member("control.tar.xz", member), DATA)
    assert read_deb(io.BytesIO(data), "ok.deb").package == "hostile"


def test_long_names_and_pax_headers_are_followed() -> None:
    """GNU long names and pax headers before ./control are skipped; a pax path can name it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, content in [
            ("./" + "d" * 150 + "/file", b"x" * 700),
            ("./ünïcode", b"y"),
            ("./control", h.MINIMAL_CONTROL),
        ]:
            info = tarfile.TarInfo(path)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    pax = buf.getvalue()
    assert b"path=./" in pax
    gnu = h.tar([("./" + "e" * 200, b"z" * 513), ("./control", h.MINIMAL_CONTROL)])
    assert b"././@LongLink" in gnu
    for member in (pax, gnu):
        data = h.ar(DEBIAN_BINARY, h.ar_member("control.tar", member), DATA)
        assert read_deb(io.BytesIO(data), "ok.deb").package == "hostile"


def test_huge_pax_header_is_refused() -> None:
    header = tarfile.TarInfo("./PaxHeaders/x")
    header.type = tarfile.XHDTYPE
    header.size = 10 << 20
    member = h.compress("gzip", header.tobuf(format=tarfile.USTAR_FORMAT) + bytes(10 << 20))
    assert control_member_reason(member, "control.tar.gz") == (
        "control member 'control.tar.gz' is not a valid tar archive: "
        "a 10485760-byte extended header (limit 1 MiB)"
    )


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_control_file_too_large(kind: str) -> None:
    big = h.MINIMAL_CONTROL + b"X-Filler: " + b"a" * MAX_CONTROL_FILE + b"\n"
    assert control_member_reason(h.control_tar(big, kind), h.CONTROL_NAMES[kind]) == (
        f"control file is {len(big)} bytes, more than the 1 MiB limit"
    )


def test_control_file_at_the_limit_is_read() -> None:
    body = h.MINIMAL_CONTROL + b"X-Filler: "
    big = body + b"a" * (MAX_CONTROL_FILE - len(body) - 1) + b"\n"
    assert len(big) == MAX_CONTROL_FILE
    data = h.ar(DEBIAN_BINARY, h.ar_member("control.tar.gz", h.control_tar(big, "gzip")), DATA)
    assert len(dict(read_deb(io.BytesIO(data), "ok.deb").control)["X-Filler"]) == len(big) - len(body) - 1


def test_xz_control_asking_for_too_much_memory() -> None:
    member = h.xz_needing_memory(h.tar([("./control", h.MINIMAL_CONTROL)]))
    why = control_member_reason(member, "control.tar.xz")
    assert why.startswith("corrupt control member 'control.tar.xz': Memory usage limit")


def test_zstd_control_asking_for_too_large_a_window() -> None:
    member = h.zstd_needing_memory(h.tar([("./control", h.MINIMAL_CONTROL)]))
    why = control_member_reason(member, "control.tar.zst")
    assert why.startswith("corrupt control member 'control.tar.zst': ")
    assert "too much memory" in why


def peak_memory(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


BOMB = "decompresses to more than 256 MiB before its control file (compression bomb?)"


@pytest.mark.parametrize("kind", KINDS)
def test_compression_bomb_of_gigabytes(kind: str) -> None:
    """A few MiB of concatenated streams that would inflate to 4 GiB stop at the 256 MiB cap."""
    member = h.concatenated_bomb(kind, 4 << 30)
    assert len(member) < MAX_CONTROL_MEMBER
    data = h.ar(DEBIAN_BINARY, h.ar_member(h.CONTROL_NAMES[kind], member), DATA)
    failure: list[str] = []

    def run() -> None:
        failure.append(reason(data))

    assert peak_memory(run) < 20 << 20
    assert failure == [f"control member '{h.CONTROL_NAMES[kind]}' {BOMB}"]
    assert ranges_reason(data) == failure[0]


@pytest.mark.parametrize("kind", KINDS)
def test_compression_bomb_in_one_stream(kind: str) -> None:
    member = h.compress_stream(kind, h.zeros_then_control(300 << 20))
    assert len(member) < 2 << 20
    data = h.ar(DEBIAN_BINARY, h.ar_member(h.CONTROL_NAMES[kind], member), DATA)
    assert reason(data) == f"control member '{h.CONTROL_NAMES[kind]}' {BOMB}"


def test_uncompressed_control_tar_is_capped_by_member_size() -> None:
    """A plain control.tar cannot be a bomb: its size is the member size, capped at 64 MiB."""
    data = h.ar(DEBIAN_BINARY, h.ar_header("control.tar", MAX_CONTROL_MEMBER + 1))
    assert (
        reason(data)
        == f"control member 'control.tar' is {MAX_CONTROL_MEMBER + 1} bytes, more than the 64 MiB limit"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_decompression_stops_at_the_control_file(kind: str) -> None:
    """What follows ./control is never decompressed: neither gigabytes of zeros nor garbage."""
    bomb_after = h.concatenated_bomb(kind, 4 << 30, first=True)
    # A complete stream holding ./control and no end-of-archive, then bytes no decoder accepts.
    garbage_after = h.compress(kind, h.tar_entry("./control", h.MINIMAL_CONTROL)) + b"\xff" * 5000
    for member in (bomb_after, garbage_after):
        data = h.ar(DEBIAN_BINARY, h.ar_member(h.CONTROL_NAMES[kind], member), DATA)
        info = read_deb(io.BytesIO(data), "ok.deb")
        assert info.package == "hostile"
        assert info.hashes.sha256 == hashlib.sha256(data).hexdigest()
        assert read_control_by_ranges(Fetcher(data), len(data), "ok.deb") == info.control


# --------------------------------------------------------------------------------------------
# HTTP Range reads


@pytest.mark.parametrize("compression", COMPRESSORS)
def test_ranges_give_the_same_control_in_one_fetch(tmp_path: Path, compression: str) -> None:
    raw = build_deb(tmp_path, "ranged", "3.1-2", "arm64", compression=compression).read_bytes()
    fetch = Fetcher(raw)
    control = read_control_by_ranges(fetch, len(raw), "ranged.deb")
    assert control == read_deb(io.BytesIO(raw), "ranged.deb").control
    assert fetch.calls == [(0, min(len(raw), RANGE_WINDOW) - 1)]


@pytest.mark.parametrize("compression", COMPRESSORS)
def test_ranges_with_a_large_control_member_fetch_twice_and_skip_data(
    tmp_path: Path, compression: str
) -> None:
    text_noise = noise(100_000, b"text").hex()  # incompressible text
    text = control_text(
        "bigctl",
        "1.0",
        description="big\n " + "\n ".join(text_noise[i : i + 70] for i in range(0, len(text_noise), 70)),
    )
    files = {"usr/share/bigctl/blob": noise(300_000, b"blob")}
    raw = build_deb(
        tmp_path, "bigctl", "1.0", control=text, compression=compression, files=files
    ).read_bytes()
    (_, _, _), (_, ctl_start, ctl_size), (data_name, data_start, data_size) = members(raw)
    assert ctl_start + ctl_size > RANGE_WINDOW  # the control member goes past the first window
    assert data_name.startswith("data.tar")
    assert data_size > 100_000

    fetch = Fetcher(raw)
    control = read_control_by_ranges(fetch, len(raw), "bigctl.deb")
    assert render(control) == text
    assert len(fetch.calls) == 2
    assert fetch.calls[0] == (0, RANGE_WINDOW - 1)
    assert fetch.calls[1][0] == RANGE_WINDOW
    assert fetch.calls[1][1] < data_start  # stops at the data member's header


def test_ranges_detect_a_size_that_disagrees_with_the_file() -> None:
    *_, data_size = members(GOOD)[-1]
    assert ranges_reason(GOOD, size=len(GOOD) - 1) == (
        f"truncated: member 'data.tar.xz' declares {data_size} bytes but only {data_size - 1} remain"
    )
    # The metadata promises more than the server has.
    _, ctl_start, ctl_size = members(GOOD)[1]
    assert ranges_reason(GOOD[: ctl_start + 10], size=len(GOOD)) == (
        f"truncated: member 'control.tar.gz' declares {ctl_size} bytes but only 10 remain"
    )
    assert ranges_reason(b"", size=0) == "empty file"


def test_ranges_refuse_an_absurd_control_member_without_fetching_it() -> None:
    head = h.AR_MAGIC + DEBIAN_BINARY + h.ar_header("control.tar.xz", 100 << 20)
    size = len(head) + (100 << 20) + 60 + 1000

    calls: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:  # a virtual 100 MB file: the header, then zeros
        calls.append((start, end))
        return (head + bytes(end + 1 - len(head)))[start : end + 1]

    with pytest.raises(BadDebError) as err:
        read_control_by_ranges(fetch, size, "big.deb")
    assert (
        err.value.reason
        == f"control member 'control.tar.xz' is {100 << 20} bytes, more than the 64 MiB limit"
    )
    assert calls == [(0, RANGE_WINDOW - 1)]


def test_ranges_skip_optional_members_without_fetching_them() -> None:
    blob = bytes(200_000)
    data = h.ar(DEBIAN_BINARY, h.ar_member("_padding", blob), CONTROL_GZ, DATA)
    fetch = Fetcher(data)
    assert dict(read_control_by_ranges(fetch, len(data), "skip.deb"))["Package"] == "hostile"
    fetched = sum(end - start + 1 for start, end in fetch.calls)
    assert fetched < RANGE_WINDOW + 1000  # the 200 KB member was skipped, not downloaded


# --------------------------------------------------------------------------------------------
# Memory


class GeneratedDeb(io.RawIOBase):
    """A .deb of ``data_size`` bytes produced on the fly, returning short reads like a pipe."""

    def __init__(self, head: bytes, data_size: int) -> None:
        self._pieces = self.generate(head, data_size)
        self._pending = b""

    @staticmethod
    def generate(head: bytes, data_size: int) -> Iterator[bytes]:
        yield head + h.ar_header("data.tar.gz", data_size)
        block = noise(1 << 16, b"data")  # incompressible, reused
        left = data_size
        while left:
            n = min(left, len(block) - (left % 7))
            yield block[:n]
            left -= n

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            self._pending = next(self._pieces, b"")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def test_a_200_mb_deb_streams_in_bounded_memory() -> None:
    size = 200 << 20
    head = h.AR_MAGIC + DEBIAN_BINARY + CONTROL_GZ
    expected = hashlib.sha256()
    total = 0
    for piece in GeneratedDeb.generate(head, size):
        expected.update(piece)
        total += len(piece)

    result: list[DebInfo] = []
    stream = cast(BinaryIO, GeneratedDeb(head, size))  # unbuffered: reads come back short
    peak = peak_memory(lambda: result.append(read_deb(stream, "big.deb")))
    info = result[0]
    assert peak < 20 << 20
    assert info.size == total == len(head) + 60 + size
    assert info.hashes.sha256 == expected.hexdigest()
    assert info.package == "hostile"


def test_a_200_mb_sparse_deb_file_in_bounded_memory(tmp_path: Path) -> None:
    size = 200 << 20
    path = tmp_path / "sparse.deb"
    with path.open("wb") as f:
        f.write(h.AR_MAGIC + DEBIAN_BINARY + CONTROL_GZ + h.ar_header("data.tar", size))
        f.truncate(f.tell() + size)  # a hole: no disk space used
    result: list[DebInfo] = []
    peak = peak_memory(lambda: result.append(read_deb_path(path)))
    assert peak < 20 << 20
    assert result[0].size == path.stat().st_size == 8 + len(DEBIAN_BINARY) + len(CONTROL_GZ) + 60 + size
    with path.open("rb") as f:
        assert result[0].hashes.sha1 == hashlib.file_digest(f, "sha1").hexdigest()


def test_tar_header_checksums_are_accepted_as_unsigned_or_as_old_signed_sums() -> None:
    from ghapt.deb.reader import _tar_checksum_ok

    block = bytearray(512)
    block[:12] = "./contrôl".encode()  # two bytes above 127
    rest = bytes(block[:148] + block[156:])
    unsigned = sum(rest) + 8 * 0x20
    signed = unsigned - 256 * sum(1 for b in rest if b > 127)
    for value, ok in ((unsigned, True), (signed, True), (unsigned + 1, False), (signed - 256, False)):
        block[148:156] = b"%06o\0 " % value
        assert _tar_checksum_ok(bytes(block)) is ok, value
