"""Integration fixtures: one hand-moved clock, which the OIDC issuer mints on too."""

from __future__ import annotations

import pytest

from tests.support.clock import Clock


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock at ``T0``; inject it wherever code takes a clock."""
    return Clock()


@pytest.fixture
def issuer_clock(clock: Clock) -> Clock:
    """In integration tests the issuer mints at the hand-moved clock's time by default."""
    return clock
