"""Benchmark: the HTTP functions at scale — cold imports, and memory with a 10,000-package index.

* Each HTTP function's cold import: ``import app`` in a fresh process with only that
  function's folder and the layer on the path (as Lambda does), beside a **bare Powertools
  handler** (``benchmarks.bare_handler``: Logger, Metrics and a REST resolver, no Tracer) and
  the old reference with the X-Ray Tracer (``benchmarks.noop_handler``).
* A warm metadata ``GET`` of a 10,000-package ``Packages.xz`` (by hash, as apt asks) and a warm
  pool ``GET`` with the 10,000-entry pool manifest, through the real handlers in one fresh
  process: wall time and that process's peak RSS after import, after the metadata GETs and after
  the pool GETs. The index is built by the real ``Indexer`` from 10,000 synthetic stanzas (a
  release source that returns control data without .deb files), committed to the local git
  store; the handlers read it as the Lambda functions read the GitHub branch.

``python -m benchmarks.serving_scale`` prints the Markdown section; ``--worker`` is the child.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .common import PYTHON, REPO_ROOT, Section, child_env, mb, ratio, run_child

HTTP_FUNCTIONS = ("metadata", "pool", "authorizer", "publickey", "webhook", "token")
_IMPORT = (
    "import sys,time\nt=time.perf_counter()\nimport {module}\nsys.stdout.write(repr(time.perf_counter()-t))\n"
)


# --- the 10,000-package index ---------------------------------------------------------------
class SyntheticSource:
    """A ``ReleaseSource`` of ``n`` packages whose control data is made up (no .deb files)."""

    def __init__(self, n: int, url_signer: Any) -> None:
        self.n = n
        self.url_signer = url_signer

    def list_assets(self) -> list[Any]:
        from ghapt.core.model import Asset

        return [
            Asset(
                key=f"synthetic:{i}",
                fingerprint=f"v1:{i}",
                name=f"pkg{i:05d}_1.{i % 97}-1_amd64.deb",
                release=f"v{i // 100}",
                suite="stable",
                size=40_000 + i,
                locator={"path": f"v{i // 100}/pkg{i:05d}_1.{i % 97}-1_amd64.deb"},
            )
            for i in range(self.n)
        ]

    def read_deb(self, asset: Any) -> Any:
        from ghapt.core.model import DebInfo, Hashes

        i = int(asset.key.split(":")[1])
        control = (
            ("Package", f"pkg{i:05d}"),
            ("Version", f"1.{i % 97}-1"),
            ("Architecture", "amd64"),
            ("Maintainer", "Bench Maintainer <bench@example.com>"),
            ("Installed-Size", str(100 + i % 900)),
            ("Depends", f"libc6 (>= 2.36), libpkg{(i * 7) % 10000:05d}"),
            ("Section", "utils"),
            ("Priority", "optional"),
            ("Homepage", f"https://example.com/pkg{i:05d}"),
            (
                "Description",
                f"synthetic package number {i}\n This stanza is about as long as a typical Debian "
                f"one:\n a summary line and a short paragraph ({i} {i * 31 % 1009}).",
            ),
        )
        digest = hashlib.sha256(asset.key.encode()).hexdigest()
        return DebInfo(control=control, size=asset.size, hashes=Hashes(sha256=digest))

    def download_url(self, locator: Mapping[str, str], base_url: str) -> str:
        return str(self.url_signer.url(base_url, locator["path"]))


def build_index(state: Path, releases: Path, n: int) -> None:
    from ghapt.bootstrap import Services
    from ghapt.core.settings import Settings

    releases.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env({}, releases_dir=releases, state_dir=state, architectures="amd64")
    services = Services(settings, {})
    services.__dict__["source"] = SyntheticSource(n, services.asset_urls)
    result = services.indexer.rebuild()
    assert result.changed and result.packages == n, result.summary()


# --- the measured child ------------------------------------------------------------------------
def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(state: Path, releases: Path, out: Path, gets: int) -> None:
    from .serving import Context, byhash_path, rest_event

    t0 = time.perf_counter()
    import ghapt.aws.handlers as handlers

    import_s = time.perf_counter() - t0
    after_import = _peak_mb()
    from ghapt.bootstrap import Services
    from ghapt.core.settings import Settings

    settings = Settings.from_env(
        {}, releases_dir=releases, state_dir=state, architectures="amd64", cache_seconds=3600
    )
    services = Services(settings, {})
    services.__dict__["source"] = SyntheticSource(0, services.asset_urls)
    handlers.configure(services)
    ctx = Context()
    inrelease = handlers.metadata_handler(rest_event("/dists/stable/InRelease"), ctx)
    assert inrelease["statusCode"] == 200, inrelease
    import base64

    text = (
        base64.b64decode(inrelease["body"])
        if inrelease.get("isBase64Encoded")
        else inrelease["body"].encode()
    )
    xz_event = rest_event(byhash_path(text))
    times = []
    size = 0
    for _ in range(gets + 1):
        t = time.perf_counter()
        reply = handlers.metadata_handler(xz_event, ctx)
        times.append(time.perf_counter() - t)
        assert reply["statusCode"] == 200, reply["statusCode"]
        size = len(base64.b64decode(reply["body"]))
    after_metadata = _peak_mb()
    pool_event = rest_event("/pool/main/p/pkg00001/pkg00001_1.1-1_amd64.deb")
    pool_times = []
    for _ in range(gets + 1):
        t = time.perf_counter()
        reply = handlers.pool_handler(pool_event, ctx)
        pool_times.append(time.perf_counter() - t)
        assert reply["statusCode"] == 302, reply
    after_pool = _peak_mb()
    pool_json = (services.store.file_sizes(services.store.head() or "")).get("ghapt/pool.json", 0)
    out.write_text(
        json.dumps(
            {
                "import_s": import_s,
                "rss_import_mb": after_import,
                "rss_metadata_mb": after_metadata,
                "rss_pool_mb": after_pool,
                "xz_bytes": size,
                "pool_json_bytes": pool_json,
                "metadata_first_s": times[0],
                "metadata_warm_p50_s": statistics.median(times[1:]),
                "pool_first_s": pool_times[0],
                "pool_warm_p50_s": statistics.median(pool_times[1:]),
            }
        )
    )


# --- the parent ----------------------------------------------------------------------------------
def _layer_env() -> dict[str, str]:
    """Only the layer (the ghapt package) and the installed dependencies, like Lambda's path."""
    env = child_env()
    env["PYTHONPATH"] = str(REPO_ROOT / "layers" / "ghapt")
    return env


