"""The indexer over the local backend: one commit per change, incremental, safe under races."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ghapt.bootstrap import Services
from ghapt.core.errors import StaleHead
from ghapt.core.layout import POOL_FILE
from ghapt.core.model import Asset, DebInfo
from ghapt.core.ports import ReleaseSource
from ghapt.core.settings import Settings
from ghapt.deb import control
from ghapt.indexer import Indexer
from ghapt.local.gitstore import LocalGitStore

from tests.support.debbuild import build_deb

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


class CountingSource:
    """Wraps a real source and counts the assets it reads."""

    def __init__(self, inner: ReleaseSource) -> None:
        self.inner = inner
        self.reads: list[str] = []

    def list_assets(self) -> list[Asset]:
        return self.inner.list_assets()

    def read_deb(self, asset: Asset) -> DebInfo:
        self.reads.append(asset.name)
        return self.inner.read_deb(asset)

    def download_url(self, locator: Mapping[str, str], base_url: str) -> str:
        return self.inner.download_url(locator, base_url)


Env = tuple[Path, Services, CountingSource, Indexer]
"""The releases folder, the local Services, the counting source and an indexer over them."""


@pytest.fixture
def env(tmp_path: Path) -> Env:
    releases = tmp_path / "releases"
    build_deb(releases / "v1", "tool", "1.0-1", "amd64", filename="tool_1.0-1_amd64.deb")
    build_deb(releases / "v1", "tool-doc", "1.0-1", "all", compression="xz")
    build_deb(releases / "v2", "tool", "2.0-1", "amd64", compression="zstd")
    settings = Settings.from_env(
        {}, releases_dir=releases, state_dir=tmp_path / "state", architectures="amd64 arm64"
    )
    services = Services(settings, {})
    source = CountingSource(services.source)
    indexer = Indexer(source, services.store, services.signer, settings, clock=lambda: NOW)
    return releases, services, source, indexer


def _store(services: Services) -> LocalGitStore:
    store = services.store
    assert isinstance(store, LocalGitStore)
    return store


def test_cold_rebuild_commits_the_whole_signed_index_once(env: Env) -> None:
    _, services, source, indexer = env
    result = indexer.rebuild()
    store = _store(services)
    assert result.changed
    assert result.commit is not None
    assert result.commit == store.head()
    assert result.packages == 3
    files = store.list_files(result.commit)
    for suite_file in ("Release", "InRelease", "Release.gpg"):
        assert f"dists/stable/{suite_file}" in files
    for arch in ("amd64", "arm64"):
        for name in ("Packages", "Packages.gz", "Packages.xz"):
            assert f"dists/stable/main/binary-{arch}/{name}" in files
    assert any("/by-hash/SHA256/" in p for p in files)
    assert any("/by-hash/SHA512/" in p for p in files)
    arm = store.read_file(result.commit, "dists/stable/main/binary-arm64/Packages") or b""
    assert b"Package: tool-doc" in arm, "`all` packages are on arm64"
    assert b"Package: tool\n" not in arm, "only `all` packages on arm64"
    pool = json.loads(store.read_file(result.commit, POOL_FILE) or b"{}")
    assert set(pool) == {
        "pool/main/t/tool/tool_1.0-1_amd64.deb",
        "pool/main/t/tool/tool_2.0-1_amd64.deb",
        "pool/main/t/tool-doc/tool-doc_1.0-1_all.deb",
    }
    assert pool["pool/main/t/tool/tool_1.0-1_amd64.deb"]["locator"]["path"] == "v1/tool_1.0-1_amd64.deb"
    log = subprocess.run(
        ["git", "--git-dir", str(store.repo), "log", "--format=%s", "apt-metadata"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert log == ["ghapt: +3 -0 packages (stable: 3)"]
    assert sorted(source.reads) == sorted(
        ["tool_1.0-1_amd64.deb", "tool-doc_1.0-1_all.deb", "tool_2.0-1_amd64.deb"]
    )


def test_release_signatures_verify_with_gpgv_against_only_the_repository_key(
    env: Env, tmp_path: Path
) -> None:
    _, services, _, indexer = env
    commit = indexer.rebuild().commit
    assert commit is not None
    store = _store(services)
    keyring = tmp_path / "repo.gpg"
    keyring.write_bytes(services.signer.public_key())
    inrelease = tmp_path / "InRelease"
    inrelease.write_bytes(store.read_file(commit, "dists/stable/InRelease") or b"")
    release = tmp_path / "Release"
    release.write_bytes(store.read_file(commit, "dists/stable/Release") or b"")
    sig = tmp_path / "Release.gpg"
    sig.write_bytes(store.read_file(commit, "dists/stable/Release.gpg") or b"")
    for args in ([str(inrelease)], [str(sig), str(release)]):
        proc = subprocess.run(["gpgv", "--keyring", str(keyring), *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_nothing_changed_means_no_commit(env: Env) -> None:
    _, services, source, indexer = env
    first = indexer.rebuild()
    source.reads.clear()
    again = Indexer(
        source, services.store, services.signer, services.settings, clock=lambda: NOW.replace(hour=13)
    )
    second = again.rebuild()
    assert not second.changed
    assert second.commit is None
    assert _store(services).head() == first.commit
    assert source.reads == [], "known assets are never read again"
    assert second.reused == 3


def test_a_new_release_is_read_alone_and_a_deleted_one_drops_out(env: Env) -> None:
    releases, services, source, indexer = env
    indexer.rebuild()
    source.reads.clear()
    build_deb(releases / "v3", "tool", "3.0-1", "amd64")
    result = indexer.rebuild()
    assert source.reads == ["tool_3.0-1_amd64.deb"]
    assert result.added == ["stable:pool/main/t/tool/tool_3.0-1_amd64.deb"]
    assert result.reused == 3
    shutil.rmtree(releases / "v1")
    result = indexer.rebuild()
    assert result.removed == [
        "stable:pool/main/t/tool-doc/tool-doc_1.0-1_all.deb",
        "stable:pool/main/t/tool/tool_1.0-1_amd64.deb",
    ]
    packages = (
        _store(services).read_file(result.commit or "", "dists/stable/main/binary-amd64/Packages") or b""
    )
    assert b"Version: 1.0-1" not in packages
    assert b"Version: 3.0-1" in packages
    assert b"Version: 2.0-1" in packages


def test_by_hash_files_of_the_last_generations_are_kept(env: Env) -> None:
    releases, services, _, indexer = env
    store = _store(services)
    generations = []
    for i in range(5):
        build_deb(releases / f"g{i}", "gen", f"{i}.0", "amd64")
        commit = indexer.rebuild().commit
        assert commit
        record = json.loads(store.read_file(commit, "ghapt/generations.json") or b"{}")
        current = set(record["generations"][0])
        assert current <= {p for p in store.list_files(commit) if "/by-hash/" in p}
        generations.append(current)
    latest = store.list_files(store.head() or "")
    keep = services.settings.byhash_generations
    for gen in generations[-keep:]:
        assert gen <= set(latest), "the last generations' by-hash files stay"
    dropped = generations[0] - set().union(*generations[-keep:])
    assert dropped, "the first generation has by-hash files no later one keeps"
    assert not (dropped & set(latest)), "older generations are cleaned up"


def test_a_broken_deb_is_skipped_with_a_reason_and_the_rest_publish(env: Env) -> None:
    releases, _, source, indexer = env
    (releases / "v9").mkdir()
    (releases / "v9" / "empty.deb").write_bytes(b"")
    result = indexer.rebuild()
    assert result.packages == 3
    assert [(s.asset.name, bool(s.reason)) for s in result.skipped] == [("empty.deb", True)]
    assert "empty.deb" in result.summary()
    source.reads.clear()
    result = indexer.rebuild()
    assert not result.changed
    assert source.reads == [], "a known-bad asset is not read again"


def test_conflicting_files_keep_the_first_deterministically(env: Env) -> None:
    releases, services, _, indexer = env
    build_deb(releases / "v2-rebuilt", "tool", "2.0-1", "amd64", files={"usr/share/doc/tool/x": b"different"})
    result = indexer.rebuild()
    assert result.packages == 3
    assert len(result.skipped) == 1
    loser = result.skipped[0]
    assert loser.asset.release == "v2-rebuilt"
    assert "conflict" in loser.reason
    pool = json.loads(_store(services).read_file(result.commit or "", POOL_FILE) or b"{}")
    assert pool["pool/main/t/tool/tool_2.0-1_amd64.deb"]["release"] == "v2"


def test_identical_inputs_give_byte_identical_packages(env: Env, tmp_path: Path) -> None:
    releases, services, _, indexer = env
    indexer.rebuild()
    other = Services(
        Settings.from_env(
            {}, releases_dir=releases, state_dir=tmp_path / "other", architectures="amd64 arm64"
        ),
        {},
    )
    other.indexer.rebuild()
    a, b = _store(services), _store(other)
    for path in (
        "dists/stable/main/binary-amd64/Packages",
        "dists/stable/main/binary-amd64/Packages.xz",
        "dists/stable/main/binary-amd64/Packages.gz",
        POOL_FILE,
    ):
        assert a.read_file(a.head() or "", path) == b.read_file(b.head() or "", path), path


def test_a_concurrent_writer_makes_the_rebuild_start_over_without_losing_either(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    releases, services, source, indexer = env
    indexer.rebuild()
    store = _store(services)
    real_commit = store.commit_files
    raced: list[str] = []

    def racing_commit(base: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        if not raced:
            raced.append(real_commit(base, {"notes/other-writer": b"hello"}, "another writer"))
        return real_commit(base, changes, message)

    monkeypatch.setattr(store, "commit_files", racing_commit)
    build_deb(releases / "v4", "tool", "4.0-1", "amd64")
    result = indexer.rebuild()
    assert result.attempts == 2
    files = store.list_files(result.commit or "")
    assert "notes/other-writer" in files, "the other writer's commit survives"
    assert b"4.0-1" in (
        store.read_file(result.commit or "", "dists/stable/main/binary-amd64/Packages") or b""
    )
    assert source.reads.count("tool_4.0-1_amd64.deb") == 1, "the retry reuses what it already read"


def test_a_branch_that_keeps_moving_gives_up_cleanly(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    _, services, _, indexer = env
    store = _store(services)

    def always_stale(base: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        raise StaleHead("moved")

    monkeypatch.setattr(store, "commit_files", always_stale)
    with pytest.raises(StaleHead, match="gave up"):
        indexer.rebuild()
    assert store.head() is None


def test_dry_run_commits_nothing(env: Env) -> None:
    _, services, _, indexer = env
    result = indexer.rebuild(dry_run=True)
    assert result.changed
    assert result.commit is None
    assert result.added
    assert _store(services).head() is None


def _rendered_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pool path of every stanza rendered from now on (the others are copied)."""
    import ghapt.deb.dists

    rendered: list[str] = []
    real_render = control.render_stanza

    def rendering(deb: DebInfo, filename: str) -> bytes:
        rendered.append(filename)
        return real_render(deb, filename)

    monkeypatch.setattr(ghapt.deb.dists, "render_stanza", rendering)
    return rendered


