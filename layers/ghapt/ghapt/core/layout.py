"""What the metadata branch holds besides dists/, and the rules every store applies to paths.

Shared by the indexer (which writes these files), the serving code (which reads the pool
manifest) and both stores, so none of them has to import another to learn a file name.
"""

from __future__ import annotations

import hashlib

from ghapt.core.errors import GhaptError

ASSETS_FILE = "ghapt/assets.json"  # what was indexed: stanza data per asset, and the rejects
POOL_FILE = "ghapt/pool.json"  # pool path -> asset locator, for the pool function's 302
GENERATIONS_FILE = "ghapt/generations.json"  # by-hash files kept per index generation
SEGMENTS_FILE = "ghapt/segments.json"  # where each compressed segment of Packages.xz/.gz sits, for reuse
# Served (behind auth) beside the suites, so clients can list them: a suite name cannot start with "_".
SUITES_FILE = "dists/_suites.json"
PAGE_FILE = "index.html"  # the repository page served at / (see ghapt.page)
RECORD_VERSION = 1

# The largest file the metadata function answers with a body. A Lambda response is at most 6 MB
# and base64 (every body is binary to API Gateway) inflates by a third. The indexer never
# commits an index file above it: like Debian's archives, Release still lists the size and
# hashes of an uncompressed Packages that large, but only its compressed forms are served.
MAX_INDEX_FILE_BYTES = 4 * 1024 * 1024


def git_blob_id(data: bytes) -> str:
    """The id git gives ``data`` as a blob, so content can be compared with a tree without reading it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class UnsafePath(GhaptError):
    """A path that git or GitHub would refuse or misread."""


def check_path(path: str) -> None:
    """Refuse a path that is empty, absolute, has empty, ``.``, ``..`` or ``.git`` segments, or a NUL."""
    parts = path.split("/")
    if not path or "\0" in path or any(p in ("", ".", "..", ".git") for p in parts):
        raise UnsafePath(f"refusing to write the unsafe path {path!r}")
