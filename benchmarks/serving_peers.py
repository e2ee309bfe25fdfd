"""Benchmark 6: serving against nginx — `ghapt serve` beside nginx serving the same files statically.

One state is built with ``ghapt rebuild`` from the same Debian .debs as the publish comparison;
``ghapt serve`` serves it (its default: one process per CPU, 8 waitress threads split between them) and
nginx serves a checkout of the very same ``apt-metadata`` commit (``git archive | tar -x``) with
``auth_basic`` (an ``htpasswd -bc`` file). Both listen on 127.0.0.1, on the machine that runs the load:
``ab -k -c 50 -n 4000`` with Basic credentials, per URL, interleaved (ghapt, nginx, nginx with
one worker, then again), median of the repetitions. Before the load, both must answer 401
without credentials and the same bytes with them. Both servers are stopped at the end.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .common import Section, human_bytes, ratio
from .peers import PER_FOLDER, debian_workload, ghapt_command, missing_tools, skipped, synthetic_workload

NEEDS = ("nginx", "ab", "htpasswd", "git", "tar")
USER = "bench"
PASSWORD = "bench-serving-pass"  # noqa: S105  # a throwaway credential for loopback servers
PATHS = {
    "InRelease": "/dists/stable/InRelease",
    "Packages.xz": "/dists/stable/main/binary-amd64/Packages.xz",
}
SERVERS = ("ghapt", "nginx", "nginx-1")
TITLE = "6. Serving against nginx: the same branch checkout, Basic auth, on one machine"
Log = Callable[[str], None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- servers -----------------------------------------------------------------------------------
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy from the environment


def _get(url: str, auth: bool = True) -> tuple[int, bytes]:
    request = urllib.request.Request(url)  # noqa: S310  # http://127.0.0.1 only
    if auth:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with _DIRECT.open(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError):
            if _get(url)[0] == 200:
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
    state = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready in {timeout:.0f} s"
    raise RuntimeError(f"{what} {state}: {tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server this benchmark started, with the processes of its own session (nginx's workers)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def ghapt_server(releases: Path, state: Path, log_file: Path) -> Iterator[str]:
    port = free_port()
    cmd = [ghapt_command(), "serve", "--releases", str(releases), "--state", str(state)]
    cmd += ["--architectures", "amd64", "--host", "127.0.0.1", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}
    with log_file.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base + PATHS["InRelease"], proc, "ghapt serve", log_file)
        yield base
    finally:
        _stop(proc)


NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        auth_basic "ghapt bench";
        auth_basic_user_file {htpasswd};
    }}
}}
"""


@contextlib.contextmanager
def nginx_server(root: Path, htpasswd: Path, prefix: Path, workers: str) -> Iterator[str]:
    """nginx in the foreground with its own prefix and configuration; ``workers`` as worker_processes."""
    port = free_port()
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(workers=workers, prefix=prefix, port=port, root=root, htpasswd=htpasswd)
    )
    cmd = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    with (prefix / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base + PATHS["InRelease"], proc, "nginx", prefix / "error.log")
        yield base
    finally:
        _stop(proc)


# --- ab ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    rps: float
    complete: int
    failed: int
    non_2xx: int
    keep_alive: int


def parse_ab(text: str) -> Load:
    """The figures of ``ab``'s report; a missing "Non-2xx responses" line means there were none."""

    def num(label: str, default: float | None = None) -> float:
        m = re.search(rf"^{label}:\s+([\d.]+)", text, re.MULTILINE)
        if m:
            return float(m.group(1))
        if default is None:
            raise ValueError(f"no '{label}' in ab's output:\n{text[-1000:]}")
        return default

    return Load(
        rps=num("Requests per second"),
        complete=int(num("Complete requests")),
        failed=int(num("Failed requests")),
        non_2xx=int(num("Non-2xx responses", 0)),
        keep_alive=int(num("Keep-Alive requests", 0)),
    )


