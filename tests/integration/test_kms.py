"""The OpenPGP signer over a KMS key (moto), verified with the real gpgv (and sqv when installed).

moto's KMS ignores ``MessageType=DIGEST`` (it hashes the digest again, unlike AWS). The
``kms`` fixture checks whether the installed moto still does that and, if so, patches moto's
Sign handler so it treats a DIGEST message the way AWS does (tests/support/motokms.py).
Production code is untouched and keeps sending DIGEST; ``test_sign_sends_the_digest_not_the_message``
pins that. What every signer must do is in contract/test_signer.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from ghapt.aws.kms import KmsKey, kms_signer
from ghapt.core.errors import ConfigError, GhaptError
from ghapt.core.ports import Signer
from ghapt.signing.openpgp import OpenPGPSigner
from moto import mock_aws
from moto.kms.responses import KmsResponse

from tests.support.gpg import (
    RELEASE,
    SQV,
    TEXTS,
    apt_split,
    gpg,
    sqv_ok,
    validsig,
    verify_detached,
    verify_inrelease,
)
from tests.support.motokms import AWS_TEST_ENV, PKCS1_SHA256, REGION, sign_like_aws


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def raw_moto() -> Iterator[Any]:
    """A moto KMS client exactly as moto behaves."""
    with mock_aws():
        yield boto3.client("kms", region_name=REGION)


@pytest.fixture
def kms(moto_ignores_digest: bool, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto KMS client whose Sign honours MessageType=DIGEST like AWS."""
    if moto_ignores_digest:
        monkeypatch.setattr(KmsResponse, "sign", sign_like_aws)
    with mock_aws():
        yield boto3.client("kms", region_name=REGION)


def create_key(client: Any, spec: str = "RSA_3072", usage: str = "SIGN_VERIFY") -> dict[str, Any]:
    meta: dict[str, Any] = client.create_key(KeySpec=spec, KeyUsage=usage, Description="ghapt")["KeyMetadata"]
    return meta


