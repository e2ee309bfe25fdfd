"""``ghapt serve`` on several processes: one port, one folder watcher, N serving workers.

The gateway and the Lambda handlers run Python, one thread at a time per process; a second
CPU only helps with a second process. So the parent binds the port and runs the first
rebuild, then forks while it has no other thread:

- one child runs what must run once: the folder watcher (or, with the GitHub backend, the
  reconcile schedule), with the parent's services;
- ``workers`` children each build their own services (no client, cache or connection shared
  with another process) and run the same gateway under waitress. On Linux each listens on a
  socket of its own bound to the port with ``SO_REUSEPORT`` (the parent's bound socket holds
  the port meanwhile), and the kernel spreads new connections evenly between them; elsewhere
  they accept on one shared listening socket. Each sees a rebuild on its next request:
  locally the branch head is checked on every request.

The parent only supervises. It waits for signals with the ones it handles blocked, so none
interrupts its bookkeeping; it starts again a child that died, and on SIGTERM or SIGINT
(or SIGHUP) it stops every child (SIGTERM, then SIGKILL after ``grace`` seconds) and waits
for each before it returns. Children ignore SIGINT (a Ctrl-C reaches the whole process group:
the parent decides), and a child whose parent is gone stops by itself within a second, so
none outlives even a killed parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ghapt.core.errors import GhaptError

if TYPE_CHECKING:
    from ghapt.local.runtime import LocalRuntime

HANDLED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}
PARENT_CHECK_SECONDS = 1.0
QUICK_DEATH_SECONDS = 5.0  # a child that dies sooner than this after starting is failing to start
MAX_QUICK_DEATHS = 3  # in a row, for one child: then the server stops instead of looping


@dataclass
class Child:
    name: str
    run: Callable[[], None]
    started: float
    quick_deaths: int = 0


class Supervisor:
    """Fork the watcher and ``workers`` serving processes, restart any that dies, stop them all."""

    def __init__(
        self,
        runtime: LocalRuntime,
        sockets: list[socket.socket],
        workers: int,
        *,
        grace: float = 10.0,
        report: Callable[[str], None] | None = None,
        reuse_port: bool = False,
    ) -> None:
        """``sockets`` are listening, for every worker to accept on; or, with ``reuse_port``,
        bound but not listening (they hold the port): each worker then listens on its own."""
        self.runtime = runtime
        self.sockets = sockets
        self.workers = workers
        self.reuse_port = reuse_port
        self.grace = grace
        self.report = report or _to_stderr
        self.children: dict[int, Child] = {}
        self._pid = os.getpid()
        self._unblocked: set[int | signal.Signals] = set()  # the signal mask children start with

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    def run(self) -> None:
        """Supervise until SIGTERM, SIGINT or SIGHUP; SIGINT ends in ``KeyboardInterrupt``, as
        it would for one process. Every child has exited when this returns."""
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        self._unblocked = previous
        received = 0
        try:
            self._fork("watcher", self._watch)
            for n in range(1, self.workers + 1):
                self._fork(f"worker {n}", self._serve)
            while True:
                received = signal.sigwait(HANDLED)
                if received != signal.SIGCHLD:
                    break
                self._reap(restart=True)
        finally:
            self._stop_all()
            for sock in self.sockets:
                sock.close()
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if received == signal.SIGINT:
            raise KeyboardInterrupt

    # --- the parent --------------------------------------------------------------------------
    def _fork(self, name: str, run: Callable[[], None], quick_deaths: int = 0) -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's side runs in the child (tested end to end)
            self._child(run)
        self.children[pid] = Child(name, run, time.monotonic(), quick_deaths)

    def _reap(self, *, restart: bool) -> None:
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            child = self.children.pop(pid)
            if not restart:
                continue
            quick = time.monotonic() - child.started < QUICK_DEATH_SECONDS
            deaths = child.quick_deaths + 1 if quick else 0
            what = _exit_description(status)
            if deaths >= MAX_QUICK_DEATHS:
                raise GhaptError(f"{child.name} keeps failing as it starts ({what}); stopping")
            self.report(f"ghapt: {child.name} (pid {pid}) {what}; starting it again")
            if quick:
                time.sleep(1.0)  # signals stay pending meanwhile
            self._fork(child.name, child.run, deaths)

    def _stop_all(self) -> None:
        for pid in self.children:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while self.children and time.monotonic() < deadline:
            self._reap(restart=False)
            if self.children:
                time.sleep(0.02)
        for pid in list(self.children):
            _signal(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            del self.children[pid]

    # --- the children ------------------------------------------------------------------------
    def _child(self, run: Callable[[], None]) -> None:  # pragma: no cover - runs in the child
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._unblocked)
            run()
            code = 0
        except BaseException:  # noqa: BLE001 - whatever happens, the child must end here
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # nothing is left to report it to
                    stream.flush()
            os._exit(code)  # never back into the parent's code

    def _serve(self) -> None:  # pragma: no cover - runs in the child
        from ghapt.bootstrap import Services
        from ghapt.local.runtime import LocalRuntime, reuse_port_twin

        parent = self.runtime.services
        own = LocalRuntime(Services(parent.settings, parent.environ, on_github_call=parent.on_github_call))
        sockets = self.sockets
        if self.reuse_port:
            sockets = [reuse_port_twin(sock) for sock in self.sockets]
            for sock in self.sockets:
                sock.close()  # the parent keeps the port
        server = own.make_server(sockets, share=self.workers)
        signal.signal(signal.SIGTERM, lambda *_: server.stop())
        _stop_when_orphaned(self._pid, server.stop)
        server.run()

    def _watch(self) -> None:  # pragma: no cover - runs in the child
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        for sock in self.sockets:
            sock.close()  # the watcher answers no request
        self.runtime.start_background()
        while not stop.wait(PARENT_CHECK_SECONDS) and os.getppid() == self._pid:
            pass
        if self.runtime.watcher is not None:
            self.runtime.watcher.stop()


def _stop_when_orphaned(parent: int, stop: Callable[[], None]) -> None:
    """Call ``stop`` once ``parent`` is no longer this process's parent (it died)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        stop()

    threading.Thread(target=watch, daemon=True, name="ghapt-parent-check").start()


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _exit_description(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by {name}"
    return f"exited with status {code}"


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
