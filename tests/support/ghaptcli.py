"""Run the real ``ghapt`` console script in subprocesses, with a clean GHAPT_* environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

GHAPT = str(Path(sys.executable).parent / "ghapt")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}, **(extra or {})}


def run(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GHAPT, *args], input=input, capture_output=True, text=True, timeout=120, env=clean_env(env)
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def background(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """``ghapt ARGS`` running; stdout and stderr merged. Terminated on the way out."""
    proc = subprocess.Popen(
        [GHAPT, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env(env)
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def eventually(check: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    """Wait until ``check()`` holds (an observable condition), failing after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def wait_for_server(url: str, proc: subprocess.Popen[str]) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            requests.get(url, timeout=1)
        except (requests.ConnectionError, requests.Timeout):  # bound, workers still starting
            return False
        return True

    eventually(up, f"{url} answers")
