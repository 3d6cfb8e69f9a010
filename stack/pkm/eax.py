"""EAX authenticated encryption (Bellare, Rogaway, Wagner, FSE 2004) on AES-128.

EAP-PSK (RFC 4764 §3.3) protects its result channel with EAX. ``cryptography`` has no EAX, so it
is built here from the two primitives it does have, exactly as the paper defines it::

    OMAC^t_K(M) = CMAC_K([t]_n || M)          # [t]_n: t as a 16-byte big-endian block
    N' = OMAC^0_K(N);  H' = OMAC^1_K(H)
    C  = CTR_K(N', M)                          # 128-bit counter starting at N'
    C' = OMAC^2_K(C)
    Tag = (N' xor C' xor H') truncated to tag_len bytes

Tested against the ten vectors of the paper (``tests/vectors/eax_brw2004.txt``).
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from stack.crypto import aes_cmac
from stack.errors import IntegrityError, KeyLengthError, MalformedError

__all__ = ["eax_decrypt", "eax_encrypt"]

_BLOCK = 16


def _omac(key: bytes, t: int, data: bytes) -> bytes:
    return aes_cmac(key, t.to_bytes(_BLOCK, "big") + data)


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def _check(key: bytes, tag_len: int) -> None:
    if len(key) != 16:
        raise KeyLengthError(f"EAX key must be 16 bytes (AES-128), got {len(key)}")
    if not 1 <= tag_len <= 16:
        raise KeyLengthError(f"EAX tag length must be 1..16 bytes, got {tag_len}")


def eax_encrypt(
    key: bytes, nonce: bytes, header: bytes, plaintext: bytes, tag_len: int = 16
) -> tuple[bytes, bytes]:
    """EAX-encrypt: returns ``(ciphertext, tag)``; ciphertext has the plaintext's length."""
    key = bytes(key)
    _check(key, tag_len)
    n = _omac(key, 0, bytes(nonce))
    h = _omac(key, 1, bytes(header))
    c = _ctr(key, n, bytes(plaintext))
    cmac_c = _omac(key, 2, c)
    tag = bytes(a ^ b ^ d for a, b, d in zip(n, cmac_c, h, strict=True))
    return c, tag[:tag_len]


def eax_decrypt(key: bytes, nonce: bytes, header: bytes, ciphertext: bytes, tag: bytes) -> bytes:
    """Check the tag first, then decrypt. Raises :class:`IntegrityError` (reason ``bad_eax_tag``)
    on a wrong tag; no plaintext is produced then."""
    key = bytes(key)
    tag = bytes(tag)
    _check(key, len(tag) if tag else 0)
    if not tag:
        raise MalformedError("EAX tag is empty")
    n = _omac(key, 0, bytes(nonce))
    h = _omac(key, 1, bytes(header))
    c = bytes(ciphertext)
    cmac_c = _omac(key, 2, c)
    expect = bytes(a ^ b ^ d for a, b, d in zip(n, cmac_c, h, strict=True))[: len(tag)]
    if not hmac.compare_digest(expect, tag):
        raise IntegrityError("EAX tag check failed", reason="bad_eax_tag")
    return _ctr(key, n, c)
