"""Cold start of the HTTP functions: no X-Ray SDK, and no indexer, on their import path.

The X-Ray SDK costs about 0.2 s of import (it builds a botocore session): only the indexer
loads it. Serving code (metadata, pool, authorizer, public key, webhook, token) must not import
the indexer either. Checked in a fresh interpreter with ``-X importtime``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTTP_FUNCTIONS = ("metadata", "pool", "authorizer", "publickey", "webhook", "token")


def _imported(code: str, cwd: Path) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "ghapt")}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {m.group(1) for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$", proc.stderr, re.M)}


@pytest.mark.parametrize("function", HTTP_FUNCTIONS)
def test_an_http_function_imports_neither_xray_nor_the_indexer(function: str) -> None:
    modules = _imported("import app", ROOT / "functions" / function)
    assert "ghapt.aws.handlers" in modules
    assert not {m for m in modules if m.startswith("aws_xray_sdk")}, "the X-Ray SDK is the indexer's only"
    assert "ghapt.indexer" not in modules
    assert "ghapt.deb.reader" not in modules


def test_serving_a_request_does_not_import_the_indexer(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from ghapt.bootstrap import Services\n"
        "from ghapt.core.settings import Settings\n"
        "s = Services(Settings.from_env({}, backend='github', github_repos=['a/b'], metadata_repo='a/m', "
        "github_token='t'), {})\n"
        "s.branch_cache, s.pool\n"
        "assert 'ghapt.indexer' not in sys.modules, 'serving imported the indexer'\n"
    )
    _imported(code, tmp_path)


def test_the_indexer_still_traces() -> None:
    modules = _imported(
        "import ghapt.aws.handlers as h\nh.indexer_tracer()\n", ROOT / "functions" / "indexer"
    )
    assert {m for m in modules if m.startswith("aws_xray_sdk")}
