"""Secrets adapters, and the GitHub credentials built from settings plus secrets.

Locally secrets come from the environment or files (``EnvSecrets``); in Lambda from Secrets
Manager through Powertools' cached ``parameters.get_secret`` (``AwsSecrets``), so a warm
function does not call Secrets Manager on every invocation.

A secret may hold JSON. ``get("NAME#key")`` returns one key of a JSON object (``#`` cannot
occur in a Secrets Manager name or ARN), e.g. ``get(arn + "#token")``. The GitHub secret may be
a bare token, ``{"token": "..."}``, or ``{"app_id": ..., "installation_id": ...,
"private_key": "-----BEGIN ..."}`` for a GitHub App.

Error messages name the secret and never quote its value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .github import AppAuth, TokenAuth
from .settings import Settings


def _json_key(name: str, raw: str, key: str) -> str:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise ConfigError(f"secret {name!r} is not JSON, so it has no key {key!r}") from None
    if not isinstance(obj, dict) or key not in obj or obj[key] in (None, ""):
        raise ConfigError(f"secret {name!r} has no key {key!r}")
    value = obj[key]
    return value if isinstance(value, str) else json.dumps(value)


class EnvSecrets:
    """Secrets from environment variables, or from files named in ``files`` (name -> path).

    A non-empty environment variable wins over a file. File contents are stripped of
    surrounding whitespace (``echo token > file`` leaves a newline)."""

    def __init__(self, environ: Mapping[str, str], files: Mapping[str, Path] | None = None) -> None:
        self.environ = environ
        self.files = dict(files or {})

    def get(self, name: str) -> str:
        base, sep, key = name.partition("#")
        raw = self._raw(base)
        return _json_key(base, raw, key) if sep else raw

    def _raw(self, name: str) -> str:
        value = self.environ.get(name, "")
        if value:
            return value
        path = self.files.get(name)
        if path is not None:
            try:
                text = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"secret {name!r}: cannot read {path}: {exc.strerror}") from None
            if text:
                return text
            raise ConfigError(f"secret {name!r}: the file {path} is empty")
        raise ConfigError(f"secret {name!r} is not set (environment variable {name})")


class AwsSecrets:
    """Secrets Manager secrets by name or ARN, cached ``max_age`` seconds by Powertools.

    ``provider`` (a Powertools ``SecretsProvider``) is for tests and custom boto3 sessions; by
    default the module-level ``parameters.get_secret`` cache is shared with other callers."""

    def __init__(self, max_age: int = 300, provider: Any = None) -> None:
        self.max_age = max_age
        self.provider = provider

    def get(self, name: str) -> str:
        base, sep, key = name.partition("#")
        raw = self._raw(base)
        return _json_key(base, raw, key) if sep else raw

    def _raw(self, name: str) -> str:
        from aws_lambda_powertools.utilities import parameters
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            if self.provider is not None:
                value = self.provider.get(name, max_age=self.max_age)
            else:
                value = parameters.get_secret(name, max_age=self.max_age)
        except GetParameterError as exc:
            # Powertools' message carries the AWS error (not found, access denied), never a value.
            raise ConfigError(f"secret {name!r} could not be read from Secrets Manager: {exc}") from None
        if isinstance(value, bytes):
            value = value.decode()
        if not isinstance(value, str) or not value:
            raise ConfigError(f"secret {name!r} is empty")
        return value


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
    settings: Settings, secrets: Any, *, clock: Callable[[], float] = time.time
) -> TokenAuth | AppAuth:
    """GitHub credentials: a complete GitHub App config wins, else a token, else ``ConfigError``.

    Values come from ``GHAPT_GITHUB_SECRET_ARN`` (read through ``secrets``) when it is set,
    falling back to the plain settings; the App's ids may live in settings and only the key in
    the secret."""
    token = settings.github_token
    app_id = settings.github_app_id
    installation_id = settings.github_app_installation_id
    private_key = settings.github_app_private_key
    if settings.github_secret_arn:
        values = _github_secret(secrets.get(settings.github_secret_arn), settings.github_secret_arn)
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
