"""Shared pytest wiring."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


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
