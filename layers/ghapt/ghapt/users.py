"""Basic Auth users: salted scrypt hashes, a local JSON file, and the Secrets Manager twin.

The same JSON shape, ``{"users": {"alice": "scrypt$16384$8$1$<salt>$<hash>"}}``, is stored in
the local users file and in the Lambda's Secrets Manager secret, so ``ghapt users add`` output
can be pasted into either. Hashes are slow on purpose: a leaked file must not give passwords away.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import ConfigError

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

    def save(self, users: dict[str, str]) -> None:
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


class UserFile(EditableUsers):
    """The local users file, edited by ``ghapt users``. Written atomically with mode 0600."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, str]:
        """Every user and hash; an absent file means no users yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{self.path}: not valid JSON ({exc.__class__.__name__})") from None
        return parse_users(document, str(self.path))

    def save(self, users: Mapping[str, str]) -> None:
        """Replace the file in one step, so a reader never sees half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(dump_users(users))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@runtime_checkable
class UserStore(Protocol):
    """Where the authorizer looks users up."""

    def lookup(self, name: str) -> str | None:
        """The stored hash of ``name``, or None when there is no such user."""
        ...


class FileUsers:
    """Users from the local file, re-read when it changes so ``users add`` needs no restart."""

    def __init__(self, path: Path | str) -> None:
        self._file = UserFile(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, str] = {}

    def lookup(self, name: str) -> str | None:
        return self._current().get(name)

    def _current(self) -> dict[str, str]:
        try:
            st = os.stat(self._file.path)
        except FileNotFoundError:
            return {}
        # The inode changes on every atomic replace; mtime and size catch in-place edits.
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._users = self._file.load()
                self._stamp = stamp
            return self._users


def _powertools_secret(name: str, max_age: int) -> str:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(name, max_age=max_age)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


class SecretUsers:
    """Users from a Secrets Manager secret (same JSON as the file), cached for ``max_age`` s.

    ``fetch`` reads the secret's text; the default goes through Powertools ``get_secret``,
    which caches too. Parsed users are kept, so a warm function pays one fetch per ``max_age``."""

    def __init__(
        self,
        secret_arn: str,
        max_age: int = 300,
        *,
        fetch: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_arn = secret_arn
        self.max_age = max_age
        self._fetch = fetch or (lambda name: _powertools_secret(name, max_age))
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, str] | None = None
        self._loaded_at = 0.0

    def lookup(self, name: str) -> str | None:
        return self._current().get(name)

    def _current(self) -> dict[str, str]:
        with self._lock:
            now = self._clock()
            if self._users is None or now - self._loaded_at >= self.max_age:
                self._users = self._load()
                self._loaded_at = now
            return self._users

    def _load(self) -> dict[str, str]:
        source = f"users secret {self.secret_arn}"
        try:
            text = self._fetch(self.secret_arn)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{source}: cannot be read ({exc.__class__.__name__})") from None
        try:
            document = json.loads(text)
        except ValueError:
            raise ConfigError(f"{source}: not valid JSON") from None
        return parse_users(document, source)
