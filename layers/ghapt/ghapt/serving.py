"""Serving the branch: dists files (cached, conditional) and pool redirects.

A warm container keeps the files it has served, keyed by content (git blob id), and checks
the branch head at most every ``ttl`` seconds, so a steady stream of ``apt update`` costs
the store one (conditional) head lookup per window and nothing else.

Every size is known from the tree listing before anything is read, so a file too large for a
Lambda response is refused without being downloaded, and nothing is ever answered with a
redirect to the store (for a private GitHub repository such URLs carry a token minted for our
own credential). The indexer does not commit such files: like Debian's archives, an index too
large to serve uncompressed is listed in Release but served only as ``.xz``/``.gz``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from functools import cached_property
from typing import Any
from urllib.parse import unquote

from ghapt.core.errors import BadRequest, NotFound, UpstreamError
from ghapt.core.layout import MAX_INDEX_FILE_BYTES, POOL_FILE
from ghapt.core.ports import MetadataStore, ReleaseSource

# A Lambda response is at most 6 MB and base64 inflates by a third: nothing larger is served.
MAX_INLINE_BYTES = MAX_INDEX_FILE_BYTES
# The pool manifest is read and parsed whole (parsed, it takes about six times its size): past
# this (about 40,000 packages) the pool answers 502 rather than run a 128 MB function out of
# memory. Measured: a 10,000-package manifest (3 MB) adds 18 MB to the pool function's peak.
MAX_STATE_BYTES = 12 * 1024 * 1024
POOL_URL_TTL = 60.0  # GitHub's storage URLs live ~5 minutes; hand out ones with most of it left
BLOB_CACHE_BYTES = 64 * 1024 * 1024


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # ``body`` in base64, as a Lambda response carries it, when the branch cache already has it.
    body_base64: str | None = None


@dataclass(frozen=True)
class Snapshot:
    commit: str
    time: int
    files: Mapping[str, str]  # path -> blob id
    sizes: Mapping[str, int]  # path -> bytes, from the tree listing

    @cached_property
    def last_modified(self) -> str:
        """``time`` as an HTTP date, formatted once per snapshot rather than once per request."""
        return http_date(self.time)


class _Blob:
    """A cached file's bytes, and their base64 text once a response has needed it."""

    __slots__ = ("data", "encoded")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.encoded: str | None = None

    @property
    def cost(self) -> int:
        return len(self.data) + len(self.encoded or "")


