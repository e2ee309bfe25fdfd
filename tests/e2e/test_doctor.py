"""``ghapt doctor`` (the console script) against a healthy and deliberately broken local repositories."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings

from tests.support.cli import run
from tests.support.debbuild import build_deb
from tests.support.servers import RunningServer, serve

pytestmark = pytest.mark.skipif(shutil.which("gpgv") is None, reason="needs gpgv")

USER, PASSWORD = "doc", "doctor-pass-123"


def _services(tmp_path: Path, **overrides: object) -> Services:
    releases = tmp_path / "releases"
    build_deb(releases / "v1", "hello", "1.0-1", "all")
    build_deb(releases / "v2", "tool", "2:1.0~rc1-1", "amd64")
    UserFile(tmp_path / "state" / "users.json").add(USER, PASSWORD)
    settings = Settings.from_env(
        {}, releases_dir=releases, state_dir=tmp_path / "state", architectures="amd64", **overrides
    )
    return Services(settings, {})


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[Services, RunningServer]]:
    services = _services(tmp_path)
    services.indexer.rebuild()
    with serve(services) as server:
        yield services, server


def doctor(url: str, *extra: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return run("doctor", url, "--user", USER, "--password-stdin", *extra, input=password + "\n")


def _lines(out: str) -> dict[str, str]:
    result = {}
    for line in out.splitlines():
        if line.startswith(("PASS", "FAIL")):
            verdict, rest = line.split(None, 1)
            result[rest.split(":", 1)[0]] = verdict
    return result


def _commit(services: Services, changes: dict[str, bytes | None]) -> None:
    store = services.store
    head = store.head()
    store.commit_files(head, changes, "break the repository on purpose")
    services.branch_cache.invalidate()


def test_a_healthy_repository_passes_every_check(repo: tuple[Services, RunningServer]) -> None:
    _, server = repo
    res = doctor(server.url)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = _lines(res.stdout)
    assert set(lines) == {
        "public key",
        "credentials",
        "[stable] InRelease signature",
        "[stable] dates",
        "[stable] by-hash files",
        "[stable] Packages",
        "[stable] pool redirect",
    }
    assert set(lines.values()) == {"PASS"}
    assert "all 7 checks passed" in res.stdout


def test_wrong_credentials_fail_the_credentials_check(repo: tuple[Services, RunningServer]) -> None:
    _, server = repo
    res = doctor(server.url, password="wrong-password")
    assert res.returncode == 1
    lines = _lines(res.stdout)
    assert lines["credentials"] == "FAIL"
    assert lines["public key"] == "PASS"


def test_a_tampered_inrelease_fails_the_signature_check(repo: tuple[Services, RunningServer]) -> None:
    services, server = repo
    head = services.store.head()
    assert head is not None
    inrelease = services.store.read_file(head, "dists/stable/InRelease")
    assert inrelease is not None
    assert b"Origin: ghapt" in inrelease
    _commit(services, {"dists/stable/InRelease": inrelease.replace(b"Origin: ghapt", b"Origin: evil!")})
    res = doctor(server.url)
    assert res.returncode == 1
    lines = _lines(res.stdout)
    assert lines["[stable] InRelease signature"] == "FAIL"
    assert "not a valid signature" in res.stdout
    assert lines["public key"] == "PASS"
    assert lines["credentials"] == "PASS"


def test_a_missing_by_hash_file_fails_the_by_hash_check(repo: tuple[Services, RunningServer]) -> None:
    services, server = repo
    head = services.store.head()
    assert head is not None
    files = services.store.list_files(head)
    victim = next(p for p in files if "/by-hash/SHA256/" in p and "binary-amd64" in p)
    _commit(services, {victim: None})
    res = doctor(server.url)
    assert res.returncode == 1
    lines = _lines(res.stdout)
    assert lines["[stable] by-hash files"] == "FAIL"
    assert victim.rsplit("/", 1)[-1] in res.stdout
    assert ": 404" in res.stdout
    assert lines["[stable] InRelease signature"] == "PASS"


def test_an_expired_valid_until_fails_the_dates_check(tmp_path: Path) -> None:
    services = _services(tmp_path, valid_days=1)
    services.indexer.clock = lambda: datetime(2020, 1, 1, tzinfo=UTC)
    services.indexer.rebuild()
    with serve(services) as server:
        res = doctor(server.url)
    assert res.returncode == 1
    lines = _lines(res.stdout)
    assert lines["[stable] dates"] == "FAIL"
    assert "Valid-Until" in res.stdout
    assert "has passed" in res.stdout
    assert lines["[stable] InRelease signature"] == "PASS"


def test_doctor_without_credentials_names_the_flags() -> None:
    res = run("doctor", "http://127.0.0.1:9")
    assert res.returncode == 2
    assert "--user" in res.stderr
    assert "--token" in res.stderr


def test_an_unreachable_repository_fails(tmp_path: Path) -> None:
    res = doctor("http://127.0.0.1:9")
    assert res.returncode == 1
    assert "FAIL  public key" in res.stdout
