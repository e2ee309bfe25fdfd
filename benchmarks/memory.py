"""Benchmark 2: peak memory reading one huge .deb (target: ghapt under 100 MB).

The .deb (about 1 GB; ``--quick`` about 100 MB) is written to disk by hand, streaming, with an
uncompressed ``data.tar`` of random-looking bytes, so it really occupies its size on disk.
Each reader runs in a fresh process; its peak RSS is compared with a process that only
imports the same ghapt modules (the delta is what reading costs) and with dpkg-scanpackages
on the same file. The file is deleted afterwards.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from .common import (
    PYTHON,
    RSS_METHOD,
    Log,
    Section,
    child_env,
    human_bytes,
    mb,
    package_set,
    ratio,
    run_child,
    secs,
)
from .debs import write_big_deb

TARGET_MB = 100
MIN_FREE = 3 << 30


def run(
    size: int = 1 << 30, *, workdir: Path | None = None, log: Log = print, min_free: int = MIN_FREE
) -> Section:
    started = time.perf_counter()
    base = Path(tempfile.gettempdir()) if workdir is None else workdir
    free = shutil.disk_usage(base).free
    title = f"2. Peak memory reading a {human_bytes(size)} .deb"
    if free < max(min_free, 2 * size):
        section = Section(
            key="memory",
            title=title,
            intro=[
                f"**Skipped**: only {human_bytes(free)} free in {base}; this benchmark needs "
                f"{human_bytes(max(min_free, 2 * size))}."
            ],
            data={"skipped": True},
        )
        section.seconds = time.perf_counter() - started
        log(f"  skipped: {human_bytes(free)} free")
        return section
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-memory-", dir=base))
    try:
        section = _run(size, tmp, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    section.seconds = time.perf_counter() - started
    return section


def _run(size: int, tmp: Path, log: Log) -> Section:
    pool = tmp / "pool"
    pool.mkdir()
    deb = pool / "huge-blob_1.0-1_amd64.deb"
    t0 = time.perf_counter()
    sha256 = write_big_deb(deb, size)
    written = time.perf_counter() - t0
    st = deb.stat()
    on_disk = st.st_blocks * 512
    log(
        f"  wrote {deb.name}: {human_bytes(st.st_size)} ({human_bytes(on_disk)} allocated) in {written:.1f} s"
    )
    if on_disk < 0.95 * st.st_size:
        raise RuntimeError(f"{deb} is sparse ({on_disk} of {st.st_size} bytes allocated)")

    env = child_env()
    modules = ["ghapt.deb.reader"]
    baseline = run_child([PYTHON, "-m", "benchmarks._worker", "import", *modules], env=env)
    ghapt_out = tmp / "ghapt.json"
    ghapt = run_child([PYTHON, "-m", "benchmarks._worker", "read", str(deb)], stdout=ghapt_out, env=env)
    log(f"  ghapt read_deb_path: {ghapt.rss_mb:.1f} MB peak, {ghapt.wall:.1f} s")
    dpkg_out = tmp / "dpkg.txt"
    dpkg = run_child(["dpkg-scanpackages", "-m", "pool"], cwd=tmp, stdout=dpkg_out, env=env)
    log(f"  dpkg-scanpackages: {dpkg.rss_mb:.1f} MB peak, {dpkg.wall:.1f} s")
    apt_out = tmp / "apt.txt"
    apt = run_child(["apt-ftparchive", "packages", "pool"], cwd=tmp, stdout=apt_out, env=env)
    log(f"  apt-ftparchive: {apt.rss_mb:.1f} MB peak, {apt.wall:.1f} s")

    got = json.loads(ghapt_out.read_text())
    dpkg_set = package_set(dpkg_out.read_bytes())
    apt_set = package_set(apt_out.read_bytes())
    expected = ("huge-blob", "1.0-1", "amd64", str(st.st_size), sha256)
    agree = (
        got["sha256"] == sha256
        and got["size"] == st.st_size
        and dpkg_set == {expected}
        and apt_set == {expected}
    )
    delta = ghapt.rss_mb - baseline.rss_mb
    ref = dpkg.rss_mb
    rows = [
        [
            "Python importing `ghapt.debfile` (baseline)",
            mb(baseline.rss_mb),
            "—",
            ratio(baseline.rss_mb, ref),
            secs(baseline.wall),
        ],
        [
            "**ghapt `read_deb_path`**",
            mb(ghapt.rss_mb),
            f"+{delta:.1f}",
            ratio(ghapt.rss_mb, ref),
            secs(ghapt.wall),
        ],
        ["`dpkg-scanpackages -m` (reference)", mb(dpkg.rss_mb), "—", ratio(1, 1), secs(dpkg.wall)],
        ["`apt-ftparchive packages`", mb(apt.rss_mb), "—", ratio(apt.rss_mb, ref), secs(apt.wall)],
    ]
    verdict = "✓ under" if ghapt.rss_mb < TARGET_MB else "✗ OVER"
    return Section(
        key="memory",
        title=f"2. Peak memory reading a {human_bytes(st.st_size)} .deb",
        intro=[
            f"Input: one {human_bytes(st.st_size)} .deb (uncompressed `data.tar` of random bytes, "
            f"{human_bytes(on_disk)} allocated on disk — not sparse), written by hand in a streaming "
            "pass and deleted afterwards. Each reader runs once in a fresh process (RSS varies little "
            f"between runs). Peak RSS: {RSS_METHOD}. Reference: **dpkg-scanpackages -m** on the "
            "same file, measured in the same run.",
        ],
        headers=["Process", "Peak RSS MB", "Δ vs baseline MB", "RSS vs dpkg-scanpackages", "Wall s"],
        rows=rows,
        notes=[
            f"{verdict} the {TARGET_MB} MB target: ghapt peaks at {ghapt.rss_mb:.1f} MB, "
            f"{delta:.1f} MB above the bare import.",
            "Sanity: "
            + (
                "ghapt, dpkg-scanpackages and apt-ftparchive agree on size and SHA256 with the bytes written."
                if agree
                else f"DISAGREEMENT: ghapt {got}, dpkg {dpkg_set}, apt {apt_set}, written {sha256}"
            ),
            f"Writing the file took {written:.0f} s and is not measured.",
        ],
        data={
            "size": st.st_size,
            "rss_mb": {
                "baseline": baseline.rss_mb,
                "ghapt": ghapt.rss_mb,
                "dpkg": dpkg.rss_mb,
                "apt": apt.rss_mb,
            },
            "wall": {"ghapt": ghapt.wall, "dpkg": dpkg.wall, "apt": apt.wall},
            "agree": agree,
            "skipped": False,
        },
    )