def measure_function_import(folder: Path | None, module: str, reps: int, tmp: Path) -> dict[str, float]:
    best, rss = float("inf"), 0.0
    out = tmp / "import.txt"
    cwd = folder or REPO_ROOT
    for _ in range(reps):
        run = run_child([PYTHON, "-c", _IMPORT.format(module=module)], stdout=out, env=_layer_env(), cwd=cwd)
        best = min(best, float(out.read_text()))
        rss = max(rss, run.rss_mb)
    return {"seconds": best, "rss_mb": rss}


def run(*, packages: int = 10_000, gets: int = 20, import_reps: int = 5, log: Any = print) -> Section:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-scale-serving-"))
    try:
        imports = {
            name: measure_function_import(REPO_ROOT / "functions" / name, "app", import_reps, tmp)
            for name in HTTP_FUNCTIONS
        }
        bare = measure_function_import(None, "benchmarks.bare_handler", import_reps, tmp)
        traced = measure_function_import(None, "benchmarks.noop_handler", import_reps, tmp)
        log(
            "  cold imports: "
            + ", ".join(f"{k} {v['seconds'] * 1000:.0f} ms" for k, v in imports.items())
            + f"; bare Powertools {bare['seconds'] * 1000:.0f} ms"
        )
        state, releases = tmp / "state", tmp / "releases"
        t = time.perf_counter()
        build_index(state, releases, packages)
        log(f"  built a {packages}-package index in {time.perf_counter() - t:.1f} s")
        out = tmp / "worker.json"
        cmd = [
            PYTHON,
            "-m",
            "benchmarks.serving_scale",
            "--worker",
            str(state),
            str(releases),
            str(out),
            str(gets),
        ]
        child = run_child(cmd, env=child_env({"POWERTOOLS_METRICS_NAMESPACE": "ghapt"}), cwd=REPO_ROOT)
        w = json.loads(out.read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"  metadata Packages.xz ({w['xz_bytes']} B): peak RSS {w['rss_metadata_mb']:.1f} MB")
    rows = [
        [
            f"Cold import of `functions/{name}/app.py` (layer only on the path)",
            f"{v['seconds'] * 1000:.0f} ms, RSS {mb(v['rss_mb'])} MB",
            f"bare Powertools handler (Logger, Metrics, REST resolver): {bare['seconds'] * 1000:.0f} ms, "
            f"RSS {mb(bare['rss_mb'])} MB",
            ratio(v["seconds"], bare["seconds"]),
        ]
        for name, v in imports.items()
    ]
    rows.append(
        [
            "The old reference: the same no-op handler with the X-Ray Tracer",
            f"{traced['seconds'] * 1000:.0f} ms, RSS {mb(traced['rss_mb'])} MB",
            f"bare Powertools handler: {bare['seconds'] * 1000:.0f} ms",
            ratio(traced["seconds"], bare["seconds"]),
        ]
    )
    rows += [
        [
            f"Warm metadata `GET` of a {packages:,}-package `Packages.xz` "
            f"({w['xz_bytes'] / 1024:.0f} KiB, by hash): peak RSS of the process",
            f"{w['rss_metadata_mb']:.1f} MB (p50 {w['metadata_warm_p50_s'] * 1000:.2f} ms; first "
            f"{w['metadata_first_s'] * 1000:.0f} ms)",
            f"the same process after importing the handlers: {w['rss_import_mb']:.1f} MB",
            ratio(w["rss_metadata_mb"], w["rss_import_mb"]),
        ],
        [
            f"Warm pool `GET` with the {packages:,}-entry pool manifest "
            f"({w['pool_json_bytes'] / 1e6:.1f} MB): peak RSS of the process",
            f"{w['rss_pool_mb']:.1f} MB (p50 {w['pool_warm_p50_s'] * 1000:.2f} ms; first "
            f"{w['pool_first_s'] * 1000:.0f} ms)",
            f"after importing the handlers: {w['rss_import_mb']:.1f} MB",
            ratio(w["rss_pool_mb"], w["rss_import_mb"]),
        ],
    ]
    section = Section(
        key="serving-scale",
        title="5. Serving at scale: cold imports and memory",
        intro=[
            f"Cold imports: best of {import_reps} fresh processes, each with only the function's folder "
            "and the layer folder on the path. Memory: one fresh process (peak RSS, `ru_maxrss`) serving "
            f"{gets} warm GETs after the first, through the real handlers, over a {packages:,}-package "
            "index built by the real indexer from synthetic stanzas in the local git store.",
        ],
        headers=["Measure", "ghapt", "Reference (same run)", "vs reference"],
        rows=rows,
        notes=[
            f"The worker process's own peak RSS as measured from outside: {mb(child.rss_mb)} MB "
            "(both GETs, both caches warm; the Lambda functions have 128 MB).",
        ],
        data={"imports": imports, "bare": bare, "traced": traced, "worker": w},
    )
    section.seconds = time.perf_counter() - started
    return section


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=4, metavar=("STATE", "RELEASES", "OUT", "GETS"))
    parser.add_argument("--packages", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.worker:
        state, releases, out, gets = args.worker
        worker(Path(state), Path(releases), Path(out), int(gets))
        return
    print(run(packages=args.packages, log=lambda m: print(m, file=sys.stderr)).markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
