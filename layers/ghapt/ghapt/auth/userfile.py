"""The local users file: what ``ghapt users`` edits and what the local authorizer reads.

One class for both sides, so an edit and a lookup can never disagree about the format or
the path. Lookups re-read the file when it changes, so ``users add`` needs no restart.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from ghapt.auth.passwords import EditableUsers, dump_users, parse_users
from ghapt.core.errors import ConfigError
from ghapt.local.files import write_atomic


class UserFile(EditableUsers):
    """``{"users": {name: hash}}`` in a JSON file, written atomically with mode 0600."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, str] = {}

    @property
    def location(self) -> str:
        return str(self.path)

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
        write_atomic(self.path, dump_users(users).encode("utf-8"))

    def lookup(self, name: str) -> str | None:
        """The stored hash of ``name`` (``UserStore``), from the file as it is now."""
        return self._current().get(name)

    def version(self) -> tuple[int, ...] | None:
        """A stamp that changes whenever the file does (None when absent): a local server drops
        every cached authorization decision when it changes, so ``users remove`` and a new
        password take effect on the next request."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def _current(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        # The inode changes on every atomic replace; mtime and size catch in-place edits.
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._users = self.load()
                self._stamp = stamp
            return self._users
