"""Signed, expiring URLs that the local gateway serves itself: ``/_assets/``.

Locally there is no storage host to redirect to, so the pool's 302 points back at the gateway
with an HMAC-SHA256 signature and an expiry, like GitHub's short-lived storage URLs. The
purpose tag in the signed message keeps a signature from being valid for another kind of URL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote, unquote

from ghapt.core.errors import Forbidden
from ghapt.local.files import create_secret_once

URL_LIFETIME = 300  # seconds, like GitHub's signed storage URLs
KEY_FILE = "asset-url.key"
KEY_BYTES = 32
ASSET_PREFIX = "/_assets/"


def load_url_key(state_dir: Path) -> bytes:
    """The URL signing key in ``state_dir``, created (0600) on first use."""
    return create_secret_once(
        Path(state_dir) / KEY_FILE,
        lambda: secrets.token_bytes(KEY_BYTES),
        min_bytes=KEY_BYTES,
        what="the URL signing key",
    )


class SignedUrls:
    """Signs and checks ``<prefix><rel>?expires=..[&fp=..]&sig=..`` URLs for one purpose."""

    def __init__(
        self,
        key: bytes,
        prefix: str,
        purpose: str,
        *,
        clock: Callable[[], float] = time.time,
        lifetime: int = URL_LIFETIME,
    ) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"a URL signing key must be at least {KEY_BYTES} bytes")
        self.key = key
        self.prefix = prefix
        self.purpose = purpose
        self.clock = clock
        self.lifetime = lifetime

    def _sig(self, rel: str, expires: int, fp: str) -> str:
        msg = f"ghapt-{self.purpose}\n{rel}\n{expires}\n{fp}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()

    def url(self, base_url: str, rel: str, fp: str = "") -> str:
        """A URL for ``rel`` (and the content fingerprint ``fp``), valid for ``lifetime`` seconds."""
        expires = int(self.clock()) + self.lifetime
        query = f"expires={expires}"
        if fp:
            query += f"&fp={quote(fp, safe='')}"
        query += f"&sig={self._sig(rel, expires, fp)}"
        return f"{base_url.rstrip('/')}{self.prefix}{quote(rel)}?{query}"

    def check(self, raw_rel: str, query: Mapping[str, str]) -> tuple[str, str]:
        """(decoded rel, fingerprint) of a valid URL; ``Forbidden`` saying why otherwise."""
        rel = unquote(raw_rel)
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            raise Forbidden(f"{self.purpose} URL has no valid expiry") from None
        fp = query.get("fp", "")
        if not hmac.compare_digest(self._sig(rel, expires, fp), query.get("sig", "")):
            raise Forbidden(f"{self.purpose} URL signature is invalid")
        if expires < self.clock():
            raise Forbidden(f"{self.purpose} URL has expired")
        return rel, fp
