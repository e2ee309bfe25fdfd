"""The local rebuild queue: a coalescing worker thread for ``ghapt serve``.

Like the SQS FIFO queue in AWS, it makes a burst of events cost one rebuild, never runs two
rebuilds at once, and lets a repeated delivery (same ``X-GitHub-Delivery``, or the same body
under a fresh id) within the dedup window cause no extra work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ghapt.webhook import RecentDeliveries

log = logging.getLogger(__name__)


class LocalQueue:
    """``RebuildQueue`` for ``ghapt serve``: a worker thread runs ``rebuild`` once per burst."""

    def __init__(self, rebuild: Callable[[], Any], recent: RecentDeliveries | None = None) -> None:
        self._rebuild = rebuild
        self._recent = recent or RecentDeliveries()
        self._wake = threading.Condition()
        self._pending = False
        self._running = False
        self._thread: threading.Thread | None = None
        self.runs = 0

    def enqueue(self, reason: str, delivery_id: str, digest: str = "") -> bool:
        with self._wake:
            if not self._recent.add(delivery_id, digest):
                log.info("duplicate delivery ignored", extra={"delivery": delivery_id})
                return False
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True, name="ghapt-rebuild")
                self._thread.start()
            self._wake.notify()
        return True

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                self._pending = False
                self._running = True
            try:
                self._rebuild()
            except Exception:
                log.exception("queued rebuild failed")
            finally:
                with self._wake:
                    self._running = False
                    self.runs += 1
                    self._wake.notify_all()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until no rebuild is pending or running (for tests and shutdown)."""
        with self._wake:
            if not self._wake.wait_for(lambda: not self._pending and not self._running, timeout):
                raise TimeoutError("rebuild queue did not drain")
