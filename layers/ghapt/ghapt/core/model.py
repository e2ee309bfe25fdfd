"""Plain value types shared by every module."""

from __future__ import annotations

from dataclasses import dataclass, field

# A control paragraph in file order: (field name as written, value). The value keeps
# continuation lines verbatim, joined with "\n"; only the first line's leading blank is gone.
Control = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Hashes:
    """Digests of a whole .deb, hex. md5/sha1/sha512 are None when only GitHub's sha256 is known."""

    sha256: str
    md5: str | None = None
    sha1: str | None = None
    sha512: str | None = None


@dataclass(frozen=True)
class DebInfo:
    """What the index needs from one .deb: its control paragraph, size and hashes."""

    control: Control
    size: int
    hashes: Hashes
    _fields: dict[str, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # The first value of each field by lowercased name, once: sorting 10,000 packages asks often.
        found: dict[str, str] = {}
        for key, value in self.control:
            found.setdefault(key.lower(), value)
        object.__setattr__(self, "_fields", found)

    def field(self, name: str) -> str | None:
        return self._fields.get(name.lower())

    @property
    def package(self) -> str:
        return self._fields.get("package") or ""

    @property
    def version(self) -> str:
        return self._fields.get("version") or ""

    @property
    def architecture(self) -> str:
        return self._fields.get("architecture") or ""

    @property
    def source(self) -> str:
        """Source package name (without a "(version)" suffix); the package itself when absent."""
        src = self.field("Source")
        return src.split()[0] if src else self.package


@dataclass(frozen=True)
class Asset:
    """One .deb published by a release source.

    ``key`` is its stable identity (e.g. ``github:owner/repo:123`` or ``local:v1.0/x.deb``);
    ``fingerprint`` changes whenever its content may have changed (digest, or updated_at+size).
    A rebuild reuses the stanza of an asset whose key and fingerprint it has seen before.
    """

    key: str
    fingerprint: str
    name: str
    release: str
    suite: str
    size: int
    sha256: str | None = None
    # Source-specific data the pool needs to find the bytes again (repo, asset id, path, ...).
    locator: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # The release's web page (GitHub's ``html_url``), for the repository page; "" when there is none.
    release_url: str = field(default="", compare=False, hash=False)


@dataclass(frozen=True)
class IndexedAsset:
    """An asset that made it into the index: the asset, its deb info and its pool path."""

    asset: Asset
    deb: DebInfo
    pool_path: str


@dataclass(frozen=True)
class Skipped:
    """An asset left out of the index, and why (broken .deb, conflict, ...)."""

    asset: Asset
    reason: str
