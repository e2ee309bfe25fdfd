"""``ghapt serve``'s runtime: the HTTP server, the folder watcher and the reconcile loop."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghapt.core.errors import ConfigError, GhaptError

if TYPE_CHECKING:
    from ghapt.bootstrap import Services


class LocalServer:
    """waitress in front of a WSGI app, on its own socket map so it can be stopped at once.

    ``stop`` runs inside the server's own loop (through its trigger) and closes every socket,
    so the loop ends immediately instead of waiting out its select timeout. Idle and slow
    connections are dropped by ``ConnectionGuard`` before they can fill ``connection_limit``;
    bodies larger than any route takes are refused by waitress before they are read."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        threads: int = 8,
        connection_limit: int = 500,
        channel_timeout: float = 30.0,
    ) -> None:
        import math

        import waitress

        from ghapt.local.connections import CLEANUP_INTERVAL, ConnectionGuard, quiet_waitress_warnings
        from ghapt.local.gateway import MAX_BODY

        quiet_waitress_warnings()
        self._map: dict[int, Any] = {}
        self._server: Any = waitress.create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            ident="ghapt",
            server_name=f"[{host}]" if ":" in host else host,
            connection_limit=connection_limit,
            channel_timeout=max(1, math.ceil(channel_timeout)),
            cleanup_interval=CLEANUP_INTERVAL,
            max_request_body_size=MAX_BODY,
        )
        self.guard = ConnectionGuard(self._server, channel_timeout)
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

        self._server.pull_trigger(lambda: close_all(self._map, ignore_all=True))


def run_server(services: Services, banner: str | None, ready: Callable[[], None] | None = None) -> None:
    """Rebuild if needed, watch the release folder, and serve until interrupted."""
    from ghapt.local.gateway import ApiGateway

    settings = services.settings
    if not settings.public_url and settings.host in ("", "0.0.0.0", "::"):  # noqa: S104 - a check
        raise ConfigError(
            f"--host {settings.host or '(all)'} listens on every address: set --public-url "
            "(GHAPT_PUBLIC_URL) to the URL clients use; redirects are built from it, never from a "
            "request's Host header"
        )
    lock = threading.Lock()

    def rebuild() -> None:
        with lock:
            result = services.rebuild_now()
            if result.changed:
                print(f"rebuilt: {result.summary().splitlines()[0]} ({result.commit})", flush=True)

    rebuild()
    if settings.backend == "local":
        threading.Thread(target=_watch, args=(services, rebuild), daemon=True, name="ghapt-watch").start()
    else:
        threading.Thread(target=_reconcile, args=(services,), daemon=True, name="ghapt-reconcile").start()
    try:
        server = LocalServer(
            ApiGateway(services),
            settings.host,
            settings.port,
            threads=settings.threads,
            connection_limit=settings.connection_limit,
            channel_timeout=settings.channel_timeout,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}; "
            "pick another --port (GHAPT_PORT)"
        ) from None
    if banner:
        print(banner, flush=True)
    print(f"ghapt serving on http://{settings.host}:{settings.port} (Ctrl-C stops)", flush=True)
    if ready:
        ready()
    server.run()


def _watch(services: Services, rebuild: Callable[[], None]) -> None:
    """Poll the release folder; any change (new, removed or rewritten file) triggers a rebuild."""
    settings = services.settings
    last = _folder_state(settings.releases_dir)
    while True:
        time.sleep(settings.poll_seconds)
        now = _folder_state(settings.releases_dir)
        if now != last:
            time.sleep(min(settings.poll_seconds, 1.0))  # let a copy in progress finish
            now = _folder_state(settings.releases_dir)
            try:
                rebuild()
                last = now
            except GhaptError as exc:
                print(f"rebuild failed: {exc}", file=sys.stderr, flush=True)


def _reconcile(services: Services) -> None:
    """GitHub does not redeliver webhooks: rebuild on a schedule through the same local queue."""
    n = 0
    while True:
        time.sleep(services.settings.reconcile_seconds)
        n += 1
        services.queue.enqueue("scheduled reconcile", f"reconcile-{n}")


def _folder_state(root: Path | None) -> tuple[tuple[str, int, int], ...]:
    if root is None or not root.is_dir():
        return ()
    out = []
    for path in sorted(root.glob("*/*.deb")):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)
