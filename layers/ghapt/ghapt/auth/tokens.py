"""Token exchange: a GitHub Actions OIDC token (about 5 minutes) becomes a ghapt credential that
lasts the whole job.

Design
------
* ``POST /token`` sits behind the same REQUEST authorizer as ``dists/`` and ``pool/``. The
  authorizer puts the principal's kind and identity in the policy context; the handler reads it
  from ``requestContext.authorizer`` and answers only OIDC principals. A Basic user, or a holder
  of an exchanged token, gets a 403: an exchanged token cannot renew itself, so a leaked one dies
  at its expiry.
* The answer is ``{"login": "ghapt-token", "password": "<token>", "expires_at": "<RFC 3339>"}``,
  ready for an ``auth.conf.d`` line (no whitespace in either field).
* The token is compact and self-contained, no state on the server::

      ghapt1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(key, binding + signed part))>

  The claims are the OIDC identity under GitHub's own claim names (``sub``, ``repository``,
  ``repository_id``, ``repository_owner``, ``repository_owner_id``, ``ref``, ``environment``,
  ``actor``, ``workflow_ref``, ``run_id`` when present), the configured ``iss``/``aud``, ``iat``,
  ``exp`` and a random ``jti``. The MAC also covers a binding string of the configured OIDC
  issuer and audience: changing either setting invalidates every outstanding token.
* Verification (in the authorizer, Basic login ``GHAPT_TOKEN_LOGIN``): size and shape first, then
  the MAC in constant time, and only then is the JSON parsed; then issuer/audience binding,
  expiry, and the *current* OIDC owner/repository rules, so removing a repository from the rules
  revokes its tokens too. Denial reasons name what failed, never the token.
* The key: locally ``STATE_DIR/token.key`` (32 random bytes, hex, mode 0600, created on first
  use); in Lambda the Secrets Manager secret ``GHAPT_TOKEN_SECRET_ARN``, which only the
  authorizer (verify) and the token function (mint) may read. Rotating the secret revokes every
  token at once.
* Lifetime: ``GHAPT_TOKEN_TTL_SECONDS`` (default 6 h, a GitHub-hosted job's limit; at most 24 h).
  API Gateway caches an Allow for up to ``GHAPT_AUTH_CACHE_SECONDS`` per header, so a token may
  keep working for at most that long (5 minutes) past its ``exp``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghapt.core.errors import ConfigError, Forbidden, Unauthorized
from ghapt.local.files import create_secret_once

if TYPE_CHECKING:
    from ghapt.auth.oidc import OidcRules

PREFIX = "ghapt1"
MAX_TOKEN_BYTES = 4096
MIN_KEY_BYTES = 32
KEY_FILE = "token.key"
# The identity claims a token carries, under GitHub's names.
IDENTITY_CLAIMS = (
    "sub",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "ref",
    "environment",
    "actor",
    "workflow_ref",
    "run_id",
)
# Policy context keys (the authorizer's) -> claim names.
CONTEXT_CLAIMS = {
    "subject": "sub",
    "name": "repository",
    "repository_id": "repository_id",
    "owner": "repository_owner",
    "owner_id": "repository_owner_id",
    "ref": "ref",
    "environment": "environment",
    "actor": "actor",
    "workflow_ref": "workflow_ref",
    "run_id": "run_id",
}

KeySource = Callable[[], bytes]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- keys -------------------------------------------------------------------------------------
def _key_from_text(text: str, where: str) -> bytes:
    key = text.strip().encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the token key in {where} is shorter than {MIN_KEY_BYTES} characters")
    return key


def file_key(path: Path) -> KeySource:
    """A key kept in ``path`` (mode 0600), created with 32 random bytes on first use."""
    lock = threading.Lock()
    cached: list[bytes] = []

    def load() -> bytes:
        with lock:
            if not cached:
                data = create_secret_once(
                    path,
                    lambda: (secrets.token_hex(32) + "\n").encode(),
                    min_bytes=MIN_KEY_BYTES,
                    what="the token key",
                )
                cached.append(_key_from_text(data.decode("utf-8", "replace"), str(path)))
            return cached[0]

    return load


def secret_key(name: str, fetch: Callable[[str], str]) -> KeySource:
    """A key held in a secret; ``fetch`` caches (Powertools), so a rotation is picked up."""
    return lambda: _key_from_text(fetch(name), f"secret {name!r}")


# --- minting and verifying --------------------------------------------------------------------
@dataclass(frozen=True)
class Exchanged:
    login: str
    password: str
    expires_at: int

    def as_json(self) -> dict[str, str]:
        return {"login": self.login, "password": self.password, "expires_at": rfc3339(self.expires_at)}


class TokenService:
    """Mints and verifies exchanged tokens for one OIDC issuer/audience configuration."""

    def __init__(
        self,
        key: KeySource,
        *,
        issuer: str,
        audience: str,
        login: str = "ghapt-token",
        ttl: int = 6 * 3600,
        rules: OidcRules | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer or not audience:
            raise ConfigError("token exchange needs GHAPT_OIDC_ISSUER and GHAPT_OIDC_AUDIENCE")
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.login = login
        self.ttl = ttl
        self.rules = rules
        self._clock = clock

    def check_key(self) -> None:
        """Load the key now: a server checks it at start (a short key file is a ``ConfigError``)."""
        self._key()

    def _mac(self, signed: str) -> bytes:
        binding = f"ghapt-token-v1\n{self.issuer}\n{self.audience}\n{signed}".encode()
        return hmac.new(self._key(), binding, hashlib.sha256).digest()

    def mint(self, identity: Mapping[str, str]) -> Exchanged:
        """A token for ``identity`` (claim name -> value), valid for ``ttl`` seconds from now."""
        if not identity.get("repository"):
            raise Forbidden("the OIDC identity has no repository")
        now = int(self._clock())
        claims: dict[str, Any] = {k: str(identity[k]) for k in IDENTITY_CLAIMS if identity.get(k)}
        claims.update(iss=self.issuer, aud=self.audience, iat=now, exp=now + self.ttl)
        claims["jti"] = secrets.token_hex(8)
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signed = f"{PREFIX}.{payload}"
        return Exchanged(self.login, f"{signed}.{_b64(self._mac(signed))}", now + self.ttl)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token, or ``Unauthorized`` with a reason (never the token)."""
        if not token or len(token) > MAX_TOKEN_BYTES or not token.isascii():
            raise Unauthorized("exchanged token is empty, too long or not ASCII")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise Unauthorized(f"exchanged token is not a {PREFIX} token")
        signed = f"{parts[0]}.{parts[1]}"
        try:
            given = _unb64(parts[2])
        except (binascii.Error, ValueError):
            raise Unauthorized("exchanged token MAC is not base64url") from None
        if not hmac.compare_digest(given, self._mac(signed)):
            raise Unauthorized("exchanged token MAC does not verify (tampered, or another key)")
        try:
            claims = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError):
            raise Unauthorized("exchanged token claims do not decode") from None
        if not isinstance(claims, dict):
            raise Unauthorized("exchanged token claims are not an object")
        if claims.get("iss") != self.issuer or claims.get("aud") != self.audience:
            raise Unauthorized("exchanged token was issued for another OIDC issuer or audience")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
            raise Unauthorized("exchanged token has no valid exp")
        if exp <= self._clock():
            raise Unauthorized(f"exchanged token expired at {rfc3339(exp)}")
        if self.rules is not None:
            self.rules.check(claims)  # today's rules: removing a repository revokes its tokens
        return claims

    def exchange(self, authorizer_context: Mapping[str, Any] | None) -> Exchanged:
        """Mint a token for the principal the authorizer allowed; only OIDC principals may."""
        context = authorizer_context or {}
        kind = context.get("kind")
        if kind != "oidc":
            raise Forbidden(
                f"token exchange needs a GitHub Actions OIDC token (Bearer, or login of the OIDC user); "
                f"this request was authenticated as {kind or 'nobody'}"
            )
        identity = {claim: str(context.get(key) or "") for key, claim in CONTEXT_CLAIMS.items()}
        return self.mint(identity)
