"""The composition root: adapters chosen from ``Settings``, each built on first use.

Each Lambda function touches only what it needs (the pool function never loads the signer,
the authorizer never lists releases), so cold starts stay small.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .ports import MetadataStore, ReleaseSource, Signer
from .serving import BranchCache, PoolResolver
from .settings import Settings

if TYPE_CHECKING:
    from .authorizer import Authenticator
    from .rebuild import Indexer, RebuildResult
    from .tokens import TokenService


class Services:
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
    def asset_urls(self) -> Any:
        from .localsource import AssetUrlSigner

        return AssetUrlSigner.from_state(self._state_dir())

    # --- ports ------------------------------------------------------------------------------
    @cached_property
    def store(self) -> MetadataStore:
        if self.settings.backend == "local":
            from .gitstore import BlobUrlSigner, LocalGitStore

            links = BlobUrlSigner(self.asset_urls.key)  # too-large files: signed /_blobs/ URLs
            return LocalGitStore(self._state_dir() / "metadata.git", self.settings.branch, links=links)
        from .githubstore import GitHubBranchStore

        self.settings.require("metadata_repo")
        return GitHubBranchStore(self.github, self.settings.metadata_repo, self.settings.branch)

    @cached_property
    def source(self) -> ReleaseSource:
        if self.settings.backend == "local":
            from .localsource import FolderReleaseSource

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
            return FolderReleaseSource(self.settings.releases_dir, self.settings.suite, self.asset_urls)
        from .githubsource import GitHubReleaseSource

        self.settings.require("github_repos")
        return GitHubReleaseSource(
            self.github,
            self.settings.github_repos,
            suite=self.settings.suite,
            prerelease_suite=self.settings.prerelease_suite,
        )

    @cached_property
    def signer(self) -> Signer:
        if self.settings.signer == "kms":
            import boto3

            from .kms import kms_signer

            self.settings.require("kms_key_id")
            return kms_signer(boto3.client("kms"), self.settings.kms_key_id)
        from .signing import local_signer

        return local_signer(self._state_dir())

    @cached_property
    def secrets(self) -> Any:
        from .secrets import AwsSecrets, EnvSecrets

        if (
            self.settings.github_secret_arn
            or self.settings.users_secret_arn
            or self.settings.webhook_secret_arn
            or self.settings.token_secret_arn
        ):
            return AwsSecrets()
        return EnvSecrets(self.environ, {})

    @cached_property
    def github(self) -> Any:
        from .github import GitHubClient
        from .secrets import github_auth_from_settings

        auth = github_auth_from_settings(self.settings, self.secrets)
        return GitHubClient(self.settings.api_url, auth, on_call=self.on_github_call)

    @cached_property
    def authenticator(self) -> Authenticator:
        from .authorizer import settings_authenticator

        return settings_authenticator(self.settings, self.secrets)

    @cached_property
    def tokens(self) -> TokenService | None:
        """Token exchange (``POST /token``); None when OIDC or a token key is not configured."""
        from .tokens import settings_tokens

        return settings_tokens(self.settings)

    @cached_property
    def webhook_secret(self) -> bytes:
        from .errors import NotFound

        if self.settings.webhook_secret:
            return self.settings.webhook_secret.encode()
        if self.settings.webhook_secret_arn:
            return str(self.secrets.get(self.settings.webhook_secret_arn)).encode()
        raise NotFound("the webhook is not configured: set GHAPT_WEBHOOK_SECRET or GHAPT_WEBHOOK_SECRET_ARN")

    @cached_property
    def queue(self) -> Any:
        from .queues import LocalQueue, SqsQueue

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
        return BranchCache(self.store, ttl=self.settings.cache_seconds)

    @cached_property
    def pool(self) -> PoolResolver:
        return PoolResolver(self.branch_cache, self.source)

    @cached_property
    def indexer(self) -> Indexer:
        from .rebuild import Indexer

        return Indexer(self.source, self.store, self.signer, self.settings)
