"""The Indexer over the in-memory store: fast checks of what it commits, when, and how it races.

The store is tests/support/memstore.py, which contract/test_metadata_store.py holds to the real
stores' behaviour; the releases are a folder of real .debs, the signer the local one. The same
indexer over the local git store is in test_rebuild.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ghapt.bootstrap import Services
from ghapt.core.errors import StaleHead
from ghapt.core.layout import POOL_FILE
from ghapt.core.settings import Settings
from ghapt.indexer import MAX_ATTEMPTS, Indexer

from tests.support.clock import Clock
from tests.support.debbuild import build_deb
from tests.support.memstore import MemoryStore

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
PACKAGES = "dists/stable/main/binary-amd64/Packages"


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("debs")
    return {
        "v1/tool": build_deb(out, "tool", "1.0-1", "amd64"),
        "v1/tool-doc": build_deb(out, "tool-doc", "1.0-1", "all", compression="xz"),
        "v2/tool": build_deb(out, "tool", "2.0-1", "amd64", compression="zstd"),
    }


@dataclass
class World:
    releases: Path
    store: MemoryStore
    clock: Clock
    """The store's commit times and the indexer's ``now``, both."""
    services: Services

    def indexer(self, store: MemoryStore | None = None) -> Indexer:
        s = self.services
        return Indexer(
            s.source,
            store or self.store,
            s.signer,
            s.settings,
            clock=lambda: datetime.fromtimestamp(self.clock(), UTC),
        )

    def publish(self, release: str, deb: Path) -> None:
        (self.releases / release).mkdir(parents=True, exist_ok=True)
        shutil.copy2(deb, self.releases / release / deb.name)


def make_world(tmp_path: Path, debs: Mapping[str, Path], **settings: object) -> World:
    releases = tmp_path / "releases"
    for key, deb in debs.items():
        (releases / key.split("/")[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy2(deb, releases / key.split("/")[0] / deb.name)
    config = Settings.from_env(
        {}, releases_dir=releases, state_dir=tmp_path / "state", architectures="amd64 arm64", **settings
    )
    clock = Clock(NOW.timestamp())
    return World(releases, MemoryStore(clock=clock), clock, Services(config, {}))


@pytest.fixture
def world(tmp_path: Path, debs: dict[str, Path]) -> World:
    return make_world(tmp_path, debs)


class RacingStore(MemoryStore):
    """Another writer commits to the branch just before each of the first ``races`` commits."""

    def __init__(self, inner_clock: Clock, races: int) -> None:
        super().__init__(clock=inner_clock)
        self.races = races

    def commit_files(self, base: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        if self.races > 0:
            self.races -= 1
            other = super().commit_files(self.head(), {f"notes/other-{self.races}": b"hi"}, "another writer")
            assert other == self.head()
        return super().commit_files(base, changes, message)


def test_a_cold_rebuild_is_one_commit_of_the_whole_signed_index(world: World) -> None:
    result = world.indexer().rebuild()
    store = world.store
    assert result.changed
    assert result.commit == store.head()
    assert result.packages == 3
    assert list(store.commits) == [result.commit]
    assert store.commit_message(result.commit or "").splitlines() == [
        "ghapt: +3 -0 packages (stable: 3)",
        "",
        "added stable:pool/main/t/tool-doc/tool-doc_1.0-1_all.deb",
        "added stable:pool/main/t/tool/tool_1.0-1_amd64.deb",
        "added stable:pool/main/t/tool/tool_2.0-1_amd64.deb",
    ]
    assert store.commit_time(result.commit or "") == int(NOW.timestamp())
    files = store.list_files(result.commit or "")
    for name in ("Release", "InRelease", "Release.gpg"):
        assert f"dists/stable/{name}" in files
    for arch in ("amd64", "arm64"):
        for name in ("Packages", "Packages.gz", "Packages.xz"):
            assert f"dists/stable/main/binary-{arch}/{name}" in files
    release = store.read_file(result.commit or "", "dists/stable/Release") or b""
    assert b"Date: Fri, 27 Nov 2026 12:00:00 UTC\n" in release
    pool = json.loads(store.read_file(result.commit or "", POOL_FILE) or b"{}")
    assert set(pool) == {
        "pool/main/t/tool/tool_1.0-1_amd64.deb",
        "pool/main/t/tool/tool_2.0-1_amd64.deb",
        "pool/main/t/tool-doc/tool-doc_1.0-1_all.deb",
    }


def test_nothing_changed_means_no_commit_however_late(world: World) -> None:
    first = world.indexer().rebuild()
    world.clock.now += 30 * 86400  # no Valid-Until: the index never needs re-signing
    again = world.indexer().rebuild()
    assert not again.changed
    assert again.commit is None
    assert again.reused == 3
    assert list(world.store.commits) == [first.commit]


def test_a_new_release_adds_and_a_removed_one_drops_in_one_commit_each(
    world: World, debs: dict[str, Path], tmp_path: Path
) -> None:
    indexer = world.indexer()
    first = indexer.rebuild()
    world.clock.now += 60
    world.publish("v3", build_deb(tmp_path / "new", "tool", "3.0-1", "amd64"))
    added = indexer.rebuild()
    assert added.added == ["stable:pool/main/t/tool/tool_3.0-1_amd64.deb"]
    assert added.removed == []
    shutil.rmtree(world.releases / "v1")
    removed = indexer.rebuild()
    assert removed.removed == [
        "stable:pool/main/t/tool-doc/tool-doc_1.0-1_all.deb",
        "stable:pool/main/t/tool/tool_1.0-1_amd64.deb",
    ]
    store = world.store
    assert list(store.commits) == [first.commit, added.commit, removed.commit]
    packages = store.read_file(removed.commit or "", PACKAGES) or b""
    assert b"Version: 1.0-1" not in packages
    assert b"Version: 2.0-1" in packages
    assert b"Version: 3.0-1" in packages
    # Commit times are Last-Modified: strictly increasing even within one second.
    times = [store.commit_time(c) for c in store.commits]
    assert times == sorted(set(times))


def test_with_valid_until_the_index_is_re_signed_once_half_the_validity_has_passed(
    tmp_path: Path, debs: dict[str, Path]
) -> None:
    world = make_world(tmp_path, debs, valid_days=2)
    indexer = world.indexer()
    first = indexer.rebuild()
    release = world.store.read_file(first.commit or "", "dists/stable/Release") or b""
    assert b"Valid-Until: Sun, 29 Nov 2026 12:00:00 UTC\n" in release
    world.clock.now += 86400  # exactly half: still fine
    assert not indexer.rebuild().changed
    world.clock.now += 1
    resigned = indexer.rebuild()
    assert resigned.changed
    assert resigned.added == resigned.removed == []
    store = world.store
    commit = resigned.commit or ""
    assert b"Valid-Until: Mon, 30 Nov 2026 12:00:01 UTC\n" in (
        store.read_file(commit, "dists/stable/Release") or b""
    )
    assert store.read_file(commit, PACKAGES) == store.read_file(first.commit or "", PACKAGES)
    assert store.read_file(commit, "dists/stable/InRelease") != store.read_file(
        first.commit or "", "dists/stable/InRelease"
    )


def test_a_writer_that_commits_first_makes_the_rebuild_start_over_and_keep_its_files(
    tmp_path: Path, debs: dict[str, Path]
) -> None:
    world = make_world(tmp_path, debs)
    racing = RacingStore(world.clock, races=2)
    result = world.indexer(racing).rebuild()
    assert result.attempts == 3
    files = racing.list_files(racing.head() or "")
    assert {"notes/other-1", "notes/other-0"} <= set(files), "the other writer's commits survive"
    assert PACKAGES in files
    assert racing.head() == result.commit


def test_a_branch_that_keeps_moving_makes_it_give_up_without_publishing(
    tmp_path: Path, debs: dict[str, Path]
) -> None:
    world = make_world(tmp_path, debs)
    racing = RacingStore(world.clock, races=MAX_ATTEMPTS)
    with pytest.raises(StaleHead, match="gave up"):
        world.indexer(racing).rebuild()
    assert PACKAGES not in racing.list_files(racing.head() or "")
    assert len(racing.commits) == 2 * MAX_ATTEMPTS, "each attempt's commit stayed unreachable"


def test_dry_run_reports_the_changes_and_commits_nothing(world: World) -> None:
    result = world.indexer().rebuild(dry_run=True)
    assert result.changed
    assert result.commit is None
    assert len(result.added) == 3
    assert world.store.head() is None
    assert world.store.commits == {}


def test_two_stores_fed_the_same_releases_get_byte_identical_indices(world: World) -> None:
    other = MemoryStore(clock=world.clock)
    a = world.indexer().rebuild().commit or ""
    world.clock.now += timedelta(hours=5).total_seconds()
    b = world.indexer(other).rebuild().commit or ""
    for path in (PACKAGES, PACKAGES + ".xz", PACKAGES + ".gz", POOL_FILE):
        assert world.store.read_file(a, path) == other.read_file(b, path), path


def test_state_files_name_one_asset_per_line_and_parse_back(world: World) -> None:
    """assets.json and pool.json: sorted, one entry per line (a branch diff names the asset that
    changed), the rest compact (the C encoder, not ``indent``'s pure-Python one)."""
    from ghapt.core.layout import ASSETS_FILE

    result = world.indexer().rebuild()
    commit = result.commit or ""
    record_bytes = world.store.read_file(commit, ASSETS_FILE) or b""
    record = json.loads(record_bytes)
    assets = record["assets"]
    assert len(assets) == 3
    lines = record_bytes.decode().splitlines()
    for key, entry in assets.items():
        line = f"{json.dumps(key)}:{json.dumps(entry, sort_keys=True, separators=(',', ':'))}"
        assert line in lines or f"{line}," in lines, key
    assert (lines[0], lines[-1]) == ("{", "}")
    pool_bytes = world.store.read_file(commit, POOL_FILE) or b""
    pool = json.loads(pool_bytes)
    assert pool_bytes.decode().splitlines()[1:-1] == [
        f"{json.dumps(path)}:{json.dumps(pool[path], sort_keys=True, separators=(',', ':'))}"
        + ("," if i < len(pool) - 1 else "")
        for i, path in enumerate(sorted(pool))
    ]


def test_entry_texts_give_back_each_entry_as_the_record_encodes_it() -> None:
    """What lets a rebuild copy unchanged record entries: key -> that entry's exact JSON text."""
    import json

    from ghapt.indexer import _dump_json, _entry_texts

    assets = {
        'github:o/r:1:"quoted":{x}': {"name": 'a":{b', "control": [["K", "v\n}"]], "size": 1},
        "local:v1/ü.deb": {"name": "ü", "hashes": {"sha256": "00"}},
        "plain": {"z": 1, "a": [1, 2]},
    }
    record = {"assets": assets, "bad": {}, "lost": {"x": {"reason": "r"}}, "version": 3}
    texts = _entry_texts(_dump_json(record), "assets")
    encoder = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert texts == {k: encoder.encode(v) for k, v in assets.items()}
    assert _entry_texts(_dump_json(record), "lost") == {"x": '{"reason":"r"}'}
    assert _entry_texts(_dump_json(record), "bad") == {}  # empty: written on one line
    # Anything else (another writer's layout, damage) gives nothing to copy, never a wrong text.
    assert _entry_texts(json.dumps(record, indent=2).encode(), "assets") == {}
    assert _entry_texts(b'{\n"assets":{\n"k":{"a":1\n}', "assets") == {}
    assert _entry_texts(b"", "assets") == {}
