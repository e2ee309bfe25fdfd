"""The ReleaseSource contract, run over every adapter: the releases folder and GitHub Releases
(through the fake GitHub, with and without GitHub's ``digest``).

What the indexer relies on: every published .deb is listed once under a stable key, new content
changes the fingerprint, read_deb gives the control data, size and hashes of exactly the bytes
published, and download_url hands out a URL that serves those bytes without our credentials."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Protocol

import pytest
import requests
from ghapt.bootstrap import Services
from ghapt.core.errors import BadDebError
from ghapt.core.model import Asset
from ghapt.core.ports import ReleaseSource
from ghapt.core.settings import Settings
from ghapt.github.auth import TokenAuth
from ghapt.github.client import GitHubClient
from ghapt.github.source import GitHubReleaseSource

from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub
from tests.support.servers import serve

REPO = "acme/tools"


class Releases(Protocol):
    """A place to publish .debs, and the adapter that reads them back."""

    source: ReleaseSource

    def publish(self, tag: str, name: str, data: bytes) -> None: ...

    def replace(self, tag: str, name: str, data: bytes) -> None: ...

    def base_url(self) -> AbstractContextManager[str]:
        """The public URL of the API while the test needs ``download_url`` to work."""
        ...


class FolderReleases:
    """``releases/<tag>/<name>`` under a local install (the source ``Services`` builds)."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "releases"
        # An empty folder publishes nothing; a missing one is a configuration error (issue 10).
        self.root.mkdir(parents=True)
        settings = Settings.from_env(
            {}, releases_dir=self.root, state_dir=tmp / "state", architectures="amd64"
        )
        self.services = Services(settings, {})
        self.source: ReleaseSource = self.services.source

    def publish(self, tag: str, name: str, data: bytes) -> None:
        (self.root / tag).mkdir(parents=True, exist_ok=True)
        (self.root / tag / name).write_bytes(data)

    def replace(self, tag: str, name: str, data: bytes) -> None:
        self.publish(tag, name, data)

    @contextmanager
    def base_url(self) -> Iterator[str]:
        # The folder's bytes are served by the local gateway itself (signed /_assets/ URLs).
        with serve(self.services) as server:
            yield server.url


class GitHubReleases:
    """Releases of ``acme/tools`` on the fake GitHub."""

    def __init__(self, gh: FakeGitHub, *, with_digest: bool) -> None:
        self.gh = gh
        self.with_digest = with_digest
        gh.add_repo(REPO)
        client = GitHubClient(gh.api_url, TokenAuth(gh.token), sleep=lambda s: None)
        self.source: ReleaseSource = GitHubReleaseSource(
            client, [REPO], suite="stable", prerelease_suite="beta"
        )

    def publish(self, tag: str, name: str, data: bytes) -> None:
        if any(r.tag == tag for r in self.gh.add_repo(REPO).releases):
            self.gh.add_asset(REPO, tag, name, data, with_digest=self.with_digest)
        else:
            self.gh.add_release(REPO, tag, [(name, data)], with_digest=self.with_digest)

    def replace(self, tag: str, name: str, data: bytes) -> None:
        (release,) = [r for r in self.gh.add_repo(REPO).releases if r.tag == tag]
        self.gh.replace_asset(REPO, release.asset(name).id, data)

    def base_url(self) -> AbstractContextManager[str]:
        return nullcontext("https://apt.example.test")  # GitHub's storage host serves the bytes


