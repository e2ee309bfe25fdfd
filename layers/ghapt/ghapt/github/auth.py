"""GitHub credentials: a fixed token or a GitHub App installation, built from settings and secrets.

The GitHub secret (``GHAPT_GITHUB_SECRET_ARN``) may be a bare token, ``{"token": "..."}``, or
``{"app_id": ..., "installation_id": ..., "private_key": "-----BEGIN ..."}`` for a GitHub App.
Tokens never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization

from ghapt.core.errors import ConfigError
from ghapt.core.settings import Settings

if TYPE_CHECKING:
    from ghapt.github.client import GitHubClient


def _github_secret(raw: str, name: str) -> dict[str, str]:
    """The GitHub secret's fields: a bare token or a JSON object."""
    text = raw.strip()
    if not text.startswith("{"):
        return {"token": text}
    try:
        obj = json.loads(text)
    except ValueError:
        raise ConfigError(f"secret {name!r} looks like JSON but does not parse") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"secret {name!r} must be a token or a JSON object")
    known = ("token", "app_id", "installation_id", "private_key")
    return {k: str(obj[k]) for k in known if obj.get(k) not in (None, "")}


def github_auth_from_settings(
    settings: Settings,
    secrets: Any,
    *,
    clock: Callable[[], float] = time.time,
    secret_arn: str | None = None,
) -> TokenAuth | AppAuth:
    """GitHub credentials: a complete GitHub App config wins, else a token, else ``ConfigError``.

    Values come from the secret ``secret_arn`` (default ``GHAPT_GITHUB_SECRET_ARN``; the serving
    functions pass ``GHAPT_GITHUB_READ_SECRET_ARN``), read through ``secrets``, when it is set,
    falling back to the plain settings; the App's ids may live in settings and only the key in
    the secret."""
    token = settings.github_token
    app_id = settings.github_app_id
    installation_id = settings.github_app_installation_id
    private_key = settings.github_app_private_key
    arn = settings.github_secret_arn if secret_arn is None else secret_arn
    if arn:
        values = _github_secret(secrets.get(arn), arn)
        token = values.get("token", token)
        app_id = values.get("app_id", app_id)
        installation_id = values.get("installation_id", installation_id)
        private_key = values.get("private_key", private_key)
    if not private_key and settings.github_app_private_key_file is not None:
        path = settings.github_app_private_key_file
        try:
            private_key = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(
                f"GHAPT_GITHUB_APP_PRIVATE_KEY_FILE: cannot read {path}: {exc.strerror}"
            ) from None

    app_parts = {
        "GHAPT_GITHUB_APP_ID": app_id,
        "GHAPT_GITHUB_APP_INSTALLATION_ID": installation_id,
        "GHAPT_GITHUB_APP_PRIVATE_KEY(_FILE)": private_key,
    }
    if all(app_parts.values()):
        return AppAuth(app_id, installation_id, private_key, clock)
    if token:
        return TokenAuth(token)
    given = [name for name, value in app_parts.items() if value]
    if given:
        missing = [name for name, value in app_parts.items() if not value]
        raise ConfigError(
            f"incomplete GitHub App configuration: {', '.join(given)} set but {', '.join(missing)} missing"
        )
    raise ConfigError(
        "no GitHub credentials: set GITHUB_TOKEN, or a GitHub App (GHAPT_GITHUB_APP_ID, "
        "GHAPT_GITHUB_APP_INSTALLATION_ID and GHAPT_GITHUB_APP_PRIVATE_KEY or _FILE), "
        "or GHAPT_GITHUB_SECRET_ARN in Lambda"
    )


# --- authentication -------------------------------------------------------------------------
class Auth(Protocol):
    """Produces the ``Authorization`` header value for API requests (never for storage)."""

    def authorization(self, client: GitHubClient) -> str: ...

    def invalidate(self) -> bool:
        """Forget any cached credential (after a 401); True when a fresh one can be had."""
        ...


class TokenAuth:
    """A fixed token: a PAT, a fine-grained token or Actions' ``GITHUB_TOKEN``."""

    def __init__(self, token: str) -> None:
        if not token or not token.strip():
            raise ConfigError("the GitHub token is empty (GITHUB_TOKEN)")
        self._token = token.strip()

    def authorization(self, client: GitHubClient) -> str:
        return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        """A fixed token cannot be refreshed."""
        return False

    def __repr__(self) -> str:
        return "TokenAuth(***)"


class AppAuth:
    """A GitHub App installation: signs an app JWT and exchanges it for an installation token.

    The installation token (valid one hour) is cached until ``refresh_margin`` seconds before
    its ``expires_at``, so a warm Lambda makes one exchange an hour, not one per request."""

    def __init__(
        self,
        app_id: str | int,
        installation_id: str | int,
        private_key_pem: str | bytes,
        clock: Callable[[], float] = time.time,
        *,
        refresh_margin: float = 300.0,
    ) -> None:
        self.app_id = str(app_id).strip()
        self.installation_id = str(installation_id).strip()
        if not self.app_id or not self.installation_id.isdigit():
            raise ConfigError(
                "GitHub App auth needs an app id (GHAPT_GITHUB_APP_ID) and a numeric installation id "
                "(GHAPT_GITHUB_APP_INSTALLATION_ID)"
            )
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        try:
            self._key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            # The message must not quote the key material.
            raise ConfigError(
                "the GitHub App private key is not a valid unencrypted PEM key "
                "(GHAPT_GITHUB_APP_PRIVATE_KEY or GHAPT_GITHUB_APP_PRIVATE_KEY_FILE)"
            ) from None
        self._clock = clock
        self._margin = refresh_margin
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def app_jwt(self) -> str:
        """The app's own JWT: iat 60 s in the past against clock skew, exp 9 min ahead (max 10)."""
        now = int(self._clock())
        payload = {"iat": now - 60, "exp": now + 540, "iss": self.app_id}
        return jwt.encode(payload, self._key, algorithm="RS256")  # type: ignore[arg-type]

    def authorization(self, client: GitHubClient) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._margin:
                self._token, self._expires_at = client.exchange_installation_token(
                    self.installation_id, self.app_jwt()
                )
            return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        with self._lock:
            self._token = None
            self._expires_at = 0.0
        return True

    @property
    def token_expires_at(self) -> float:
        """When the cached installation token expires (0 when none is cached)."""
        return self._expires_at

    def __repr__(self) -> str:
        return f"AppAuth(app_id={self.app_id!r}, installation_id={self.installation_id!r})"
