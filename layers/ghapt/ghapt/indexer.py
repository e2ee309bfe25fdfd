"""The indexer: releases in, one atomic commit of the whole signed index out.

A rebuild lists the source's assets, reuses the recorded stanza of every asset it has seen
before (same key and fingerprint), reads only the new ones, renders Packages/Release, signs,
keeps the by-hash files of the last few generations, and commits everything in one commit on
top of the head it started from. If another writer moved the branch meanwhile, it starts over
on the new head (reusing what it already read), and never forces.

A rebuild is two steps: ``_plan`` (read what is new, select, render the unsigned index) and
``_publish`` (sign, keep by-hash generations, commit). With a time budget, ``_plan`` stops
starting new reads when the budget is spent and plans the index of what it has read so far:
every asset already published stays (its record is reused; an asset replaced since is read
first), the newly read ones are added, and the unread rest is left for the next invocation.
That partial index is still a whole, valid, signed index, and its ``assets.json`` is the
checkpoint: the next rebuild reuses every record and reads only what is left, so a backlog of
any size converges and no finished read is thrown away.
Every read asset is recorded, also the broken ones (``bad``) and those that lose a conflict
(``lost``), so a rebuild that finds nothing new downloads nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ghapt.core.errors import BadDebError, ConfigError, GhaptError, MassRemovalRefused, StaleHead
from ghapt.core.layout import (
    ASSETS_FILE,
    GENERATIONS_FILE,
    POOL_FILE,
    RECORD_VERSION,
    SEGMENTS_FILE,
    SUITES_FILE,
    git_blob_id,
)
from ghapt.core.model import Asset, DebInfo, Hashes, IndexedAsset, Skipped
from ghapt.core.ports import MetadataStore, ReleaseSource, Signer
from ghapt.core.routing import Routing, suites_listing
from ghapt.core.settings import Settings
from ghapt.deb.compression import PackagesCompressor, Piece, SegmentCache
from ghapt.deb.control import STANZA_FORMAT
from ghapt.deb.dists import byhash_paths, start_dists
from ghapt.deb.placement import place
from ghapt.page import page_files

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Forked workers cost about 50 ms (imports and forks); from this many local reads on they win:
# parsing .debs holds the GIL, so threads take turns (400 reads: 0.49 s in threads, 0.26 s forked).
PROCESS_READS_MIN = 64
PROCESS_BATCH = 50  # at most this many assets a task: one round trip per batch, not per read
PROCESS_TASKS_PER_CPU = 4  # smaller batches for fewer reads, so every CPU gets a share

Progress = Callable[[str, Mapping[str, Any]], None]


@dataclass
class RebuildResult:
    commit: str | None
    head: str | None
    changed: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    unused_routes: list[str] = field(default_factory=list)
    packages: int = 0
    read: int = 0
    reused: int = 0
    attempts: int = 1
    message: str = ""
    remaining: int = 0  # new assets not read yet (time budget spent, or GitHub failed mid-way)

    @property
    def complete(self) -> bool:
        """Whether the index covers every asset; if not, another rebuild continues from here."""
        return self.remaining == 0

    refused: str = ""  # why the mass-removal guard refused (or, in a dry run, would refuse) to commit

    def summary(self) -> str:
        lines = [
            f"packages: {self.packages} indexed, {len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.skipped)} skipped",
            f"assets: {self.read} read, {self.reused} reused",
        ]
        lines += [f"  skipped {s.asset.key} ({s.asset.name}): {s.reason}" for s in self.skipped]
        lines += [f"  routing rule matched no asset: {r}" for r in self.unused_routes]
        if self.refused:
            lines.append(f"refused: {self.refused}")
        if self.changed:
            lines.append(f"commit: {self.commit}" if self.commit else "commit: none (dry run)")
        elif self.refused:
            lines.append("commit: none (refused; the branch is untouched)")
        else:
            lines.append(f"unchanged: no commit (head {self.head})")
        if not self.complete:
            lines.append(
                f"incomplete: {self.remaining} assets left to read; the next rebuild continues from here"
            )
        return "\n".join(lines)


class SigningKeyChanged(ConfigError):
    """The published index is signed by another key; re-signing would break every client."""


@dataclass
class _Plan:
    """An unsigned index of everything read so far, and where it goes (``_plan``'s output)."""

    head: str | None
    head_files: dict[str, str]
    files: dict[str, bytes]
    suites: dict[str, list[IndexedAsset]]
    result: RebuildResult
    failure: GhaptError | None = None  # raised after the partial index is published


class _Ahead:
    """Blobs handed to the store's ``stage_blob`` (the local git store's; other stores have none)
    as soon as a rebuild makes them, on ``pool``'s threads (zlib and SHA-1 free the GIL), so the
    commit finds them written. Unchanged files are objects already (only their time is bumped);
    a refused or failed rebuild leaves its new ones unreachable, for ``git gc`` to prune."""

    def __init__(self, pool: Executor, stage: Callable[[bytes], object] | None) -> None:
        self._pool = pool
        self._stage = stage
        self._futures: list[Future[object]] = []
        self._sent: set[int] = set()  # ids of bytes this rebuild holds: the same copy once

    def put(self, contents: Iterable[bytes]) -> None:
        if self._stage is None:
            return
        for data in contents:
            if id(data) not in self._sent:
                self._sent.add(id(data))
                self._futures.append(self._pool.submit(self._stage, data))

    def wait(self) -> None:
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()


class Indexer:
    """Rebuilds the index of ``source`` into ``store``, signed by ``signer``."""

    def __init__(
        self,
        source: ReleaseSource,
        store: MetadataStore,
        signer: Signer,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        workers: int = 4,
    ) -> None:
        self.source = source
        self.store = store
        self.signer = signer
        self.settings = settings
        self.clock = clock
        self.monotonic = monotonic
        self.workers = workers
        self._read_cache: dict[tuple[str, str], DebInfo | BadDebError] = {}
        self._segments: dict[tuple[str, str], Piece] = {}  # compressed segments of the last build

    # ---------------------------------------------------------------------------------------
    def rebuild(
        self,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        time_budget: float | None = None,
        rekey: bool = False,
    ) -> RebuildResult:
        """Rebuild and commit. ``time_budget`` (seconds) bounds the reading; ``rekey`` allows
        signing with a key other than the published one (clients must be given the new key).

        When the budget runs out the index of what was read so far is committed and the result
        says how many assets are left (``remaining``); run again to continue."""
        deadline = None if time_budget is None else self.monotonic() + time_budget
        stage: Callable[[bytes], object] | None = None if dry_run else getattr(self.store, "stage_blob", None)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ghapt-stage") as pool:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                ahead = _Ahead(pool, stage)
                try:
                    plan = self._plan(deadline=deadline, progress=progress, rekey=rekey, ahead=ahead)
                    if plan.failure is not None and plan.result.read == 0:
                        raise plan.failure  # nothing new to keep
                    result = self._publish(plan, dry_run=dry_run, ahead=ahead)
                except StaleHead as exc:
                    log.info("metadata branch moved, rebuilding on the new head", extra={"reason": str(exc)})
                    continue
                result.attempts = attempt
                if plan.failure is not None:  # what was read is published; now report the failure
                    raise plan.failure
                return result
        raise StaleHead(f"the metadata branch kept moving; gave up after {MAX_ATTEMPTS} attempts")

    def _plan(
        self, *, deadline: float | None, progress: Progress | None, rekey: bool, ahead: _Ahead
    ) -> _Plan:
        """Read what is new (until ``deadline``), select, and render the unsigned index."""
        head = self.store.head()
        head_files = self.store.list_files(head) if head else {}
        record, record_text = (
            _load_json_text(self.store, head, ASSETS_FILE) if ASSETS_FILE in head_files else ({}, b"")
        )
        current = record.get("version") == RECORD_VERSION
        known: dict[str, Any] = record.get("assets", {}) if current else {}
        known_text = _entry_texts(record_text, "assets") if current else {}
        known_bad: dict[str, Any] = record.get("bad", {}) if current else {}
        known_lost: dict[str, Any] = record.get("lost", {}) if current else {}
        published_key = record.get("signing_key")
        if published_key and published_key != self.signer.fingerprint and not rekey:
            raise SigningKeyChanged(
                f"the published index is signed by key {published_key}, but this rebuild would sign "
                f"with {self.signer.fingerprint}; clients that pin the published key would reject it. "
                "Sign with the published key (in AWS: --kms-key-id with the stack's SigningKeyArn), "
                "or pass --rekey to switch keys on purpose and give every client the new key"
            )

        assets = sorted(self.source.list_assets(), key=lambda a: (a.suite, a.release, a.name, a.key))
        if progress:
            progress("listed", {"assets": len(assets)})
        reading = self._read_all(assets, {**known_lost, **known}, known_bad, deadline, progress)

        skipped: list[Skipped] = [Skipped(a, str(err.reason)) for a, err in reading.bad]
        routing = Routing.from_settings(self.settings)
        # routing, per-suite selection, pool paths
        placement = place(reading.debs, routing, self.settings.component)
        suites = placement.suites
        skipped += placement.skipped
        conflicts = placement.skipped

        now = self.clock().replace(microsecond=0)
        valid_until = now + timedelta(days=self.settings.valid_days) if self.settings.valid_days else None
        # The Packages files compress on other threads while this one writes the record and the page.
        with self._compressor(head, head_files) as compressor:
            pending = start_dists(
                suites,
                component=self.settings.component,
                architectures=self.settings.architectures,
                origin=self.settings.origin,
                label=self.settings.label,
                date=now,
                valid_until=valid_until,
                compressor=compressor,
                rendered=self._stanzas_kept(head, head_files, record, suites, known, reading.from_record),
            )
            entries = self._record_entries(
                suites,
                reading.bad,
                _lost(reading.debs, suites, conflicts),
                {k: (known[k], t) for k, t in known_text.items() if k in reading.from_record and k in known},
            )
            extra = {
                POOL_FILE: _dump_json(_pool_manifest(suites), levels=1),
                **page_files(suites, self.settings, self.signer.fingerprint),
            }
            ahead.put(extra.values())
            files = pending.finish()
            ahead.put(files.values())
        self._segments = {k: v for k, v in compressor.cache.memory.items() if k in compressor.used}
        files[SEGMENTS_FILE] = _dump_json(compressor.tables, levels=1)
        files[ASSETS_FILE] = _dump_json(self._record(entries, files))
        files[SUITES_FILE] = _dump_json(suites_listing(routing, files))
        ahead.put([files[SEGMENTS_FILE], files[ASSETS_FILE], files[SUITES_FILE]])
        files.update(extra)

        old_keys = {
            (s, p)
            for v in known.values()
            for s, p in (v.get("suites") or {v["suite"]: v["pool_path"]}).items()
        }
        new_keys = {(e.asset.suite, e.pool_path) for entries in suites.values() for e in entries}
        result = RebuildResult(
            commit=None,
            head=head,
            changed=False,
            added=sorted(f"{s}:{p}" for s, p in new_keys - old_keys),
            removed=sorted(f"{s}:{p}" for s, p in old_keys - new_keys),
            skipped=skipped,
            unused_routes=placement.unused_routes,
            packages=len(new_keys),
            read=reading.read,
            reused=reading.reused,
            remaining=reading.remaining,
        )
        result.refused = mass_removal(known, [a.key for a in assets], result.removed, self.settings)
        return _Plan(head, head_files, files, suites, result, reading.failure)

    def _publish(self, plan: _Plan, *, dry_run: bool, ahead: _Ahead) -> RebuildResult:
        """Sign, keep older by-hash generations, and commit on top of the planned head (or not at all)."""
        head, head_files, files, result = plan.head, plan.head_files, plan.files, plan.result
        stable = {p: d for p, d in files.items() if not _is_release(p)}
        ids = {p: git_blob_id(d) for p, d in stable.items()}
        signed = {
            p[: -len("Release")] + n
            for p in files
            if p.endswith("/Release")
            for n in ("InRelease", "Release.gpg")
        }
        stale = [
            p
            for p in head_files
            if p.startswith("dists/") and "/by-hash/" not in p and p not in files and p not in signed
        ]
        unchanged = (
            head is not None
            and not stale
            and all(head_files.get(p) == ids[p] for p in stable)
            and not self._release_due(head, head_files)
        )
        if unchanged:
            return result
        if result.refused and not dry_run:
            raise MassRemovalRefused(result.refused, result)

        # Sign, keep older by-hash generations, and delete what no generation needs any more.
        for release_path in [p for p in files if p.endswith("/Release")]:
            text = files[release_path]
            files[release_path[: -len("Release")] + "InRelease"] = self.signer.clearsign(text)
            files[release_path + ".gpg"] = self.signer.detach_sign(text)
        ahead.wait()  # a failure to write the blobs is the commit's failure, raised here
        generations = _load_json(self.store, head, GENERATIONS_FILE) if GENERATIONS_FILE in head_files else {}
        old_gens: list[list[str]] = generations.get("generations", [])
        current = sorted(byhash_paths(files))
        older = [g for g in old_gens if g != current][: self.settings.byhash_generations - 1]
        gens = [current, *older]
        keep = {p for g in gens for p in g}
        files[GENERATIONS_FILE] = _dump_json({"generations": gens})
        changes: dict[str, bytes | None] = {
            p: d for p, d in files.items() if head_files.get(p) != (ids.get(p) or git_blob_id(d))
        }
        for p in head_files:
            if p.startswith("dists/") and p not in files and ("/by-hash/" not in p or p not in keep):
                changes[p] = None
        result.changed = True
        result.message = _commit_message(result, plan.suites)
        if dry_run:
            return result
        result.commit = self.store.commit_files(head, changes, result.message)
        log.info(
            "index committed",
            extra={"commit": result.commit, "changes": len(changes), "remaining": result.remaining},
        )
        return result

    def _compressor(self, head: str | None, head_files: Mapping[str, str]) -> PackagesCompressor:
        """A compressor (close it when done) reusing the segments of this process's last build and
        of the head's index."""
        previous = _load_json(self.store, head, SEGMENTS_FILE) if SEGMENTS_FILE in head_files else {}
        tables = {p: rows for p, rows in previous.items() if p in head_files and isinstance(rows, list)}

        def read(path: str) -> bytes | None:
            return self.store.read_file(head, path) if head else None

        cache = SegmentCache(tables, read)
        cache.memory.update(self._segments)
        return PackagesCompressor(cache)

    # ---------------------------------------------------------------------------------------
    def _triage(
        self, assets: list[Asset], known: Mapping[str, Any], known_bad: Mapping[str, Any]
    ) -> tuple[dict[str, DebInfo | BadDebError], deque[Asset], int, set[str]]:
        """What the record (or this process) already knows, what must be read, how much was
        reused, and which assets' data came from the record as it is."""
        results: dict[str, DebInfo | BadDebError] = {}
        to_read: deque[Asset] = deque()
        reused = 0
        from_record: set[str] = set()
        for asset in assets:
            cached = self._read_cache.get((asset.key, asset.fingerprint))
            prior = known.get(asset.key)
            prior_bad = known_bad.get(asset.key)
            if cached is not None:
                results[asset.key] = cached
                reused += 1
            elif prior and prior.get("fingerprint") == asset.fingerprint:
                results[asset.key] = _deb_from_record(prior)
                from_record.add(asset.key)
                reused += 1
            elif prior_bad and prior_bad.get("fingerprint") == asset.fingerprint:
                results[asset.key] = BadDebError(asset.name, prior_bad["reason"])
                reused += 1
            elif prior or prior_bad:  # replaced: read first, so a partial index lacks it briefly
                to_read.appendleft(asset)
            else:
                to_read.append(asset)
        return results, to_read, reused, from_record

    def _read_all(
        self,
        assets: list[Asset],
        known: Mapping[str, Any],
        known_bad: Mapping[str, Any],
        deadline: float | None,
        progress: Progress | None,
    ) -> _Reading:
        """DebInfo for every asset: from the record when key+fingerprint match, else read it.

        New reads start only until ``deadline`` (at least one always starts, so every run makes
        progress); reads in flight then finish and count. A GitHub failure stops new reads too,
        and is handed back so the caller can publish what was read before reporting it."""
        results, to_read, reused, from_record = self._triage(assets, known, known_bad)

        def read_one(asset: Asset) -> DebInfo | BadDebError:
            try:
                return self.source.read_deb(asset)
            except BadDebError as exc:
                log.warning(f"skipping {asset.key}: {exc.reason}", extra={"asset": asset.key})
                return exc

        read = 0
        failure: GhaptError | None = None
        if to_read:
            pool, task, limit, batch = self._readers(len(to_read), read_one)
            logged = isinstance(pool, ThreadPoolExecutor)  # read_one logs; worker processes do not
            with pool:
                inflight: dict[Future[list[DebInfo | BadDebError]], list[Asset]] = {}
                while True:
                    while (
                        to_read
                        and failure is None
                        and len(inflight) < limit
                        and (read + len(inflight) == 0 or deadline is None or self.monotonic() < deadline)
                    ):
                        chunk = [to_read.popleft() for _ in range(min(batch, len(to_read)))]
                        inflight[pool.submit(task, chunk)] = chunk
                    if not inflight:
                        break
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in done:
                        chunk = inflight.pop(future)
                        try:
                            outcomes = future.result()
                        except GhaptError as exc:  # e.g. rate limited: keep what is read, stop
                            log.warning("reading stopped", extra={"asset": chunk[0].key, "reason": str(exc)})
                            failure = failure or exc
                            to_read.extendleft(reversed(chunk))
                            continue
                        for asset, outcome in zip(chunk, outcomes, strict=True):
                            read += 1
                            if isinstance(outcome, BadDebError) and not logged:
                                log.warning(
                                    f"skipping {asset.key}: {outcome.reason}", extra={"asset": asset.key}
                                )
                            self._read_cache[(asset.key, asset.fingerprint)] = outcome
                            results[asset.key] = outcome
                            if progress:
                                progress("read", {"asset": asset.name, "bytes": asset.size})
        # Keep only what the source still publishes: a warm process must not grow without bound.
        current = {(a.key, a.fingerprint) for a in assets}
        self._read_cache = {k: v for k, v in self._read_cache.items() if k in current}
        debs = [(a, r) for a in assets if isinstance(r := results.get(a.key), DebInfo)]
        bad = [(a, r) for a in assets if isinstance(r := results.get(a.key), BadDebError)]
        if to_read:
            log.info("reading stopped early", extra={"remaining": len(to_read), "read": read})
        return _Reading(debs, bad, read, reused, len(to_read), failure, from_record)

    def _readers(
        self, count: int, read_one: Callable[[Asset], DebInfo | BadDebError]
    ) -> tuple[Executor, Callable[[list[Asset]], list[DebInfo | BadDebError]], int, int]:
        """Where reads run, how many tasks may be in flight, and how many assets a task reads.

        Threads, one asset a task (network reads wait; hashing frees the GIL); or, for
        ``PROCESS_READS_MIN`` local files or more, one process per CPU reading up to
        ``PROCESS_BATCH`` assets a task,
        since parsing thousands of small .debs holds the GIL and threads would only take turns.
        Processes are forked, and only from a process with no other thread (``ghapt rebuild``):
        a fork never copies a lock another thread holds, and nothing re-runs the caller's main
        module. ``ghapt serve``'s watcher reads in threads."""
        reader: Callable[[], Callable[[Asset], DebInfo]] | None = getattr(self.source, "reader", None)
        cpus = os.cpu_count() or 1
        local = getattr(self.source, "cpu_bound_reads", False)
        if reader and local and cpus > 1 and count >= PROCESS_READS_MIN and threading.active_count() == 1:
            import multiprocessing  # about 35 ms of imports: only when worker processes are used
            from concurrent.futures import ProcessPoolExecutor

            try:
                context = multiprocessing.get_context("fork")
                pool: Executor = ProcessPoolExecutor(max_workers=cpus, mp_context=context)
            except (OSError, NotImplementedError) as exc:  # no semaphores (e.g. a sandbox): threads
                log.info("reading in threads", extra={"reason": str(exc)})
            else:
                batch = max(1, min(PROCESS_BATCH, -(-count // (PROCESS_TASKS_PER_CPU * cpus))))
                return pool, functools.partial(_read_batch, reader()), 2 * cpus, batch
        workers = max(1, self.workers)
        return ThreadPoolExecutor(max_workers=workers), functools.partial(_read_each, read_one), workers, 1

    def _record_entries(
        self,
        suites: Mapping[str, list[IndexedAsset]],
        bad: Iterable[tuple[Asset, BadDebError]],
        lost: Iterable[tuple[Asset, DebInfo, str]],
        previous: Mapping[str, tuple[Mapping[str, Any], str]],
    ) -> dict[str, Any]:
        """The record's per-asset parts, each already in ``_dump_json``'s form (the slow part of it).

        ``previous``: asset key -> (its entry in the head's record, that entry's JSON text),
        for the assets whose data came from that record. An entry that would come out the
        same is written as it was, without encoding it again."""
        # asset key -> suite -> pool path: routing may put one asset into several suites
        in_suites: dict[str, dict[str, str]] = {}
        for suite, entries in sorted(suites.items()):
            for e in entries:
                in_suites.setdefault(e.asset.key, {})[suite] = e.pool_path
        assets: dict[str, Any] = {}
        for entries in suites.values():
            for e in entries:
                key = e.asset.key
                if key in assets:
                    continue
                prior, text = previous.get(key, (None, ""))
                if prior is not None and _same_entry(prior, e, in_suites[key]):
                    assets[key] = _JsonText(text)
                else:
                    assets[key] = {
                        **_deb_record(e.asset, e.deb),
                        "pool_path": e.pool_path,
                        "suites": in_suites[key],
                    }
        parts = {
            "assets": assets,
            "bad": {
                a.key: {"fingerprint": a.fingerprint, "name": a.name, "reason": err.reason} for a, err in bad
            },
            # Read, valid, but left out (a conflict, an invalid field): kept so no rebuild reads them
            # again, with their data so they can win once the entry they lost to is gone.
            "lost": {a.key: {**_deb_record(a, deb), "reason": reason} for a, deb, reason in lost},
        }
        return {name: _JsonText(_json_lines(value, 1)) for name, value in parts.items()}

    def _stanzas_kept(
        self,
        head: str | None,
        head_files: Mapping[str, str],
        record: Mapping[str, Any],
        suites: Mapping[str, list[IndexedAsset]],
        known: Mapping[str, Any],
        from_record: set[str],
    ) -> dict[str, bytes]:
        """Pool path -> stanza, taken from the head's Packages files, for the entries rendering
        would give the same stanza again: the asset's data is the record's, it was indexed at
        that very path, and the head was rendered in this ``STANZA_FORMAT``. A stanza is taken
        only if it names that package, size and SHA256; the rest are rendered."""
        if head is None or record.get("stanza_format") != STANZA_FORMAT:
            return {}
        wanted: dict[str, IndexedAsset] = {}
        for entries in suites.values():
            for e in entries:
                prior = known.get(e.asset.key)
                if (
                    e.asset.key in from_record
                    and prior
                    and e.pool_path in (prior.get("suites") or {}).values()
                ):
                    wanted[e.pool_path] = e
        kept: dict[str, bytes] = {}
        for path in sorted(p for p in head_files if p.startswith("dists/") and p.endswith("/Packages")):
            if len(kept) == len(wanted):
                break
            for stanza in (self.store.read_file(head, path) or b"").split(b"\n\n"):
                at = stanza.find(b"\nFilename: ")
                end = stanza.find(b"\n", at + 1)
                if at < 0 or end < 0:
                    continue
                pool_path = stanza[at + 11 : end].decode("utf-8", "surrogateescape")
                owner = wanted.get(pool_path)
                if owner is not None and pool_path not in kept and _stanza_of(stanza + b"\n", owner.deb):
                    kept[pool_path] = stanza + b"\n"
        return kept

    def _record(self, entries: Mapping[str, Any], files: Mapping[str, bytes]) -> dict[str, Any]:
        """``assets.json``: ``_record_entries`` with the signing key and a digest of the Release files."""
        releases = {p: _strip_dates(d) for p, d in files.items() if p.endswith("/Release")}
        return {
            "version": RECORD_VERSION,
            "stanza_format": STANZA_FORMAT,
            "signing_key": self.signer.fingerprint,
            "release_digest": hashlib.sha256(_dump_json(releases)).hexdigest(),
            **entries,
        }

    def _release_due(self, head: str, head_files: Mapping[str, str]) -> bool:
        """With Valid-Until, re-sign once half the validity has passed even if nothing changed."""
        if not self.settings.valid_days:
            return False
        age = self.clock().timestamp() - self.store.commit_time(head)
        return age > self.settings.valid_days * 86400 / 2


@dataclass
class _Reading:
    """What ``_read_all`` found: the valid and broken assets, counts, and why it stopped early."""

    debs: list[tuple[Asset, DebInfo]]
    bad: list[tuple[Asset, BadDebError]]
    read: int
    reused: int
    remaining: int
    failure: GhaptError | None
    from_record: set[str]  # asset keys whose DebInfo is the record's entry, unchanged


def _read_batch(reader: Callable[[Asset], DebInfo], assets: list[Asset]) -> list[DebInfo | BadDebError]:
    """Reads in a worker process: a broken .deb is a result, not a failure."""
    out: list[DebInfo | BadDebError] = []
    for asset in assets:
        try:
            out.append(reader(asset))
        except BadDebError as exc:
            out.append(exc)
    return out


def _read_each(
    read_one: Callable[[Asset], DebInfo | BadDebError], assets: list[Asset]
) -> list[DebInfo | BadDebError]:
    return [read_one(asset) for asset in assets]


def _lost(
    debs: Iterable[tuple[Asset, DebInfo]],
    suites: Mapping[str, list[IndexedAsset]],
    skipped: Iterable[Skipped],
) -> list[tuple[Asset, DebInfo, str]]:
    """The valid .debs that did not make it into the index, with the reason they were left out."""
    indexed = {e.asset.key for entries in suites.values() for e in entries}
    reasons = {s.asset.key: s.reason for s in skipped}
    return [(a, d, reasons.get(a.key, "not selected")) for a, d in debs if a.key not in indexed]


def _deb_record(asset: Asset, deb: DebInfo) -> dict[str, Any]:
    return {
        "fingerprint": asset.fingerprint,
        "name": asset.name,
        "release": asset.release,
        "suite": asset.suite,
        "size": deb.size,
        "hashes": {k: v for k, v in vars(deb.hashes).items() if v},
        "control": deb.control,  # tuples are JSON arrays: no copy
    }


def _stanza_of(stanza: bytes, deb: DebInfo) -> bool:
    """Whether a stanza names this package, size and SHA256 (a cheap check against a mix-up)."""
    return (
        stanza.startswith(f"Package: {deb.package}\n".encode("utf-8", "surrogateescape"))
        and f"\nSize: {deb.size}\n".encode() in stanza
        and f"\nSHA256: {deb.hashes.sha256}\n".encode() in stanza
    )


_ENTRY_KEYS = frozenset(
    {"fingerprint", "name", "release", "suite", "size", "hashes", "control", "pool_path", "suites"}
)


def _same_entry(prior: Mapping[str, Any], e: IndexedAsset, suites: Mapping[str, str]) -> bool:
    """Whether ``e``'s record entry equals ``prior``, the entry its DebInfo was made from: then
    size, hashes and control are the same by construction, and the rest is compared here."""
    asset = e.asset
    return (
        prior.keys() == _ENTRY_KEYS
        and prior["fingerprint"] == asset.fingerprint
        and prior["name"] == asset.name
        and prior["release"] == asset.release
        and prior["suite"] == asset.suite
        and prior["pool_path"] == e.pool_path
        and prior["suites"] == suites
    )


def mass_removal(
    known: Mapping[str, Any], listed: Iterable[str], removed: list[str], settings: Settings
) -> str:
    """Why this rebuild must not be committed, or "" when it may.

    A typo in a path, a wrong variable or a token that suddenly sees no releases looks exactly
    like "every package was deleted". So a rebuild that would remove more than
    ``GHAPT_MASS_REMOVAL_SHARE`` of the published packages, or every package of one source (a
    GitHub repository, the local folder) because it lists no asset at all any more, is refused
    unless ``GHAPT_ALLOW_MASS_REMOVAL`` says it is meant. ``known`` is the published record
    (asset key -> entry), ``listed`` the keys of every asset the source lists now."""
    if settings.allow_mass_removal or not removed:
        return ""
    published = {(v.get("suite"), v.get("pool_path")) for v in known.values()}
    before = {_source_of(key) for key in known}
    after = {_source_of(key) for key in listed}
    emptied = sorted(before - after)
    too_many = len(removed) > settings.mass_removal_share * len(published)
    if not too_many and not emptied:
        return ""
    why = []
    if too_many:
        why.append(f"more than {settings.mass_removal_share:g} of them (GHAPT_MASS_REMOVAL_SHARE)")
    if emptied:
        why.append("nothing listed any more by " + ", ".join(emptied))
    shown = ", ".join(removed[:20]) + (f" and {len(removed) - 20} more" if len(removed) > 20 else "")
    return (
        f"refusing to remove {len(removed)} of {len(published)} published packages ({'; '.join(why)}): "
        f"{shown}. Check the releases folder or repositories and the credentials; if the removal "
        "is meant, rebuild once with --allow-mass-removal (GHAPT_ALLOW_MASS_REMOVAL=true)"
    )


def _source_of(asset_key: str) -> str:
    """The source an asset key (``github:OWNER/NAME:ID``, ``local:TAG/FILE``) belongs to."""
    kind, _, rest = asset_key.partition(":")
    if kind == "github":
        return f"repository {rest.split(':', 1)[0]}"
    return "the releases folder" if kind == "local" else kind


def _is_release(path: str) -> bool:
    return path.endswith(("/Release", "/InRelease", "/Release.gpg")) or "/by-hash/" in path


def _strip_dates(release: bytes) -> str:
    lines = release.decode().splitlines()
    return "\n".join(ln for ln in lines if not ln.startswith(("Date:", "Valid-Until:")))


def _deb_from_record(rec: Mapping[str, Any]) -> DebInfo:
    hashes = rec["hashes"]
    return DebInfo(
        control=tuple((k, v) for k, v in rec["control"]),
        size=int(rec["size"]),
        hashes=Hashes(
            sha256=hashes["sha256"],
            md5=hashes.get("md5"),
            sha1=hashes.get("sha1"),
            sha512=hashes.get("sha512"),
        ),
    )


def _pool_manifest(suites: Mapping[str, list[IndexedAsset]]) -> dict[str, Any]:
    manifest: dict[str, Any] = {}
    for entries in suites.values():
        for e in entries:
            manifest.setdefault(
                e.pool_path,
                {
                    "asset": e.asset.key,
                    "name": e.asset.name,
                    "release": e.asset.release,
                    "size": e.deb.size,
                    "sha256": e.deb.hashes.sha256,
                    "locator": dict(e.asset.locator),
                },
            )
    return manifest


def _load_json(store: MetadataStore, head: str | None, path: str) -> dict[str, Any]:
    return _load_json_text(store, head, path)[0]


def _load_json_text(store: MetadataStore, head: str | None, path: str) -> tuple[dict[str, Any], bytes]:
    """A JSON state file of the head, and its bytes (empty when it is missing or unreadable)."""
    if head is None:
        return {}, b""
    data = store.read_file(head, path)
    if not data:
        return {}, b""
    try:
        value = json.loads(data)
    except ValueError:
        log.warning("ignoring unreadable state file", extra={"path": path})
        return {}, b""
    return (value, data) if isinstance(value, dict) else ({}, b"")


def _entry_texts(data: bytes, section: str) -> dict[str, str]:
    """Key -> JSON text of each entry of a top-level ``section`` in a file ``_dump_json`` wrote
    (one entry a line). A line that does not have that shape is left out: it is encoded again."""
    text = data.decode("utf-8", "replace")
    opening = f"\n{_JSON.encode(section)}:{{\n"
    start = text.find(opening)
    if start < 0:
        return {}
    found: dict[str, str] = {}
    for line in text[start + len(opening) :].split("\n"):
        if line in ("}", "},"):
            break
        if line.endswith(","):
            line = line[:-1]
        try:
            key, end = _DECODER.raw_decode(line) if line.startswith('"') else (None, 0)
        except ValueError:
            continue
        if isinstance(key, str) and line[end : end + 2] == ":{" and line.endswith("}"):
            found[key] = line[end + 1 :]
    return found


def _dump_json(value: Any, levels: int = 2) -> bytes:
    """Sorted JSON with one entry per line for the first ``levels`` levels of objects, so a diff
    of the branch names the asset that changed. Below that, compact: ``indent`` would force
    Python's pure-Python encoder (about 0.1 s for 400 records), compact output uses the C one."""
    return (_json_lines(value, levels) + "\n").encode()


class _JsonText(str):
    """Text ``_json_lines`` made already: written as it is, so a large part can be made early."""


# One encoder for every call: ``json.dumps`` with options builds a new one each time, which costs
# as much as encoding a small record entry.
_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
_DECODER = json.JSONDecoder()


def _json_lines(value: Any, levels: int) -> str:
    if isinstance(value, _JsonText):
        return value
    encode = _JSON.encode
    if levels <= 0 or not isinstance(value, dict) or not value:
        return encode(value)
    entries = sorted(value.items(), key=lambda kv: str(kv[0]))
    inner = ",\n".join(f"{encode(str(k))}:{_json_lines(v, levels - 1)}" for k, v in entries)
    return "{\n" + inner + "\n}"


def _commit_message(result: RebuildResult, suites: Mapping[str, list[IndexedAsset]]) -> str:
    counts = ", ".join(f"{s}: {len(v)}" for s, v in sorted(suites.items()))
    head = (
        f"ghapt: +{len(result.added)} -{len(result.removed)} packages ({counts})"
        if result.added or result.removed
        else f"ghapt: refresh index ({counts})"
    )
    body = [f"added {a}" for a in result.added] + [f"removed {r}" for r in result.removed]
    body += [f"skipped {s.asset.key}: {s.reason}" for s in result.skipped]
    return head + ("\n\n" + "\n".join(body) if body else "") + "\n"
