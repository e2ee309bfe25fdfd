"""The GitHub backend end to end: Services, the Indexer and the pool over the fake GitHub.

Everything runs through the real code paths (``Services`` picks the GitHub source and branch
store, the client speaks real HTTP to ``tests.support.fakegithub``); assertions look at what landed on
the ``apt-metadata`` branch of the fake and at what the fake saw (calls, headers, bytes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.errors import RateLimited, UpstreamError
from ghapt.core.layout import POOL_FILE
from ghapt.core.settings import Settings
from ghapt.github.auth import github_auth_from_settings
from ghapt.github.client import GitHubClient

from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub, mangle_asset_name
from tests.support.servers import serve

META = "acme/apt-meta"
BRANCH = "apt-metadata"
REPOS = ("acme/tool", "acme/lib")
AUTH = ("alice", "pool-pass-1234")

Hook = Callable[[str, str, int], None]


# --- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real .debs (dpkg-deb). The ``big`` ones carry 1 MiB of incompressible payload."""
    out = tmp_path_factory.mktemp("debs")
    big = {"usr/share/tool/blob": os.urandom(1 << 20)}
    built = {
        "tool_1.0": build_deb(out, "tool", "1.0-1", "amd64"),
        "tool_1.1": build_deb(out, "tool", "1.1-1", "amd64", compression="xz", files=big),
        "tool_2.0": build_deb(out, "tool", "2.0-1", "amd64", compression="zstd", files=big),
        "tool_3.0~beta1": build_deb(out, "tool", "3.0~beta1-1", "amd64"),
        "tool_4.0": build_deb(out, "tool", "4.0-1", "amd64"),
        "libfoo1_2:3.0~rc1": build_deb(
            out, "libfoo1", "2:3.0~rc1-1", "amd64", extra={"Source": "libfoo (3.0~rc1-1)"}
        ),
        "libfoo-doc_3.0~rc1": build_deb(
            out, "libfoo-doc", "3.0~rc1-1", "all", compression="xz", extra={"Source": "libfoo"}
        ),
        "libfoo1_2:3.1": build_deb(out, "libfoo1", "2:3.1-1", "amd64", extra={"Source": "libfoo"}),
        "old_0.9": build_deb(out, "old-tool", "0.9-1", "all"),
    }
    return {name: path.read_bytes() for name, path in built.items()}


@pytest.fixture
def gh_repos() -> tuple[str, ...]:
    return (*REPOS, META)


def github_services(
    fake: FakeGitHub, state: Path, *, sleeps: list[float] | None = None, on_call: Hook | None = None
) -> Services:
    """Services over the fake, with a client whose retries do not really sleep."""
    settings = Settings.from_env(
        {"GITHUB_TOKEN": fake.token},
        backend="github",
        api_url=fake.api_url,
        github_repos=list(REPOS),
        metadata_repo=META,
        state_dir=state,
        architectures="amd64",
    )
    services = Services(settings, {})
    record = sleeps if sleeps is not None else []
    # ``github`` is a cached_property: install the client before anything uses it.
    services.__dict__["github"] = GitHubClient(
        settings.api_url,
        github_auth_from_settings(settings, services.secrets),
        sleep=record.append,
        on_call=on_call,
    )
    return services


def stanzas(text: str) -> list[dict[str, str]]:
    """Packages stanzas as dicts (continuation lines dropped)."""
    out = []
    for block in text.strip().split("\n\n"):
        if block.strip():
            fields = (ln.split(":", 1) for ln in block.splitlines() if ln and ln[0] not in " \t")
            out.append({k: v.strip() for k, v in fields})
    return out


def packages(fake: FakeGitHub, suite: str = "stable") -> list[dict[str, str]]:
    data = fake.read_branch_file(META, BRANCH, f"dists/{suite}/main/binary-amd64/Packages")
    assert data is not None, f"no Packages for {suite}"
    return stanzas(data.decode())


def versions(fake: FakeGitHub, suite: str = "stable") -> set[tuple[str, str]]:
    return {(s["Package"], s["Version"]) for s in packages(fake, suite)}


def pool(fake: FakeGitHub) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(fake.read_branch_file(META, BRANCH, POOL_FILE) or b"{}")
    return manifest


def commits_posted(fake: FakeGitHub) -> int:
    return len(fake.calls("POST", r"/git/commits$"))


