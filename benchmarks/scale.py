"""Benchmark 5: a cold rebuild at scale against the fake GitHub with network latency.

``tests.fakegithub.FakeGitHub`` holds ``n`` release assets (2,000 by default) over 20
repositories, a third of them without a ``digest`` (uploaded before 2025-06, so streamed whole),
and waits ``latency`` (100 ms) before answering every request, API and storage alike. A child
process (``python -m benchmarks._worker scale ...``, so its peak RSS is its own) runs the indexer
the way the Lambda function does: a fresh ``Services`` per invocation, each with the time budget
a 900 s invocation leaves (``900 - PUBLISH_RESERVE_SECONDS``), until the rebuild is complete.
Then a second child makes the no-change rebuild a fresh container would.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import PYTHON, Log, Section, child_env, human_bytes, mb, run_child, secs

REPOS = 20
META = "acme/apt-meta"
BRANCH = "apt-metadata"
LAMBDA_TIMEOUT = 900.0
PAYLOAD_SIZES = (8_000, 20_000, 50_000, 120_000, 300_000)


def make_debs(n: int, seed: int = 9) -> list[tuple[str, bytes]]:
    """``n`` small, valid .debs built in memory: distinct control data over a few shared payloads."""
    from tests.support.hostiledebs import compress, deb, tar

    rng = random.Random(seed)
    payloads = [
        compress("xz", tar([("./usr/share/bench/blob", rng.randbytes(size))])) for size in PAYLOAD_SIZES
    ]
    out = []
    for i in range(n):
        package = f"tool{i % 97:02d}"
        version = f"1.{i // 97}.{i % 7}-1"
        arch = ("amd64", "arm64", "all")[i % 3]
        control = (
            f"Package: {package}\nVersion: {version}\nArchitecture: {arch}\n"
            f"Maintainer: Bench <bench@example.com>\nInstalled-Size: {10 + i % 50}\n"
            f"Depends: libc6 (>= 2.36)\nSection: utils\nPriority: optional\n"
            f"Description: benchmark package {i}\n generated for the scale benchmark.\n"
        ).encode()
        out.append(
            (f"{package}_{version}_{arch}.deb", deb(control, "gzip", data=payloads[i % len(payloads)]))
        )
    return out


def run(n: int = 2000, *, latency: float = 0.1, workdir: Path | None = None, log: Log = print) -> Section:
    started = time.perf_counter()
    own = workdir is None
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-scale-")) if workdir is None else workdir
    try:
        section = _run(n, latency, tmp, log)
    finally:
        if own:
            shutil.rmtree(tmp, ignore_errors=True)
    section.seconds = time.perf_counter() - started
    return section


def _counts(fake: Any) -> dict[str, int]:
    log = fake.requests_log
    return {
        "api": sum(1 for r in log if r.server == "api"),
        "not_modified": sum(1 for r in log if r.server == "api" and r.status == 304),
        "storage": sum(1 for r in log if r.server == "storage"),
        "storage_bytes": fake.storage_bytes_served,
    }


def _run(n: int, latency: float, tmp: Path, log: Log) -> Section:
    from ghapt.aws.sqs import PUBLISH_RESERVE_SECONDS
    from ghapt.signing.localkey import load_or_create_local_key

    from tests.support.fakegithub import FakeGitHub

    budget = LAMBDA_TIMEOUT - PUBLISH_RESERVE_SECONDS
    debs = make_debs(n)
    state = tmp / "state"
    load_or_create_local_key(state)
    repos = [f"acme/tool{r:02d}" for r in range(REPOS)]
    rows: list[list[str]] = []
    data: dict[str, Any] = {"n": n, "latency": latency, "budget": budget}
    with FakeGitHub() as fake:
        for repo in (META, *repos):
            fake.add_repo(repo)
        per_repo = -(-n // REPOS)
        legacy = legacy_bytes = 0
        for r, repo in enumerate(repos):
            chunk = debs[r * per_repo : (r + 1) * per_repo]
            for k in range(0, len(chunk), 5):  # five assets a release
                with_digest = (k // 5) % 3 != 0
                assets = chunk[k : k + 5]
                if not with_digest:
                    legacy += len(assets)
                    legacy_bytes += sum(len(d) for _, d in assets)
                fake.add_release(repo, f"v{k // 5 + 1}.0", assets, with_digest=with_digest)
        total = sum(len(d) for _, d in debs)
        log(
            f"  {n} assets in {REPOS} repositories ({human_bytes(total)}; {legacy} without digest), "
            f"{latency * 1000:.0f} ms a request"
        )
        fake.latency = latency
        env = child_env({"GITHUB_TOKEN": fake.token})
        args = [fake.api_url, META, str(state), str(budget), *repos]
        for label in ("cold rebuild (empty branch)", "nothing changed (fresh process)"):
            fake.clear_log()
            out = tmp / "out.json"
            child = run_child([PYTHON, "-m", "benchmarks._worker", "scale", *args], stdout=out, env=env)
            result = json.loads(out.read_text())
            counts = _counts(fake)
            log(
                f"  {label}: {secs(child.wall)} s, {result['invocations']} invocation(s), {counts['api']} API"
            )
            rows.append(
                [
                    label,
                    secs(child.wall),
                    str(result["invocations"]),
                    f"{counts['api']} ({counts['not_modified']})",
                    str(counts["storage"]),
                    human_bytes(counts["storage_bytes"]),
                    f"{result['read']} / {result['reused']}",
                    str(result["packages"]),
                    mb(child.rss_mb),
                ]
            )
            data[label] = {**counts, **result, "wall": child.wall, "rss_mb": child.rss_mb}
    return Section(
        key="scale",
        title=f"5. A cold rebuild of {n} release assets with {latency * 1000:.0f} ms latency",
        intro=[
            f"Input: {n} small, valid .debs ({human_bytes(total)}) as release assets over {REPOS} "
            f"repositories, five per release, on `tests.fakegithub.FakeGitHub`; {legacy} of them "
            f"({human_bytes(legacy_bytes)}) without a `digest`, so streamed whole, the rest Range-read. "
            f"Every request, API and storage, waits {latency * 1000:.0f} ms first. The indexer runs in "
            "a child process as the Lambda function does: a fresh `Services` per invocation, each with "
            f"a {budget:.0f} s reading budget (a 900 s invocation less the {PUBLISH_RESERVE_SECONDS:.0f} s "
            "publish reserve), invocations repeated until nothing is left; 4 reads in flight.",
        ],
        headers=[
            "Rebuild",
            "Wall s",
            "Invocations (900 s)",
            "API calls (304s)",
            "Storage requests",
            "Bytes downloaded",
            "Assets read / reused",
            "Packages entries",
            "Peak RSS MB",
        ],
        rows=rows,
        notes=[
            "Wall time is the whole child process (imports, every invocation, signing, commits). "
            "API calls include the releases listing, one asset URL lookup per new asset and the Git "
            "Data API calls of each commit (one blob per changed file).",
            "The no-change rebuild reads nothing: every asset, also conflicting or broken ones, is in "
            "the record on the branch.",
        ],
        data=data,
    )
