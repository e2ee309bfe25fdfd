"""Debian versions for the ordering tests: a generator of tricky valid versions, and dpkg as the oracle.

Two oracles from dpkg itself: the ``dpkg --compare-versions`` binary (one process per
comparison, so a few hundred pairs at most) and dpkg's Perl library ``Dpkg::Version`` (what
dpkg-scanpackages uses; one process for any number of pairs)."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable, Sequence

from ghapt.deb.control import version_problem

_DIGITS = ("0", "1", "2", "9", "10", "00", "01", "010", "99", "1234567890123")
_OTHERS = ("~", "~~", ".", "+", "a", "b", "z", "A", "Z", "rc", "~rc", "+b", ".0", "~0")
_UPSTREAM_ONLY = ("-", ":")  # allowed in upstream (':' only after an epoch), never in a revision
_EPOCHS = ("0", "1", "2", "00", "01", "10")


def _run(rng: random.Random, first: Sequence[str], count: int, extra: Sequence[str] = ()) -> str:
    tokens = [rng.choice(first)]
    pool = (*_DIGITS, *_OTHERS, *extra)
    tokens += [rng.choice(pool) for _ in range(count)]
    return "".join(tokens)


def random_version(rng: random.Random) -> str:
    """A valid version: maybe an epoch, an upstream starting with a digit, maybe a revision."""
    while True:
        epoch = rng.choice(_EPOCHS) + ":" if rng.random() < 0.3 else ""
        upstream_extra = ("-", ":") if epoch else ("-",)
        upstream = _run(rng, _DIGITS, rng.randrange(5), upstream_extra if rng.random() < 0.2 else ())
        revision = ""
        if rng.random() < 0.5:
            revision = "-" + _run(rng, (*_DIGITS, *_OTHERS), rng.randrange(3))
        version = epoch + upstream + revision
        if version_problem(version) is None:
            return version


def near_version(rng: random.Random, version: str) -> str:
    """A valid version close to ``version`` (the comparisons where an off-by-one hides)."""
    edits: tuple[Callable[[str], str], ...] = (
        lambda v: v + rng.choice((*_DIGITS, *_OTHERS)),
        lambda v: v[:-1],
        lambda v: "0:" + v if ":" not in v else v.split(":", 1)[1],
        lambda v: v + "-0" if "-" not in v else v + "0",
        lambda v: v.replace(".", ".0", 1),
        lambda v: v.replace("~", "", 1),
        lambda v: v + "~",
    )
    for _ in range(20):
        candidate = rng.choice(edits)(version)
        if candidate and candidate != version and version_problem(candidate) is None:
            return candidate
    return random_version(rng)


def version_pairs(seed: int, count: int) -> list[tuple[str, str]]:
    """Half independent pairs, half a version and a near neighbour."""
    rng = random.Random(seed)  # noqa: S311 (test data, nothing secret)
    pairs = []
    for i in range(count):
        a = random_version(rng)
        pairs.append((a, near_version(rng, a) if i % 2 else random_version(rng)))
    return pairs


def dpkg_binary_compare(pairs: Sequence[tuple[str, str]]) -> list[int]:
    """-1, 0 or 1 per pair from ``dpkg --compare-versions``, all pairs through one shell loop."""
    script = (
        'while read -r a b; do if dpkg --compare-versions "$a" lt "$b"; then echo -1; '
        'elif dpkg --compare-versions "$a" eq "$b"; then echo 0; else echo 1; fi; done'
    )
    return _signs(["sh", "-c", script], pairs)


def dpkg_perl_compare(pairs: Sequence[tuple[str, str]]) -> list[int]:
    """-1, 0 or 1 per pair from dpkg's ``Dpkg::Version::version_compare``, in one process."""
    script = 'chomp; my ($a, $b) = split / /; print version_compare($a, $b) <=> 0, "\\n"'
    return _signs(["perl", "-MDpkg::Version", "-ne", script], pairs)


def _signs(command: list[str], pairs: Sequence[tuple[str, str]]) -> list[int]:
    for a, b in pairs:
        assert " " not in a + b and "\n" not in a + b
    text = "".join(f"{a} {b}\n" for a, b in pairs)
    out = subprocess.run(command, input=text, capture_output=True, text=True, check=True)
    assert out.stderr == "", out.stderr  # dpkg warns about versions it finds invalid
    signs = [int(line) for line in out.stdout.split()]
    assert len(signs) == len(pairs)
    return signs
