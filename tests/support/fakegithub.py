"""A fake GitHub over real HTTP: the REST API plus the release-asset storage host.

Why a real server: ghapt's GitHub code is mostly about HTTP details (redirects, headers,
pagination links, status codes), so tests must run the real ``requests`` code paths. This
module starts two threaded HTTP servers on 127.0.0.1 (random ports):

* the **API** (``fake.api_url``, optionally under a GHES-like prefix such as ``/api/v3``), and
* the **storage host** (``fake.storage_url``), a different host:port that the octet-stream asset
  download redirects to, like ``release-assets.githubusercontent.com``.

It speaks GitHub's documented JSON shapes for the endpoints ghapt uses:

=========================================================  ===================================
``GET  /repos/{o}/{r}``                                    repository (``id``, ``full_name``)
``GET  /repos/{o}/{r}/releases``                           ``per_page`` (≤100, default 30) +
``GET  /repositories/{id}/releases``                       ``Link`` to ``/repositories/{id}``
``GET  /repos/{o}/{r}/releases/{id}``, ``…/tags/{tag}``    one release
``GET  /repos/{o}/{r}/releases/assets/{id}``               JSON, or with ``Accept:
                                                           application/octet-stream`` a 302 to
                                                           a signed storage URL (``asset_mode =
                                                           "direct"`` answers 200 with bytes)
``GET  /{o}/{r}/releases/download/{tag}/{name}``           browser URL: 302 to storage
``GET  /repos/{o}/{r}/git/ref/{ref}``                      one ref (404 when missing)
``GET  /repos/{o}/{r}/git/refs/{ref}``                     exact ref, or array of prefix matches
``POST /repos/{o}/{r}/git/refs``                           422 "Reference already exists"
``PATCH /repos/{o}/{r}/git/refs/{ref}``                    422 "Update is not a fast forward"
``DELETE /repos/{o}/{r}/git/refs/{ref}``                   204
``POST /repos/{o}/{r}/git/blobs``, ``GET …/blobs/{sha}``   base64, a newline every 60 chars
``POST /repos/{o}/{r}/git/trees``, ``GET …/trees/{sha}``   ``base_tree``, ``sha: null`` deletes,
                                                           ``recursive``, ``truncated``
``POST /repos/{o}/{r}/git/commits``, ``GET …/{sha}``       real commit objects
``GET  /repos/{o}/{r}/contents/{path}?ref=``              files only; ``object``/``raw`` media
                                                           types; ``download_url`` is a signed,
                                                           expiring URL on the storage host
                                                           (``/raw/...?token=``)
``POST /app/installations/{id}/access_tokens``             verifies the app JWT (RS256)
``GET  /rate_limit``                                       the counters
=========================================================  ===================================

Behaviour that matters for ghapt:

* Git objects are hashed **exactly as git does** (``sha1(b"<type> <len>\\0" + body)``, binary
  tree entries sorted the git way), so ``git hash-object`` agrees and ``export_git`` writes a
  repository the ``git`` binary can read.
* Every API answer carries ``x-ratelimit-*`` headers; JSON GETs carry an ``ETag`` and answer
  ``If-None-Match`` with 304 (which does not count against the limit).
* API requests need ``Authorization: Bearer <token>`` (or ``token <token>``): a known token
  (``fake.tokens``) or an unexpired installation token; anything else is 401.
* The storage host answers **400 when an Authorization header is present**, 403 when the
  signature is wrong or the URL expired (``url_ttl`` seconds, default 300, on ``fake.clock``),
  supports single ``Range`` requests (206 + ``Content-Range``; ``storage_ignores_range = True``
  makes it answer 200 with everything) and counts ``storage_bytes_served``.
* Failures are programmable: ``fail_next``, ``rate_limit_next``, ``secondary_limit_next``,
  ``hang_next`` (accept the request and never answer, until ``release_hangs()`` or ``stop()``);
  ``before_next`` runs a callback just before a matching request is handled (e.g. another
  writer moving the branch between a reader's read and its ref update).
* ``requests_log`` records every request (server, method, path, query, lower-cased headers,
  status) so tests can count calls and assert headers.

Test API (all thread-safe; ``repo`` is ``"OWNER/NAME"``):

* setup: ``add_repo``, ``add_release(repo, tag, assets=[(name, bytes)], prerelease=False,
  draft=False, with_digest=True)`` (returns a ``FakeRelease`` whose ``assets`` have the ids),
  ``add_asset(..., state="starter")``, ``replace_asset``, ``set_release``, ``delete_release``,
  ``delete_asset``, ``add_app(app_id, installation_id) -> private key PEM``; ``tokens`` holds the
  accepted tokens (``token`` is the default one).
* knobs: ``asset_mode``, ``storage_ignores_range``, ``url_ttl``, ``tree_entry_limit``,
  ``require_auth``, ``clock`` (pass ``clock=`` to share a fake clock with the code under test),
  ``latency`` (seconds each request waits; for benchmarks only, tests never wait).
* failures and races: ``fail_next``, ``rate_limit_next``, ``secondary_limit_next``,
  ``before_next(pattern, callback, method=...)``.
* inspection: ``requests_log`` / ``calls(method, pattern, server=...)`` (``LoggedRequest`` has
  ``.json()`` for the body), ``clear_log()``, ``storage_bytes_served``, ``rate_remaining``,
  ``installation_tokens``.
* git: ``branch_head``, ``branch_files``, ``read_branch_file``, ``commit_to_branch`` (another
  writer), ``commit_info``, ``object``, ``export_git(repo, bare_dir)``; module helpers
  ``git_object_sha``, ``git_blob_id``, ``mangle_asset_name``.

Typical use::

    with FakeGitHub() as gh:                     # or FakeGitHub(prefix="/api/v3")
        rel = gh.add_release("acme/tools", "v1.0", assets=[("hello_1.0_all.deb", data)])
        client = GitHubClient(gh.api_url, TokenAuth(gh.token))
        ...
        assert gh.branch_head("acme/meta", "apt-metadata") is not None

Not implemented (ghapt does not use them): uploads, contents API writes and directories, GraphQL,
webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import jwt

from tests.support.keys import fresh_rsa_key, private_pem

DEB_CONTENT_TYPE = "application/vnd.debian.binary-package"
_DOCS = "https://docs.github.com/rest"
_MODES = {"100644", "100755", "120000", "160000", "040000", "40000"}


# --- git object hashing (exactly as git) --------------------------------------------------------
def git_object_sha(kind: str, body: bytes) -> str:
    """The object id git gives ``body`` of type ``kind`` (blob, tree, commit)."""
    return hashlib.sha1(b"%s %d\0" % (kind.encode(), len(body)) + body).hexdigest()


def git_blob_id(data: bytes) -> str:
    return git_object_sha("blob", data)


def _tree_body(entries: Iterable[tuple[str, str, str]]) -> bytes:
    """A git tree object's body from (mode, name, sha); trees sort as if named ``name/``."""

    def key(e: tuple[str, str, str]) -> bytes:
        mode, name, _ = e
        return name.encode() + (b"/" if mode in ("40000", "040000") else b"")

    out = b""
    for mode, name, sha in sorted(entries, key=key):
        out += f"{mode.lstrip('0') if mode.startswith('04') else mode} {name}".encode()
        out += b"\0" + bytes.fromhex(sha)
    return out