def test_an_incremental_rebuild_writes_what_a_cold_one_writes_encoding_only_what_changed(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Record entries that come out the same are copied from the head's record, not encoded
    again; the files must still be byte for byte those of a cold rebuild of the same releases."""
    import ghapt.deb.dists
    import ghapt.indexer
    from ghapt.core.layout import ASSETS_FILE, SEGMENTS_FILE

    releases, services, source, indexer = env
    indexer.rebuild()
    build_deb(releases / "v3", "extra", "3.0-1", "amd64")
    # A new process, as `ghapt rebuild` is: nothing cached, the record is all it knows.
    indexer = Indexer(source, services.store, services.signer, services.settings, clock=lambda: NOW)
    encoded: list[str] = []
    real = ghapt.indexer._deb_record

    def counting(asset: Asset, deb: DebInfo) -> dict[str, object]:
        encoded.append(asset.name)
        return real(asset, deb)

    rendered = _rendered_paths(monkeypatch)
    monkeypatch.setattr(ghapt.indexer, "_deb_record", counting)
    result = indexer.rebuild()
    # Only the new .deb's stanza is rendered; the others are the head's Packages' own.
    assert rendered == ["pool/main/e/extra/extra_3.0-1_amd64.deb"]
    assert result.read == 1
    record = json.loads(_store(services).read_file(result.commit or "", ASSETS_FILE) or b"{}")
    indexed = {entry["name"] for entry in record["assets"].values()}
    left_out = {entry["name"] for entry in record["lost"].values()}
    assert "extra_3.0-1_amd64.deb" in indexed and len(indexed) == 4
    # The new asset is encoded, and the ones left out (they are few); every other entry is copied.
    assert set(encoded) == {"extra_3.0-1_amd64.deb"} | left_out

    # A cold rebuild of the same releases, signing with the same key (the record names it).
    (tmp_path / "cold").mkdir()
    for key_file in (services.settings.state_dir or tmp_path).glob("signing-key.*"):
        shutil.copy2(key_file, tmp_path / "cold" / key_file.name)
    cold = Services(
        Settings.from_env(
            {}, releases_dir=releases, state_dir=tmp_path / "cold", architectures="amd64 arm64"
        ),
        {},
    )
    cold_result = cold.indexer.rebuild()
    a, b = _store(services), _store(cold)
    for path in (
        ASSETS_FILE,
        POOL_FILE,
        SEGMENTS_FILE,
        "dists/stable/main/binary-amd64/Packages",
        "dists/stable/main/binary-amd64/Packages.xz",
        "dists/stable/main/binary-arm64/Packages.gz",
    ):
        assert a.read_file(result.commit or "", path) == b.read_file(cold_result.commit or "", path), path


@pytest.mark.parametrize("damage", ["stanza", "format"])
def test_a_head_whose_stanzas_cannot_be_trusted_is_rendered_again(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """A stanza that does not name its .deb's size and SHA256, or a record of another stanza
    format, is rendered again: the result is still what a cold rebuild writes."""
    from ghapt.core.layout import ASSETS_FILE

    releases, services, source, indexer = env
    first = indexer.rebuild()
    store = _store(services)
    packages = "dists/stable/main/binary-amd64/Packages"
    if damage == "stanza":
        old = store.read_file(first.commit or "", packages) or b""
        size = old.split(b"\nSize: ", 1)[1].split(b"\n", 1)[0]
        change = {packages: old.replace(b"\nSize: " + size + b"\n", b"\nSize: 1" + size + b"\n", 1)}
    else:
        record = json.loads(store.read_file(first.commit or "", ASSETS_FILE) or b"{}")
        change = {ASSETS_FILE: json.dumps({**record, "stanza_format": -1}).encode()}
    store.commit_files(first.commit, change, "damage")
    build_deb(releases / "v3", "extra", "3.0-1", "amd64")
    rendered = _rendered_paths(monkeypatch)
    indexer = Indexer(source, store, services.signer, services.settings, clock=lambda: NOW)
    result = indexer.rebuild()
    assert len(rendered) >= (2 if damage == "stanza" else 4)  # the damaged one (or all) and the new one
    cold = Services(
        Settings.from_env(
            {}, releases_dir=releases, state_dir=tmp_path / "cold", architectures="amd64 arm64"
        ),
        {},
    )
    cold_result = cold.indexer.rebuild()
    assert store.read_file(result.commit or "", packages) == _store(cold).read_file(
        cold_result.commit or "", packages
    )


def test_the_changed_blobs_are_written_while_the_index_is_signed_and_a_failure_commits_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    releases, services, source, indexer = env
    first = indexer.rebuild()
    store = _store(services)
    build_deb(releases / "v3", "extra", "3.0-1", "amd64")
    staged: list[bytes] = []
    real_stage = LocalGitStore.stage_blob

    def staging(self: LocalGitStore, data: bytes) -> str:
        staged.append(data)
        return real_stage(self, data)

    ahead: list[bytes] = []
    real_commit = LocalGitStore.commit_files

    def committing(self: LocalGitStore, *args: Any, **kwargs: Any) -> str:
        ahead.extend(staged)  # what was written before the commit began
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(LocalGitStore, "stage_blob", staging)
    monkeypatch.setattr(LocalGitStore, "commit_files", committing)
    indexer = Indexer(source, store, services.signer, services.settings, clock=lambda: NOW)
    result = indexer.rebuild()
    packages = store.read_file(result.commit or "", "dists/stable/main/binary-amd64/Packages")
    assert packages is not None and b"Package: extra\n" in packages
    assert packages in ahead  # written ahead, while signing, before the commit named it
    assert not any(b"BEGIN PGP SIGNATURE" in data for data in ahead)  # the signatures come after

    build_deb(releases / "v4", "more", "4.0-1", "amd64")

    def failing(self: LocalGitStore, data: bytes) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LocalGitStore, "stage_blob", failing)
    indexer = Indexer(source, store, services.signer, services.settings, clock=lambda: NOW)
    with pytest.raises(OSError, match="No space left"):
        indexer.rebuild()
    assert store.head() == result.commit != first.commit  # the published index stays whole
