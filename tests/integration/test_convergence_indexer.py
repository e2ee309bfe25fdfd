"""Issue 9: an indexer that converges on any backlog, and records what it left out.

Against the fake GitHub (real HTTP): a backlog larger than one time budget is published over
several invocations, each a whole, signed, valid index, converging byte for byte on what one
unlimited rebuild gives, with every asset downloaded exactly once. A rebuild that finds nothing
new downloads nothing, even with conflicting and broken assets around. The clock is injected:
nothing waits.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from debian.deb822 import Packages, Release
from ghapt.bootstrap import Services
from ghapt.core.errors import UpstreamError
from ghapt.core.model import Asset, DebInfo
from ghapt.core.settings import Settings
from ghapt.github.auth import github_auth_from_settings
from ghapt.github.client import GitHubClient
from ghapt.indexer import Indexer

from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub
from tests.support.hostiledebs import deb as hostile_deb

pytestmark = pytest.mark.skipif(shutil.which("gpgv") is None, reason="needs gpgv")

META = "acme/apt-meta"
REFERENCE = "acme/apt-meta-reference"
BRANCH = "apt-metadata"
REPOS = ("acme/tool", "acme/lib", "acme/old")
SUITES = ("stable", "prerelease")


class TickingSource:
    """The real GitHub source; each read advances the injected clock by one 'second'."""

    def __init__(self, inner: Any, clock: list[float]) -> None:
        self.inner = inner
        self.clock = clock
        self.reads: list[str] = []

    def list_assets(self) -> list[Asset]:
        return list(self.inner.list_assets())

    def read_deb(self, asset: Asset) -> DebInfo:
        self.reads.append(asset.key)
        self.clock[0] += 1.0
        return cast(DebInfo, self.inner.read_deb(asset))

    def download_url(self, locator: Mapping[str, str], base_url: str) -> str:
        return str(self.inner.download_url(locator, base_url))


def services_for(fake: FakeGitHub, state: Path, metadata_repo: str = META) -> Services:
    settings = Settings.from_env(
        {"GITHUB_TOKEN": fake.token},
        backend="github",
        api_url=fake.api_url,
        github_repos=list(REPOS),
        metadata_repo=metadata_repo,
        state_dir=state,
        architectures="amd64",
    )
    services = Services(settings, {})
    services.__dict__["github"] = GitHubClient(
        settings.api_url, github_auth_from_settings(settings, services.secrets), sleep=lambda s: None
    )
    return services


def indexer_for(services: Services, clock: list[float], *, workers: int = 1) -> tuple[Indexer, TickingSource]:
    """A fresh indexer, as a new Lambda invocation would build it (no warm read cache)."""
    source = TickingSource(services.source, clock)
    return Indexer(
        source,
        services.store,
        services.signer,
        services.settings,
        monotonic=lambda: clock[0],
        workers=workers,
    ), source


def storage_gets(fake: FakeGitHub) -> list[Any]:
    return fake.calls("GET", server="storage")


def asset_downloads(fake: FakeGitHub) -> list[Any]:
    """Requests that fetch asset bytes: the API's octet-stream GETs and the storage host's GETs."""
    api = [
        r
        for r in fake.calls("GET", r"/releases/assets/\d+$")
        if "octet-stream" in r.headers.get("accept", "")
    ]
    return api + storage_gets(fake)


def assert_valid_index(fake: FakeGitHub, repo: str, keyring: Path, tmp: Path) -> dict[str, set[str]]:
    """gpgv-verify every suite's InRelease, check Packages against it, and return the pool paths."""
    published: dict[str, set[str]] = {}
    for suite in SUITES:
        inrelease = fake.read_branch_file(repo, BRANCH, f"dists/{suite}/InRelease")
        assert inrelease is not None, f"{suite}: no InRelease"
        (tmp / "InRelease").write_bytes(inrelease)
        out = tmp / "Release"
        out.unlink(missing_ok=True)
        proc = subprocess.run(
            ["gpgv", "--keyring", str(keyring), "--output", str(out), str(tmp / "InRelease")],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        release = Release(out.read_text())
        listed = {f["name"]: f for f in release["SHA256"]}
        data = fake.read_branch_file(repo, BRANCH, f"dists/{suite}/main/binary-amd64/Packages")
        assert data is not None
        entry = listed["main/binary-amd64/Packages"]
        assert int(entry["size"]) == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        stanzas = list(Packages.iter_paragraphs(data.decode(), use_apt_pkg=False))
        for s in stanzas:
            assert s["Filename"].startswith("pool/main/")
            assert s["SHA256"]
            assert int(s["Size"]) > 0
        published[suite] = {s["Filename"] for s in stanzas}
    return published


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        for repo in (*REPOS, META, REFERENCE):
            fake.add_repo(repo)
        yield fake


@pytest.fixture(scope="module")
def backlog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("backlog")
    debs = {}
    for i in range(6):
        debs[f"tool_{i}"] = build_deb(out, "tool", f"1.{i}-1", "amd64").read_bytes()
        debs[f"lib_{i}"] = build_deb(
            out, "libbar1", f"2.{i}-1", "amd64", extra={"Source": "libbar"}
        ).read_bytes()
    debs["old"] = build_deb(out, "old-tool", "0.9-1", "all").read_bytes()
    debs["beta"] = build_deb(out, "tool", "3.0~beta1-1", "amd64").read_bytes()
    return debs


def publish_backlog(fake: FakeGitHub, debs: dict[str, bytes]) -> None:
    """Years of releases: with and without digests, stable and pre-release."""
    for i in range(6):
        fake.add_release(
            "acme/tool", f"v1.{i}", [(f"tool_1.{i}-1_amd64.deb", debs[f"tool_{i}"])], with_digest=i % 2 == 0
        )
        fake.add_release(
            "acme/lib", f"v2.{i}", [(f"libbar1_2.{i}-1_amd64.deb", debs[f"lib_{i}"])], with_digest=i % 3 != 0
        )
    fake.add_release("acme/old", "v0.9", [("old-tool_0.9-1_all.deb", debs["old"])], with_digest=False)
    fake.add_release(
        "acme/tool", "v3.0-beta1", [("tool_3.0.beta1-1_amd64.deb", debs["beta"])], prerelease=True
    )


def test_a_backlog_converges_over_several_budgeted_invocations(
    gh: FakeGitHub, backlog: dict[str, bytes], tmp_path: Path
) -> None:
    publish_backlog(gh, backlog)
    total = 14
    services = services_for(gh, tmp_path / "state")
    keyring = tmp_path / "key.gpg"
    keyring.write_bytes(services.signer.public_key())

    clock = [0.0]
    invocations = 0
    reads: list[str] = []
    seen: dict[str, set[str]] = {s: set() for s in SUITES}
    heads = []
    while True:
        invocations += 1
        assert invocations <= total, "the indexer does not converge"
        indexer, source = indexer_for(services, clock)
        result = indexer.rebuild(time_budget=4.0)
        reads += source.reads
        assert result.read == len(source.reads) >= 1, "every invocation makes progress"
        assert result.changed
        assert result.commit == gh.branch_head(META, BRANCH)
        heads.append(result.commit)
        # After every invocation the branch serves a whole, valid, signed index that never
        # drops a package an earlier invocation published.
        published = assert_valid_index(gh, META, keyring, tmp_path)
        for suite in SUITES:
            assert seen[suite] <= published[suite], "a partial index removed a published package"
            seen[suite] = published[suite]
        if result.complete:
            break
        assert result.remaining == total - len(reads)
        assert f"incomplete: {result.remaining} assets left" in result.summary()
    assert invocations >= 3
    assert sorted(reads) == sorted(set(reads)) and len(reads) == total, "each asset is read exactly once"
    limited_downloads = len(asset_downloads(gh))

    # Nothing left: the next invocation reads nothing and commits nothing.
    indexer, source = indexer_for(services, clock)
    again = indexer.rebuild(time_budget=4.0)
    assert (again.changed, again.read, again.remaining, source.reads) == (False, 0, 0, [])

    # One unlimited rebuild into another branch gives byte-identical Packages, downloading what
    # all the budgeted invocations downloaded together: no asset was fetched twice.
    gh.clear_log()
    reference = services_for(gh, tmp_path / "state", metadata_repo=REFERENCE)
    unlimited = reference.indexer.rebuild()
    assert unlimited.complete
    assert unlimited.read == total
    assert len(asset_downloads(gh)) == limited_downloads
    for suite in SUITES:
        for name in ("Packages", "Packages.gz", "Packages.xz"):
            path = f"dists/{suite}/main/binary-amd64/{name}"
            assert gh.read_branch_file(META, BRANCH, path) == gh.read_branch_file(REFERENCE, BRANCH, path), (
                path
            )


def test_a_github_failure_mid_backlog_keeps_what_was_read(
    gh: FakeGitHub, backlog: dict[str, bytes], tmp_path: Path
) -> None:
    publish_backlog(gh, backlog)
    services = services_for(gh, tmp_path / "state")
    clock = [0.0]
    # The fifth read fails on every retry: the four before it are published anyway.
    indexer, source = indexer_for(services, clock)
    real_read: Callable[[Asset], DebInfo] = source.inner.read_deb

    def failing(asset: Asset) -> DebInfo:
        if len(source.reads) == 5:
            raise UpstreamError("GitHub answered 502 three times")
        return real_read(asset)

    source.inner = type(
        "Src", (), {"read_deb": staticmethod(failing), "list_assets": source.inner.list_assets}
    )()
    with pytest.raises(UpstreamError):
        indexer.rebuild()
    head = gh.branch_head(META, BRANCH)
    assert head is not None, "the assets read before the failure were committed"
    first = source.reads[:4]

    indexer, source = indexer_for(services, clock)
    result = indexer.rebuild()
    assert result.complete
    assert result.read == 14 - 4
    assert not set(first) & set(source.reads), "nothing read before the failure was read again"


def test_a_no_change_rebuild_downloads_nothing_with_conflicts_and_broken_assets(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    out = tmp_path / "debs"
    tool = build_deb(out / "a", "tool", "1.0-1", "amd64").read_bytes()
    # Same Package/Version/Architecture, different bytes: one of the two loses.
    rival = build_deb(
        out / "b", "tool", "1.0-1", "amd64", extra={"Homepage": "https://rival.example"}
    ).read_bytes()
    ok = build_deb(out / "c", "libbar1", "1.0-1", "amd64").read_bytes()
    broken = hostile_deb(b"Package: broken\nVersion: 1.0\n", control_member=b"not a tar at all")
    gh.add_release("acme/tool", "v1.0", [("tool_1.0-1_amd64.deb", tool)])
    gh.add_release("acme/old", "v1.0", [("tool_1.0-1_amd64.deb", rival)], with_digest=False)
    gh.add_release("acme/lib", "v1.0", [("libbar1_1.0-1_amd64.deb", ok), ("broken_1.0_all.deb", broken)])
    services = services_for(gh, tmp_path / "state")

    first = Indexer(services.source, services.store, services.signer, services.settings).rebuild()
    reasons = " ".join(s.reason for s in first.skipped)
    assert first.packages == 2 and len(first.skipped) == 2 and "conflict" in reasons, first.summary()

    # A fresh process (a new Lambda container): only the record on the branch to go by.
    gh.clear_log()
    again = Indexer(services.source, services.store, services.signer, services.settings).rebuild()
    assert not again.changed
    assert again.read == 0
    assert again.reused == 4
    assert asset_downloads(gh) == [], "a no-change rebuild must not fetch any asset"
    assert len(again.skipped) == 2

    # The recorded loser wins once the winner is gone, still without downloading anything.
    winner = next(
        s
        for s in Packages.iter_paragraphs(
            (gh.read_branch_file(META, BRANCH, "dists/stable/main/binary-amd64/Packages") or b"").decode()
        )
        if s["Package"] == "tool"
    )
    for repo, data in (("acme/tool", tool), ("acme/old", rival)):
        if hashlib.sha256(data).hexdigest() == winner["SHA256"]:
            release = gh._repo(repo).releases[0]
            gh.delete_asset(repo, release.assets[0].id)
    gh.clear_log()
    after = Indexer(services.source, services.store, services.signer, services.settings).rebuild()
    assert after.changed
    assert after.read == 0
    assert asset_downloads(gh) == []
    tools = [
        s
        for s in Packages.iter_paragraphs(
            (gh.read_branch_file(META, BRANCH, "dists/stable/main/binary-amd64/Packages") or b"").decode()
        )
        if s["Package"] == "tool"
    ]
    assert len(tools) == 1
    assert tools[0]["SHA256"] != winner["SHA256"]


def test_a_github_failure_before_anything_was_read_commits_nothing(
    gh: FakeGitHub, backlog: dict[str, bytes], tmp_path: Path
) -> None:
    publish_backlog(gh, backlog)
    services = services_for(gh, tmp_path / "state")
    indexer, source = indexer_for(services, [0.0])

    def failing(asset: Asset) -> DebInfo:
        raise UpstreamError("GitHub answered 502 three times")

    source.inner = type(
        "Src", (), {"read_deb": staticmethod(failing), "list_assets": source.inner.list_assets}
    )()
    with pytest.raises(UpstreamError):
        indexer.rebuild()
    assert gh.branch_head(META, BRANCH) is None, "no empty index is published for a failure"
