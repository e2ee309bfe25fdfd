"""Smoke test of the scale benchmark (issue 9) on a tiny input, without latency: shape and counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import scale

pytestmark = pytest.mark.slow


def test_scale_tiny(tmp_path: Path) -> None:
    section = scale.run(n=30, latency=0.0, workdir=tmp_path, log=lambda _m: None)
    assert [row[0] for row in section.rows] == [
        "cold rebuild (empty branch)",
        "nothing changed (fresh process)",
    ]
    for row in section.rows:
        assert len(row) == len(section.headers)
        assert all(row)
    cold, again = section.data["cold rebuild (empty branch)"], section.data["nothing changed (fresh process)"]
    assert cold["invocations"] == 1
    assert cold["read"] == 30
    assert cold["storage"] >= 30
    assert again["read"] == 0
    assert again["storage"] == 0
    assert again["storage_bytes"] == 0
    assert cold["packages"] == again["packages"] > 0
