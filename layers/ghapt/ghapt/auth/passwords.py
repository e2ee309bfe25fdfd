"""Basic Auth passwords and the users document: salted scrypt hashes and ``{"users": {...}}``.

The same JSON shape, ``{"users": {"alice": "scrypt$16384$8$1$<salt>$<hash>"}}``, is stored in
the local users file (``ghapt.auth.userfile``) and in the Lambda's Secrets Manager secret
(``ghapt.aws.usersecret``), so ``ghapt users add`` output can be pasted into either. Hashes are
slow on purpose: a leaked file must not give passwords away.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

from ghapt.core.errors import ConfigError

SCHEME = "scrypt"
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_NAME_LENGTH = 64
# Bounds on parameters read back from storage, so a corrupted or hostile file cannot make a
# verification eat gigabytes of memory.
_MAX_N = 2**16
_MAX_R = 16
_MAX_P = 4


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # scrypt needs about 128 * r * n bytes; leave room for OpenSSL's bookkeeping.
    maxmem = 2 * 128 * r * n * p + 2**20
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def hash_password(password: str) -> str:
    """A self-describing, salted scrypt hash: ``scrypt$N$r$p$<b64 salt>$<b64 hash>``."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        return None
    if len(salt) < 8 or not 16 <= len(digest) <= 64:
        return None
    return n, r, p, salt, digest


def verify_password(stored: str, password: str) -> bool:
    """True when ``password`` matches ``stored``; compared in constant time.

    A malformed stored hash never matches (fail closed) but still costs one scrypt, so the
    answer's timing says nothing about the stored value."""
    parsed = _parse(stored)
    if parsed is None:
        _dummy_check(password)
        return False
    n, r, p, salt, digest = parsed
    candidate = _scrypt(password, salt, n, r, p, len(digest))
    return hmac.compare_digest(candidate, digest)


_DUMMY_SALT = secrets.token_bytes(SALT_BYTES)


def _dummy_check(password: str) -> None:
    _scrypt(password, _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)


def verify_unknown(password: str) -> bool:
    """Spend what a real verification costs, then fail: an unknown user must not answer faster."""
    _dummy_check(password)
    return False


def generate_password() -> str:
    """A strong random password (192 bits, URL-safe, so it fits auth.conf and shell lines)."""
    return secrets.token_urlsafe(24)


def validate_name(name: str) -> str:
    """Return ``name`` if it can be a Basic Auth login; raise ``ValueError`` saying why not.

    A colon would split user from password; whitespace and control characters would break
    apt's auth.conf lines and log readability."""
    if not name:
        raise ValueError("the user name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"the user name is longer than {MAX_NAME_LENGTH} characters")
    if ":" in name:
        raise ValueError("the user name contains ':'")
    if any(c.isspace() or not c.isprintable() for c in name):
        raise ValueError("the user name contains whitespace or control characters")
    return name


def parse_users(document: Any, source: str) -> dict[str, str]:
    """Validate the ``{"users": {name: hash}}`` document; ``source`` names it in errors."""
    if not isinstance(document, Mapping) or not isinstance(document.get("users"), Mapping):
        raise ConfigError(f'{source}: expected a JSON object {{"users": {{"name": "scrypt$..."}}}}')
    users: dict[str, str] = {}
    for name, stored in document["users"].items():
        if not isinstance(name, str) or not isinstance(stored, str):
            raise ConfigError(f"{source}: user names and hashes must be strings")
        try:
            validate_name(name)
        except ValueError as exc:
            raise ConfigError(f"{source}: bad user name {name!r}: {exc}") from None
        if _parse(stored) is None:
            raise ConfigError(f"{source}: the hash of user {name!r} is not a scrypt$... string")
        users[name] = stored
    return users


def dump_users(users: Mapping[str, str]) -> str:
    """The JSON text of the users document (sorted, so diffs stay small)."""
    return json.dumps({"users": dict(sorted(users.items()))}, indent=2) + "\n"


class EditableUsers:
    """What ``ghapt users`` edits: a users document with ``load``/``save`` (a file, a secret)."""

    def load(self) -> dict[str, str]:
        raise NotImplementedError

    def save(self, users: Mapping[str, str]) -> None:
        raise NotImplementedError

    def add(self, name: str, password: str) -> None:
        """Create ``name`` or set a new password for it; only the hash is stored."""
        validate_name(name)
        users = self.load()
        users[name] = hash_password(password)
        self.save(users)

    def remove(self, name: str) -> bool:
        """Delete ``name``; False when there was no such user."""
        users = self.load()
        if users.pop(name, None) is None:
            return False
        self.save(users)
        return True

    def names(self) -> list[str]:
        return sorted(self.load())
