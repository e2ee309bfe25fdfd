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
from collections.abc import Iterator
from pathlib import Path

import pytest

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