def _parse_tree(body: bytes) -> list[tuple[str, str, str]]:
    """(mode, name, sha) entries of a tree body; modes as git writes them (``40000``)."""
    entries = []
    i = 0
    while i < len(body):
        sp = body.index(b" ", i)
        nul = body.index(b"\0", sp)
        mode = body[i:sp].decode()
        name = body[sp + 1 : nul].decode()
        sha = body[nul + 1 : nul + 21].hex()
        entries.append((mode, name, sha))
        i = nul + 21
    return entries


def mangle_asset_name(name: str) -> str:
    """GitHub's renaming of uploaded asset files: ``~ : %`` and spaces become dots."""
    return re.sub(r"[~:% ]", ".", name)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64_lines(data: bytes) -> str:
    """Base64 the way GitHub's blob API sends it: a newline every 60 characters."""
    text = base64.b64encode(data).decode()
    return "".join(text[i : i + 60] + "\n" for i in range(0, len(text), 60))


# --- state ------------------------------------------------------------------------------------
@dataclass
class FakeAsset:
    id: int
    name: str
    data: bytes
    content_type: str
    state: str
    digest: str | None
    created_at: float
    updated_at: float
    download_count: int = 0


@dataclass
class FakeRelease:
    id: int
    tag: str
    draft: bool
    prerelease: bool
    created_at: float
    assets: list[FakeAsset] = field(default_factory=list)

    def asset(self, name: str) -> FakeAsset:
        """The asset called ``name`` (after GitHub's renaming)."""
        for a in self.assets:
            if a.name in (name, mangle_asset_name(name)):
                return a
        raise KeyError(name)


@dataclass
class FakeRepo:
    id: int
    full_name: str
    default_branch: str = "main"
    releases: list[FakeRelease] = field(default_factory=list)
    objects: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeApp:
    app_id: str
    installation_ids: set[str]
    private_key_pem: str
    public_key: Any


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the fake saw it. ``headers`` keys are lower-case."""

    server: str  # "api" or "storage"
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    body: bytes = b""

    def json(self) -> Any:
        """The request body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class _Failure:
    pattern: re.Pattern[str]
    method: str | None
    server: str
    remaining: int
    status: int
    kind: str
    retry_after: float | None
    reset_in: float | None
    message: str | None


