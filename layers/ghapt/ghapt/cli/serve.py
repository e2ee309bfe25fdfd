"""``ghapt serve``: the local server, rebuilding when the releases change."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ghapt.cli.options import (
    REMOVAL_FLAG,
    SERVE_FLAGS,
    SETTING_FLAGS,
    Subparsers,
    add_settings,
)
from ghapt.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from ghapt.bootstrap import Services

    services = Services(settings, environ)
    from ghapt.local.runtime import run_server  # waitress and the gateway: only when serving

    run_server(services, banner=None)
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("serve", help="serve the repository locally (rebuilds when the releases change)")
    add_settings(p, SETTING_FLAGS)
    add_settings(p, REMOVAL_FLAG)
    add_settings(p, SERVE_FLAGS)
    p.set_defaults(func=run)
