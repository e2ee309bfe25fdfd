"""The repository page as the indexer renders and commits it: deterministic, escaped, and carrying
the listing ``ghapt list`` reads back."""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import re
from pathlib import Path
from typing import Any

import pytest
from debian.debian_support import Version
from ghapt.bootstrap import Services
from ghapt.core.layout import PAGE_FILE
from ghapt.core.model import Asset, DebInfo, Hashes, IndexedAsset
from ghapt.core.settings import Settings
from ghapt.deb.versions import version_key
from ghapt.page import (
    CONTENT_SECURITY_POLICY,
    PageError,
    fill_page,
    listing,
    read_listing,
    render_page,
)

from tests.support.debbuild import build_deb
from tests.support.dpkgversions import random_version


def _entry(
    package: str, version: str, arch: str = "amd64", *, release: str = "v1", url: str = "", desc: str = "x"
) -> IndexedAsset:
    deb = DebInfo(
        control=(("Package", package), ("Version", version), ("Architecture", arch), ("Description", desc)),
        size=1234,
        hashes=Hashes(sha256="ab" * 32),
    )
    asset = Asset(
        key=f"k:{package}:{version}:{arch}",
        fingerprint="f",
        name=f"{package}.deb",
        release=release,
        suite="stable",
        size=1234,
        release_url=url,
    )
    return IndexedAsset(asset, deb, f"pool/main/{package[0]}/{package}/{package}_{version}_{arch}.deb")


def _data(*entries: IndexedAsset, suites: dict[str, list[IndexedAsset]] | None = None) -> dict[str, Any]:
    return listing(
        suites if suites is not None else {"stable": list(entries)},
        default_suite="stable",
        component="main",
        architectures=("amd64", "arm64"),
        origin="ghapt",
        label="Acme <apt>",
        fingerprint="0123456789ABCDEF0123456789ABCDEF01234567",
    )


def test_the_same_index_renders_the_same_bytes_whatever_the_order() -> None:
    a, b = _entry("alpha", "1.0"), _entry("beta", "2.0")
    assert render_page(_data(a, b)) == render_page(_data(b, a))


def test_versions_are_in_debian_order_and_every_suite_is_listed() -> None:
    page = render_page(
        _data(
            suites={
                "stable": [_entry("tool", "1.10"), _entry("tool", "1.9"), _entry("tool", "1.9~rc1")],
                "prerelease": [],
            }
        )
    ).decode()
    assert page.index(">1.9~rc1<") < page.index(">1.9<") < page.index(">1.10<")
    assert 'id="suite-stable"' in page
    assert 'id="suite-prerelease"' in page
    assert "No packages in this suite yet." in page
    # The client setup names the default suite and points at the others.
    assert "Suites: stable\n" in page
    assert "<code>prerelease</code>" in page


def test_the_listing_is_in_dpkg_version_order() -> None:
    rng = random.Random(8)  # noqa: S311 (test data, nothing secret)
    versions = list(dict.fromkeys(random_version(rng) for _ in range(300)))
    entries = [_entry("tool", v) for v in versions]
    listed = [row["version"] for row in _data(*reversed(entries))["suites"]["stable"]]
    by_dpkg = sorted(versions, key=functools.cmp_to_key(_debian_cmp))
    assert [version_key(v) for v in listed] == [version_key(v) for v in by_dpkg]
    assert _data(*entries) == _data(*reversed(entries))


def _debian_cmp(a: str, b: str) -> int:
    va, vb = Version(a), Version(b)
    return int(va > vb) - int(va < vb)


def test_control_data_is_escaped_and_placeholders_in_it_are_never_filled() -> None:
    hostile = '</script><script>alert(1)</script> <ghapt:base> <ghapt:commit> & "q"'
    template = render_page(_data(_entry("evil", "1.0", desc=hostile), _entry("ok", "1.0")))
    page = fill_page(template, commit="c" * 40, built=0, base_url="https://apt.example.com/apt").decode()
    body = page.split('<script type="application/json"', 1)[0]
    assert "<script>" not in body
    assert "alert(1)</script>" not in body
    assert "&lt;ghapt:base&gt;" in page
    assert "&lt;ghapt:commit&gt;" in page
    # Exactly one script element: the JSON data block, which nothing in it can close early.
    assert page.count("<script") == 1
    assert page.count("</script>") == 1
    assert read_listing(page.encode())["suites"]["stable"][0]["summary"] == hostile
    # The label is escaped too.
    assert "<title>Acme &lt;apt&gt; APT repository</title>" in page


