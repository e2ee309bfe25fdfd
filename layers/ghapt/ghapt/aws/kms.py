"""An AWS KMS asymmetric key as the OpenPGP signing key; the private key never leaves KMS.

KMS caps a RAW message at 4096 bytes, so the OpenPGP hash is computed here and KMS signs the
digest (``MessageType=DIGEST``). The key's ``CreationDate`` is the OpenPGP creation time, which
makes the fingerprint the same in every Lambda instance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ghapt.core.errors import ConfigError, UpstreamError
from ghapt.signing.openpgp import DEFAULT_UID, OpenPGPSigner

SIGNING_ALGORITHM = "RSASSA_PKCS1_V1_5_SHA_256"
KEY_SPECS = ("RSA_3072", "RSA_4096")
# Errors that mean the key or the role is set up wrongly, not that AWS is having a bad day.
_CONFIG_ERRORS = {
    "NotFoundException",
    "AccessDeniedException",
    "DisabledException",
    "KMSInvalidStateException",
    "InvalidKeyUsageException",
    "UnsupportedOperationException",
}


class KmsKey:
    """A ``RawKey`` over a KMS key (id, ARN or alias) and a boto3 KMS client.

    DescribeKey and GetPublicKey run once per instance (at the first use, i.e. once per cold
    start). Sign always names the key by the ARN DescribeKey returned, so an alias moved to
    another key later cannot make this instance sign with a key its public key does not match."""

    def __init__(self, client: Any, key_id: str) -> None:
        if not key_id:
            raise ConfigError("GHAPT_KMS_KEY_ID is required with GHAPT_SIGNER=kms")
        self._client = client
        self._key_id = key_id
        self._lock = threading.Lock()
        self._arn: str | None = None
        self._created: int | None = None
        self._numbers: tuple[int, int] | None = None

    @property
    def created(self) -> int:
        self._load()
        assert self._created is not None
        return self._created

    @property
    def arn(self) -> str:
        self._load()
        assert self._arn is not None
        return self._arn

    def public_numbers(self) -> tuple[int, int]:
        self._load()
        assert self._numbers is not None
        return self._numbers

    def sign_digest(self, digest: bytes) -> bytes:
        if len(digest) != 32:
            raise ValueError(f"expected a SHA-256 digest (32 bytes), got {len(digest)} bytes")
        reply = self._call(
            "Sign",
            KeyId=self.arn,
            Message=digest,
            MessageType="DIGEST",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        return bytes(reply["Signature"])

    # -----------------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._numbers is not None:
            return
        with self._lock:
            if self._numbers is not None:
                return
            meta = self._call("DescribeKey", KeyId=self._key_id)["KeyMetadata"]
            arn = meta["Arn"]
            self._check(meta)
            der = self._call("GetPublicKey", KeyId=arn)["PublicKey"]
            public = load_der_public_key(bytes(der))
            if not isinstance(public, rsa.RSAPublicKey):
                raise ConfigError(f"KMS key {self._key_id} is not an RSA key")
            numbers = public.public_numbers()
            self._arn = arn
            self._created = int(meta["CreationDate"].timestamp())
            self._numbers = (numbers.n, numbers.e)

    def _check(self, meta: dict[str, Any]) -> None:
        name = f"KMS key {self._key_id} (GHAPT_KMS_KEY_ID)"
        spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")
        if spec not in KEY_SPECS:
            raise ConfigError(
                f"{name} has key spec {spec}; ghapt needs an RSA_3072 or RSA_4096 key "
                "(apt 3's sqv rejects weak keys, and OpenPGP needs RSA here)"
            )
        if meta.get("KeyUsage") != "SIGN_VERIFY":
            raise ConfigError(f"{name} has key usage {meta.get('KeyUsage')}; create it with SIGN_VERIFY")
        if SIGNING_ALGORITHM not in (meta.get("SigningAlgorithms") or ()):
            raise ConfigError(f"{name} does not offer the {SIGNING_ALGORITHM} signing algorithm")
        state = meta.get("KeyState", "Enabled")
        if state != "Enabled":
            raise ConfigError(f"{name} is {state}; it must be Enabled to sign")

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = {"DescribeKey": "describe_key", "GetPublicKey": "get_public_key", "Sign": "sign"}
        try:
            reply: dict[str, Any] = getattr(self._client, method[operation])(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = f"KMS {operation} on {self._key_id} failed: {code}: {exc}"
            if code in _CONFIG_ERRORS:
                raise ConfigError(
                    message + " (check GHAPT_KMS_KEY_ID and the role's kms permissions)"
                ) from exc
            raise UpstreamError(message) from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"KMS {operation} on {self._key_id} failed: {exc}") from exc
        return reply


def kms_signer(
    client: Any, key_id: str, uid: str = DEFAULT_UID, *, now: Callable[[], int] = lambda: int(time.time())
) -> OpenPGPSigner:
    """The ``Signer`` of a Lambda deployment (``GHAPT_SIGNER=kms``). Makes no KMS call yet."""
    return OpenPGPSigner(KmsKey(client, key_id), uid, now=now)
