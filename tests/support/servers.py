"""Run the local API Gateway in-process on a free port, for tests that need a real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import waitress
from ghapt.bootstrap import Services
from ghapt.local.gateway import ApiGateway


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
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4, server_name="127.0.0.1")
    port = server.effective_port
    closing = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError:
            if not closing.is_set():  # closing the sockets under the loop ends it this way
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", app, log)
    finally:
        closing.set()
        server.close()
        thread.join(timeout=5)