class BranchCache:
    """The branch's current snapshot and file contents, refreshed at most every ``ttl`` seconds.

    Contents are kept by git blob id, so they never go stale: a new commit names new blobs. The
    base64 text of a blob (what a Lambda response carries) is kept beside its bytes, so a file
    served again is not encoded again; both count towards ``max_bytes`` (least recently used
    first out)."""

    def __init__(
        self,
        store: MetadataStore,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = BLOB_CACHE_BYTES,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.max_bytes = max_bytes
        self._snapshot: Snapshot | None = None
        self._checked = float("-inf")
        self._blobs: OrderedDict[str, _Blob] = OrderedDict()
        self._blob_bytes = 0
        self._parsed: tuple[tuple[str, str], Any] | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        """The current snapshot. With ``ttl`` 0 (a local store, whose head is a ``stat``) every
        call checks the head, without waiting for other threads: holding the lock across that
        system call would line every request up behind it. Otherwise one thread at a time asks
        the store, once per ``ttl``; the others wait for its answer instead of asking again."""
        if self.ttl <= 0:
            current = self._snapshot  # one read: another thread may replace it meanwhile
            if current is not None and current.commit == self.store.head():
                return current
        with self._lock:
            now = self.clock()
            if self._snapshot is None or self.ttl <= 0 or now - self._checked >= self.ttl:
                # Asked again under the lock: a thread that read an older head first never
                # puts it back over a newer one.
                self._refresh_locked(self.store.head(), now)
            assert self._snapshot is not None
            return self._snapshot

    def _refresh_locked(self, head: str | None, now: float) -> None:
        """Take ``head`` as the branch's head (the lock is held): list its tree if it is new."""
        self._checked = now
        if head is None:
            raise NotFound("the repository has no index yet: run a rebuild")
        if self._snapshot is None or self._snapshot.commit != head:
            self._snapshot = Snapshot(
                head,
                self.store.commit_time(head),
                self.store.list_files(head),
                self.store.file_sizes(head),
            )

    def invalidate(self) -> None:
        """Look at the head again on the next request (after a local rebuild)."""
        with self._lock:
            self._checked = float("-inf")

    @property
    def cached_bytes(self) -> int:
        """What the cached contents take (bytes and base64 text), never more than ``max_bytes``."""
        with self._lock:
            return self._blob_bytes

    def read(self, snap: Snapshot, path: str, limit: int) -> bytes:
        """The file's bytes; ``TooLarge`` when the tree says it is over ``limit`` (nothing is read)."""
        return self._blob(snap, path, limit).data

    def read_base64(self, snap: Snapshot, path: str, limit: int) -> tuple[bytes, str]:
        """The file's bytes and their base64 text, each computed once per blob while cached."""
        blob = self._blob(snap, path, limit)
        encoded = blob.encoded
        if encoded is None:
            encoded = base64.b64encode(blob.data).decode("ascii")
            with self._lock:
                if blob.encoded is None and self._blobs.get(snap.files[path]) is blob:
                    blob.encoded = encoded
                    self._blob_bytes += len(encoded)
                    self._evict()
        return blob.data, encoded

    def _blob(self, snap: Snapshot, path: str, limit: int) -> _Blob:
        blob_id = snap.files[path]
        size = snap.sizes[path]
        if size > limit:
            raise TooLarge(f"/{path} is {size} bytes, over the {limit} bytes served")
        with self._lock:
            blob = self._blobs.get(blob_id)
            if blob is not None:
                self._blobs.move_to_end(blob_id)
                return blob
        data = self.store.read_file(snap.commit, path)
        if data is None:
            raise NotFound(path)
        blob = _Blob(data)
        with self._lock:
            if len(data) <= self.max_bytes // 4 and blob_id not in self._blobs:
                self._blobs[blob_id] = blob
                self._blob_bytes += blob.cost
                self._evict()
        return blob

    def _evict(self) -> None:
        """Drop the least recently used contents until the cache fits (the lock is held)."""
        while self._blob_bytes > self.max_bytes and self._blobs:
            _, old = self._blobs.popitem(last=False)
            self._blob_bytes -= old.cost

    def json(self, snap: Snapshot, path: str) -> Any:
        """A JSON state file of the snapshot, parsed once per content."""
        if path not in snap.files:
            raise NotFound(f"{path} is missing from the metadata branch")
        key = (snap.files[path], path)
        parsed = self._parsed  # one read: another thread may replace it meanwhile
        if parsed is None or parsed[0] != key:
            try:
                data = self.read(snap, path, MAX_STATE_BYTES)
            except TooLarge as exc:
                raise UpstreamError(f"the metadata branch's {path} is too large to read: {exc}") from None
            parsed = (key, json.loads(data))
            self._parsed = parsed
        return parsed[1]


def clean_path(raw_path: str, decoded: str | None = None) -> str:
    """The request path decoded exactly once, or BadRequest for path tricks.

    ``raw_path`` is the path as sent (still percent-encoded, as API Gateway REST passes it);
    ``decoded`` is API Gateway's decoded ``{proxy+}`` value when there is one."""
    lowered = raw_path.lower()
    if any(bad in lowered for bad in ("%2f", "%5c", "%00", "\\", "\0")):
        raise BadRequest("encoded slashes, backslashes and NUL bytes are not allowed in paths")
    path = unquote(raw_path) if decoded is None else decoded
    parts = path.split("/")
    if "\0" in path or any(p in ("", ".", "..") for p in parts):
        raise BadRequest("path has empty, '.' or '..' segments")
    return path


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _not_modified(headers: Mapping[str, str], etag: str, mtime: int) -> bool:
    inm = headers.get("if-none-match")
    if inm is not None:
        return any(tag.strip() in (etag, f"W/{etag}", "*") for tag in inm.split(","))
    ims = headers.get("if-modified-since")
    if ims:
        try:
            return int(parsedate_to_datetime(ims).timestamp()) >= mtime
        except (TypeError, ValueError, IndexError):
            return False
    return False


def content_type(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".gz"):
        return "application/gzip"
    if name.endswith(".xz"):
        return "application/x-xz"
    if name.endswith(".gpg"):
        return "application/pgp-signature"
    if "/by-hash/" in path:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


class TooLarge(NotFound):
    """A file too large to answer with a body. Never redirected (see the module docstring); for
    an uncompressed Packages that large apt uses the ``.xz`` Release also lists."""


def serve_dists(cache: BranchCache, rel: str, headers: Mapping[str, str]) -> Reply:
    """``GET /dists/<rel>``: the file from the branch, with validators, 304s and cache policy."""
    snap = cache.snapshot()
    path = f"dists/{rel}"
    blob = snap.files.get(path)
    if blob is None:
        raise NotFound(f"/{path} does not exist")
    if snap.sizes[path] > MAX_INLINE_BYTES:
        # Checked on the tree's size, before anything is read or downloaded.
        raise TooLarge(f"/{path} is too large to serve; Release lists its compressed forms")
    etag = f'"{blob}"'
    immutable = "/by-hash/" in path
    reply_headers = {
        "ETag": etag,
        "Last-Modified": snap.last_modified,
        "Cache-Control": "public, max-age=31536000, immutable" if immutable else "private, max-age=30",
        "Content-Type": content_type(path),
    }
    lowered = {k.lower(): v for k, v in headers.items()}
    if _not_modified(lowered, etag, snap.time):
        return Reply(304, reply_headers)
    body, encoded = cache.read_base64(snap, path, MAX_INLINE_BYTES)
    return Reply(200, reply_headers, body, encoded)


class PoolResolver:
    """``GET /pool/<path>``: look it up in the pool manifest, answer with a 302 to the bytes."""

    def __init__(
        self,
        cache: BranchCache,
        source: ReleaseSource,
        url_ttl: float = POOL_URL_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.source = source
        self.url_ttl = url_ttl
        self.clock = clock
        self._urls: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def resolve(self, rel: str, base_url: str) -> Reply:
        snap = self.cache.snapshot()
        manifest = self.cache.json(snap, POOL_FILE)
        entry = manifest.get(f"pool/{rel}")
        if entry is None:
            raise NotFound(f"/pool/{rel} is not in the index")
        key = f"{entry['asset']}|{entry['sha256']}"
        now = self.clock()
        with self._lock:
            cached = self._urls.get(key)
        if cached is not None and now - cached[0] < self.url_ttl:
            url = cached[1]
        else:
            url = self.source.download_url(entry["locator"], base_url)
            with self._lock:
                self._urls[key] = (now, url)
                for k in [k for k, (t, _) in self._urls.items() if now - t >= self.url_ttl]:
                    del self._urls[k]
        return Reply(302, {"Location": url, "Cache-Control": "no-store"})
