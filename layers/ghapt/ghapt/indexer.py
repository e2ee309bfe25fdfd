"""The indexer: releases in, one atomic commit of the whole signed index out.

A rebuild lists the source's assets, reuses the recorded stanza of every asset it has seen
before (same key and fingerprint), reads only the new ones, renders Packages/Release, signs,
keeps the by-hash files of the last few generations, and commits everything in one commit on
top of the head it started from. If another writer moved the branch meanwhile, it starts over
on the new head (reusing what it already read), and never forces.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ghapt.core.errors import BadDebError, MassRemovalRefused, StaleHead
from ghapt.core.layout import ASSETS_FILE, GENERATIONS_FILE, POOL_FILE, RECORD_VERSION, git_blob_id
from ghapt.core.model import Asset, DebInfo, Hashes, IndexedAsset, Skipped
from ghapt.core.ports import MetadataStore, ReleaseSource, Signer
from ghapt.core.settings import Settings
from ghapt.deb.dists import build_dists, byhash_paths, pool_path, select_entries

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5

Progress = Callable[[str, Mapping[str, Any]], None]


@dataclass
class RebuildResult:
    commit: str | None
    head: str | None
    changed: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    packages: int = 0
    read: int = 0
    reused: int = 0
    attempts: int = 1
    message: str = ""
    refused: str = ""  # why the mass-removal guard refused (or, in a dry run, would refuse) to commit

    def summary(self) -> str:
        lines = [
            f"packages: {self.packages} indexed, {len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.skipped)} skipped",
            f"assets: {self.read} read, {self.reused} reused",
        ]
        lines += [f"  skipped {s.asset.key} ({s.asset.name}): {s.reason}" for s in self.skipped]
        if self.refused:
            lines.append(f"refused: {self.refused}")
        if self.changed:
            lines.append(f"commit: {self.commit}" if self.commit else "commit: none (dry run)")
        elif self.refused:
            lines.append("commit: none (refused; the branch is untouched)")
        else:
            lines.append(f"unchanged: no commit (head {self.head})")
        return "\n".join(lines)


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
        workers: int = 4,
    ) -> None:
        self.source = source
        self.store = store
        self.signer = signer
        self.settings = settings
        self.clock = clock
        self.workers = workers
        self._read_cache: dict[tuple[str, str], DebInfo | BadDebError] = {}

    # ---------------------------------------------------------------------------------------
    def rebuild(self, *, dry_run: bool = False, progress: Progress | None = None) -> RebuildResult:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                result = self._attempt(dry_run=dry_run, progress=progress)
            except StaleHead as exc:
                log.info("metadata branch moved, rebuilding on the new head", extra={"reason": str(exc)})
                continue
            result.attempts = attempt
            return result
        raise StaleHead(f"the metadata branch kept moving; gave up after {MAX_ATTEMPTS} attempts")

    def _attempt(self, *, dry_run: bool, progress: Progress | None) -> RebuildResult:
        head = self.store.head()
        head_files = self.store.list_files(head) if head else {}
        record = _load_json(self.store, head, ASSETS_FILE) if ASSETS_FILE in head_files else {}
        known: dict[str, Any] = record.get("assets", {}) if record.get("version") == RECORD_VERSION else {}
        known_bad: dict[str, Any] = record.get("bad", {}) if record.get("version") == RECORD_VERSION else {}

        assets = sorted(self.source.list_assets(), key=lambda a: (a.suite, a.release, a.name, a.key))
        if progress:
            progress("listed", {"assets": len(assets)})
        debs, bad, read, reused = self._read_all(assets, known, known_bad, progress)

        candidates: dict[str, list[IndexedAsset]] = {s: [] for s in self.settings.suites}
        for asset, deb in debs:
            try:
                path = pool_path(deb, self.settings.component)
            except BadDebError as exc:  # a hostile or broken name: skip this one, publish the rest
                log.warning(f"skipping {asset.key}: {exc.reason}", extra={"asset": asset.key})
                bad.append((asset, exc))
                continue
            candidates.setdefault(asset.suite, []).append(IndexedAsset(asset, deb, path))
        skipped: list[Skipped] = [Skipped(a, str(err.reason)) for a, err in bad]
        suites, conflicts = self._select(candidates)
        skipped += conflicts

        now = self.clock().replace(microsecond=0)
        valid_until = now + timedelta(days=self.settings.valid_days) if self.settings.valid_days else None
        files = build_dists(
            suites,
            component=self.settings.component,
            architectures=self.settings.architectures,
            origin=self.settings.origin,
            label=self.settings.label,
            date=now,
            valid_until=valid_until,
        )
        new_record = self._record(suites, bad, files)
        files[ASSETS_FILE] = _dump_json(new_record)
        files[POOL_FILE] = _dump_json(_pool_manifest(suites))

        old_keys = {(v["suite"], v["pool_path"]) for v in known.values()}
        new_keys = {(e.asset.suite, e.pool_path) for entries in suites.values() for e in entries}
        result = RebuildResult(
            commit=None,
            head=head,
            changed=False,
            added=sorted(f"{s}:{p}" for s, p in new_keys - old_keys),
            removed=sorted(f"{s}:{p}" for s, p in old_keys - new_keys),
            skipped=skipped,
            packages=len(new_keys),
            read=read,
            reused=reused,
        )

        stable = {p: d for p, d in files.items() if not _is_release(p)}
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
            and all(head_files.get(p) == git_blob_id(d) for p, d in stable.items())
            and not self._release_due(head, head_files)
        )
        if unchanged:
            return result
        result.refused = mass_removal(known, [a.key for a in assets], result.removed, self.settings)
        if result.refused and not dry_run:
            raise MassRemovalRefused(result.refused, result)

        # Sign, keep older by-hash generations, and delete what no generation needs any more.
        for release_path in [p for p in files if p.endswith("/Release")]:
            text = files[release_path]
            files[release_path[: -len("Release")] + "InRelease"] = self.signer.clearsign(text)
            files[release_path + ".gpg"] = self.signer.detach_sign(text)
        generations = _load_json(self.store, head, GENERATIONS_FILE) if GENERATIONS_FILE in head_files else {}
        old_gens: list[list[str]] = generations.get("generations", [])
        current = sorted(byhash_paths(files))
        older = [g for g in old_gens if g != current][: self.settings.byhash_generations - 1]
        gens = [current, *older]
        keep = {p for g in gens for p in g}
        files[GENERATIONS_FILE] = _dump_json({"generations": gens})
        changes: dict[str, bytes | None] = {
            p: d for p, d in files.items() if head_files.get(p) != git_blob_id(d)
        }
        for p in head_files:
            if p.startswith("dists/") and p not in files and ("/by-hash/" not in p or p not in keep):
                changes[p] = None
        result.changed = True
        result.message = _commit_message(result, suites)
        if dry_run:
            return result
        result.commit = self.store.commit_files(head, changes, result.message)
        log.info("index committed", extra={"commit": result.commit, "changes": len(changes)})
        return result

    # ---------------------------------------------------------------------------------------
    def _read_all(
        self,
        assets: list[Asset],
        known: Mapping[str, Any],
        known_bad: Mapping[str, Any],
        progress: Progress | None,
    ) -> tuple[list[tuple[Asset, DebInfo]], list[tuple[Asset, BadDebError]], int, int]:
        """DebInfo for every asset: from the record when key+fingerprint match, else read it."""
        results: dict[str, DebInfo | BadDebError] = {}
        to_read: list[Asset] = []
        reused = 0
        for asset in assets:
            cached = self._read_cache.get((asset.key, asset.fingerprint))
            prior = known.get(asset.key)
            prior_bad = known_bad.get(asset.key)
            if cached is not None:
                results[asset.key] = cached
                reused += 1
            elif prior and prior.get("fingerprint") == asset.fingerprint:
                results[asset.key] = _deb_from_record(prior)
                reused += 1
            elif prior_bad and prior_bad.get("fingerprint") == asset.fingerprint:
                results[asset.key] = BadDebError(asset.name, prior_bad["reason"])
                reused += 1
            else:
                to_read.append(asset)

        def read_one(asset: Asset) -> DebInfo | BadDebError:
            try:
                return self.source.read_deb(asset)
            except BadDebError as exc:
                log.warning(f"skipping {asset.key}: {exc.reason}", extra={"asset": asset.key})
                return exc

        if to_read:
            with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
                for asset, outcome in zip(to_read, pool.map(read_one, to_read), strict=True):
                    self._read_cache[(asset.key, asset.fingerprint)] = outcome
                    results[asset.key] = outcome
                    if progress:
                        progress("read", {"asset": asset.name, "bytes": asset.size})
        # Keep only what the source still publishes: a warm process must not grow without bound.
        current = {(a.key, a.fingerprint) for a in assets}
        self._read_cache = {k: v for k, v in self._read_cache.items() if k in current}
        debs = [(a, r) for a in assets if isinstance(r := results[a.key], DebInfo)]
        bad = [(a, r) for a in assets if isinstance(r := results[a.key], BadDebError)]
        return debs, bad, len(to_read), reused

    def _select(
        self, candidates: Mapping[str, list[IndexedAsset]]
    ) -> tuple[dict[str, list[IndexedAsset]], list[Skipped]]:
        """Per-suite selection, then one pool across suites: a pool path names one content only."""
        suites: dict[str, list[IndexedAsset]] = {}
        skipped: list[Skipped] = []
        owner: dict[str, IndexedAsset] = {}
        for suite in sorted(candidates, key=lambda s: (s != self.settings.suite, s)):
            kept, lost = select_entries(candidates[suite])
            skipped += lost
            suites[suite] = []
            for entry in kept:
                first = owner.setdefault(entry.pool_path, entry)
                if first.deb.hashes.sha256 != entry.deb.hashes.sha256:
                    skipped.append(
                        Skipped(
                            entry.asset,
                            f"conflict: {entry.pool_path} is already {first.asset.key} ({first.asset.name}) "
                            f"with different contents",
                        )
                    )
                else:
                    suites[suite].append(entry)
        return suites, skipped

    def _record(
        self,
        suites: Mapping[str, list[IndexedAsset]],
        bad: Iterable[tuple[Asset, BadDebError]],
        files: Mapping[str, bytes],
    ) -> dict[str, Any]:
        releases = {p: _strip_dates(d) for p, d in files.items() if p.endswith("/Release")}
        return {
            "version": RECORD_VERSION,
            "signing_key": self.signer.fingerprint,
            "release_digest": hashlib.sha256(_dump_json(releases)).hexdigest(),
            "assets": {
                e.asset.key: {
                    "fingerprint": e.asset.fingerprint,
                    "name": e.asset.name,
                    "release": e.asset.release,
                    "suite": e.asset.suite,
                    "pool_path": e.pool_path,
                    "size": e.deb.size,
                    "hashes": {k: v for k, v in vars(e.deb.hashes).items() if v},
                    "control": [list(kv) for kv in e.deb.control],
                }
                for entries in suites.values()
                for e in entries
            },
            "bad": {
                a.key: {"fingerprint": a.fingerprint, "name": a.name, "reason": err.reason} for a, err in bad
            },
        }

    def _release_due(self, head: str, head_files: Mapping[str, str]) -> bool:
        """With Valid-Until, re-sign once half the validity has passed even if nothing changed."""
        if not self.settings.valid_days:
            return False
        age = self.clock().timestamp() - self.store.commit_time(head)
        return age > self.settings.valid_days * 86400 / 2


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
    if head is None:
        return {}
    data = store.read_file(head, path)
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        log.warning("ignoring unreadable state file", extra={"path": path})
        return {}
    return value if isinstance(value, dict) else {}


def _dump_json(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


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
