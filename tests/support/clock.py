"""A hand-moved clock: tests inject it and move it (``clock.now += 61``), nothing waits for real time."""

from __future__ import annotations

T0 = 1_760_000_000.0
"""Where the ``clock`` fixture starts: 2025-10-09T08:53:20Z."""


class Clock:
    """A callable returning ``now``, in Unix seconds, wherever code takes a ``clock``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
