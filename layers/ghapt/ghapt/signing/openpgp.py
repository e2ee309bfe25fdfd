"""Pure-Python OpenPGP (RFC 4880 v4) signing around a "raw" RSA key.

Lambda has no gpg binary and a KMS key never leaves KMS, so the packets are built here and
only the RSASSA-PKCS1-v1_5 operation over a SHA-256 digest is delegated to a ``RawKey``
(a local ``cryptography`` key, or KMS ``Sign`` with ``MessageType=DIGEST``).

Everything that goes into the public key is derived from the key's fixed creation time, so the
fingerprint and the exported key bytes are stable across processes and cold starts.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Callable
from typing import Protocol

from ghapt.core.errors import GhaptError

DEFAULT_UID = "ghapt repository signing key"

# RFC 4880 registry values used here.
_TAG_SIGNATURE = 2
_TAG_PUBLIC_KEY = 6
_TAG_USER_ID = 13
_ALGO_RSA = 1
_HASH_SHA256 = 8
_HASH_SHA512 = 10
_SIG_BINARY = 0x00
_SIG_TEXT = 0x01
_SIG_POSITIVE_CERT = 0x13
_SUB_CREATION_TIME = 2
_SUB_ISSUER = 16
_SUB_PREFERRED_HASH = 21
_SUB_KEY_FLAGS = 27
_SUB_ISSUER_FPR = 33
_FLAG_CERTIFY = 0x01
_FLAG_SIGN = 0x02

# EMSA-PKCS1-v1_5 DigestInfo prefix for SHA-256 (RFC 8017 section 9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


class RawKey(Protocol):
    """An RSA key that can sign a SHA-256 digest; the private half may live elsewhere (KMS)."""

    @property
    def created(self) -> int:
        """Key creation time, Unix seconds. Fixed: it is part of the fingerprint."""
        ...

    def public_numbers(self) -> tuple[int, int]:
        """The RSA modulus and public exponent (n, e)."""
        ...

    def sign_digest(self, digest: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 signature over a SHA-256 ``digest``; the raw signature bytes."""
        ...


