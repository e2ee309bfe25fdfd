"""Run the installed ``ghapt`` console script in subprocesses, with no GHAPT_* from the caller."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

GHAPT = str(Path(sys.executable).parent / "ghapt")


def clean_environ() -> dict[str, str]:
    """This process's environment without any GHAPT_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}


def run(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GHAPT, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean_environ(), **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def background(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [GHAPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean_environ(), **(env or {})},
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_for(url: str, proc: subprocess.Popen[str], attempts: int = 200) -> None:
    for _ in range(attempts):
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")
