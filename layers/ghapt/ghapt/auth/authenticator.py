"""Who may read the repository: Basic Auth users and GitHub Actions OIDC tokens.

``Authenticator`` is pure logic shared by the Lambda REQUEST authorizer
(``ghapt.aws.authorizer``) and the local server. apt only speaks Basic Auth (``auth.conf``),
so a workflow passes its OIDC token as the password of a fixed login (``GHAPT_OIDC_LOGIN``);
other clients may send it as Bearer. An OIDC token lives about 5 minutes, so a job exchanges
it at ``POST /token`` for a longer-lived token (``ghapt.auth.tokens``), sent as the password of
``GHAPT_TOKEN_LOGIN``. Reasons for a denial go to the logs; credentials never do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import jwt

from ghapt.auth.oidc import OidcIdentity, OidcVerifier
from ghapt.auth.passwords import verify_password, verify_unknown
from ghapt.core.errors import Unauthorized
from ghapt.core.ports import UserStore

if TYPE_CHECKING:
    from ghapt.auth.tokens import TokenService

# A Basic header carrying an 8 KiB OIDC token is about 11 KiB; nothing legitimate is larger.
MAX_HEADER_BYTES = 12 * 1024
# One scheme word, exactly one space, one token68 (RFC 7235): no extra or surrounding spaces.
_HEADER_RE = re.compile(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) ([A-Za-z0-9._~+/-]+=*)")

Kind = Literal["basic", "oidc", "token"]


@dataclass(frozen=True)
class Principal:
    """Who got in: ``kind`` is how, ``name`` the user or the workflow's repository.

    ``oidc`` is the workflow's identity (OIDC tokens and exchanged tokens), ``run_id`` its run
    when the token said, ``expires`` the exchanged token's expiry (epoch seconds)."""

    kind: Kind
    name: str
    oidc: OidcIdentity | None = field(default=None, compare=False)
    run_id: str = field(default="", compare=False)
    expires: int = field(default=0, compare=False)

    @property
    def principal_id(self) -> str:
        return f"{self.kind}:{self.name}"

    def context(self) -> dict[str, str]:
        """Flat strings for the authorizer context: they reach the backend's logs, and the token
        exchange (``POST /token``) mints from them (``ghapt.tokens.CONTEXT_CLAIMS``)."""
        out = {"kind": self.kind, "name": self.name}
        if self.oidc is not None:
            out.update(
                repository_id=self.oidc.repository_id,
                owner=self.oidc.owner,
                owner_id=self.oidc.owner_id,
                ref=self.oidc.ref,
                environment=self.oidc.environment,
                actor=self.oidc.actor,
                workflow_ref=self.oidc.workflow_ref,
                subject=self.oidc.subject,
                run_id=self.run_id,
            )
        if self.expires:
            out["expires"] = str(self.expires)
        return out


@dataclass(frozen=True)
class _Credential:
    method: Kind
    login: str
    secret: str


