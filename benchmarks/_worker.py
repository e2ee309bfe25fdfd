"""What the measured child processes run, so their RSS and wall time are their own.

``python -m benchmarks._worker COMMAND ...``:

* ``import [MODULE...]`` — import those modules (default ``ghapt.debfile``, what ``read``
  needs) and exit: the baseline of wall time and RSS.
* ``index POOL`` — read every .deb under POOL with ``read_deb_path``, select and render the
  Packages stanzas through ``ghapt.index``, write them to stdout (Filename = the path as
  found, like ``apt-ftparchive packages POOL`` and ``dpkg-scanpackages -m POOL``).
* ``indexer RELEASES STATE`` — a full ``Indexer.rebuild()`` over the local backend (read,
  Packages/.gz/.xz, by-hash, Release, signing, one git commit); prints a JSON summary.
* ``read DEB`` — ``read_deb_path`` on one file; prints a JSON summary.
* ``scale API_URL META STATE BUDGET REPO...`` — rebuild from GitHub (token in ``GITHUB_TOKEN``)
  as the Lambda function does: a fresh ``Services`` per invocation, each with BUDGET seconds of
  reading, until complete; prints a JSON summary with the number of invocations.

Imports stay inside the commands so each child loads only what it needs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path


def cmd_import(*modules: str) -> None:
    import importlib

    for module in modules or ("ghapt.deb.reader",):
        importlib.import_module(module)


def cmd_index(pool: str) -> None:
    from ghapt.core.model import Asset, IndexedAsset
    from ghapt.deb.control import render_stanza
    from ghapt.deb.dists import pool_path, select_entries
    from ghapt.deb.reader import read_deb_path

    entries = []
    for path in sorted(Path(pool).rglob("*.deb")):
        deb = read_deb_path(path)
        rel = path.as_posix()
        asset = Asset(
            key=f"file:{rel}",
            fingerprint=deb.hashes.sha256,
            name=path.name,
            release=path.parent.name,
            suite="stable",
            size=deb.size,
            locator={"path": rel},
        )
        entries.append(IndexedAsset(asset, deb, pool_path(deb, "main")))
    kept, skipped = select_entries(entries)
    out = sys.stdout.buffer
    for entry in kept:
        out.write(render_stanza(entry.deb, entry.asset.locator["path"]) + b"\n")
    out.flush()
    print(f"ghapt: {len(kept)} stanzas, {len(skipped)} skipped", file=sys.stderr)


def cmd_indexer(releases: str, state: str) -> None:
    from ghapt.bootstrap import Services
    from ghapt.core.settings import Settings

    settings = Settings.from_env({}, releases_dir=releases, state_dir=state, architectures="amd64 arm64")
    result = Services(settings, {}).indexer.rebuild()
    summary = {
        "packages": result.packages,
        "read": result.read,
        "skipped": len(result.skipped),
        "changed": result.changed,
        "commit": result.commit,
    }
    print(json.dumps(summary))


def cmd_scale(api_url: str, meta: str, state: str, budget: str, *repos: str) -> None:
    import os

    from ghapt.bootstrap import Services
    from ghapt.core.settings import Settings

    settings = Settings.from_env(
        {"GITHUB_TOKEN": os.environ["GITHUB_TOKEN"]},
        backend="github",
        api_url=api_url,
        github_repos=list(repos),
        metadata_repo=meta,
        state_dir=state,
        architectures="amd64 arm64",
    )
    invocations = read = reused = 0
    while True:
        invocations += 1
        result = Services(settings, {}).indexer.rebuild(time_budget=float(budget))
        read += result.read
        reused = result.reused
        if result.complete:
            break
    summary = {"invocations": invocations, "read": read, "reused": reused, "packages": result.packages}
    print(json.dumps(summary))


def cmd_read(deb: str) -> None:
    from ghapt.deb.reader import read_deb_path

    info = read_deb_path(Path(deb))
    print(json.dumps({"package": info.package, "size": info.size, "sha256": info.hashes.sha256}))


def main(argv: list[str]) -> None:
    command, *args = argv
    commands: dict[str, Callable[..., None]] = {
        "import": cmd_import,
        "index": cmd_index,
        "indexer": cmd_indexer,
        "read": cmd_read,
        "scale": cmd_scale,
    }
    commands[command](*args)


if __name__ == "__main__":
    main(sys.argv[1:])
