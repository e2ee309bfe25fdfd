"""Smoke tests of the benchmarks: each runs on a tiny input and its table has a sane shape.

Nothing here looks at timings (benchmarks are run by hand or with ``make bench``); the checks
are about structure, sanity flags and counts that do not depend on the machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks import common, github_calls, index_speed, memory, peers, run, serving, serving_peers
from benchmarks.debs import small_pool

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("apt-ftparchive", "dpkg-scanpackages", "dpkg-deb")),
        reason="needs apt-utils and dpkg-dev (make system-deps)",
    ),
]

RATIO = re.compile(r"^\d+(\.\d+)?\u00d7$")


def quiet(_message: str) -> None:
    """Progress lines are not the test's business."""


def number(cell: str) -> float:
    match = re.match(r"[\d.]+", cell.strip("*"))
    assert match is not None, cell
    return float(match.group(0))


def check_table(section: common.Section) -> None:
    assert section.headers
    assert section.rows
    for row in section.rows:
        assert len(row) == len(section.headers), row
        assert all(isinstance(c, str) and c for c in row), row
    text = section.markdown()
    assert text.startswith(f"## {section.title}\n")
    assert common.table(section.headers, section.rows) in text


def test_index_speed_tiny(tmp_path: Path) -> None:
    section = index_speed.run(n=6, reps=1, workdir=tmp_path, log=quiet)
    check_table(section)
    assert section.headers == ["Tool", "What it does", "Wall s", "vs apt-ftparchive", "CPU s", "Peak RSS MB"]
    tools = [row[0].strip("*") for row in section.rows]
    assert tools == [name for name, _ in index_speed.TOOLS]
    assert section.rows[0][3] == "1.00\u00d7"  # apt-ftparchive is the reference
    for row in section.rows:
        assert number(row[2]) > 0
        assert RATIO.match(row[3])
        assert number(row[5]) > 0
    # Every tool listed the same six packages, and ghapt's stanzas are dpkg-scanpackages' ones.
    assert section.data["n"] == 6
    assert section.data["same_packages"] is True
    assert section.data["identical_to_dpkg"] is True


def test_memory_tiny(tmp_path: Path) -> None:
    section = memory.run(size=4 << 20, workdir=tmp_path, log=quiet, min_free=0)
    check_table(section)
    assert [row[0] for row in section.rows][1] == "**ghapt `read_deb_path`**"
    rss = section.data["rss_mb"]
    assert all(v > 0 for v in rss.values())
    assert rss["ghapt"] < memory.TARGET_MB
    assert section.data["agree"] is True
    assert section.data["size"] > 4 << 20
    assert list(tmp_path.iterdir()) == []  # the big file is deleted


def test_memory_skips_without_disk_space(tmp_path: Path) -> None:
    section = memory.run(size=1 << 20, workdir=tmp_path, log=quiet, min_free=1 << 60)
    assert section.data["skipped"] is True
    assert "Skipped" in section.markdown()


def test_github_calls_tiny(tmp_path: Path) -> None:
    section = github_calls.run(n=4, workdir=tmp_path, log=quiet)
    check_table(section)
    rows = section.data["rows"]
    assert list(rows) == [
        "cold rebuild (empty branch)",
        "nothing changed (fresh process)",
        "nothing changed (same warm process)",
        "one new release (fresh process)",
    ]
    cold, same, warm, new = rows.values()
    assert cold["commits"] == 1
    assert same["commits"] == 0
    assert warm["commits"] == 0
    assert new["commits"] == 1
    assert cold["read"] == 4
    assert new["read"] == 1
    assert same["read"] == 0
    assert cold["asset_urls"] == 4
    assert cold["storage_range"] + cold["storage_stream"] >= 4
    assert 0 < cold["storage_bytes"] <= section.data["total_bytes"]
    assert same["storage_bytes"] == 0
    assert warm["storage_bytes"] == 0
    assert warm["not_modified"] >= 1  # the warm process's listing is conditional
    for row in section.rows:
        assert number(row[1]) == rows[row[0]]["api"]


def test_serving_tiny() -> None:
    section = serving.run(iterations=20, first_time=1, sequences=5, reps=1, import_reps=1, log=quiet)
    check_table(section)
    assert section.headers == ["Measure", "ghapt", "Reference (same run)", "vs reference"]
    assert len(section.rows) == 9
    for row in section.rows:
        assert RATIO.match(row[3]), row
    latency = section.data["latency"]
    for name in ("authorizer_cached", "authorizer_first", "metadata_200", "metadata_304", "noop_metadata"):
        assert latency[name]["p50"] > 0
    calls = section.data["calls"]
    assert calls["update_burst"]["requests"] == 10
    assert calls["pool_burst"]["requests"] == 5
    # Caching can only save calls, and no scenario downloads from the storage host.
    assert calls["update_burst"]["api"] <= calls["update_nocache"]["api"]
    assert calls["pool_burst"]["api"] <= calls["pool_nocache"]["api"]
    assert all(c["storage"] == 0 for k, c in calls.items() if isinstance(c, dict))


