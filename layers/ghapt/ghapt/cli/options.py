"""The options every command shares: settings flags, each also an environment variable.

A flag is only an override of the same ``Settings`` the Lambda functions read: ``--state DIR``
is ``GHAPT_STATE_DIR=DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ghapt.core.errors import ConfigError
from ghapt.core.settings import Settings, env_name, reference

if TYPE_CHECKING:
    # argparse names the type of add_subparsers()' result only privately
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]  # noqa: SLF001
else:
    Subparsers = Any

# flag -> (settings field, argparse kwargs)
SETTING_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--backend": ("backend", {"choices": ["local", "github"]}),
    "--releases": ("releases_dir", {"metavar": "DIR"}),
    "--state": ("state_dir", {"metavar": "DIR"}),
    "--suite": ("suite", {}),
    "--prerelease-suite": ("prerelease_suite", {}),
    "--routes": ("routes", {"metavar": "RULES"}),
    "--component": ("component", {}),
    "--architectures": ("architectures", {"metavar": "ARCHS"}),
    "--origin": ("origin", {}),
    "--label": ("label", {}),
    "--github-repo": ("github_repos", {"action": "append", "metavar": "OWNER/NAME"}),
    "--metadata-repo": ("metadata_repo", {"metavar": "OWNER/NAME"}),
    "--branch": ("branch", {}),
    "--api-url": ("api_url", {"metavar": "URL"}),
    "--users-file": ("users_file", {"metavar": "FILE"}),
}
USERS_SECRET_FLAG: dict[str, tuple[str, dict[str, Any]]] = {
    "--users-secret-arn": ("users_secret_arn", {"metavar": "ARN"}),
}
KMS_FLAG: dict[str, tuple[str, dict[str, Any]]] = {
    "--kms-key-id": ("kms_key_id", {"metavar": "ID"}),
}
REMOVAL_FLAG: dict[str, tuple[str, dict[str, Any]]] = {
    "--allow-mass-removal": ("allow_mass_removal", {"action": "store_true"}),
}
SERVE_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--host": ("host", {}),
    "--port": ("port", {"type": int}),
    "--public-url": ("public_url", {"metavar": "URL"}),
    "--threads": ("threads", {"type": int}),
    "--workers": ("workers", {"type": int, "metavar": "N"}),
    "--connection-limit": ("connection_limit", {"type": int, "metavar": "N"}),
    "--channel-timeout": ("channel_timeout", {"type": float, "metavar": "SECONDS"}),
}


def add_settings(parser: argparse.ArgumentParser, flags: Mapping[str, tuple[str, dict[str, Any]]]) -> None:
    for flag, (name, kwargs) in flags.items():
        parser.add_argument(flag, dest=name, default=None, help=setting_help(name), **kwargs)


def setting_help(name: str) -> str:
    """A flag's help: the setting's own description, its default and its environment variable."""
    env = env_name(name)
    row = next(r for r in reference() if r[0] == env)
    default = f"default: {row[1]}; " if row[1] else ""
    # argparse formats help with %, so a literal one must be doubled.
    return f"{row[2]} ({default}env {env})".replace("%", "%%")


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name, _ in (
            *SETTING_FLAGS.values(),
            *SERVE_FLAGS.values(),
            *USERS_SECRET_FLAG.values(),
            *KMS_FLAG.values(),
            *REMOVAL_FLAG.values(),
        )
        if getattr(args, name, None) is not None
    }
    if "github_repos" in overrides or "metadata_repo" in overrides:
        overrides.setdefault("backend", "github")
    return Settings.from_env(environ, **overrides)


def read_secret(args: argparse.Namespace, what: str) -> str:
    if args.password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        import getpass  # only when a secret is typed in

        value = getpass.getpass(f"{what}: ")
    else:
        raise ConfigError(f"no {what}: pass --password-stdin and write it to standard input")
    if not value:
        raise ConfigError(f"an empty {what} is not allowed")
    return value


def only(
    flags: Mapping[str, tuple[str, dict[str, Any]]], *names: str
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The subset of ``flags`` a command takes."""
    return {k: v for k, v in flags.items() if k in names}
