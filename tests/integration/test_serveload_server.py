"""The real ``ghapt serve`` process: bounded memory for huge unauthenticated bodies, no lockout
by idle connections, quiet logs under a burst; and the connection guard's rules, by the clock."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
from ghapt.auth.userfile import UserFile
from ghapt.local.connections import ConnectionGuard, RateLimitFilter, ThrottledLogger

from tests.support.debbuild import build_deb
from tests.support.ghaptserve import ghapt_serve

AUTH = ("alice", "server-load-pass")
HUGE = 200 * 1024 * 1024


def _world(tmp_path: Path) -> tuple[Path, Path]:
    releases, state = tmp_path / "releases", tmp_path / "state"
    build_deb(releases / "v1.0", "tool", "1.0-1", "amd64")
    UserFile(state / "users.json").add(*AUTH)
    return releases, state


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_a_200_mb_unauthenticated_body_costs_the_server_almost_no_memory(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    # One serving process: the very process whose peak memory is read answers the requests.
    env = {"GHAPT_WEBHOOK_SECRET": "memory-secret", "GHAPT_WORKERS": "1"}
    with ghapt_serve(releases, state, env=env) as server:
        # Warm every path the bodies take (a small unsigned delivery is a 401).
        for _ in range(3):
            assert requests.post(f"{server.url}/webhook", data=b"{}", timeout=30).status_code == 401
        baseline = server.status("VmHWM")

        # Declared: refused by its Content-Length, before a byte of it is read.
        with socket.create_connection(_host_port(server.url), timeout=30) as sock:
            sock.sendall(
                b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {HUGE}\r\n\r\n".encode()
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 413 ")

        # Chunked, generated as it is sent: refused once it passes the cap.
        def stream() -> Iterator[bytes]:
            block = b"x" * (1 << 20)
            for _ in range(HUGE // len(block)):
                yield block

        try:
            r = requests.post(f"{server.url}/webhook", data=stream(), timeout=120)
            assert r.status_code == 413
        except requests.ConnectionError:
            pass  # closed while the rest was still being sent: refused all the same
        grown_kib = server.status("VmHWM") - baseline
        assert grown_kib < 8 * 1024, f"peak RSS grew by {grown_kib} KiB"
        assert requests.get(f"{server.url}/public.key", timeout=30).status_code == 200


def test_more_idle_connections_than_the_limit_do_not_lock_a_real_client_out(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    # A long channel timeout: only the guard's eviction of the longest-idle can let the client in.
    args = ("--connection-limit", "8", "--channel-timeout", "60")
    with ghapt_serve(releases, state, args=args) as server:
        idle = [socket.create_connection(_host_port(server.url), timeout=30) for _ in range(40)]
        try:
            r = requests.get(f"{server.url}/dists/stable/InRelease", auth=AUTH, timeout=30)
            assert r.status_code == 200
            assert r.content.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
        finally:
            for sock in idle:
                sock.close()


def test_a_burst_on_one_thread_logs_the_queue_depth_a_few_times_not_per_request(tmp_path: Path) -> None:
    releases, state = _world(tmp_path)
    with ghapt_serve(releases, state, args=("--threads", "1")) as server:
        before = len(server.lines())

        def fetch(_: int) -> int:
            return requests.get(f"{server.url}/public.key", timeout=60).status_code

        with ThreadPoolExecutor(24) as pool:
            assert set(pool.map(fetch, range(600))) == {200}
        noisy = [line for line in server.lines()[before:] if "queue depth" in line]
        assert len(noisy) <= 3, f"{len(noisy)} queue-depth lines: {noisy[:5]}"


# --- the guard's rules, with waitress's channels stood in and the clock passed in -------------
def _channel(last_activity: float, *, request: object = None, requests_: tuple[Any, ...] = ()) -> Any:
    return SimpleNamespace(
        last_activity=last_activity, request=request, requests=list(requests_), will_close=False
    )


def _server(channels: list[Any], limit: int = 100) -> Any:
    return SimpleNamespace(
        adj=SimpleNamespace(connection_limit=limit),
        active_channels={i: c for i, c in enumerate(channels)},
        sockets={i: c for i, c in enumerate(channels)},
        accepting=True,
        readable=lambda: True,
    )


def test_the_guard_closes_idle_and_slow_connections_but_not_ones_being_answered() -> None:
    partial = object()
    idle, fresh, slow, busy = (
        _channel(0.0),
        _channel(95.0),
        _channel(99.0, request=partial),
        _channel(0.0, requests_=("req",)),
    )
    server = _server([idle, fresh, slow, busy])
    guard = ConnectionGuard(server, server.sockets, timeout=10)
    guard.maintenance(100.0)
    assert (idle.will_close, fresh.will_close, slow.will_close, busy.will_close) == (
        True,
        False,
        False,
        False,
    )
    slow.last_activity = 109.0  # it keeps trickling bytes, but the same request is still arriving
    fresh.last_activity = 105.0  # a keep-alive client that came back
    guard.maintenance(111.0)
    assert slow.will_close
    assert not fresh.will_close
    assert not busy.will_close
    assert guard.closed == {"idle": 1, "slow": 1, "evicted": 0}


def test_a_full_server_evicts_the_longest_idle_connections_past_the_grace() -> None:
    channels = [_channel(float(t)) for t in (5, 1, 3, 99.9)] + [_channel(0.0, requests_=("req",))]
    server = _server(channels, limit=5)
    guard = ConnectionGuard(server, server.sockets, timeout=60, grace=1.0)
    guard.make_room(100.0)
    assert [c.will_close for c in channels] == [False, True, False, False, False]
    channels[1].will_close = False
    del server.active_channels[1], server.sockets[1]
    server.sockets[9] = server.active_channels[9] = _channel(100.0)  # a new client, just accepted
    guard.make_room(100.0)
    assert [c.will_close for c in channels] == [False, False, True, False, False]


def test_the_rate_limit_filter_lets_one_noisy_message_through_per_interval() -> None:
    import logging

    now = [0.0]
    limiter = RateLimitFilter(("Task queue depth",), interval=10, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("waitress.queue", logging.WARNING, __file__, 1, msg, (3,), None)

    passed = [limiter.filter(record("Task queue depth is %d")) for _ in range(500)]
    assert passed.count(True) == 1
    assert limiter.filter(record("Exception while serving %s"))  # anything else always passes
    now[0] = 10.0
    later = record("Task queue depth is %d")
    assert limiter.filter(later)
    assert "499 similar messages" in str(later.msg)


def test_the_throttled_logger_makes_no_record_for_a_held_message() -> None:
    import logging

    now = [0.0]
    limiter = RateLimitFilter(("Task queue depth",), interval=10, clock=lambda: now[0])
    logger = logging.getLogger("tests.throttled")
    logger.addFilter(limiter)
    made: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            made.append(record)

    logger.addHandler(Keep())
    logger.propagate = False
    factory = logging.getLogRecordFactory()
    built = [0]

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        built[0] += 1
        return factory(*args, **kwargs)

    logging.setLogRecordFactory(counting)
    try:
        throttled = ThrottledLogger(logger, limiter)
        for depth in range(300):
            throttled.warning("Task queue depth is %d", depth)
        assert (built[0], len(made)) == (1, 1)
        now[0] = 10.0
        throttled.warning("Task queue depth is %d", 7)
        throttled.warning("Exception while serving %s", "/x")  # anything else is never held
        assert built[0] == 3
        assert "299 similar messages" in made[1].getMessage()
        assert made[2].getMessage() == "Exception while serving /x"
    finally:
        logging.setLogRecordFactory(factory)
