"""Files that must never be seen half-written: state, keys and the users file.

Every writer in the package goes through these two helpers, so a crash or a concurrent
reader can only ever see the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from ghapt.core.errors import ConfigError


def _write_temp(path: Path, data: bytes, mode: int) -> str:
    """A fully written, fsynced temporary file beside ``path``; the caller moves it into place."""
    import tempfile  # with shutil and random: 10 ms a rebuild (which writes no such file) never needs

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # explicit, whatever the umask
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` in one step (temporary file, fsync, rename)."""
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def create_secret_once(path: Path, make: Callable[[], bytes], *, min_bytes: int, what: str) -> bytes:
    """The contents of the secret file ``path``, created with ``make()`` (mode 0600) if absent.

    The file is written whole under a temporary name and then hard-linked into place, which
    fails if another process got there first: every process ends up with the same secret and
    no reader ever sees a partial one. A file readable by others, or shorter than
    ``min_bytes`` (a truncated copy), is a ``ConfigError`` naming the file."""
    if not path.exists():
        tmp = _write_temp(path, make(), 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # someone else created it first; use theirs
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot be read ({exc.strerror})") from None
    if mode & 0o077:
        raise ConfigError(f"{what} {path} is readable by others (mode {mode:04o}): run `chmod 600 {path}`")
    if len(data) < min_bytes:
        raise ConfigError(
            f"{what} {path} is too short ({len(data)} bytes, at least {min_bytes} expected): "
            "it is truncated or not ghapt's; move it away to create a new one"
        )
    return data
