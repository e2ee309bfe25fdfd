"""``ghapt rebuild``: index the releases and commit the signed index in one commit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ghapt.cli.options import (
    KMS_FLAG,
    REMOVAL_FLAG,
    SETTING_FLAGS,
    Subparsers,
    add_settings,
)
from ghapt.core.errors import MassRemovalRefused
from ghapt.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from ghapt.bootstrap import Services
    from ghapt.indexer import RebuildResult

    services = Services(settings, environ)
    progress = _progress_printer()
    try:
        result = services.indexer.rebuild(
            dry_run=args.dry_run, progress=progress, time_budget=args.time_budget, rekey=args.rekey
        )
    except MassRemovalRefused as exc:
        if isinstance(exc.result, RebuildResult):
            print(exc.result.summary())  # what it would add, remove and skip; the reason goes to stderr
        raise
    finally:
        if progress is not None:
            progress("done", {})
    print(result.summary())
    if args.dry_run and result.changed:
        print("dry run: nothing was committed")
    return 0


def _progress_printer() -> Callable[[str, Mapping[str, Any]], None] | None:
    """On a terminal: one updating line while new assets are read (count, bytes); else nothing."""
    if not sys.stderr.isatty():
        return None
    state = {"total": 0, "read": 0, "bytes": 0, "shown": 0}

    def show(kind: str, info: Mapping[str, Any]) -> None:
        if kind == "listed":
            state["total"] = int(info["assets"])
            sys.stderr.write(f"listed {state['total']} assets\n")
        elif kind == "read":
            state["read"] += 1
            state["bytes"] += int(info.get("bytes", 0))
            state["shown"] = 1
            name = str(info.get("asset", ""))[:40]
            sys.stderr.write(
                f"\r\033[Kreading new assets: {state['read']}/{state['total']} "
                f"({state['bytes'] / 1e6:.1f} MB downloaded) {name}"
            )
        elif kind == "done" and state["shown"]:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def register(sub: Subparsers) -> None:
    p = sub.add_parser("rebuild", help="index the releases and commit the signed index (one commit)")
    add_settings(p, SETTING_FLAGS)
    add_settings(p, KMS_FLAG)
    add_settings(p, REMOVAL_FLAG)
    p.add_argument("--dry-run", action="store_true", help="show what would change; commit nothing")
    p.add_argument(
        "--time-budget",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="stop starting new reads after SECONDS and commit what was read; run again to continue",
    )
    p.add_argument(
        "--rekey",
        action="store_true",
        help="sign with this key although the published index is signed by another one "
        "(every client must then be given the new key)",
    )
    p.set_defaults(func=run)


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the time budget must be more than 0 seconds")
    return value
