"""Shared pieces: child processes measured with wait4(), Markdown tables, the environment."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Log = Callable[[str], object]
"""Where a benchmark reports progress (``print`` by default)."""

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TIMES = "\u00d7"  # the multiplication sign of ratios


# --- child processes ------------------------------------------------------------------------
@dataclass(frozen=True)
class ChildRun:
    """One finished child process: wall time, CPU time and peak RSS (its own and its children's)."""

    wall: float
    cpu: float
    maxrss_kb: int
    returncode: int
    stderr: str

    @property
    def rss_mb(self) -> float:
        return self.maxrss_kb / 1024


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Python children: the repository on the path (for ``benchmarks``)."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(extra or {})
    return env


# GNU time forks the command from its own small process and reports that child's ru_maxrss.
# Measuring the child of *this* process directly would be wrong: Linux carries the hiwater RSS
# of the mm a process had before exec() (a copy of ours, tens of MB) into its ru_maxrss.
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")
# Without GNU time, a minimal Python does the same; its own few MB then set the floor.
_SPAWN = (
    "import os,sys\n"
    "pid=os.fork()\n"
    "if pid==0:\n    os.execvp(sys.argv[2],sys.argv[2:])\n"
    "_,st,ru=os.wait4(pid,0)\n"
    "open(sys.argv[1],'w').write(str(ru.ru_maxrss)+'\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(st))\n"
)
RSS_METHOD = (
    "GNU time's `%M`, the command's `ru_maxrss`, which covers the processes it waits for"
    if GNU_TIME
    else "`ru_maxrss` from `wait4()` in a minimal Python parent, whose own few MB set the floor"
)


def run_child(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    stdout: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> ChildRun:
    """Run ``cmd`` to completion in a fresh process and measure it.

    Wall time is measured here; CPU time is user+sys of the whole process tree; peak RSS is
    the command's own ``ru_maxrss`` (see ``RSS_METHOD``), the maximum over the command and
    every process it waited for (a perl script forking ``dpkg-deb`` reports its largest
    process, not a sum)."""
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-run-"))
    rss_file = tmp / "rss"
    if GNU_TIME:
        wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd]
    else:
        wrapped = [PYTHON, "-c", _SPAWN, str(rss_file), *cmd]
    try:
        with (
            (tmp / "stderr").open("w+b") as err,
            stdout.open("wb") if stdout is not None else open(os.devnull, "wb") as out,
        ):
            start = time.perf_counter()
            proc = subprocess.Popen(wrapped, cwd=cwd, stdout=out, stderr=err, env=dict(env or os.environ))
            _pid, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
        lines = rss_file.read_text().split() if rss_file.exists() else []
        maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    run = ChildRun(wall, usage.ru_utime + usage.ru_stime, maxrss, proc.returncode, stderr)
    if check and run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {run.returncode}:\n{stderr[-2000:]}")
    return run


def python_module(module: str, *args: str) -> list[str]:
    return [PYTHON, "-m", module, *args]


# --- results ----------------------------------------------------------------------------------
@dataclass
class Section:
    """One benchmark's result: a title, what was measured, one Markdown table and notes."""

    key: str
    title: str
    intro: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # raw numbers, for tests and follow-ups
    seconds: float = 0.0

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        if self.intro:
            parts += [*self.intro, ""]
        if self.headers:
            parts.append(table(self.headers, self.rows))
            parts.append("")
        parts += [f"- {n}" for n in self.notes]
        if self.notes:
            parts.append("")
        parts.append(f"_Benchmark took {self.seconds:.0f} s._")
        return "\n".join(parts) + "\n"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; numeric-looking columns are right-aligned."""
    numeric = [
        all(
            re.fullmatch(r"[-+]?[\d.,]+\s*[\u00d7%a-zA-Z\u00b5]*|\u2014|n/a", str(r[i]).strip()) for r in rows
        )
        if rows
        else False
        for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def ratio(value: float, reference: float) -> str:
    if reference <= 0:
        return "n/a"
    r = value / reference
    if 0 < r < 0.01:
        return f"{r:.4f}{TIMES}"
    return f"{r:.2f}{TIMES}" if r < 100 else f"{r:.0f}{TIMES}"


def secs(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def mb(value: float) -> str:
    return f"{value:.1f}"


def micros(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:.0f} µs" if us < 10_000 else f"{us / 1000:.1f} ms"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


# --- Packages files ---------------------------------------------------------------------------
def stanzas(text: bytes) -> list[bytes]:
    """The stanzas of a Packages file, each without its trailing blank line."""
    return [s.strip(b"\n") for s in re.split(rb"\n\s*\n", text) if s.strip()]


def stanza_fields(stanza: bytes) -> dict[str, str]:
    """Field -> first-line value (continuation lines dropped)."""
    out = {}
    for line in stanza.decode("utf-8", "surrogateescape").split("\n"):
        if line and line[0] not in " \t" and ":" in line:
            name, _, value = line.partition(":")
            out[name] = value.strip()
    return out


def package_set(text: bytes) -> set[tuple[str, str, str, str, str]]:
    """(Package, Version, Architecture, Size, SHA256) of every stanza: what every tool must agree on."""
    found = set()
    for s in stanzas(text):
        f = stanza_fields(s)
        found.add((f["Package"], f["Version"], f["Architecture"], f.get("Size", ""), f.get("SHA256", "")))
    return found


# --- environment ------------------------------------------------------------------------------
def _first_line(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _git_revision() -> str:
    rev = _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    status = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "layers"],
        capture_output=True,
        text=True,
        check=False,
    )
    return rev + (" + uncommitted changes in layers/" if status.stdout.strip() else "")


def environment() -> list[tuple[str, str]]:
    """What the figures depend on, printed above every run."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        ("CPU", f"{_cpu_model()} — {os.cpu_count()} logical CPUs ({affinity} usable)"),
        ("Memory", _mem_total()),
        ("OS", f"{_os_name()}, Linux {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()} ({PYTHON})"),
        ("apt-ftparchive", _first_line(["apt-ftparchive", "--version"])),
        ("dpkg-scanpackages", _first_line(["dpkg-scanpackages", "--version"])),
        ("dpkg-deb", _first_line(["dpkg-deb", "--version"])),
        ("Peers", _peer_versions()),
        ("ghapt", f"git {_git_revision()}"),
        ("Date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("Load average at start", _load()),
    ]


def _peer_versions() -> str:
    """The tools of the peer comparisons (benchmarks 5 and 6), or which are missing."""
    found = [
        _first_line(["reprepro", "--version"]).replace("reprepro: This is ", ""),
        _first_line(["aptly", "version"]).replace(" version:", ""),
        _first_line(["nginx", "-v"]).replace("nginx version: ", ""),
        _first_line(["ab", "-V"]).replace("This is ApacheBench, ", "ab ").replace(" <$Revision$>", ""),
        _first_line(["gpg", "--version"]),
    ]
    return ", ".join(found)


def _load() -> str:
    """Other work on the machine skews every figure; the ratios, measured side by side, less so."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except (OSError, ValueError):
        pass
    return "unknown"
