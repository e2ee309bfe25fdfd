"""Shared pytest wiring.

The suite has four tiers, one directory each; every test is marked with its tier, so
``pytest -m unit`` (or ``-m "not e2e"``) picks a tier:

- ``unit/``: the domain and single adapters in-process, with in-memory fakes (real local tools
  such as dpkg-deb, git and gpgv serve as builders and oracles);
- ``contract/``: one suite per port (MetadataStore, ReleaseSource, Signer) run over every adapter;
- ``integration/``: adapters against stand-ins: the local server, the fake GitHub, the local
  OIDC issuer, moto;
- ``e2e/``: the real apt-get, the console script, the SAM events, README, template and workflows.

Helpers live in ``tests/support/``; fixtures used by more than one tier live here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from ghapt.authorizer import Authenticator, settings_authenticator
from ghapt.oidc import OidcRules, OidcVerifier
from ghapt.services import Services
from ghapt.settings import Settings
from ghapt.tokens import KEY_FILE as TOKEN_KEY_FILE
from ghapt.tokens import TokenService, file_key
from ghapt.users import UserFile

from tests.support.clock import Clock
from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub
from tests.support.oidcissuer import AUDIENCE, OWNER_ID, OidcIssuer
from tests.support.repos import LocalRepo, ServedRepo, TokenRepo
from tests.support.servers import serve

TIERS = ("unit", "contract", "integration", "e2e")
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier (the directory it lives in); a test outside the tiers is an error."""
    for item in items:
        tier = item.path.resolve().relative_to(_TESTS).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(tier)


@pytest.fixture(autouse=True)
def _environment_is_restored() -> Iterator[None]:
    """Each test starts from the same os.environ. Code run in-process can set variables for good:
    ``ghapt.cli.main`` sets POWERTOOLS_LOG_LEVEL=WARNING, which silenced the INFO logs of every
    Powertools Logger created later in the same worker (an order-dependent failure)."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(autouse=True)
def _ghapt_logs_reach_caplog() -> Iterator[None]:
    """Powertools' Logger (created when ghapt.handlers is imported) stops propagation on the
    "ghapt" logger and sets its level; let records reach the root (and caplog's level) again,
    so caplog sees them in every test order."""
    logger = logging.getLogger("ghapt")
    before = logger.propagate, logger.level
    logger.propagate, logger.level = True, logging.NOTSET
    yield
    logger.propagate, logger.level = before


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for every AWS call, with fake credentials and a region, and Powertools' cached
    secrets cleared on the way in and out (they would outlive the mock)."""
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
    ):
        monkeypatch.setenv(name, value)
    with mock_aws():
        parameters.clear_caches()
        yield
        parameters.clear_caches()


# --- GitHub -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def github_app_pem() -> str:
    """A GitHub App's private key, as GitHub hands it out (PKCS#8 PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# --- the fake GitHub ------------------------------------------------------------------------------
@pytest.fixture
def gh_clock() -> Callable[[], float]:
    """The clock the ``gh`` fake runs on; override it to share a hand-moved ``Clock``."""
    return time.time


@pytest.fixture
def gh_repos() -> tuple[str, ...]:
    """The repositories the ``gh`` fake starts with; override it per module."""
    return ()


@pytest.fixture
def gh(gh_clock: Callable[[], float], gh_repos: tuple[str, ...]) -> Iterator[FakeGitHub]:
    """The fake GitHub (API and storage host on 127.0.0.1), started with ``gh_repos``."""
    with FakeGitHub(clock=gh_clock) as fake:
        for repo in gh_repos:
            fake.add_repo(repo)
        yield fake


# --- GitHub Actions OIDC --------------------------------------------------------------------------
@pytest.fixture
def oidc_audience() -> str:
    """The audience the ``issuer`` mints for and the OIDC repository demands."""
    return AUDIENCE


@pytest.fixture
def issuer_clock() -> Callable[[], float]:
    """The default ``iat`` of the ``issuer``'s tokens; override it to share a hand-moved ``Clock``."""
    return time.time


@pytest.fixture
def issuer(oidc_audience: str, issuer_clock: Callable[[], float]) -> Iterator[OidcIssuer]:
    """A local GitHub-Actions-like OIDC issuer (discovery and JWKS over real HTTP)."""
    with OidcIssuer(audience=oidc_audience, clock=issuer_clock) as iss:
        yield iss


@pytest.fixture
def oidc_rules() -> dict[str, str]:
    """The identity rules (Settings fields) of the OIDC repository; override them per module."""
    return {"oidc_owner_ids": OWNER_ID}


@pytest.fixture
def oidc_local_repo(tmp_path: Path, issuer: OidcIssuer, oidc_rules: dict[str, str]) -> LocalRepo:
    """A local repository that trusts ``issuer``'s tokens, indexed: hello-ghapt 1.0-1 (all),
    published as ``v1.0/hello.1.0-1.deb`` (an asset name that is not the pool's name)."""
    releases = tmp_path / "releases"
    deb = build_deb(releases / "v1.0", "hello-ghapt", "1.0-1", "all", filename="hello.1.0-1.deb")
    settings = Settings.from_env(
        {},
        releases_dir=releases,
        state_dir=tmp_path / "state",
        architectures="amd64",
        oidc_issuer=issuer.url,
        oidc_audience=issuer.audience,
        **oidc_rules,
    )
    services = Services(settings, {})
    assert services.indexer.rebuild().packages == 1
    return LocalRepo(services, deb)


@pytest.fixture
def oidc_repo(tmp_path: Path, oidc_local_repo: LocalRepo) -> Iterator[ServedRepo]:
    """``oidc_local_repo`` behind the local server, with its public key written out."""
    services = oidc_local_repo.services
    with serve(services) as server:
        key = tmp_path / "ghapt.asc"
        key.write_text(services.signer.public_key_armored())
        yield ServedRepo(services, oidc_local_repo.deb, server, key)


@pytest.fixture
def token_repo(tmp_path: Path, issuer: OidcIssuer, oidc_local_repo: LocalRepo) -> Iterator[TokenRepo]:
    """``oidc_local_repo`` served with token exchange (POST /token) and the Basic user
    ``TokenRepo.USER``; one injected clock drives the OIDC verifier, the token service and
    the gateway's policy cache."""
    services = oidc_local_repo.services
    settings = services.settings
    state = settings.state_dir
    assert state is not None
    UserFile(state / "users.json").add(TokenRepo.USER, TokenRepo.PASSWORD)
    clock = Clock(datetime.now(UTC).timestamp())
    rules = OidcRules.from_settings(settings)
    base = settings_authenticator(settings)
    tokens = TokenService(
        file_key(state / TOKEN_KEY_FILE),
        issuer=issuer.url,
        audience=issuer.audience,
        rules=rules,
        clock=clock,
    )
    services.authenticator = Authenticator(
        base.users, OidcVerifier(issuer.url, issuer.audience, rules, clock=clock), tokens=tokens
    )
    services.tokens = tokens
    with serve(services, clock=clock) as server:
        key = tmp_path / "ghapt.asc"
        key.write_text(services.signer.public_key_armored())
        yield TokenRepo(services, oidc_local_repo.deb, server, key, clock)
