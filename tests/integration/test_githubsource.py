"""GitHubReleaseSource against the fake GitHub: which assets feed which suite, their identity,
and reading .debs with Range requests (digest known) or one full stream (no digest)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import requests
from ghapt.core.errors import BadDebError, UpstreamError
from ghapt.core.ports import ReleaseSource
from ghapt.deb.reader import read_deb
from ghapt.github.auth import TokenAuth
from ghapt.github.client import GitHubClient
from ghapt.github.source import GitHubReleaseSource

from tests.support import hostiledebs
from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub


@pytest.fixture
def gh_repos() -> tuple[str, ...]:
    return ("acme/other",)


@pytest.fixture
def source(gh: FakeGitHub) -> GitHubReleaseSource:
    client = GitHubClient(gh.api_url, TokenAuth(gh.token), sleep=lambda s: None)
    return GitHubReleaseSource(client, ["acme/tools", "acme/other"], suite="stable", prerelease_suite="beta")


@pytest.fixture(scope="module")
def big_deb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real .deb of ~2 MiB whose control member is a tiny part of it."""
    out = tmp_path_factory.mktemp("debs")
    payload = {"usr/share/hello/blob": os.urandom(2 << 20)}
    path = build_deb(out, "hello", "1:2.0~rc1-1", "amd64", files=payload, extra={"Depends": "libc6"})
    return path.read_bytes()


@pytest.fixture(scope="module")
def small_deb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_deb(tmp_path_factory.mktemp("debs"), "tiny", "0.1", "all").read_bytes()


def test_is_a_release_source(source: GitHubReleaseSource) -> None:
    assert isinstance(source, ReleaseSource)


def test_list_assets_filters_and_maps_releases(gh: FakeGitHub, source: GitHubReleaseSource) -> None:
    stable = gh.add_release(
        "acme/tools",
        "v1.0",
        assets=[("hello_1%3a2.0~rc1-1_amd64.deb", b"deb-a"), ("notes.txt", b"x"), ("src.tar.gz", b"y")],
    )
    broken = gh.add_asset("acme/tools", "v1.0", "half_uploaded.deb", b"zz", state="starter")
    upper = gh.add_asset("acme/tools", "v1.0", "SHOUTING.DEB", b"deb-u")
    pre = gh.add_release(
        "acme/tools", "v2.0-rc1", assets=[("hello_2.0_amd64.deb", b"deb-b")], prerelease=True
    )
    gh.add_release("acme/tools", "v3.0", assets=[("draft_3.0_all.deb", b"deb-c")], draft=True)
    old = gh.add_release("acme/other", "2019", assets=[("old_1.0_all.deb", b"deb-old")], with_digest=False)

    assets = {a.key: a for a in source.list_assets()}

    a = stable.assets[0]
    b = pre.assets[0]
    o = old.assets[0]
    assert set(assets) == {
        f"github:acme/tools:{a.id}",
        f"github:acme/tools:{upper.id}",
        f"github:acme/tools:{b.id}",
        f"github:acme/other:{o.id}",
    }
    assert f"github:acme/tools:{broken.id}" not in assets  # not uploaded

    first = assets[f"github:acme/tools:{a.id}"]
    assert first.name == "hello_1.3a2.0.rc1-1_amd64.deb"  # GitHub's renaming; never parsed
    assert first.release == "v1.0"
    assert first.suite == "stable"
    assert first.size == 5
    assert first.sha256 == hashlib.sha256(b"deb-a").hexdigest()
    assert first.fingerprint == f"sha256:{first.sha256}"
    assert first.locator == {"repo": "acme/tools", "asset_id": str(a.id)}

    assert assets[f"github:acme/tools:{b.id}"].suite == "beta"

    legacy = assets[f"github:acme/other:{o.id}"]
    assert legacy.sha256 is None
    assert legacy.fingerprint == f"{_asset_json(gh, 'acme/other', o.id)['updated_at']}:7"


def _asset_json(gh: FakeGitHub, repo: str, asset_id: int) -> dict[str, object]:
    client = GitHubClient(gh.api_url, TokenAuth(gh.token))
    asset: dict[str, object] = client.get_json(f"repos/{repo}/releases/assets/{asset_id}")
    return asset


def test_a_missing_repository_fails_the_listing_instead_of_emptying_it(gh: FakeGitHub) -> None:
    client = GitHubClient(gh.api_url, TokenAuth(gh.token), sleep=lambda s: None)
    source = GitHubReleaseSource(client, ["acme/typo"], suite="stable", prerelease_suite="beta")
    with pytest.raises(UpstreamError, match="/repos/acme/typo/releases"):
        source.list_assets()


def test_fingerprint_changes_when_a_legacy_asset_is_replaced(
    gh: FakeGitHub, source: GitHubReleaseSource
) -> None:
    rel = gh.add_release("acme/tools", "v1", assets=[("a.deb", b"one")], with_digest=False)
    before = source.list_assets()[0]
    gh.replace_asset("acme/tools", rel.assets[0].id, b"two!")
    after = source.list_assets()[0]
    assert before.key == after.key
    assert before.fingerprint != after.fingerprint


def test_list_assets_reuses_etags(gh: FakeGitHub, source: GitHubReleaseSource) -> None:
    gh.add_release("acme/tools", "v1", assets=[("a.deb", b"one")])
    first = source.list_assets()
    second = source.list_assets()
    assert first == second
    assert [c.status for c in gh.calls("GET", "releases")] == [200, 200, 304, 304]


