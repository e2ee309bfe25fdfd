"""Keep idle and slow clients from holding every connection of ``ghapt serve``.

waitress stops accepting at its connection limit and closes an idle connection only after
``channel_timeout``, checked every ``cleanup_interval`` (120 s and 30 s by default): so a
client that opens connections and sends nothing, or trickles a request a byte at a time,
locks everyone else out meanwhile. ``ConnectionGuard`` runs in the server's own loop, in place
of waitress's maintenance, and

- closes a connection that has been idle (nothing being answered) for ``timeout`` seconds;
- closes a connection whose request has been arriving for more than ``timeout`` seconds;
- when the server is full, closes the connections idle longest (for at least ``grace``
  seconds, so a client that has just connected gets its request read) to let a new one in.

It also rate-limits waitress's warnings about the task queue and the connection limit,
which otherwise come once per request under load; and ``TaskFlushedChannel`` keeps waitress's
loop from spinning on a channel whose task is sending its own response.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress.channel import HTTPChannel

log = logging.getLogger(__name__)

# waitress's loop wakes at least this often (its select timeout); maintenance runs as often.
CLEANUP_INTERVAL = 1


class ConnectionGuard:
    """Drop idle and slow connections of one waitress server (see the module docstring)."""

    def __init__(
        self,
        server: Any,
        sockets: dict[int, Any],
        timeout: float,
        *,
        grace: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self.sockets = sockets  # the server's socket map (LocalServer owns it): listener + channels
        self.timeout = timeout
        self.grace = min(grace, timeout)
        self.clock = clock
        self.limit = int(server.adj.connection_limit)
        self._receiving: dict[int, tuple[int, float]] = {}  # channel -> (its request, first seen)
        self.closed = {"idle": 0, "slow": 0, "evicted": 0}

    def install(self) -> None:
        """Take over waitress's maintenance and make room when the server is full."""
        readable = self.server.readable

        def guarded_readable() -> bool:
            if self.server.accepting and len(self.sockets) >= self.limit:
                self.make_room(self.clock())
            return bool(readable())

        self.server.maintenance = self.maintenance
        self.server.readable = guarded_readable

    def _channels(self) -> list[Any]:
        return [c for c in list(self.server.active_channels.values()) if not c.will_close]

    def maintenance(self, now: float) -> None:
        """Close idle connections and connections whose request is taking too long to arrive."""
        cutoff = now - self.timeout
        seen: dict[int, tuple[int, float]] = {}
        for channel in self._channels():
            if channel.requests:  # being answered: the application's time, not the client's
                continue
            request = channel.request
            if request is None:
                if channel.last_activity < cutoff:
                    self._close(channel, "idle")
                continue
            key = id(channel)
            mark = self._receiving.get(key)
            started = mark[1] if mark is not None and mark[0] == id(request) else now
            seen[key] = (id(request), started)
            if started < cutoff or channel.last_activity < cutoff:
                self._close(channel, "slow")
                del seen[key]
        self._receiving = seen

    def make_room(self, now: float) -> None:
        """The server is full: close the connections idle longest, so a new client gets in."""
        idle = sorted(
            (c for c in self._channels() if not c.requests and c.request is None),
            key=lambda c: c.last_activity,
        )
        need = len(self.sockets) - self.limit + 1
        for channel in idle[:need]:
            if channel.last_activity > now - self.grace:
                break
            self._close(channel, "evicted")

    def _close(self, channel: Any, why: str) -> None:
        channel.will_close = True  # the server's loop closes it on its next pass
        self.closed[why] += 1


class TaskFlushedChannel(HTTPChannel):  # type: ignore[misc]
    """waitress's channel, left out of the loop's write polling while a task of its own runs.

    A task thread sends its response itself once its output passes waitress's ``send_bytes``
    (``runtime.COALESCE_BYTES``; smaller output is left for the loop), holding the channel's
    output lock meanwhile. waitress's loop counts a channel as writable
    whenever output is pending: while a task is in the middle of a send (the GIL released),
    select says the socket is writable, the loop fails to take the output lock and goes round
    again, taking the GIL back from the sending thread each time; measured under ``ab -c 25``,
    1 to 50 such empty rounds per request, the more the fewer threads. Here the loop flushes a
    channel's output once its tasks are done (a task pulls the loop's trigger as it ends), or
    while one runs only when the output has passed the high watermark (the task then waits for
    the loop to flush); and always when the channel is to be closed."""

    def writable(self) -> bool:
        if self.will_close or self.close_when_flushed:
            return True
        pending = self.total_outbufs_len
        return bool(pending) and (not self.requests or pending > self.adj.outbuf_high_watermark)


class RateLimitFilter(logging.Filter):
    """Let one record per ``interval`` seconds through for each message template that starts
    with one of ``prefixes`` (others always pass); say how many were held back in the next one
    that passes."""

    def __init__(
        self,
        prefixes: tuple[str, ...],
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def holds(self, message: str) -> bool:
        """Whether a record of ``message`` would be held back now (counted as held if so): a
        caller can skip making the record, which costs more than the check."""
        if not message.startswith(self.prefixes):
            return False
        now = self.clock()
        with self._lock:
            last = self._last.get(message)
            if last is None or now - last >= self.interval:
                return False
            self._held[message] = self._held.get(message, 0) + 1
            return True

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        if not key.startswith(self.prefixes):
            return True
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} similar messages in the last {self.interval:g} s not shown)"
        return True


class ThrottledLogger:
    """A logger whose rate-limited warnings are dropped before a record is made.

    waitress warns about its queue depth on every request a busy server queues; the filter
    would hold most of those back anyway, but only after each one's record was built."""

    def __init__(self, logger: logging.Logger, limiter: RateLimitFilter) -> None:
        self.logger = logger
        self.limiter = limiter

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.limiter.holds(str(msg)):
            self.logger.warning(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.logger, name)


_QUIETED = ("waitress.queue", "waitress")
# waitress's messages that come once per request (or per connection) under load.
_NOISY = ("Task queue depth", "total open connections")


def quiet_waitress_warnings(interval: float = 10.0) -> RateLimitFilter:
    """Rate-limit waitress's queue-depth and connection-limit messages (once per process)."""
    for name in _QUIETED:
        existing = next((f for f in logging.getLogger(name).filters if isinstance(f, RateLimitFilter)), None)
        if existing is not None:
            return existing
    limiter = RateLimitFilter(_NOISY, interval)
    for name in _QUIETED:
        logging.getLogger(name).addFilter(limiter)
    return limiter
