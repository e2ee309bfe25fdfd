"""Debian version keys: Python's own tuple order must be exactly dpkg's version order."""

from __future__ import annotations

import functools
import itertools
import random

import pytest
from debian.debian_support import Version
from ghapt.deb.versions import version_key

from tests.support.dpkgversions import (
    dpkg_binary_compare,
    dpkg_perl_compare,
    random_version,
    version_pairs,
)

# (a, b, sign of dpkg's comparison of a with b)
TRICKY = [
    ("1.0", "1.0~rc1", 1),  # the release after its candidate: a longer string can be older
    ("1.0~rc1", "1.0~rc1~", 1),
    ("1.0~", "1.0", -1),
    ("1~~", "1~~a", -1),  # Debian policy's example: ~~ < ~~a < ~ < (end) < a
    ("1~~a", "1~", -1),
    ("1~", "1", -1),
    ("1", "1a", -1),
    ("1.0", "1.00", 0),  # digit runs are numbers
    ("1.001", "1.1", 0),
    ("0", "00", 0),
    ("0:1.0", "1.0", 0),  # no epoch is epoch 0
    ("01:1.0", "1:1.0", 0),
    ("1.0-0", "1.0", 0),  # no revision reads like revision 0
    ("1.0-1", "1.0-01", 0),
    ("1.0a0", "1.0a", 0),  # an ended string reads as empty runs: an empty digit run is 0
    ("1.0-0~", "1.0", -1),  # revision 0~ is before no revision
    ("1.0-~", "1.0", -1),
    ("1.0a", "1.0", 1),
    ("1.0+", "1.0", 1),
    ("1.0.", "1.0", 1),
    ("1.0a", "1.0+", -1),  # letters before other characters
    ("1.0Z", "1.0.", -1),
    ("1.0A", "1.0a", -1),
    ("1.0a", "1.0~", 1),
    ("1-1", "1-1.0", -1),
    ("1.2-3-4", "1.2-3", 1),  # the last '-' starts the revision: upstream 1.2-3 against 1.2
    ("1.10", "1.9", 1),
    ("1.9", "1.10~rc1", -1),
    ("2.0~rc1", "1.99", 1),
    ("1:0.1", "2.0", 1),
    ("10:1", "9:2", 1),
    ("1.0-1+b1", "1.0-1", 1),
    ("1.0-1~bpo1", "1.0-1", -1),
    ("1:2:3", "1:2", 1),  # after an epoch, ':' may appear in the upstream version
    ("1.0-1", "1.0-1a", -1),
    ("2", "10", -1),
    ("1234567890123456789", "1234567890123456788", 1),  # beyond 64 bits is still a number
]


def _key_sign(a: str, b: str) -> int:
    ka, kb = version_key(a), version_key(b)
    return int(ka > kb) - int(ka < kb)


def _debian_sign(a: str, b: str) -> int:
    va, vb = Version(a), Version(b)
    return int(va > vb) - int(va < vb)


@pytest.mark.parametrize(("a", "b", "expected"), TRICKY)
def test_tricky_pairs_compare_as_dpkg_compares_them(a: str, b: str, expected: int) -> None:
    assert _key_sign(a, b) == expected
    assert _key_sign(b, a) == -expected
    assert (version_key(a) == version_key(b)) == (expected == 0)


def test_the_tricky_table_is_what_dpkg_says() -> None:
    """The expectations above come from dpkg itself, not from this module's author."""
    pairs = [(a, b) for a, b, _ in TRICKY]
    assert dpkg_binary_compare(pairs) == [expected for _, _, expected in TRICKY]


def test_many_generated_pairs_agree_with_python_debian_and_dpkgs_perl_library() -> None:
    pairs = version_pairs(seed=11, count=6000)
    ours = [_key_sign(a, b) for a, b in pairs]
    assert ours == [_debian_sign(a, b) for a, b in pairs]
    assert ours == dpkg_perl_compare(pairs)
    assert {-1, 0, 1} <= set(ours)  # the generator does produce equal versions


def test_generated_pairs_agree_with_the_dpkg_binary() -> None:
    pairs = version_pairs(seed=12, count=200)
    assert [_key_sign(a, b) for a, b in pairs] == dpkg_binary_compare(pairs)


def test_sorting_by_key_is_sorting_by_dpkg_order() -> None:
    rng = random.Random(5)  # noqa: S311 (test data, nothing secret)
    versions = [random_version(rng) for _ in range(1000)]
    by_debian = sorted(versions, key=functools.cmp_to_key(_debian_sign))
    assert sorted(versions, key=version_key) == by_debian
    neighbours = list(itertools.pairwise(by_debian))
    assert all(sign <= 0 for sign in dpkg_perl_compare(neighbours))


def test_keys_are_plain_tuples_of_ints() -> None:
    """Native comparison only: no object with a Python ``__lt__`` anywhere in a key."""

    def plain(value: object) -> bool:
        if isinstance(value, tuple):
            return all(plain(v) for v in value)
        return type(value) is int

    assert all(plain(version_key(v)) for v, _, _ in TRICKY)


def test_an_epoch_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="epoch"):
        version_key("a:1.0")
    with pytest.raises(ValueError, match="epoch"):
        version_key(":1.0")
