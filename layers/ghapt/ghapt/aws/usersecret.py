"""Basic Auth users in a Secrets Manager secret (GHAPT_USERS_SECRET_ARN): read by the authorizer,
edited by ``ghapt users``.

The secret holds the same JSON as the local users file, ``{"users": {...}}``. Lookups go
through Powertools' cached ``get_secret`` and keep the parsed users for ``max_age`` seconds, so
a warm authorizer pays one fetch per window. Each edit is one read-modify-write of the secret
(a new version); a deployed authorizer picks it up when its caches expire
(GHAPT_AUTH_CACHE_SECONDS for decisions, ``max_age`` for the secret itself).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ghapt.auth.passwords import EditableUsers, dump_users, parse_users
from ghapt.core.errors import ConfigError


def _powertools_secret(name: str, max_age: int) -> str:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(name, max_age=max_age)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


class SecretUsers(EditableUsers):
    """The users document in a Secrets Manager secret.

    ``lookup`` (the authorizer's side) reads through ``fetch``, by default Powertools'
    cached ``get_secret``; ``load``/``save`` (``ghapt users``) use ``client``, a boto3
    Secrets Manager client made on first use."""

    def __init__(
        self,
        secret_arn: str,
        client: Any = None,
        *,
        max_age: int = 300,
        fetch: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_arn = secret_arn
        self._client = client
        self.max_age = max_age
        self._fetch = fetch or (lambda name: _powertools_secret(name, max_age))
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, str] | None = None
        self._loaded_at = 0.0

    @property
    def location(self) -> str:
        return f"secret {self.secret_arn}"

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    # --- the authorizer's side ------------------------------------------------------------------
    def lookup(self, name: str) -> str | None:
        """The stored hash of ``name`` (``UserStore``), from a copy at most ``max_age`` old."""
        return self._current().get(name)

    def _current(self) -> dict[str, str]:
        with self._lock:
            now = self._clock()
            if self._users is None or now - self._loaded_at >= self.max_age:
                self._users = self._read()
                self._loaded_at = now
            return self._users

    def _read(self) -> dict[str, str]:
        source = f"users secret {self.secret_arn}"
        try:
            text = self._fetch(self.secret_arn)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported by type, never by value
            raise ConfigError(f"{source}: cannot be read ({exc.__class__.__name__})") from None
        try:
            document = json.loads(text)
        except ValueError:
            raise ConfigError(f"{source}: not valid JSON") from None
        return parse_users(document, source)

    # --- ``ghapt users``' side ----------------------------------------------------------------
    def load(self) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.client.get_secret_value(SecretId=self.secret_arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise ConfigError(
                    f"GHAPT_USERS_SECRET_ARN: no such secret {self.secret_arn} (check the ARN and region)"
                ) from None
            raise ConfigError(
                f"GHAPT_USERS_SECRET_ARN: cannot read {self.secret_arn}: {code} "
                "(check your AWS credentials and secretsmanager:GetSecretValue)"
            ) from None
        except BotoCoreError as exc:
            raise ConfigError(f"GHAPT_USERS_SECRET_ARN: cannot read {self.secret_arn}: {exc}") from None
        text = reply.get("SecretString") or ""
        if not text.strip():
            return {}  # a fresh secret: no users yet
        try:
            document = json.loads(text)
        except ValueError:
            raise ConfigError(f"users secret {self.secret_arn}: not valid JSON") from None
        if document == {}:
            return {}
        return parse_users(document, f"users secret {self.secret_arn}")

    def save(self, users: Mapping[str, str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_secret_value(SecretId=self.secret_arn, SecretString=dump_users(users))
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(
                f"GHAPT_USERS_SECRET_ARN: cannot write {self.secret_arn}: {exc} "
                "(needs secretsmanager:PutSecretValue)"
            ) from None
