"""Every response is built from its own request: thousands of concurrent requests over dists
files of several architectures and pool redirects of several packages, against the real
``ghapt serve`` in a subprocess whose GIL switches every microsecond beside a CPU-burning thread.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from ghapt.auth.userfile import UserFile
from ghapt.core.layout import POOL_FILE
from ghapt.local.gitstore import LocalGitStore

from tests.support.debbuild import build_deb
from tests.support.ghaptserve import CPU_BURNER, TINY_SWITCH_INTERVAL, ghapt_serve

AUTH = ("alice", "crosstalk-pass")
ARCHES = ("amd64", "arm64", "riscv64")
PACKAGES = (
    ("figlet", "2.2.5-3", "amd64"),
    ("libonig5", "6.9.8-1", "amd64"),
    ("jq", "1.6-2", "arm64"),
    ("tzdata-lite", "2024a-1", "all"),
    ("cowsay", "3.03-9", "riscv64"),
    ("libfoo1", "1.0-1", "arm64"),
)
CLIENTS = 24
ROUNDS = 120  # every path, this many times, shuffled over the clients


def _expected(state: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(dists path -> sha256 of its bytes, pool path -> the asset path its redirect must name)."""
    store = LocalGitStore(state / "metadata.git", "apt-metadata")
    head = store.head()
    assert head is not None
    files = store.list_files(head)
    dists = {}
    for path in sorted(files):
        if path.startswith("dists/") and "/by-hash/" not in path:
            data = store.read_file(head, path)
            assert data is not None
            dists[path] = hashlib.sha256(data).hexdigest()
    manifest = json.loads(store.read_file(head, POOL_FILE) or b"{}")
    pool = {path: entry["locator"]["path"] for path, entry in manifest.items()}
    return dists, pool


def test_concurrent_requests_are_each_answered_with_their_own_data(tmp_path: Path) -> None:
    releases, state = tmp_path / "releases", tmp_path / "state"
    for i, (name, version, arch) in enumerate(PACKAGES):
        build_deb(
            releases / f"v{i}", name, version, arch, files={f"usr/share/doc/{name}/x": name.encode() * 50}
        )
    UserFile(state / "users.json").add(*AUTH)
    # One serving process: the prelude's busy thread must compete with the threads answering.
    env = {"GHAPT_ARCHITECTURES": " ".join(ARCHES), "GHAPT_WORKERS": "1"}
    with ghapt_serve(releases, state, env=env, prelude=TINY_SWITCH_INTERVAL + CPU_BURNER) as server:
        dists, pool = _expected(state)
        assert len(dists) >= 10
        assert len(pool) == len(PACKAGES)
        paths = [*dists, *pool] * ROUNDS
        # Interleave so that neighbours in time ask for different things.
        paths = [paths[(i * 7919) % len(paths)] for i in range(len(paths))]
        local = threading.local()
        wrong: list[str] = []

        def fetch(path: str) -> None:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
                session.auth = AUTH
            r = session.get(f"{server.url}/{path}", allow_redirects=False, timeout=60)
            if path in dists:
                got = hashlib.sha256(r.content).hexdigest()
                if r.status_code != 200 or got != dists[path]:
                    wrong.append(f"{path}: {r.status_code}, {len(r.content)} bytes, sha256 {got[:12]}")
            else:
                location = r.headers.get("Location", "")
                asset = unquote(urlsplit(location).path).removeprefix("/_assets/")
                if r.status_code != 302 or asset != pool[path]:
                    wrong.append(f"{path}: {r.status_code} -> {location}")

        with ThreadPoolExecutor(CLIENTS) as pool_exec:
            list(pool_exec.map(fetch, paths))
        assert len(paths) >= 500
        assert not wrong, f"{len(wrong)} of {len(paths)} answers belonged to another request: {wrong[:5]}"
