"""The local secrets adapter (environment and files) and the GitHub credentials built from settings.

Secrets Manager (moto) is in integration/test_secrets_manager.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ghapt.core.errors import ConfigError
from ghapt.core.ports import Secrets
from ghapt.core.settings import Settings
from ghapt.github.auth import AppAuth, TokenAuth, github_auth_from_settings
from ghapt.local.secrets import EnvSecrets


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


# --- github_auth_from_settings ------------------------------------------------------------------
def settings(**values: Any) -> Settings:
    return Settings(backend="github", **values)


def test_auth_from_a_token() -> None:
    auth = github_auth_from_settings(settings(github_token="ghp_abc"), EnvSecrets({}))
    assert isinstance(auth, TokenAuth)
    assert "ghp_abc" not in repr(auth)


def test_auth_from_an_app_with_a_key_file(tmp_path: Path, github_app_pem: str) -> None:
    key = tmp_path / "app.github_app_pem"
    key.write_text(github_app_pem)
    s = settings(github_app_id="12", github_app_installation_id="34", github_app_private_key_file=key)
    auth = github_auth_from_settings(s, EnvSecrets({}))
    assert isinstance(auth, AppAuth)
    assert (auth.app_id, auth.installation_id) == ("12", "34")


def test_a_complete_app_config_wins_over_a_token(github_app_pem: str) -> None:
    s = settings(
        github_token="ghp_abc",
        github_app_id="12",
        github_app_installation_id="34",
        github_app_private_key=github_app_pem,
    )
    assert isinstance(github_auth_from_settings(s, EnvSecrets({})), AppAuth)


def test_no_or_partial_credentials_are_a_clear_config_error(github_app_pem: str) -> None:
    with pytest.raises(ConfigError, match="GITHUB_TOKEN"):
        github_auth_from_settings(settings(), EnvSecrets({}))
    with pytest.raises(ConfigError) as err:
        github_auth_from_settings(
            settings(github_app_id="12", github_app_private_key=github_app_pem), EnvSecrets({})
        )
    assert "GHAPT_GITHUB_APP_INSTALLATION_ID" in str(err.value)
    assert "PRIVATE KEY" not in str(err.value)
    with pytest.raises(ConfigError, match="GHAPT_GITHUB_APP_PRIVATE_KEY_FILE"):
        github_auth_from_settings(
            settings(
                github_app_id="1", github_app_installation_id="2", github_app_private_key_file=Path("/nope")
            ),
            EnvSecrets({}),
        )
