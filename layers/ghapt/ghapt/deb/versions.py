"""Debian version order as plain tuples, so sorting never calls Python code per comparison.

``version_key(a) < version_key(b)`` exactly when ``dpkg --compare-versions a lt b``, and the
keys are equal exactly when dpkg calls the versions equal (``1.0`` and ``1.00``, ``0:1.0`` and
``1.0``, no revision and revision ``0``). The rules are dpkg's ``verrevcmp``:

* the epoch compares as a number (none is 0);
* upstream version, then revision, each as alternating runs: a run of non-digits, then a run
  of digits, and so on. Non-digit runs compare character by character with ``~`` before the
  end of the run, the end before letters, and letters before every other character; digit
  runs compare as numbers (an empty run is 0). A string that has ended reads as empty runs.

A string becomes ``(N0, D0, N1, D1, ..., Nk, Dk, END)``: each ``N`` is the tuple of its
characters' ranks followed by 0 (the rank of "run over"), each ``D`` an int. ``END`` is
``(0,)``, an empty non-digit run. Python ends a tuple comparison at the first difference, and
a shorter tuple sorts first, which is not what dpkg does: ``1.0`` is newer than ``1.0~rc1``.
``END`` fixes that: where one key has ``END``, the other (if longer) has some ``N`` of a
later run, which is never empty, so the two differ right there and ``(0,)`` against that run
is dpkg's comparison of an ended string with it. Positions line up (``N`` at even places,
``D`` at odd ones), so a tuple is never compared with an int. Equal keys are equal versions:
an ``N`` has no 0 before its end, so different runs give different tuples.
"""

from __future__ import annotations

import re
from functools import lru_cache

Part = tuple[int, ...] | int
VersionKey = tuple[int, tuple[Part, ...], tuple[Part, ...]]

_RUNS = re.compile(r"([^0-9]*)([0-9]*)")
_EPOCH = re.compile(r"[0-9]+")
_END: tuple[int, ...] = (0,)


def _rank(char: str) -> int:
    """dpkg's ``order()``: ``~`` first, letters by their code, everything else after letters."""
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


@lru_cache(maxsize=4096)
def _nondigits(run: str) -> tuple[int, ...]:
    """One non-digit run as ranks ending in 0 (cached: runs like ``.``, ``~rc``, ``+b`` repeat)."""
    return (*map(_rank, run), 0)


def _string_key(text: str) -> tuple[Part, ...]:
    """Upstream version or revision as ``(N0, D0, ..., Nk, Dk, END)``."""
    runs = _RUNS.findall(text)
    if len(runs) > 1:
        runs.pop()  # findall's final empty match at the end of the string
    parts: list[Part] = []
    for nondigits, digits in runs:
        parts.append(_nondigits(nondigits))
        parts.append(int(digits) if digits else 0)
    parts.append(_END)
    return tuple(parts)


@lru_cache(maxsize=16384)
def version_key(version: str) -> VersionKey:
    """The sort key of a Debian version (see the module docstring).

    Cached: a rebuild asks for each entry's key in selection, ordering and the page, and keys
    are immutable tuples; 16,384 recent versions are a few MB at most.

    Meant for valid versions (``ghapt.deb.control.version_problem``); an epoch that is not a
    number raises ``ValueError``, anything else gets a key."""
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    elif not _EPOCH.fullmatch(epoch):
        raise ValueError(f"Version {version!r}: the epoch is not a number")
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return (int(epoch), _string_key(upstream), _string_key(revision))
