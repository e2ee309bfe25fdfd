"""One typed settings object: env names, coercion, overrides and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ghapt.core.errors import ConfigError
from ghapt.core.settings import Settings, reference


def test_defaults_are_stable_main_and_no_security_defaults() -> None:
    s = Settings.from_env({})
    assert (s.suite, s.component, s.branch) == ("stable", "main", "apt-metadata")
    assert s.api_url == "https://api.github.com"
    assert s.github_token == ""
    assert s.webhook_secret == ""
    assert s.oidc_issuer == ""
    assert s.oidc_audience == ""


def test_environment_and_overrides() -> None:
    env = {
        "GHAPT_SUITE": "prod",
        "GHAPT_ARCHITECTURES": "amd64, arm64 riscv64",
        "GHAPT_PORT": "9000",
        "GHAPT_STATE_DIR": "/tmp/state",
        "GHAPT_GITHUB_REPOS": "a/b c/d",
    }
    s = Settings.from_env(env, port=9001)
    assert s.suite == "prod"
    assert s.port == 9001
    assert s.architectures == ("amd64", "arm64", "riscv64")
    assert s.state_dir == Path("/tmp/state")
    assert s.users_path == Path("/tmp/state/users.json")
    assert s.github_repos == ("a/b", "c/d")
    assert Settings.from_env(env, github_repos=["x/y"]).github_repos == ("x/y",)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"GHAPT_PORT": "eighty"}, "GHAPT_PORT"),
        ({"GHAPT_BACKEND": "s3"}, "GHAPT_BACKEND"),
        ({"GHAPT_ARCHITECTURES": "all"}, "GHAPT_ARCHITECTURES"),
        ({"GHAPT_GITHUB_REPOS": "not-a-repo"}, "OWNER/NAME"),
        ({"GHAPT_SUITE": "../x"}, "GHAPT_SUITE"),
        ({"GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL"),
        ({"GHAPT_OIDC_ISSUER": "https://token.actions.githubusercontent.com"}, "GHAPT_OIDC_AUDIENCE"),
        ({"GHAPT_OIDC_REF_PATTERN": "("}, "GHAPT_OIDC_REF_PATTERN"),
        ({"GHAPT_AUTH_CACHE_SECONDS": "3600"}, "GHAPT_AUTH_CACHE_SECONDS"),
        ({"GHAPT_BYHASH_GENERATIONS": "0"}, "GHAPT_BYHASH_GENERATIONS"),
        ({"GHAPT_WORKERS": "-1"}, "GHAPT_WORKERS"),
        ({"GHAPT_WORKERS": "65"}, "GHAPT_WORKERS"),
        ({"GHAPT_WORKERS": "two"}, "GHAPT_WORKERS"),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env)


def test_require_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError, match="GHAPT_METADATA_REPO, GHAPT_GITHUB_REPOS"):
        Settings.from_env({}).require("metadata_repo", "github_repos")


def test_describe_masks_secrets() -> None:
    s = Settings.from_env({"GITHUB_TOKEN": "ghp_supersecret", "GHAPT_WEBHOOK_SECRET": "hooksecret"})
    shown = s.describe()
    assert shown["GITHUB_TOKEN"] == "***"
    assert shown["GHAPT_WEBHOOK_SECRET"] == "***"
    assert "ghp_supersecret" not in repr(shown)


def test_reference_lists_every_variable_once() -> None:
    names = [row[0] for row in reference()]
    assert len(names) == len(set(names))
    assert {"GHAPT_STATE_DIR", "GHAPT_RELEASES_DIR", "GITHUB_API_URL", "GHAPT_OIDC_AUDIENCE"} <= set(names)


def test_serving_processes_default_to_one_per_usable_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2}, raising=False)
    assert Settings.from_env({}).workers == 0
    assert Settings.from_env({}).serving_processes == 3
    assert Settings.from_env({"GHAPT_WORKERS": "5"}).serving_processes == 5
    assert Settings.from_env({}, workers=1).serving_processes == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(200)), raising=False)
    assert Settings.from_env({}).serving_processes == 64  # bounded, like the setting itself
