"""RSA keys for the tests' stand-ins, generated once per process instead of once per use.

Generating an RSA key costs 0.1 to 0.5 s; the OIDC issuer (its signing key, rotations, an
attacker's key) and the fake GitHub (App keys) used to make one for nearly every test.
``fresh_rsa_key`` hands out keys from a small pool per size instead, in turn, so a key differs
from the previous ``POOL_SIZE - 1`` keys of that size this process handed out: any test that
needs several distinct keys (a rotation, a foreign key, two Apps) still gets them.
"""

from __future__ import annotations

import itertools
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

POOL_SIZE = 8

_lock = threading.Lock()
_pools: dict[int, list[rsa.RSAPrivateKey]] = {}
_turns: dict[int, itertools.count[int]] = {}


def fresh_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key of ``bits``, unlike the last ``POOL_SIZE - 1`` this process got of that size."""
    with _lock:
        pool = _pools.setdefault(bits, [])
        slot = next(_turns.setdefault(bits, itertools.count())) % POOL_SIZE
        while len(pool) <= slot:
            pool.append(rsa.generate_private_key(public_exponent=65537, key_size=bits))
        return pool[slot]


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """``key`` as an unencrypted PKCS#8 PEM (how GitHub hands out App keys)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
