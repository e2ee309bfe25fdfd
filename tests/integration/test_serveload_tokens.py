"""``POST /token`` under concurrency: Basic, OIDC and exchanged-token requests interleaved on
the real local server never get each other's tokens (the GIL switching every microsecond)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings

from tests.support.debbuild import build_deb
from tests.support.oidcissuer import OWNER_ID, OidcIssuer
from tests.support.servers import serve

AUD = "https://apt.crosstalk.example"
PASSWORD = "basic-user-pass"
REPOS = [f"octo-org/repo-{i}" for i in range(8)]
ROUNDS = 40


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(audience=AUD) as iss:
        yield iss


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_interleaved_token_requests_never_get_each_others_tokens(
    tmp_path: Path, issuer: OidcIssuer, tiny_switch_interval: None
) -> None:
    releases, state = tmp_path / "releases", tmp_path / "state"
    build_deb(releases / "v1.0", "hello-ghapt", "1.0-1", "all")
    UserFile(state / "users.json").add("alice", PASSWORD)
    settings = Settings.from_env(
        {},
        releases_dir=releases,
        state_dir=state,
        architectures="amd64",
        oidc_issuer=issuer.url,
        oidc_audience=AUD,
        oidc_owner_ids=OWNER_ID,
    )
    services = Services(settings, {})
    services.indexer.rebuild()
    tokens = services.tokens
    assert tokens is not None
    oidc = {
        repo: issuer.mint({"repository": repo, "repository_id": str(1000 + i)})
        for i, repo in enumerate(REPOS)
    }
    with serve(services) as server:
        exchanged = requests.post(
            f"{server.url}/token", headers={"Authorization": f"Bearer {oidc[REPOS[0]]}"}, timeout=30
        ).json()
        jobs: list[tuple[str, dict[str, str] | tuple[str, str]]] = []
        for _ in range(ROUNDS):
            jobs.append(("basic", ("alice", PASSWORD)))
            jobs.extend((repo, {"Authorization": f"Bearer {oidc[repo]}"}) for repo in REPOS)
            jobs.append(("exchanged", (exchanged["login"], exchanged["password"])))
        wrong: list[str] = []

        def post(job: tuple[str, dict[str, str] | tuple[str, str]]) -> None:
            who, cred = job
            if isinstance(cred, dict):
                r = requests.post(f"{server.url}/token", headers=cred, timeout=60)
            else:
                r = requests.post(f"{server.url}/token", auth=cred, timeout=60)
            if who in ("basic", "exchanged"):
                if r.status_code != 403:
                    wrong.append(f"{who} got {r.status_code}: {r.text[:80]}")
                return
            if r.status_code != 200:
                wrong.append(f"{who} got {r.status_code}: {r.text[:80]}")
                return
            claims = tokens.verify(r.json()["password"])
            if claims["repository"] != who:
                wrong.append(f"{who} got a token for {claims['repository']}")

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(post, jobs))
        assert not wrong, f"{len(wrong)} of {len(jobs)}: {wrong[:5]}"
