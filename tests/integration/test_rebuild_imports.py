"""``ghapt rebuild`` loads only what a rebuild uses: every module is start-up time on every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ghapt.signing import localkey

from tests.support.debbuild import build_deb

# Loaded by other commands or other paths, never needed to index a folder and sign the index.
NOT_FOR_A_REBUILD = (
    "requests",  # doctor, GitHub
    "waitress",  # serve
    "multiprocessing",  # only for 64 or more new local .debs
    "tempfile",  # writing key and user files
    "getpass",  # typing a secret in
    "html.entities",  # html.escape's module
    "cryptography.hazmat.primitives.serialization",  # making a key, not loading one
    "ghapt.local.signedurls",  # the local server's asset URLs
    "ghapt.serving",
    "tarfile",
    "shutil",  # argparse's help formatter asks it for the terminal width; ours asks os
    "subprocess",  # git, only for repositories whose refs git must move
)


def test_a_rebuild_loads_none_of_the_modules_it_does_not_use(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    build_deb(releases / "v1", "imports-a", "1.0-1", "amd64")
    build_deb(releases / "v2", "imports-b", "2.0-1", "all")
    probe = (
        "import sys\nfrom ghapt.cli.main import main\n"
        f"code = main(['rebuild', '--releases', {str(releases)!r}, '--state', {str(tmp_path / 'state')!r},"
        " '--architectures', 'amd64'])\n"
        "print(code, sorted(sys.modules))"
    )
    # A first run makes the signing key (that is when key-making modules load); time the second.
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    code, loaded = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert code == "0"
    assert "'ghapt.indexer'" in loaded and "'ghapt.signing.localkey'" in loaded
    for module in NOT_FOR_A_REBUILD:
        assert f"'{module}'" not in loaded, module


def test_the_key_loader_is_cryptographys_own_with_or_without_the_binding_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cryptography.hazmat.bindings._rust import openssl as rust_openssl
    from cryptography.hazmat.primitives import serialization

    assert localkey._pem_loader() is serialization.load_pem_private_key
    monkeypatch.delattr(rust_openssl, "keys")  # a release that moved it: the public import serves
    assert localkey._pem_loader() is serialization.load_pem_private_key
