"""Secrets in Lambda: Secrets Manager through Powertools' cached ``parameters.get_secret``,
so a warm function does not call Secrets Manager on every invocation.

``get("NAME#key")`` returns one key of a JSON secret (``ghapt.core.secretref``). Error messages
name the secret and never quote its value.
"""

from __future__ import annotations

from typing import Any

from ghapt.core.errors import ConfigError
from ghapt.core.secretref import resolve


class AwsSecrets:
    """Secrets Manager secrets by name or ARN, cached ``max_age`` seconds by Powertools.

    ``provider`` (a Powertools ``SecretsProvider``) is for tests and custom boto3 sessions; by
    default the module-level ``parameters.get_secret`` cache is shared with other callers."""

    def __init__(self, max_age: int = 300, provider: Any = None) -> None:
        self.max_age = max_age
        self.provider = provider

    def get(self, name: str) -> str:
        return resolve(name, self._raw)

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
