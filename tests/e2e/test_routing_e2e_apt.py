"""One repository for a mixed fleet: two real apt roots (bookworm, jammy) against the GitHub stand-in.

The fake GitHub renames assets the way GitHub does (``~`` and ``:`` become ``.``), the rules route
on the control data's version, on the asset name and on the tag, and each apt root, configured
for one suite only, resolves, downloads and verifies its own build of the same tool.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.cli.clientconfig import auth_entry
from ghapt.core.layout import POOL_FILE, SUITES_FILE
from ghapt.core.settings import Settings
from ghapt.github.auth import github_auth_from_settings
from ghapt.github.client import GitHubClient
from ghapt.indexer import RebuildResult

from tests.support.aptclient import AptClient
from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub
from tests.support.servers import RunningServer, serve

pytestmark = [pytest.mark.apt, pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")]

META = "acme/apt-meta"
USER, PASSWORD = "fleet", "mixed-fleet-pass-123"
ROUTES = (
    "version=*+deb12* -> bookworm; version=*~jammy* -> jammy; "
    "asset=*_bookworm.deb -> bookworm; asset=*_jammy.deb -> jammy; "
    "tag=*-noble -> noble; version=*~focal* -> focal"
)
# One fixed clock for every rebuild, so two rebuilds can be compared byte for byte.
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


@dataclass
class Fleet:
    gh: FakeGitHub
    services: Services
    server: RunningServer
    result: RebuildResult
    debs: dict[str, bytes]
    key: Path
    tmp: Path

    def apt(self, suite: str) -> AptClient:
        apt = AptClient(self.tmp / f"apt-{suite}")
        (apt.root / "etc/apt/apt.conf.d").mkdir(exist_ok=True)
        apt.add_source(self.server.url, suite, self.key)
        apt.set_auth(auth_entry(self.server.url, USER, PASSWORD))
        return apt


def _settings(gh: FakeGitHub, state: Path, metadata_repo: str = META) -> Settings:
    return Settings.from_env(
        {"GITHUB_TOKEN": gh.token},
        backend="github",
        api_url=gh.api_url,
        github_repos=["acme/mytool"],
        metadata_repo=metadata_repo,
        state_dir=state,
        architectures="amd64",
        routes=ROUTES,
    )


def _services(settings: Settings) -> Services:
    services = Services(settings, {})
    services.__dict__["github"] = GitHubClient(
        settings.api_url, github_auth_from_settings(settings, services.secrets), sleep=lambda s: None
    )
    services.indexer.clock = lambda: NOW
    return services


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    out = tmp_path / "debs"

    # Different bytes per distribution: the README names the build it was made for.
    def deb(package: str, version: str, arch: str, build: str) -> bytes:
        files = {f"usr/share/doc/{package}/README": f"{package} {version} built for {build}\n".encode()}
        return build_deb(out / build, package, version, arch, files=files).read_bytes()

    debs = {
        "mytool-bookworm": deb("mytool", "1.4.0-1+deb12u1", "amd64", "bookworm"),
        "mytool-jammy": deb("mytool", "1.4.0-1~jammy1", "amd64", "jammy"),
        "agent-bookworm": deb("agent", "2:2.0-1", "amd64", "bookworm"),
        "agent-jammy": deb("agent", "2:2.0-1", "amd64", "jammy"),
        "common": deb("mytool-common", "1.4.0-1", "all", "any"),
        "noble": deb("mytool", "1.4.0-1", "amd64", "noble"),
        "rc-jammy": deb("mytool", "1.5.0~rc1-1~jammy1", "amd64", "jammy-rc"),
    }
    state = tmp_path / "state"
    UserFile(state / "users.json").add(USER, PASSWORD)
    with FakeGitHub() as gh:
        gh.add_repo(META)
        gh.add_release(
            "acme/mytool",
            "v1.4.0",
            [
                # GitHub turns these into mytool_1.4.0-1.deb12u1... and mytool_1.4.0-1.jammy1_amd64.deb
                ("mytool_1.4.0-1+deb12u1_amd64.deb", debs["mytool-bookworm"]),
                ("mytool_1.4.0-1~jammy1_amd64.deb", debs["mytool-jammy"]),
                # Same Package/Version/Architecture, told apart by the asset name only.
                ("agent_2:2.0-1_amd64_bookworm.deb", debs["agent-bookworm"]),
                ("agent_2:2.0-1_amd64_jammy.deb", debs["agent-jammy"]),
                ("mytool-common_1.4.0-1_all.deb", debs["common"]),
            ],
        )
        gh.add_release("acme/mytool", "v1.4.0-noble", [("mytool_1.4.0-1_amd64.deb", debs["noble"])])
        gh.add_release(
            "acme/mytool",
            "v1.5.0-rc1",
            [("mytool_1.5.0~rc1-1~jammy1_amd64.deb", debs["rc-jammy"])],
            prerelease=True,
        )
        services = _services(_settings(gh, state))
        result = services.indexer.rebuild()
        assert result.changed and result.skipped == [], result.summary()
        with serve(services) as server:
            key = tmp_path / "ghapt.asc"
            key.write_text(services.signer.public_key_armored())
            yield Fleet(gh, services, server, result, debs, key, tmp_path)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_each_root_installs_its_own_build_and_sees_only_its_suite(fleet: Fleet) -> None:
    roots = {suite: fleet.apt(suite) for suite in ("bookworm", "jammy")}
    for suite, apt in roots.items():
        other = "jammy" if suite == "bookworm" else "bookworm"
        update = apt.run("update")
        assert update.returncode == 0, update.output
        assert "W:" not in update.output and "E:" not in update.output, update.output

        policy = apt.cache("policy", "mytool", "agent", "mytool-common").output
        own, foreign = ("+deb12u1", "~jammy1") if suite == "bookworm" else ("~jammy1", "+deb12u1")
        assert own in policy and foreign not in policy, policy
        assert f" {suite}/main amd64 Packages" in policy and f"{other}/main" not in policy, policy
        assert "stable/main" not in policy and "1.5.0~rc1" not in policy, policy
        # Neither the unrouted package (stable) nor the noble build is visible here.
        assert "mytool-common" not in policy and "1.4.0-1 500" not in policy, policy
        assert policy.count("Version table:") == 2, policy

        # "Install" (the resolver picks the candidate; dpkg stays out of the test machine).
        install = apt.run("install", "-y", "--download-only", "mytool", "agent")
        assert install.returncode == 0, install.output
        archives = apt.root / "var/cache/apt/archives"
        got = {p.name.split("_", 1)[0]: _sha(p.read_bytes()) for p in archives.glob("*.deb")}
        assert got == {
            "mytool": _sha(fleet.debs[f"mytool-{suite}"]),
            "agent": _sha(fleet.debs[f"agent-{suite}"]),
        }
        download = apt.run("download", "agent")
        assert download.returncode == 0, download.output
        (saved,) = (apt.root / "downloads").glob("agent_*.deb")
        assert _sha(saved.read_bytes()) == _sha(fleet.debs[f"agent-{suite}"])
    assert _sha(fleet.debs["agent-bookworm"]) != _sha(fleet.debs["agent-jammy"])


def test_suites_releases_and_content_unique_pool_paths(fleet: Fleet) -> None:
    store = fleet.services.store
    head = store.head()
    assert head is not None
    files = store.list_files(head)
    expected = {
        "stable",
        "prerelease",
        "bookworm",
        "bookworm-prerelease",
        "jammy",
        "jammy-prerelease",
        "noble",
        "noble-prerelease",
        "focal",
        "focal-prerelease",
    }
    for suite in expected:
        release = (store.read_file(head, f"dists/{suite}/Release") or b"").decode()
        assert f"\nSuite: {suite}\n" in release
        assert f"\nCodename: {suite}\n" in release
        assert f"dists/{suite}/InRelease" in files
        assert f"dists/{suite}/main/binary-amd64/Packages.xz" in files
    listing = json.loads(store.read_file(head, SUITES_FILE) or b"{}")
    assert listing["default"] == "stable"
    assert set(listing["suites"]) == expected
    assert listing["prerelease"]["jammy"] == "jammy-prerelease"
    assert listing["prerelease"]["stable"] == "prerelease"

    def packages(suite: str) -> str:
        return (store.read_file(head, f"dists/{suite}/main/binary-amd64/Packages") or b"").decode()

    assert "Version: 1.5.0~rc1-1~jammy1" in packages("jammy-prerelease")
    assert "1.5.0~rc1" not in packages("jammy")
    assert "Package: mytool\n" not in packages("prerelease")
    assert "Package: mytool-common" in packages("stable")
    assert "Package: mytool\n" not in packages("stable")
    assert "Version: 1.4.0-1\n" in packages("noble")
    assert packages("focal") == ""
    # The agent builds share a canonical pool path: the preferred one keeps it, the other one gets
    # a content segment; the pool manifest points each path at exactly the bytes its stanza lists.
    pool = json.loads(store.read_file(head, POOL_FILE) or b"{}")
    by_suite = {}
    for suite in ("bookworm", "jammy"):
        stanza = next(s for s in packages(suite).split("\n\n") if s.startswith("Package: agent\n"))
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
        assert pool[fields["Filename"]]["sha256"] == fields["SHA256"] == _sha(fleet.debs[f"agent-{suite}"])
        by_suite[suite] = fields["Filename"]
    assert by_suite["bookworm"] == "pool/main/a/agent/agent_2.0-1_amd64.deb"
    short = _sha(fleet.debs["agent-jammy"])[:16]
    assert by_suite["jammy"] == f"pool/main/a/agent/{short}/agent_2.0-1_amd64.deb"
    # A rule that matched nothing is reported; the others are not.
    assert fleet.result.unused_routes == ["version=*~focal* -> focal"]
    assert "routing rule matched no asset: version=*~focal* -> focal" in fleet.result.summary()


def test_the_same_releases_and_rules_give_byte_identical_indexes(fleet: Fleet) -> None:
    fleet.gh.add_repo("acme/apt-meta-2")
    again = _services(_settings(fleet.gh, fleet.tmp / "state", "acme/apt-meta-2"))
    result = again.indexer.rebuild()
    assert result.changed
    assert result.commit
    first = fleet.gh.branch_files(META, "apt-metadata")
    second = fleet.gh.branch_files("acme/apt-meta-2", "apt-metadata")
    unsigned = {p for p in first if p.startswith("dists/") and not p.endswith(("InRelease", "Release.gpg"))}
    assert unsigned
    assert any("/by-hash/" in p for p in unsigned)
    assert {p: first[p] for p in unsigned} == {p: second.get(p) for p in unsigned}
    assert first[POOL_FILE] == second[POOL_FILE]
    # A rebuild on top changes nothing and commits nothing.
    assert again.indexer.rebuild().changed is False


def test_conflicts_are_per_suite(fleet: Fleet) -> None:
    """Same Package/Version/Architecture, different bytes: a conflict inside jammy, fine across suites."""
    clash = build_deb(
        fleet.tmp / "clash",
        "agent",
        "2:2.0-1",
        "amd64",
        files={"usr/share/doc/agent/README": b"a second, different jammy build\n"},
    ).read_bytes()
    fleet.gh.add_release("acme/mytool", "v1.4.1", [("agent_2:2.0-1_amd64_rebuilt_jammy.deb", clash)])
    result = fleet.services.indexer.rebuild()
    (skipped,) = result.skipped
    assert skipped.asset.name == "agent_2.2.0-1_amd64_rebuilt_jammy.deb"  # as GitHub renamed it
    assert skipped.reason.startswith("jammy: conflict:")
    assert "same Package/Version/Architecture" in skipped.reason
    assert skipped.asset.release == "v1.4.1"
    store = fleet.services.store
    jammy = (store.read_file(store.head() or "", "dists/jammy/main/binary-amd64/Packages") or b"").decode()
    assert _sha(fleet.debs["agent-jammy"]) in jammy
    assert _sha(clash) not in jammy
