"""Benchmark 4: serving — cold import, warm handler latencies, GitHub calls per request.

* Cold import of ``ghapt.handlers`` in a fresh process, beside the import of
  ``benchmarks.noop_handler`` (the same Powertools pieces, no ghapt) as the reference.
* Warm latencies, in one worker process whose stdout (Powertools' JSON logs and EMF metrics)
  goes to /dev/null: ``authorizer_handler`` with the canned REQUEST event
  (``tests/events/authorizer_basic.json``) for a cached and for first-time Basic credentials
  (scrypt), and ``metadata_handler`` for ``GET /dists/stable/InRelease`` served from the warm
  cache (200, and 304 with ``If-Modified-Since``). Reference: the no-op handlers of
  ``benchmarks.noop_handler`` called with the same events in the same process.
* GitHub calls per 100 ``apt update``-equivalent sequences and per 100 pool downloads, over
  ``tests.support.fakegithub.FakeGitHub`` with the GitHub backend, the branch cache and pool URL cache
  on a simulated clock. Reference: the same with the caches off (``GHAPT_CACHE_SECONDS=0``).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import PYTHON, REPO_ROOT, Log, Section, child_env, mb, micros, ratio, run_child

EVENTS = REPO_ROOT / "tests" / "events"
ALICE_PASSWORD = "s3cret-apt-pass"  # noqa: S105  # the password in authorizer_basic.json's Basic header


class Context:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name = "ghapt-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ghapt-bench"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/ghapt-bench"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


class SimClock:
    """A monotonic clock the benchmark moves by hand (for cache windows)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- events -----------------------------------------------------------------------------------
def authorizer_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "authorizer_basic.json").read_text())
    return event


def with_authorization(event: dict[str, Any], value: str) -> dict[str, Any]:
    out = copy.deepcopy(event)
    out["headers"]["Authorization"] = value
    out["multiValueHeaders"]["Authorization"] = [value]
    return out


def rest_event(path: str, *, if_modified_since: str | None = None) -> dict[str, Any]:
    """The REST proxy event API Gateway sends for GET ``path``, from the canned request."""
    event = authorizer_event()
    for key in ("type", "methodArn"):
        event.pop(key)
    prefix = "/" + path.strip("/").split("/", 1)[0]
    event["path"] = path
    event["resource"] = f"{prefix}/{{proxy+}}"
    event["pathParameters"] = {"proxy": path[len(prefix) + 1 :]}
    event["requestContext"]["resourcePath"] = event["resource"]
    event["requestContext"]["path"] = f"/prod{path}"
    event["body"] = None
    event["isBase64Encoded"] = False
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("If-Modified-Since", None)
    if if_modified_since:
        event["headers"]["If-Modified-Since"] = if_modified_since
        event["multiValueHeaders"]["If-Modified-Since"] = [if_modified_since]
    return event


def body_of(result: dict[str, Any]) -> bytes:
    import base64

    body = result.get("body") or ""
    return base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()


