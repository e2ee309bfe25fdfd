"""`ghapt client-config --oidc --install` into a temp root, then the real apt-get through the OIDC
path of the local server (a real local issuer publishes the JWKS)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from tests.support.aptclient import AptClient
from tests.support.cli import run
from tests.support.oidcissuer import OidcIssuer
from tests.support.repos import ServedRepo

pytestmark = [pytest.mark.apt, pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")]


@pytest.fixture
def oidc_audience() -> str:
    return "ghapt-client-config"


@pytest.mark.parametrize("token_via", ["flag", "env"])
def test_client_config_oidc_install_then_real_apt_update(
    tmp_path: Path, token_via: str, issuer: OidcIssuer, oidc_repo: ServedRepo
) -> None:
    server = oidc_repo.server
    token = issuer.mint()
    root = tmp_path / "client"
    args = ["client-config", "--url", server.url, "--oidc", "--install", "--root", str(root)]
    res = run(*args, "--token", token) if token_via == "flag" else run(*args, env={"GHAPT_OIDC_TOKEN": token})
    assert res.returncode == 0, res.stderr
    assert token not in res.stdout + res.stderr, "the token is never echoed"
    auth = root / "etc/apt/auth.conf.d/ghapt.conf"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert auth.read_text() == f"machine {server.url} login github-action password {token}\n"
    sources = root / "etc/apt/sources.list.d/ghapt.sources"
    key = root / "etc/apt/keyrings/ghapt.asc"
    sources.write_text(sources.read_text().replace("/etc/apt/keyrings/ghapt.asc", str(key)))
    apt = AptClient(root)
    result = apt.run("update")
    assert result.returncode == 0, result.output
    assert "hello-ghapt" in apt.cache("policy", "hello-ghapt").output
    # A token of another owner, installed the same way, is refused.
    foreign = issuer.mint({"repository_owner_id": "999999", "repository_owner": "intruder"})
    assert run(*args, "--token", foreign).returncode == 0
    shutil.rmtree(root / "var/lib/apt/lists")
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    denied = apt.run("update")
    assert "401" in denied.output, denied.output
