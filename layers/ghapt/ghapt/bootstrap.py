"""The composition root: the only place that chooses adapters, from ``Settings``.

Each adapter is built on first use, so each Lambda function touches only what it needs (the
pool function never loads the signer, the authorizer never lists releases) and cold starts
stay small. Imports of adapters are lazy for the same reason.

GitHub is reached through two clients: ``github`` (the indexer's: patient, and the credential
that may write the metadata branch) and ``serving_github`` (the metadata and pool functions':
the serving profile's short time budget, and the read-only credential of
``GHAPT_GITHUB_READ_SECRET_ARN`` when one is configured). Serving code only ever gets the
second, through ``serving_store`` and ``serving_source``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghapt.core.errors import ConfigError
from ghapt.core.ports import MetadataStore, ReleaseSource, Signer
from ghapt.core.settings import Settings

if TYPE_CHECKING:
    from ghapt.auth.authenticator import Authenticator
    from ghapt.auth.oidc import OidcRules
    from ghapt.auth.tokens import TokenService
    from ghapt.core.ports import RebuildQueue, Secrets, UserStore
    from ghapt.github.client import ClientProfile, GitHubClient
    from ghapt.indexer import Indexer, RebuildResult
    from ghapt.local.signedurls import SignedUrls
    from ghapt.serving import BranchCache, PoolResolver


class Services:
    """Every adapter and service of one process, built from one ``Settings``."""

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        *,
        on_github_call: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.environ = dict(environ or {})
        self.on_github_call = on_github_call

    # --- local mode pieces ------------------------------------------------------------------
    def _state_dir(self) -> Path:
        if self.settings.state_dir is None:
            raise ConfigError("GHAPT_STATE_DIR (--state) is required for the local backend and signer")
        return self.settings.state_dir

    @cached_property
    def url_key(self) -> bytes:
        from ghapt.local.signedurls import load_url_key

        return load_url_key(self._state_dir())

    @cached_property
    def asset_urls(self) -> SignedUrls:
        from ghapt.local.signedurls import ASSET_PREFIX, SignedUrls

        return SignedUrls(self.url_key, ASSET_PREFIX, "asset")

    # --- ports ------------------------------------------------------------------------------
    @cached_property
    def store(self) -> MetadataStore:
        """The metadata branch as the indexer reaches it (patient client, write credential)."""
        if self.settings.backend == "local":
            from ghapt.local.gitstore import LocalGitStore

            return LocalGitStore(self._state_dir() / "metadata.git", self.settings.branch)
        return self._github_store(self.github)

    @cached_property
    def serving_store(self) -> MetadataStore:
        """The metadata branch as the serving path reads it (serving profile, read credential)."""
        if self.settings.backend == "local":
            return self.store
        return self._github_store(self.serving_github)

    def _github_store(self, client: GitHubClient) -> MetadataStore:
        from ghapt.github.store import GitHubBranchStore

        self.settings.require("metadata_repo")
        return GitHubBranchStore(client, self.settings.metadata_repo, self.settings.branch)

    @cached_property
    def source(self) -> ReleaseSource:
        """The releases as the indexer reads them (patient client)."""
        if self.settings.backend == "local":
            return self._folder_source()
        return self._github_source(self.github)

    @cached_property
    def serving_source(self) -> ReleaseSource:
        """The releases as the pool resolves them (serving profile, read credential)."""
        if self.settings.backend == "local":
            return self.source
        return self._github_source(self.serving_github)

    def _folder_source(self) -> ReleaseSource:
        from ghapt.local.folder import FolderReleaseSource

        missing = [
            hint
            for value, hint in (
                (self.settings.releases_dir, "GHAPT_RELEASES_DIR (--releases)"),
                (self.settings.state_dir, "GHAPT_STATE_DIR (--state)"),
            )
            if value is None
        ]
        if missing or self.settings.releases_dir is None:
            raise ConfigError("the local backend needs " + " and ".join(missing))
        return FolderReleaseSource(self.settings.releases_dir, self.settings.suite, lambda: self.asset_urls)

    def _github_source(self, client: GitHubClient) -> ReleaseSource:
        from ghapt.github.source import GitHubReleaseSource

        self.settings.require("github_repos")
        return GitHubReleaseSource(
            client,
            self.settings.github_repos,
            suite=self.settings.suite,
            prerelease_suite=self.settings.prerelease_suite,
        )

    @property
    def uses_kms(self) -> bool:
        """KMS signs when it is the configured signer or a KMS key is named (``--kms-key-id``)."""
        return self.settings.signer == "kms" or bool(self.settings.kms_key_id)

    @cached_property
    def kms_client(self) -> Any:
        import boto3

        return boto3.client("kms")

    @cached_property
    def signer(self) -> Signer:
        if self.uses_kms:
            from ghapt.aws.kms import kms_signer

            if not self.settings.kms_key_id:
                raise ConfigError("GHAPT_SIGNER=kms needs GHAPT_KMS_KEY_ID (--kms-key-id ID)")
            return kms_signer(self.kms_client, self.settings.kms_key_id)
        if self.settings.state_dir is None:
            raise ConfigError(
                "no signing key given: pass --state DIR (GHAPT_STATE_DIR) for the local key, "
                "or --kms-key-id ID (GHAPT_KMS_KEY_ID) for a KMS key"
            )
        from ghapt.signing.localkey import local_signer

        return local_signer(self.settings.state_dir)

    @cached_property
    def secrets(self) -> Secrets:
        from ghapt.aws.secrets import AwsSecrets
        from ghapt.local.secrets import EnvSecrets

        if (
            self.settings.github_secret_arn
            or self.settings.github_read_secret_arn
            or self.settings.users_secret_arn
            or self.settings.webhook_secret_arn
            or self.settings.token_secret_arn
        ):
            return AwsSecrets()
        return EnvSecrets(self.environ, {})

    @cached_property
    def github(self) -> GitHubClient:
        """The indexer's client: the patient profile and the credential that may write."""
        from ghapt.github.client import PATIENT

        return self._github_client(PATIENT, self.settings.github_secret_arn)

    @cached_property
    def serving_github(self) -> GitHubClient:
        """The serving path's client: a bounded time per request, and the read-only credential
        (``GHAPT_GITHUB_READ_SECRET_ARN``) when there is one; otherwise (one local process) the
        same credential as the indexer."""
        from ghapt.github.client import SERVING

        return self._github_client(
            SERVING, self.settings.github_read_secret_arn or self.settings.github_secret_arn
        )

    def _github_client(self, profile: ClientProfile, secret_arn: str) -> GitHubClient:
        from ghapt.github.auth import github_auth_from_settings
        from ghapt.github.client import GitHubClient

        auth = github_auth_from_settings(self.settings, self.secrets, secret_arn=secret_arn)
        return GitHubClient(
            self.settings.api_url, auth, on_call=self.on_github_call, **profile.client_kwargs()
        )

    def serving_budget(self) -> AbstractContextManager[None]:
        """Scope one served request: every GitHub call inside shares the serving time budget."""
        if self.settings.backend != "github":
            return nullcontext()
        return self.serving_github.within_budget()

    @cached_property
    def authenticator(self) -> Authenticator:
        return settings_authenticator(self.settings, self.secrets)

    @cached_property
    def tokens(self) -> TokenService | None:
        """Token exchange (``POST /token``); None when OIDC or a token key is not configured."""
        return settings_tokens(self.settings, self.secrets.get)

    @cached_property
    def webhook_secret(self) -> bytes:
        from ghapt.core.errors import NotFound

        if self.settings.webhook_secret:
            return self.settings.webhook_secret.encode()
        if self.settings.webhook_secret_arn:
            return str(self.secrets.get(self.settings.webhook_secret_arn)).encode()
        raise NotFound("the webhook is not configured: set GHAPT_WEBHOOK_SECRET or GHAPT_WEBHOOK_SECRET_ARN")

    @cached_property
    def queue(self) -> RebuildQueue:
        from ghapt.aws.queue import SqsQueue
        from ghapt.local.queue import LocalQueue

        if self.settings.queue_url:
            import boto3

            return SqsQueue(self.settings.queue_url, boto3.client("sqs"))

        return LocalQueue(self.rebuild_now)

    def rebuild_now(self) -> RebuildResult:
        """Rebuild in this process, and make this process's own readers see the new head at once."""
        result = self.indexer.rebuild()
        if result.changed:
            self.branch_cache.invalidate()
        return result

    # --- serving and indexing ---------------------------------------------------------------
    @cached_property
    def branch_cache(self) -> BranchCache:
        """Locally the head check is a file read, so every request looks (a ``ghapt rebuild`` from
        another process is served at once); on GitHub it is an API call, made once per window."""
        ttl = 0.0 if self.settings.backend == "local" else float(self.settings.cache_seconds)
        from ghapt.serving import BranchCache  # the HTTP side only: a rebuild never needs it

        return BranchCache(self.serving_store, ttl=ttl)

    @cached_property
    def pool(self) -> PoolResolver:
        from ghapt.serving import PoolResolver

        return PoolResolver(self.branch_cache, self.serving_source)

    @cached_property
    def indexer(self) -> Indexer:
        from ghapt.indexer import Indexer

        return Indexer(self.source, self.store, self.signer, self.settings)


