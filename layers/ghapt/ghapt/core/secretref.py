"""``NAME#key`` secret references: one key of a JSON secret, for every ``Secrets`` adapter.

``#`` cannot occur in a Secrets Manager name or ARN, so ``get(arn + "#token")`` is unambiguous.
Error messages name the secret and the key, never the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ghapt.core.errors import ConfigError


def resolve(name: str, raw: Callable[[str], str]) -> str:
    """The secret ``name`` read through ``raw``, or one key of it for ``NAME#key``."""
    base, sep, key = name.partition("#")
    value = raw(base)
    return _json_key(base, value, key) if sep else value


def _json_key(name: str, raw: str, key: str) -> str:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise ConfigError(f"secret {name!r} is not JSON, so it has no key {key!r}") from None
    if not isinstance(obj, dict) or key not in obj or obj[key] in (None, ""):
        raise ConfigError(f"secret {name!r} has no key {key!r}")
    value = obj[key]
    return value if isinstance(value, str) else json.dumps(value)
