"""Debian control data: parse and validate a binary package's control file, and render its
Packages stanza, both following dpkg.

Parsing follows dpkg's own parser (``lib/dpkg/parse.c``: field syntax, required fields,
``parseversion``); rendering is exactly what ``dpkg-scanpackages -m`` writes, from dpkg 1.21's
``Dpkg::Control::HashCore`` (parse/output) and ``Dpkg::Control::FieldsCore`` (field order and
names for ``CTRL_INDEX_PKG``); the tests compare against the real tool byte for byte.
"""

from __future__ import annotations

import functools
import re

from ghapt.core.errors import BadDebError
from ghapt.core.model import Control, DebInfo

# What C's isspace() means to dpkg's parser, minus the newline that separates lines.
DPKG_BLANKS = " \t\r\v\f"
# Perl's \s on byte strings (dpkg-scanpackages): ASCII whitespace only, a UTF-8 no-break space
# is not blank.
PERL_BLANKS = " \t\n\r\f\v"


def parse_control(data: bytes, name: str) -> Control:
    """Parse and validate a binary package's control file, following dpkg's own parser.

    Values keep continuation lines verbatim (leading blank included), joined with "\\n"; the
    first line loses its leading blanks and the value loses trailing blanks, as in dpkg. Bytes
    that are not UTF-8 round-trip through ``surrogateescape``."""
    text = data.decode("utf-8", "surrogateescape")
    if "\0" in text:
        raise BadDebError(name, "bad control file: it contains a NUL byte")
    if not text.strip(DPKG_BLANKS + "\n"):
        raise BadDebError(name, "bad control file: it is empty")
    if not text.endswith("\n"):
        # dpkg refuses these too ("missing final newline"), so the package could not be installed.
        raise BadDebError(name, "bad control file: the last line does not end with a newline")
    fields: list[tuple[str, list[str]]] = []
    seen: dict[str, str] = {}
    blank_at: int | None = None  # first blank line after the paragraph started
    for no, line in enumerate(text[:-1].split("\n"), 1):
        if not line.strip(DPKG_BLANKS):
            if fields and blank_at is None:
                blank_at = no
            continue
        if blank_at is not None:
            raise _syntax(name, no, f"text after the blank line {blank_at}; a .deb has exactly one paragraph")
        if line[0] in " \t":
            if not fields:
                raise _syntax(name, no, "continuation line before the first field")
            fields[-1][1].append(line)
            continue
        head, colon, rest = line.partition(":")
        if not colon:
            raise _syntax(name, no, f"not a 'Field: value' line: {_clip(line)!r}")
        field = head.rstrip(" \t")  # dpkg allows blanks before the colon
        problem = _field_name_problem(field)
        if problem:
            raise _syntax(name, no, problem)
        key = field.lower()
        if key in seen:
            raise _syntax(name, no, f"duplicate field {field!r} (field names ignore case)")
        seen[key] = field
        fields.append((field, [rest.lstrip(DPKG_BLANKS)]))
    control: Control = tuple((field, "\n".join(parts).rstrip(DPKG_BLANKS)) for field, parts in fields)
    _check_required(control, name)
    return control


def _syntax(name: str, line: int, why: str) -> BadDebError:
    return BadDebError(name, f"bad control file: line {line}: {why}")


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _field_name_problem(field: str) -> str | None:
    """Why ``field`` is not a valid field name (Debian policy 5.1), or None."""
    if not field:
        return "empty field name"
    if field[0] == "-":
        return f"field name {field!r} starts with '-'"
    if field[0] == "#":
        return f"field name {field!r} starts with '#' (a .deb control file has no comments)"
    if not _FIELD_NAME_RE.fullmatch(field):
        return f"field name {field!r} has a blank or a character that is not printable ASCII"
    return None


_FIELD_NAME_RE = re.compile(r"[!-~]+", re.ASCII)  # printable ASCII, no blank


_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+", re.ASCII)


_ARCH_RE = re.compile(r"[a-z0-9][a-z0-9-]*", re.ASCII)


_EPOCH_RE = re.compile(r"[0-9]+", re.ASCII)


_UPSTREAM_RE = re.compile(r"[0-9][A-Za-z0-9.+~:-]*", re.ASCII)


_PLAIN_VERSION_RE = re.compile(r"[0-9][A-Za-z0-9.+~]*(?:-[A-Za-z0-9.+~]+)?", re.ASCII)


_REVISION_RE = re.compile(r"[A-Za-z0-9.+~]+", re.ASCII)


