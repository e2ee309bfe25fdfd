"""The local release source: a folder with one sub-folder per release tag holding .deb files.

The pool's redirect target is a URL on the local server itself, signed with HMAC and
expiring like GitHub's storage URLs, so clients fetch bytes without repository credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote, unquote

from .debfile import read_deb_path
from .errors import BadRequest, Forbidden, NotFound
from .model import Asset, DebInfo

URL_LIFETIME = 300  # seconds, like GitHub's signed storage URLs
ASSET_PREFIX = "/_assets/"


class FolderReleaseSource:
    """``ReleaseSource`` over ``releases_dir/<tag>/*.deb``."""

    def __init__(self, releases_dir: Path, suite: str, url_signer: AssetUrlSigner) -> None:
        self.root = Path(releases_dir)
        self.suite = suite
        self.url_signer = url_signer

    def list_assets(self) -> list[Asset]:
        assets: list[Asset] = []
        if not self.root.is_dir():
            return assets
        for tag_dir in sorted(self.root.iterdir()):
            if not tag_dir.is_dir() or tag_dir.name.startswith("."):
                continue
            for deb in sorted(tag_dir.iterdir()):
                if deb.suffix != ".deb" or deb.name.startswith(".") or not deb.is_file():
                    continue
                st = deb.stat()
                rel = f"{tag_dir.name}/{deb.name}"
                assets.append(
                    Asset(
                        key=f"local:{rel}",
                        fingerprint=f"{st.st_size}:{st.st_mtime_ns}",
                        name=deb.name,
                        release=tag_dir.name,
                        suite=self.suite,
                        size=st.st_size,
                        locator={"path": rel, "fingerprint": f"{st.st_size}:{st.st_mtime_ns}"},
                    )
                )
        return assets

    def read_deb(self, asset: Asset) -> DebInfo:
        return read_deb_path(self.resolve(asset.locator["path"]), asset.name)

    def download_url(self, locator: Mapping[str, str], base_url: str) -> str:
        return self.url_signer.url(base_url, locator["path"], locator.get("fingerprint", ""))

    def resolve(self, rel: str) -> Path:
        """The file for a release-relative path, refusing anything outside the folder."""
        parts = rel.split("/")
        if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            raise BadRequest(f"bad asset path {rel!r}")
        path = self.root / parts[0] / parts[1]
        root = self.root.resolve()
        real = path.resolve()
        if root not in real.parents:
            raise NotFound(f"asset {rel!r} is outside the releases folder")
        return path

    def fingerprint_of(self, rel: str) -> str:
        st = self.resolve(rel).stat()
        return f"{st.st_size}:{st.st_mtime_ns}"


class AssetUrlSigner:
    """Signs and checks ``/_assets/<tag>/<file>?expires=..&fp=..&sig=..`` URLs."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("asset URL key must be at least 32 bytes")
        self.key = key
        self.clock = clock

    @classmethod
    def from_state(cls, state_dir: Path) -> AssetUrlSigner:
        """Load the key from ``state_dir/asset-url.key``, creating it (0600) on first use."""
        path = Path(state_dir) / "asset-url.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        return cls(path.read_bytes())

    def _sig(self, rel: str, expires: int, fp: str) -> str:
        msg = f"{rel}\n{expires}\n{fp}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()

    def url(self, base_url: str, rel: str, fp: str) -> str:
        expires = int(self.clock()) + URL_LIFETIME
        query = f"expires={expires}&fp={quote(fp, safe='')}&sig={self._sig(rel, expires, fp)}"
        return f"{base_url.rstrip('/')}{ASSET_PREFIX}{quote(rel)}?{query}"

    def check(self, raw_rel: str, query: Mapping[str, str]) -> tuple[str, str]:
        """Return (release-relative path, fingerprint) of a valid URL; raise Forbidden otherwise."""
        rel = unquote(raw_rel)
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            raise Forbidden("asset URL has no valid expiry") from None
        fp = query.get("fp", "")
        if not hmac.compare_digest(self._sig(rel, expires, fp), query.get("sig", "")):
            raise Forbidden("asset URL signature is invalid")
        if expires < self.clock():
            raise Forbidden("asset URL has expired")
        return rel, fp
