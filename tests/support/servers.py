"""Run the local API Gateway in-process on a free port, for tests that need a real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ghapt.bootstrap import Services
from ghapt.local.gateway import ApiGateway
from ghapt.local.runtime import LocalServer


@dataclass
class RunningServer:
    url: str
    app: ApiGateway
    log: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of every request, in order."""

    @property
    def services(self) -> Services:
        return self.app.services

    def paths(self, status: int | None = None) -> list[str]:
        return [p for _, p, s in self.log if status is None or s == status]


@contextmanager
def serve(services: Services, *, clock: Callable[[], float] | None = None) -> Iterator[RunningServer]:
    """The local gateway over ``services`` on a free port; ``clock`` drives its policy cache."""
    log: list[tuple[str, str, int]] = []
    if clock is None:
        app = ApiGateway(services, access_log=log)
    else:
        app = ApiGateway(services, access_log=log, clock=clock)
    # The same server `ghapt serve` runs; its stop() closes every socket from inside its own
    # loop, so a test does not wait out waitress's select timeout at teardown.
    server = LocalServer(app, "127.0.0.1", 0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield RunningServer(f"http://127.0.0.1:{server.port}", app, log)
    finally:
        server.stop()
        thread.join(timeout=5)
