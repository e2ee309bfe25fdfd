"""``ghapt serve`` in a subprocess, for tests that need the real server process (its threads,
its memory, its logs) rather than the in-process gateway of ``tests.servers``.

``prelude`` is Python run in the server process before ``ghapt`` starts: tests use it to shrink
``sys.setswitchinterval`` (races show in seconds) or to start a CPU-burning thread.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

# A busy thread in the server process: every request then competes with it for the GIL.
CPU_BURNER = """
import threading
def _burn():
    n = 0
    while True:
        n = (n * 31 + 7) % 1000003
threading.Thread(target=_burn, daemon=True).start()
"""
TINY_SWITCH_INTERVAL = "import sys\nsys.setswitchinterval(1e-6)\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    url: str
    proc: subprocess.Popen[bytes]
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self, field_name: str) -> int:
        """A ``/proc/PID/status`` size field (``VmRSS``, ``VmHWM``) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
        raise KeyError(field_name)

    def lines(self) -> list[str]:
        return list(self.output)


@contextmanager
def ghapt_serve(
    releases: Path,
    state: Path,
    *,
    args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    prelude: str = "",
    ready_path: str = "/public.key",
) -> Iterator[ServeProcess]:
    """Start ``ghapt serve`` on a free port and yield once it answers ``ready_path``."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}
    code = f"{prelude}\nfrom ghapt.cli.main import main\nraise SystemExit(main())\n"
    cmd = [
        sys.executable,
        "-c",
        code,
        "serve",
        "--releases",
        str(releases),
        "--state",
        str(state),
        "--port",
        str(port),
        *args,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**clean, **(env or {})}
    )
    running = ServeProcess(f"http://127.0.0.1:{port}", proc)

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            running.output.append(raw.decode("utf-8", "replace").rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                reader.join(timeout=5)
                raise AssertionError("ghapt serve exited:\n" + "\n".join(running.output))
            try:
                requests.get(running.url + ready_path, timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        "ghapt serve never answered:\n" + "\n".join(running.output)
                    ) from None
                time.sleep(0.05)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=5)