def test_run_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "RESULTS.md"
    assert run.main(["--quick", "--only", "github", "--output", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# ghapt benchmarks\n")
    assert "| Python |" in text
    assert "| apt-ftparchive |" in text
    assert "## 3. GitHub API calls and bytes for 20 releases" in text
    assert "## 1." not in text
    assert capsys.readouterr().out.strip() == text.strip()


def test_byhash_path_takes_the_sha512_entry() -> None:
    release = (
        b"Origin: x\nSHA256:\n 00aa 10 main/binary-amd64/Packages.xz\n"
        b"SHA512:\n ffee 12 main/binary-amd64/Packages\n 0b0c 10 main/binary-amd64/Packages.xz\n"
    )
    assert serving.byhash_path(release) == "/dists/stable/main/binary-amd64/by-hash/SHA512/0b0c"


@pytest.mark.skipif(bool(peers.missing_tools()), reason="needs reprepro and aptly (make bench-deps)")
def test_peers_tiny(tmp_path: Path) -> None:
    section = peers.run(n=4, big=None, reps=1, debian=False, workdir=tmp_path, log=quiet)
    check_table(section)
    assert section.headers == ["Publish", *(peers.HEADERS[t] for t in peers.TOOLS)]
    assert [row[0].split(",")[0] for row in section.rows] == ["cold", "incremental"] * 2  # wall, then CPU
    for row in section.rows:
        assert number(row[1]) > 0
        for cell in row[2:]:  # "0.123 s (ghapt 1.23x)"
            assert number(cell) > 0 and re.search(r"\(ghapt \d+(\.\d+)?\u00d7\)$", cell), cell
    load = section.data["loads"]["debian"]
    assert load["n"] == 4
    for kind in ("cold", "incremental"):
        assert set(load[kind]) == set(peers.TOOLS)
        assert all(len(times) == 1 and times[0] > 0 for times in load[kind].values())
    # Every tool's output verified: signatures, Release hashes, one stanza per .deb, same packages.
    assert section.data["verified"] is True, section.data["problems"]


@pytest.mark.skipif(
    bool(peers.missing_tools(serving_peers.NEEDS)), reason="needs nginx and ab (make bench-deps)"
)
def test_serving_peers_tiny() -> None:
    section = serving_peers.run(n=3, requests=40, concurrency=4, reps=1, debian=False, log=quiet)
    check_table(section)
    assert len(section.rows) == len(serving_peers.PATHS)
    for row in section.rows:
        assert RATIO.match(row[3]) and RATIO.match(row[5]), row
    assert section.data["checks"] == [] and section.data["failures"] == []
    for per_server in section.data["median"].values():
        assert set(per_server) == set(serving_peers.SERVERS)
        assert all(v > 0 for v in per_server.values())


def test_parse_ab() -> None:
    report = (
        "Complete requests:      4000\nFailed requests:        2\nNon-2xx responses:      3\n"
        "Keep-Alive requests:    3990\nRequests per second:    2685.12 [#/sec] (mean)\n"
    )
    got = serving_peers.parse_ab(report)
    assert (got.rps, got.complete, got.failed, got.non_2xx, got.keep_alive) == (2685.12, 4000, 2, 3, 3990)
    assert serving_peers.parse_ab(report.replace("Non-2xx responses:      3\n", "")).non_2xx == 0


def test_peers_verify_catches_a_bad_signature(tmp_path: Path) -> None:
    keys = peers.make_keys(tmp_path)
    try:
        work = tmp_path / "repo"
        work.mkdir()
        debs = small_pool(work / "pool", 2)
        subprocess.run(
            ["bash", "-ec", peers.cold_script("apt-ftparchive", work, keys)],
            cwd=work,
            env=peers._env(keys.gnupghome),
            check=True,
        )
        found, problems = peers.verify(work, keys.peers_keyring)
        assert len(found) == len(debs) and problems == []
        _, problems = peers.verify(work, keys.ghapt_keyring)  # another key: both signatures fail
        assert [p.split(" ")[0] for p in problems] == ["InRelease", "Release.gpg"]
    finally:
        peers.stop_agent(keys)
