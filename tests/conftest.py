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
