"""The folder source never resolves an asset path outside the releases folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ghapt.core.errors import BadRequest, NotFound
from ghapt.local.folder import FolderReleaseSource
from ghapt.local.signedurls import SignedUrls


@pytest.fixture
def source(tmp_path: Path) -> FolderReleaseSource:
    root = tmp_path / "releases"
    (root / "v1").mkdir(parents=True)
    (root / "v1" / "a.deb").write_bytes(b"x")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "s.deb").write_bytes(b"s")
    os.symlink(tmp_path / "secret", root / "v2")  # a release folder leading out
    os.symlink(tmp_path / "secret" / "s.deb", root / "v1" / "link.deb")  # a file leading out
    os.symlink(root, root / "v3")  # a folder leading back to the root itself
    return FolderReleaseSource(root, "stable", lambda: SignedUrls(b"k" * 32, "/_assets/", "asset"))


def test_a_plain_file_resolves(source: FolderReleaseSource) -> None:
    assert source.resolve("v1/a.deb") == source.root / "v1" / "a.deb"


@pytest.mark.parametrize("rel", ["v2/s.deb", "v1/link.deb"])
def test_symlinks_out_of_the_folder_are_not_found(source: FolderReleaseSource, rel: str) -> None:
    with pytest.raises(NotFound, match="outside the releases folder"):
        source.resolve(rel)


@pytest.mark.parametrize(
    "rel", ["../secret/s.deb", "v1/../../x", "v1", "/etc/passwd", "v1/a.deb/x", "v1\\a.deb"]
)
def test_path_tricks_are_bad_requests(source: FolderReleaseSource, rel: str) -> None:
    with pytest.raises((BadRequest, NotFound)):
        source.resolve(rel)
