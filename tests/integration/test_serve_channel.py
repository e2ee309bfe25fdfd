"""``ghapt serve``'s waitress channels: the loop leaves a channel whose task is sending alone, yet
every response reaches its client whole, past the output high watermark and on a kept-alive
connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from ghapt.local.connections import TaskFlushedChannel
from ghapt.local.runtime import LocalServer

WATERMARK = 16 * 1024 * 1024  # waitress's outbuf_high_watermark


def _channel(**state: Any) -> TaskFlushedChannel:
    channel: TaskFlushedChannel = object.__new__(TaskFlushedChannel)
    defaults = {
        "will_close": False,
        "close_when_flushed": False,
        "total_outbufs_len": 0,
        "requests": [],
        "adj": SimpleNamespace(outbuf_high_watermark=WATERMARK),
    }
    for name, value in {**defaults, **state}.items():
        setattr(channel, name, value)
    return channel


@pytest.mark.parametrize(
    ("state", "writable"),
    [
        ({}, False),  # nothing to send
        ({"total_outbufs_len": 100}, True),  # its task is done: the loop sends the rest
        ({"total_outbufs_len": 100, "requests": ["task"]}, False),  # its task is sending it
        ({"total_outbufs_len": WATERMARK, "requests": ["task"]}, False),
        ({"total_outbufs_len": WATERMARK + 1, "requests": ["task"]}, True),  # the task waits for the loop
        ({"will_close": True, "requests": ["task"]}, True),  # to be closed
        ({"close_when_flushed": True, "total_outbufs_len": 5, "requests": ["task"]}, True),
    ],
)
def test_the_loop_polls_a_channel_for_writing_only_when_its_task_does_not_send_it(
    state: dict[str, Any], writable: bool
) -> None:
    assert bool(_channel(**state).writable()) is writable


App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _serving(app: App) -> tuple[LocalServer, threading.Thread]:
    server = LocalServer(app, "127.0.0.1", 0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server, thread


def _read_response(sock: socket.socket, rest: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """(head, body, what follows) of one response with a Content-Length."""
    data = rest
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the headers"
        data += chunk
    head, _, data = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(x.split(b":", 1)[1]) for x in lines if x.lower().startswith(b"content-length:"))
    parts = [data]
    have = len(data)
    while have < length:
        chunk = sock.recv(1 << 20)
        assert chunk, f"connection closed after {have} of {length} bytes"
        parts.append(chunk)
        have += len(chunk)
    body = b"".join(parts)
    return head, body[:length], body[length:]


BLOCK = 1 << 20
BLOCKS = 24  # 24 MiB: past the high watermark, so the task must wait for the loop to send


def _big(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Length", str(BLOCK * BLOCKS))])
    for i in range(BLOCKS):
        yield bytes([i]) * BLOCK


def test_a_response_past_the_high_watermark_reaches_a_client_that_reads_late_then_the_next_one() -> None:
    server, thread = _serving(_big)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
            sock.sendall(request + request)  # pipelined: the second waits behind the first
            time.sleep(0.5)  # let the output pile up past the watermark before reading any of it
            head, body, rest = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert body == b"".join(bytes([i]) * BLOCK for i in range(BLOCKS))
            head, body, _ = _read_response(sock, rest)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert len(body) == BLOCK * BLOCKS
    finally:
        server.stop()
        thread.join(timeout=10)


def test_every_connection_of_the_server_gets_a_task_flushed_channel() -> None:
    def small(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server, thread = _serving(small)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            _, body, _ = _read_response(sock)
            assert body == b"ok"
            channels = list(server.guard.server.active_channels.values())
            assert channels
            assert all(isinstance(c, TaskFlushedChannel) for c in channels)
    finally:
        server.stop()
        thread.join(timeout=10)


def test_a_small_response_leaves_in_one_send_and_a_large_one_whole() -> None:
    """Headers and a small body go out together once the task ends (one send, one segment);
    a body past ``runtime.COALESCE_BYTES`` is sent by the task as it is written. Both arrive whole,
    also pipelined on one kept-alive connection."""
    big = bytes(range(256)) * 256  # 64 KiB: past what a task leaves to the loop

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = big if environ["PATH_INFO"] == "/big" else b"small body"
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    sends: list[bytes] = []
    real_send = TaskFlushedChannel.send

    def recording(self: TaskFlushedChannel, data: bytes, *args: Any, **kwargs: Any) -> int:
        sends.append(bytes(data))
        return int(real_send(self, data, *args, **kwargs))

    server, thread = _serving(app)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(TaskFlushedChannel, "send", recording)
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
                sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
                head, body, _ = _read_response(sock)
                assert head.startswith(b"HTTP/1.1 200 ") and body == b"small body"
                assert len(sends) == 1 and sends[0].startswith(b"HTTP/1.1 200 ")
                assert sends[0].endswith(b"\r\n\r\nsmall body")
                request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n"
                sock.sendall(request)
                head, body, rest = _read_response(sock)
                assert head.startswith(b"HTTP/1.1 200 ") and body == big
                head, body, _ = _read_response(sock, rest)
                assert head.startswith(b"HTTP/1.1 200 ") and body == b"small body"
    finally:
        server.stop()
        thread.join(timeout=10)
