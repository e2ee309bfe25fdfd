"""Benchmark 1: a cold index of N real .debs, ghapt beside apt-ftparchive and dpkg-scanpackages.

Each tool runs as its own fresh process over the same pool (page cache warm for all of them:
the files were just written and are read once more before the first run), repetitions
interleaved, best (minimum) wall time of R kept. Peak RSS is the child's ``ru_maxrss``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from .common import (
    PYTHON,
    RSS_METHOD,
    ChildRun,
    Log,
    Section,
    child_env,
    human_bytes,
    mb,
    package_set,
    ratio,
    run_child,
    secs,
    stanzas,
)
from .debs import build_pool, plan

MIN_PAYLOAD = 20_000
MAX_PAYLOAD = 2_000_000

TOOLS: list[tuple[str, str]] = [
    ("apt-ftparchive", "`apt-ftparchive packages pool` — MD5, SHA1, SHA256, SHA512; one process"),
    (
        "dpkg-scanpackages",
        "`dpkg-scanpackages -m pool` — MD5, SHA1, SHA256; perl, one `dpkg-deb` per file",
    ),
    (
        "ghapt index",
        "`read_deb_path` + `select_entries` + `render_stanza` — MD5, SHA1, SHA256 in one pass "
        "(the three a stanza lists, like dpkg); one reader, MD5 on a second thread",
    ),
    (
        "ghapt Indexer (local backend)",
        "`Indexer.rebuild()` — the above with 4 reader threads, plus Packages.gz/.xz for "
        "amd64+arm64, by-hash, Release, InRelease/Release.gpg (RSA 3072), one git commit",
    ),
    ("python + ghapt imports", "baseline: start Python, import ghapt.deb.reader/index/model, exit"),
]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _warm(paths: list[Path]) -> None:
    for p in paths:
        with p.open("rb") as f:
            while f.read(1 << 20):
                pass


def _git_packages(state: Path) -> bytes:
    """The Packages files the Indexer committed (amd64 + arm64; `all` ones appear in both)."""
    import subprocess

    out = b""
    for arch in ("amd64", "arm64"):
        out += subprocess.run(
            [
                "git",
                "--git-dir",
                str(state / "metadata.git"),
                "show",
                f"apt-metadata:dists/stable/main/binary-{arch}/Packages",
            ],
            check=True,
            capture_output=True,
        ).stdout
        out += b"\n"
    return out


def run(n: int = 300, reps: int = 3, *, workdir: Path | None = None, log: Log = print) -> Section:
    started = time.perf_counter()
    own = workdir is None
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-index-")) if workdir is None else workdir
    try:
        return _run(n, reps, tmp, log, started)
    finally:
        if own:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(n: int, reps: int, tmp: Path, log: Log, started: float) -> Section:
    from ghapt.signing.localkey import load_or_create_local_key

    pool = tmp / "pool"
    specs = plan(n, min_size=MIN_PAYLOAD, max_size=MAX_PAYLOAD)
    t0 = time.perf_counter()
    paths = build_pool(pool, specs)
    built = time.perf_counter() - t0
    total = sum(p.stat().st_size for p in paths)
    comp = Counter(s.compression for s in specs)
    arches = Counter(s.arch for s in specs)
    log(f"  built {len(paths)} debs ({human_bytes(total)}) with dpkg-deb in {built:.1f} s")

    key_state = tmp / "state-template"
    load_or_create_local_key(key_state)  # key generation is not part of an index build
    _warm(paths)

    env = child_env()
    commands = {
        "apt-ftparchive": (["apt-ftparchive", "packages", "pool"], True),
        "dpkg-scanpackages": (["dpkg-scanpackages", "-m", "pool"], True),
        "ghapt index": ([PYTHON, "-m", "benchmarks._worker", "index", "pool"], True),
        "ghapt Indexer (local backend)": (None, False),
        "python + ghapt imports": (
            [
                PYTHON,
                "-m",
                "benchmarks._worker",
                "import",
                "ghapt.deb.reader",
                "ghapt.deb.dists",
                "ghapt.core.model",
            ],
            False,
        ),
    }
    best: dict[str, ChildRun] = {}
    peak: dict[str, int] = {}
    outputs: dict[str, Path] = {}
    indexer_state = tmp / "state-0"
    for rep in range(reps):
        for name, _what in TOOLS:
            cmd, captures = commands[name]
            out = tmp / f"out-{_slug(name)}.txt" if captures else None
            if cmd is None:  # the Indexer: a fresh state (key only) every time, so it is cold
                state = tmp / f"state-{rep}"
                shutil.rmtree(state, ignore_errors=True)
                shutil.copytree(key_state, state)
                cmd = [PYTHON, "-m", "benchmarks._worker", "indexer", str(pool), str(state)]
                indexer_state = state
            run = run_child(cmd, cwd=tmp, stdout=out, env=env)
            if name not in best or run.wall < best[name].wall:
                best[name] = run
            peak[name] = max(peak.get(name, 0), run.maxrss_kb)
            if out is not None:
                outputs[name] = out
        log(f"  repetition {rep + 1}/{reps}: " + ", ".join(f"{k} {best[k].wall:.2f}s" for k in best))

    # Sanity, not timing: every tool lists the same packages with the same size and SHA256.
    sets = {name: package_set(path.read_bytes()) for name, path in outputs.items()}
    sets["ghapt Indexer (local backend)"] = package_set(_git_packages(indexer_state))
    expected = {(s.package, s.version, s.arch) for s in specs}
    same = all(v == sets["apt-ftparchive"] for v in sets.values())
    complete = {(p, v, a) for p, v, a, _, _ in sets["apt-ftparchive"]} == expected
    ghapt_stanzas = set(stanzas(outputs["ghapt index"].read_bytes()))
    dpkg_stanzas = set(stanzas(outputs["dpkg-scanpackages"].read_bytes()))
    identical = ghapt_stanzas == dpkg_stanzas

    ref = best["apt-ftparchive"].wall
    rows = []
    for name, what in TOOLS:
        r = best[name]
        rows.append(
            [
                f"**{name}**" if name.startswith("ghapt") else name,
                what,
                secs(r.wall),
                ratio(r.wall, ref),
                secs(r.cpu),
                mb(peak[name] / 1024),
            ]
        )
    section = Section(
        key="index",
        title=f"1. Cold index of {len(paths)} real .debs",
        intro=[
            f"Input: {len(paths)} .debs built with `dpkg-deb` ({human_bytes(total)} in total; "
            f"payload {human_bytes(MIN_PAYLOAD)} to {human_bytes(MAX_PAYLOAD)} of incompressible bytes, "
            f"log-uniform; compressors {', '.join(f'{k} {v}' for k, v in sorted(comp.items()))}; "
            f"architectures {', '.join(f'{k} {v}' for k, v in sorted(arches.items()))}; control files "
            f"from real Debian packages), in `pool/<source>/`.",
            f"Each tool runs cold in a fresh process; wall time is the **best of {reps}** interleaved "
            "repetitions, CPU is user+sys of that run, peak RSS the largest over the repetitions "
            f"({RSS_METHOD}). Reference: **apt-ftparchive**, measured in the same run.",
        ],
        headers=["Tool", "What it does", "Wall s", "vs apt-ftparchive", "CPU s", "Peak RSS MB"],
        rows=rows,
        notes=[
            "Sanity: "
            + (
                f"all four outputs list the same {len(sets['apt-ftparchive'])} packages "
                "(Package, Version, Architecture, Size, SHA256)"
                if same and complete
                else "MISMATCH between the tools' package lists: "
                + ", ".join(f"{k}: {len(v)}" for k, v in sets.items())
            )
            + "; ghapt's stanzas are "
            + (
                "byte-identical to `dpkg-scanpackages -m`'s."
                if identical
                else f"NOT identical to dpkg-scanpackages' ({len(ghapt_stanzas ^ dpkg_stanzas)} differ)."
            ),
            "apt-ftparchive was run without `--db`, so it has no cache to reuse (cold), and with its "
            "defaults, which compute and list MD5sum, SHA1, SHA256 and SHA512.",
            f"Building the input took {built:.0f} s and is not measured.",
        ],
        data={
            "n": len(paths),
            "bytes": total,
            "wall": {k: v.wall for k, v in best.items()},
            "cpu": {k: v.cpu for k, v in best.items()},
            "rss_mb": {k: v / 1024 for k, v in peak.items()},
            "same_packages": same and complete,
            "identical_to_dpkg": identical,
        },
    )
    section.seconds = time.perf_counter() - started
    return section
