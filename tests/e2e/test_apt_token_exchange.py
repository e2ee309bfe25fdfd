"""The real apt-get keeps working with the exchanged token after the OIDC token has expired."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import requests
from ghapt.cli.clientconfig import auth_entry

from tests.support.aptclient import AptClient
from tests.support.oidcissuer import OidcIssuer
from tests.support.repos import TokenRepo


@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_apt_works_with_the_exchanged_token_after_the_oidc_token_expired(
    token_repo: TokenRepo, issuer: OidcIssuer, tmp_path: Path
) -> None:
    server, clock, key, deb = token_repo.server, token_repo.clock, token_repo.key, token_repo.deb
    oidc = issuer.mint(now=clock())
    r = requests.post(f"{server.url}/token", headers={"Authorization": f"Bearer {oidc}"}, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()

    # Ten minutes later: the OIDC token (5 minutes + 60 s leeway) is dead, the cache too.
    clock.now += 600
    oidc_only = AptClient(tmp_path / "apt-oidc")
    oidc_only.add_source(server.url, "stable", key)
    oidc_only.set_auth(auth_entry(server.url, "github-action", oidc))
    res = oidc_only.run("update")
    assert re.search(r"\b401\s+Unauthorized", res.output), res.output

    apt = AptClient(tmp_path / "apt")
    apt.add_source(server.url, "stable", key)
    apt.set_auth(auth_entry(server.url, body["login"], body["password"]))
    res = apt.run("update")
    assert res.returncode == 0, res.output
    assert not re.search(r"\b401\s+Unauthorized", res.output), res.output  # not the port's digits
    res = apt.run("download", "hello-ghapt")
    assert res.returncode == 0, res.output
    got = next((apt.root / "downloads").glob("hello-ghapt_1.0-1_all.deb"))
    assert got.read_bytes() == deb.read_bytes()
    assert any(p.startswith("/pool/") for p in server.paths(302))

    # Past its expiry the exchanged token is refused too.
    clock.now += 6 * 3600
    res = apt.run("update")
    assert re.search(r"\b401\s+Unauthorized", res.output), res.output