def settings_authenticator(settings: Settings, secrets: Secrets | None = None) -> Authenticator:
    """The authenticator ``settings`` describe.

    Users come from the Secrets Manager secret when ``GHAPT_USERS_SECRET_ARN`` is set (read
    through ``secrets`` when given, else Powertools), otherwise from the local users file.
    OIDC is on when ``GHAPT_OIDC_ISSUER`` is set; exchanged tokens are accepted with it when a
    token key is configured (``GHAPT_TOKEN_SECRET_ARN`` or the state dir)."""
    from ghapt.auth.authenticator import Authenticator
    from ghapt.auth.oidc import OidcRules, OidcVerifier

    users: UserStore | None = None
    if settings.users_secret_arn:
        from ghapt.aws.usersecret import SecretUsers

        fetch = secrets.get if secrets is not None else None
        users = SecretUsers(settings.users_secret_arn, fetch=fetch)
    elif settings.users_path is not None:
        from ghapt.auth.userfile import UserFile

        users = UserFile(settings.users_path)
    oidc = None
    tokens = None
    if settings.oidc_issuer:
        settings.require("oidc_audience")
        rules = OidcRules.from_settings(settings)
        oidc = OidcVerifier(settings.oidc_issuer, settings.oidc_audience, rules)
        tokens = settings_tokens(settings, secrets.get if secrets is not None else None, rules)
    return Authenticator(users, oidc, settings.oidc_login, tokens=tokens)


def settings_tokens(
    settings: Settings, fetch: Callable[[str], str] | None = None, rules: OidcRules | None = None
) -> TokenService | None:
    """The token service ``settings`` describe, or None when OIDC (hence exchange) is off.

    The key comes from ``GHAPT_TOKEN_SECRET_ARN`` (read through ``fetch``, else Powertools) or,
    without it, from ``STATE_DIR/token.key``. Without either, exchange is off too."""
    from ghapt.auth.tokens import KEY_FILE, KeySource, TokenService, file_key, secret_key

    if not settings.oidc_issuer:
        return None
    key: KeySource
    if settings.token_secret_arn:
        if fetch is None:
            from ghapt.aws.secrets import AwsSecrets

            fetch = AwsSecrets().get
        key = secret_key(settings.token_secret_arn, fetch)
    elif settings.state_dir is not None:
        key = file_key(settings.state_dir / KEY_FILE)
    else:
        return None
    return TokenService(
        key,
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        login=settings.token_login,
        ttl=settings.token_ttl_seconds,
        rules=rules,
    )