def record_calls(client: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every KMS operation the client is asked to make, with its parameters, in order."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    client.meta.events.register("provide-client-params.kms", record)
    return calls


# --- the test fixture itself ---------------------------------------------------------------------
def test_fixture_signs_a_digest_like_aws(kms: Any) -> None:
    arn = create_key(kms)["Arn"]
    message = b"Origin: ghapt\n"
    raw = kms.sign(KeyId=arn, Message=message, MessageType="RAW", SigningAlgorithm=PKCS1_SHA256)
    digest = kms.sign(
        KeyId=arn,
        Message=hashlib.sha256(message).digest(),
        MessageType="DIGEST",
        SigningAlgorithm=PKCS1_SHA256,
    )
    assert raw["Signature"] == digest["Signature"]  # PKCS#1 v1.5 is deterministic
    with pytest.raises(ClientError, match="invalid length"):
        kms.sign(KeyId=arn, Message=b"x" * 31, MessageType="DIGEST", SigningAlgorithm=PKCS1_SHA256)


def test_with_moto_as_is_a_double_hashed_signature_is_refused(
    raw_moto: Any, moto_ignores_digest: bool
) -> None:
    if not moto_ignores_digest:
        pytest.skip("this moto honours MessageType=DIGEST; the fixture patch can go")
    signer = kms_signer(raw_moto, create_key(raw_moto)["Arn"])
    with pytest.raises(GhaptError, match="does not verify"):
        signer.detach_sign(RELEASE)


# --- signing and verifying -------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "bits"), [("RSA_3072", "3072"), ("RSA_4096", "4096")])
def test_kms_key_signs_what_gpgv_accepts(kms: Any, spec: str, bits: str, tmp_path: Path) -> None:
    meta = create_key(kms, spec)
    signer = kms_signer(kms, meta["KeyId"])
    assert isinstance(signer, Signer)
    keyring = tmp_path / "repo.gpg"
    keyring.write_bytes(signer.public_key())

    shown = gpg(tmp_path / "home", "--with-colons", "--show-keys", keyring).stdout.decode()
    pub = next(line.split(":") for line in shown.splitlines() if line.startswith("pub:"))
    assert (pub[2], pub[3], pub[5]) == (bits, "1", str(int(meta["CreationDate"].timestamp())))
    assert f"fpr:::::::::{signer.fingerprint}:" in shown
    dearmored = gpg(tmp_path / "home", "--dearmor", stdin=signer.public_key_armored().encode())
    assert dearmored.stdout == signer.public_key()

    for name in ("release", "dashes", "trailing-blanks", "no-final-newline"):
        data = TEXTS[name]
        inrelease = signer.clearsign(data)
        code, status, _ = verify_inrelease(tmp_path / f"in-{name}", keyring, inrelease)
        assert code == 0, (name, status)
        assert validsig(status)[0] == signer.fingerprint
        assert validsig(status)[-3:-1] == ["8", "01"]
        message, signature = apt_split(inrelease)
        code, status = verify_detached(tmp_path / f"split-{name}", keyring, signature, message)
        assert code == 0, (name, status)

        detached = signer.detach_sign(data)
        code, status = verify_detached(tmp_path / f"det-{name}", keyring, detached, data)
        assert code == 0, (name, status)
        assert validsig(status)[-3:-1] == ["8", "00"]
        if SQV is not None:
            assert sqv_ok(keyring, detached, data, tmp_path / f"sqv-{name}")
            assert sqv_ok(keyring, signature, message, tmp_path / f"sqv-split-{name}")

    inrelease = signer.clearsign(RELEASE)
    tampered = inrelease.replace(b"Suite: stable", b"Suite: stablE")
    code, status, _ = verify_inrelease(tmp_path / "tampered", keyring, tampered)
    assert code != 0
    assert "BADSIG" in status


def test_sign_sends_the_digest_not_the_message(kms: Any, tmp_path: Path) -> None:
    meta = create_key(kms)
    signer = kms_signer(kms, meta["KeyId"])
    signer.public_key()
    calls = record_calls(kms)
    signature = signer.detach_sign(RELEASE)

    assert [op for op, _ in calls] == ["Sign"]
    params = calls[0][1]
    assert params["KeyId"] == meta["Arn"]
    assert params["MessageType"] == "DIGEST"
    assert params["SigningAlgorithm"] == PKCS1_SHA256
    assert len(params["Message"]) == 32
    assert params["Message"] != RELEASE
    # It is the OpenPGP hash gpg recomputes: the packet's "begin of digest" matches.
    packets = gpg(tmp_path / "home", "--list-packets", stdin=signature).stdout.decode()
    first_two = params["Message"][:2].hex()
    assert f"begin of digest {first_two[:2]} {first_two[2:]}" in packets


def test_kms_is_asked_once_per_instance(kms: Any) -> None:
    key_id = create_key(kms)["KeyId"]
    calls = record_calls(kms)
    signer = kms_signer(kms, key_id)
    assert calls == []  # building a signer costs no KMS call
    fingerprint = signer.fingerprint
    signer.public_key()
    signer.public_key_armored()
    signer.clearsign(RELEASE)
    signer.detach_sign(RELEASE)
    assert signer.fingerprint == fingerprint
    # one Sign for the self-certification, one per document
    assert [op for op, _ in calls] == ["DescribeKey", "GetPublicKey", "Sign", "Sign", "Sign"]


def test_fingerprint_is_stable_across_instances(kms: Any) -> None:
    key_id = create_key(kms)["KeyId"]
    first = kms_signer(kms, key_id)
    second = kms_signer(boto3.client("kms", region_name=REGION), key_id)
    assert first.fingerprint == second.fingerprint
    assert first.public_key() == second.public_key()


def test_alias_is_resolved_once_and_sign_uses_the_arn(kms: Any) -> None:
    meta = create_key(kms)
    kms.create_alias(AliasName="alias/ghapt-signing", TargetKeyId=meta["KeyId"])
    key = KmsKey(kms, "alias/ghapt-signing")
    assert key.arn == meta["Arn"]
    calls = record_calls(kms)
    OpenPGPSigner(key).detach_sign(RELEASE)
    assert {params["KeyId"] for op, params in calls if op in ("Sign", "GetPublicKey")} == {meta["Arn"]}


# --- keys that cannot sign Release files -------------------------------------------------------------
@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_SECG_P256K1"])
def test_wrong_key_spec_is_a_config_error(kms: Any, spec: str) -> None:
    signer = kms_signer(kms, create_key(kms, spec)["KeyId"])
    calls = record_calls(kms)
    with pytest.raises(ConfigError, match=f"key spec {spec}.*RSA_3072 or RSA_4096"):
        signer.clearsign(RELEASE)
    assert "Sign" not in [op for op, _ in calls]


def test_encryption_key_is_a_config_error(kms: Any) -> None:
    signer = kms_signer(kms, create_key(kms, "RSA_3072", "ENCRYPT_DECRYPT")["KeyId"])
    with pytest.raises(ConfigError, match="key usage ENCRYPT_DECRYPT; create it with SIGN_VERIFY"):
        _ = signer.fingerprint


def test_disabled_key_is_a_config_error(kms: Any) -> None:
    key_id = create_key(kms)["KeyId"]
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ConfigError, match="is Disabled"):
        kms_signer(kms, key_id).public_key()


def test_missing_key_is_a_config_error(kms: Any) -> None:
    with pytest.raises(ConfigError, match=r"NotFoundException.*GHAPT_KMS_KEY_ID"):
        kms_signer(kms, "alias/does-not-exist").public_key()


def test_empty_key_id_is_a_config_error(kms: Any) -> None:
    with pytest.raises(ConfigError, match="GHAPT_KMS_KEY_ID"):
        kms_signer(kms, "")