@dataclass
class _Hook:
    pattern: re.Pattern[str]
    method: str | None
    server: str
    callback: Callable[[], None]


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def _json_reply(status: int, obj: Any, headers: Mapping[str, str] | None = None) -> _Reply:
    return _Reply(
        status,
        json.dumps(obj).encode(),
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def _error_reply(status: int, message: str, headers: Mapping[str, str] | None = None) -> _Reply:
    return _json_reply(
        status, {"message": message, "documentation_url": _DOCS, "status": str(status)}, headers
    )


# --- the fake -------------------------------------------------------------------------------
class FakeGitHub:
    """A GitHub API + storage host on 127.0.0.1. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        *,
        prefix: str = "",
        token: str = "test-token",  # noqa: S107 - a test credential
        clock: Callable[[], float] = time.time,
        rate_limit: int = 5000,
    ) -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.token = token
        self.tokens: set[str] = {token}
        self.clock = clock
        self.require_auth = True
        # Knobs tests may flip.
        self.asset_mode = "redirect"  # or "direct": answer the octet-stream download with 200
        self.storage_ignores_range = False
        self.url_ttl = 300
        self.tree_entry_limit = 100_000
        self.latency = 0.0  # seconds every request waits before it is handled (benchmarks: a real network)
        self.rate_limit = rate_limit
        self.rate_remaining = rate_limit
        self.rate_reset = int(clock()) + 3600
        # Counters.
        self.storage_bytes_served = 0
        self.installation_tokens: dict[str, float] = {}
        self._lock = threading.RLock()
        self._repos: dict[str, FakeRepo] = {}
        self._apps: dict[str, FakeApp] = {}
        self._log: list[LoggedRequest] = []
        self._failures: list[_Failure] = []
        self._hooks: list[_Hook] = []
        self._ids = {"repo": 100, "release": 1000, "asset": 50000}
        self._secret = secrets.token_bytes(16)
        self._api = _Server(self, "api")
        self._storage = _Server(self, "storage")
        self._threads: list[threading.Thread] = []
        self._hangs_released = threading.Event()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        for server in (self._api, self._storage):
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._hangs_released.set()
        for server in (self._api, self._storage):
            server.shutdown()
            server.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:PORT`` or ``…/api/v3`` with a prefix."""
        return f"http://127.0.0.1:{self._api.server_address[1]}{self.prefix}"

    @property
    def storage_url(self) -> str:
        return f"http://127.0.0.1:{self._storage.server_address[1]}"

    def now(self) -> int:
        return int(self.clock())

    # --- repositories and releases ------------------------------------------------------------
    def add_repo(self, full_name: str, default_branch: str = "main") -> FakeRepo:
        """The repository ``OWNER/NAME``, created if new."""
        with self._lock:
            repo = self._repos.get(full_name.lower())
            if repo is None:
                repo = FakeRepo(self._next("repo"), full_name, default_branch)
                self._repos[full_name.lower()] = repo
            return repo

    def add_release(
        self,
        repo: str,
        tag: str,
        assets: Iterable[tuple[str, bytes]] = (),
        *,
        prerelease: bool = False,
        draft: bool = False,
        with_digest: bool = True,
    ) -> FakeRelease:
        """Publish a release with ``assets`` (name, bytes); names are renamed like GitHub does.

        ``with_digest=False`` gives assets a null ``digest``, like those uploaded before 2025-06."""
        with self._lock:
            r = self.add_repo(repo)
            release = FakeRelease(self._next("release"), tag, draft, prerelease, self.clock())
            r.releases.append(release)
            for name, data in assets:
                self.add_asset(repo, tag, name, data, with_digest=with_digest)
            return release

    def add_asset(
        self,
        repo: str,
        tag: str,
        name: str,
        data: bytes,
        *,
        with_digest: bool = True,
        state: str = "uploaded",
        content_type: str = DEB_CONTENT_TYPE,
    ) -> FakeAsset:
        """Upload one more asset to the release ``tag`` (``state="starter"`` = a failed upload)."""
        with self._lock:
            release = self._release_by_tag(self._repo(repo), tag)
            now = self.clock()
            digest = f"sha256:{hashlib.sha256(data).hexdigest()}" if with_digest else None
            asset = FakeAsset(
                self._next("asset"), mangle_asset_name(name), data, content_type, state, digest, now, now
            )
            release.assets.append(asset)
            return asset

    def replace_asset(self, repo: str, asset_id: int, data: bytes) -> FakeAsset:
        """Change an asset's bytes in place (same id): size, digest and updated_at change."""
        with self._lock:
            _, asset = self._asset(self._repo(repo), asset_id)
            asset.data = data
            asset.updated_at = max(self.clock(), asset.updated_at + 1)
            if asset.digest is not None:
                asset.digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
            return asset

    def set_release(
        self, repo: str, tag: str, *, draft: bool | None = None, prerelease: bool | None = None
    ) -> None:
        """Flip a release's draft/prerelease flags (e.g. publishing a draft)."""
        with self._lock:
            release = self._release_by_tag(self._repo(repo), tag)
            if draft is not None:
                release.draft = draft
            if prerelease is not None:
                release.prerelease = prerelease

    def delete_release(self, repo: str, tag: str) -> None:
        with self._lock:
            r = self._repo(repo)
            r.releases.remove(self._release_by_tag(r, tag))

    def delete_asset(self, repo: str, asset_id: int) -> None:
        with self._lock:
            release, asset = self._asset(self._repo(repo), asset_id)
            release.assets.remove(asset)

    # --- git data helpers for tests --------------------------------------------------------------
    def branch_head(self, repo: str, branch: str) -> str | None:
        with self._lock:
            return self._repo(repo).refs.get(f"refs/heads/{branch}")

    def branch_files(self, repo: str, branch: str) -> dict[str, bytes]:
        """Every file on ``branch`` (path -> bytes); empty when the branch does not exist."""
        with self._lock:
            r = self._repo(repo)
            head = r.refs.get(f"refs/heads/{branch}")
            if head is None:
                return {}
            flat = self._flatten(r, self._commit_tree(r, head))
            return {path: r.objects[sha][1] for path, (_mode, sha) in flat.items()}

    def read_branch_file(self, repo: str, branch: str, path: str) -> bytes | None:
        return self.branch_files(repo, branch).get(path)

    def commit_to_branch(
        self, repo: str, branch: str, changes: Mapping[str, bytes | None], message: str = "other writer"
    ) -> str:
        """Commit directly (as another writer would) on top of the branch; creates it if missing."""
        with self._lock:
            r = self.add_repo(repo)
            ref = f"refs/heads/{branch}"
            head = r.refs.get(ref)
            flat = self._flatten(r, self._commit_tree(r, head)) if head else {}
            for path, data in changes.items():
                if data is None:
                    flat.pop(path, None)
                else:
                    flat[path] = ("100644", self._store(r, "blob", data))
            tree = self._build_tree(r, flat)
            commit = self._make_commit(r, tree, [head] if head else [], message, None, None)
            r.refs[ref] = commit
            return commit

    def commit_info(self, repo: str, sha: str) -> dict[str, Any]:
        """The commit's JSON as ``GET git/commits/{sha}`` returns it."""
        with self._lock:
            return self._commit_json(self._repo(repo), sha)

    def object(self, repo: str, sha: str) -> tuple[str, bytes]:
        """(type, body) of a stored git object."""
        with self._lock:
            return self._repo(repo).objects[sha]

    def export_git(self, repo: str, git_dir: Path) -> None:
        """Write every object and ref as loose files into ``git_dir`` (a bare repository made
        with ``git init --bare``), so the real ``git`` can inspect what the API built."""
        with self._lock:
            r = self._repo(repo)
            for sha, (kind, body) in r.objects.items():
                target = git_dir / "objects" / sha[:2] / sha[2:]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zlib.compress(b"%s %d\0" % (kind.encode(), len(body)) + body))
            for ref, sha in r.refs.items():
                target = git_dir / ref
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(sha + "\n")

    # --- GitHub Apps --------------------------------------------------------------------------
    def add_app(self, app_id: str | int = "12345", installation_id: str | int = "678") -> str:
        """Register a GitHub App with one installation; returns its private key (PEM)."""
        key = fresh_rsa_key(2048)  # unlike the previous Apps' keys
        pem = private_pem(key)
        with self._lock:
            self._apps[str(app_id)] = FakeApp(str(app_id), {str(installation_id)}, pem, key.public_key())
        return pem

    # --- failures, hooks, log -------------------------------------------------------------------
    def fail_next(
        self,
        pattern: str,
        *,
        status: int = 500,
        count: int = 1,
        method: str | None = None,
        server: str = "api",
        kind: str = "error",
        retry_after: float | None = None,
        reset_in: float | None = None,
        message: str | None = None,
    ) -> None:
        """Make the next ``count`` requests whose path matches ``pattern`` (``re.search``) fail.

        ``kind``: ``"error"`` answers ``status`` with a JSON message; ``"rate_limit"`` a 403 (or
        ``status``) with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` in ``reset_in``
        seconds; ``"secondary"`` a 429/403 with ``retry-after``; ``"disconnect"`` closes the
        connection without answering; ``"hang"`` keeps the connection open and never answers
        (until ``release_hangs()`` or ``stop()``). Those change no state. ``"lost_reply"``
        handles the request (state changes) and then answers 502, like a gateway losing the
        answer."""
        with self._lock:
            self._failures.append(
                _Failure(
                    re.compile(pattern), method, server, count, status, kind, retry_after, reset_in, message
                )
            )

    def rate_limit_next(
        self, pattern: str, *, reset_in: float = 30, count: int = 1, status: int = 403
    ) -> None:
        """The primary rate limit: 403 with ``x-ratelimit-remaining: 0`` and a reset time."""
        self.fail_next(pattern, status=status, count=count, kind="rate_limit", reset_in=reset_in)

    def secondary_limit_next(
        self, pattern: str, *, retry_after: float = 5, count: int = 1, status: int = 429
    ) -> None:
        """A secondary rate limit: 429 (or 403) with ``retry-after``."""
        self.fail_next(pattern, status=status, count=count, kind="secondary", retry_after=retry_after)

    def hang_next(
        self, pattern: str, *, count: int = 1, method: str | None = None, server: str = "api"
    ) -> None:
        """The next ``count`` matching requests get no answer at all: the connection stays open."""
        self.fail_next(pattern, count=count, method=method, server=server, kind="hang")

    def release_hangs(self) -> None:
        """Let every hanging request go (their connections close without an answer)."""
        self._hangs_released.set()

    def before_next(
        self, pattern: str, callback: Callable[[], None], *, method: str | None = None, server: str = "api"
    ) -> None:
        """Run ``callback`` once, just before the next matching request is handled."""
        with self._lock:
            self._hooks.append(_Hook(re.compile(pattern), method, server, callback))

    @property
    def requests_log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def calls(
        self, method: str | None = None, pattern: str | None = None, *, server: str = "api"
    ) -> list[LoggedRequest]:
        """Logged requests to ``server`` filtered by method and a path regex."""
        return [
            r
            for r in self.requests_log
            if r.server == server
            and (method is None or r.method == method)
            and (pattern is None or re.search(pattern, r.path))
        ]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
            self.storage_bytes_served = 0

    # --- request dispatch -----------------------------------------------------------------------
    def _handle(
        self, role: str, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> _Reply | None:
        if self.latency > 0:  # outside the lock: concurrent requests wait side by side
            time.sleep(self.latency)
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            for hook in list(self._hooks):
                if hook.server == role and (hook.method in (None, method)) and hook.pattern.search(path):
                    self._hooks.remove(hook)
                    hook.callback()
            reply = self._failure(role, method, path)
            if reply is None or reply.status == -2:
                lost = reply
                if role == "storage":
                    reply = self._storage_request(method, path, query, headers)
                else:
                    reply = self._api_request(method, path, query, headers, body)
                if lost is not None:  # "lost_reply": the work is done, the answer is not
                    reply = _error_reply(502, "Bad Gateway", self._rate_headers())
            status = 0 if reply.status in (-1, -3) else reply.status
            self._log.append(LoggedRequest(role, method, path, query, headers, status, body))
            if role == "storage" and reply.status in (200, 206) and method == "GET":
                self.storage_bytes_served += len(reply.body)
        return None if reply.status == -1 else reply

    def _failure(self, role: str, method: str, path: str) -> _Reply | None:
        for f in self._failures:
            if f.server == role and f.method in (None, method) and f.pattern.search(path):
                f.remaining -= 1
                if f.remaining <= 0:
                    self._failures.remove(f)
                if f.kind == "disconnect":
                    return _Reply(-1)
                if f.kind == "hang":
                    return _Reply(-3)
                if f.kind == "lost_reply":
                    return _Reply(-2)
                if f.kind == "rate_limit":
                    reset = int(self.clock() + (f.reset_in or 60))
                    return _error_reply(
                        f.status if f.status != 500 else 403,
                        f.message or "API rate limit exceeded for installation ID 1.",
                        {
                            **self._rate_headers(),
                            "x-ratelimit-remaining": "0",
                            "x-ratelimit-reset": str(reset),
                        },
                    )
                if f.kind == "secondary":
                    return _error_reply(
                        f.status if f.status != 500 else 429,
                        f.message or "You have exceeded a secondary rate limit. Please wait a few minutes.",
                        {**self._rate_headers(), "retry-after": str(int(f.retry_after or 60))},
                    )
                return _error_reply(f.status, f.message or "Server Error", self._rate_headers())
        return None

    def _rate_headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(max(self.rate_remaining, 0)),
            "x-ratelimit-used": str(self.rate_limit - max(self.rate_remaining, 0)),
            "x-ratelimit-reset": str(self.rate_reset),
            "x-ratelimit-resource": "core",
        }

    def _api_request(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Reply:
        try:
            if self.prefix and not (path == self.prefix or path.startswith(self.prefix + "/")):
                raise _ApiError(404, "Not Found")
            route = path[len(self.prefix) :] or "/"
            m = re.fullmatch(r"/app/installations/(\d+)/access_tokens", route)
            if m and method == "POST":
                reply = self._exchange_token(m.group(1), headers)
            else:
                self._check_token(headers)
                reply = self._route(method, route, query, headers, body)
        except _ApiError as exc:
            reply = _error_reply(exc.status, exc.message, exc.headers)
        if (
            method == "GET"
            and reply.status == 200
            and reply.headers.get("Content-Type", "").startswith("application/json")
        ):
            etag = 'W/"' + hashlib.sha256(reply.body).hexdigest()[:40] + '"'
            reply.headers["ETag"] = etag
            if etag in [t.strip() for t in headers.get("if-none-match", "").split(",")]:
                reply = _Reply(304, b"", {"ETag": etag})
        if reply.status != 304:
            self.rate_remaining -= 1
        reply.headers.update({k: v for k, v in self._rate_headers().items() if k not in reply.headers})
        return reply

    def _check_token(self, headers: Mapping[str, str]) -> None:
        if not self.require_auth:
            return
        value = headers.get("authorization", "")
        if not value:
            raise _ApiError(401, "Requires authentication")
        scheme, _, token = value.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            raise _ApiError(401, "Bad credentials")
        if token in self.tokens:
            return
        expires = self.installation_tokens.get(token)
        if expires is not None and expires > self.clock():
            return
        raise _ApiError(401, "Bad credentials")

    def _exchange_token(self, installation_id: str, headers: Mapping[str, str]) -> _Reply:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _ApiError(401, "A JSON web token could not be decoded")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _ApiError(401, "A JSON web token could not be decoded") from None
        app = self._apps.get(str(unverified.get("iss")))
        if app is None:
            raise _ApiError(401, "'Issuer' claim ('iss') must be an Integer")
        try:
            claims = jwt.decode(
                token,
                app.public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_iss": False},
            )
        except jwt.PyJWTError:
            raise _ApiError(401, "A JSON web token could not be decoded") from None
        now = self.clock()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or exp <= now:
            raise _ApiError(401, "'Expiration time' claim ('exp') must be a numeric value in the future")
        if exp > now + 600:
            raise _ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
        if not isinstance(iat, int) or iat > now + 60:
            raise _ApiError(401, "'Issued at' claim ('iat') must be an Integer in the past")
        if installation_id not in app.installation_ids:
            raise _ApiError(404, "Not Found")
        token_value = "ghs_" + secrets.token_hex(18)
        expires_at = int(now) + 3600
        self.installation_tokens[token_value] = expires_at
        return _json_reply(
            201,
            {
                "token": token_value,
                "expires_at": _iso(expires_at),
                "permissions": {"contents": "write", "metadata": "read"},
                "repository_selection": "all",
            },
        )

    def _route(
        self, method: str, route: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Reply:
        if route == "/rate_limit" and method == "GET":
            core = {"limit": self.rate_limit, "remaining": self.rate_remaining, "reset": self.rate_reset}
            return _json_reply(200, {"resources": {"core": core}, "rate": core})
        m = re.fullmatch(r"/repositories/(\d+)(/.*)?", route)
        if m:
            repo = self._repo_by_id(int(m.group(1)))
            return self._repo_route(repo, method, m.group(2) or "", query, headers, body)
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", route)
        if m:
            repo = self._repo(m.group(1))
            return self._repo_route(repo, method, m.group(2) or "", query, headers, body)
        m = re.fullmatch(r"/([^/]+/[^/]+)/releases/download/([^/]+)/([^/]+)", route)
        if m and method == "GET":
            repo = self._repo(m.group(1))
            release = self._release_by_tag(repo, m.group(2))
            for asset in release.assets:
                if asset.name == m.group(3):
                    return _Reply(302, b"", {"Location": self._signed_url(repo, asset)})
        raise _ApiError(404, "Not Found")

    def _repo_route(
        self,
        repo: FakeRepo,
        method: str,
        sub: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> _Reply:
        base = self._repo_api(repo)
        if sub == "" and method == "GET":
            return _json_reply(
                200,
                {
                    "id": repo.id,
                    "full_name": repo.full_name,
                    "name": repo.full_name.split("/")[1],
                    "private": True,
                    "default_branch": repo.default_branch,
                    "url": base,
                },
            )
        if sub == "/releases" and method == "GET":
            return self._list_releases(repo, query)
        m = re.fullmatch(r"/releases/(\d+)", sub)
        if m and method == "GET":
            for release in repo.releases:
                if release.id == int(m.group(1)):
                    return _json_reply(200, self._release_json(repo, release))
            raise _ApiError(404, "Not Found")
        m = re.fullmatch(r"/releases/tags/(.+)", sub)
        if m and method == "GET":
            release = self._release_by_tag(repo, m.group(1))
            if release.draft:
                raise _ApiError(404, "Not Found")
            return _json_reply(200, self._release_json(repo, release))
        m = re.fullmatch(r"/releases/assets/(\d+)", sub)
        if m and method == "GET":
            _, asset = self._asset(repo, int(m.group(1)))
            if "application/octet-stream" in headers.get("accept", ""):
                if self.asset_mode == "direct":
                    asset.download_count += 1
                    return _Reply(200, asset.data, {"Content-Type": "application/octet-stream"})
                return _Reply(302, b"", {"Location": self._signed_url(repo, asset)})
            return _json_reply(200, self._asset_json(repo, asset))
        if sub.startswith("/git/"):
            return self._git_route(repo, method, sub[len("/git") :], query, headers, body)
        if sub.startswith("/contents/") and method == "GET":
            return self._contents(repo, unquote(sub[len("/contents/") :]), query, headers)
        raise _ApiError(404, "Not Found")

    # --- contents API (files only): the object media type and a raw download_url --------------
    def _contents(self, repo: FakeRepo, path: str, query: dict[str, str], headers: dict[str, str]) -> _Reply:
        ref = query.get("ref") or repo.default_branch
        files = self._flatten(repo, self._resolve_tree(repo, ref))
        if path not in files:
            raise _ApiError(404, "Not Found")
        sha = files[path][1]
        data = repo.objects[sha][1]
        if "raw" in headers.get("accept", ""):
            return _Reply(200, data, {"Content-Type": "application/vnd.github.raw"})
        large = len(data) > 1024 * 1024
        if large and "object" not in headers.get("accept", ""):
            raise _ApiError(403, "This API returns blobs up to 1 MB in size. Use the object media type.")
        expires = self.now() + self.url_ttl
        token = hmac.new(self._secret, f"raw/{repo.id}/{ref}/{path}/{expires}".encode(), "sha256").hexdigest()
        download = f"{self.storage_url}/raw/{repo.id}/{quote(ref)}/{quote(path)}?" + urlencode(
            {"token": f"{expires}.{token}"}
        )
        return _json_reply(
            200,
            {
                "type": "file",
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "sha": sha,
                "size": len(data),
                "encoding": "none" if large else "base64",
                "content": "" if large else _b64_lines(data),
                "download_url": download,
            },
        )

    def _raw_request(self, path: str, query: dict[str, str]) -> _Reply:
        m = re.fullmatch(r"/raw/(\d+)/([^/]+)/(.+)", path)
        if not m:
            return _Reply(404, b"404: Not Found")
        repo_id, ref, file_path = int(m.group(1)), unquote(m.group(2)), unquote(m.group(3))
        expires_text, _, token = query.get("token", "").partition(".")
        expires = int(expires_text) if expires_text.isdigit() else 0
        want = hmac.new(self._secret, f"raw/{repo_id}/{ref}/{file_path}/{expires}".encode(), "sha256")
        if not hmac.compare_digest(token, want.hexdigest()) or expires < self.clock():
            return _Reply(404, b"404: Not Found")
        repo = self._repo_by_id(repo_id)
        files = self._flatten(repo, self._resolve_tree(repo, ref))
        data = repo.objects[files[file_path][1]][1]
        return _Reply(200, data, {"Content-Type": "text/plain; charset=utf-8"})

    # --- releases -------------------------------------------------------------------------------
    def _list_releases(self, repo: FakeRepo, query: dict[str, str]) -> _Reply:
        try:
            per_page = min(max(int(query.get("per_page", "30")), 1), 100)
            page = max(int(query.get("page", "1")), 1)
        except ValueError:
            raise _ApiError(400, "Invalid pagination parameter") from None
        releases = sorted(repo.releases, key=lambda r: r.id, reverse=True)
        pages = max((len(releases) + per_page - 1) // per_page, 1)
        chunk = releases[(page - 1) * per_page : page * per_page]
        link_base = f"{self.api_url}/repositories/{repo.id}/releases"

        def link(n: int, rel: str) -> str:
            return f'<{link_base}?{urlencode({"per_page": per_page, "page": n})}>; rel="{rel}"'

        links = []
        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < pages:
            links += [link(page + 1, "next"), link(pages, "last")]
        extra = {"Link": ", ".join(links)} if links else {}
        return _json_reply(200, [self._release_json(repo, r) for r in chunk], extra)

    def _repo_api(self, repo: FakeRepo) -> str:
        return f"{self.api_url}/repos/{repo.full_name}"

    def _release_json(self, repo: FakeRepo, release: FakeRelease) -> dict[str, Any]:
        base = self._repo_api(repo)
        return {
            "url": f"{base}/releases/{release.id}",
            "html_url": f"https://github.invalid/{repo.full_name}/releases/tag/{quote(release.tag)}",
            "assets_url": f"{base}/releases/{release.id}/assets",
            "upload_url": f"https://uploads.github.invalid/repos/{repo.full_name}/releases/{release.id}/assets{{?name,label}}",
            "tarball_url": f"{base}/tarball/{quote(release.tag)}",
            "zipball_url": f"{base}/zipball/{quote(release.tag)}",
            "id": release.id,
            "node_id": base64.b64encode(f"RE_{release.id}".encode()).decode(),
            "tag_name": release.tag,
            "target_commitish": repo.default_branch,
            "name": release.tag,
            "body": "",
            "draft": release.draft,
            "prerelease": release.prerelease,
            "created_at": _iso(release.created_at),
            "published_at": None if release.draft else _iso(release.created_at),
            "author": {"login": "octocat", "id": 1, "type": "User"},
            "assets": [self._asset_json(repo, a) for a in release.assets],
        }

    def _asset_json(self, repo: FakeRepo, asset: FakeAsset) -> dict[str, Any]:
        release, _ = self._asset(repo, asset.id)
        return {
            "url": f"{self._repo_api(repo)}/releases/assets/{asset.id}",
            "browser_download_url": f"{self.api_url}/{repo.full_name}/releases/download/"
            f"{quote(release.tag)}/{quote(asset.name)}",
            "id": asset.id,
            "node_id": base64.b64encode(f"RA_{asset.id}".encode()).decode(),
            "name": asset.name,
            "label": "",
            "uploader": {"login": "octocat", "id": 1, "type": "User"},
            "content_type": asset.content_type,
            "state": asset.state,
            "size": len(asset.data),
            "digest": asset.digest,
            "download_count": asset.download_count,
            "created_at": _iso(asset.created_at),
            "updated_at": _iso(asset.updated_at),
        }

    # --- storage host -----------------------------------------------------------------------------
    def _signed_url(self, repo: FakeRepo, asset: FakeAsset) -> str:
        expires = self.now() + self.url_ttl
        sig = self._sign(repo.id, asset.id, expires)
        q = urlencode({"se": expires, "sig": sig, "rscd": f"attachment; filename={asset.name}"})
        return f"{self.storage_url}/github-production-release-asset/{repo.id}/{asset.id}?{q}"

    def _sign(self, repo_id: int, asset_id: int, expires: int) -> str:
        return hmac.new(self._secret, f"{repo_id}/{asset_id}/{expires}".encode(), "sha256").hexdigest()

    def _storage_request(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> _Reply:
        xml = {"Content-Type": "application/xml"}
        if "authorization" in headers:
            return _Reply(
                400,
                b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; "
                b"only the X-Amz-Algorithm query parameter, Signature query string parameter or the "
                b"Authorization header should be specified</Message></Error>",
                xml,
            )
        if path.startswith("/raw/") and method == "GET":
            return self._raw_request(path, query)
        m = re.fullmatch(r"/github-production-release-asset/(\d+)/(\d+)", path)
        if not m or method != "GET":
            return _Reply(404, b"<Error><Code>NotFound</Code></Error>", xml)
        repo_id, asset_id = int(m.group(1)), int(m.group(2))
        try:
            expires = int(query.get("se", ""))
        except ValueError:
            expires = 0
        if not hmac.compare_digest(query.get("sig", ""), self._sign(repo_id, asset_id, expires)):
            return _Reply(403, b"<Error><Code>AuthenticationFailed</Code></Error>", xml)
        if expires < self.clock():
            return _Reply(
                403, b"<Error><Code>AuthenticationFailed</Code><Message>expired</Message></Error>", xml
            )
        try:
            _, asset = self._asset(self._repo_by_id(repo_id), asset_id)
        except _ApiError:
            return _Reply(404, b"<Error><Code>BlobNotFound</Code></Error>", xml)
        data = asset.data
        size = len(data)
        base_headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": '"0x' + hashlib.md5(data).hexdigest()[:16].upper() + '"',
        }
        rng = headers.get("range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if m and not self.storage_ignores_range and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(size - int(m.group(2)), 0), size - 1
            if start >= size or end < start:
                return _Reply(416, b"", {**base_headers, "Content-Range": f"bytes */{size}"})
            return _Reply(
                206, data[start : end + 1], {**base_headers, "Content-Range": f"bytes {start}-{end}/{size}"}
            )
        asset.download_count += 1
        return _Reply(200, data, base_headers)

    # --- git data -----------------------------------------------------------------------------------
    def _git_route(
        self,
        repo: FakeRepo,
        method: str,
        sub: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> _Reply:
        data = self._json_body(body) if method in ("POST", "PATCH") else {}
        m = re.fullmatch(r"/ref/(.+)", sub)
        if m and method == "GET":
            ref = "refs/" + m.group(1)
            if ref not in repo.refs:
                raise _ApiError(404, "Not Found")
            return _json_reply(200, self._ref_json(repo, ref))
        m = re.fullmatch(r"/refs/(.+)", sub)
        if m:
            ref = "refs/" + m.group(1)
            if method == "GET":
                if ref in repo.refs:
                    return _json_reply(200, self._ref_json(repo, ref))
                matches = [r for r in sorted(repo.refs) if r.startswith(ref)]
                if not matches:
                    raise _ApiError(404, "Not Found")
                return _json_reply(200, [self._ref_json(repo, r) for r in matches])
            if method == "PATCH":
                return self._update_ref(repo, ref, data)
            if method == "DELETE":
                if ref not in repo.refs:
                    raise _ApiError(422, "Reference does not exist")
                del repo.refs[ref]
                return _Reply(204)
        if sub == "/refs" and method == "POST":
            return self._create_ref(repo, data)
        if sub == "/blobs" and method == "POST":
            return self._create_blob(repo, data)
        m = re.fullmatch(r"/blobs/([0-9a-f]{40})", sub)
        if m and method == "GET":
            kind, content = repo.objects.get(m.group(1), ("", b""))
            if kind != "blob":
                raise _ApiError(404, "Not Found")
            if "application/vnd.github.raw" in headers.get("accept", ""):
                return _Reply(200, content, {"Content-Type": "application/vnd.github.raw"})
            return _json_reply(
                200,
                {
                    "sha": m.group(1),
                    "node_id": base64.b64encode(f"B_{m.group(1)}".encode()).decode(),
                    "size": len(content),
                    "url": f"{self._repo_api(repo)}/git/blobs/{m.group(1)}",
                    "content": _b64_lines(content),
                    "encoding": "base64",
                },
            )
        if sub == "/trees" and method == "POST":
            return self._create_tree(repo, data)
        m = re.fullmatch(r"/trees/(.+)", sub)
        if m and method == "GET":
            tree = self._resolve_tree(repo, m.group(1))
            recursive = "recursive" in query
            return _json_reply(200, self._tree_json(repo, tree, recursive))
        if sub == "/commits" and method == "POST":
            return self._create_commit(repo, data)
        m = re.fullmatch(r"/commits/([0-9a-f]{40})", sub)
        if m and method == "GET":
            if repo.objects.get(m.group(1), ("",))[0] != "commit":
                raise _ApiError(404, "Not Found")
            return _json_reply(200, self._commit_json(repo, m.group(1)))
        raise _ApiError(404, "Not Found")

    @staticmethod
    def _json_body(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise _ApiError(400, "Problems parsing JSON") from None
        if not isinstance(data, dict):
            raise _ApiError(400, "Problems parsing JSON")
        return data

    def _ref_json(self, repo: FakeRepo, ref: str) -> dict[str, Any]:
        sha = repo.refs[ref]
        return {
            "ref": ref,
            "node_id": base64.b64encode(f"REF_{ref}".encode()).decode(),
            "url": f"{self._repo_api(repo)}/git/{ref}",
            "object": {
                "sha": sha,
                "type": repo.objects[sha][0],
                "url": f"{self._repo_api(repo)}/git/commits/{sha}",
            },
        }

    def _create_ref(self, repo: FakeRepo, data: dict[str, Any]) -> _Reply:
        ref, sha = data.get("ref"), data.get("sha")
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise _ApiError(422, "Reference name is invalid")
        if not isinstance(sha, str) or sha not in repo.objects:
            raise _ApiError(422, "Object does not exist")
        if ref in repo.refs:
            raise _ApiError(422, "Reference already exists")
        repo.refs[ref] = sha
        return _json_reply(201, self._ref_json(repo, ref))

    def _update_ref(self, repo: FakeRepo, ref: str, data: dict[str, Any]) -> _Reply:
        sha = data.get("sha")
        if ref not in repo.refs:
            raise _ApiError(422, "Reference does not exist")
        if not isinstance(sha, str) or repo.objects.get(sha, ("",))[0] != "commit":
            raise _ApiError(422, "Object does not exist")
        current = repo.refs[ref]
        if not data.get("force") and current != sha and not self._is_ancestor(repo, current, sha):
            raise _ApiError(422, "Update is not a fast forward")
        repo.refs[ref] = sha
        return _json_reply(200, self._ref_json(repo, ref))

    def _is_ancestor(self, repo: FakeRepo, ancestor: str, commit: str) -> bool:
        todo, seen = [commit], set()
        while todo:
            c = todo.pop()
            if c == ancestor:
                return True
            if c in seen:
                continue
            seen.add(c)
            todo.extend(self._commit_fields(repo, c)["parents"])
        return False

    def _create_blob(self, repo: FakeRepo, data: dict[str, Any]) -> _Reply:
        content, encoding = data.get("content"), data.get("encoding", "utf-8")
        if not isinstance(content, str):
            raise _ApiError(422, 'Invalid request.\n\n"content" wasn\'t supplied.')
        if encoding == "base64":
            try:
                raw = base64.b64decode(content, validate=False)
            except ValueError:
                raise _ApiError(422, "Invalid base64 content") from None
        elif encoding in ("utf-8", "utf8"):
            raw = content.encode()
        else:
            raise _ApiError(422, f"encoding {encoding!r} is not supported")
        sha = self._store(repo, "blob", raw)
        return _json_reply(201, {"sha": sha, "url": f"{self._repo_api(repo)}/git/blobs/{sha}"})

    def _create_tree(self, repo: FakeRepo, data: dict[str, Any]) -> _Reply:
        entries = data.get("tree")
        if not isinstance(entries, list):
            raise _ApiError(422, "Invalid tree info")
        base = data.get("base_tree")
        flat: dict[str, tuple[str, str]] = {}
        if base is not None:
            if repo.objects.get(str(base), ("",))[0] != "tree":
                raise _ApiError(422, "base_tree is not a valid tree oid")
            flat = self._flatten(repo, str(base))
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise _ApiError(422, "Invalid tree info")
            path = entry["path"]
            parts = path.split("/")
            if not path or any(p in ("", ".", "..", ".git") for p in parts):
                raise _ApiError(422, f"tree.path contains a malformed path component: {path!r}")
            mode = str(entry.get("mode", "100644"))
            if mode not in _MODES:
                raise _ApiError(422, f"tree.mode {mode!r} is invalid")
            if "content" in entry and entry["content"] is not None:
                flat = {p: v for p, v in flat.items() if not p.startswith(path + "/")}
                flat[path] = (mode, self._store(repo, "blob", str(entry["content"]).encode()))
            elif "sha" in entry and entry["sha"] is None:
                under = [p for p in flat if p == path or p.startswith(path + "/")]
                if not under:
                    raise _ApiError(422, f"Could not delete nonexistent path {path!r}")
                for p in under:
                    del flat[p]
            else:
                sha = str(entry.get("sha"))
                kind = repo.objects.get(sha, ("",))[0]
                etype = entry.get("type", "blob")
                if etype == "tree" or mode in ("040000", "40000"):
                    if kind != "tree":
                        raise _ApiError(422, f"tree.sha {sha} is not a valid tree")
                    flat = {p: v for p, v in flat.items() if p != path and not p.startswith(path + "/")}
                    for sub, value in self._flatten(repo, sha).items():
                        flat[f"{path}/{sub}"] = value
                elif mode == "160000":
                    flat[path] = (mode, sha)
                else:
                    if kind != "blob":
                        raise _ApiError(422, f"tree.sha {sha} is not a valid blob")
                    flat = {p: v for p, v in flat.items() if not p.startswith(path + "/")}
                    flat[path] = (mode, sha)
        for p in flat:
            parents = p.split("/")
            for i in range(1, len(parents)):
                if "/".join(parents[:i]) in flat:
                    raise _ApiError(422, f"tree entry {p!r} conflicts with a file")
        tree = self._build_tree(repo, flat)
        return _json_reply(201, self._tree_json(repo, tree, recursive=False))

    def _create_commit(self, repo: FakeRepo, data: dict[str, Any]) -> _Reply:
        tree, parents, message = data.get("tree"), data.get("parents", []), data.get("message")
        if not isinstance(message, str):
            raise _ApiError(422, 'Invalid request.\n\n"message" wasn\'t supplied.')
        if repo.objects.get(str(tree), ("",))[0] != "tree":
            raise _ApiError(422, "Tree SHA does not exist")
        if not isinstance(parents, list) or any(
            repo.objects.get(str(p), ("",))[0] != "commit" for p in parents
        ):
            raise _ApiError(422, "Parent SHA does not exist or is not a commit object")
        sha = self._make_commit(
            repo, str(tree), [str(p) for p in parents], message, data.get("author"), data.get("committer")
        )
        return _json_reply(201, self._commit_json(repo, sha))

    # --- git plumbing ---------------------------------------------------------------------------------
    def _store(self, repo: FakeRepo, kind: str, body: bytes) -> str:
        sha = git_object_sha(kind, body)
        repo.objects[sha] = (kind, body)
        return sha

    def _build_tree(self, repo: FakeRepo, flat: Mapping[str, tuple[str, str]]) -> str:
        """Store the trees for ``flat`` (path -> (mode, sha)) and return the root tree's id."""
        files: dict[str, tuple[str, str]] = {}
        dirs: dict[str, dict[str, tuple[str, str]]] = {}
        for path, value in flat.items():
            head, sep, rest = path.partition("/")
            if sep:
                dirs.setdefault(head, {})[rest] = value
            else:
                files[head] = value
        entries = [(mode, name, sha) for name, (mode, sha) in files.items()]
        entries += [("40000", name, self._build_tree(repo, sub)) for name, sub in dirs.items()]
        return self._store(repo, "tree", _tree_body(entries))

    def _flatten(self, repo: FakeRepo, tree: str, prefix: str = "") -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        for mode, name, sha in _parse_tree(repo.objects[tree][1]):
            if mode == "40000":
                out.update(self._flatten(repo, sha, f"{prefix}{name}/"))
            else:
                out[f"{prefix}{name}"] = (mode, sha)
        return out

    def _resolve_tree(self, repo: FakeRepo, ident: str) -> str:
        if ident in repo.refs.values() or f"refs/heads/{ident}" in repo.refs:
            ident = repo.refs.get(f"refs/heads/{ident}", ident)
        kind = repo.objects.get(ident, ("",))[0]
        if kind == "commit":
            return self._commit_tree(repo, ident)
        if kind != "tree":
            raise _ApiError(404, "Not Found")
        return ident

    def _tree_json(self, repo: FakeRepo, tree: str, recursive: bool) -> dict[str, Any]:
        items: list[dict[str, Any]] = []

        def walk(sha: str, prefix: str) -> None:
            for mode, name, child in sorted(
                _parse_tree(repo.objects[sha][1]), key=lambda e: e[1] + ("/" if e[0] == "40000" else "")
            ):
                path = prefix + name
                if mode == "40000":
                    items.append(
                        {
                            "path": path,
                            "mode": "040000",
                            "type": "tree",
                            "sha": child,
                            "url": f"{self._repo_api(repo)}/git/trees/{child}",
                        }
                    )
                    if recursive:
                        walk(child, path + "/")
                elif mode == "160000":
                    items.append({"path": path, "mode": mode, "type": "commit", "sha": child})
                else:
                    items.append(
                        {
                            "path": path,
                            "mode": mode,
                            "type": "blob",
                            "sha": child,
                            "size": len(repo.objects[child][1]),
                            "url": f"{self._repo_api(repo)}/git/blobs/{child}",
                        }
                    )

        walk(tree, "")
        truncated = len(items) > self.tree_entry_limit
        return {
            "sha": tree,
            "url": f"{self._repo_api(repo)}/git/trees/{tree}",
            "tree": items[: self.tree_entry_limit],
            "truncated": truncated,
        }

    def _make_commit(
        self, repo: FakeRepo, tree: str, parents: list[str], message: str, author: Any, committer: Any
    ) -> str:
        now = self.now()

        def ident(who: Any) -> str:
            who = who if isinstance(who, dict) else {}
            name = who.get("name", "ghapt-fake")
            email = who.get("email", "fake@github.invalid")
            when = (
                int(datetime.fromisoformat(who["date"].replace("Z", "+00:00")).timestamp())
                if who.get("date")
                else now
            )
            return f"{name} <{email}> {when} +0000"

        lines = [
            f"tree {tree}",
            *(f"parent {p}" for p in parents),
            f"author {ident(author)}",
            f"committer {ident(committer or author)}",
        ]
        body = ("\n".join(lines) + "\n\n" + message).encode()
        return self._store(repo, "commit", body)

    def _commit_fields(self, repo: FakeRepo, sha: str) -> dict[str, Any]:
        header, _, message = repo.objects[sha][1].decode().partition("\n\n")
        out: dict[str, Any] = {"parents": [], "message": message}
        for line in header.split("\n"):
            key, _, value = line.partition(" ")
            if key == "parent":
                out["parents"].append(value)
            elif key in ("author", "committer"):
                m = re.fullmatch(r"(.*) <(.*)> (\d+) ([+-]\d{4})", value)
                assert m
                out[key] = {"name": m.group(1), "email": m.group(2), "date": _iso(int(m.group(3)))}
            else:
                out[key] = value
        return out

    def _commit_tree(self, repo: FakeRepo, commit: str) -> str:
        return str(self._commit_fields(repo, commit)["tree"])

    def _commit_json(self, repo: FakeRepo, sha: str) -> dict[str, Any]:
        f = self._commit_fields(repo, sha)
        base = self._repo_api(repo)
        return {
            "sha": sha,
            "node_id": base64.b64encode(f"C_{sha}".encode()).decode(),
            "url": f"{base}/git/commits/{sha}",
            "html_url": f"https://github.invalid/{repo.full_name}/commit/{sha}",
            "author": f["author"],
            "committer": f["committer"],
            "tree": {"sha": f["tree"], "url": f"{base}/git/trees/{f['tree']}"},
            "message": f["message"],
            "parents": [{"sha": p, "url": f"{base}/git/commits/{p}"} for p in f["parents"]],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
        }

    # --- lookups ------------------------------------------------------------------------------------
    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _repo(self, full_name: str) -> FakeRepo:
        repo = self._repos.get(full_name.lower())
        if repo is None:
            raise _ApiError(404, "Not Found")
        return repo

    def _repo_by_id(self, repo_id: int) -> FakeRepo:
        for repo in self._repos.values():
            if repo.id == repo_id:
                return repo
        raise _ApiError(404, "Not Found")

    @staticmethod
    def _release_by_tag(repo: FakeRepo, tag: str) -> FakeRelease:
        for release in repo.releases:
            if release.tag == tag:
                return release
        raise _ApiError(404, "Not Found")

    @staticmethod
    def _asset(repo: FakeRepo, asset_id: int) -> tuple[FakeRelease, FakeAsset]:
        for release in repo.releases:
            for asset in release.assets:
                if asset.id == asset_id:
                    return release, asset
        raise _ApiError(404, "Not Found")


# --- HTTP plumbing ------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeGitHub, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self.role = role

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up early (a closed stream, a 200 to a Range) are normal here."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK add
        # ~40 ms to every request on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.fake._handle(self.server.role, method, self.path, headers, body)
        if reply is not None and reply.status == -3:  # programmed hang: no answer, ever
            self.server.fake._hangs_released.wait(timeout=60)
            reply = None
        if reply is None:  # programmed disconnect
            self.close_connection = True
            return
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        view = memoryview(reply.body)
        for i in range(0, len(view), 1 << 16):
            self.wfile.write(view[i : i + (1 << 16)])

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests_log`` instead."""