def _check_required(control: Control, name: str) -> None:
    values = {field.lower(): value for field, value in control}
    for field in ("Package", "Version", "Architecture"):
        if field.lower() not in values:
            raise BadDebError(name, f"bad control file: required field {field!r} is missing")
        if not values[field.lower()]:
            raise BadDebError(name, f"bad control file: required field {field!r} is empty")
    package = values["package"]
    if not _PACKAGE_RE.fullmatch(package):
        raise BadDebError(
            name,
            f"bad control file: invalid package name {_clip(package)!r} "
            "(need [a-z0-9][a-z0-9+.-]+, at least two characters)",
        )
    version = values["version"]
    problem = version_problem(version)
    if problem:
        raise BadDebError(name, f"bad control file: invalid version {_clip(version)!r}: {problem}")
    arch = values["architecture"]
    problem = _arch_problem(arch)
    if problem:
        raise BadDebError(name, f"bad control file: invalid architecture {_clip(arch)!r}: {problem}")


def version_problem(version: str) -> str | None:
    """Why ``version`` is not a valid Debian version (dpkg's parseversion rules), or None."""
    if _PLAIN_VERSION_RE.fullmatch(version):
        return None  # the common shape (no epoch, at most one '-'): valid by every rule below
    if any(c.isspace() for c in version):
        return "it contains a blank or a line break"
    rest = version
    if ":" in version:
        epoch, rest = version.split(":", 1)
        if not epoch:
            return "the epoch before ':' is empty"
        if not _EPOCH_RE.fullmatch(epoch):
            return "the epoch is not a number"
        if int(epoch) > 0x7FFFFFFF:
            return "the epoch is too big"
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    elif not revision:
        return "the revision after the last '-' is empty"
    if not upstream:
        return "the upstream version is empty"
    if not upstream[0].isascii() or not upstream[0].isdigit():
        return "the upstream version does not start with a digit"
    if not _UPSTREAM_RE.fullmatch(upstream):
        return "the upstream version has a character outside [A-Za-z0-9.+~-:]"
    if dash and not _REVISION_RE.fullmatch(revision):
        return "the revision has a character outside [A-Za-z0-9.+~]"
    return None


def _arch_problem(arch: str) -> str | None:
    if not _ARCH_RE.fullmatch(arch):
        return "need one lowercase token of letters, digits and '-'"
    if arch == "source" or "any" in arch.split("-"):
        return "not the architecture of a built package"
    return None


# Dpkg::Control::FieldsCore, %FIELD_ORDER{CTRL_INDEX_PKG} (unchanged in dpkg 1.22): the
# fields it knows are written in this order, every other field after them, sorted by name.
INDEX_PKG_ORDER: tuple[str, ...] = (
    "Package", "Package-Type", "Source", "Version", "Kernel-Version", "Built-For-Profiles",
    "Auto-Built-Package", "Architecture", "Subarchitecture", "Installer-Menu-Item",
    "Build-Essential", "Essential", "Protected", "Origin", "Bugs", "Maintainer", "Installed-Size",
    "Pre-Depends", "Depends", "Recommends", "Suggests", "Enhances", "Conflicts", "Breaks",
    "Replaces", "Provides", "Built-Using", "Static-Built-Using",
    "Filename", "Size", "MD5sum", "SHA1", "SHA256",
    "Section", "Priority", "Multi-Arch", "Homepage", "Description", "Tag", "Task",
)  # fmt: skip


_ORDER_INDEX = {name.lower(): i for i, name in enumerate(INDEX_PKG_ORDER)}


# field_capitalize(): the only known fields whose spelling is not "Each-Word-Capitalised".
_SPECIAL_NAMES = {
    "md5sum": "MD5sum",
    "sha1": "SHA1",
    "sha256": "SHA256",
    "notautomatic": "NotAutomatic",
    "butautomaticupgrades": "ButAutomaticUpgrades",
    "no-support-for-architecture-all": "No-Support-for-Architecture-all",
}


# Fields dpkg-scanpackages computes itself (it overwrites any copy in the control file). We
# also drop a control file's SHA512: dpkg would pass it through, but a stale digest there
# would make apt reject a good download.
_COMPUTED = frozenset({"filename", "size", "md5sum", "sha1", "sha256", "sha512"})


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(text: str) -> str:
    """Perl's lc on bytes: only ASCII letters change."""
    return text.translate(_ASCII_LOWER)


