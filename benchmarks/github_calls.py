"""Benchmark 3: GitHub API calls, storage requests and bytes per rebuild, against the fake GitHub.

``tests.support.fakegithub.FakeGitHub`` serves the REST API and a separate storage host over real
HTTP, and logs every request; the real ``Services`` (GitHub source, branch store, local
signer) rebuilds the index. Every third release's asset has no ``digest`` (uploaded before
GitHub computed them), so it must be streamed whole; the others are Range-read.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import Log, Section, human_bytes, ratio
from .debs import build_pool, plan

REPO = "acme/tools"
META = "acme/apt-meta"
BRANCH = "apt-metadata"
MIN_PAYLOAD = 16_000
MAX_PAYLOAD = 1_000_000


@dataclass
class Counts:
    api: int = 0
    not_modified: int = 0
    listing: int = 0
    git_reads: int = 0
    git_writes: int = 0
    asset_urls: int = 0
    other: int = 0
    storage_range: int = 0
    storage_stream: int = 0
    storage_bytes: int = 0
    commits: int = 0
    read: int = 0
    reused: int = 0

    @property
    def git(self) -> int:
        return self.git_reads + self.git_writes


def classify(log: list[Any], storage_bytes: int) -> Counts:
    """Split the fake's request log into the columns of the table."""
    c = Counts(storage_bytes=storage_bytes)
    for r in log:
        if r.server == "storage":
            if "range" in r.headers:
                c.storage_range += 1
            else:
                c.storage_stream += 1
            continue
        c.api += 1
        if r.status == 304:
            c.not_modified += 1
        if "/git/" in r.path:
            if r.method == "GET":
                c.git_reads += 1
            else:
                c.git_writes += 1
            if r.method == "POST" and r.path.endswith("/git/commits"):
                c.commits += 1
        elif "/releases/assets/" in r.path:
            c.asset_urls += 1
        elif r.path.endswith("/releases"):
            c.listing += 1
        else:
            c.other += 1
    return c


def github_services(fake: Any, state: Path, **settings: Any) -> Any:
    """A fresh ``Services`` on the GitHub backend (a cold Lambda: no caches, no ETags)."""
    from ghapt.bootstrap import Services
    from ghapt.core.settings import Settings

    values: dict[str, Any] = {
        "backend": "github",
        "api_url": fake.api_url,
        "github_repos": [REPO],
        "metadata_repo": META,
        "state_dir": state,
        "architectures": "amd64 arm64",
    }
    values.update(settings)
    return Services(Settings.from_env({"GITHUB_TOKEN": fake.token}, **values), {})


def build_debs(n: int, tmp: Path) -> list[tuple[str, bytes]]:
    specs = plan(n + 1, min_size=MIN_PAYLOAD, max_size=MAX_PAYLOAD, seed=3)
    paths = build_pool(tmp / "debs", specs)
    return [(p.name, p.read_bytes()) for p in paths]


def run(n: int = 200, *, workdir: Path | None = None, log: Log = print) -> Section:
    started = time.perf_counter()
    own = workdir is None
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-github-")) if workdir is None else workdir
    try:
        section = _run(n, tmp, log)
    finally:
        if own:
            shutil.rmtree(tmp, ignore_errors=True)
    section.seconds = time.perf_counter() - started
    return section


