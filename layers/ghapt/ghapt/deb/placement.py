"""From read assets to suites: routing, selection within each suite, and pool paths unique per content.

Conflicts are a per-suite matter: the same Package/Version/Architecture with different bytes is a
conflict inside one suite (``select_entries``) and perfectly fine across two (a bookworm and a
jammy build). The pool, though, is one tree for every suite, so two different files must never
share a pool path. The canonical path (``pool/main/t/tool/tool_1.0-1_amd64.deb``) goes to the
preferred content (the older release, then asset name and key, as ``select_entries`` prefers);
every other content of that path gets a content segment::

    pool/main/t/tool/<first 16 hex of its sha256>/tool_1.0-1_amd64.deb

(all 64 hex digits should two contents ever share 16). The path is a pure function of the
current assets, so the same releases and rules always give the same bytes; a repository
without clashes keeps exactly the paths it had. Hex digits and ``/`` are never
percent-encoded by apt, and the file name (what ``apt-get download`` saves) stays the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ghapt.core.errors import BadDebError
from ghapt.core.model import Asset, DebInfo, IndexedAsset, Skipped
from ghapt.core.routing import Routing
from ghapt.deb.dists import _preference, pool_path, select_entries

log = logging.getLogger(__name__)

SHORT_DIGEST = 16  # hex digits of sha256 in a disambiguated pool path


@dataclass
class Placement:
    """Each suite's entries (every suite present, maybe empty), what was left out, and idle rules."""

    suites: dict[str, list[IndexedAsset]]
    skipped: list[Skipped] = field(default_factory=list)
    unused_routes: list[str] = field(default_factory=list)


def place(debs: Iterable[tuple[Asset, DebInfo]], routing: Routing, component: str) -> Placement:
    """RoutingRule every asset, select within each suite, then give every content its own pool path."""
    candidates: dict[str, list[IndexedAsset]] = {s: [] for s in routing.suites}
    used: set[str] = set()
    skipped: list[Skipped] = []
    for asset, deb in debs:
        try:
            path = pool_path(deb, component)
        except BadDebError as exc:  # a hostile or broken name: skip this one, publish the rest
            log.warning(f"skipping {asset.key}: {exc.reason}", extra={"asset": asset.key})
            skipped.append(Skipped(asset, exc.reason))
            continue
        suites, matched = routing.suites_for(asset, deb)
        used.update(r.text for r in matched)
        for suite in suites:
            candidates.setdefault(suite, []).append(IndexedAsset(replace(asset, suite=suite), deb, path))
    selected: dict[str, list[IndexedAsset]] = {}
    for suite in sorted(candidates, key=lambda s: (s != routing.default_suite, s)):
        kept, lost = select_entries(candidates[suite])
        selected[suite] = kept
        several = len(candidates) > 1 and suite != routing.default_suite
        skipped += [Skipped(s.asset, f"{suite}: {s.reason}") if several else s for s in lost]
    unused = [r.text for r in routing.routes if r.text not in used]
    for text in unused:
        log.warning("routing rule matched no asset", extra={"rule": text})
    return Placement(unique_pool_paths(selected), skipped, unused)


def unique_pool_paths(suites: Mapping[str, Sequence[IndexedAsset]]) -> dict[str, list[IndexedAsset]]:
    """The same entries with pool paths that name one content each, across every suite.

    Within a suite ``select_entries`` already made paths unique; here contents that share a
    canonical path in different suites are told apart. Does not depend on the input order."""
    contents: dict[str, dict[str, list[IndexedAsset]]] = {}  # path -> sha256 -> its entries
    for entries in suites.values():
        for e in entries:
            contents.setdefault(e.pool_path, {}).setdefault(e.deb.hashes.sha256, []).append(e)
    renamed: dict[tuple[str, str], str] = {}
    for path, by_sha in contents.items():
        if len(by_sha) < 2:
            continue
        best = {sha: min(_preference(e) for e in entries) for sha, entries in by_sha.items()}
        winner = min(best, key=lambda sha: best[sha])
        others = sorted(sha for sha in by_sha if sha != winner)
        shorts = [sha[:SHORT_DIGEST] for sha in others]
        for sha in others:
            digest = sha[:SHORT_DIGEST] if shorts.count(sha[:SHORT_DIGEST]) == 1 else sha
            renamed[(path, sha)] = content_pool_path(path, digest)
    if not renamed:
        return {s: list(v) for s, v in suites.items()}
    return {
        suite: [
            replace(e, pool_path=renamed.get((e.pool_path, e.deb.hashes.sha256), e.pool_path))
            for e in entries
        ]
        for suite, entries in suites.items()
    }


def content_pool_path(path: str, digest: str) -> str:
    """``pool/main/t/tool/tool_1.0_amd64.deb`` -> ``pool/main/t/tool/<digest>/tool_1.0_amd64.deb``."""
    folder, _, name = path.rpartition("/")
    return f"{folder}/{digest}/{name}"
