"""Real apt clients at once against ``ghapt serve`` while rebuilds commit every second.

Each client is the real ``apt-get`` under its own root (its own sources, keyring, auth.conf.d
and lists, as in ``tests/aptclient.py``): ``apt-get update``, then ``apt-get download`` of
one package. Meanwhile a new release folder appears every second, so the server rebuilds
and commits a new index under the clients' feet. Reported: failed clients, p50 and p99
client wall time, and the server's RSS before and after.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .common import Section

PACKAGES = 12
USER, PASSWORD = "bench", "bench-concurrent-pass"


def _deb(out_dir: Path, name: str, version: str) -> Path:
    """A minimal real .deb built with dpkg-deb."""
    root = Path(tempfile.mkdtemp(prefix="bench-deb-"))
    try:
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN/control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Bench <b@example.com>\n"
            f"Description: benchmark package {name}\n"
        )
        doc = root / "usr/share/doc" / name
        doc.mkdir(parents=True)
        (doc / "README").write_text(f"{name} {version}\n" * 200)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{name}_{version}_all.deb"
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(target)],
            check=True,
            capture_output=True,
        )
        return target
    finally:
        shutil.rmtree(root)


def _rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and of its child processes (``ghapt serve``'s workers and watcher)."""
    total = 0
    for proc in (pid, *_children(pid)):
        try:
            lines = Path(f"/proc/{proc}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in lines if line.startswith("VmRSS:")), 0)
    return total


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(clients: int = 50, log: Callable[[str], None] = print) -> Section:
    from ghapt.auth.userfile import UserFile
    from ghapt.cli.clientconfig import auth_entry

    from tests.support.aptclient import AptClient

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-concurrent-"))
    releases, state = work / "releases", work / "state"
    for i in range(PACKAGES):
        _deb(releases / "v1", f"bench-pkg{i}", "1.0-1")
    spare = work / "spare"
    UserFile(state / "users.json").add(USER, PASSWORD)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}
    env["GHAPT_POLL_SECONDS"] = "0.5"
    ghapt = str(Path(sys.executable).parent / "ghapt")
    server = subprocess.Popen(
        [ghapt, "serve", "--releases", str(releases), "--state", str(state), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    stop = threading.Event()
    commits = [0]
    try:
        import requests

        for _ in range(600):
            try:
                key_text = requests.get(f"{url}/public.key", timeout=2).text
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        key = work / "ghapt.asc"
        key.write_text(key_text)
        rss_before = _rss_kib(server.pid)

        def churn() -> None:
            """A new release every second: a rebuild and a commit under the clients' feet."""
            n = 0
            while not stop.wait(1.0):
                n += 1
                _deb(spare, f"bench-churn{n}", f"1.{n}-1")
                (releases / f"churn-{n}").mkdir()
                shutil.move(str(spare / f"bench-churn{n}_1.{n}-1_all.deb"), releases / f"churn-{n}")
                commits[0] = n

        churner = threading.Thread(target=churn, daemon=True)
        churner.start()

        def client(i: int) -> tuple[float, str]:
            apt = AptClient(work / f"client-{i}")
            apt.add_source(url, "stable", key)
            apt.set_auth(auth_entry(url, USER, PASSWORD))
            t0 = time.perf_counter()
            res = apt.run("update")
            if res.returncode == 0:
                res = apt.run("download", f"bench-pkg{i % PACKAGES}")
            wall = time.perf_counter() - t0
            bad = res.returncode != 0 or any(
                s in res.output for s in ("Hash Sum mismatch", "unexpected size", "Err:")
            )
            return wall, (res.output[-400:] if bad else "")

        log(f"{clients} apt clients against {url}, a new release every second")
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(client, range(clients)))
        stop.set()
        churner.join(timeout=10)
        rss_after = _rss_kib(server.pid)
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)

    walls = [w for w, _ in results]
    failures = [out for _, out in results if out]
    for out in failures[:3]:
        log(f"failed client: {out}")
    section = Section(
        key="concurrent",
        title=f"{clients} concurrent apt clients while rebuilds commit every second",
        intro=[
            f"{clients} real `apt-get update` + `apt-get download`, each under its own root, at once "
            f"against `ghapt serve` (its default: one serving process per CPU, 8 threads split between "
            f"them, and "
            f"the folder watcher's process); a new release folder every second made "
            f"{commits[0]} new releases to rebuild during the run. Server RSS: all its processes."
        ],
        headers=["Clients", "Failed", "p50 client wall", "p99 client wall", "Server RSS before", "after"],
        rows=[
            [
                str(clients),
                str(len(failures)),
                f"{statistics.median(walls):.2f} s",
                f"{_percentile(walls, 0.99):.2f} s",
                f"{rss_before / 1024:.1f} MB",
                f"{rss_after / 1024:.1f} MB",
            ]
        ],
        data={
            "clients": clients,
            "failures": len(failures),
            "p50": statistics.median(walls),
            "p99": _percentile(walls, 0.99),
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "releases_added": commits[0],
        },
    )
    section.seconds = time.perf_counter() - started
    return section