def _run(n: int, tmp: Path, log: Log) -> Section:
    from ghapt.signing.localkey import load_or_create_local_key

    from tests.support.fakegithub import FakeGitHub

    debs = build_debs(n, tmp)
    new_name, new_data = debs.pop()
    state = tmp / "state"
    load_or_create_local_key(state)
    rows: list[tuple[str, Counts]] = []
    with FakeGitHub() as fake:
        fake.add_repo(REPO)
        fake.add_repo(META)
        legacy = legacy_bytes = 0
        for i, (name, data) in enumerate(debs):
            with_digest = i % 3 != 0
            legacy += not with_digest
            legacy_bytes += 0 if with_digest else len(data)
            fake.add_release(REPO, f"v{i + 1}.0", [(name, data)], with_digest=with_digest)
        total = sum(len(d) for _, d in debs)
        log(f"  {len(debs)} releases ({human_bytes(total)}; {legacy} without digest) on the fake GitHub")

        def rebuild(label: str, services: Any) -> None:
            fake.clear_log()
            result = services.indexer.rebuild()
            counts = classify(fake.requests_log, fake.storage_bytes_served)
            counts.read, counts.reused = result.read, result.reused
            rows.append((label, counts))
            log(f"  {label}: {counts.api} API calls, {human_bytes(counts.storage_bytes)} from storage")

        rebuild("cold rebuild (empty branch)", github_services(fake, state))
        rebuild("nothing changed (fresh process)", github_services(fake, state))
        warm = github_services(fake, state)
        warm.indexer.rebuild()  # primes this process's ETags and caches; not counted
        rebuild("nothing changed (same warm process)", warm)
        fake.add_release(REPO, f"v{len(debs) + 1}.0", [(new_name, new_data)])
        rebuild("one new release (fresh process)", github_services(fake, state))
        packages = (
            len(
                (fake.read_branch_file(META, BRANCH, "dists/stable/main/binary-amd64/Packages") or b"").split(
                    b"\n\n"
                )
            )
            - 1
        )

    headers = [
        "Rebuild",
        "API calls (304s)",
        "listing",
        "git data (reads + writes)",
        "asset URL lookups",
        "storage Range / stream",
        "storage bytes",
        "bytes vs full download",
        "debs read / reused",
        "commits",
    ]
    table_rows = [
        [
            label,
            f"{c.api} ({c.not_modified})",
            str(c.listing),
            f"{c.git} ({c.git_reads} + {c.git_writes})",
            str(c.asset_urls),
            f"{c.storage_range} / {c.storage_stream}",
            human_bytes(c.storage_bytes),
            ratio(c.storage_bytes, total) if c.storage_bytes else "0",
            f"{c.read} / {c.reused}",
            str(c.commits),
        ]
        for label, c in rows
    ]
    cold = rows[0][1]
    return Section(
        key="github",
        title=f"3. GitHub API calls and bytes for {len(debs)} releases",
        intro=[
            f"Input: {len(debs)} releases of one .deb each on `tests.support.fakegithub.FakeGitHub` "
            f"(real HTTP; {human_bytes(total)} of assets, "
            f"{human_bytes(MIN_PAYLOAD)} to {human_bytes(MAX_PAYLOAD)} "
            f"payload each; {legacy} assets without a `digest`, as uploaded before 2025-06). ghapt's "
            "real `Services` (GitHub source and branch store) rebuild into `apt-metadata`; every request "
            'the fake saw is counted. "Fresh process" = new `Services`, as a cold Lambda (no ETag or '
            "read caches; what is known comes from the branch). Reference for bytes: the **total size of "
            f"all assets ({human_bytes(total)})**, what downloading each one in full would cost.",
        ],
        headers=headers,
        rows=table_rows,
        notes=[
            "304s answer conditional (`If-None-Match`) requests and do not count against GitHub's rate "
            "limit. Storage requests go to the storage host with a signed URL and are not API calls.",
            "Per new asset: one asset URL lookup (the 302 to storage), then one Range read of the first "
            "64 KiB when GitHub gives a digest, or the whole file streamed once when it does not. In the "
            f"cold rebuild the {cold.storage_stream} digest-less assets account for "
            f"{human_bytes(legacy_bytes)} "
            f"({100 * legacy_bytes / max(cold.storage_bytes, 1):.0f}% of the bytes); "
            f"the {cold.storage_range} Range reads for {human_bytes(cold.storage_bytes - legacy_bytes)}.",
            f"The index lists {packages} packages for amd64 (`all` included).",
        ],
        data={"rows": {label: vars(c) for label, c in rows}, "total_bytes": total, "n": len(debs)},
    )
