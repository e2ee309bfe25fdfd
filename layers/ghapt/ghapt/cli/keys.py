"""``ghapt keys``: create (local) or show (local or KMS) the signing key and export its public half."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ghapt.cli.options import (
    KMS_FLAG,
    SETTING_FLAGS,
    Subparsers,
    add_settings,
)
from ghapt.core.errors import ConfigError
from ghapt.core.ports import Signer
from ghapt.core.settings import Settings
from ghapt.local.files import write_atomic


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


def signer_for(settings: Settings, kms_client: Any = None) -> tuple[Signer, KeyInfo]:
    """The settings' signer (creating a local key on first use) and what it is."""
    from ghapt.bootstrap import Services

    services = Services(settings)
    if kms_client is not None:
        services.kms_client = kms_client
    if services.uses_kms:
        signer = services.signer
        fingerprint = signer.fingerprint  # the first KMS calls: DescribeKey, GetPublicKey
        info = KeyInfo("kms", settings.kms_key_id, fingerprint, signer.key_id, signer.created, False)
        return signer, info
    from ghapt.signing.localkey import KEY_FILE

    key_path = Path(settings.state_dir or ".") / KEY_FILE
    existed = key_path.exists()
    signer = services.signer
    info = KeyInfo("local", str(key_path), signer.fingerprint, signer.key_id, signer.created, not existed)
    return signer, info


def export_public_key(signer: Signer, target: str, *, armor: bool) -> None:
    """Write the public key to ``target`` (``-`` is stdout): armored ``.asc`` or binary ``.gpg``."""
    data = signer.public_key_armored().encode() if armor else signer.public_key()
    if target == "-":
        if not armor and sys.stdout.isatty():
            raise ConfigError("refusing to write a binary key to a terminal: use --armor or --export FILE")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    write_atomic(Path(target), data, mode=0o644)


def run(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    signer, info = signer_for(settings)
    if args.export == "-":
        print(info.describe(), file=sys.stderr)
        export_public_key(signer, "-", armor=args.armor)
        return 0
    print(info.describe())
    if args.export:
        export_public_key(signer, args.export, armor=args.armor)
        kind = "armored (.asc)" if args.armor else "binary (.gpg)"
        print(f"exported the public key, {kind}, to {args.export}")
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "keys",
        help="create (local) or show the signing key and its fingerprint; export the public key",
        description="Creates the local signing key in --state DIR on first use, or shows a KMS key "
        "(--kms-key-id); prints the fingerprint and exports the public key.",
    )
    add_settings(p, {k: v for k, v in SETTING_FLAGS.items() if k == "--state"})
    add_settings(p, KMS_FLAG)
    p.add_argument("--export", metavar="FILE", help="write the public key to FILE ('-' for stdout)")
    armor = p.add_mutually_exclusive_group()
    armor.add_argument(
        "--armor", dest="armor", action="store_true", default=True, help="ASCII-armored .asc (default)"
    )
    armor.add_argument("--binary", dest="armor", action="store_false", help="binary .gpg keyring")
    p.set_defaults(func=run)
