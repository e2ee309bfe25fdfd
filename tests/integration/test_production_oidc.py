"""The authorizer's JWKS fetch is bounded in total, well under the authorizer's Timeout (10 s).

The discovery document and the JWKS share one budget; each request gets at most ``timeout``
and never more than what is left. A clock that only the test moves stands in for slow
answers; a connection that never answers is cut by a tiny real timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from ghapt.auth.oidc import OidcRules, OidcVerifier, requests_get_json
from ghapt.core.errors import Unauthorized

from tests.support.fakegithub import FakeGitHub
from tests.support.oidcissuer import OWNER_ID, OidcIssuer

AUD = "ghapt-test"
NOW = 1_900_000_000.0
RULES = OidcRules.build(owner_ids=[OWNER_ID])
AUTHORIZER_TIMEOUT = 10.0


class Monotonic:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(clock=lambda: NOW) as running:
        yield running


def test_the_defaults_fit_the_authorizers_timeout() -> None:
    verifier = OidcVerifier("https://issuer.example", AUD, RULES)
    # Worst case: the budget, plus one last request that started just before it ran out and
    # spent its connect, first-byte and body time (each at most ``timeout``).
    assert verifier.budget + 2 * verifier.timeout < AUTHORIZER_TIMEOUT


def test_a_slow_issuer_runs_the_budget_out_and_the_second_fetch_is_cut_short(issuer: OidcIssuer) -> None:
    clock = Monotonic()
    seen: list[tuple[str, float]] = []

    def slow_get(url: str, timeout: float) -> Any:
        seen.append((url.rsplit("/", 1)[-1], timeout))
        clock.now += 3.0  # each answer takes 3 s
        return requests_get_json(url, timeout)

    verifier = OidcVerifier(
        issuer.url, AUD, RULES, http_get=slow_get, clock=lambda: NOW, monotonic=clock, timeout=2.0, budget=4.5
    )
    identity = verifier.verify(issuer.mint())
    assert identity is not None
    assert seen == [("openid-configuration", 2.0), ("jwks", 1.5)]


def test_an_issuer_slower_than_the_budget_is_a_prompt_401(issuer: OidcIssuer) -> None:
    clock = Monotonic()
    calls: list[str] = []

    def very_slow_get(url: str, timeout: float) -> Any:
        calls.append(url)
        clock.now += 5.0
        return requests_get_json(url, timeout)

    verifier = OidcVerifier(
        issuer.url, AUD, RULES, http_get=very_slow_get, clock=lambda: NOW, monotonic=clock, budget=4.5
    )
    with pytest.raises(Unauthorized, match="took longer than"):
        verifier.verify(issuer.mint())
    assert len(calls) == 1, "no request starts once the budget is spent"


def test_a_hanging_connection_is_cut_by_the_timeout() -> None:
    with FakeGitHub() as hanging:
        hanging.hang_next(r"jwks")
        try:
            with pytest.raises(requests.Timeout):
                requests_get_json(f"{hanging.api_url}/.well-known/jwks", 0.2)
        finally:
            hanging.release_hangs()
