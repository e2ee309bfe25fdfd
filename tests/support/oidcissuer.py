"""A real, local GitHub-Actions-like OIDC issuer for tests (HTTP on 127.0.0.1, random port).

It serves ``/.well-known/openid-configuration`` and ``/.well-known/jwks`` and mints tokens with
the claims GitHub Actions puts in them. Use it as a context manager, or as the ``issuer``
fixture of tests/conftest.py (override ``oidc_audience`` or ``issuer_clock`` to change it)::

    def test_it(issuer: OidcIssuer) -> None:
        verifier = OidcVerifier(issuer.url, issuer.audience, rules)   # real HTTP fetches
        token = issuer.mint({"repository": "acme/tool"})              # a valid token
        issuer.mint(omit=("exp",))                                    # ... without exp
        issuer.mint(key=issuer.foreign_key())                         # ... signed by a stranger
        issuer.rotate()                                               # publish a new key
        issuer.jwks_fetches                                           # JWKS downloads so far

For apt end to end: put ``github-action`` as login and ``issuer.mint()`` as password in
``auth.conf``, and start ghapt with ``GHAPT_OIDC_ISSUER=issuer.url``. Tokens are built by hand
(not with PyJWT) so tests can forge exactly the hostile variants a verifier must refuse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.keys import fresh_rsa_key

OWNER = "octo-org"
OWNER_ID = "65012345"
REPOSITORY = "octo-org/octo-repo"
REPOSITORY_ID = "74012345"
LIFETIME = 300  # GitHub's tokens live about five minutes
AUDIENCE = "ghapt-test"  # what the ``issuer`` fixture mints for, unless a module overrides it


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A key unlike the issuer's recent ones (its own, rotated and foreign keys all differ)."""
    return fresh_rsa_key(bits)


