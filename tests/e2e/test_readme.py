"""The README is a contract: its two commands, its configuration table, its command list."""

from __future__ import annotations

import re
import subprocess
from dataclasses import fields

from ghapt.cli.main import build_parser
from ghapt.core.settings import Settings

from tests.support.paths import ROOT

README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 3)
    return README[start : end if end != -1 else None]


def test_quick_start_has_exactly_the_two_commands_and_ci_runs_the_test_one() -> None:
    block = re.search(r"```sh\n(.*?)```", _section("Quick start"), re.S)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    targets = subprocess.run(["make", "-C", str(ROOT), "-pn", "help"], capture_output=True, text=True).stdout
    assert re.search(r"^run:", targets, re.M)
    assert re.search(r"^test:", targets, re.M)


def test_every_setting_is_documented_once_in_the_configuration_table() -> None:
    table = _section("Configuration")
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.M)
    envs = [f.metadata["env"] for f in fields(Settings)]
    assert sorted(rows) == sorted(envs)
    for f in fields(Settings):
        row = next(line for line in table.splitlines() if line.startswith(f"| `{f.metadata['env']}` |"))
        assert f.metadata["doc"] in row, f"README row of {f.metadata['env']} is out of date"


def test_every_documented_command_exists() -> None:
    listed = set(re.findall(r"^\| `ghapt (\w[\w-]*)", _section("The `ghapt` command"), re.M))
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices is not None
    assert listed
    assert listed <= set(sub.choices)
