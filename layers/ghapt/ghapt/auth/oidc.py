"""Verify GitHub Actions OIDC tokens, so a workflow can install packages without a stored secret.

A token is accepted only when all of these hold: it is small, its header says RS256 and names a
``kid`` the issuer publishes, the signature verifies with that RSA key, ``iss`` and ``aud`` equal
ghapt's settings exactly, ``exp``/``nbf``/``iat`` fit the clock within ``leeway``, and the
identity claims match at least one configured owner or repository rule. With no rule configured
nobody gets in: otherwise every repository on GitHub could mint an acceptable token.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ghapt.core.errors import Unauthorized

if TYPE_CHECKING:
    from ghapt.core.settings import Settings

MAX_TOKEN_BYTES = 8 * 1024
MAX_DOCUMENT_BYTES = 512 * 1024
ALGORITHM = "RS256"
MIN_KEY_BITS = 2048

HttpGet = Callable[[str, float], Any]
"""``http_get(url, timeout)`` returns the parsed JSON body, or raises on any failure."""

_CHUNK = 64 * 1024


def requests_get_json(url: str, timeout: float) -> Any:
    """GET ``url`` with a timeout and a size cap, and parse the JSON body.

    ``timeout`` bounds the connect, each read, and the body as a whole (a server that drips
    bytes cannot hold the authorizer past it)."""
    import requests

    deadline = time.monotonic() + timeout
    with requests.get(url, timeout=timeout, stream=True, headers={"Accept": "application/json"}) as r:
        r.raise_for_status()
        body = b""
        while len(body) <= MAX_DOCUMENT_BYTES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: the body took longer than {timeout} s")
            chunk = r.raw.read(_CHUNK, decode_content=True)
            if not chunk:
                break
            body += chunk
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url}: response larger than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def _names(values: Iterable[str]) -> frozenset[str]:
    # GitHub owner and repository names are unique regardless of case.
    return frozenset(v.strip().casefold() for v in values if v.strip())


def _ids(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip() for v in values if v.strip())


@dataclass(frozen=True)
class OidcRules:
    """Who may get in. Owner and repository rules add up (any match allows); the optional
    ``ref``/``environment`` patterns must then also match in full."""

    owner_ids: frozenset[str] = frozenset()
    owners: frozenset[str] = frozenset()
    repository_ids: frozenset[str] = frozenset()
    repositories: frozenset[str] = frozenset()
    ref_pattern: re.Pattern[str] | None = None
    environment_pattern: re.Pattern[str] | None = None

    @classmethod
    def build(
        cls,
        *,
        owner_ids: Iterable[str] = (),
        owners: Iterable[str] = (),
        repository_ids: Iterable[str] = (),
        repositories: Iterable[str] = (),
        ref_pattern: str = "",
        environment_pattern: str = "",
    ) -> OidcRules:
        return cls(
            owner_ids=_ids(owner_ids),
            owners=_names(owners),
            repository_ids=_ids(repository_ids),
            repositories=_names(repositories),
            ref_pattern=re.compile(ref_pattern) if ref_pattern else None,
            environment_pattern=re.compile(environment_pattern) if environment_pattern else None,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcRules:
        return cls.build(
            owner_ids=settings.oidc_owner_ids,
            owners=settings.oidc_owners,
            repository_ids=settings.oidc_repository_ids,
            repositories=settings.oidc_repositories,
            ref_pattern=settings.oidc_ref_pattern,
            environment_pattern=settings.oidc_environment_pattern,
        )

    @property
    def empty(self) -> bool:
        """True when no owner or repository rule exists: then everybody is denied."""
        return not (self.owner_ids or self.owners or self.repository_ids or self.repositories)

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise ``Unauthorized`` unless ``claims`` satisfy the rules."""
        if self.empty:
            raise Unauthorized("no OIDC owner or repository rule is configured")
        owner_id, owner = _claim(claims, "repository_owner_id"), _claim(claims, "repository_owner")
        repo_id, repo = _claim(claims, "repository_id"), _claim(claims, "repository")
        allowed = (
            (owner_id is not None and owner_id in self.owner_ids)
            or (owner is not None and owner.casefold() in self.owners)
            or (repo_id is not None and repo_id in self.repository_ids)
            or (repo is not None and repo.casefold() in self.repositories)
        )
        if not allowed:
            raise Unauthorized(
                f"repository {repo!r} (id {repo_id}) of owner {owner!r} (id {owner_id}) is not allowed"
            )
        for name, pattern in (("ref", self.ref_pattern), ("environment", self.environment_pattern)):
            if pattern is None:
                continue
            value = _claim(claims, name)
            if value is None or not pattern.fullmatch(value):
                raise Unauthorized(f"{name} {value!r} does not match {pattern.pattern!r}")


