"""The Signer contract, run over every adapter: the local key and a KMS key (moto, with its
DIGEST quirk patched, see tests/support/motokms.py).

What apt relies on: the key a client installs (binary or armored, as Signed-By or imported)
verifies InRelease and Release.gpg with the real gpgv, also after apt's own InRelease split
and with sqv (apt 3) when installed; any change to the text breaks the signature."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from ghapt.aws.kms import kms_signer
from ghapt.core.ports import Signer
from ghapt.signing.localkey import local_signer
from moto import mock_aws
from moto.kms.responses import KmsResponse

from tests.support.gpg import (
    RELEASE,
    SQV,
    TEXTS,
    apt_split,
    expected_lines,
    gpg,
    sqv_ok,
    validsig,
    verify_detached,
    verify_inrelease,
    write_keyrings,
)
from tests.support.motokms import AWS_TEST_ENV, REGION, sign_like_aws


@pytest.fixture(scope="module", params=["local", "kms"])
def signer(
    request: pytest.FixtureRequest, signing_key_state: Path, moto_ignores_digest: bool
) -> Iterator[Signer]:
    """One signer per adapter for the whole module (their keys cost a generation each)."""
    if request.param == "local":
        yield local_signer(signing_key_state)  # the run's key, made by ghapt (tests/conftest.py)
        return
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_TEST_ENV.items():
            mp.setenv(name, value)
        if moto_ignores_digest:
            mp.setattr(KmsResponse, "sign", sign_like_aws)
        with mock_aws():
            kms = boto3.client("kms", region_name=REGION)
            arn = kms.create_key(KeySpec="RSA_3072", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
            yield kms_signer(kms, arn)


@pytest.fixture(scope="module")
def keyrings(signer: Signer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The public key in every form a client may hold it: Signed-By .gpg and .asc, imported."""
    return write_keyrings(signer, tmp_path_factory.mktemp("keyrings"))


def test_is_a_signer(signer: Signer) -> None:
    assert isinstance(signer, Signer)


def test_the_fingerprint_is_the_public_keys(signer: Signer, tmp_path: Path) -> None:
    fingerprint = signer.fingerprint
    assert len(fingerprint) == 40
    assert fingerprint == fingerprint.upper()
    int(fingerprint, 16)
    (tmp_path / "k.gpg").write_bytes(signer.public_key())
    shown = gpg(tmp_path / "home", "--with-colons", "--show-keys", tmp_path / "k.gpg")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split(":") for line in shown.stdout.decode().splitlines()]
    assert [r[9] for r in rows if r[0] == "fpr"] == [fingerprint]
    pub = next(r for r in rows if r[0] == "pub")
    assert pub[3] == "1", pub  # RSA
    assert int(pub[2]) >= 3072, pub  # strong enough for sqv
    assert "s" in pub[11], "usable for signing"


def test_the_key_and_its_fingerprint_do_not_change(signer: Signer) -> None:
    assert signer.public_key() == signer.public_key()
    assert signer.public_key_armored() == signer.public_key_armored()
    assert signer.fingerprint == signer.fingerprint


def test_the_armored_key_is_the_binary_key(signer: Signer, tmp_path: Path) -> None:
    armored = signer.public_key_armored()
    assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    assert armored.endswith("-----END PGP PUBLIC KEY BLOCK-----\n")
    dearmored = gpg(tmp_path / "home", "--dearmor", stdin=armored.encode())
    assert dearmored.returncode == 0, dearmored.stderr
    assert dearmored.stdout == signer.public_key()


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_inrelease_verifies_with_every_form_of_the_key(
    signer: Signer, keyrings: dict[str, Path], tmp_path: Path, name: str
) -> None:
    data = TEXTS[name]
    inrelease = signer.clearsign(data)
    want = b"".join(line + b"\n" for line in expected_lines(data))
    for ring_name, ring in keyrings.items():
        code, status, extracted = verify_inrelease(tmp_path / ring_name, ring, inrelease)
        assert code == 0, (ring_name, status)
        assert validsig(status)[0] == signer.fingerprint
        assert extracted == want
    message, signature = apt_split(inrelease)  # what apt hands to gpgv (and apt 3 to sqv)
    code, status = verify_detached(tmp_path / "split", keyrings["signed-by-gpg"], signature, message)
    assert code == 0, status
    if SQV is not None:
        assert sqv_ok(keyrings["signed-by-gpg"], signature, message, tmp_path / "sqv")


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_release_gpg_verifies_with_every_form_of_the_key(
    signer: Signer, keyrings: dict[str, Path], tmp_path: Path, name: str
) -> None:
    data = TEXTS[name]
    signature = signer.detach_sign(data)
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----\n")
    for ring_name, ring in keyrings.items():
        code, status = verify_detached(tmp_path / ring_name, ring, signature, data)
        assert code == 0, (ring_name, status)
        assert validsig(status)[0] == signer.fingerprint
    if SQV is not None:
        assert sqv_ok(keyrings["signed-by-gpg"], signature, data, tmp_path / "sqv")


def test_a_changed_text_fails_both_signatures(
    signer: Signer, keyrings: dict[str, Path], tmp_path: Path
) -> None:
    ring = keyrings["signed-by-gpg"]
    tampered = RELEASE.replace(b"Suite: stable", b"Suite: stablE")
    inrelease = signer.clearsign(RELEASE).replace(b"Suite: stable", b"Suite: stablE")
    code, status, _ = verify_inrelease(tmp_path / "inrelease", ring, inrelease)
    assert code != 0
    assert "BADSIG" in status
    code, status = verify_detached(tmp_path / "detached", ring, signer.detach_sign(RELEASE), tampered)
    assert code != 0
    assert "BADSIG" in status
    if SQV is not None:
        assert not sqv_ok(ring, signer.detach_sign(RELEASE), tampered, tmp_path / "sqv")