def header_of(result: dict[str, Any], name: str) -> str:
    for key, value in (result.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (result.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower() and values:
            return str(values[0])
    return ""


def byhash_path(inrelease: bytes, file: str = "main/binary-amd64/Packages.xz") -> str:
    """The by-hash path apt fetches for ``file``: the strongest hash Release lists (SHA512)."""
    text = inrelease.decode()
    section = text.split("SHA512:", 1)[1]
    for line in section.splitlines()[1:]:
        if not line.startswith(" "):
            break
        digest, _size, name = line.split()
        if name == file:
            return f"/dists/stable/{file.rsplit('/', 1)[0]}/by-hash/SHA512/{digest}"
    raise ValueError(f"{file} is not listed in InRelease")


# --- the worker (a separate process, stdout to /dev/null) -------------------------------------
def _timed(fn: Callable[[dict[str, Any], Any], Any], events: list[dict[str, Any]], ctx: Any) -> list[float]:
    out = []
    for event in events:
        start = time.perf_counter()
        fn(event, ctx)
        out.append(time.perf_counter() - start)
    return out


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "n": len(ordered),
    }


def measure_latencies(tmp: Path, iterations: int, first_time: int, reps: int) -> dict[str, Any]:
    import ghapt.aws.handlers as handlers
    from ghapt.auth.passwords import hash_password
    from ghapt.auth.userfile import UserFile
    from ghapt.bootstrap import Services
    from ghapt.cli.demo import write_demo_releases
    from ghapt.core.settings import Settings

    from . import noop_handler as noop

    users = {"alice": hash_password(ALICE_PASSWORD)}
    fresh = [(f"user{i:03d}", f"pw-{uuid.uuid4().hex}") for i in range(first_time)]
    users.update({name: hash_password(pw) for name, pw in fresh})
    users_path = tmp / "users.json"
    UserFile(users_path).save(users)
    releases = tmp / "releases"
    write_demo_releases(releases)
    settings = Settings.from_env(
        {},
        releases_dir=releases,
        state_dir=tmp / "state",
        users_file=users_path,
        architectures="amd64",
        cache_seconds=3600,  # the latency of a hit, not of a head check
    )
    services = Services(settings, {})
    services.indexer.rebuild()
    handlers.configure(services)
    ctx = Context()

    auth_event = authorizer_event()
    policy = handlers.authorizer_handler(auth_event, ctx)
    assert policy["principalId"] == "basic:alice", policy
    md_event = rest_event("/dists/stable/InRelease")
    first = handlers.metadata_handler(md_event, ctx)
    assert first["statusCode"] == 200, first
    md_ims_event = rest_event("/dists/stable/InRelease", if_modified_since=header_of(first, "Last-Modified"))
    assert handlers.metadata_handler(md_ims_event, ctx)["statusCode"] == 304
    assert noop.metadata_handler(md_event, ctx)["statusCode"] == 200

    cases: dict[str, tuple[Callable[[dict[str, Any], Any], Any], dict[str, Any]]] = {
        "authorizer_cached": (handlers.authorizer_handler, auth_event),
        "noop_authorizer": (noop.authorizer_handler, auth_event),
        "metadata_200": (handlers.metadata_handler, md_event),
        "metadata_304": (handlers.metadata_handler, md_ims_event),
        "noop_metadata": (noop.metadata_handler, md_event),
    }
    for fn, event in cases.values():  # warm-up
        _timed(fn, [event] * 50, ctx)
    best: dict[str, dict[str, float]] = {}
    for _ in range(reps):
        for name, (fn, event) in cases.items():
            stats = _stats(_timed(fn, [event] * iterations, ctx))
            if name not in best or stats["p50"] < best[name]["p50"]:
                best[name] = stats
    first_events = [with_authorization(auth_event, _basic(name, pw)) for name, pw in fresh]
    best["authorizer_first"] = _stats(_timed(handlers.authorizer_handler, first_events, ctx))
    return best


def _basic(login: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def measure_calls(tmp: Path, sequences: int) -> dict[str, Any]:
    """GitHub API calls for ``sequences`` apt updates / pool downloads, per scenario."""
    import ghapt.aws.handlers as handlers
    from ghapt.cli.demo import DEMO_PACKAGES, build_demo_deb
    from ghapt.serving import POOL_URL_TTL, BranchCache, PoolResolver

    from tests.support.fakegithub import FakeGitHub

    from .github_calls import BRANCH, META, REPO, github_services

    ctx = Context()
    results: dict[str, Any] = {}
    with FakeGitHub() as fake:
        fake.add_repo(REPO)
        fake.add_repo(META)
        for tag, package, version, arch, summary in DEMO_PACKAGES:
            name = f"{package}_{version}_{arch}.deb"
            fake.add_release(REPO, tag, [(name, build_demo_deb(package, version, arch, summary))])
        state = tmp / "gh-state"
        github_services(fake, state).indexer.rebuild()
        pool_manifest = json.loads(fake.read_branch_file(META, BRANCH, "ghapt/pool.json") or b"{}")
        pool_path = "/" + sorted(pool_manifest)[0]

        def scenario(kind: str, spacing: float, cache_seconds: int, url_ttl: float) -> dict[str, int]:
            services = github_services(fake, state, cache_seconds=cache_seconds)
            clock = SimClock()
            cache = BranchCache(services.store, ttl=cache_seconds, clock=clock)
            services.__dict__["branch_cache"] = cache  # cached_property: install before first use
            services.__dict__["pool"] = PoolResolver(cache, services.source, url_ttl=url_ttl, clock=clock)
            handlers.configure(services)
            fake.clear_log()
            requests = 0
            for _ in range(sequences):
                if kind == "update":
                    got = handlers.metadata_handler(rest_event("/dists/stable/InRelease"), ctx)
                    assert got["statusCode"] == 200, got
                    packages = handlers.metadata_handler(rest_event(byhash_path(body_of(got))), ctx)
                    assert packages["statusCode"] == 200, packages
                    requests += 2
                else:
                    got = handlers.pool_handler(rest_event(pool_path), ctx)
                    assert got["statusCode"] == 302, got
                    requests += 1
                clock.now += spacing
            api = [r for r in fake.requests_log if r.server == "api"]
            return {
                "requests": requests,
                "api": len(api),
                "not_modified": sum(r.status == 304 for r in api),
                "storage": sum(r.server == "storage" for r in fake.requests_log),
                "simulated_seconds": int(spacing * sequences),
            }

        results["update_burst"] = scenario("update", 0.05, 30, POOL_URL_TTL)
        results["update_spread"] = scenario("update", 10.0, 30, POOL_URL_TTL)
        results["update_nocache"] = scenario("update", 0.05, 0, POOL_URL_TTL)
        results["pool_burst"] = scenario("pool", 0.05, 30, POOL_URL_TTL)
        results["pool_spread"] = scenario("pool", 10.0, 30, POOL_URL_TTL)
        results["pool_nocache"] = scenario("pool", 0.05, 0, 0.0)
        results["pool_url_ttl"] = POOL_URL_TTL
    return results


def worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving")
    parser.add_argument("--out", required=True)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--first-time", type=int, default=10)
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-serving-"))
    try:
        results = {
            "latency": measure_latencies(tmp, args.iterations, args.first_time, args.reps),
            "calls": measure_calls(tmp, args.sequences),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results))


# --- the parent: cold imports, then the worker --------------------------------------------------
_IMPORT = (
    "import sys,time\nt=time.perf_counter()\nimport {module}\nsys.stdout.write(repr(time.perf_counter()-t))\n"
)


def measure_import(module: str, reps: int, tmp: Path) -> dict[str, float]:
    best = float("inf")
    rss = 0.0
    env = child_env()
    out = tmp / "import.txt"
    for _ in range(reps):
        run = run_child([PYTHON, "-c", _IMPORT.format(module=module)], stdout=out, env=env, cwd=REPO_ROOT)
        best = min(best, float(out.read_text()))
        rss = max(rss, run.rss_mb)
    return {"seconds": best, "rss_mb": rss}


def heaviest_imports(module: str, top: int = 4) -> list[tuple[str, float]]:
    """The modules ``module`` imports directly, by cumulative import time (``-X importtime``)."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        check=True,
    )
    found = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( +)(\S+)", line)
        if m and len(m.group(2)) == 3:  # one level below the imported module
            found.append((m.group(3), int(m.group(1)) / 1e6))
    return sorted(found, key=lambda x: -x[1])[:top]


def run(
    *,
    iterations: int = 2000,
    first_time: int = 10,
    sequences: int = 100,
    reps: int = 3,
    import_reps: int = 5,
    log: Log = print,
) -> Section:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-serving-"))
    try:
        ghapt_import = measure_import("ghapt.aws.handlers", import_reps, tmp)
        noop_import = measure_import("benchmarks.noop_handler", import_reps, tmp)
        heavy = heaviest_imports("ghapt.aws.handlers")
        log(
            f"  import ghapt.aws.handlers {ghapt_import['seconds'] * 1000:.0f} ms, "
            f"no-op {noop_import['seconds'] * 1000:.0f} ms"
        )
        out = tmp / "worker.json"
        cmd = [
            PYTHON,
            "-m",
            "benchmarks.serving",
            "--out",
            str(out),
            "--iterations",
            str(iterations),
            "--first-time",
            str(first_time),
            "--sequences",
            str(sequences),
            "--reps",
            str(reps),
        ]
        run_child(cmd, env=child_env({"POWERTOOLS_METRICS_NAMESPACE": "ghapt"}), cwd=REPO_ROOT)
        results = json.loads(out.read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lat, calls = results["latency"], results["calls"]
    log(
        f"  authorizer cached p50 {micros(lat['authorizer_cached']['p50'])}, "
        f"metadata 200 p50 {micros(lat['metadata_200']['p50'])}"
    )

    def lat_cell(name: str) -> str:
        s = lat[name]
        return f"{micros(s['p50'])} ({micros(s['p95'])})"

    def calls_cell(c: dict[str, int]) -> str:
        return f"{c['api']} ({c['not_modified']} are 304s)"

    noop_auth, noop_md = lat["noop_authorizer"]["p50"], lat["noop_metadata"]["p50"]
    rows = [
        [
            "Cold import of `ghapt.handlers` (fresh process)",
            f"{ghapt_import['seconds'] * 1000:.0f} ms, RSS {mb(ghapt_import['rss_mb'])} MB",
            f"`benchmarks.noop_handler` (same Powertools objects, no ghapt): "
            f"{noop_import['seconds'] * 1000:.0f} ms, RSS {mb(noop_import['rss_mb'])} MB",
            ratio(ghapt_import["seconds"], noop_import["seconds"]),
        ],
        [
            "Authorizer, cached Basic credential: p50 (p95)",
            lat_cell("authorizer_cached"),
            f"no-op authorizer, same decorators: {lat_cell('noop_authorizer')}",
            ratio(lat["authorizer_cached"]["p50"], noop_auth),
        ],
        [
            f"Authorizer, first-time Basic credential (scrypt), {lat['authorizer_first']['n']} users: "
            "p50 (p95)",
            lat_cell("authorizer_first"),
            f"no-op authorizer: {micros(noop_auth)}",
            ratio(lat["authorizer_first"]["p50"], noop_auth),
        ],
        [
            "Metadata `GET /dists/stable/InRelease`, warm cache hit → 200: p50 (p95)",
            lat_cell("metadata_200"),
            f"no-op route, same resolver and decorators: {lat_cell('noop_metadata')}",
            ratio(lat["metadata_200"]["p50"], noop_md),
        ],
        [
            "Metadata, same with `If-Modified-Since` → 304: p50 (p95)",
            lat_cell("metadata_304"),
            f"no-op route: {micros(noop_md)}",
            ratio(lat["metadata_304"]["p50"], noop_md),
        ],
        [
            f"GitHub calls per {sequences} `apt update`s, all within one 30 s cache window",
            calls_cell(calls["update_burst"]),
            f"cache off (`GHAPT_CACHE_SECONDS=0`): {calls_cell(calls['update_nocache'])}",
            ratio(calls["update_burst"]["api"], calls["update_nocache"]["api"]),
        ],
        [
            f"GitHub calls per {sequences} `apt update`s, one every 10 s "
            f"({calls['update_spread']['simulated_seconds']} s simulated)",
            calls_cell(calls["update_spread"]),
            "cache off (same)",
            ratio(calls["update_spread"]["api"], calls["update_nocache"]["api"]),
        ],
        [
            f"GitHub calls per {sequences} pool downloads of one package, within one window",
            calls_cell(calls["pool_burst"]),
            f"caches off (branch and URL): {calls_cell(calls['pool_nocache'])}",
            ratio(calls["pool_burst"]["api"], calls["pool_nocache"]["api"]),
        ],
        [
            f"GitHub calls per {sequences} pool downloads, one every 10 s "
            f"({calls['pool_spread']['simulated_seconds']} s simulated)",
            calls_cell(calls["pool_spread"]),
            "caches off (same)",
            ratio(calls["pool_spread"]["api"], calls["pool_nocache"]["api"]),
        ],
    ]
    section = Section(
        key="serving",
        title="4. Serving",
        intro=[
            "In-process, through the real Lambda handlers (`ghapt.handlers`) with Powertools' logs and "
            "metrics written (to /dev/null). Latencies: the best p50 of "
            f"{reps} blocks of {iterations} calls after a warm-up (first-time credentials: one call per "
            f"each of {first_time} users); the reference is a no-op handler built from the same "
            "Powertools pieces and decorators (`benchmarks/noop_handler.py`), measured in the same "
            f"process. Imports: best of {import_reps} fresh processes. An `apt update` here is what a new "
            "client sends: `InRelease`, then `binary-amd64/Packages.xz` by its SHA512 by-hash path; "
            "GitHub backend over the fake, one fresh `Services` (a cold container) per scenario, cache "
            "windows on a simulated clock.",
        ],
        headers=["Measure", "ghapt", "Reference (same run)", "vs reference"],
        rows=rows,
        notes=[
            "Heaviest imports under `ghapt.handlers` (cumulative): "
            + ", ".join(f"`{name}` {sec * 1000:.0f} ms" for name, sec in heavy)
            + ". The HTTP handlers no longer load the X-Ray SDK (only the indexer does).",
            "304s (conditional requests on the branch ref) do not count against GitHub's rate limit. "
            f"Pool redirects reuse a storage URL for {calls['pool_url_ttl']:.0f} s; no scenario "
            "touched the storage host (apt follows the 302 itself).",
        ],
        data={"import": {"ghapt": ghapt_import, "noop": noop_import}, **results},
    )
    section.seconds = time.perf_counter() - started
    return section


if __name__ == "__main__":
    worker_main(sys.argv[1:])
