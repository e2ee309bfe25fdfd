"""Index files too large for a Lambda response: served like Debian's archives, never redirected.

A ``dists/`` file over ``MAX_INDEX_FILE_BYTES`` (4 MiB: a Lambda response is at most 6 MB and
base64 adds a third) is not committed; Release still lists its size and hashes, and apt fetches
the ``.xz`` by hash and checks what it decompresses. Nothing answers with a redirect: for a
private GitHub repository the contents API's ``download_url`` carries a ``?token=`` minted for
ghapt's own credential, which must never reach a client. Sizes come from the tree listing, so
a file over the limit is never read, not even to refuse it.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from ghapt import serving
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.cli.clientconfig import auth_entry
from ghapt.core.layout import MAX_INDEX_FILE_BYTES
from ghapt.core.settings import Settings
from ghapt.deb import dists
from ghapt.local.gateway import ApiGateway
from ghapt.local.gitstore import LocalGitStore
from ghapt.serving import BranchCache, TooLarge, serve_dists

from tests.support.aptclient import AptClient
from tests.support.debbuild import build_deb, control_text
from tests.support.fakegithub import FakeGitHub
from tests.support.servers import serve

AUTH = ("alice", "large-files-pw")
FOLDER = "dists/stable/main/binary-amd64"
PACKAGES = f"{FOLDER}/Packages"
LAMBDA_LIMIT = 6 * 1024 * 1024
WORDS = [f"w{i:02d}{'x' * (i % 7)}" for i in range(64)]


def _description(nbytes: int, seed: int) -> str:
    """Text that compresses like real descriptions do (xz keeps it far under the limit)."""
    rng = random.Random(seed)  # noqa: S311 - test text, not a secret
    words: list[str] = []
    total = 0
    while total < nbytes:
        words.append(rng.choice(WORDS))
        total += len(words[-1]) + 1
    text = " ".join(words)
    return "large-file test package\n" + "\n".join(f" {text[j : j + 76]}" for j in range(0, len(text), 76))


def _debs(out: Path, count: int, description_bytes: int) -> list[Path]:
    paths = []
    for i in range(count):
        control = control_text(
            f"big{i}", "1.0-1", "amd64", description=_description(description_bytes, seed=i)
        )
        paths.append(build_deb(out, f"big{i}", "1.0-1", "amd64", control=control))
    return paths


def _release_entries(release: str, algo: str) -> dict[str, tuple[int, str]]:
    section = release.split(f"{algo}:\n", 1)[1]
    entries = {}
    for line in section.splitlines():
        if not line.startswith(" "):
            break
        digest, size, name = line.split()
        entries[name] = (int(size), digest)
    return entries


@dataclass
class Recorded:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> list[Recorded]:
    """Every response the local API Gateway sends, headers and body, as the client got it."""
    seen: list[Recorded] = []
    original = ApiGateway.__call__

    def recording(self: ApiGateway, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        meta: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            meta["status"], meta["headers"] = int(status.split()[0]), list(headers)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        body = b"".join(original(self, environ, capture))
        seen.append(Recorded(meta["status"], meta["headers"], body))
        return [body]

    monkeypatch.setattr(ApiGateway, "__call__", recording)
    return seen


# --- local backend, with a small limit ---------------------------------------------------------
@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    limit = 16_000
    monkeypatch.setattr(dists, "MAX_INDEX_FILE_BYTES", limit)
    monkeypatch.setattr(serving, "MAX_INLINE_BYTES", limit)
    return limit


def _local_services(tmp_path: Path, debs: int, description_bytes: int) -> Services:
    _debs(tmp_path / "releases" / "v1", debs, description_bytes)
    UserFile(tmp_path / "state" / "users.json").add(*AUTH)
    settings = Settings.from_env(
        {}, releases_dir=tmp_path / "releases", state_dir=tmp_path / "state", architectures="amd64"
    )
    services = Services(settings, {})
    assert services.indexer.rebuild().changed
    return services


def test_an_index_over_the_limit_is_listed_in_release_but_only_compressed_files_are_served(
    tmp_path: Path, small_limit: int
) -> None:
    services = _local_services(tmp_path, debs=1, description_bytes=20_000)
    store = services.store
    head = store.head()
    assert head is not None
    files = store.list_files(head)
    release = (store.read_file(head, "dists/stable/Release") or b"").decode()
    sha512 = _release_entries(release, "SHA512")
    size, digest = sha512["main/binary-amd64/Packages"]
    assert size > small_limit, "Release lists the uncompressed Packages with its real size"
    assert PACKAGES not in files
    assert f"{FOLDER}/by-hash/SHA512/{digest}" not in files
    for name in ("Packages.xz", "Packages.gz"):
        size, digest = sha512[f"main/binary-amd64/{name}"]
        assert size <= small_limit
        assert f"{FOLDER}/{name}" in files
        assert f"{FOLDER}/by-hash/SHA512/{digest}" in files
    assert not [p for p, s in store.file_sizes(head).items() if p.startswith("dists/") and s > small_limit]
    # A second rebuild over the same releases changes nothing.
    assert not services.indexer.rebuild().changed


def test_an_xz_index_over_the_limit_fails_the_rebuild_and_keeps_the_published_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _local_services(tmp_path, debs=1, description_bytes=2_000)
    head = services.store.head()
    _debs(tmp_path / "releases" / "v2", 1, 50_000)
    monkeypatch.setattr(dists, "MAX_INDEX_FILE_BYTES", 500)
    with pytest.raises(ValueError, match="too many packages for one index"):
        services.indexer.rebuild()
    assert services.store.head() == head


@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_real_apt_reads_the_xz_by_hash_and_nothing_is_redirected(
    tmp_path: Path, small_limit: int, responses: list[Recorded]
) -> None:
    services = _local_services(tmp_path, debs=2, description_bytes=20_000)
    with serve(services) as running:
        assert requests.get(f"{running.url}/{PACKAGES}", auth=AUTH, timeout=10).status_code == 404
        key = tmp_path / "ghapt.asc"
        key.write_text(services.signer.public_key_armored())
        apt = AptClient(tmp_path / "apt")
        apt.add_source(running.url, "stable", key)
        apt.set_auth(auth_entry(running.url, *AUTH))
        res = apt.run("update")
        assert res.returncode == 0, res.output
        assert "E:" not in res.output and "Hash Sum" not in res.output, res.output
        assert any("/by-hash/SHA512/" in p for p in running.paths(200)), running.log
        assert not [p for _, p, s in running.log if p.startswith("/dists/") and 300 <= s < 400]
        assert "big1" in apt.cache("policy", "big1").output
        res = apt.run("download", "big1")
        assert res.returncode == 0, res.output
    assert all(len(r.body) <= small_limit for r in responses if r.status == 200)


def test_serving_refuses_a_large_file_from_its_tree_size_without_reading_it(tmp_path: Path) -> None:
    """Item 3 of issue 9: a 36 MB file once took the function to 206 MB before the size check."""

    class CountingStore(LocalGitStore):
        reads: list[str] = []

        def read_file(self, commit: str, path: str) -> bytes | None:
            self.reads.append(path)
            return super().read_file(commit, path)

    store = CountingStore(tmp_path / "meta.git")
    big = b"x" * (serving.MAX_INLINE_BYTES + 1)
    store.commit_files(None, {PACKAGES: big, "dists/stable/InRelease": b"small\n"}, "an old, too-large index")
    cache = BranchCache(store)
    with pytest.raises(TooLarge):
        serve_dists(cache, "stable/main/binary-amd64/Packages", {})
    with pytest.raises(TooLarge):
        serve_dists(cache, "stable/main/binary-amd64/Packages", {"If-None-Match": "*"})
    assert store.reads == []
    assert serve_dists(cache, "stable/InRelease", {}).body == b"small\n"
    assert store.reads == ["dists/stable/InRelease"]


# --- GitHub backend, a real Packages over 6 MB, the real apt ------------------------------------
META = "acme/apt-meta"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(META)
        yield fake


def _token_leaks(gh: FakeGitHub, responses: list[Recorded]) -> list[str]:
    secrets = {gh.token, *gh.installation_tokens, *gh.tokens}
    leaks = []
    for r in responses:
        text = " ".join(f"{k}: {v}" for k, v in r.headers) + " " + r.body.decode("latin-1")
        for secret in secrets:
            if secret and secret in text:
                leaks.append(f"{r.status}: a GitHub token")
        if "token=" in text or "/raw/" in text or gh.storage_url + "/raw" in text:
            leaks.append(f"{r.status}: a raw download URL")
    return leaks


@pytest.mark.slow
@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_a_packages_file_over_six_megabytes_through_github_reaches_apt_with_no_token(
    tmp_path: Path, gh: FakeGitHub, responses: list[Recorded]
) -> None:
    debs = _debs(tmp_path / "debs", 8, 900_000)
    gh.add_release("acme/big", "v1", [(p.name, p.read_bytes()) for p in debs])
    UserFile(tmp_path / "state" / "users.json").add(*AUTH)
    settings = Settings.from_env(
        {"GITHUB_TOKEN": gh.token},
        backend="github",
        api_url=gh.api_url,
        github_repos=["acme/big"],
        metadata_repo=META,
        state_dir=tmp_path / "state",
        architectures="amd64",
    )
    services = Services(settings, {})
    result = services.indexer.rebuild()
    assert result.changed
    assert result.packages == 8
    files = gh.branch_files(META, "apt-metadata")
    release = files["dists/stable/Release"].decode()
    size, _ = _release_entries(release, "SHA512")["main/binary-amd64/Packages"]
    assert size > LAMBDA_LIMIT, "a real Packages over the Lambda response limit"
    assert PACKAGES not in files
    assert all(len(data) <= MAX_INDEX_FILE_BYTES for p, data in files.items() if p.startswith("dists/"))

    gh.clear_log()
    with serve(services) as running:
        key = tmp_path / "ghapt.asc"
        key.write_text(services.signer.public_key_armored())
        apt = AptClient(tmp_path / "apt")
        apt.add_source(running.url, "stable", key)
        apt.set_auth(auth_entry(running.url, *AUTH))
        res = apt.run("update")
        assert res.returncode == 0, res.output
        assert "E:" not in res.output and "Hash Sum" not in res.output, res.output
        assert "big7" in apt.cache("policy", "big7").output
        assert any("/by-hash/SHA512/" in p for p in running.paths(200)), running.log
        # Even asked for by name, the uncompressed file is refused, never redirected.
        r = requests.get(f"{running.url}/{PACKAGES}", auth=AUTH, allow_redirects=False, timeout=30)
        assert r.status_code == 404
        assert "Location" not in r.headers
        res = apt.run("download", "big3")
        assert res.returncode == 0, res.output
    assert not [p for _, p, s in running.log if p.startswith("/dists/") and 300 <= s < 400]
    assert gh.calls("GET", r"/contents/") == [], "the contents API (and its ?token= URLs) is never used"
    assert responses
    assert _token_leaks(gh, responses) == []
    # The pool's one redirect points at the storage host's signed asset URL, nothing else.
    locations = [v for r in responses for k, v in r.headers if k.lower() == "location"]
    assert locations
    assert all(loc.startswith(f"{gh.storage_url}/github-production-release-asset/") for loc in locations)


def test_a_pool_manifest_over_its_cap_is_a_502_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ghapt.core.errors import UpstreamError
    from ghapt.core.layout import POOL_FILE
    from ghapt.serving import PoolResolver

    reads: list[str] = []

    class CountingStore(LocalGitStore):
        def read_file(self, commit: str, path: str) -> bytes | None:
            reads.append(path)
            return super().read_file(commit, path)

    store = CountingStore(tmp_path / "meta.git")
    store.commit_files(None, {POOL_FILE: b"{}" + b" " * 5000}, "a large manifest")
    monkeypatch.setattr(serving, "MAX_STATE_BYTES", 1000)
    resolver = PoolResolver(BranchCache(store), source=None)  # type: ignore[arg-type]
    with pytest.raises(UpstreamError, match="too large"):
        resolver.resolve("main/h/hello/hello_1.0_all.deb", "https://x")
    assert reads == []