def public_jwk(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, kid: str) -> dict[str, str]:
    """The JWKS entry for ``key`` (the shape GitHub publishes, minus the x5c chain)."""
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    numbers = pub.public_numbers()
    return {
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": _uint(numbers.n),
        "e": _uint(numbers.e),
    }


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def encode(header: Mapping[str, Any], claims: Mapping[str, Any], *, alg: str, key: Any = None) -> str:
    """A compact JWS. ``alg`` picks how to sign: RS256 with an RSA private ``key``; HS256/384/512
    with ``key`` bytes as the HMAC secret (the classic confusion attack); ``none`` unsigned."""
    signing_input = (
        b64url(json.dumps(dict(header), separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    )
    data = signing_input.encode("ascii")
    if alg == "none":
        signature = b""
    elif alg.startswith("HS"):
        secret = key if isinstance(key, bytes) else str(key).encode()
        signature = hmac.new(secret, data, getattr(hashlib, f"sha{alg[2:]}")).digest()
    elif alg == "RS256":
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise ValueError(f"cannot sign with {alg}")
    return signing_input + "." + b64url(signature)


def tamper(token: str, **changes: Any) -> str:
    """``token`` with claims changed but the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return ".".join((header, b64url(json.dumps(claims, separators=(",", ":")).encode()), signature))


class OidcIssuer:
    """A local OIDC issuer. ``url`` is the issuer (``iss``); keys rotate with ``rotate()``.

    ``clock`` gives the default ``iat`` of minted tokens (inject the verifier's clock to test
    time rules without waiting). ``discovery_issuer`` overrides the ``issuer`` the discovery
    document claims, and ``jwks_uri`` its key URL, to test a lying document."""

    def __init__(
        self,
        *,
        audience: str = AUDIENCE,
        clock: Callable[[], float] = time.time,
        key_bits: int = 2048,
    ) -> None:
        self.audience = audience
        self.clock = clock
        self.key_bits = key_bits
        self.key = new_key(key_bits)
        self.kid = uuid.uuid4().hex
        self.published: dict[str, rsa.RSAPrivateKey] = {self.kid: self.key}
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.discovery_issuer: str | None = None
        self.jwks_uri: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- server ---------------------------------------------------------------------------
    def start(self) -> OidcIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    with issuer._lock:
                        issuer.discovery_fetches += 1
                    body = issuer.discovery()
                elif self.path == "/.well-known/jwks":
                    with issuer._lock:
                        issuer.jwks_fetches += 1
                    body = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval keeps shutdown (each test's teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="oidc-issuer", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> OidcIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The issuer URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash, like GitHub's)."""
        if self._server is None:
            raise RuntimeError("the issuer is not started")
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    # --- documents ------------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.discovery_issuer or self.url,
            "jwks_uri": self.jwks_uri or self.url + "/.well-known/jwks",
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": sorted(self.claims()),
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
        }

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [public_jwk(k, kid) for kid, k in self.published.items()]}

    # --- keys -----------------------------------------------------------------------------
    def rotate(self, *, keep_old: bool = True) -> str:
        """Publish a new signing key and sign with it from now on; returns its ``kid``."""
        key, kid = new_key(self.key_bits), uuid.uuid4().hex
        with self._lock:
            if not keep_old:
                self.published.clear()
            self.published[kid] = key
            self.key, self.kid = key, kid
        return kid

    def foreign_key(self) -> rsa.RSAPrivateKey:
        """A fresh RSA key this issuer never publishes (an attacker's)."""
        return new_key(self.key_bits)

    def public_pem(self) -> bytes:
        return public_pem(self.key)

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.key, self.kid)

    # --- tokens ---------------------------------------------------------------------------
    def claims(
        self, overrides: Mapping[str, Any] | None = None, *, now: float | None = None
    ) -> dict[str, Any]:
        """The claims of a push to ``main`` in octo-org/octo-repo, with ``overrides`` applied."""
        iat = int(self.clock() if now is None else now)
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "sub": f"repo:{REPOSITORY}:ref:refs/heads/main",
            "aud": self.audience,
            "ref": "refs/heads/main",
            "sha": "a" * 40,
            "repository": REPOSITORY,
            "repository_owner": OWNER,
            "repository_owner_id": OWNER_ID,
            "repository_id": REPOSITORY_ID,
            "repository_visibility": "private",
            "run_id": "10000000001",
            "run_number": "42",
            "run_attempt": "1",
            "runner_environment": "github-hosted",
            "actor": "octocat",
            "actor_id": "583231",
            "workflow": "release",
            "workflow_ref": f"{REPOSITORY}/.github/workflows/release.yml@refs/heads/main",
            "workflow_sha": "a" * 40,
            "job_workflow_ref": f"{REPOSITORY}/.github/workflows/release.yml@refs/heads/main",
            "job_workflow_sha": "a" * 40,
            "head_ref": "",
            "base_ref": "",
            "event_name": "push",
            "ref_type": "branch",
            "ref_protected": "true",
            "environment": "production",
            "iss": self.url if self._server is not None else "https://token.actions.githubusercontent.com",
            "nbf": iat - 5,
            "iat": iat,
            "exp": iat + LIFETIME,
        }
        claims.update(overrides or {})
        return claims

    def mint(
        self,
        overrides: Mapping[str, Any] | None = None,
        *,
        omit: Iterable[str] = (),
        key: Any = None,
        kid: str | None = None,
        alg: str = "RS256",
        headers: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """A token like GitHub's, signed with the current key unless ``key``/``alg`` say else.

        ``overrides`` replace claims, ``omit`` drops them, ``headers`` replace header fields
        (a ``None`` value drops one), ``now`` sets ``iat`` (``exp`` = ``iat`` + 300)."""
        claims = self.claims(overrides, now=now)
        for name in omit:
            claims.pop(name, None)
        header: dict[str, Any] = {"typ": "JWT", "alg": alg, "kid": self.kid if kid is None else kid}
        if alg == "RS256":
            header["x5t"] = b64url(hashlib.sha1(public_pem(self.key)).digest())
        for name, value in (headers or {}).items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return encode(header, claims, alg=alg, key=self.key if key is None else key)
