"""A large batch of local .debs is read in worker processes, with the same result as threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import ghapt.indexer
import pytest
from ghapt.bootstrap import Services
from ghapt.core.layout import ASSETS_FILE
from ghapt.core.settings import Settings

from tests.support.debbuild import build_deb

PACKAGES = "dists/stable/main/binary-amd64/Packages"


def _folder(root: Path) -> Path:
    releases = root / "releases"
    for i in range(6):
        build_deb(releases / f"v{i}", f"proc-{i}", "1.0-1", "amd64" if i % 2 else "all")
    (releases / "v9").mkdir()
    (releases / "v9" / "broken.deb").write_bytes(b"!<arch>\nnot a deb at all")
    return releases


def _services(root: Path, releases: Path) -> Services:
    settings = Settings.from_env({}, releases_dir=releases, state_dir=root / "state", architectures="amd64")
    return Services(settings, {})


def test_local_reads_use_processes_for_a_large_batch_and_threads_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    indexer = _services(tmp_path, _folder(tmp_path)).indexer
    read_one = indexer.source.read_deb
    alone = threading.active_count  # other tests may leave idle threads in this worker
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    pool, _, _, batch = indexer._readers(ghapt.indexer.PROCESS_READS_MIN, read_one)
    with pool:
        assert isinstance(pool, ProcessPoolExecutor) or (os.cpu_count() or 1) == 1
    # Batches share the reads out: several tasks per CPU for a few reads, at most PROCESS_BATCH.
    cpus = os.cpu_count() or 1
    if cpus > 1:
        for count in (ghapt.indexer.PROCESS_READS_MIN, 400, 100_000):
            pool, _, _, batch = indexer._readers(count, read_one)
            with pool:
                tasks = -(-count // batch)
                assert 1 <= batch <= ghapt.indexer.PROCESS_BATCH
                assert tasks >= min(count, ghapt.indexer.PROCESS_TASKS_PER_CPU * cpus)
    pool, _, _, batch = indexer._readers(ghapt.indexer.PROCESS_READS_MIN - 1, read_one)
    with pool:
        assert (isinstance(pool, ThreadPoolExecutor), batch) == (True, 1)
    # Another thread running (ghapt serve's watcher): never fork, read in threads.
    monkeypatch.setattr(threading, "active_count", alone)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        pool, _, _, _ = indexer._readers(ghapt.indexer.PROCESS_READS_MIN, read_one)
        with pool:
            assert isinstance(pool, ThreadPoolExecutor)
    finally:
        stop.set()
        other.join()


def test_reading_in_processes_publishes_what_threads_publish(tmp_path: Path) -> None:
    """In a fresh single-threaded process, as ``ghapt rebuild`` runs (a test worker may hold threads)."""
    releases = _folder(tmp_path)
    threads = _services(tmp_path / "threads", releases)
    by_threads = threads.indexer.rebuild()
    script = f"""
import json, sys
import ghapt.indexer
import concurrent.futures
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings
ghapt.indexer.PROCESS_READS_MIN = 2
made = []
real = concurrent.futures.ProcessPoolExecutor
def counting(*a, **k):
    made.append(1)
    return real(*a, **k)
concurrent.futures.ProcessPoolExecutor = counting  # the indexer imports it when it forks
state = {str(tmp_path / "processes" / "state")!r}
settings = Settings.from_env({{}}, releases_dir={str(releases)!r}, state_dir=state, architectures="amd64")
r = Services(settings, {{}}).indexer.rebuild()
print(json.dumps([len(made), r.read, r.packages, [[s.asset.name, s.reason] for s in r.skipped], r.commit]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    pools, read, packages, skipped, commit = json.loads(done.stdout.strip().splitlines()[-1])
    assert pools == 1  # the reads went to worker processes
    assert (read, packages) == (by_threads.read, by_threads.packages) == (7, 6)
    assert skipped == [[s.asset.name, s.reason] for s in by_threads.skipped]
    assert [s[0] for s in skipped] == ["broken.deb"]
    processes = _services(tmp_path / "processes", releases)
    ours = processes.store.read_file(commit, PACKAGES)
    assert ours and ours == threads.store.read_file(by_threads.commit or "", PACKAGES)
    records = [
        json.loads(store.read_file(c, ASSETS_FILE) or b"{}")
        for store, c in ((processes.store, commit), (threads.store, by_threads.commit or ""))
    ]
    for part in ("assets", "bad", "lost"):  # the signing keys differ: one per state folder
        assert records[0][part] == records[1][part], part


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="worker processes need two CPUs")
@pytest.mark.parametrize("tasks_per_cpu", [1, 1000])  # several assets a task, and one a task
def test_a_broken_deb_read_in_a_worker_process_is_reported_once(tmp_path: Path, tasks_per_cpu: int) -> None:
    """The parent logs what its workers skipped, however many assets a task reads (with many
    CPUs or few reads a task reads one, and still nobody else logs it)."""
    releases = _folder(tmp_path)
    script = f"""
import logging, sys
import ghapt.indexer
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings
logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="LOG %(message)s")
ghapt.indexer.PROCESS_READS_MIN = 2
ghapt.indexer.PROCESS_TASKS_PER_CPU = {tasks_per_cpu}
settings = Settings.from_env({{}}, releases_dir={str(releases)!r}, state_dir={str(tmp_path / "state")!r},
                             architectures="amd64")
Services(settings, {{}}).indexer.rebuild()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    skipped = [line for line in done.stdout.splitlines() if line.startswith("LOG skipping ")]
    assert len(skipped) == 1, done.stdout
    assert "broken.deb" in skipped[0]
