"""The local signing key: an RSA key in a PEM file under the state directory.

The key is generated on first use. Its creation time is stored next to it because the OpenPGP
fingerprint covers it: without it, every reload would look like a new key to apt clients.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from ghapt.core.errors import ConfigError
from ghapt.local.files import write_atomic
from ghapt.signing.openpgp import DEFAULT_UID, OpenPGPSigner

log = logging.getLogger(__name__)

KEY_FILE = "signing-key.pem"
META_FILE = "signing-key.json"
LOCK_FILE = "signing-key.lock"
KEY_BITS = 3072
# apt 3 verifies with Sequoia's sqv; keep well clear of what its policy rejects.
MIN_KEY_BITS = 3072


class LocalRsaKey:
    """A ``RawKey`` over a ``cryptography`` RSA private key held in memory."""

    def __init__(self, private_key: rsa.RSAPrivateKey, created: int) -> None:
        self._private_key = private_key
        self._created = int(created)

    @property
    def created(self) -> int:
        return self._created

    @property
    def bits(self) -> int:
        return self._private_key.key_size

    def public_numbers(self) -> tuple[int, int]:
        numbers = self._private_key.public_key().public_numbers()
        return numbers.n, numbers.e

    def sign_digest(self, digest: bytes) -> bytes:
        if len(digest) != 32:
            raise ValueError(f"expected a SHA-256 digest (32 bytes), got {len(digest)} bytes")
        return self._private_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def load_or_create_local_key(state_dir: Path, *, now: Callable[[], float] = time.time) -> LocalRsaKey:
    """Load ``state_dir/signing-key.pem``, generating an RSA 3072 key there on first use.

    Creation holds a lock so two processes starting together agree on one key, and the PEM
    is written to a 0600 temporary file and renamed into place, so it is never readable by
    others and never half-written."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    key_path = state_dir / KEY_FILE
    meta_path = state_dir / META_FILE
    with _locked(state_dir / LOCK_FILE):
        if not key_path.exists():
            _create(key_path, meta_path, int(now()))
        return _load(key_path, meta_path)


def local_signer(
    state_dir: Path, uid: str = DEFAULT_UID, *, now: Callable[[], int] = lambda: int(time.time())
) -> OpenPGPSigner:
    """The ``Signer`` of a local install (``GHAPT_SIGNER=local``)."""
    return OpenPGPSigner(load_or_create_local_key(state_dir), uid, now=now)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _pem_loader() -> Callable[..., object]:
    """``serialization.load_pem_private_key``, preferably without importing ``serialization``.

    That package also loads the SSH, PKCS#12 and cipher modules: about 15 ms on every rebuild,
    for one function that is cryptography's Rust binding itself (``serialization`` only
    re-exports it). If a release moves the binding, the public import is used instead."""
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        loader: Callable[..., object] = rust_openssl.keys.load_pem_private_key
    except (ImportError, AttributeError):
        from cryptography.hazmat.primitives import serialization

        loader = serialization.load_pem_private_key
    return loader


def _create(key_path: Path, meta_path: Path, created: int) -> None:
    from cryptography.hazmat.primitives import serialization  # only when a key is made

    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # The metadata first: a PEM without it would be loaded with a guessed creation time.
    write_atomic(meta_path, json.dumps({"created": created}).encode() + b"\n")
    write_atomic(key_path, pem)
    with contextlib.suppress(OSError):
        # Lets the creation time be recovered from the PEM alone if the JSON gets lost.
        os.utime(key_path, (created, created))
    log.info("generated a new RSA %d signing key at %s", KEY_BITS, key_path)


def _load(key_path: Path, meta_path: Path) -> LocalRsaKey:
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"{key_path} is accessible by other users (mode {mode:04o}); run `chmod 600 {key_path}`"
        )
    try:
        # OpenSSL's full RSA consistency check costs about 0.15 s per load, on every rebuild. It is
        # not needed: OpenPGPSigner verifies every signature against the public key before use.
        key = _pem_loader()(key_path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key_path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{key_path} must hold an RSA key (found {type(key).__name__})")
    if key.key_size < MIN_KEY_BITS:
        raise ConfigError(
            f"{key_path} holds an RSA {key.key_size} key; at least RSA {MIN_KEY_BITS} is required "
            "(apt 3 verifies with sqv, which rejects weak keys). Move the file away to generate a new "
            "key, then give clients the new public key"
        )
    return LocalRsaKey(key, _created(key_path, meta_path))


def _created(key_path: Path, meta_path: Path) -> int:
    try:
        meta = json.loads(meta_path.read_bytes())
    except FileNotFoundError:
        # A key brought from elsewhere, or the JSON was lost: fix the time once from the PEM's
        # mtime (which ghapt sets to the creation time) so the fingerprint is stable from now on.
        created = int(key_path.stat().st_mtime)
        log.warning("%s is missing; recording the key's creation time as %d", meta_path, created)
        write_atomic(meta_path, json.dumps({"created": created}).encode() + b"\n")
        return created
    except ValueError as exc:
        raise ConfigError(f"{meta_path} is not valid JSON: {exc}") from None
    value = meta.get("created") if isinstance(meta, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise ConfigError(f'{meta_path} must hold {{"created": <Unix seconds>}}, the key\'s creation time')
    return value