def storage_gets(fake: FakeGitHub, asset_id: int | None = None) -> list[Any]:
    return [
        r for r in fake.calls("GET", server="storage") if asset_id is None or r.path.endswith(f"/{asset_id}")
    ]


def base_releases(fake: FakeGitHub, debs: dict[str, bytes]) -> dict[str, Any]:
    """Several releases across both repositories; asset names as GitHub mangles them."""
    rels = {
        "tool-v1.0": fake.add_release("acme/tool", "v1.0", [("tool_1.0-1_amd64.deb", debs["tool_1.0"])]),
        "tool-v1.1": fake.add_release("acme/tool", "v1.1", [("tool_1.1-1_amd64.deb", debs["tool_1.1"])]),
        "lib-v3.0": fake.add_release(
            "acme/lib",
            "v3.0~rc1",
            [
                ("libfoo1_2:3.0~rc1-1_amd64.deb", debs["libfoo1_2:3.0~rc1"]),
                ("libfoo-doc_3.0~rc1-1_all.deb", debs["libfoo-doc_3.0~rc1"]),
                ("SHA256SUMS", b"not a deb\n"),
            ],
        ),
    }
    return rels


BASE_VERSIONS = {
    ("tool", "1.0-1"),
    ("tool", "1.1-1"),
    ("libfoo1", "2:3.0~rc1-1"),
    ("libfoo-doc", "3.0~rc1-1"),
}


