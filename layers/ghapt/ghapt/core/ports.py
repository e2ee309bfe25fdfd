"""The narrow interfaces the domain talks to. Adapters: local folder/git, GitHub, AWS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from ghapt.core.model import Asset, DebInfo


@runtime_checkable
class ReleaseSource(Protocol):
    """Where .deb files are published (a folder of releases, GitHub Releases)."""

    def list_assets(self) -> list[Asset]:
        """Every .deb asset that should feed the index, drafts excluded. Order does not matter."""
        ...

    def read_deb(self, asset: Asset) -> DebInfo:
        """Read the control data and hashes of one asset. Raises ``BadDebError``."""
        ...

    def download_url(self, locator: Mapping[str, str], base_url: str) -> str:
        """A short-lived URL the client can fetch the bytes from without our credentials.

        ``base_url`` is the public URL of the API (scheme://host[/stage]) for sources that
        serve the bytes themselves, like the local folder."""
        ...


@runtime_checkable
class MetadataStore(Protocol):
    """A versioned tree of files (the ``apt-metadata`` branch). Each commit is atomic."""

    def head(self) -> str | None:
        """The branch's current commit id, or None when the branch does not exist yet."""
        ...

    def list_files(self, commit: str) -> dict[str, str]:
        """Every file path in ``commit`` mapped to its blob id (a content hash)."""
        ...

    def file_sizes(self, commit: str) -> dict[str, int]:
        """Every file path in ``commit`` mapped to its size in bytes, from the tree listing.

        Never by reading a blob: the serving path checks a size before it reads anything."""
        ...

    def read_file(self, commit: str, path: str) -> bytes | None:
        """The file's bytes at ``commit``, or None when it does not exist there."""
        ...

    def commit_time(self, commit: str) -> int:
        """The commit's committer time, in Unix seconds."""
        ...

    def commit_files(self, base: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        """Write ``changes`` (None deletes a path) on top of ``base`` in one commit and move the branch.

        The branch only moves if it still points at ``base`` (fast-forward, never forced);
        otherwise ``StaleHead`` is raised and nothing is published. Returns the new commit id."""
        ...


@runtime_checkable
class Signer(Protocol):
    """Signs Release files. Backends: a local OpenPGP key, an AWS KMS key."""

    @property
    def fingerprint(self) -> str:
        """The OpenPGP v4 fingerprint, upper-case hex."""
        ...

    @property
    def key_id(self) -> str:
        """The long key id (the fingerprint's last 16 hex digits)."""
        ...

    @property
    def created(self) -> int:
        """The key's creation time (Unix seconds), part of its fingerprint."""
        ...

    def public_key(self) -> bytes:
        """The binary transferable public key (for ``Signed-By`` ``.gpg`` files)."""
        ...

    def public_key_armored(self) -> str:
        """The ASCII-armored public key (``.asc``)."""
        ...

    def clearsign(self, data: bytes) -> bytes:
        """A cleartext-signed copy of ``data`` (InRelease)."""
        ...

    def detach_sign(self, data: bytes) -> bytes:
        """An armored detached signature of ``data`` (Release.gpg)."""
        ...


@runtime_checkable
class Secrets(Protocol):
    """Named secrets: Secrets Manager in Lambda, environment or files locally."""

    def get(self, name: str) -> str:
        """The secret's value. Raises ``ConfigError`` naming the secret when it is missing."""
        ...


@runtime_checkable
class RebuildQueue(Protocol):
    """Where a webhook puts rebuild requests (SQS FIFO in AWS, in-process locally)."""

    def enqueue(self, reason: str, delivery_id: str, digest: str = "") -> bool:
        """Ask for a rebuild; False when it is a duplicate that causes no work.

        The same ``delivery_id`` (a GitHub redelivery) or the same body ``digest`` (a captured
        delivery replayed under fresh ids) within the dedup window is a duplicate."""
        ...


@runtime_checkable
class UserStore(Protocol):
    """Where the authorizer looks users up."""

    def lookup(self, name: str) -> str | None:
        """The stored hash of ``name``, or None when there is no such user."""
        ...
