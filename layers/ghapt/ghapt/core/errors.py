"""Typed errors. Each maps to one HTTP status in one place (``ghapt.aws.handlers``)."""

from __future__ import annotations


class GhaptError(Exception):
    """Base of every error ghapt raises on purpose."""

    status = 500


class ConfigError(GhaptError):
    """A setting is missing or invalid; the message names it and how to fix it."""


class BadDebError(GhaptError):
    """A .deb file is broken or hostile. ``name`` is the file, ``reason`` why."""

    status = 422

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[type[BadDebError], tuple[str, str]]:
        """Picklable with both arguments: a worker process hands it back to the indexer."""
        return (type(self), (self.name, self.reason))


class BadRequest(GhaptError):
    status = 400


class PayloadTooLarge(BadRequest):
    status = 413


class NotFound(GhaptError):
    status = 404


class Unauthorized(GhaptError):
    """Credentials missing or wrong. The message is a reason for logs, never the credential."""

    status = 401


class Forbidden(GhaptError):
    status = 403


class UpstreamError(GhaptError):
    """GitHub (or another upstream) failed after retries."""

    status = 502


class Unavailable(UpstreamError):
    """Upstream cannot answer this request now (a rate limit, no answer within the request's
    time budget): 503 with ``Retry-After`` (``retry_after`` seconds, when known)."""

    status = 503

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(Unavailable):
    """GitHub's rate limit is exhausted; ``retry_after`` is in seconds when known."""


class SourceChanged(GhaptError):
    """The releases changed while a rebuild read them (a file vanished or was rewritten).

    Nothing is published; the next rebuild (the watcher's next poll) sees the new state."""

    status = 409


class MassRemovalRefused(GhaptError):
    """A rebuild would remove too much of what is published; nothing was committed.

    ``result`` is the refused rebuild's result (what it would add, remove and skip)."""

    status = 409

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class StaleHead(GhaptError):
    """The metadata branch moved under us (git: non-fast-forward). Rebuild on the new head."""

    status = 409
