"""Every setting in one typed object, read once (at cold start or CLI start) and validated.

Each setting has one environment variable; CLI flags are overrides of the same names, so the
Lambda functions and the command line share this one definition. Security-relevant settings
have no silent defaults: when needed and missing, ``ConfigError`` names the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ghapt.core.errors import ConfigError
from ghapt.core.routing import Routing, RoutingError, parse_routes

MAX_WORKERS = 64
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _env(name: str, default: Any, doc: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": name, "doc": doc, "secret": secret})


def _words(value: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\s,]+", value.strip()) if w)


@dataclass(frozen=True)
class Settings:
    # --- what is served -------------------------------------------------------------------
    backend: str = _env("GHAPT_BACKEND", "local", "Release source and metadata store: `local` or `github`.")
    suite: str = _env("GHAPT_SUITE", "stable", "Suite that stable releases feed.")
    prerelease_suite: str = _env(
        "GHAPT_PRERELEASE_SUITE", "prerelease", "Suite that GitHub pre-releases feed."
    )
    component: str = _env("GHAPT_COMPONENT", "main", "The repository's one component.")
    architectures: tuple[str, ...] = _env(
        "GHAPT_ARCHITECTURES",
        ("amd64", "arm64"),
        "Architectures listed in Release (space or comma separated); `all` packages go to each.",
    )
    origin: str = _env("GHAPT_ORIGIN", "ghapt", "Release `Origin` field.")
    label: str = _env("GHAPT_LABEL", "ghapt", "Release `Label` field.")
    valid_days: int = _env(
        "GHAPT_VALID_DAYS", 0, "Days until Release's `Valid-Until`; 0 leaves the field out."
    )
    byhash_generations: int = _env(
        "GHAPT_BYHASH_GENERATIONS", 3, "How many index generations keep their by-hash files."
    )
    # --- routing assets to per-distribution suites (ghapt.core.routing) -------------------
    routes: str = _env(
        "GHAPT_ROUTES",
        "",
        "Routing rules `FIELD=GLOB -> SUITE`, separated by `;` (fields: version, package, asset, tag, "
        "repo); an asset no rule matches goes to GHAPT_SUITE. Empty: no routing.",
    )
    # --- local mode -----------------------------------------------------------------------
    releases_dir: Path | None = _env(
        "GHAPT_RELEASES_DIR", None, "Local backend: a folder with one sub-folder of .deb files per tag."
    )
    state_dir: Path | None = _env(
        "GHAPT_STATE_DIR",
        None,
        "Local state: the git repository of the `apt-metadata` branch, the signing key, users.",
    )
    host: str = _env("GHAPT_HOST", "127.0.0.1", "Address `ghapt serve` listens on.")
    port: int = _env("GHAPT_PORT", 8080, "Port `ghapt serve` listens on.")
    public_url: str = _env(
        "GHAPT_PUBLIC_URL",
        "",
        "Public base URL of the server, when behind a proxy (default: the listen address; never the "
        "request's Host).",
    )
    threads: int = _env(
        "GHAPT_THREADS",
        8,
        "`ghapt serve`: threads answering requests (split between its processes, 2 each at least).",
    )
    workers: int = _env(
        "GHAPT_WORKERS",
        0,
        "`ghapt serve`: processes answering requests on the one port (0: one per CPU). Each runs the "
        "same gateway and handlers with its own caches; the folder watcher runs once, beside them.",
    )
    connection_limit: int = _env(
        "GHAPT_CONNECTION_LIMIT",
        500,
        "`ghapt serve`: open connections at most (split between its processes, 4 each at least); when "
        "full, the longest-idle ones are closed first.",
    )
    channel_timeout: float = _env(
        "GHAPT_CHANNEL_TIMEOUT",
        30.0,
        "`ghapt serve`: seconds before an idle connection, or one still sending its request, is closed.",
    )
    # --- GitHub ---------------------------------------------------------------------------
    api_url: str = _env(
        "GITHUB_API_URL", "https://api.github.com", "GitHub REST API base (GitHub Enterprise Server too)."
    )
    github_repos: tuple[str, ...] = _env(
        "GHAPT_GITHUB_REPOS", (), "Repositories whose releases feed the index (OWNER/NAME, repeatable)."
    )
    metadata_repo: str = _env(
        "GHAPT_METADATA_REPO", "", "Repository holding the metadata branch (OWNER/NAME)."
    )
    branch: str = _env("GHAPT_BRANCH", "apt-metadata", "Branch the index is committed to.")
    github_token: str = _env("GITHUB_TOKEN", "", "GitHub token (or use a GitHub App).", secret=True)
    github_app_id: str = _env("GHAPT_GITHUB_APP_ID", "", "GitHub App id or client id.")
    github_app_installation_id: str = _env(
        "GHAPT_GITHUB_APP_INSTALLATION_ID", "", "GitHub App installation id."
    )
    github_app_private_key: str = _env(
        "GHAPT_GITHUB_APP_PRIVATE_KEY", "", "GitHub App private key (PEM).", secret=True
    )
    github_app_private_key_file: Path | None = _env(
        "GHAPT_GITHUB_APP_PRIVATE_KEY_FILE", None, "File holding the GitHub App private key (PEM)."
    )
    github_secret_arn: str = _env(
        "GHAPT_GITHUB_SECRET_ARN",
        "",
        "Lambda: Secrets Manager secret with the GitHub token or App key (JSON).",
    )
    github_read_secret_arn: str = _env(
        "GHAPT_GITHUB_READ_SECRET_ARN",
        "",
        "Lambda: Secrets Manager secret with a read-only GitHub credential for the metadata and pool "
        "functions (default: the GHAPT_GITHUB_SECRET_ARN credential).",
    )
    webhook_secret: str = _env(
        "GHAPT_WEBHOOK_SECRET", "", "Shared secret of the GitHub webhook (HMAC-SHA256).", secret=True
    )
    webhook_secret_arn: str = _env(
        "GHAPT_WEBHOOK_SECRET_ARN", "", "Lambda: Secrets Manager secret holding the webhook secret."
    )
    # --- authentication -------------------------------------------------------------------
    realm: str = _env("GHAPT_REALM", "ghapt", "Basic Auth realm in `WWW-Authenticate`.")
    users_file: Path | None = _env(
        "GHAPT_USERS_FILE", None, "Local Basic Auth users (default: STATE_DIR/users.json)."
    )
    users_secret_arn: str = _env(
        "GHAPT_USERS_SECRET_ARN", "", "Lambda: Secrets Manager secret holding the Basic Auth users."
    )
    oidc_issuer: str = _env(
        "GHAPT_OIDC_ISSUER",
        "",
        "Accepted OIDC issuer, exactly (e.g. https://token.actions.githubusercontent.com). "
        "Empty disables OIDC.",
    )
    oidc_audience: str = _env("GHAPT_OIDC_AUDIENCE", "", "Audience ghapt demands in OIDC tokens.")
    oidc_login: str = _env(
        "GHAPT_OIDC_LOGIN", "github-action", "Basic login whose password is an OIDC token."
    )
    oidc_owners: tuple[str, ...] = _env("GHAPT_OIDC_OWNERS", (), "Allowed `repository_owner` names.")
    oidc_owner_ids: tuple[str, ...] = _env(
        "GHAPT_OIDC_OWNER_IDS", (), "Allowed `repository_owner_id`s (preferred over names)."
    )
    oidc_repositories: tuple[str, ...] = _env(
        "GHAPT_OIDC_REPOSITORIES", (), "Allowed `repository` names (OWNER/NAME)."
    )
    oidc_repository_ids: tuple[str, ...] = _env("GHAPT_OIDC_REPOSITORY_IDS", (), "Allowed `repository_id`s.")
    oidc_ref_pattern: str = _env("GHAPT_OIDC_REF_PATTERN", "", "Optional regex the `ref` claim must match.")
    oidc_environment_pattern: str = _env(
        "GHAPT_OIDC_ENVIRONMENT_PATTERN", "", "Optional regex the `environment` claim must match."
    )
    auth_cache_seconds: int = _env(
        "GHAPT_AUTH_CACHE_SECONDS",
        300,
        "How long an authorizer decision is cached per Authorization header (at most 300 s, an OIDC "
        "token's life).",
    )
    token_login: str = _env(
        "GHAPT_TOKEN_LOGIN", "ghapt-token", "Basic login whose password is an exchanged token (POST /token)."
    )
    token_ttl_seconds: int = _env(
        "GHAPT_TOKEN_TTL_SECONDS",
        21600,
        "Lifetime of an exchanged token (default 6 h, a GitHub-hosted job's limit; 60 s to 24 h).",
    )
    token_secret_arn: str = _env(
        "GHAPT_TOKEN_SECRET_ARN",
        "",
        "Lambda: Secrets Manager secret holding the HMAC key of exchanged tokens (locally "
        "STATE_DIR/token.key).",
    )
    # --- AWS ------------------------------------------------------------------------------
    signer: str = _env("GHAPT_SIGNER", "local", "Signing backend: `local` (key in STATE_DIR) or `kms`.")
    kms_key_id: str = _env("GHAPT_KMS_KEY_ID", "", "KMS key (id, ARN or alias) that signs Release.")
    queue_url: str = _env("GHAPT_QUEUE_URL", "", "SQS FIFO queue the webhook enqueues rebuilds on.")
    cache_seconds: int = _env(
        "GHAPT_CACHE_SECONDS",
        30,
        "How often a warm function checks the branch head (seconds); the local backend checks on "
        "every request (a file read).",
    )

    reconcile_seconds: float = _env(
        "GHAPT_RECONCILE_SECONDS",
        3600.0,
        "`ghapt serve` with the GitHub backend: how often to rebuild in case a webhook was missed.",
    )
    poll_seconds: float = _env(
        "GHAPT_POLL_SECONDS", 2.0, "`ghapt serve`: how often the releases folder is checked for changes."
    )
    # --- the guard against mass removal ------------------------------------------------------
    mass_removal_share: float = _env(
        "GHAPT_MASS_REMOVAL_SHARE",
        0.5,
        "A rebuild that would remove more than this share of the published packages, or every "
        "package of one repository, refuses unless mass removal is allowed.",
    )
    allow_mass_removal: bool = _env(
        "GHAPT_ALLOW_MASS_REMOVAL",
        False,
        "Let a rebuild remove more than GHAPT_MASS_REMOVAL_SHARE of the published packages, or empty "
        "a repository (`true` for one deliberate clean-up; leave it `false`).",
    )

    # -------------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Read settings from ``environ``; ``overrides`` (CLI flags, by field name) win when not None."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            env = f.metadata["env"]
            if overrides.get(f.name) is not None:
                values[f.name] = _coerce(f.name, env, overrides[f.name], f.default)
            elif env in environ and environ[env] != "":
                values[f.name] = _coerce(f.name, env, environ[env], f.default)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check each setting's shape; cross-setting needs are checked by the code that needs them."""
        self._check_names()
        self._check_ranges()
        self._check_auth()

    def _check_names(self) -> None:
        if self.backend not in ("local", "github"):
            raise ConfigError(f"GHAPT_BACKEND must be 'local' or 'github', not {self.backend!r}")
        if self.signer not in ("local", "kms"):
            raise ConfigError(f"GHAPT_SIGNER must be 'local' or 'kms', not {self.signer!r}")
        for name, env in (
            ("suite", "GHAPT_SUITE"),
            ("prerelease_suite", "GHAPT_PRERELEASE_SUITE"),
            ("component", "GHAPT_COMPONENT"),
            ("branch", "GHAPT_BRANCH"),
        ):
            if not _NAME_RE.match(getattr(self, name)):
                raise ConfigError(f"{env}={getattr(self, name)!r} is not a valid name")
        try:
            parse_routes(self.routes, prerelease_suite=self.prerelease_suite)
        except RoutingError as exc:
            raise ConfigError(f"GHAPT_ROUTES: {exc}") from None
        if not self.architectures:
            raise ConfigError("GHAPT_ARCHITECTURES must list at least one architecture, e.g. 'amd64'")
        for arch in self.architectures:
            if arch == "all" or not _NAME_RE.match(arch):
                raise ConfigError(
                    f"GHAPT_ARCHITECTURES: {arch!r} is not a binary architecture (`all` is implied)"
                )
        for repo in (*self.github_repos, *((self.metadata_repo,) if self.metadata_repo else ())):
            if not _REPO_RE.match(repo):
                raise ConfigError(f"{repo!r} is not OWNER/NAME (GHAPT_GITHUB_REPOS, GHAPT_METADATA_REPO)")
        if not self.api_url.startswith(("https://", "http://")):
            raise ConfigError(f"GITHUB_API_URL must be an http(s) URL, not {self.api_url!r}")

    def _check_ranges(self) -> None:
        bounds: tuple[tuple[bool, str], ...] = (
            (self.byhash_generations >= 1, "GHAPT_BYHASH_GENERATIONS must be at least 1"),
            (0 <= self.port <= 65535, f"GHAPT_PORT={self.port} is not a port number"),
            (1 <= self.threads <= 256, f"GHAPT_THREADS={self.threads} must be between 1 and 256"),
            (
                0 <= self.workers <= MAX_WORKERS,
                f"GHAPT_WORKERS={self.workers} must be between 1 and {MAX_WORKERS}, or 0 for one per CPU",
            ),
            (
                self.connection_limit >= 4,
                f"GHAPT_CONNECTION_LIMIT={self.connection_limit} must be at least 4",
            ),
            (
                0 < self.channel_timeout <= 3600,
                f"GHAPT_CHANNEL_TIMEOUT={self.channel_timeout} must be between 0 and 3600 seconds",
            ),
            (
                0 <= self.auth_cache_seconds <= 300,
                "GHAPT_AUTH_CACHE_SECONDS must be between 0 and 300: a cached decision must not outlive "
                "the OIDC token it was made for",
            ),
            (
                0.0 <= self.mass_removal_share <= 1.0,
                "GHAPT_MASS_REMOVAL_SHARE must be between 0 and 1 (0.5: half the packages)",
            ),
            (
                60 <= self.token_ttl_seconds <= 86400,
                "GHAPT_TOKEN_TTL_SECONDS must be between 60 and 86400 (24 h)",
            ),
        )
        for ok, message in bounds:
            if not ok:
                raise ConfigError(message)

    def _check_auth(self) -> None:
        if not self.token_login or any(c.isspace() or c == ":" for c in self.token_login):
            raise ConfigError("GHAPT_TOKEN_LOGIN must be a non-empty login without whitespace or ':'")
        if self.token_login == self.oidc_login:
            raise ConfigError("GHAPT_TOKEN_LOGIN must differ from GHAPT_OIDC_LOGIN")
        if self.oidc_issuer and not self.oidc_audience:
            raise ConfigError(
                "GHAPT_OIDC_AUDIENCE is required with GHAPT_OIDC_ISSUER: demand ghapt's own audience, "
                "never GitHub's default"
            )
        for name, env in (
            ("oidc_ref_pattern", "GHAPT_OIDC_REF_PATTERN"),
            ("oidc_environment_pattern", "GHAPT_OIDC_ENVIRONMENT_PATTERN"),
        ):
            try:
                re.compile(getattr(self, name))
            except re.error as exc:
                raise ConfigError(f"{env} is not a valid regular expression: {exc}") from None

    # --- derived values and requirements ----------------------------------------------------
    def require(self, *names: str) -> None:
        """Raise ``ConfigError`` naming every variable among ``names`` (field names) that is unset."""
        missing = [_ENV_OF[n] for n in names if getattr(self, n) in (None, "", ())]
        if missing:
            raise ConfigError("missing setting(s): " + ", ".join(missing))

    @property
    def suites(self) -> tuple[str, ...]:
        """Every suite the index publishes: the default first, then pre-release and routed ones."""
        return Routing.from_settings(self).suites

    @property
    def serving_processes(self) -> int:
        """How many processes ``ghapt serve`` answers with: ``workers``, or one per CPU this
        process may run on; one where processes cannot be forked."""
        if not hasattr(os, "fork"):
            return 1
        if self.workers:
            return self.workers
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, min(cpus or 1, MAX_WORKERS))

    @property
    def users_path(self) -> Path | None:
        if self.users_file is not None:
            return self.users_file
        return self.state_dir / "users.json" if self.state_dir is not None else None

    def describe(self) -> dict[str, str]:
        """Settings as env-name -> printable value, secrets masked (for logs and `--help`)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                out[f.metadata["env"]] = "***"
            else:
                out[f.metadata["env"]] = " ".join(value) if isinstance(value, tuple) else str(value or "")
        return out


_ENV_OF: dict[str, str] = {f.name: str(f.metadata["env"]) for f in fields(Settings)}


def env_name(field_name: str) -> str:
    return _ENV_OF[field_name]


def reference() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the README's configuration table."""
    rows = []
    for f in fields(Settings):
        default = f.default
        shown = " ".join(default) if isinstance(default, tuple) else ("" if default is None else str(default))
        rows.append((f.metadata["env"], shown, f.metadata["doc"]))
    return rows


def _coerce(name: str, env: str, raw: Any, default: Any) -> Any:
    if isinstance(raw, str):
        raw = raw.strip()
    hint = Settings.__dataclass_fields__[name].type
    try:
        if isinstance(default, bool):
            word = str(raw).lower()
            if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(word)
            return word in ("1", "true", "yes", "on")
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, tuple):
            return tuple(raw) if isinstance(raw, list | tuple) else _words(str(raw))
        if "Path" in str(hint):
            return Path(str(raw)).expanduser()
        return str(raw)
    except ValueError:
        raise ConfigError(f"{env}={raw!r} is not a valid {type(default).__name__}") from None
