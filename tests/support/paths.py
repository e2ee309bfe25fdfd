"""Where things are in the checkout, for tests that read the repository's own files."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root (template.yaml, README.md, Makefile, events/)."""

SAM_EVENTS = ROOT / "events"
"""The sample events ``sam local invoke`` is documented with."""

CANNED_EVENTS = ROOT / "tests" / "events"
"""Events only the tests use (authorizer variants, a signed webhook delivery)."""
