"""Help that explains itself: every option of every command (walking the argparse tree) has a
description; settings options show the setting's description, default and environment
variable; every command has a one-line summary in ``ghapt --help``; ``ghapt --version``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
from ghapt.cli.main import build_parser
from ghapt.core.settings import Settings, reference

ROOT = Path(__file__).resolve().parents[2]
GHAPT = str(Path(sys.executable).parent / "ghapt")
ENV_OF = {f.name: f.metadata["env"] for f in fields(Settings)}
DOC_OF = {env: doc for env, _, doc in reference()}
DEFAULT_OF = {env: default for env, default, _ in reference()}


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:  # type: ignore[type-arg]
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for sub in _subparsers(parser):
        for name, child in sub.choices.items():
            yield from _walk(child, (*path, name))


COMMANDS = list(_walk(build_parser()))


def test_the_tree_has_every_command() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"rebuild", "serve", "list", "users add", "keys", "client-config", "doctor", "demo"} <= names


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) or "ghapt" for p, _ in COMMANDS])
def test_every_option_and_argument_has_a_description(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"ghapt {' '.join(path)} {name} has no help"
        assert not action.help.startswith("(env "), f"ghapt {' '.join(path)} {name}: only an env name"
        env = ENV_OF.get(action.dest)
        # Settings options (add_settings) default to None: unset means "from the environment".
        if env is not None and action.option_strings and action.default is None:
            # A settings option: the setting's own description, its default (if any) and its variable.
            shown = action.help % {}  # argparse's own %-formatting, as --help prints it
            assert DOC_OF[env] in shown, name
            assert f"env {env}" in shown, name
            if DEFAULT_OF[env]:
                assert f"default: {DEFAULT_OF[env]}" in shown, name
    # argparse renders it without error.
    assert parser.format_help()


def test_every_command_has_a_one_line_summary_in_the_top_level_help() -> None:
    (sub,) = _subparsers(build_parser())
    summaries = {a.dest: a.help for a in sub._choices_actions}
    assert set(summaries) == set(sub.choices)
    for name, text in summaries.items():
        assert text and "\n" not in text and len(text) < 100, name
    out = subprocess.run([GHAPT, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for name in sub.choices:
        assert name in out.stdout


def test_settings_help_prints_description_default_and_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}
    out = subprocess.run([GHAPT, "rebuild", "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())  # argparse wraps lines
    assert "Suite that stable releases feed. (default: stable; env GHAPT_SUITE)" in text
    assert "(default: amd64 arm64; env GHAPT_ARCHITECTURES)" in text
    assert (
        "Local backend: a folder with one sub-folder of .deb files per tag. (env GHAPT_RELEASES_DIR)" in text
    )


def test_version_matches_the_package() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = subprocess.run([GHAPT, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.strip() == f"ghapt {version}"


def test_one_command_loads_only_its_own_module_and_parses_as_the_whole_parser_does() -> None:
    """`ghapt rebuild ...` does not import the other commands (doctor's requests, serve's waitress)."""
    from ghapt.cli.main import COMMANDS as NAMES
    from ghapt.cli.main import _command_in

    assert set(NAMES) == {name for name, _ in _subparsers(build_parser())[0].choices.items()}
    for command in NAMES:
        alone = _subparsers(build_parser(command))[0].choices[command]
        whole = _subparsers(build_parser())[0].choices[command]
        assert alone.format_help() == whole.format_help(), command
    assert _command_in(["rebuild", "--dry-run"]) == "rebuild"
    assert _command_in(["-v", "list", "--json"]) == "list"
    assert _command_in(["--version"]) is None
    assert _command_in(["--help"]) is None
    assert _command_in(["nonsense"]) is None
    probe = (
        "import sys; from ghapt.cli.main import main\n"
        "try:\n    main(['rebuild', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('ghapt.cli.', 'requests', 'waitress'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = done.stdout.strip().splitlines()[-1]
    assert "ghapt.cli.rebuild" in loaded
    for other in ("ghapt.cli.doctor", "ghapt.cli.serve", "ghapt.cli.demo", "requests", "waitress"):
        assert f"'{other}" not in loaded, loaded


@pytest.mark.parametrize("columns", ["60", "100", "200"])
def test_the_help_is_what_argparse_formats_at_the_same_width(
    monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    """The CLI's formatter only spares argparse its shutil import: the help text is argparse's own."""
    import argparse

    import ghapt.cli.main

    monkeypatch.setenv("COLUMNS", columns)
    ours = build_parser()
    monkeypatch.setattr(ghapt.cli.main, "_Formatter", argparse.HelpFormatter)
    theirs = build_parser()
    assert ours.format_help() == theirs.format_help()
    for name, sub in _subparsers(ours)[0].choices.items():
        assert sub.format_help() == _subparsers(theirs)[0].choices[name].format_help(), name