@pytest.fixture(params=["folder", "github", "github-without-digest"])
def releases(request: pytest.FixtureRequest, tmp_path: Path) -> Releases:
    if request.param == "folder":
        return FolderReleases(tmp_path)
    gh: FakeGitHub = request.getfixturevalue("gh")
    return GitHubReleases(gh, with_digest=request.param == "github")


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real .debs (dpkg-deb); ``tool_1.1`` is larger than ``tool_1.0``."""
    out = tmp_path_factory.mktemp("debs")
    built = {
        "tool_1.0": build_deb(out, "tool", "1.0-1", "amd64", extra={"Depends": "libc6 (>= 2.36)"}),
        "tool_1.1": build_deb(
            out, "tool", "1.1-1", "amd64", files={"usr/share/doc/tool/README": b"tool 1.1\n" * 100}
        ),
        "lib_2.0": build_deb(out, "libtool2", "2:2.0~rc1-1", "all", compression="xz"),
    }
    return {name: path.read_bytes() for name, path in built.items()}


def listed(source: ReleaseSource) -> dict[str, Asset]:
    """The listing by asset name; names are unique in these tests."""
    assets = source.list_assets()
    by_name = {a.name: a for a in assets}
    assert len(by_name) == len(assets), [a.name for a in assets]
    return by_name


def test_is_a_release_source(releases: Releases) -> None:
    assert isinstance(releases.source, ReleaseSource)


def test_nothing_published_lists_nothing(releases: Releases) -> None:
    assert releases.source.list_assets() == []


def test_every_published_deb_is_listed_once_with_its_release(
    releases: Releases, debs: dict[str, bytes]
) -> None:
    releases.publish("v1.0", "tool_1.0-1_amd64.deb", debs["tool_1.0"])
    releases.publish("v1.0", "NOTES.txt", b"not a package")
    releases.publish("v2.0", "libtool2_2.0.rc1-1_all.deb", debs["lib_2.0"])
    assets = listed(releases.source)
    assert set(assets) == {"tool_1.0-1_amd64.deb", "libtool2_2.0.rc1-1_all.deb"}
    tool, lib = assets["tool_1.0-1_amd64.deb"], assets["libtool2_2.0.rc1-1_all.deb"]
    assert (tool.release, tool.size, tool.suite) == ("v1.0", len(debs["tool_1.0"]), "stable")
    assert (lib.release, lib.size, lib.suite) == ("v2.0", len(debs["lib_2.0"]), "stable")
    assert tool.key != lib.key
    assert tool.fingerprint != lib.fingerprint


def test_keys_and_fingerprints_are_stable_while_nothing_changes(
    releases: Releases, debs: dict[str, bytes]
) -> None:
    releases.publish("v1.0", "tool_1.0-1_amd64.deb", debs["tool_1.0"])
    first = releases.source.list_assets()
    releases.publish("v2.0", "libtool2_2.0.rc1-1_all.deb", debs["lib_2.0"])
    second = listed(releases.source)
    (before,) = first
    after = second["tool_1.0-1_amd64.deb"]
    assert (after.key, after.fingerprint, after.locator) == (before.key, before.fingerprint, before.locator)
    again = releases.source.list_assets()
    assert {(a.key, a.fingerprint) for a in again} == {(a.key, a.fingerprint) for a in second.values()}


def test_new_bytes_under_the_same_name_keep_the_key_and_change_the_fingerprint(
    releases: Releases, debs: dict[str, bytes]
) -> None:
    releases.publish("v1.0", "tool_amd64.deb", debs["tool_1.0"])
    (before,) = releases.source.list_assets()
    releases.replace("v1.0", "tool_amd64.deb", debs["tool_1.1"])
    (after,) = releases.source.list_assets()
    assert after.key == before.key
    assert after.fingerprint != before.fingerprint
    assert after.size == len(debs["tool_1.1"])
    assert releases.source.read_deb(after).version == "1.1-1"


@pytest.mark.parametrize("name", ["tool_1.0", "lib_2.0"])
def test_read_deb_gives_the_control_data_size_and_hashes_of_the_bytes(
    releases: Releases, debs: dict[str, bytes], name: str
) -> None:
    data = debs[name]
    releases.publish("v1.0", f"{name}.deb", data)
    (asset,) = releases.source.list_assets()
    info = releases.source.read_deb(asset)
    expected = {
        "tool_1.0": ("tool", "1.0-1", "amd64", "libc6 (>= 2.36)"),
        "lib_2.0": ("libtool2", "2:2.0~rc1-1", "all", None),
    }[name]
    assert (info.package, info.version, info.architecture, info.field("Depends")) == expected
    assert info.field("Maintainer") == "ghapt tests <tests@example.invalid>"
    assert info.size == len(data)
    assert info.hashes.sha256 == hashlib.sha256(data).hexdigest()
    # The weaker hashes are optional (GitHub's digest spares a download), but never wrong.
    for algo in ("md5", "sha1", "sha512"):
        value = getattr(info.hashes, algo)
        assert value is None or value == hashlib.new(algo, data).hexdigest(), algo


def test_the_same_bytes_read_the_same_wherever_and_whenever_published(
    releases: Releases, debs: dict[str, bytes]
) -> None:
    releases.publish("v1.0", "tool_1.0-1_amd64.deb", debs["tool_1.0"])
    releases.publish("v1.0-again", "tool_1.0-1_amd64.deb", debs["tool_1.0"])
    first, second = releases.source.list_assets()
    assert first.key != second.key
    info = releases.source.read_deb(first)
    assert releases.source.read_deb(first) == info
    assert releases.source.read_deb(second) == info


@pytest.mark.parametrize("garbage", [b"", b"!<arch>\nnot really", b"PK\x03\x04 a zip file"])
def test_a_broken_deb_raises_bad_deb_naming_the_asset(releases: Releases, garbage: bytes) -> None:
    releases.publish("v1.0", "broken_1.0_all.deb", garbage)
    (asset,) = releases.source.list_assets()
    with pytest.raises(BadDebError, match=re.escape("broken_1.0_all.deb")) as err:
        releases.source.read_deb(asset)
    assert err.value.name == "broken_1.0_all.deb"


def test_download_url_serves_the_bytes_without_credentials(
    releases: Releases, debs: dict[str, bytes]
) -> None:
    releases.publish("v1.0", "tool_1.0-1_amd64.deb", debs["tool_1.0"])
    (asset,) = releases.source.list_assets()
    with releases.base_url() as base_url:
        url = releases.source.download_url(asset.locator, base_url)
        # No Authorization: the URL is the credential. (Connection: close lets a local gateway
        # stop at once when the block ends, instead of waiting for this idle connection.)
        reply = requests.get(url, headers={"Connection": "close"}, timeout=10)
    assert reply.status_code == 200
    assert reply.content == debs["tool_1.0"]