class OpenPGPSigner:
    """Implements ``ports.Signer`` with v4 OpenPGP packets around a ``RawKey``.

    The public key and fingerprint are computed on first use and cached, so building a signer
    costs nothing (no KMS call) until it is needed.
    """

    def __init__(
        self,
        key: RawKey,
        uid: str = DEFAULT_UID,
        *,
        now: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        if not uid or "\n" in uid:
            raise ValueError("the User ID must be one non-empty line")
        self._key = key
        self._uid = uid.encode("utf-8")
        self._now = now
        self._key_body: bytes | None = None
        self._public_key: bytes | None = None

    # --- the key ---------------------------------------------------------------------------
    def _public_key_body(self) -> bytes:
        if self._key_body is None:
            n, e = self._key.public_numbers()
            self._key_body = (
                bytes([4]) + struct.pack(">I", self._key.created) + bytes([_ALGO_RSA]) + _mpi(n) + _mpi(e)
            )
        return self._key_body

    @property
    def created(self) -> int:
        """The key's creation time (Unix seconds), part of its fingerprint."""
        return self._key.created

    @property
    def fingerprint(self) -> str:
        """The v4 fingerprint (SHA-1 over the public-key packet body, as RFC 4880 12.2 fixes)."""
        return self._fingerprint_bytes().hex().upper()

    def _fingerprint_bytes(self) -> bytes:
        body = self._public_key_body()
        return hashlib.sha1(b"\x99" + struct.pack(">H", len(body)) + body, usedforsecurity=False).digest()

    @property
    def key_id(self) -> str:
        """The long key id (the fingerprint's last 8 bytes), upper-case hex."""
        return self.fingerprint[-16:]

    def public_key(self) -> bytes:
        """Transferable public key: key packet, User ID and its positive self-certification.

        The self-signature is dated at the key's creation time, so the bytes are reproducible
        (PKCS#1 v1.5 is deterministic) and computed once per signer."""
        if self._public_key is None:
            body = self._public_key_body()
            key_part = b"\x99" + struct.pack(">H", len(body)) + body
            uid_part = b"\xb4" + struct.pack(">I", len(self._uid)) + self._uid
            subpackets = [
                _subpacket(_SUB_KEY_FLAGS, bytes([_FLAG_CERTIFY | _FLAG_SIGN])),
                _subpacket(_SUB_PREFERRED_HASH, bytes([_HASH_SHA256, _HASH_SHA512])),
            ]
            cert = self._signature(_SIG_POSITIVE_CERT, key_part + uid_part, self._key.created, subpackets)
            self._public_key = _packet(_TAG_PUBLIC_KEY, body) + _packet(_TAG_USER_ID, self._uid) + cert
        return self._public_key

    def public_key_armored(self) -> str:
        return armor("PGP PUBLIC KEY BLOCK", self.public_key())

    # --- documents ---------------------------------------------------------------------------
    def detach_sign(self, data: bytes) -> bytes:
        """An armored binary-document signature (type 0x00) of ``data``: Release.gpg."""
        packet = self._signature(_SIG_BINARY, data, self._sign_time())
        return armor("PGP SIGNATURE", packet).encode("ascii")

    def clearsign(self, data: bytes) -> bytes:
        """``data`` in the cleartext signature framework (RFC 4880 section 7): InRelease.

        The emitted text is exactly what is signed (trailing blanks stripped), so a verifier
        that splits the file itself (apt 3 with sqv) sees the same bytes as gpgv."""
        lines = canonical_lines(data)
        signed = b"\r\n".join(lines)
        packet = self._signature(_SIG_TEXT, signed, self._sign_time())
        out = [b"-----BEGIN PGP SIGNED MESSAGE-----\n", b"Hash: SHA256\n", b"\n"]
        out += [(b"- " + line if line.startswith(b"-") else line) + b"\n" for line in lines]
        out.append(armor("PGP SIGNATURE", packet).encode("ascii"))
        return b"".join(out)

    # --- signature packets ---------------------------------------------------------------------
    def _sign_time(self) -> int:
        # A signature older than its key is invalid; never date one before the key.
        return max(int(self._now()), self._key.created)

    def _signature(self, sig_type: int, signed: bytes, when: int, extra: list[bytes] | None = None) -> bytes:
        fpr = self._fingerprint_bytes()
        hashed = b"".join(
            [
                _subpacket(_SUB_CREATION_TIME, struct.pack(">I", when)),
                *(extra or []),
                _subpacket(_SUB_ISSUER_FPR, b"\x04" + fpr),
            ]
        )
        unhashed = _subpacket(_SUB_ISSUER, fpr[-8:])
        head = bytes([4, sig_type, _ALGO_RSA, _HASH_SHA256]) + struct.pack(">H", len(hashed)) + hashed
        trailer = b"\x04\xff" + struct.pack(">I", len(head))
        digest = hashlib.sha256(signed + head + trailer).digest()
        raw = self._key.sign_digest(digest)
        self._check(digest, raw)
        unhashed_part = struct.pack(">H", len(unhashed)) + unhashed
        return _packet(_TAG_SIGNATURE, head + unhashed_part + digest[:2] + _mpi(int.from_bytes(raw, "big")))

    def _check(self, digest: bytes, raw: bytes) -> None:
        """Verify the raw signature before publishing it: a bad one would break every client."""
        n, e = self._key.public_numbers()
        k = (n.bit_length() + 7) // 8
        info = _SHA256_DIGEST_INFO + digest
        expected = b"\x00\x01" + b"\xff" * (k - len(info) - 3) + b"\x00" + info
        s = int.from_bytes(raw, "big")
        if len(raw) > k or s >= n or pow(s, e, n) != int.from_bytes(expected, "big"):
            raise GhaptError(
                "the signing key returned a signature that does not verify against its public key "
                "(it must be RSASSA-PKCS1-v1_5 over the given SHA-256 digest)"
            )


def canonical_lines(data: bytes) -> list[bytes]:
    """The lines a text signature covers: split on LF, CR and trailing blanks dropped.

    A final line ending is not part of the signed text, so ``data`` with or without one gives
    the same lines; empty ``data`` is one empty line."""
    lines = data.split(b"\n")
    if len(lines) > 1 and lines[-1] == b"":
        lines.pop()
    return [line.rstrip(b" \t\r") for line in lines]


def armor(kind: str, data: bytes) -> str:
    """ASCII armor (RFC 4880 section 6.2) with the CRC-24 checksum gpg 2.2 expects."""
    b64 = base64.b64encode(data).decode("ascii")
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    crc = base64.b64encode(crc24(data).to_bytes(3, "big")).decode("ascii")
    return f"-----BEGIN {kind}-----\n\n{body}\n={crc}\n-----END {kind}-----\n"


def crc24(data: bytes) -> int:
    """The OpenPGP armor checksum (RFC 4880 section 6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _mpi(value: int) -> bytes:
    bits = value.bit_length()
    return struct.pack(">H", bits) + value.to_bytes((bits + 7) // 8, "big")


def _length(n: int) -> bytes:
    """A new-format length (RFC 4880 section 4.2.2), also used by subpackets."""
    if n < 192:
        return bytes([n])
    if n < 8384:
        n -= 192
        return bytes([(n >> 8) + 192, n & 0xFF])
    return b"\xff" + struct.pack(">I", n)


def _packet(tag: int, body: bytes) -> bytes:
    return bytes([0xC0 | tag]) + _length(len(body)) + body


def _subpacket(kind: int, data: bytes) -> bytes:
    return _length(len(data) + 1) + bytes([kind]) + data