def ab(url: str, *, concurrency: int, requests: int) -> Load:
    cmd = ["ab", "-q", "-k", "-c", str(concurrency), "-n", str(requests), "-A", f"{USER}:{PASSWORD}", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"ab failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return parse_ab(proc.stdout)


# --- the run -----------------------------------------------------------------------------------
def _prepare(tmp: Path, n: int, debian: bool, log: Log) -> tuple[Path, Path, Path, Path, str]:
    """Releases, a ghapt state with one user, the branch checkout and an htpasswd file."""
    load = debian_workload(n, 0, tmp, log) if debian else synthetic_workload(n, 0, tmp)
    debs, label = load.debs, load.label
    releases, state, root = tmp / "releases", tmp / "state", tmp / "www"
    for i, deb in enumerate(debs):
        (releases / f"r{i // PER_FOLDER:05d}").mkdir(parents=True, exist_ok=True)
        os.link(deb, releases / f"r{i // PER_FOLDER:05d}" / deb.name)
    ghapt = ghapt_command()
    subprocess.run([ghapt, "keys", "--state", str(state)], check=True, capture_output=True)
    rebuild = [
        ghapt,
        "rebuild",
        "--releases",
        str(releases),
        "--state",
        str(state),
        "--architectures",
        "amd64",
    ]
    subprocess.run(rebuild, check=True, capture_output=True)
    add = [ghapt, "users", "add", USER, "--password-stdin", "--state", str(state)]
    subprocess.run(add, input=PASSWORD.encode(), check=True, capture_output=True)
    root.mkdir()
    archive = subprocess.run(
        ["git", "--git-dir", str(state / "metadata.git"), "archive", "apt-metadata"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    htpasswd = tmp / "htpasswd"
    subprocess.run(["htpasswd", "-bc", str(htpasswd), USER, PASSWORD], check=True, capture_output=True)
    return releases, state, root, htpasswd, label


def run(
    n: int = 400,
    *,
    requests: int = 4000,
    concurrency: int = 50,
    reps: int = 3,
    debian: bool = True,
    log: Log = print,
) -> Section:
    started = time.perf_counter()
    if absent := missing_tools(NEEDS):
        log(f"  skipped: {', '.join(absent)} not installed")
        return skipped("serving-peers", TITLE, absent, started)
    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-nginx-"))
    tmp.chmod(0o755)  # nginx's workers drop root for nobody: the checkout must be readable
    try:
        releases, state, root, htpasswd, label = _prepare(tmp, n, debian, log)
        sizes = {k: (root / p.lstrip("/")).stat().st_size for k, p in PATHS.items()}
        with contextlib.ExitStack() as stack:
            bases = {
                "ghapt": stack.enter_context(ghapt_server(releases, state, tmp / "ghapt-serve.log")),
                "nginx": stack.enter_context(nginx_server(root, htpasswd, tmp / "nginx", "auto")),
                "nginx-1": stack.enter_context(nginx_server(root, htpasswd, tmp / "nginx-1", "1")),
            }
            checks = _check(bases, root)
            for base in bases.values():  # warm-up: caches, scrypt, connections
                for path in PATHS.values():
                    ab(base + path, concurrency=concurrency, requests=min(requests, 500))
            loads: dict[str, dict[str, list[Load]]] = {k: {s: [] for s in SERVERS} for k in PATHS}
            for rep in range(reps):
                for key, path in PATHS.items():
                    for server in SERVERS:
                        loads[key][server].append(
                            ab(bases[server] + path, concurrency=concurrency, requests=requests)
                        )
                log(
                    f"  repetition {rep + 1}/{reps}: "
                    + ", ".join(f"{k} {s} {loads[k][s][-1].rps:,.0f} req/s" for k in PATHS for s in SERVERS)
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _section(loads, sizes, checks, label, requests, concurrency, reps, started, load_start)


def _check(bases: dict[str, str], root: Path) -> list[str]:
    """Before any load: 401 without credentials, and with them the branch's bytes, from every server."""
    problems = []
    for server, base in bases.items():
        for key, path in PATHS.items():
            status, _ = _get(base + path, auth=False)
            if status != 401:
                problems.append(f"{server} {key} without credentials: {status}, not 401")
            status, body = _get(base + path)
            if status != 200 or body != (root / path.lstrip("/")).read_bytes():
                problems.append(f"{server} {key}: {status}, or not the branch's bytes")
    return problems


def _section(
    loads: dict[str, dict[str, list[Load]]],
    sizes: dict[str, int],
    checks: list[str],
    label: str,
    requests: int,
    concurrency: int,
    reps: int,
    started: float,
    load_start: float,
) -> Section:
    def rps(key: str, server: str) -> float:
        return statistics.median(x.rps for x in loads[key][server])

    rows = []
    bad = []
    for key, path in PATHS.items():
        g, ng, n1 = rps(key, "ghapt"), rps(key, "nginx"), rps(key, "nginx-1")
        rows.append(
            [
                f"`{path}` ({human_bytes(sizes[key])})",
                f"{g:,.0f} req/s",
                f"{ng:,.0f} req/s",
                ratio(g, ng),
                f"{n1:,.0f} req/s",
                ratio(g, n1),
            ]
        )
        for server in SERVERS:
            for x in loads[key][server]:
                if x.failed or x.non_2xx or x.complete != requests:
                    bad.append(f"{server} {key}: {x.failed} failed, {x.non_2xx} non-2xx of {x.complete}")
    keep_alive = {s: min(x.keep_alive for k in PATHS for x in loads[k][s]) for s in SERVERS}
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    section = Section(
        key="serving-peers",
        title=TITLE,
        intro=[
            f"A repository of {label} built with `ghapt rebuild`. **ghapt**: `ghapt serve` (its default "
            f"`GHAPT_WORKERS`: one process per CPU, {workers} here, with `GHAPT_THREADS` 8 split between "
            f"them ({max(2, -(-8 // (workers or 1)))} waitress threads each), sharing "
            "the port, beside the folder watcher's process; in each, the local API Gateway stand-in: "
            "authorizer, then the metadata route's Lambda handler over the cached branch). **nginx**: "
            "a `git archive` checkout of the same "
            "`apt-metadata` commit served statically with `auth_basic` (`htpasswd -bc`, its default "
            f"MD5-crypt hash), `sendfile on`, access log off; `worker_processes auto` ({workers} workers "
            "here), and again with 1 worker. Both on 127.0.0.1 of the machine running the load.",
            f"Load: `ab -k -c {concurrency} -n {requests} -A user:pass URL`, after a 500-request warm-up "
            f"per server and URL; **median of {reps}** interleaved repetitions. Ratio: ghapt's "
            "requests/s / nginx's, measured in the same run (below 1\u00d7 nginx is faster).",
        ],
        headers=["URL", "ghapt serve", "nginx (auto)", "ghapt / nginx", "nginx, 1 worker", "ghapt / nginx 1"],
        rows=rows,
        notes=[
            "Checked before the load: every server answers 401 without credentials and the branch's "
            "exact bytes with them"
            + (": passed." if not checks else ": **FAILED**: " + "; ".join(checks) + "."),
            "Every ab run: "
            + (
                f"all {requests} requests completed with 2xx, none failed"
                if not bad
                else "**FAILURES**: " + "; ".join(bad)
            )
            + "; keep-alive requests (fewest in a run): "
            + ", ".join(f"{s} {v:,}" for s, v in keep_alive.items())
            + ".",
            f"Load average (1 min) at the start and the end of this benchmark: {load_start:.2f} and "
            f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs.",
            "ab, ghapt and nginx share the machine's CPUs; ghapt's Basic check is one scrypt per new "
            "credential, then a cached decision; nginx checks the MD5-crypt hash on every request.",
        ],
        data={
            "rps": {k: {s: [x.rps for x in loads[k][s]] for s in SERVERS} for k in PATHS},
            "median": {k: {s: rps(k, s) for s in SERVERS} for k in PATHS},
            "checks": checks,
            "failures": bad,
            "skipped": False,
        },
    )
    section.seconds = time.perf_counter() - started
    return section
