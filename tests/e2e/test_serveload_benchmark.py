"""Smoke test of the concurrent-apt benchmark in its smallest mode: it runs, and every client
succeeds while the server rebuilds under it. No timing is checked."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import concurrent_apt

pytestmark = [
    pytest.mark.slow,
    pytest.mark.apt,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("apt-get", "dpkg-deb")), reason="needs apt-get and dpkg-deb"
    ),
]


def test_concurrent_apt_benchmark_smallest_mode() -> None:
    section = concurrent_apt.run(clients=2, log=lambda _m: None)
    assert section.data["clients"] == 2
    assert section.data["failures"] == 0, section.rows
    assert section.data["rss_before_kib"] > 0
    assert section.data["rss_after_kib"] > 0
    assert len(section.rows) == 1
    assert len(section.rows[0]) == len(section.headers)
