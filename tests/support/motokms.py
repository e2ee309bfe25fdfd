"""moto's KMS, made to sign a ``MessageType=DIGEST`` message the way AWS does.

moto 5 ignores ``MessageType=DIGEST`` and hashes the digest again, so a signature over a
digest never verifies. ``sign_like_aws`` replaces moto's Sign handler for such messages (the
fixtures install it only while ``honours_digest`` says moto still needs it); production code
is untouched and keeps sending DIGEST."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.serialization import load_der_public_key
from moto.kms import utils as moto_kms_utils
from moto.kms.exceptions import ValidationException
from moto.kms.responses import KmsResponse

REGION = "eu-west-1"
PKCS1_SHA256 = "RSASSA_PKCS1_V1_5_SHA_256"
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
MOTO_SIGN = KmsResponse.sign
_DIGEST_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RSASSA_PKCS1_V1_5_SHA_256": hashes.SHA256,
    "RSASSA_PKCS1_V1_5_SHA_384": hashes.SHA384,
    "RSASSA_PKCS1_V1_5_SHA_512": hashes.SHA512,
}


def sign_like_aws(self: KmsResponse) -> str:
    """moto's Sign, except that a DIGEST message is signed as the digest it is (as AWS does)."""
    if self._get_param("MessageType") != "DIGEST":
        return MOTO_SIGN(self)
    algorithm = self._get_param("SigningAlgorithm")
    if algorithm not in _DIGEST_HASHES:
        raise NotImplementedError(f"test fixture: DIGEST signing with {algorithm}")
    key = self.kms_backend.describe_key(self._get_param("KeyId"))
    if key.key_usage != "SIGN_VERIFY" or algorithm not in key.signing_algorithms:
        return MOTO_SIGN(self)  # let moto raise its own error
    digest = self._get_param("Message")
    hash_algorithm = _DIGEST_HASHES[algorithm]()
    if len(digest) != hash_algorithm.digest_size:  # AWS refuses a digest of the wrong length
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    private = key.private_key
    assert isinstance(private, moto_kms_utils.RSAPrivateKey), "only PKCS#1 v1.5 (RSA) digests are patched"
    signature = private.private_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hash_algorithm))
    return json.dumps(
        {"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(), "SigningAlgorithm": algorithm}
    )


def honours_digest(client: Any) -> bool:
    """Whether this (mocked) KMS signs a DIGEST message as the digest, as AWS does."""
    key = client.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    digest = hashlib.sha256(b"probe").digest()
    sig = client.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm=PKCS1_SHA256)
    public = load_der_public_key(client.get_public_key(KeyId=key)["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    try:
        public.verify(sig["Signature"], digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    except InvalidSignature:  # moto signed the digest's digest
        return False
    return True
