"""``ghapt serve``'s runtime: the HTTP server, the folder watcher and the reconcile loop."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghapt.core.errors import ConfigError, GhaptError

if TYPE_CHECKING:
    from ghapt.bootstrap import Services

LISTEN_BACKLOG = 1024  # waitress's own default
COALESCE_BYTES = 16 * 1024  # output a task leaves to the loop, sent whole when the task ends


class LocalServer:
    """waitress in front of a WSGI app, on its own socket map so it can be stopped at once.

    ``stop`` runs inside the server's own loop (through its trigger) and closes every socket,
    so the loop ends immediately instead of waiting out its select timeout. Idle and slow
    connections are dropped by ``ConnectionGuard`` before they can fill ``connection_limit``;
    bodies larger than any route takes are refused by waitress before they are read. Its
    channels are ``TaskFlushedChannel``s, which the loop does not poll in vain while their
    task sends."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        threads: int = 8,
        connection_limit: int = 500,
        channel_timeout: float = 30.0,
        sockets: list[socket.socket] | None = None,
    ) -> None:
        """Listen on ``host:port``, or on ``sockets`` already bound (one port shared by several
        serving processes; ``host`` then only names the server)."""
        import math

        import waitress

        from ghapt.local.connections import (
            CLEANUP_INTERVAL,
            ConnectionGuard,
            TaskFlushedChannel,
            ThrottledLogger,
            quiet_waitress_warnings,
        )
        from ghapt.local.gateway import MAX_BODY

        limiter = quiet_waitress_warnings()
        self._map: dict[int, Any] = {}
        where: dict[str, Any] = {"sockets": sockets} if sockets else {"host": host, "port": port}
        self._server: Any = waitress.create_server(
            app,
            map=self._map,
            **where,
            threads=threads,
            ident="ghapt",
            server_name=f"[{host}]" if ":" in host else host,
            connection_limit=connection_limit,
            channel_timeout=max(1, math.ceil(channel_timeout)),
            cleanup_interval=CLEANUP_INTERVAL,
            max_request_body_size=MAX_BODY,
        )
        self._server.channel_class = TaskFlushedChannel
        # A response smaller than this (headers and body) leaves in one send, from the loop once
        # its task has ended, rather than its headers in one and its body in another as soon as
        # each is written: one system call and one TCP segment fewer per request (InRelease:
        # about a fifth more requests a second). Set on the adjustments, not passed to
        # create_server, where the option is deprecated: without it, waitress sends as written.
        self._server.adj.send_bytes = COALESCE_BYTES
        dispatcher = self._server.task_dispatcher
        dispatcher.queue_logger = ThrottledLogger(dispatcher.queue_logger, limiter)
        self.guard = ConnectionGuard(self._server, self._map, channel_timeout)
        self.guard.install()

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def run(self) -> None:
        """Serve until ``stop`` (or Ctrl-C)."""
        try:
            self._server.run()
        finally:
            self._server.task_dispatcher.shutdown(timeout=1)

    def stop(self) -> None:
        from waitress.wasyncore import close_all

        try:
            self._server.trigger.pull_trigger(lambda: close_all(self._map, ignore_all=True))
        except OSError:  # the loop's trigger is gone already: close what is left from here
            close_all(self._map, ignore_all=True)


def run_server(services: Services, banner: str | None, ready: Callable[[], None] | None = None) -> None:
    """Rebuild if needed, watch the release folder, and serve until interrupted: in this process,
    or with ``settings.serving_processes`` worker processes beside the watcher's."""
    runtime = LocalRuntime(services)
    processes = services.settings.serving_processes
    if processes > 1:
        from ghapt.local.workers import Supervisor

        runtime.prepare()
        spread = kernel_spreads_connections()
        sockets = runtime.listen_sockets(reserve_only=spread)
        supervisor = Supervisor(runtime, sockets, processes, reuse_port=spread)
        where = f"{processes} processes"
    else:
        runtime.start()
        where = "1 process"
    if banner:
        print(banner, flush=True)
    port = supervisor.port if processes > 1 else runtime.port
    print(f"ghapt serving on http://{services.settings.host}:{port} ({where}; Ctrl-C stops)", flush=True)
    if ready:
        ready()
    if processes > 1:
        supervisor.run()
    else:
        runtime.serve_forever()


