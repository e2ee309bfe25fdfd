"""Secrets Manager under moto: the secrets adapter (through Powertools), the GitHub credentials
from a secret ARN, and the Basic users stored in a secret."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import ghapt.auth.passwords as users
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider
from ghapt.auth.passwords import hash_password, verify_password
from ghapt.aws.secrets import AwsSecrets
from ghapt.aws.usersecret import SecretUsers
from ghapt.core.errors import ConfigError
from ghapt.core.ports import Secrets, UserStore
from ghapt.core.settings import Settings
from ghapt.github.auth import AppAuth, TokenAuth, github_auth_from_settings


@pytest.fixture
def aws(moto_aws: None) -> Any:
    return boto3.client("secretsmanager", region_name="eu-west-1")


def settings(**values: Any) -> Settings:
    return Settings(backend="github", **values)


# --- AwsSecrets (moto) -------------------------------------------------------------------------
def test_aws_secrets_plain_and_json(aws: Any) -> None:
    sm = aws
    name = f"ghapt/{uuid.uuid4()}"
    plain = sm.create_secret(Name=name, SecretString="ghp_plain")
    arn_json = sm.create_secret(
        Name=f"{name}-json", SecretString=json.dumps({"token": "ghp_json", "installation_id": 7})
    )["ARN"]
    secrets = AwsSecrets(max_age=300, provider=SecretsProvider())

    assert isinstance(secrets, Secrets)
    assert secrets.get(name) == "ghp_plain"
    assert secrets.get(plain["ARN"]) == "ghp_plain"
    assert secrets.get(f"{arn_json}#token") == "ghp_json"
    assert secrets.get(f"{arn_json}#installation_id") == "7"
    with pytest.raises(ConfigError, match="'nope'"):
        secrets.get(f"{arn_json}#nope")


def test_aws_secrets_are_cached_for_max_age(aws: Any) -> None:
    sm = aws
    name = f"ghapt/{uuid.uuid4()}"
    sm.create_secret(Name=name, SecretString="v1")
    secrets = AwsSecrets(max_age=300, provider=SecretsProvider())
    assert secrets.get(name) == "v1"
    sm.put_secret_value(SecretId=name, SecretString="v2")
    assert secrets.get(name) == "v1"  # Powertools' cache, no second call within max_age


def test_aws_secrets_default_powertools_path(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Make Powertools build its default provider inside the mock.
    monkeypatch.delitem(DEFAULT_PROVIDERS, "secrets", raising=False)
    sm = aws
    name = f"ghapt/{uuid.uuid4()}"
    sm.create_secret(Name=name, SecretString=json.dumps({"token": "ghp_default"}))
    assert AwsSecrets().get(f"{name}#token") == "ghp_default"
    monkeypatch.delitem(DEFAULT_PROVIDERS, "secrets", raising=False)


def test_aws_secrets_missing_names_the_secret(aws: Any) -> None:
    secrets = AwsSecrets(provider=SecretsProvider())
    with pytest.raises(ConfigError, match="'ghapt/does-not-exist'"):
        secrets.get("ghapt/does-not-exist")


def test_auth_from_the_secret_arn(aws: Any, github_app_pem: str) -> None:
    sm = aws
    token_arn = sm.create_secret(Name=f"t-{uuid.uuid4()}", SecretString="ghp_secret")["ARN"]
    app_arn = sm.create_secret(
        Name=f"a-{uuid.uuid4()}",
        SecretString=json.dumps({"app_id": 12, "installation_id": 34, "private_key": github_app_pem}),
    )["ARN"]
    key_only = sm.create_secret(
        Name=f"k-{uuid.uuid4()}", SecretString=json.dumps({"private_key": github_app_pem})
    )["ARN"]
    secrets = AwsSecrets(provider=SecretsProvider())

    assert isinstance(github_auth_from_settings(settings(github_secret_arn=token_arn), secrets), TokenAuth)
    app = github_auth_from_settings(settings(github_secret_arn=app_arn), secrets)
    assert isinstance(app, AppAuth)
    assert app.installation_id == "34"
    mixed = settings(github_secret_arn=key_only, github_app_id="5", github_app_installation_id="6")
    assert isinstance(github_auth_from_settings(mixed, secrets), AppAuth)


# --- SecretUsers ------------------------------------------------------------------------------------
SECRET_NAME = "ghapt/users"


class TestSecretUsers:
    def test_reads_users_from_secrets_manager(self, aws: Any) -> None:
        arn = aws.create_secret(
            Name=SECRET_NAME, SecretString=users.dump_users({"alice": hash_password("pw")})
        )["ARN"]
        store = SecretUsers(arn)
        assert isinstance(store, UserStore)
        assert verify_password(store.lookup("alice") or "", "pw")
        assert store.lookup("bob") is None

    def test_caches_until_max_age(self, aws: Any) -> None:
        arn = aws.create_secret(
            Name=SECRET_NAME, SecretString=users.dump_users({"alice": hash_password("a")})
        )["ARN"]
        now = [1000.0]
        store = SecretUsers(arn, max_age=300, clock=lambda: now[0])
        assert store.lookup("alice") is not None
        aws.put_secret_value(SecretId=arn, SecretString=users.dump_users({"bob": hash_password("b")}))
        now[0] += 299
        assert store.lookup("alice") is not None  # still cached
        assert store.lookup("bob") is None
        now[0] += 1
        # Powertools keeps its own cache; make it fetch so the test sees what we re-read.
        parameters.clear_caches()  # type: ignore[no-untyped-call]
        assert store.lookup("alice") is None
        assert store.lookup("bob") is not None

    def test_missing_secret_is_a_config_error_naming_it(self, aws: Any) -> None:
        store = SecretUsers("arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope-AbCdEf")
        with pytest.raises(ConfigError, match="nope"):
            store.lookup("alice")

    def test_malformed_secret_is_a_config_error(self, aws: Any) -> None:
        arn = aws.create_secret(Name=SECRET_NAME, SecretString='{"alice": "pw"}')["ARN"]
        with pytest.raises(ConfigError, match="users secret"):
            SecretUsers(arn).lookup("alice")
