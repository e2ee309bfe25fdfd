"""Secrets for local mode: environment variables, or files (``ghapt serve``, the CLI)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ghapt.core.errors import ConfigError
from ghapt.core.secretref import resolve


class EnvSecrets:
    """Secrets from environment variables, or from files named in ``files`` (name -> path).

    A non-empty environment variable wins over a file. File contents are stripped of
    surrounding whitespace (``echo token > file`` leaves a newline)."""

    def __init__(self, environ: Mapping[str, str], files: Mapping[str, Path] | None = None) -> None:
        self.environ = environ
        self.files = dict(files or {})

    def get(self, name: str) -> str:
        return resolve(name, self._raw)

    def _raw(self, name: str) -> str:
        value = self.environ.get(name, "")
        if value:
            return value
        path = self.files.get(name)
        if path is not None:
            try:
                text = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"secret {name!r}: cannot read {path}: {exc.strerror}") from None
            if text:
                return text
            raise ConfigError(f"secret {name!r}: the file {path} is empty")
        raise ConfigError(f"secret {name!r} is not set (environment variable {name})")