def field_name(name: str) -> str:
    """dpkg's field_capitalize: known spellings, else each ``-``-separated word ucfirst'ed."""
    lname = _ascii_lower(name)
    if lname in _SPECIAL_NAMES:
        return _SPECIAL_NAMES[lname]
    words = lname.split("-")
    while words and words[-1] == "":  # Perl's split drops trailing empty fields
        words.pop()
    return "-".join(w[:1].upper() + w[1:] if "a" <= w[:1] <= "z" else w for w in words)


def _dpkg_lines(value: str) -> list[str]:
    """A value as dpkg-scanpackages stores it: the first line, then continuation lines.

    Mirrors HashCore's parse: trailing blanks go from every line; a continuation line loses
    its one leading blank and, when it is only dots, one dot (`` .`` is an empty line)."""
    first, *rest = value.split("\n")
    lines = [first.strip(PERL_BLANKS)]
    for raw in rest:
        line = raw.rstrip(PERL_BLANKS)
        if not line:
            continue  # a blank line would end the paragraph; the parser never yields one
        inner = line[1:] if line[0] in PERL_BLANKS else line
        if inner and inner.strip(".") == "":
            inner = inner[1:]
        lines.append(inner)
    return lines


def _dpkg_output(name: str, lines: list[str]) -> str | None:
    """HashCore's output for one field; None when the value is blank (drop_empty)."""
    if not any(c not in PERL_BLANKS for line in lines for c in line):
        return None
    while len(lines) > 1 and lines[-1] == "":  # split /\n/ drops trailing empty lines
        lines = lines[:-1]
    first, *rest = lines
    out = [f"{name}: {first}" if first else f"{name}:"]
    for line in rest:
        line = line.rstrip(PERL_BLANKS)
        out.append(f" .{line}" if line.strip(".") == "" else f" {line}")
    return "\n".join(out) + "\n"


def _order_key(name: str) -> tuple[int, bytes]:
    known = _ORDER_INDEX.get(_ascii_lower(name))
    if known is not None:
        return (known, b"")
    return (len(INDEX_PKG_ORDER), name.encode("utf-8", "surrogateescape"))


# Raise when render_stanza's output for the same DebInfo and filename changes: an index
# rebuilt on a record of another format renders every stanza again instead of reusing them.
STANZA_FORMAT = 1


def render_stanza(deb: DebInfo, filename: str) -> bytes:
    """The Packages stanza ``dpkg-scanpackages -m`` writes for this .deb at ``filename``.

    No trailing blank line: ``packages_for_arch`` adds the separator. MD5sum and SHA1 are
    left out when unknown (a GitHub asset read by Range has only its sha256)."""
    fields: dict[str, tuple[tuple[int, bytes], str]] = {}
    seen: set[str] = set()
    for raw_name, value in deb.control:
        info = _field_info(raw_name)
        if info is None:
            continue  # "Foo-" is stored as "foo-" but listed as "Foo": dpkg never writes it
        key, name, order = info
        if key in seen or key in _COMPUTED:
            continue  # dpkg rejects duplicate fields; keep the first if a reader let one by
        seen.add(key)
        text = _field_text(name, value)
        if text is not None:
            fields[key] = (order, text)
    if "package" not in seen:
        raise BadDebError(filename, "no Package field in the control file")
    computed = {
        "Filename": filename,
        "Size": str(deb.size),
        "MD5sum": deb.hashes.md5,
        "SHA1": deb.hashes.sha1,
        "SHA256": deb.hashes.sha256,
    }
    for name, computed_value in computed.items():
        if computed_value:
            fields[name.lower()] = (_ORDER_KEYS[name], f"{name}: {computed_value}\n")
    return "".join(text for _, text in sorted(fields.values())).encode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=4096)
def _field_info(raw_name: str) -> tuple[str, str, tuple[int, bytes]] | None:
    """A control field name's key, its dpkg spelling and its place in the stanza; None if dpkg drops it.

    Cached: a few dozen names recur in every stanza, and rendering 10,000 stanzas is on the
    path of every rebuild."""
    key = _ascii_lower(raw_name)
    name = field_name(raw_name)
    if _ascii_lower(name) != key:
        return None
    return key, name, _order_key(name)


def _field_text(name: str, value: str) -> str | None:
    """``_dpkg_output`` of a value; a one-line value (most of them) without the line splitting."""
    if "\n" not in value:
        line = value.strip(PERL_BLANKS)
        return f"{name}: {line}\n" if line else None
    return _dpkg_output(name, _dpkg_lines(value))


_ORDER_KEYS = {name: _order_key(name) for name in ("Filename", "Size", "MD5sum", "SHA1", "SHA256")}
