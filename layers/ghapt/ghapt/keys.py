"""``ghapt keys``: create (local) or show (local or KMS) the signing key and export its public half."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .settings import Settings


@dataclass(frozen=True)
class KeyInfo:
    backend: str  # "local" or "kms"
    where: str  # the key file or the KMS key id
    fingerprint: str
    key_id: str
    created: int
    created_now: bool

    def describe(self) -> str:
        created = datetime.fromtimestamp(self.created, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        state = " (created now)" if self.created_now else ""
        return "\n".join(
            [
                f"signing key: {self.backend} {self.where}{state}",
                f"fingerprint: {self.fingerprint}",
                f"key id:      {self.key_id}",
                f"created:     {created}",
            ]
        )


def signer_for(settings: Settings, kms_client: Any = None) -> tuple[Any, KeyInfo]:
    """The settings' signer (creating a local key on first use) and what it is."""
    if settings.signer == "kms" or settings.kms_key_id:
        if not settings.kms_key_id:
            raise ConfigError("GHAPT_SIGNER=kms needs GHAPT_KMS_KEY_ID (--kms-key-id ID)")
        from .kms import kms_signer

        if kms_client is None:
            import boto3

            kms_client = boto3.client("kms")
        signer = kms_signer(kms_client, settings.kms_key_id)
        fingerprint = signer.fingerprint  # the first KMS calls: DescribeKey, GetPublicKey
        created = signer._key.created
        return signer, KeyInfo("kms", settings.kms_key_id, fingerprint, signer.key_id, created, False)
    if settings.state_dir is None:
        raise ConfigError(
            "no signing key given: pass --state DIR (GHAPT_STATE_DIR) for the local key, "
            "or --kms-key-id ID (GHAPT_KMS_KEY_ID) for a KMS key"
        )
    from .signing import KEY_FILE, local_signer

    key_path = Path(settings.state_dir) / KEY_FILE
    existed = key_path.exists()
    signer = local_signer(settings.state_dir)
    info = KeyInfo(
        "local", str(key_path), signer.fingerprint, signer.key_id, signer._key.created, not existed
    )
    return signer, info


def export_public_key(signer: Any, target: str, *, armor: bool) -> None:
    """Write the public key to ``target`` (``-`` is stdout): armored ``.asc`` or binary ``.gpg``."""
    data = signer.public_key_armored().encode() if armor else signer.public_key()
    if target == "-":
        if not armor and sys.stdout.isatty():
            raise ConfigError("refusing to write a binary key to a terminal: use --armor or --export FILE")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    path = Path(target)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
