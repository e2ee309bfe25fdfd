"""``ghapt users`` against the Secrets Manager secret the authorizer reads (GHAPT_USERS_SECRET_ARN).

Same interface as ``users.UserFile`` (``add``/``remove``/``names``); each change is one
read-modify-write of the secret's JSON ``{"users": {...}}`` (a new version of the secret).
A deployed authorizer picks the change up when its cache expires (GHAPT_AUTH_CACHE_SECONDS
for decisions, five minutes for the secret itself).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ConfigError
from .users import EditableUsers, dump_users, parse_users


class SecretUsers(EditableUsers):
    """The users document in a Secrets Manager secret."""

    def __init__(self, secret_arn: str, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager")
        self.secret_arn = secret_arn
        self.client = client

    @property
    def location(self) -> str:
        return f"secret {self.secret_arn}"

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

    def save(self, users: dict[str, str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_secret_value(SecretId=self.secret_arn, SecretString=dump_users(users))
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(
                f"GHAPT_USERS_SECRET_ARN: cannot write {self.secret_arn}: {exc} "
                "(needs secretsmanager:PutSecretValue)"
            ) from None
