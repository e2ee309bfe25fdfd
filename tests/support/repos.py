"""What the shared fixtures hand out: local repositories, indexed and served."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ghapt.bootstrap import Services

from tests.support.clock import Clock
from tests.support.servers import RunningServer


@dataclass
class LocalRepo:
    """A local repository (releases folder, git metadata store, local key), indexed."""

    services: Services
    deb: Path
    """The one published .deb, as built."""


@dataclass
class ServedRepo(LocalRepo):
    """A ``LocalRepo`` behind the local server."""

    server: RunningServer
    key: Path
    """The repository's public key, armored (what a client puts in its keyring)."""


@dataclass
class TokenRepo(ServedRepo):
    """A ``ServedRepo`` that exchanges OIDC tokens (POST /token) and has one Basic user."""

    clock: Clock
    """Drives the OIDC verifier, the token service and the gateway's policy cache."""

    USER: ClassVar[str] = "alice"
    PASSWORD: ClassVar[str] = "correct-horse-battery"