class Authenticator:
    """Checks one ``Authorization`` header. Successful Basic checks are cached briefly, since
    scrypt is slow on purpose; the cache key is a keyed hash, never the password itself, and a
    hit still requires the user's stored hash to be unchanged (removal takes effect at once)."""

    def __init__(
        self,
        users: UserStore | None,
        oidc: OidcVerifier | None,
        oidc_login: str = "github-action",
        *,
        tokens: TokenService | None = None,
        cache_seconds: float = 60.0,
        cache_size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users = users
        self.oidc = oidc
        self.oidc_login = oidc_login
        self.tokens = tokens
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self._clock = clock
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    # --- parsing --------------------------------------------------------------------------
    def _parse(self, header: str | None) -> _Credential:
        if header is None or header == "":
            raise Unauthorized("no Authorization header")
        if len(header) > MAX_HEADER_BYTES:
            raise Unauthorized(f"Authorization header longer than {MAX_HEADER_BYTES} bytes")
        match = _HEADER_RE.fullmatch(header)
        if match is None:
            # Never echo the header: a client may have sent a bare secret.
            raise Unauthorized("malformed Authorization header")
        scheme, value = match.group(1).lower(), match.group(2)
        if scheme == "bearer":
            return _Credential("oidc", "", value)
        if scheme != "basic":
            raise Unauthorized("unsupported Authorization scheme")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise Unauthorized("Basic credentials are not valid base64") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Unauthorized("Basic credentials are not UTF-8") from None
        login, colon, password = text.partition(":")
        if not colon:
            raise Unauthorized("Basic credentials have no ':'")
        if not login or not password:
            raise Unauthorized("Basic credentials have an empty login or password")
        if any(c.isspace() or not c.isprintable() for c in login):
            raise Unauthorized("Basic login contains whitespace or control characters")
        if login == self.oidc_login:
            return _Credential("oidc", login, password)
        if self.tokens is not None and login == self.tokens.login:
            return _Credential("token", login, password)
        return _Credential("basic", login, password)

    def method_of(self, header: str | None) -> str:
        """``basic``, ``oidc`` or ``token`` (by scheme when the rest is broken), else ``none``/``malformed``:
        a metric and log dimension, cheap and never raising."""
        if not header:
            return "none"
        try:
            return self._parse(header).method
        except Unauthorized:
            scheme = header[:7].split(" ", 1)[0].lower()
            return {"basic": "basic", "bearer": "oidc"}.get(scheme, "malformed")

    # --- checking -------------------------------------------------------------------------
    def authenticate(self, authorization_header: str | None) -> Principal:
        """The principal behind the header, or ``Unauthorized`` with a reason for logs."""
        cred = self._parse(authorization_header)
        if cred.method == "oidc":
            if self.oidc is None:
                raise Unauthorized("OIDC is not enabled")
            identity = self.oidc.verify(cred.secret)
            return Principal("oidc", identity.repository, identity, _run_id(cred.secret))
        if cred.method == "token":
            if self.tokens is None:  # pragma: no cover - _parse only says "token" when enabled
                raise Unauthorized("token exchange is not enabled")
            claims = self.tokens.verify(cred.secret)
            identity = OidcIdentity.from_claims(claims)
            return Principal(
                "token", identity.repository, identity, str(claims.get("run_id") or ""), int(claims["exp"])
            )
        return self._basic(cred.login, cred.secret)

    def _basic(self, login: str, password: str) -> Principal:
        if self.users is None:
            raise Unauthorized("Basic Auth users are not configured")
        stored = self.users.lookup(login)
        if stored is None:
            verify_unknown(password)
            # The login is left out: people type passwords into the wrong field.
            raise Unauthorized("unknown user")
        key = hmac.new(self._cache_key, f"{login}\0{password}".encode(), hashlib.sha256).digest()
        if self._cached(key, stored):
            return Principal("basic", login)
        if not verify_password(stored, password):
            raise Unauthorized(f"wrong password for user {login!r}")
        self._remember(key, stored)
        return Principal("basic", login)

    def _cached(self, key: bytes, stored: str) -> bool:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return False
            cached_stored, expires = hit
            if self._clock() >= expires or cached_stored != stored:
                del self._cache[key]
                return False
            return True

    def _remember(self, key: bytes, stored: str) -> None:
        with self._lock:
            self._cache[key] = (stored, self._clock() + self.cache_seconds)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


def _run_id(verified_token: str) -> str:
    """The ``run_id`` claim of a token ``OidcVerifier`` has just verified ('' when absent)."""
    try:
        claims = jwt.decode(verified_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    value = claims.get("run_id")
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


# --- the API Gateway REQUEST authorizer ---------------------------------------------------


def authorization_header(event: Mapping[str, Any]) -> str | None:
    """The Authorization header of a REQUEST event, found case-insensitively.

    Two different values (``headers`` and ``multiValueHeaders`` disagree, or a repeated
    header) are refused as ambiguous rather than picking one."""
    values: set[str] = set()
    headers = event.get("headers") or {}
    if isinstance(headers, Mapping):
        values.update(v for k, v in headers.items() if k.lower() == "authorization" and isinstance(v, str))
    multi = event.get("multiValueHeaders") or {}
    if isinstance(multi, Mapping):
        for k, vs in multi.items():
            if k.lower() == "authorization" and isinstance(vs, list):
                values.update(v for v in vs if isinstance(v, str))
    if not values:
        return None
    if len(values) > 1:
        raise Unauthorized("more than one Authorization header")
    return values.pop()