def test_read_deb_with_digest_uses_ranges_and_reads_little(
    gh: FakeGitHub, source: GitHubReleaseSource, big_deb: bytes, tmp_path: Path
) -> None:
    gh.add_release("acme/tools", "v1", assets=[("hello.deb", big_deb)])
    (asset,) = source.list_assets()

    info = source.read_deb(asset)

    whole = tmp_path / "hello.deb"
    whole.write_bytes(big_deb)
    with whole.open("rb") as f:
        reference = read_deb(f, "hello.deb")
    assert info.control == reference.control
    assert info.package == "hello"
    assert info.version == "1:2.0~rc1-1"
    assert info.size == len(big_deb)
    assert info.hashes.sha256 == hashlib.sha256(big_deb).hexdigest()
    assert (info.hashes.md5, info.hashes.sha1, info.hashes.sha512) == (None, None, None)

    storage = gh.calls(server="storage")
    assert storage
    assert all(c.status == 206 for c in storage)
    assert all("authorization" not in c.headers for c in storage)
    assert gh.storage_bytes_served < len(big_deb) // 20


def test_read_deb_without_digest_streams_once_and_fills_every_hash(
    gh: FakeGitHub, source: GitHubReleaseSource, big_deb: bytes
) -> None:
    gh.add_release("acme/tools", "v1", assets=[("hello.deb", big_deb)], with_digest=False)
    (asset,) = source.list_assets()

    info = source.read_deb(asset)

    assert info.package == "hello"
    assert info.size == len(big_deb)
    assert info.hashes.md5 == hashlib.md5(big_deb).hexdigest()
    assert info.hashes.sha1 == hashlib.sha1(big_deb).hexdigest()
    assert info.hashes.sha256 == hashlib.sha256(big_deb).hexdigest()
    assert info.hashes.sha512 is None  # the stanza lists MD5sum, SHA1 and SHA256 only
    storage = gh.calls(server="storage")
    assert [c.status for c in storage] == [200]
    assert "range" not in storage[0].headers
    assert gh.storage_bytes_served == len(big_deb)


def test_read_deb_falls_back_to_streaming_when_range_is_ignored(
    gh: FakeGitHub, source: GitHubReleaseSource, small_deb: bytes
) -> None:
    gh.add_release("acme/tools", "v1", assets=[("tiny.deb", small_deb)])
    gh.storage_ignores_range = True
    (asset,) = source.list_assets()

    info = source.read_deb(asset)

    assert info.package == "tiny"
    assert info.hashes.sha256 == hashlib.sha256(small_deb).hexdigest()
    assert info.hashes.md5 == hashlib.md5(small_deb).hexdigest()


def test_streamed_bytes_must_match_the_digest(
    gh: FakeGitHub, source: GitHubReleaseSource, small_deb: bytes
) -> None:
    rel = gh.add_release("acme/tools", "v1", assets=[("tiny.deb", small_deb)])
    rel.assets[0].digest = "sha256:" + "0" * 64
    gh.storage_ignores_range = True
    (asset,) = source.list_assets()
    with pytest.raises(BadDebError) as err:
        source.read_deb(asset)
    assert err.value.name == "tiny.deb"


@pytest.mark.parametrize("with_digest", [True, False])
@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(b"this is not an ar archive at all", id="not-a-deb"),
        pytest.param(
            hostiledebs.deb(hostiledebs.MINIMAL_CONTROL, control_member=b"\x1f\x8bgarbage"), id="corrupt"
        ),
        pytest.param(
            hostiledebs.deb(
                hostiledebs.MINIMAL_CONTROL,
                control_member=hostiledebs.concatenated_bomb("gzip", 4 << 30),
            ),
            id="control-bomb",
        ),
    ],
)
def test_hostile_deb_raises_bad_deb_naming_the_asset(
    gh: FakeGitHub, source: GitHubReleaseSource, hostile: bytes, with_digest: bool
) -> None:
    gh.add_release("acme/tools", "v1", assets=[("evil_1.0_all.deb", hostile)], with_digest=with_digest)
    (asset,) = source.list_assets()
    with pytest.raises(BadDebError) as err:
        source.read_deb(asset)
    assert err.value.name == "evil_1.0_all.deb"
    assert "evil_1.0_all.deb" in str(err.value)


def test_a_vanished_asset_is_an_upstream_error_not_a_bad_deb(
    gh: FakeGitHub, source: GitHubReleaseSource, small_deb: bytes
) -> None:
    rel = gh.add_release("acme/tools", "v1", assets=[("tiny.deb", small_deb)])
    (asset,) = source.list_assets()
    gh.delete_asset("acme/tools", rel.assets[0].id)
    with pytest.raises(UpstreamError) as err:
        source.read_deb(asset)
    assert not isinstance(err.value, BadDebError)


def test_download_url_is_the_signed_storage_url(
    gh: FakeGitHub, source: GitHubReleaseSource, small_deb: bytes
) -> None:
    gh.add_release("acme/tools", "v1", assets=[("tiny.deb", small_deb)])
    (asset,) = source.list_assets()

    url = source.download_url(asset.locator, "https://apt.example.com")

    assert url.startswith(gh.storage_url)
    assert "sig=" in url
    assert requests.get(url, timeout=5).content == small_deb
