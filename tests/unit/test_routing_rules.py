"""Routing rules and suite placement as pure functions: syntax, safe characters, per-suite
conflicts, content-unique pool paths and order-independent output."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ghapt.core.errors import ConfigError
from ghapt.core.model import Asset, Control, DebInfo, Hashes, IndexedAsset
from ghapt.core.routing import Routing, parse_routes, published_suites
from ghapt.core.settings import Settings
from ghapt.deb.dists import build_dists
from ghapt.deb.placement import SHORT_DIGEST, place, unique_pool_paths

from tests.support.fakegithub import mangle_asset_name

ROUTES = "version=*~jammy* -> jammy; version=*+deb12* -> bookworm; asset=*_noble_* -> noble"


def routing(text: str = ROUTES, backend: str = "github") -> Routing:
    return Routing.from_settings(Settings.from_env({}, routes=text, backend=backend))


def item(
    package: str,
    version: str,
    *,
    arch: str = "amd64",
    content: str = "a",
    release: str = "v1.0",
    name: str | None = None,
    suite: str = "stable",
    repo: str = "acme/tool",
    key: str | None = None,
) -> tuple[Asset, DebInfo]:
    control: Control = (
        ("Package", package),
        ("Version", version),
        ("Architecture", arch),
        ("Maintainer", "ghapt tests <tests@example.invalid>"),
        ("Description", "routing test"),
    )
    seed = f"{package}|{version}|{arch}|{content}".encode()
    deb = DebInfo(control, len(seed), Hashes(sha256=hashlib.sha256(seed).hexdigest()))
    noepoch = version.split(":", 1)[-1]
    # Names as GitHub lists them: renamed.
    shown = mangle_asset_name(name or f"{package}_{noepoch}_{arch}.deb")
    asset = Asset(
        key=key or f"github:{repo}:{int(hashlib.sha256(seed + shown.encode()).hexdigest()[:6], 16)}",
        fingerprint=deb.hashes.sha256,
        name=shown,
        release=release,
        suite=suite,
        size=len(seed),
        locator={"repo": repo, "asset_id": "1"},
    )
    return asset, deb


# --- syntax ---------------------------------------------------------------------------------
def test_the_syntax_reads_rules_separated_by_semicolons_or_lines() -> None:
    rules = parse_routes("version=*~jammy* -> jammy\n tag=v*-noble  repo=acme/* -> noble, noble-fips ;")
    assert [r.text for r in rules] == [
        "version=*~jammy* -> jammy",
        "tag=v*-noble repo=acme/* -> noble, noble-fips",
    ]
    assert rules[1].suites == ("noble", "noble-fips")
    assert [(c.field, c.pattern) for c in rules[1].conditions] == [("tag", "v*-noble"), ("repo", "acme/*")]
    assert parse_routes("") == ()
    assert parse_routes(" ; \n") == ()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("version=*~jammy*", "has no '->'"),
        ("-> jammy", "no condition"),
        ("version=*~jammy* ->", "names no suite"),
        ("distro=jammy -> jammy", "FIELD one of version, package, asset, tag, repo"),
        ("version= -> jammy", "needs a pattern"),
        ("version=1 -> ../jammy", "not a valid suite name"),
        ("version=1 -> jammy-prerelease", "pre-release suite"),
        ("version=1 -> prerelease", "pre-release suite"),
        # What GitHub rewrites can never be matched in an asset name.
        ("asset=*~jammy* -> jammy", "GitHub renames ~ : % and spaces"),
        ("asset=*_2:1.0_* -> jammy", "GitHub renames"),
        ("asset=*%7e* -> jammy", "GitHub renames"),
        ("tag=v1~jammy -> jammy", "git tags cannot contain"),
    ],
)
def test_bad_rules_are_refused_at_start_naming_the_setting(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="GHAPT_ROUTES") as caught:
        Settings.from_env({"GHAPT_ROUTES": text})
    assert needle in str(caught.value)


def test_suites_include_every_routed_suite_and_pre_release_twins() -> None:
    assert routing().suites == (
        "stable",
        "bookworm",
        "bookworm-prerelease",
        "jammy",
        "jammy-prerelease",
        "noble",
        "noble-prerelease",
        "prerelease",
    )
    # The local folder has no pre-releases; without rules nothing changes.
    assert routing(backend="local").suites == ("stable", "bookworm", "jammy", "noble")
    assert Settings.from_env({}).suites == ("stable",)
    assert Settings.from_env({}, backend="github").suites == ("stable", "prerelease")
    assert Settings.from_env({"GHAPT_ROUTES": ROUTES}).suites == ("stable", "bookworm", "jammy", "noble")


# --- matching -------------------------------------------------------------------------------
def test_each_field_routes_and_unmatched_assets_keep_the_default_suite() -> None:
    r = routing(
        "version=*~jammy* -> jammy; package=lib* -> libs; asset=*_noble_* -> noble; "
        "tag=*-bookworm -> bookworm; repo=ACME/scripts -> bookworm jammy noble"
    )
    assert r.suites_for(*item("tool", "1.0-1~jammy1"))[0] == ("jammy",)
    assert r.suites_for(*item("libfoo1", "1.0-1"))[0] == ("libs",)
    assert r.suites_for(*item("tool", "1.0-1", name="tool_1.0-1_noble_amd64.deb"))[0] == ("noble",)
    assert r.suites_for(*item("tool", "1.0-1", release="v1.0-bookworm"))[0] == ("bookworm",)
    # repo compares without case (GitHub's names do not care); one rule, several suites.
    assert r.suites_for(*item("tool", "1.0-1", repo="acme/Scripts"))[0] == ("bookworm", "jammy", "noble")
    suites, matched = r.suites_for(*item("tool", "1.0-1"))
    assert suites == ("stable",)
    assert matched == ()
    # Several rules: the union of their suites.
    assert r.suites_for(*item("libfoo1", "1.0-1~jammy1"))[0] == ("jammy", "libs")


def test_pre_releases_go_to_the_pre_release_twin_of_each_suite() -> None:
    r = routing("version=*~jammy* -> jammy stable")
    assert r.suites_for(*item("tool", "2.0~rc1-1~jammy1", suite="prerelease"))[0] == (
        "jammy-prerelease",
        "prerelease",
    )
    assert r.suites_for(*item("tool", "2.0~rc1-1", suite="prerelease"))[0] == ("prerelease",)


def test_version_rules_survive_githubs_renaming_and_the_safe_asset_rules_too() -> None:
    """``~`` and ``:`` become ``.`` in asset names; the control data keeps them."""
    asset, deb = item("tool", "2:1.4.0-1~jammy1", name="tool_2:1.4.0-1~jammy1_amd64.deb")
    assert asset.name == "tool_2.1.4.0-1.jammy1_amd64.deb"
    assert routing("version=2:*~jammy* -> jammy").suites_for(asset, deb)[0] == ("jammy",)
    assert routing("asset=*.jammy1_* -> jammy").suites_for(asset, deb)[0] == ("jammy",)


def test_repo_rules_never_match_the_local_folder() -> None:
    asset, deb = item("tool", "1.0-1", repo="")
    assert routing("repo=* -> jammy").suites_for(asset, deb)[0] == ("stable",)


# --- placement ------------------------------------------------------------------------------
def test_conflicts_are_per_suite_and_fine_across_suites() -> None:
    bookworm = item("tool", "1.0-1", content="bookworm", name="tool_1.0-1_amd64_bookworm.deb")
    jammy = item("tool", "1.0-1", content="jammy", name="tool_1.0-1_amd64_jammy.deb")
    r = routing("asset=*_bookworm.deb -> bookworm; asset=*_jammy.deb -> jammy")
    placed = place([bookworm, jammy], r, "main")
    assert placed.skipped == []
    assert placed.unused_routes == []
    assert [e.asset.name for e in placed.suites["bookworm"]] == ["tool_1.0-1_amd64_bookworm.deb"]
    assert [e.asset.name for e in placed.suites["jammy"]] == ["tool_1.0-1_amd64_jammy.deb"]
    # A second, different jammy build of the same Package/Version/Architecture: a conflict in jammy.
    rebuilt = item("tool", "1.0-1", content="again", name="tool_1.0-1_amd64_x_jammy.deb", release="v1.1")
    placed = place([bookworm, jammy, rebuilt], r, "main")
    (lost,) = placed.skipped
    assert lost.asset.release == "v1.1"
    assert lost.reason.startswith("jammy: conflict:")
    assert [e.asset.name for e in placed.suites["jammy"]] == ["tool_1.0-1_amd64_jammy.deb"]
    # Without routing, the same pair is the conflict it always was (no suite prefix).
    placed = place([bookworm, jammy], routing(""), "main")
    (lost,) = placed.skipped
    assert lost.reason.startswith("conflict:")
    assert lost.asset.name == "tool_1.0-1_amd64_jammy.deb"


def test_two_contents_never_share_a_pool_path() -> None:
    items = [
        item("tool", "1.0-1", content=c, name=f"tool_1.0-1_amd64_{c}.deb", release=f"v1.0-{c}")
        for c in ("bookworm", "jammy", "noble")
    ]
    same = item("tool", "1.0-1", content="bookworm", name="tool_1.0-1_amd64_copy_noble2.deb", release="v9")
    r = routing("tag=*-bookworm -> bookworm; tag=*-jammy -> jammy; tag=*-noble -> noble; tag=v9 -> noble2")
    placed = place([*items, same], r, "main")
    paths: dict[str, str] = {}
    for entries in placed.suites.values():
        for e in entries:
            assert paths.setdefault(e.pool_path, e.deb.hashes.sha256) == e.deb.hashes.sha256
    canonical = "pool/main/t/tool/tool_1.0-1_amd64.deb"
    sha = {e.asset.release: e.deb.hashes.sha256 for v in placed.suites.values() for e in v}
    # The earliest release keeps the canonical path; equal bytes share it; others get a segment.
    assert [e.pool_path for e in placed.suites["bookworm"]] == [canonical]
    assert [e.pool_path for e in placed.suites["noble2"]] == [canonical]
    for suite in ("jammy", "noble"):
        (entry,) = placed.suites[suite]
        digest = sha[f"v1.0-{suite}"][:SHORT_DIGEST]
        assert entry.pool_path == f"pool/main/t/tool/{digest}/tool_1.0-1_amd64.deb"
    assert placed.unused_routes == []


def test_a_short_digest_clash_falls_back_to_the_whole_digest() -> None:
    canonical = "pool/main/t/tool/tool_1.0-1_amd64.deb"

    def entry(release: str, sha256: str) -> IndexedAsset:
        asset, deb = item("tool", "1.0-1", release=release)
        return IndexedAsset(asset, replace(deb, hashes=Hashes(sha256=sha256)), canonical)

    # Two contents that share their first 16 hex digits (forged: a birthday search could find such).
    one, two, three = (
        entry("v1", "0" * 64),
        entry("v2", "f" * 16 + "1" * 48),
        entry("v3", "f" * 16 + "2" * 48),
    )
    result = unique_pool_paths({"one": [one], "two": [two], "three": [three]})
    assert result["one"][0].pool_path == canonical
    assert result["two"][0].pool_path == f"pool/main/t/tool/{'f' * 16}{'1' * 48}/tool_1.0-1_amd64.deb"
    assert result["three"][0].pool_path == f"pool/main/t/tool/{'f' * 16}{'2' * 48}/tool_1.0-1_amd64.deb"
    # Without a clash the short form is used.
    result = unique_pool_paths({"one": [one], "two": [two]})
    assert result["two"][0].pool_path == f"pool/main/t/tool/{'f' * 16}/tool_1.0-1_amd64.deb"


def test_rules_that_match_nothing_are_reported() -> None:
    placed = place([item("tool", "1.0-1~jammy1")], routing(), "main")
    assert placed.unused_routes == ["version=*+deb12* -> bookworm", "asset=*_noble_* -> noble"]
    assert set(placed.suites) == set(routing().suites)  # empty suites are published too
    assert placed.suites["noble"] == []
    assert len(placed.suites["jammy"]) == 1


def test_the_same_releases_and_rules_give_byte_identical_indexes_in_any_order() -> None:
    items = [
        item("tool", "1.0-1", content="bookworm", name="tool_1.0-1_amd64_bookworm.deb"),
        item("tool", "1.0-1", content="jammy", name="tool_1.0-1_amd64_jammy.deb"),
        item("tool", "1.1-1~jammy1"),
        item("tool", "1.1-1+deb12u1"),
        item("tool", "1.2~rc1-1~jammy1", suite="prerelease", release="v1.2-rc1"),
        item("libfoo1", "3.0-1", arch="all"),
    ]
    r = routing(ROUTES + "; asset=*_bookworm.deb -> bookworm; asset=*_jammy.deb -> jammy")

    def build(order: list[tuple[Asset, DebInfo]]) -> dict[str, bytes]:
        placed = place(order, r, "main")
        return build_dists(
            placed.suites,
            component="main",
            architectures=["amd64", "arm64"],
            origin="ghapt",
            label="ghapt",
            date=datetime(2026, 1, 1, tzinfo=UTC),
        )

    first = build(items)
    assert "dists/jammy-prerelease/Release" in first
    assert "dists/noble/Release" in first
    for seed in range(5):
        assert build(random.Random(seed).sample(items, len(items))) == first  # noqa: S311


def test_published_suites_come_from_release_files() -> None:
    paths = [
        "dists/jammy/Release",
        "dists/jammy/InRelease",
        "dists/stable/Release",
        "dists/_suites.json",
        "dists/stable/main/binary-amd64/Release",
        "ghapt/pool.json",
    ]
    assert published_suites(paths) == ["jammy", "stable"]


def test_an_unsafe_source_name_skips_that_asset_and_the_rebuild_goes_on(tmp_path: Path) -> None:
    """A control file whose Source would leave the pool used to abort the whole rebuild."""
    from ghapt.bootstrap import Services

    from tests.support.debbuild import build_deb

    releases = tmp_path / "releases"
    build_deb(releases / "v1", "evil", "1.0-1", "all", extra={"Source": "../../x"})
    build_deb(releases / "v1", "good", "1.0-1", "all")
    settings = Settings.from_env(
        {}, releases_dir=releases, state_dir=tmp_path / "state", architectures="amd64"
    )
    result = Services(settings, {}).indexer.rebuild()
    assert result.changed
    assert result.added == ["stable:pool/main/g/good/good_1.0-1_all.deb"]
    (skipped,) = result.skipped
    assert skipped.asset.name == "evil_1.0-1_all.deb"
    assert "Source '../../x'" in skipped.reason
