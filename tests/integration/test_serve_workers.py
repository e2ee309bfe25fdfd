"""``ghapt serve --workers N``: one port answered by N processes, the folder watcher once beside
them, a rebuild seen by every process on its next request, a dead worker replaced, and every
child gone when the server stops (SIGTERM, SIGINT) or even when it is killed."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import requests
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings
from ghapt.local.runtime import LocalRuntime

from tests.support.debbuild import build_deb
from tests.support.ghaptcli import run
from tests.support.ghaptserve import ServeProcess, ghapt_serve

AUTH = ("alice", "workers-pass")
PACKAGES = "/dists/stable/main/binary-amd64/Packages"
DEADLINE = 60.0


def _world(tmp_path: Path) -> tuple[Path, Path]:
    releases, state = tmp_path / "releases", tmp_path / "state"
    build_deb(releases / "v1.0", "tool", "1.0-1", "amd64")
    UserFile(state / "users.json").add(*AUTH)
    return releases, state


def _children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (zombies are as good as gone)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _eventually(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, f"never happened: {what}"
        time.sleep(0.05)


def _version_on_fresh_connections(server: ServeProcess, n: int) -> set[str]:
    """What ``n`` requests, each on its own connection (so any worker may answer), say."""

    def one(_: int) -> str:
        with requests.Session() as session:
            r = session.get(server.url + PACKAGES, auth=AUTH, timeout=30)
        assert r.status_code == 200
        return ",".join(line for line in r.text.splitlines() if line.startswith("Version: "))

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(one, range(n)))


def test_n_workers_answer_on_one_port_and_all_see_a_rebuild_on_their_next_request(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    env = {"GHAPT_POLL_SECONDS": "0.2"}
    with ghapt_serve(releases, state, args=("--workers", "3"), env=env) as server:
        _eventually(lambda: len(_children(server.pid)) == 4, "the watcher and three workers")
        assert any("3 processes" in line for line in server.lines())
        assert _version_on_fresh_connections(server, 24) == {"Version: 1.0-1"}

        build_deb(releases / "v2.0", "tool", "2.0-1", "amd64")
        _eventually(
            lambda: "2.0-1" in requests.get(server.url + PACKAGES, auth=AUTH, timeout=30).text,
            "the watcher's rebuild is served",
        )
        # Rebuilt once, by the watcher; every worker serves it from its very next request.
        assert _version_on_fresh_connections(server, 48) == {"Version: 1.0-1,Version: 2.0-1"}
        assert sum("rebuilt:" in line for line in server.lines()) == 2  # the first build and this one


def test_sigterm_stops_every_child_and_the_server_exits_cleanly(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    with ghapt_serve(releases, state, args=("--workers", "2")) as server:
        _eventually(lambda: len(_children(server.pid)) == 3, "the watcher and two workers")
        children = _children(server.pid)
        server.proc.terminate()
        assert server.proc.wait(timeout=DEADLINE) == 0
        assert not [pid for pid in children if _alive(pid)]


def test_sigint_stops_every_child_like_ctrl_c(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    with ghapt_serve(releases, state, args=("--workers", "2")) as server:
        _eventually(lambda: len(_children(server.pid)) == 3, "the watcher and two workers")
        children = _children(server.pid)
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(timeout=DEADLINE) == 130
        assert not [pid for pid in children if _alive(pid)]
        assert not any("Traceback" in line for line in server.lines())


def test_children_of_a_killed_server_stop_by_themselves(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    with ghapt_serve(releases, state, args=("--workers", "2")) as server:
        _eventually(lambda: len(_children(server.pid)) == 3, "the watcher and two workers")
        children = _children(server.pid)
        server.proc.kill()  # no chance to stop anything itself
        server.proc.wait(timeout=DEADLINE)
        _eventually(lambda: not [pid for pid in children if _alive(pid)], "no orphan left running")


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_answering(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    with ghapt_serve(releases, state, args=("--workers", "2")) as server:
        _eventually(lambda: len(_children(server.pid)) == 3, "the watcher and two workers")
        before = _children(server.pid)
        victim = max(before)  # a worker or the watcher: either is started again
        os.kill(victim, signal.SIGKILL)
        _eventually(
            lambda: len(_children(server.pid)) == 3 and victim not in _children(server.pid),
            "a new worker in the dead one's place",
        )
        assert _version_on_fresh_connections(server, 16) == {"Version: 1.0-1"}
        assert any("was killed by SIGKILL; starting it again" in line for line in server.lines())


def test_one_worker_serves_in_the_one_process(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    with ghapt_serve(releases, state, args=("--workers", "1")) as server:
        assert _version_on_fresh_connections(server, 4) == {"Version: 1.0-1"}
        assert _children(server.pid) == set()
        assert any("1 process;" in line for line in server.lines())


def test_a_port_in_use_is_a_configuration_error_with_workers(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run(
            "serve", "--releases", str(releases), "--state", str(state), "--port", port, "--workers", "2"
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_serving_processes_split_the_connection_limit_and_the_threads(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    settings = Settings.from_env({}, releases_dir=releases, state_dir=state, port=0)
    limits, threads = [], []
    for share, limit, total in ((1, 500, 8), (2, 500, 8), (3, 500, 8), (8, 4, 8), (2, 500, 1)):
        runtime = LocalRuntime(Services(replace(settings, connection_limit=limit, threads=total), {}))
        server = runtime.make_server(share=share)
        limits.append(server.guard.limit)
        threads.append(server.guard.server.adj.threads)
        server.stop()
    assert limits == [500, 250, 167, 4, 250]  # never below 4: waitress counts its own two sockets in it
    assert threads == [8, 4, 3, 2, 2]  # never below 2 a process


def _connections(pid: int, port: int) -> int:
    """Established TCP connections to ``port`` that process ``pid`` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                count += 1
    return count


def test_new_connections_are_spread_over_the_workers(tmp_path: Path) -> None:
    """Workers waking on one shared socket take connections unevenly (one took 45 of 50); each
    listening on its own ``SO_REUSEPORT`` socket, the kernel spreads them."""
    releases, state = _world(tmp_path)
    with ghapt_serve(releases, state, args=("--workers", "2")) as server:
        _eventually(lambda: len(_children(server.pid)) == 3, "the watcher and two workers")
        port = int(server.url.rsplit(":", 1)[1])
        clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(40)]
        try:
            held: dict[int, int] = {}

            def all_accepted() -> bool:
                held.clear()
                held.update({pid: _connections(pid, port) for pid in _children(server.pid)})
                return sum(held.values()) == len(clients)

            _eventually(all_accepted, "every connection accepted by some worker")
            workers = sorted(n for n in held.values() if n)
            assert len(workers) == 2 and workers[0] >= 6, f"connections per worker: {workers}"
        finally:
            for sock in clients:
                sock.close()
