"""The serving-at-scale benchmark runs end to end on tiny inputs and reports what it claims."""

from __future__ import annotations

import re

import pytest

from benchmarks import serving_scale

RATIO = re.compile(r"^\d+(\.\d+)?\u00d7$")


@pytest.mark.slow
def test_serving_scale_tiny() -> None:
    section = serving_scale.run(packages=40, gets=2, import_reps=1, log=lambda _m: None)
    assert section.headers == ["Measure", "ghapt", "Reference (same run)", "vs reference"]
    assert len(section.rows) == len(serving_scale.HTTP_FUNCTIONS) + 3
    for row in section.rows:
        assert len(row) == 4 and RATIO.match(row[3]), row
    worker = section.data["worker"]
    assert worker["xz_bytes"] > 0
    assert worker["pool_json_bytes"] > 0
    assert worker["rss_import_mb"] <= worker["rss_metadata_mb"] <= worker["rss_pool_mb"]
    for name in serving_scale.HTTP_FUNCTIONS:
        assert section.data["imports"][name]["seconds"] > 0
