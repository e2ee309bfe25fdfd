"""POST /token over the local server: an OIDC token in, a ghapt token out, and only that way."""

from __future__ import annotations

from datetime import datetime

import requests

from tests.support.oidcissuer import OidcIssuer
from tests.support.repos import TokenRepo


def test_post_token_with_an_oidc_bearer_returns_the_credential(
    token_repo: TokenRepo, issuer: OidcIssuer
) -> None:
    server, clock = token_repo.server, token_repo.clock
    oidc = issuer.mint(now=clock())
    r = requests.post(f"{server.url}/token", headers={"Authorization": f"Bearer {oidc}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert set(body) == {"login", "password", "expires_at"}
    assert body["login"] == "ghapt-token"
    expires = datetime.fromisoformat(body["expires_at"]).timestamp()
    assert expires == int(clock()) + 6 * 3600
    # As the OIDC login's password too (how apt-style clients send it).
    r = requests.post(f"{server.url}/token", auth=("github-action", oidc), timeout=10)
    assert r.status_code == 200
    assert r.json()["password"] != body["password"]
    # The exchanged credential reads the repository.
    r = requests.get(
        f"{server.url}/dists/stable/InRelease", auth=(body["login"], body["password"]), timeout=10
    )
    assert r.status_code == 200


def test_post_token_refuses_basic_users_exchanged_tokens_and_strangers(
    token_repo: TokenRepo, issuer: OidcIssuer
) -> None:
    server, clock = token_repo.server, token_repo.clock
    r = requests.post(f"{server.url}/token", auth=(TokenRepo.USER, TokenRepo.PASSWORD), timeout=10)
    assert r.status_code == 403
    assert "OIDC" in r.text
    oidc = issuer.mint(now=clock())
    body = requests.post(
        f"{server.url}/token", headers={"Authorization": f"Bearer {oidc}"}, timeout=10
    ).json()
    r = requests.post(f"{server.url}/token", auth=(body["login"], body["password"]), timeout=10)
    assert r.status_code == 403  # a token cannot renew itself
    assert requests.post(f"{server.url}/token", timeout=10).status_code == 401
    foreign = issuer.mint({"repository_owner_id": "1", "repository_owner": "evil"}, now=clock())
    r = requests.post(f"{server.url}/token", headers={"Authorization": f"Bearer {foreign}"}, timeout=10)
    assert r.status_code == 401
    assert (
        requests.get(f"{server.url}/token", auth=(TokenRepo.USER, TokenRepo.PASSWORD), timeout=10).status_code
        == 405
    )
