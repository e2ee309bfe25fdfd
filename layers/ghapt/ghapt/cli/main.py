"""The ``ghapt`` command: rebuild, serve, list, users, keys, client-config, doctor, demo.

Every option is also an environment variable (the same ``Settings`` the Lambda functions
read), so a flag is only an override: ``--state DIR`` is ``GHAPT_STATE_DIR=DIR``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from ghapt import __version__
from ghapt.cli.options import load_settings
from ghapt.core.errors import ConfigError, GhaptError

log = logging.getLogger("ghapt")


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, told the terminal width: argparse makes one for every option
    it adds, and without a width each imports shutil (5 ms a rebuild needs nowhere else)."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        width = _terminal_columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: ``COLUMNS``, else the terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` using ``_Formatter``; sub-commands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ghapt",
        description="A private, signed APT repository whose .deb files live as GitHub Release assets.",
        epilog="Every settings option is also an environment variable (--state DIR is GHAPT_STATE_DIR=DIR); "
        "`ghapt COMMAND --help` describes each one with its default.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action="version", version=f"ghapt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS.values() if only is None else (COMMANDS[only],):
        importlib.import_module(f"ghapt.cli.{name}").register(sub)
    return parser


# Command -> module, in the order `ghapt --help` lists them.
COMMANDS = {
    "rebuild": "rebuild",
    "serve": "serve",
    "list": "listing",
    "users": "users",
    "keys": "keys",
    "client-config": "clientconfig",
    "doctor": "doctor",
    "demo": "demo",
}


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named by ``argv`` when nothing before it needs the whole parser."""
    first = next((a for a in argv if not a.startswith("-")), None)
    before = argv[: argv.index(first)] if first is not None else argv
    if first in COMMANDS and all(a in ("-v", "--verbose") for a in before):
        return first
    return None


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `ghapt rebuild ...` imports the rebuild command only (a rebuild is timed against peers that
    # start in milliseconds); `ghapt --help` and anything unusual get the whole parser.
    args = build_parser(_command_in(argv)).parse_args(argv)
    env = os.environ if environ is None else environ
    # The handlers log JSON and emit EMF metrics for CloudWatch; on a terminal, only warnings matter.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "DEBUG" if args.verbose else "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        settings = load_settings(args, env)
        return int(args.func(args, settings, env))
    except ConfigError as exc:
        print(f"ghapt: configuration error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except GhaptError as exc:
        print(f"ghapt: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # no traceback, ever: one line, and the details with --verbose
        log.debug("unexpected error", exc_info=True)
        print(f"ghapt: unexpected error: {_one_line(_describe(exc))}", file=sys.stderr)
        return 1


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _one_line(text: str) -> str:
    """One printable line, whatever the message holds (newlines, undecodable file names)."""
    return os.fsencode(" ".join(text.split())).decode("utf-8", "backslashreplace")


# Commands whose process may end without the interpreter's teardown once ``main`` returned.
QUICK_EXIT = frozenset({"rebuild"})


def entry() -> NoReturn:
    """The ``ghapt`` console script: ``main``, then the exit.

    After a ``rebuild`` everything is written and closed (files, the metadata commit, worker
    processes and threads), so the process leaves at once: the interpreter's teardown (freeing
    every object and module, a last garbage collection) took 30 to 60 ms, a tenth of an
    incremental rebuild. Output is flushed first; other commands (``serve`` and its workers)
    exit normally."""
    argv = sys.argv[1:]
    code = main(argv)
    if _command_in(argv) not in QUICK_EXIT:
        sys.exit(code)
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. a closed pipe: the output is lost, so is success
        code = code or 1
    os._exit(code)


if __name__ == "__main__":
    entry()
