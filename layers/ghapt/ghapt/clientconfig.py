"""What a Debian/Ubuntu client needs: a deb822 source, the key, and an auth.conf.d entry."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit


def sources_entry(url: str, suites: Sequence[str], components: Sequence[str], signed_by: str) -> str:
    """A deb822 ``.sources`` file; ``signed_by`` is a key path (``/etc/apt/keyrings/x.asc``)."""
    return (
        "Types: deb\n"
        f"URIs: {url.rstrip('/')}/\n"
        f"Suites: {' '.join(suites)}\n"
        f"Components: {' '.join(components)}\n"
        f"Signed-By: {signed_by}\n"
    )


def auth_machine(url: str) -> str:
    """The ``machine`` value for ``auth.conf``.

    Since apt 1.9.5 an entry without a scheme only matches https, so plain http must be named
    (``machine http://127.0.0.1:8080``) or apt sends no credentials at all."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    host = f"{parts.netloc}{path}"
    return f"http://{host}" if parts.scheme == "http" else host


def auth_entry(url: str, login: str, password: str) -> str:
    """One ``auth.conf.d`` line (the file must be mode 0600)."""
    if any(c.isspace() for c in login + password):
        raise ValueError("auth.conf logins and passwords cannot contain whitespace")
    return f"machine {auth_machine(url)} login {login} password {password}\n"
