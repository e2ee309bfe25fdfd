"""Run the benchmarks and print Markdown the README can paste: ``python -m benchmarks.run``.

    python -m benchmarks.run                   # everything (make bench), about 15 minutes on 2 cores
    python -m benchmarks.run --quick           # small inputs, a few minutes
    python -m benchmarks.run --only index      # one: index, memory, github, serving, peers, ...

The results are also written to ``benchmarks/RESULTS.md`` (overwritten each run; ``--output``
picks another file, ``--no-write`` none).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .common import RSS_METHOD, Section, environment

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NAMES = (
    "index",
    "memory",
    "github",
    "serving",
    "peers",
    "serving-peers",
    "serving-scale",
    "scale",
    "concurrent",
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plan(quick: bool, reps: int | None) -> dict[str, Callable[[], Section]]:
    """What each benchmark runs with, full or ``--quick``."""
    from . import (
        concurrent_apt,
        github_calls,
        index_speed,
        memory,
        peers,
        scale,
        serving,
        serving_peers,
        serving_scale,
    )

    r = reps if reps is not None else 3
    return {
        "index": lambda: index_speed.run(n=30 if quick else 300, reps=r, log=_log),
        "memory": lambda: memory.run(size=(100 << 20) if quick else (1 << 30), log=_log),
        "github": lambda: github_calls.run(n=20 if quick else 200, log=_log),
        "serving": lambda: serving.run(
            iterations=300 if quick else 2000,
            first_time=3 if quick else 10,
            sequences=100,
            reps=r,
            import_reps=3 if quick else 5,
            log=_log,
        ),
        "peers": lambda: peers.run(n=30 if quick else 400, big=500 if quick else 10_000, reps=r, log=_log),
        "serving-peers": lambda: serving_peers.run(
            n=30 if quick else 400, requests=1000 if quick else 4000, reps=r, log=_log
        ),
        "serving-scale": lambda: serving_scale.run(
            packages=1000 if quick else 10_000, gets=20, import_reps=3 if quick else 5, log=_log
        ),
        "scale": lambda: scale.run(n=200 if quick else 2000, latency=0.1, log=_log),
        "concurrent": lambda: concurrent_apt.run(clients=5 if quick else 50, log=_log),
    }


def render(sections: list[Section], *, quick: bool, command: str) -> str:
    env = "\n".join(f"| {k} | {v} |" for k, v in environment())
    head = [
        "# ghapt benchmarks",
        "",
        f"Produced by `{command}`{' (quick: small inputs)' if quick else ''}. Every ratio compares "
        "with a reference measured in the same run; wall times are the best of the repetitions "
        "(the peer comparisons, sections 5 and 6: the median). "
        f"Peak RSS: {RSS_METHOD}.",
        "",
        "| Environment | |",
        "|---|---|",
        env,
        "",
        "",
    ]
    return "\n".join(head) + "\n".join(s.markdown() for s in sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small inputs (30 debs, 100 MB, 20 releases, 500 small debs)"
    )
    parser.add_argument("--only", action="append", choices=NAMES, help="run only this benchmark (repeatable)")
    parser.add_argument("--reps", type=int, help="repetitions for timings (default 3)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results file (default {RESULTS.name})")
    parser.add_argument("--no-write", action="store_true", help="print only, write no results file")
    args = parser.parse_args(argv)

    selected = args.only or list(NAMES)
    command = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    command += "".join(f" --only {n}" for n in args.only or ())
    for key, value in environment():
        _log(f"{key}: {value}")
    runners = plan(args.quick, args.reps)
    sections = []
    started = time.perf_counter()
    for name in NAMES:
        if name in selected:
            _log(f"== {name}")
            sections.append(runners[name]())
    text = render(sections, quick=args.quick, command=command)
    text += f"\n_All benchmarks took {time.perf_counter() - started:.0f} s._\n"
    print(text)
    if not args.no_write:
        args.output.write_text(text)
        _log(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
