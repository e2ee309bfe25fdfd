"""Secrets adapters (environment/files locally, Secrets Manager via Powertools in Lambda) and
the GitHub credentials built from settings."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from ghapt.errors import ConfigError
from ghapt.github import AppAuth, TokenAuth
from ghapt.ports import Secrets
from ghapt.secrets import AwsSecrets, EnvSecrets, github_auth_from_settings
from ghapt.settings import Settings


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def aws(moto_aws: None) -> object:
    return boto3.client("secretsmanager", region_name="eu-west-1")


# --- EnvSecrets -------------------------------------------------------------------------------
def test_env_secrets_from_environment_and_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("ghp_fromfile\n")
    (tmp_path / "gh.json").write_text(json.dumps({"token": "ghp_json", "app_id": 12}))
    secrets = EnvSecrets(
        {"GITHUB_TOKEN": "ghp_env", "EMPTY": ""},
        {"FILE_TOKEN": tmp_path / "token", "GITHUB_TOKEN": tmp_path / "token", "GH": tmp_path / "gh.json"},
    )
    assert isinstance(secrets, Secrets)
    assert secrets.get("GITHUB_TOKEN") == "ghp_env"  # the environment wins over the file
    assert secrets.get("FILE_TOKEN") == "ghp_fromfile"  # stripped of the trailing newline
    assert secrets.get("GH#token") == "ghp_json"
    assert secrets.get("GH#app_id") == "12"


def test_env_secrets_missing_names_the_secret(tmp_path: Path) -> None:
    secrets = EnvSecrets({"EMPTY": "", "NOTJSON": "plain"}, {"GONE": tmp_path / "nope"})
    for name, needle in (("EMPTY", "'EMPTY'"), ("NOPE", "'NOPE'"), ("GONE", "'GONE'"), ("NOTJSON#k", "'k'")):
        with pytest.raises(ConfigError, match=needle):
            secrets.get(name)
    with pytest.raises(ConfigError) as err:
        secrets.get("NOTJSON#k")
    assert "plain" not in str(err.value)


# --- AwsSecrets (moto) -------------------------------------------------------------------------
def test_aws_secrets_plain_and_json(aws: object) -> None:
    sm = aws
    name = f"ghapt/{uuid.uuid4()}"
    plain = sm.create_secret(Name=name, SecretString="ghp_plain")  # type: ignore[attr-defined]
    arn_json = sm.create_secret(  # type: ignore[attr-defined]
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


def test_aws_secrets_are_cached_for_max_age(aws: object) -> None:
    sm = aws
    name = f"ghapt/{uuid.uuid4()}"
    sm.create_secret(Name=name, SecretString="v1")  # type: ignore[attr-defined]
    secrets = AwsSecrets(max_age=300, provider=SecretsProvider())
    assert secrets.get(name) == "v1"
    sm.put_secret_value(SecretId=name, SecretString="v2")  # type: ignore[attr-defined]
    assert secrets.get(name) == "v1"  # Powertools' cache, no second call within max_age


def test_aws_secrets_default_powertools_path(aws: object, monkeypatch: pytest.MonkeyPatch) -> None:
    # Make Powertools build its default provider inside the mock.
    monkeypatch.delitem(parameters.base.DEFAULT_PROVIDERS, "secrets", raising=False)
    sm = aws
    name = f"ghapt/{uuid.uuid4()}"
    sm.create_secret(Name=name, SecretString=json.dumps({"token": "ghp_default"}))  # type: ignore[attr-defined]
    assert AwsSecrets().get(f"{name}#token") == "ghp_default"
    monkeypatch.delitem(parameters.base.DEFAULT_PROVIDERS, "secrets", raising=False)


def test_aws_secrets_missing_names_the_secret(aws: object) -> None:
    secrets = AwsSecrets(provider=SecretsProvider())
    with pytest.raises(ConfigError, match="'ghapt/does-not-exist'"):
        secrets.get("ghapt/does-not-exist")


# --- github_auth_from_settings ------------------------------------------------------------------
def settings(**values: object) -> Settings:
    return Settings(backend="github", **values)  # type: ignore[arg-type]


def test_auth_from_a_token() -> None:
    auth = github_auth_from_settings(settings(github_token="ghp_abc"), EnvSecrets({}))
    assert isinstance(auth, TokenAuth)
    assert "ghp_abc" not in repr(auth)


def test_auth_from_an_app_with_a_key_file(tmp_path: Path, pem: str) -> None:
    key = tmp_path / "app.pem"
    key.write_text(pem)
    s = settings(github_app_id="12", github_app_installation_id="34", github_app_private_key_file=key)
    auth = github_auth_from_settings(s, EnvSecrets({}))
    assert isinstance(auth, AppAuth)
    assert (auth.app_id, auth.installation_id) == ("12", "34")


def test_a_complete_app_config_wins_over_a_token(pem: str) -> None:
    s = settings(
        github_token="ghp_abc",
        github_app_id="12",
        github_app_installation_id="34",
        github_app_private_key=pem,
    )
    assert isinstance(github_auth_from_settings(s, EnvSecrets({})), AppAuth)


def test_auth_from_the_secret_arn(aws: object, pem: str) -> None:
    sm = aws
    token_arn = sm.create_secret(Name=f"t-{uuid.uuid4()}", SecretString="ghp_secret")["ARN"]  # type: ignore[attr-defined]
    app_arn = sm.create_secret(  # type: ignore[attr-defined]
        Name=f"a-{uuid.uuid4()}",
        SecretString=json.dumps({"app_id": 12, "installation_id": 34, "private_key": pem}),
    )["ARN"]
    key_only = sm.create_secret(  # type: ignore[attr-defined]
        Name=f"k-{uuid.uuid4()}", SecretString=json.dumps({"private_key": pem})
    )["ARN"]
    secrets = AwsSecrets(provider=SecretsProvider())

    assert isinstance(github_auth_from_settings(settings(github_secret_arn=token_arn), secrets), TokenAuth)
    app = github_auth_from_settings(settings(github_secret_arn=app_arn), secrets)
    assert isinstance(app, AppAuth) and app.installation_id == "34"
    mixed = settings(github_secret_arn=key_only, github_app_id="5", github_app_installation_id="6")
    assert isinstance(github_auth_from_settings(mixed, secrets), AppAuth)


def test_no_or_partial_credentials_are_a_clear_config_error(pem: str) -> None:
    with pytest.raises(ConfigError, match="GITHUB_TOKEN"):
        github_auth_from_settings(settings(), EnvSecrets({}))
    with pytest.raises(ConfigError) as err:
        github_auth_from_settings(settings(github_app_id="12", github_app_private_key=pem), EnvSecrets({}))
    assert "GHAPT_GITHUB_APP_INSTALLATION_ID" in str(err.value)
    assert "PRIVATE KEY" not in str(err.value)
    with pytest.raises(ConfigError, match="GHAPT_GITHUB_APP_PRIVATE_KEY_FILE"):
        github_auth_from_settings(
            settings(
                github_app_id="1", github_app_installation_id="2", github_app_private_key_file=Path("/nope")
            ),
            EnvSecrets({}),
        )