# --- 1. cold rebuild ----------------------------------------------------------------------------
def test_cold_rebuild_commits_every_release_of_both_repos_once(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    rels = base_releases(gh, debs)
    lib_asset = rels["lib-v3.0"].asset("libfoo1_2:3.0~rc1-1_amd64.deb")
    assert lib_asset.name == "libfoo1_2.3.0.rc1-1_amd64.deb" == mangle_asset_name(lib_asset.name)
    assert gh.branch_head(META, BRANCH) is None

    services = github_services(gh, tmp_path / "state")
    result = services.indexer.rebuild()

    assert result.changed
    assert result.packages == 4
    assert result.skipped == []
    head = gh.branch_head(META, BRANCH)
    assert head == result.commit
    assert head is not None
    assert gh.commit_info(META, head)["parents"] == []
    # One commit; the branch was created (POST refs), never updated or forced.
    assert commits_posted(gh) == 1
    assert [r.status for r in gh.calls("POST", r"/git/refs$")] == [201]
    assert gh.calls("PATCH") == []
    assert gh.calls("POST", r"/git/refs$")[0].json()["ref"] == f"refs/heads/{BRANCH}"

    assert versions(gh) == BASE_VERSIONS
    files = gh.branch_files(META, BRANCH)
    for name in ("Release", "InRelease", "Release.gpg"):
        assert f"dists/stable/{name}" in files
    assert any("/by-hash/SHA256/" in p for p in files)

    # Pool paths come from the control data, never from the (mangled) asset names.
    manifest = pool(gh)
    lib_path = "pool/main/libf/libfoo/libfoo1_3.0~rc1-1_amd64.deb"
    assert set(manifest) == {
        "pool/main/t/tool/tool_1.0-1_amd64.deb",
        "pool/main/t/tool/tool_1.1-1_amd64.deb",
        lib_path,
        "pool/main/libf/libfoo/libfoo-doc_3.0~rc1-1_all.deb",
    }
    assert manifest[lib_path]["locator"] == {"repo": "acme/lib", "asset_id": str(lib_asset.id)}
    tool_asset = rels["tool-v1.0"].assets[0]
    assert manifest["pool/main/t/tool/tool_1.0-1_amd64.deb"]["locator"] == {
        "repo": "acme/tool",
        "asset_id": str(tool_asset.id),
    }
    by_filename = {s["Filename"]: s for s in packages(gh)}
    assert set(by_filename) == set(manifest)
    assert by_filename[lib_path]["SHA256"] == hashlib.sha256(debs["libfoo1_2:3.0~rc1"]).hexdigest()
    assert by_filename[lib_path]["Size"] == str(len(debs["libfoo1_2:3.0~rc1"]))


# --- 2. incremental -----------------------------------------------------------------------------
def test_a_new_release_is_the_only_asset_read_and_nothing_changed_means_no_commit(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    base_releases(gh, debs)
    services = github_services(gh, tmp_path / "state")
    first = services.indexer.rebuild()
    assert first.changed

    # A fresh process (new Services): only the recorded state on the branch can save reads.
    gh.clear_log()
    new = gh.add_release("acme/tool", "v2.0", [("tool_2.0-1_amd64.deb", debs["tool_2.0"])]).assets[0]
    second = github_services(gh, tmp_path / "state").indexer.rebuild()

    assert second.read == 1
    assert second.reused == 4
    assert second.added == ["stable:pool/main/t/tool/tool_2.0-1_amd64.deb"]
    assert second.removed == []
    assert commits_posted(gh) == 1
    assert gh.branch_head(META, BRANCH) == second.commit
    assert second.commit is not None
    assert [p["sha"] for p in gh.commit_info(META, second.commit)["parents"]] == [first.commit]
    # Only the new asset was touched on the storage host, by Range, a small part of it.
    reads = storage_gets(gh)
    assert reads
    assert all(r.path.endswith(f"/{new.id}") for r in reads)
    assert all(r.headers.get("range", "").startswith("bytes=") for r in reads)
    assert all("authorization" not in r.headers for r in reads)
    assert [r.path for r in gh.calls("GET", r"/releases/assets/\d+$")] == [
        f"/repos/acme/tool/releases/assets/{new.id}"
    ]
    assert 0 < gh.storage_bytes_served < len(debs["tool_2.0"]) // 10
    assert ("tool", "2.0-1") in versions(gh)
    assert versions(gh) >= BASE_VERSIONS

    # Nothing changed: no commit, no blob/tree/ref writes, nothing downloaded.
    gh.clear_log()
    head = gh.branch_head(META, BRANCH)
    services = github_services(gh, tmp_path / "state")
    third = services.indexer.rebuild()
    assert not third.changed
    assert third.commit is None
    assert third.read == 0
    assert third.reused == 5
    assert gh.branch_head(META, BRANCH) == head
    assert [r for r in gh.requests_log if r.method != "GET"] == []
    assert storage_gets(gh) == []
    assert gh.storage_bytes_served == 0
    assert gh.calls("GET", r"/releases/assets/") == []
    assert services.github.stats.storage_calls == 0


def test_digest_assets_are_read_by_range_and_digestless_ones_streamed_once_with_all_hashes(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    with_digest = gh.add_release("acme/tool", "v1.1", [("tool_1.1-1_amd64.deb", debs["tool_1.1"])])
    legacy = gh.add_release(
        "acme/tool", "v2.0", [("tool_2.0-1_amd64.deb", debs["tool_2.0"])], with_digest=False
    )
    a, b = with_digest.assets[0], legacy.assets[0]
    assert a.digest
    assert b.digest is None

    services = github_services(gh, tmp_path / "state")
    result = services.indexer.rebuild()
    assert result.read == 2
    assert result.packages == 2

    ranged = storage_gets(gh, a.id)
    assert ranged
    assert all(r.status == 206 and r.headers.get("range") for r in ranged)
    served_a = sum(int(r.headers["range"].split("-")[1]) + 1 for r in ranged if "range" in r.headers)
    assert served_a < len(debs["tool_1.1"]) // 10, "only the ar header and control member by Range"
    streamed = storage_gets(gh, b.id)
    assert [(r.status, "range" in r.headers) for r in streamed] == [(200, False)], "one full stream"
    assert gh.storage_bytes_served < len(debs["tool_2.0"]) + len(debs["tool_1.1"]) // 10

    stanza = {s["Version"]: s for s in packages(gh)}
    full = stanza["2.0-1"]
    data = debs["tool_2.0"]
    assert full["MD5sum"] == hashlib.md5(data).hexdigest()
    assert full["SHA1"] == hashlib.sha1(data).hexdigest()
    assert full["SHA256"] == hashlib.sha256(data).hexdigest()
    assert full["Size"] == str(len(data))
    ranged_only = stanza["1.1-1"]
    assert ranged_only["SHA256"] == hashlib.sha256(debs["tool_1.1"]).hexdigest()
    assert "MD5sum" not in ranged_only
    assert "SHA1" not in ranged_only


# --- 3. deletions -------------------------------------------------------------------------------
def test_a_deleted_release_and_a_deleted_asset_drop_out_of_the_next_index(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    rels = base_releases(gh, debs)
    github_services(gh, tmp_path / "state").indexer.rebuild()
    assert versions(gh) == BASE_VERSIONS

    gh.delete_release("acme/tool", "v1.0")
    gh.delete_asset("acme/lib", rels["lib-v3.0"].asset("libfoo-doc_3.0~rc1-1_all.deb").id)
    gh.clear_log()
    result = github_services(gh, tmp_path / "state").indexer.rebuild()

    assert result.removed == [
        "stable:pool/main/libf/libfoo/libfoo-doc_3.0~rc1-1_all.deb",
        "stable:pool/main/t/tool/tool_1.0-1_amd64.deb",
    ]
    assert result.added == []
    assert result.read == 0
    assert commits_posted(gh) == 1
    assert versions(gh) == {("tool", "1.1-1"), ("libfoo1", "2:3.0~rc1-1")}
    assert set(pool(gh)) == {
        "pool/main/t/tool/tool_1.1-1_amd64.deb",
        "pool/main/libf/libfoo/libfoo1_3.0~rc1-1_amd64.deb",
    }
    assert storage_gets(gh) == []


# --- 4. suites ------------------------------------------------------------------------------------
def test_prereleases_get_their_own_suite_drafts_are_excluded_and_promotion_moves_to_stable(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    gh.add_release("acme/tool", "v1.0", [("tool_1.0-1_amd64.deb", debs["tool_1.0"])])
    pre = gh.add_release(
        "acme/tool", "v3.0-beta1", [("tool_3.0~beta1-1_amd64.deb", debs["tool_3.0~beta1"])], prerelease=True
    )
    draft = gh.add_release("acme/tool", "v4.0", [("tool_4.0-1_amd64.deb", debs["tool_4.0"])], draft=True)

    result = github_services(gh, tmp_path / "state").indexer.rebuild()
    assert result.packages == 2
    assert versions(gh, "stable") == {("tool", "1.0-1")}
    assert versions(gh, "prerelease") == {("tool", "3.0~beta1-1")}
    files = gh.branch_files(META, BRANCH)
    release = files["dists/prerelease/Release"].decode()
    assert "Suite: prerelease" in release
    assert "dists/prerelease/InRelease" in files
    assert all("4.0-1" not in p for p in pool(gh))
    assert storage_gets(gh, draft.assets[0].id) == [], "a draft's asset is never read"
    assert gh.calls("GET", rf"/releases/assets/{draft.assets[0].id}$") == []

    gh.set_release("acme/tool", "v3.0-beta1", prerelease=False)
    gh.clear_log()
    promoted = github_services(gh, tmp_path / "state").indexer.rebuild()
    assert promoted.changed
    assert promoted.read == 0, "same asset: its record is reused"
    assert promoted.added == ["stable:pool/main/t/tool/tool_3.0~beta1-1_amd64.deb"]
    assert promoted.removed == ["prerelease:pool/main/t/tool/tool_3.0~beta1-1_amd64.deb"]
    assert versions(gh, "stable") == {("tool", "1.0-1"), ("tool", "3.0~beta1-1")}
    assert versions(gh, "prerelease") == set()
    assert pool(gh)["pool/main/t/tool/tool_3.0~beta1-1_amd64.deb"]["locator"]["asset_id"] == str(
        pre.assets[0].id
    )
    assert storage_gets(gh) == []


# --- 5. hostile assets ----------------------------------------------------------------------------
def test_hostile_debs_are_skipped_with_a_reason_naming_them_while_the_rest_publish(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    gh.add_release(
        "acme/tool",
        "v1.0",
        [
            ("tool_1.0-1_amd64.deb", debs["tool_1.0"]),
            ("truncated_1.0_amd64.deb", debs["tool_1.1"][:150]),
            ("notanar_1.0_all.deb", b"PK\x03\x04 this is a zip, not an ar archive" * 10),
        ],
    )
    gh.add_release("acme/lib", "legacy", [("cut_0.9_all.deb", debs["old_0.9"][:150])], with_digest=False)
    result = github_services(gh, tmp_path / "state").indexer.rebuild()

    assert result.changed
    assert result.packages == 1
    assert versions(gh) == {("tool", "1.0-1")}
    skipped = {s.asset.name: s.reason for s in result.skipped}
    assert set(skipped) == {"truncated_1.0_amd64.deb", "notanar_1.0_all.deb", "cut_0.9_all.deb"}
    assert "truncated" in skipped["truncated_1.0_amd64.deb"]
    assert "truncated" in skipped["cut_0.9_all.deb"]
    assert "not an ar archive" in skipped["notanar_1.0_all.deb"]
    summary = result.summary()
    assert result.commit is not None
    message = gh.commit_info(META, result.commit)["message"]
    for s in result.skipped:
        assert f"skipped {s.asset.key} ({s.asset.name}): {s.reason}" in summary
        assert f"skipped {s.asset.key}: {s.reason}" in message
    assert list(pool(gh)) == ["pool/main/t/tool/tool_1.0-1_amd64.deb"]

    # Known-bad assets are remembered: the next rebuild reads nothing and commits nothing.
    gh.clear_log()
    again = github_services(gh, tmp_path / "state").indexer.rebuild()
    assert not again.changed
    assert again.read == 0
    assert storage_gets(gh) == []
    assert {s.asset.name for s in again.skipped} == set(skipped)


# --- 6. GitHub failures -------------------------------------------------------------------------
def _many_releases(fake: FakeGitHub, n: int = 100) -> None:
    """Empty releases, so the listing of acme/tool has a page 2 (per_page is 100)."""
    for i in range(n):
        fake.add_release("acme/tool", f"empty-{i}")


# (fail_next arguments, the error the rebuild raises, the status the fake answered with)
FAILURES: dict[str, tuple[dict[str, Any], type[Exception], int]] = {
    "500s on POST git/trees": (
        dict(pattern=r"/git/trees$", method="POST", status=500, count=4),
        UpstreamError,
        500,
    ),
    "502s on POST git/commits": (
        dict(pattern=r"/git/commits$", method="POST", status=502, count=4),
        UpstreamError,
        502,
    ),
    "503s on PATCH of the ref": (
        dict(pattern=r"/git/refs/heads/", method="PATCH", status=503, count=4),
        UpstreamError,
        503,
    ),
    "secondary limits on GET git/trees, more often than the client waits": (
        dict(pattern=r"/git/trees/", method="GET", status=403, kind="secondary", retry_after=1, count=4),
        RateLimited,
        403,
    ),
    "secondary limit on the releases listing's page 2, longer than the cap": (
        dict(pattern=r"^/repositories/\d+/releases$", status=429, kind="secondary", retry_after=600),
        RateLimited,
        429,
    ),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_rebuild_that_fails_midway_leaves_the_branch_exactly_unchanged(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path, failure: str
) -> None:
    base_releases(gh, debs)
    _many_releases(gh)
    sleeps: list[float] = []
    github_services(gh, tmp_path / "state", sleeps=sleeps).indexer.rebuild()
    head = gh.branch_head(META, BRANCH)
    before = gh.branch_files(META, BRANCH)
    gh.add_release("acme/lib", "v3.1", [("libfoo1_2:3.1-1_amd64.deb", debs["libfoo1_2:3.1"])])

    spec, expected, status = FAILURES[failure]
    gh.fail_next(**spec)
    gh.clear_log()
    services = github_services(gh, tmp_path / "state", sleeps=sleeps)
    with pytest.raises(expected):
        services.indexer.rebuild()
    hit = [r for r in gh.requests_log if r.status == status]
    assert len(hit) == spec.get("count", 1), "every programmed failure was met, none more"
    assert gh.branch_head(META, BRANCH) == head
    assert gh.branch_files(META, BRANCH) == before
    assert all(s <= services.github.rate_limit_cap for s in sleeps), "never slept past the cap"

    # The failure is over: the next rebuild (same process) publishes the new release.
    result = services.indexer.rebuild()
    assert result.changed
    assert result.attempts == 1
    assert gh.branch_head(META, BRANCH) == result.commit != head
    assert result.commit is not None
    assert gh.commit_info(META, result.commit)["parents"][0]["sha"] == head
    assert versions(gh) == {*BASE_VERSIONS, ("libfoo1", "2:3.1-1")}


def test_transient_failures_within_the_retry_budget_just_succeed(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    base_releases(gh, debs)
    _many_releases(gh)
    sleeps: list[float] = []
    services = github_services(gh, tmp_path / "state", sleeps=sleeps)
    gh.secondary_limit_next(r"^/repositories/\d+/releases$", retry_after=7, status=429)
    gh.fail_next(r"/git/trees$", method="POST", status=500, count=2)
    gh.fail_next(r"/git/commits$", method="POST", status=403, kind="secondary", retry_after=3)
    gh.fail_next(r"/git/refs$", method="POST", status=502)

    result = services.indexer.rebuild()

    assert result.changed
    assert versions(gh) == BASE_VERSIONS
    assert gh.branch_head(META, BRANCH) == result.commit
    statuses = sorted(r.status for r in gh.requests_log if r.status in (403, 429) or r.status >= 500)
    assert statuses == [403, 429, 500, 500, 502]
    stats = services.github.stats
    assert stats.retries == 3
    assert stats.rate_limit_waits == 2
    assert 7.0 in sleeps, "retry-after is honoured (with an injected sleep)"
    assert 3.0 in sleeps, "retry-after is honoured (with an injected sleep)"
    assert commits_posted(gh) == 2, "the throttled commit POST was retried once"
    # Exactly one commit is reachable: the one the branch was created at.
    assert result.commit is not None
    assert gh.commit_info(META, result.commit)["parents"] == []


# --- 7. two writers -----------------------------------------------------------------------------
def test_two_concurrent_writers_both_land_without_force(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    """A and B run at once, each seeing a different new release:

    B lists acme/tool (no X yet) · X is published · A lists acme/tool (X) and acme/lib (no Y) ·
    Y is published · B lists acme/lib (Y), reads Y, commits and moves the branch · A, having
    committed on the old head, gets 422 on its ref update, rebuilds on B's head, and lands."""
    gh.add_release("acme/tool", "v1.0", [("tool_1.0-1_amd64.deb", debs["tool_1.0"])])
    state = tmp_path / "state"
    start = github_services(gh, state).indexer.rebuild()
    x_deb, y_deb = debs["tool_2.0"], debs["libfoo1_2:3.1"]

    b_listed_tool, a_listed_lib, b_moved = threading.Event(), threading.Event(), threading.Event()
    published: dict[str, int] = {}

    def on_call_b(method: str, url: str, status: int) -> None:
        path = urlsplit(url).path
        if method == "GET" and path.endswith("/repos/acme/tool/releases") and not b_listed_tool.is_set():
            b_listed_tool.set()
            assert a_listed_lib.wait(30), "A never listed acme/lib"
            y = gh.add_release("acme/lib", "v3.1", [("libfoo1_2:3.1-1_amd64.deb", y_deb)])
            published["y"] = y.assets[0].id
        if method == "PATCH" and status == 200:
            b_moved.set()

    def on_call_a(method: str, url: str, status: int) -> None:
        path = urlsplit(url).path
        if method == "GET" and path.endswith("/repos/acme/lib/releases"):
            a_listed_lib.set()
        if method == "POST" and path.endswith("/git/commits") and not b_moved.is_set():
            assert b_moved.wait(30), "B never moved the branch"

    writer_a = github_services(gh, state, on_call=on_call_a).indexer
    writer_b = github_services(gh, state, on_call=on_call_b).indexer
    gh.clear_log()
    with ThreadPoolExecutor(max_workers=1) as pool_b:
        future_b = pool_b.submit(writer_b.rebuild)
        assert b_listed_tool.wait(30), "B never listed acme/tool"
        x = gh.add_release("acme/tool", "v2.0", [("tool_2.0-1_amd64.deb", x_deb)])
        result_a = writer_a.rebuild()
        result_b = future_b.result(timeout=60)

    assert result_b.attempts == 1
    assert result_b.added == ["stable:pool/main/libf/libfoo/libfoo1_3.1-1_amd64.deb"]
    assert result_a.attempts == 2
    assert result_a.added == ["stable:pool/main/t/tool/tool_2.0-1_amd64.deb"]
    assert result_a.read == 0, "A's retry reused what it had read (and B's record of Y)"

    patches = gh.calls("PATCH", r"/git/refs/heads/")
    assert [r.status for r in patches] == [200, 422, 200]
    assert all(r.json()["force"] is False for r in patches)
    head = gh.branch_head(META, BRANCH)
    assert head == result_a.commit
    assert head is not None
    b_commit = gh.commit_info(META, head)["parents"][0]["sha"]
    assert b_commit == result_b.commit
    assert gh.commit_info(META, b_commit)["parents"][0]["sha"] == start.commit
    assert versions(gh) == {("tool", "1.0-1"), ("tool", "2.0-1"), ("libfoo1", "2:3.1-1")}
    locators = {v["locator"]["asset_id"] for v in pool(gh).values()}
    assert {str(x.assets[0].id), str(published["y"])} <= locators
    # X was read once, by A, before its lost race; never again.
    log = gh.requests_log
    lost = next(i for i, r in enumerate(log) if r.method == "PATCH" and r.status == 422)
    x_reads = [
        i for i, r in enumerate(log) if r.server == "storage" and r.path.endswith(f"/{x.assets[0].id}")
    ]
    assert x_reads
    assert max(x_reads) < lost


# --- 8. the pool ----------------------------------------------------------------------------------
def test_pool_redirects_to_the_storage_host_caches_the_url_and_storage_gets_no_credentials(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    rels = base_releases(gh, debs)
    state = tmp_path / "state"
    UserFile(state / "users.json").add(*AUTH)
    services = github_services(gh, state)
    services.indexer.rebuild()
    assert services.pool.url_ttl < 300, "GitHub's signed URLs live about 5 minutes"
    asset = rels["lib-v3.0"].asset("libfoo1_2:3.0~rc1-1_amd64.deb")

    with serve(services) as server:
        url = f"{server.url}/pool/main/libf/libfoo/libfoo1_3.0%7erc1-1_amd64.deb"
        gh.clear_log()
        first = requests.get(url, auth=AUTH, allow_redirects=False, timeout=10)
        assert first.status_code == 302
        location = first.headers["Location"]
        assert location.startswith(gh.storage_url + "/")
        assert urlsplit(location).netloc not in (urlsplit(server.url).netloc, urlsplit(gh.api_url).netloc)
        assert [r.path for r in gh.calls("GET", r"/releases/assets/")] == [
            f"/repos/acme/lib/releases/assets/{asset.id}"
        ]

        # Within the window: the same URL, and GitHub is not asked at all.
        gh.clear_log()
        second = requests.get(url, auth=AUTH, allow_redirects=False, timeout=10)
        assert second.status_code == 302
        assert second.headers["Location"] == location
        assert gh.requests_log == []

        # Another asset has its own URL.
        other = requests.get(
            f"{server.url}/pool/main/t/tool/tool_1.0-1_amd64.deb",
            auth=AUTH,
            allow_redirects=False,
            timeout=10,
        )
        assert other.status_code == 302
        assert other.headers["Location"] != location

    # The storage host serves the bytes without credentials, and refuses them with 400.
    gh.clear_log()
    plain = requests.get(location, timeout=10)
    assert plain.status_code == 200
    assert plain.content == debs["libfoo1_2:3.0~rc1"]
    assert (
        requests.get(location, headers={"Authorization": f"Bearer {gh.token}"}, timeout=10).status_code == 400
    )
    assert [("authorization" in r.headers, r.status) for r in storage_gets(gh)] == [(False, 200), (True, 400)]


def test_pool_urls_are_fetched_again_once_the_window_has_passed(
    gh: FakeGitHub, debs: dict[str, bytes], tmp_path: Path
) -> None:
    rels = base_releases(gh, debs)
    services = github_services(gh, tmp_path / "state")
    services.indexer.rebuild()
    gh.clear_log()
    now = [1000.0]
    resolver = services.pool
    resolver.clock = lambda: now[0]
    rel = "main/t/tool/tool_1.1-1_amd64.deb"
    asset_calls = rf"/releases/assets/{rels['tool-v1.1'].assets[0].id}$"

    first = resolver.resolve(rel, "https://apt.example")
    now[0] += resolver.url_ttl - 1
    assert resolver.resolve(rel, "https://apt.example").headers["Location"] == first.headers["Location"]
    assert len(gh.calls("GET", asset_calls)) == 1
    now[0] += 2
    resolver.resolve(rel, "https://apt.example")
    assert len(gh.calls("GET", asset_calls)) == 2
    assert first.status == 302
    assert first.headers["Cache-Control"] == "no-store"
    assert re.match(
        re.escape(gh.storage_url) + r"/github-production-release-asset/\d+/\d+\?", first.headers["Location"]
    )
