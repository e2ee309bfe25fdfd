"""Real apt reads Packages.xz and Packages.gz made of many segments, before and after reuse."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.cli.clientconfig import auth_entry
from ghapt.core.settings import Settings
from ghapt.deb import compression

from tests.support.aptclient import AptClient
from tests.support.debbuild import build_deb
from tests.support.servers import serve

pytestmark = [
    pytest.mark.apt,
    pytest.mark.skipif(
        shutil.which("apt-get") is None or shutil.which("xz") is None, reason="needs apt-get, xz"
    ),
]

PASSWORD = "segments-pass-1234"
INDEX = "dists/stable/main/binary-amd64/Packages"


def _blocks(data: bytes, tmp: Path) -> int:
    path = tmp / "probe.xz"
    path.write_bytes(data)
    listing = subprocess.run(
        ["xz", "--robot", "-l", str(path)], capture_output=True, check=True
    ).stdout.decode()
    return int(next(line.split("\t") for line in listing.splitlines() if line.startswith("totals"))[2])


@pytest.mark.parametrize("kind", ["xz", "gz"])
def test_apt_reads_a_segmented_index_and_its_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # Segments of a stanza or two, so a dozen packages make a file of many blocks/deflate segments.
    monkeypatch.setattr(compression, "SEGMENT_MIN", 200)
    monkeypatch.setattr(compression, "SEGMENT_SPREAD", 400)
    releases, state = tmp_path / "releases", tmp_path / "state"
    for i in range(12):
        build_deb(releases / f"v{i}", f"seg-{i:02d}", "1.0-1", "all")
    UserFile(state / "users.json").add("alice", PASSWORD)
    settings = Settings.from_env({}, releases_dir=releases, state_dir=state, architectures="amd64")
    services = Services(settings, {})
    first = services.indexer.rebuild()
    store = services.store
    head = first.commit or ""
    old_xz = store.read_file(head, f"{INDEX}.xz") or b""
    assert _blocks(old_xz, tmp_path) >= 6

    with serve(services) as server:
        key = tmp_path / "ghapt.asc"
        key.write_text(services.signer.public_key_armored())
        apt = AptClient(tmp_path / "apt")
        apt.add_source(server.url, "stable", key)
        apt.set_auth(auth_entry(server.url, "alice", PASSWORD))
        only = ("-o", f"Acquire::CompressionTypes::Order::={kind}", "-o", "Acquire::GzipIndexes=false")
        res = apt.run(*only, "update")
        assert res.returncode == 0, res.output
        assert any(p.endswith(f"Packages.{kind}") or "/by-hash/" in p for p in server.paths(200))
        assert "seg-11" in apt.cache("pkgnames", "seg-").output

        # A new package in the middle: a fresh process reuses every other segment from the branch.
        build_deb(releases / "v5b", "seg-05b", "1.0-1", "all")
        second = Services(settings, {}).indexer.rebuild()
        new_xz = store.read_file(second.commit or "", f"{INDEX}.xz") or b""
        fresh_state = tmp_path / "fresh"
        fresh = Services(
            Settings.from_env({}, releases_dir=releases, state_dir=fresh_state, architectures="amd64"), {}
        )
        fresh_commit = fresh.indexer.rebuild().commit or ""
        assert new_xz == fresh.store.read_file(fresh_commit, f"{INDEX}.xz")  # reuse changes no byte
        kept = sum(1 for i in range(12, len(old_xz) - 64, 4) if old_xz[i : i + 64] in new_xz)
        assert kept > 0  # old blocks sit unchanged in the new file

        services.branch_cache.invalidate()
        res = apt.run(*only, "update")
        assert res.returncode == 0, res.output
        listing = apt.cache("pkgnames", "seg-").output
        names = [n for n in listing.split() if n.startswith("seg-")]
        assert sorted(names) == sorted([f"seg-{i:02d}" for i in range(12)] + ["seg-05b"])
