"""The real apt-get through the OIDC path: a GitHub-Actions-like token as the password of the
OIDC login in auth.conf.d, verified against a real local issuer (discovery + JWKS over HTTP)."""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from pathlib import Path

import pytest
import requests
from ghapt.cli.clientconfig import auth_entry

from tests.support.aptclient import AptClient
from tests.support.oidcissuer import OWNER, OWNER_ID, REPOSITORY, OidcIssuer
from tests.support.repos import ServedRepo
from tests.support.servers import RunningServer

LOGIN = "github-action"


@pytest.fixture
def oidc_rules() -> dict[str, str]:
    return {"oidc_owner_ids": OWNER_ID, "oidc_repositories": REPOSITORY}


def _apt(tmp_path: Path, server: RunningServer, key: Path, token: str) -> AptClient:
    apt = AptClient(tmp_path / "apt")
    apt.add_source(server.url, "stable", key)
    entry = apt.set_auth(auth_entry(server.url, LOGIN, token))
    assert entry.read_text().startswith(f"machine {server.url} login {LOGIN} password ey")
    return apt


@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_apt_update_and_download_with_an_oidc_token(
    oidc_repo: ServedRepo, issuer: OidcIssuer, tmp_path: Path
) -> None:
    server, key, deb = oidc_repo.server, oidc_repo.key, oidc_repo.deb
    apt = _apt(tmp_path, server, key, issuer.mint())
    res = apt.run("update")
    assert res.returncode == 0, res.output
    assert "NO_PUBKEY" not in res.output
    assert not re.search(r"\b401\s+Unauthorized", res.output), res.output  # not the port's digits
    assert any(p.endswith("/dists/stable/InRelease") for p in server.paths(200))
    res = apt.run("download", "hello-ghapt")
    assert res.returncode == 0, res.output
    got = next((apt.root / "downloads").glob("hello-ghapt_1.0-1_all.deb"))
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(deb.read_bytes()).digest()
    assert any(p.startswith("/pool/main/h/hello-ghapt/") for p in server.paths(302)), server.log
    assert any(p.startswith("/_assets/v1.0/") for p in server.paths(200)), server.log


FOREIGN = {
    "repository_owner": "evil-org",
    "repository_owner_id": "66600000",
    "repository": "evil-org/octo-repo",
    "repository_id": "66600001",
}


def _bad_tokens(issuer: OidcIssuer) -> dict[str, str]:
    return {
        "foreign owner": issuer.mint(FOREIGN),
        "expired": issuer.mint(now=time.time() - 3600),
        "github default audience": issuer.mint({"aud": f"https://github.com/{OWNER}"}),
    }


@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
@pytest.mark.parametrize("which", ["foreign owner", "expired", "github default audience"])
def test_apt_with_a_bad_oidc_token_fails_with_401(
    oidc_repo: ServedRepo, issuer: OidcIssuer, tmp_path: Path, which: str
) -> None:
    server, key = oidc_repo.server, oidc_repo.key
    apt = _apt(tmp_path, server, key, _bad_tokens(issuer)[which])
    res = apt.run("update")
    assert re.search(r"\b401\s+Unauthorized", res.output), res.output
    assert not any(p.endswith("InRelease") for p in server.paths(200)), server.log
    assert any(status == 401 for _, _, status in server.log)


def test_bearer_token_reads_dists_over_http(oidc_repo: ServedRepo, issuer: OidcIssuer) -> None:
    server = oidc_repo.server
    url = f"{server.url}/dists/stable/InRelease"
    r = requests.get(url, headers={"Authorization": f"Bearer {issuer.mint()}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    # The same token as the OIDC login's Basic password.
    assert requests.get(url, auth=(LOGIN, issuer.mint()), timeout=10).status_code == 200
    for name, token in _bad_tokens(issuer).items():
        r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 401, name
        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert b"PGP" not in r.content
    # A token signed by a key the issuer never published.
    forged = issuer.mint(key=issuer.foreign_key())
    assert requests.get(url, headers={"Authorization": f"Bearer {forged}"}, timeout=10).status_code == 401
