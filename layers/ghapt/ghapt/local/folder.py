"""The local release source: a folder with one sub-folder per release tag holding .deb files.

The pool's redirect target is a URL on the local server itself, signed with HMAC and
expiring like GitHub's storage URLs, so clients fetch bytes without repository credentials.

One odd entry never stops the rest from publishing: a directory, FIFO, dangling symlink or
symlink leading out of the folder that is named ``*.deb``, or a name that is not UTF-8, is
listed as an asset whose reading fails with the reason, so the rebuild skips it and says why.
A folder that is missing or unreadable is a configuration error, never an empty repository.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ghapt.core.errors import BadDebError, BadRequest, ConfigError, GhaptError, NotFound, SourceChanged
from ghapt.core.model import Asset, DebInfo
from ghapt.deb.reader import read_deb

if TYPE_CHECKING:
    from ghapt.local.signedurls import SignedUrls


class FolderReleaseSource:
    """``ReleaseSource`` over ``releases_dir/<tag>/*.deb``."""

    def __init__(self, releases_dir: Path, suite: str, url_signer: Callable[[], SignedUrls]) -> None:
        """``url_signer`` makes the signer on the first download URL: a rebuild never needs one."""
        self.root = Path(releases_dir)
        self.suite = suite
        self._make_url_signer = url_signer

    @cached_property
    def url_signer(self) -> SignedUrls:
        return self._make_url_signer()

    def list_assets(self) -> list[Asset]:
        root_real = os.path.realpath(self.root)
        assets: list[Asset] = []
        for tag in _entries(self.root, what="the releases folder", missing_ok=False):
            if tag.name.startswith(".") or not _is_dir(tag):
                continue
            tag_linked = tag.is_symlink()
            for entry in _entries(Path(tag.path), what="the release folder", missing_ok=True):
                if entry.name.endswith(".deb") and not entry.name.startswith("."):
                    # Only a symlink can lead out of the folder: resolve those alone (10,000 realpath
                    # calls were a quarter of a 10,000-package rebuild's listing).
                    linked = tag_linked or entry.is_symlink()
                    asset = self._asset(tag.name, entry, root_real if linked else None)
                    if asset is not None:
                        assets.append(asset)
        return assets

    def _asset(self, tag: str, entry: os.DirEntry[str], root_real: str | None) -> Asset | None:
        """The asset for one ``*.deb`` entry; an unusable one carries its reason in the locator.

        ``root_real`` is the resolved releases folder when the entry or its folder is a symlink
        (then the target must lie inside it), None when neither is."""
        rel = f"{_shown(tag)}/{_shown(entry.name)}"
        try:
            st: os.stat_result | None = os.stat(entry.path)  # follows symlinks
        except FileNotFoundError:
            st = None
        if st is None and not os.path.lexists(entry.path):
            return None  # gone since the folder was listed: just another change
        if not (_utf8(tag) and _utf8(entry.name)):
            problem = "the file or folder name is not valid UTF-8"
        elif st is None:
            problem = f"a symlink to {_link_target(entry.path)}, which does not exist"
        elif stat.S_ISDIR(st.st_mode):
            problem = "a directory, not a .deb file"
        elif stat.S_ISFIFO(st.st_mode):
            problem = "a FIFO, not a .deb file"
        elif not stat.S_ISREG(st.st_mode):
            problem = "not a regular file"
        elif (
            root_real is not None
            and os.path.commonpath([root_real, real := os.path.realpath(entry.path)]) != root_real
        ):
            problem = f"a symlink to {_shown(real)}, outside the releases folder"
        else:
            problem = ""
        if problem:
            return Asset(
                key=f"local:{rel}",
                fingerprint=f"unusable:{problem}",
                name=_shown(entry.name),
                release=_shown(tag),
                suite=self.suite,
                size=0,
                locator={"path": rel, "problem": problem},
            )
        assert st is not None
        fingerprint = f"{st.st_size}:{st.st_mtime_ns}"
        return Asset(
            key=f"local:{rel}",
            fingerprint=fingerprint,
            name=entry.name,
            release=tag,
            suite=self.suite,
            size=st.st_size,
            locator={"path": rel, "fingerprint": fingerprint},
        )

    # Reading local files is CPU work (hashing, parsing): the indexer may spread a large batch
    # over worker processes, handing each one ``reader()`` (picklable, without any key).
    cpu_bound_reads = True

    def reader(self) -> LocalReader:
        return LocalReader(self.root)

    def read_deb(self, asset: Asset) -> DebInfo:
        """Read one listed file; a file that vanished or changed since listing is ``SourceChanged``."""
        return self.reader()(asset)

    def download_url(self, locator: Mapping[str, str], base_url: str) -> str:
        return self.url_signer.url(base_url, locator["path"], locator.get("fingerprint", ""))

    def resolve(self, rel: str) -> Path:
        """The file for a release-relative path, refusing anything outside the folder."""
        return self.reader().resolve(rel)

    def fingerprint_of(self, rel: str) -> str:
        st = self.resolve(rel).stat()
        return f"{st.st_size}:{st.st_mtime_ns}"


@dataclass(frozen=True)
class LocalReader:
    """Reads the .debs of one releases folder; plain data, so it can be sent to a worker process."""

    root: Path

    def __call__(self, asset: Asset) -> DebInfo:
        rel = asset.locator["path"]
        if asset.locator.get("problem"):
            raise BadDebError(asset.name, asset.locator["problem"])
        try:
            path = self.resolve(rel)
            # Non-blocking: a FIFO swapped in since listing must not hang the rebuild.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, GhaptError) as exc:
            raise SourceChanged(f"{rel} changed while the releases were read: {_reason(exc)}") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or f"{st.st_size}:{st.st_mtime_ns}" != asset.fingerprint:
                raise SourceChanged(f"{rel} changed while the releases were read")
            return read_deb(fh, asset.name)

    def resolve(self, rel: str) -> Path:
        """The file for a release-relative path, refusing anything outside the folder."""
        parts = rel.split("/")
        if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            raise BadRequest(f"bad asset path {rel!r}")
        path = self.root / parts[0] / parts[1]
        root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if real == root or os.path.commonpath([root, real]) != root:
            raise NotFound(f"asset {rel!r} is outside the releases folder")
        return path


def _entries(folder: Path, *, what: str, missing_ok: bool) -> list[os.DirEntry[str]]:
    """The entries of ``folder``, sorted by name. The releases folder itself must be readable:
    a typo in its path must never look like a repository whose packages were all deleted."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        if missing_ok:
            return []  # a tag folder removed since the listing: just another change
        raise ConfigError(
            f"{what} {_shown(str(folder))} does not exist: check GHAPT_RELEASES_DIR (--releases); "
            "an empty repository needs an empty folder"
        ) from None
    except NotADirectoryError:
        if missing_ok:
            return []
        raise ConfigError(
            f"{what} {_shown(str(folder))} is not a folder (GHAPT_RELEASES_DIR, --releases)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{what} {_shown(str(folder))} cannot be read: {exc.strerror}") from None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks; False when it vanished
    except OSError:
        return False


def _link_target(path: str) -> str:
    try:
        return _shown(os.readlink(path))
    except OSError:
        return "a missing target"


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(name: str) -> str:
    """A name that is safe to print, log and store as JSON: undecodable bytes as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)
