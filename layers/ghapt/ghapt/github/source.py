"""GitHub Releases as the release source: every non-draft release's uploaded ``.deb`` assets.

Identity and change detection: an asset's key is ``github:OWNER/NAME:ASSET_ID`` and its
fingerprint is GitHub's ``digest`` (``sha256:<hex>``) when present, else ``updated_at:size``
for assets uploaded before GitHub computed digests. Package names and versions always come
from the control data, never from asset names (GitHub renames ``~ : %`` and spaces to dots).

Reading cost, and the MD5sum/SHA1 decision:

* With a ``digest`` we already know the SHA256 and the size, so only the ar header and the
  control member are fetched, with Range requests on the storage URL (usually two small reads,
  whatever the size of the .deb). The stanza then carries ``SHA256`` only: md5/sha1/sha512
  stay None. That is deliberate. apt verifies a download with the strongest hash the index
  lists and treats a repository whose Release has SHA256 as secure; ``MD5sum``/``SHA1`` in
  Packages are a legacy of dpkg-scanpackages that no current apt needs. Downloading every asset
  in full (up to 2 GiB each) on every new release, just to compute two weak hashes nobody
  checks, would cost far more than it gives, and SHA512 alone does not justify it either.
* Without a digest the whole file is streamed once through ``read_deb`` (bounded memory), and
  all four hashes come from that one pass.
* If the storage host ignores Range (answers 200 with the whole body), the digest path falls
  back to streaming once and checks the streamed SHA256 against the digest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ghapt.core.errors import BadDebError
from ghapt.core.model import Asset, DebInfo, Hashes
from ghapt.deb.reader import read_control_by_ranges, read_deb
from ghapt.github.client import GitHubClient, RangeIgnored

log = logging.getLogger(__name__)

_DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")


class GitHubReleaseSource:
    """``ReleaseSource`` over the releases of ``repos`` (``OWNER/NAME`` each)."""

    def __init__(
        self, client: GitHubClient, repos: Iterable[str], *, suite: str, prerelease_suite: str
    ) -> None:
        self.client = client
        self.repos = tuple(repos)
        self.suite = suite
        self.prerelease_suite = prerelease_suite

    def list_assets(self) -> list[Asset]:
        assets: list[Asset] = []
        for repo in self.repos:
            # Conditional (ETag) listing: an unchanged page costs no rate limit.
            for release in self.client.paginate(f"repos/{repo}/releases", cache=True):
                if release.get("draft"):
                    continue
                suite = self.prerelease_suite if release.get("prerelease") else self.suite
                for raw in release.get("assets") or ():
                    asset = self._asset(repo, release, raw, suite)
                    if asset is not None:
                        assets.append(asset)
        return assets

    def _asset(
        self, repo: str, release: Mapping[str, Any], raw: Mapping[str, Any], suite: str
    ) -> Asset | None:
        name = str(raw.get("name") or "")
        if not name.lower().endswith(".deb") or raw.get("state") != "uploaded":
            return None
        asset_id = str(raw["id"])
        size = int(raw.get("size") or 0)
        match = _DIGEST_RE.match(str(raw.get("digest") or "").lower())
        sha256 = match.group(1) if match else None
        fingerprint = f"sha256:{sha256}" if sha256 else f"{raw.get('updated_at')}:{size}"
        return Asset(
            key=f"github:{repo}:{asset_id}",
            fingerprint=fingerprint,
            name=name,
            release=str(release.get("tag_name") or ""),
            suite=suite,
            size=size,
            sha256=sha256,
            locator={"repo": repo, "asset_id": asset_id},
            release_url=str(release.get("html_url") or ""),
        )

    def read_deb(self, asset: Asset) -> DebInfo:
        url = self.client.asset_url(asset.locator["repo"], asset.locator["asset_id"])
        if asset.sha256:
            ignored = False

            def fetch(start: int, end: int) -> bytes:
                nonlocal ignored
                try:
                    return self.client.fetch_range(url, start, end)
                except RangeIgnored:
                    ignored = True
                    raise

            try:
                control = read_control_by_ranges(fetch, asset.size, asset.name)
            except Exception:
                # Whatever the parser made of it, a host that ignores Range means: stream instead.
                if not ignored:
                    raise
                log.info("%s: the storage host ignores Range, streaming the whole file", asset.name)
            else:
                return DebInfo(control=control, size=asset.size, hashes=Hashes(sha256=asset.sha256))
        with self.client.open_stream(url) as stream:
            info = read_deb(stream, asset.name)
        if asset.sha256 and info.hashes.sha256 != asset.sha256:
            raise BadDebError(asset.name, "content does not match GitHub's sha256 digest")
        return info

    def download_url(self, locator: Mapping[str, str], base_url: str) -> str:
        """The storage host's signed URL (about 5 minutes); the pool function redirects to it.

        Never the API URL: if GitHub serves the bytes itself, the client gets a 503 instead."""
        return self.client.storage_url(locator["repo"], locator["asset_id"])