class LocalRuntime:
    """``ghapt serve`` in pieces: ``start`` (first rebuild, watcher, socket), ``serve_forever``, ``stop``.

    A first rebuild that fails for any reason but the configuration (a mass removal refused, a
    file that changed while it was read) does not stop the server: it serves the index it has,
    and the watcher retries on its next poll."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.watcher: FolderWatcher | None = None
        self._lock = threading.Lock()
        self._server: LocalServer | None = None

    def rebuild(self) -> None:
        with self._lock:
            result = self.services.rebuild_now()
        if result.changed:
            print(f"rebuilt: {result.summary().splitlines()[0]} ({result.commit})", flush=True)

    def start(self) -> None:
        """Everything in this process: the first rebuild, the watcher's thread, the server."""
        self.prepare()
        self.start_background()
        self._server = self.make_server()

    def prepare(self) -> None:
        """Check the configuration and key files, and run the first rebuild (no thread starts)."""
        settings = self.services.settings
        if not settings.public_url and settings.host in ("", "0.0.0.0", "::"):  # noqa: S104 - a check
            raise ConfigError(
                f"--host {settings.host or '(all)'} listens on every address: set --public-url "
                "(GHAPT_PUBLIC_URL) to the URL clients use; redirects are built from it, never from a "
                "request's Host header"
            )
        # Key files are checked before anything else: a truncated one stops `serve` naming the file.
        if settings.state_dir is not None and settings.backend == "local":
            _ = self.services.url_key
        if self.services.tokens is not None:
            self.services.tokens.check_key()
        if settings.backend == "local":
            self.watcher = FolderWatcher(
                settings.releases_dir, self.rebuild, poll_seconds=settings.poll_seconds
            )
            self.watcher.first_rebuild()
        else:
            self.rebuild()

    def start_background(self) -> None:
        """Start what must run once per server: the folder watcher, or the reconcile schedule."""
        if self.watcher is not None:
            threading.Thread(target=self.watcher.run, daemon=True, name="ghapt-watch").start()
        else:
            threading.Thread(
                target=_reconcile, args=(self.services,), daemon=True, name="ghapt-reconcile"
            ).start()

    def make_server(self, sockets: list[socket.socket] | None = None, share: int = 1) -> LocalServer:
        """The gateway of this runtime's services under waitress, on its own socket or ``sockets``;
        one of ``share`` serving processes, which split the connection limit between them (at
        least 4 each: waitress counts its listening socket and its wake-up pipe in the limit) and
        the threads (at least 2 each). More threads in one process only take turns on its GIL:
        under ``ab -k -c 50``, 2 processes of 8 threads answered Packages.xz about a fifth slower
        than 2 of 4."""
        from ghapt.local.gateway import ApiGateway

        settings = self.services.settings
        try:
            return LocalServer(
                ApiGateway(self.services),
                settings.host,
                settings.port,
                threads=max(2, -(-settings.threads // share)),
                connection_limit=max(4, -(-settings.connection_limit // share)),
                channel_timeout=settings.channel_timeout,
                sockets=sockets,
            )
        except OSError as exc:
            raise _cannot_listen(settings.host, settings.port, exc) from None

    def listen_sockets(self, *, reserve_only: bool = False) -> list[socket.socket]:
        """Sockets bound to ``host:port`` (every address the host resolves to, as waitress binds
        them), for several processes to accept on: listening, and shared by them; or, with
        ``reserve_only``, bound with ``SO_REUSEPORT`` but not listening, holding the port while
        each process listens on a socket of its own beside them (see ``reuse_port_twin``)."""
        from waitress.adjustments import Adjustments

        settings = self.services.settings
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, address in Adjustments(host=settings.host, port=settings.port).listen:
                sockets.append(_bound(family, kind, proto, address, reuse_port=reserve_only))
                if not reserve_only:
                    sockets[-1].listen(LISTEN_BACKLOG)
        except OSError as exc:
            for sock in sockets:
                sock.close()
            raise _cannot_listen(settings.host, settings.port, exc) from None
        return sockets

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.port

    def serve_forever(self) -> None:
        assert self._server is not None, "start() first"
        self._server.run()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self._server is not None:
            self._server.stop()


def _bound(family: int, kind: int, proto: int, address: Any, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def reuse_port_twin(reserved: socket.socket) -> socket.socket:
    """A listening socket on ``reserved``'s address (bound with ``SO_REUSEPORT``), for one
    serving process: Linux spreads new connections evenly between such listening sockets,
    where processes sharing one socket take them as they happen to wake (one of two took 45 of
    ab's 50 connections)."""
    sock = _bound(reserved.family, reserved.type, reserved.proto, reserved.getsockname(), reuse_port=True)
    sock.listen(LISTEN_BACKLOG)
    return sock


def kernel_spreads_connections() -> bool:
    """Whether ``SO_REUSEPORT`` balances connections between listening sockets (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _cannot_listen(host: str, port: int, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port (GHAPT_PORT)"
    )


FolderState = tuple[tuple[str, ...], ...]


class FolderWatcher:
    """Polls the releases folder and rebuilds when anything in it changes.

    Nothing it meets can stop it: a failed poll or rebuild (a file or folder that vanished
    mid-scan, a name that is not UTF-8, a refused mass removal) is reported in one line, counted
    in ``failures``, and retried on the next poll, while the server keeps serving the last good
    index. A vanished file or folder is just another change. ``polls``, ``rebuilds`` and
    ``failures`` count what happened; ``wait_until`` lets a caller wait for a condition on them."""

    def __init__(
        self,
        root: Path | None,
        rebuild: Callable[[], None],
        *,
        poll_seconds: float,
        settle_seconds: float | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self._rebuild = rebuild
        self.poll_seconds = poll_seconds
        # Let a copy in progress finish before reading it.
        self.settle_seconds = min(poll_seconds, 1.0) if settle_seconds is None else settle_seconds
        self.report = report or _to_stderr
        self.polls = 0
        self.rebuilds = 0
        self.failures = 0
        self.last_error = ""
        self._failing = 0  # failures since the last success
        self._published: FolderState | None = None  # None: rebuild on the next poll
        self._stop = threading.Event()
        self._progress = threading.Condition()

    def first_rebuild(self) -> None:
        """The start-up rebuild: a configuration error stops ``serve``; anything else is retried."""
        state = folder_state(self.root)
        try:
            self._rebuild()
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported and retried on the next poll
            self._failed(exc)
        else:
            self._published = state

    def run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.poll_once()

    def stop(self) -> None:
        self._stop.set()

    def poll_once(self) -> None:
        try:
            if folder_state(self.root) != self._published:
                if self.settle_seconds and self._stop.wait(self.settle_seconds):
                    return
                state = folder_state(self.root)  # taken before reading: a later change is seen next
                self._rebuild()
                self._published = state
                self.rebuilds += 1
                if self._failing:
                    self.report(f"ghapt: rebuild succeeded after {self._failing} failed attempt(s)")
                    self._failing, self.last_error = 0, ""
        except Exception as exc:  # noqa: BLE001 - the watcher must never die: report, count, retry next poll
            self._failed(exc)
        finally:
            with self._progress:
                self.polls += 1
                self._progress.notify_all()

    def wait_until(self, condition: Callable[[FolderWatcher], bool], timeout: float) -> bool:
        """Block until ``condition(self)`` holds after some poll, or ``timeout`` seconds pass."""
        with self._progress:
            return self._progress.wait_for(lambda: condition(self), timeout)

    def _failed(self, exc: Exception) -> None:
        self._published = None  # whatever the folder looks like now, the next poll rebuilds
        self.failures += 1
        self._failing += 1
        line = _one_line(exc)
        if line != self.last_error:  # the same failure every poll is reported once
            self.report(f"ghapt: rebuild failed, retrying on the next poll: {line}")
        self.last_error = line


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, GhaptError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return os.fsencode(text).decode("utf-8", "backslashreplace") if text else type(exc).__name__


def _reconcile(services: Services) -> None:
    """GitHub does not redeliver webhooks: rebuild on a schedule through the same local queue."""
    n = 0
    while True:
        time.sleep(services.settings.reconcile_seconds)
        n += 1
        services.queue.enqueue("scheduled reconcile", f"reconcile-{n}")


def folder_state(root: Path | None) -> FolderState:
    """A snapshot of everything a rebuild of ``root`` reads (``*.deb`` entries with their type,
    size and time, targets of symlinks included). It never raises: an unreadable folder is a
    state of its own, so the rebuild that reports it runs."""
    if root is None:
        return ()
    try:
        with os.scandir(root) as it:
            tags = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        return (("!", type(exc).__name__),)
    out: list[tuple[str, ...]] = []
    for tag in tags:
        try:
            if tag.name.startswith(".") or not tag.is_dir():
                continue
            with os.scandir(tag.path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.append((tag.name, "!", type(exc).__name__))
            continue
        for entry in entries:
            if entry.name.endswith(".deb") and not entry.name.startswith("."):
                out.append((tag.name, entry.name, *_stamp(entry.path)))
    return tuple(out)


def _stamp(path: str) -> tuple[str, ...]:
    for follow in (True, False):
        try:
            st = os.stat(path, follow_symlinks=follow)
        except OSError:
            continue
        return (str(follow), str(st.st_mode), str(st.st_size), str(st.st_mtime_ns), str(st.st_ino))
    return ("gone",)