def test_filled_values_are_escaped_and_the_client_setup_matches_the_url() -> None:
    template = render_page(_data(_entry("tool", "1.0")))
    page = fill_page(template, commit="d" * 40, built=1796012748, base_url='http://h:8080/<x>"').decode()
    assert "<x>" not in page
    assert "&lt;x&gt;&quot;" in page
    https = fill_page(template, commit="d" * 40, built=1796012748, base_url="https://apt.example.com/apt/")
    text = https.decode()
    assert "URIs: https://apt.example.com/apt/\n" in text
    # auth.conf: https entries carry no scheme; plain http must name it (apt >= 1.9.5).
    assert "machine apt.example.com/apt login" in text
    assert "machine http://h:8080/" in page
    assert "2026-11-30 04:25:48 UTC" in text
    assert 'datetime="2026-11-30T04:25:48Z"' in text
    assert f"<code>{'d' * 40}</code>" in text
    assert "<ghapt:" not in text


def test_release_links_only_for_web_urls() -> None:
    page = render_page(
        _data(
            _entry("a", "1", url="https://github.com/acme/a/releases/tag/v1"),
            _entry("b", "1", url="javascript:alert(1)"),
            _entry("c", "1"),
        )
    ).decode()
    assert '<a href="https://github.com/acme/a/releases/tag/v1" rel="noreferrer">v1</a>' in page
    assert "javascript:" not in page.split('<script type="application/json"', 1)[0]


def test_the_listing_reads_back_and_a_foreign_page_is_refused() -> None:
    data = _data(_entry("tool", "1:2.0-1", release="v2"))
    back = read_listing(render_page(data))
    assert back == data
    (row,) = back["suites"]["stable"]
    assert (row["package"], row["version"], row["architecture"], row["size"], row["release"]) == (
        "tool",
        "1:2.0-1",
        "amd64",
        1234,
        "v2",
    )
    for foreign in (b"<html>hello</html>", b'<script type="application/json" id="ghapt-index">{</script>'):
        with pytest.raises(PageError):
            read_listing(foreign)


def test_the_csp_allows_exactly_the_inline_stylesheet() -> None:
    page = render_page(_data(_entry("tool", "1.0"))).decode()
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY
    assert "http" not in page.split("<body>", 1)[0]  # nothing external in the head


def test_the_indexer_commits_the_page_and_an_unchanged_rebuild_still_makes_no_commit(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    build_deb(releases / "v1.0", "hello-ghapt", "1.0-1", "all")
    settings = Settings.from_env({}, releases_dir=releases, state_dir=tmp_path / "state")
    services = Services(settings, {})
    first = services.indexer.rebuild()
    assert first.changed
    assert first.commit
    page = services.store.read_file(first.commit, PAGE_FILE)
    assert page is not None
    data = read_listing(page)
    assert [(r["package"], r["version"], r["release"]) for r in data["suites"]["stable"]] == [
        ("hello-ghapt", "1.0-1", "v1.0")
    ]
    assert data["fingerprint"] == services.signer.fingerprint
    again = Services(settings, {}).indexer.rebuild()
    assert not again.changed
    assert services.store.head() == first.commit
    build_deb(releases / "v1.1", "hello-ghapt", "1.1-1", "all")
    third = services.indexer.rebuild()
    assert third.changed
    assert third.commit
    page = services.store.read_file(third.commit, PAGE_FILE)
    assert page is not None
    assert b">1.1-1<" in page


def test_github_assets_carry_their_release_page_and_local_ones_none(tmp_path: Path) -> None:
    from ghapt.github.auth import TokenAuth
    from ghapt.github.client import GitHubClient
    from ghapt.github.source import GitHubReleaseSource

    from tests.support.fakegithub import FakeGitHub

    with FakeGitHub() as gh:
        gh.add_release("acme/tools", "v1.0~rc1", assets=[("tool_1.0_amd64.deb", b"deb-bytes")])
        client = GitHubClient(gh.api_url, TokenAuth(gh.token), sleep=lambda s: None)
        source = GitHubReleaseSource(client, ["acme/tools"], suite="stable", prerelease_suite="beta")
        (asset,) = source.list_assets()
    # GitHub's own html_url of the release, percent-encoded as GitHub gives it.
    assert asset.release_url == "https://github.invalid/acme/tools/releases/tag/v1.0~rc1"
    build_deb(tmp_path / "releases" / "v1", "tool", "1.0", "all")
    local = Services(Settings.from_env({}, releases_dir=tmp_path / "releases", state_dir=tmp_path / "s"), {})
    (folder_asset,) = local.source.list_assets()
    assert folder_asset.release_url == ""


def test_the_page_escapes_exactly_as_html_escape_does() -> None:
    """``page._escape`` stands in for ``html.escape`` (whose import loads the entity table)."""
    import html
    import random

    from ghapt.page import _escape

    rng = random.Random(7)  # noqa: S311  # test data
    samples = ["", "plain", "a&b<c>\"d'e", "&amp; already", "é — ü", "</script><b onload='x'>"]
    samples += ["".join(rng.choice("&<>\"'aé ") for _ in range(30)) for _ in range(500)]
    assert [_escape(s) for s in samples] == [html.escape(s) for s in samples]