def _claim(claims: Mapping[str, Any], name: str) -> str | None:
    """A claim as a string; GitHub sends ids as strings, but accept plain integers too."""
    value = claims.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class OidcIdentity:
    """What a verified token says about the workflow run (for logs and the policy context)."""

    repository: str
    repository_id: str
    owner: str
    owner_id: str
    ref: str
    environment: str
    workflow_ref: str
    actor: str
    subject: str

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> OidcIdentity:
        def get(name: str) -> str:
            return _claim(claims, name) or ""

        return cls(
            repository=get("repository"),
            repository_id=get("repository_id"),
            owner=get("repository_owner"),
            owner_id=get("repository_owner_id"),
            ref=get("ref"),
            environment=get("environment"),
            workflow_ref=get("workflow_ref"),
            actor=get("actor"),
            subject=get("sub"),
        )


class OidcVerifier:
    """Verifies tokens from one issuer for one audience against ``rules``.

    Keys come from the issuer's discovery document and JWKS, cached for ``jwks_max_age``. A
    token naming an unknown ``kid`` triggers one refetch (key rotation), at most once per
    ``refetch_interval`` seconds, so garbage ``kid``s cannot make us hammer the issuer.

    A fetch of the keys (discovery document, then JWKS) spends at most ``budget`` seconds in
    all, each request at most ``timeout``: the authorizer (``Timeout: 10``) answers well
    before Lambda would kill it, even when the issuer hangs."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        rules: OidcRules,
        http_get: HttpGet = requests_get_json,
        clock: Callable[[], float] = time.time,
        leeway: int = 60,
        *,
        timeout: float = 2.0,
        budget: float = 4.5,
        monotonic: Callable[[], float] = time.monotonic,
        refetch_interval: float = 60.0,
        jwks_max_age: float = 3600.0,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("an OIDC issuer and audience are both required")
        self.issuer = issuer
        self.audience = audience
        self.rules = rules
        self.leeway = leeway
        self.timeout = timeout
        self.budget = budget
        self._monotonic = monotonic
        self._deadline = 0.0
        self.refetch_interval = refetch_interval
        self.jwks_max_age = jwks_max_age
        self._http_get = http_get
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._fetch_error: str | None = None

    # --- keys -----------------------------------------------------------------------------
    def _get(self, url: str, what: str) -> Mapping[str, Any]:
        remaining = self._deadline - self._monotonic()
        if remaining <= 0:
            raise Unauthorized(f"cannot fetch the OIDC {what} (the issuer took longer than {self.budget} s)")
        try:
            document = self._http_get(url, min(self.timeout, remaining))
        except Exception as exc:  # noqa: BLE001 - any failure to fetch keys fails closed with a 401
            raise Unauthorized(f"cannot fetch the OIDC {what} ({exc.__class__.__name__})") from None
        if not isinstance(document, Mapping):
            raise Unauthorized(f"the OIDC {what} is not a JSON object")
        return document

    def _discover(self) -> str:
        if self._jwks_uri is not None:
            return self._jwks_uri
        config = self._get(self.issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery")
        if config.get("issuer") != self.issuer:
            raise Unauthorized("the OIDC discovery document names another issuer")
        jwks_uri = config.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise Unauthorized("the OIDC discovery document has no jwks_uri")
        # Keys must come from the issuer's own origin, not wherever a document points.
        want, got = urlsplit(self.issuer), urlsplit(jwks_uri)
        if (got.scheme, got.netloc) != (want.scheme, want.netloc):
            raise Unauthorized("the OIDC jwks_uri is not on the issuer's host")
        self._jwks_uri = jwks_uri
        return jwks_uri

    def _refresh(self, now: float) -> bool:
        """Fetch the keys; on failure keep the old ones and remember why. True when it worked."""
        self._fetched_at = now  # counts even when it fails: failures are rate-limited too
        self._deadline = self._monotonic() + self.budget  # under self._lock: one refresh at a time
        try:
            self._keys = self._fetch_keys()
        except Unauthorized as exc:
            self._fetch_error = str(exc)
            return False
        self._fetch_error = None
        return True

    def _fetch_keys(self) -> dict[str, rsa.RSAPublicKey]:
        jwks = self._get(self._discover(), "JWKS")
        entries = jwks.get("keys")
        if not isinstance(entries, list):
            raise Unauthorized("the OIDC JWKS has no keys list")
        keys: dict[str, rsa.RSAPublicKey] = {}
        for entry in entries:
            if not isinstance(entry, Mapping) or entry.get("kty") != "RSA":
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or entry.get("use", "sig") != "sig":
                continue
            if entry.get("alg", ALGORITHM) != ALGORITHM:
                continue
            try:
                key = RSAAlgorithm.from_jwk(dict(entry))
            except (jwt.InvalidKeyError, ValueError, TypeError, KeyError):
                continue
            if isinstance(key, rsa.RSAPrivateKey):
                key = key.public_key()
            if key.key_size >= MIN_KEY_BITS:
                keys[kid] = key
        return keys

    def _key(self, kid: str) -> rsa.RSAPublicKey:
        with self._lock:
            now = self._clock()
            last = self._fetched_at
            limited = False
            if last is None or now - last >= self.jwks_max_age:
                self._refresh(now)
            elif kid not in self._keys:
                if now - last >= self.refetch_interval:
                    self._refresh(now)  # maybe the issuer rotated its keys
                else:
                    limited = True
            key = self._keys.get(kid)
            error = self._fetch_error
        if key is not None:
            return key
        if error:
            raise Unauthorized(f"OIDC keys unavailable: {error}")
        if limited:
            raise Unauthorized("unknown OIDC key id (JWKS refetch rate-limited)")
        raise Unauthorized("unknown OIDC key id")

    # --- tokens ---------------------------------------------------------------------------
    def verify(self, token: str) -> OidcIdentity:
        """The identity in ``token``, or ``Unauthorized`` with a reason (never the token)."""
        if not token:
            raise Unauthorized("empty OIDC token")
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized(f"OIDC token longer than {MAX_TOKEN_BYTES} bytes")
        if not token.isascii() or token.count(".") != 2:
            raise Unauthorized("OIDC token is not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("OIDC token header cannot be decoded") from None
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise Unauthorized(f"OIDC token algorithm {str(alg)[:16]!r} is not {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("OIDC token has no key id")
        key = self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                # Time, issuer and audience are checked below against the injected clock.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise Unauthorized("OIDC token signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"OIDC token rejected ({exc.__class__.__name__})") from None
        self._check_claims(claims)
        self.rules.check(claims)
        return OidcIdentity.from_claims(claims)

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise Unauthorized("OIDC token issuer is not the configured issuer")
        # Exactly ours: GitHub issues one audience, so a list naming others is not for us alone.
        aud = claims.get("aud")
        if aud != self.audience and aud != [self.audience]:
            raise Unauthorized("OIDC token audience is not ghapt's")
        now = self._clock()
        times: dict[str, int] = {}
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is None and name != "nbf":
                raise Unauthorized(f"OIDC token has no {name}")
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise Unauthorized(f"OIDC token {name} is not a number")
            times[name] = int(value)
        if times["exp"] <= now - self.leeway:
            raise Unauthorized("OIDC token has expired")
        if times["iat"] > now + self.leeway:
            raise Unauthorized("OIDC token was issued in the future")
        if "nbf" in times and times["nbf"] > now + self.leeway:
            raise Unauthorized("OIDC token is not valid yet (nbf)")
