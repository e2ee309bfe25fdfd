"""The OpenPGP signer with a local key, checked with the real gpg, gpgv and (if installed) sqv."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from ghapt.core.errors import ConfigError
from ghapt.core.ports import Signer
from ghapt.signing.localkey import LocalRsaKey, load_or_create_local_key, local_signer
from ghapt.signing.openpgp import OpenPGPSigner, crc24

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
from tests.support.keys import fresh_rsa_key

KEY_TIME = 1_600_000_000
SIG_TIME = 1_700_000_000


# --- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> LocalRsaKey:
    return load_or_create_local_key(tmp_path_factory.mktemp("state"), now=lambda: KEY_TIME)


@pytest.fixture(scope="module")
def signer(key: LocalRsaKey) -> OpenPGPSigner:
    return OpenPGPSigner(key, now=lambda: SIG_TIME)


@pytest.fixture(scope="module")
def other_signer(tmp_path_factory: pytest.TempPathFactory) -> OpenPGPSigner:
    other = load_or_create_local_key(tmp_path_factory.mktemp("other"), now=lambda: KEY_TIME)
    return OpenPGPSigner(other, now=lambda: SIG_TIME)


@pytest.fixture(scope="module")
def keyrings(signer: OpenPGPSigner, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_keyrings(signer, tmp_path_factory.mktemp("keyrings"))


@pytest.fixture(scope="module")
def keyring(keyrings: dict[str, Path]) -> Path:
    return keyrings["signed-by-gpg"]


# --- the public key -------------------------------------------------------------------------------
def test_signer_implements_the_port(signer: OpenPGPSigner) -> None:
    assert isinstance(signer, Signer)


def test_public_key_is_rsa3072_with_a_valid_self_signature(signer: OpenPGPSigner, tmp_path: Path) -> None:
    (tmp_path / "k.gpg").write_bytes(signer.public_key())
    shown = gpg(tmp_path / "home", "--with-colons", "--show-keys", tmp_path / "k.gpg")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split(":") for line in shown.stdout.decode().splitlines()]
    pub = next(r for r in rows if r[0] == "pub")
    assert (pub[2], pub[3], pub[4], pub[5]) == ("3072", "1", signer.key_id, str(KEY_TIME))
    assert "s" in pub[11]
    assert "c" in pub[11]
    assert [r[9] for r in rows if r[0] == "fpr"] == [signer.fingerprint]
    assert [r[9] for r in rows if r[0] == "uid"] == ["ghapt repository signing key"]

    packets = gpg(tmp_path / "home", "--list-packets", tmp_path / "k.gpg").stdout.decode()
    assert f"version 4, algo 1, created {KEY_TIME}" in packets
    assert "pkey[0]: [3072 bits]" in packets
    assert "sigclass 0x13" in packets
    assert "digest algo 8" in packets
    assert "key flags: 03" in packets
    assert "pref-hash-algos: 8 10" in packets
    assert f"issuer fpr v4 {signer.fingerprint}" in packets
    assert f"issuer key ID {signer.key_id}" in packets

    # The self-signature really verifies: gpg imports the key and checks it as good ("!").
    home = tmp_path / "import"
    assert gpg(home, "--import", tmp_path / "k.gpg").returncode == 0
    sigs = gpg(home, "--with-colons", "--check-sigs", signer.fingerprint).stdout.decode()
    assert [r.split(":")[1] for r in sigs.splitlines() if r.startswith("sig:")] == ["!"]


def test_armored_key_dearmors_to_the_binary_key(signer: OpenPGPSigner, tmp_path: Path) -> None:
    armored = signer.public_key_armored()
    assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n")
    assert armored.endswith("-----END PGP PUBLIC KEY BLOCK-----\n")
    proc = gpg(tmp_path / "home", "--dearmor", stdin=armored.encode())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == signer.public_key()


def test_armor_checksum_is_checked_by_gpg(signer: OpenPGPSigner, tmp_path: Path) -> None:
    lines = signer.public_key_armored().splitlines()
    crc_line = next(i for i, line in enumerate(lines) if line.startswith("="))
    lines[crc_line] = "=AAAA" if lines[crc_line] != "=AAAA" else "=AAAB"
    proc = gpg(tmp_path / "home", "--dearmor", stdin="\n".join(lines).encode() + b"\n")
    assert proc.returncode != 0
    assert b"CRC error" in proc.stderr


def test_crc24_matches_the_reference_check_value() -> None:
    assert crc24(b"") == 0xB704CE
    assert crc24(b"123456789") == 0x21CF02  # CRC-24/OPENPGP check value


def test_public_key_and_signatures_are_reproducible(key: LocalRsaKey) -> None:
    a = OpenPGPSigner(key, now=lambda: SIG_TIME)
    b = OpenPGPSigner(key, now=lambda: SIG_TIME)
    later = OpenPGPSigner(key, now=lambda: SIG_TIME + 1)
    assert a.public_key() == b.public_key() == later.public_key()
    assert a.detach_sign(RELEASE) == b.detach_sign(RELEASE)
    assert a.clearsign(RELEASE) == b.clearsign(RELEASE)
    assert later.detach_sign(RELEASE) != a.detach_sign(RELEASE)


def test_uid_is_part_of_the_key_but_not_of_the_fingerprint(key: LocalRsaKey, tmp_path: Path) -> None:
    custom = OpenPGPSigner(key, "Example Corp APT <apt@example.com>")
    default = OpenPGPSigner(key)
    assert custom.fingerprint == default.fingerprint
    (tmp_path / "k.gpg").write_bytes(custom.public_key())
    shown = gpg(tmp_path / "home", "--with-colons", "--show-keys", tmp_path / "k.gpg").stdout.decode()
    assert "Example Corp APT <apt@example.com>" in shown


# --- InRelease ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TEXTS))
def test_inrelease_verifies_with_gpgv(
    name: str, signer: OpenPGPSigner, keyrings: dict[str, Path], tmp_path: Path
) -> None:
    data = TEXTS[name]
    inrelease = signer.clearsign(data)
    assert inrelease.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n")
    assert inrelease.endswith(b"-----END PGP SIGNATURE-----\n")
    want = b"".join(line + b"\n" for line in expected_lines(data))
    for ring_name, ring in keyrings.items():
        code, status, extracted = verify_inrelease(tmp_path / ring_name, ring, inrelease)
        assert code == 0, (ring_name, status)
        fpr, _date, when, *_rest, algo, digest, sigclass, primary = validsig(status)
        assert (fpr, primary, when) == (signer.fingerprint, signer.fingerprint, str(SIG_TIME))
        assert (algo, digest, sigclass) == ("1", "8", "01")  # RSA, SHA256, canonical text
        assert extracted == want


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_inrelease_verifies_the_way_apt_splits_it(
    name: str, signer: OpenPGPSigner, keyring: Path, tmp_path: Path
) -> None:
    message, signature = apt_split(signer.clearsign(TEXTS[name]))
    assert message == b"\n".join(expected_lines(TEXTS[name]))
    code, status = verify_detached(tmp_path, keyring, signature, message)
    assert code == 0, status
    if SQV is not None:  # apt 3 hands exactly these two files to sqv
        assert sqv_ok(keyring, signature, message, tmp_path)


def test_inrelease_dash_escapes_and_strips_trailing_blanks(signer: OpenPGPSigner) -> None:
    inrelease = signer.clearsign(TEXTS["dashes"] + TEXTS["trailing-blanks"])
    body = inrelease.split(b"\n\n", 1)[1].split(b"\n-----BEGIN PGP SIGNATURE-----\n", 1)[0]
    assert body.split(b"\n") == [
        b"Origin: ghapt",
        b"- -leading dash",
        b"- --double",
        b"- - already looks escaped",
        b"- -----BEGIN PGP SIGNATURE-----",
        b"- -----END PGP SIGNATURE-----",
        b"Suite: stable",
        b"Origin: ghapt",
        b"Label: ghapt",
        b"Suite: stable",
    ]


def test_tampered_inrelease_fails(signer: OpenPGPSigner, keyring: Path, tmp_path: Path) -> None:
    inrelease = signer.clearsign(RELEASE)
    at = inrelease.index(b" 1234 main/binary-amd64/Packages") + 2
    tampered = inrelease[:at] + b"3" + inrelease[at + 1 :]  # size 1234 -> 1334
    assert len(tampered) == len(inrelease)
    assert tampered != inrelease
    code, status, _ = verify_inrelease(tmp_path, keyring, tampered)
    assert code != 0
    assert "[GNUPG:] BADSIG" in status


def test_inrelease_by_another_key_fails(
    other_signer: OpenPGPSigner, signer: OpenPGPSigner, keyring: Path, tmp_path: Path
) -> None:
    assert other_signer.fingerprint != signer.fingerprint
    code, status, _ = verify_inrelease(tmp_path, keyring, other_signer.clearsign(RELEASE))
    assert code != 0
    assert "GOODSIG" not in status
    assert "NO_PUBKEY" in status


# --- Release.gpg ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TEXTS))
def test_release_gpg_verifies_with_gpgv(
    name: str, signer: OpenPGPSigner, keyrings: dict[str, Path], tmp_path: Path
) -> None:
    data = TEXTS[name]
    signature = signer.detach_sign(data)
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----\n\n")
    assert signature.endswith(b"-----END PGP SIGNATURE-----\n")
    for ring_name, ring in keyrings.items():
        code, status = verify_detached(tmp_path / ring_name, ring, signature, data)
        assert code == 0, (ring_name, status)
        fpr, _date, when, *_rest, algo, digest, sigclass, _primary = validsig(status)
        assert (fpr, when, algo, digest, sigclass) == (signer.fingerprint, str(SIG_TIME), "1", "8", "00")
    if SQV is not None:
        assert sqv_ok(keyrings["signed-by-gpg"], signature, data, tmp_path)


def test_release_gpg_packet_contents(signer: OpenPGPSigner, tmp_path: Path) -> None:
    packets = gpg(tmp_path / "home", "--list-packets", stdin=signer.detach_sign(RELEASE)).stdout.decode()
    assert f"version 4, created {SIG_TIME}, md5len 0, sigclass 0x00" in packets
    assert "digest algo 8" in packets
    assert f"issuer fpr v4 {signer.fingerprint}" in packets
    assert f"issuer key ID {signer.key_id}" in packets


def test_tampered_release_fails(signer: OpenPGPSigner, keyring: Path, tmp_path: Path) -> None:
    signature = signer.detach_sign(RELEASE)
    tampered = RELEASE.replace(b"Suite: stable", b"Suite: stablf")
    code, status = verify_detached(tmp_path, keyring, signature, tampered)
    assert code != 0
    assert "[GNUPG:] BADSIG" in status
    if SQV is not None:
        assert not sqv_ok(keyring, signature, tampered, tmp_path)


def test_release_gpg_by_another_key_fails(other_signer: OpenPGPSigner, keyring: Path, tmp_path: Path) -> None:
    signature = other_signer.detach_sign(RELEASE)
    code, status = verify_detached(tmp_path, keyring, signature, RELEASE)
    assert code != 0
    assert "GOODSIG" not in status
    if SQV is not None:
        assert not sqv_ok(keyring, signature, RELEASE, tmp_path)


def test_signature_is_never_dated_before_the_key(key: LocalRsaKey, keyring: Path, tmp_path: Path) -> None:
    skewed = OpenPGPSigner(key, now=lambda: KEY_TIME - 3600)
    code, status = verify_detached(tmp_path, keyring, skewed.detach_sign(RELEASE), RELEASE)
    assert code == 0, status
    assert validsig(status)[2] == str(KEY_TIME)


def test_a_key_whose_signatures_do_not_verify_is_caught(key: LocalRsaKey) -> None:
    class Broken:
        created = KEY_TIME

        def public_numbers(self) -> tuple[int, int]:
            return key.public_numbers()

        def sign_digest(self, digest: bytes) -> bytes:
            return key.sign_digest(bytes(32))  # signs the wrong digest

    from ghapt.core.errors import GhaptError

    with pytest.raises(GhaptError, match="does not verify"):
        OpenPGPSigner(Broken()).detach_sign(RELEASE)


# --- the local key file ---------------------------------------------------------------------------
# Outside the tests marked real_keygen, ghapt writes the run's pre-made key where it would
# generate one (see tests/conftest.py); the module fixtures above are made for real.
@pytest.mark.real_keygen
def test_new_key_is_rsa3072_in_private_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = load_or_create_local_key(state, now=lambda: KEY_TIME)
    assert key.bits == 3072
    assert key.created == KEY_TIME
    for name in ("signing-key.pem", "signing-key.json"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    assert json.loads((state / "signing-key.json").read_text()) == {"created": KEY_TIME}
    assert not [p.name for p in state.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.real_keygen
def test_key_file_is_never_readable_by_others_even_with_umask_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, int] = {}
    real_replace = os.replace

    def spying_replace(src: str, dst: str | Path) -> None:
        seen[Path(dst).name] = stat.S_IMODE(os.stat(src).st_mode)  # the moment before it appears
        real_replace(src, dst)

    monkeypatch.setattr("ghapt.local.files.os.replace", spying_replace)
    old = os.umask(0)
    try:
        load_or_create_local_key(tmp_path, now=lambda: KEY_TIME)
    finally:
        os.umask(old)
    assert seen == {"signing-key.pem": 0o600, "signing-key.json": 0o600}
    assert stat.S_IMODE((tmp_path / "signing-key.pem").stat().st_mode) == 0o600


def test_fingerprint_is_stable_across_reloads(tmp_path: Path) -> None:
    first = OpenPGPSigner(load_or_create_local_key(tmp_path, now=lambda: KEY_TIME))
    second = OpenPGPSigner(load_or_create_local_key(tmp_path, now=lambda: KEY_TIME + 999))
    third = local_signer(tmp_path)
    assert first.fingerprint == second.fingerprint == third.fingerprint
    assert first.public_key() == second.public_key() == third.public_key()


def test_lost_metadata_is_recovered_from_the_key_file(tmp_path: Path) -> None:
    before = OpenPGPSigner(load_or_create_local_key(tmp_path, now=lambda: KEY_TIME)).fingerprint
    (tmp_path / "signing-key.json").unlink()
    after = load_or_create_local_key(tmp_path, now=lambda: KEY_TIME + 999)
    assert after.created == KEY_TIME
    assert OpenPGPSigner(after).fingerprint == before
    assert json.loads((tmp_path / "signing-key.json").read_text()) == {"created": KEY_TIME}


@pytest.mark.real_keygen
def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    results: list[int] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        results.append(load_or_create_local_key(tmp_path).public_numbers()[0])

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert len(set(results)) == 1


def _write_key(state: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, mode: int = 0o600) -> None:
    state.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = state / "signing-key.pem"
    path.write_bytes(pem)
    path.chmod(mode)
    (state / "signing-key.json").write_text(json.dumps({"created": KEY_TIME}))


def test_weak_key_file_is_refused(tmp_path: Path) -> None:
    _write_key(tmp_path, fresh_rsa_key(2048))
    with pytest.raises(ConfigError, match=r"RSA 2048 key; at least RSA 3072"):
        load_or_create_local_key(tmp_path)


def test_non_rsa_key_file_is_refused(tmp_path: Path) -> None:
    _write_key(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigError, match="must hold an RSA key"):
        load_or_create_local_key(tmp_path)


def test_unreadable_pem_is_refused(tmp_path: Path) -> None:
    (tmp_path / "signing-key.pem").write_bytes(b"not a key")
    (tmp_path / "signing-key.pem").chmod(0o600)
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        load_or_create_local_key(tmp_path)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_local_key(tmp_path, now=lambda: KEY_TIME)
    (tmp_path / "signing-key.pem").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_local_key(tmp_path)


def test_bad_metadata_is_refused(tmp_path: Path) -> None:
    load_or_create_local_key(tmp_path, now=lambda: KEY_TIME)
    (tmp_path / "signing-key.json").write_text('{"created": "yesterday"}')
    with pytest.raises(ConfigError, match="creation time"):
        load_or_create_local_key(tmp_path)


def test_a_damaged_key_file_is_caught_before_anything_is_signed(tmp_path: Path) -> None:
    """The key loads without OpenSSL's slow consistency check, so a damaged CRT value must still
    be caught: by the signer's own check of every signature."""
    good = fresh_rsa_key(3072)
    numbers = good.private_numbers()
    damaged = rsa.RSAPrivateNumbers(
        p=numbers.p,
        q=numbers.q,
        d=numbers.d + 2,  # wrong private exponents (OpenSSL falls back from a bad CRT result to d)
        dmp1=numbers.dmp1 + 2,
        dmq1=numbers.dmq1 + 2,
        iqmp=numbers.iqmp,
        public_numbers=numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    _write_key(tmp_path, damaged)
    from ghapt.core.errors import GhaptError

    try:
        signer = local_signer(tmp_path)
    except ConfigError:
        return  # refused at load: also safe
    with pytest.raises(GhaptError, match="does not verify"):
        signer.clearsign(RELEASE)
