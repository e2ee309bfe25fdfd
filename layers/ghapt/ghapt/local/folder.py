"""The local release source: a folder with one sub-folder per release tag holding .deb files.

The pool's redirect target is a URL on the local server itself, signed with HMAC and
expiring like GitHub's storage URLs, so clients fetch bytes without repository credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ghapt.core.errors import BadRequest, NotFound
from ghapt.core.model import Asset, DebInfo
from ghapt.deb.reader import read_deb_path
from ghapt.local.signedurls import SignedUrls


class FolderReleaseSource:
    """``ReleaseSource`` over ``releases_dir/<tag>/*.deb``."""

    def __init__(self, releases_dir: Path, suite: str, url_signer: SignedUrls) -> None:
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
