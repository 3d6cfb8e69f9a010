"""Single-message primitives on `cryptography`: AES-CMAC, Dot16KDF, AES key wrap.

These are the reference implementations every faster path is checked against. Keys in, bytes out;
sizes are validated up front and reported without echoing key bytes. AES-CCM lives in
:mod:`stack.crypto.ccm` (its single-message form, :func:`ccm_encrypt` / :func:`ccm_decrypt`, is
re-exported here).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap,
    aes_key_wrap_with_padding,
)

from stack.crypto.ccm.aead import ccm_decrypt, ccm_encrypt
from stack.crypto.ccm.params import CCM_NONCE_LEN, CCM_TAG_LEN
from stack.errors import IntegrityError, KeyLengthError, MalformedError, require_bytes

__all__ = [
    "CCM_NONCE_LEN",
    "CCM_TAG_LEN",
    "aes_cmac",
    "aes_ecb_encrypt",
    "ccm_decrypt",
    "ccm_encrypt",
    "dot16kdf",
    "unwrap_key",
    "unwrap_key_padded",
    "wrap_key",
    "wrap_key_padded",
]


def _check_aes_key(key: bytes, what: str = "AES key") -> None:
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise KeyLengthError(f"{what} must be bytes, got {type(key).__name__}")
    if len(key) not in (16, 24, 32):
        raise KeyLengthError(f"{what} must be 16, 24 or 32 bytes, got {len(key)}")


def aes_ecb_encrypt(key: bytes, block: bytes) -> bytes:
    """Encrypt whole 16-byte blocks with AES-ECB (used by 16e CMAC_KEY_* derivation)."""
    _check_aes_key(key)
    block = require_bytes(block, "AES-ECB input")
    if len(block) % 16:
        raise MalformedError(f"AES-ECB input must be a multiple of 16 bytes, got {len(block)}")
    enc = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def aes_cmac(key: bytes, msg: bytes) -> bytes:
    """AES-CMAC (RFC 4493 / NIST SP 800-38B) of ``msg``: the full 16-byte tag."""
    _check_aes_key(key, "CMAC key")
    msg = require_bytes(msg, "CMAC message")
    c = cmac.CMAC(algorithms.AES(bytes(key)))
    c.update(msg)
    return c.finalize()


def dot16kdf(key: bytes, astring: bytes, keylength_bits: int) -> bytes:
    """Dot16KDF, CMAC variant (802.16-2009 7.5.4.6.1; used unchanged by 16m PKMv3).

    ``Kin = Truncate(key, 128)``; for i = 0 .. ceil(keylength/128)-1 the blocks
    ``AES-CMAC(Kin, i(32) | astring | keylength(32))`` are concatenated and the result is
    ``Truncate(out, keylength)``. Truncate keeps the *rightmost* bits (spec digest §1.1, verified
    against the public 802.16e vectors), so a key longer than 16 bytes contributes its last 16
    bytes.
    """
    if not isinstance(keylength_bits, int) or keylength_bits <= 0 or keylength_bits % 8:
        raise MalformedError(
            f"Dot16KDF keylength must be a positive multiple of 8 bits, got {keylength_bits!r}"
        )
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise KeyLengthError(f"Dot16KDF key must be bytes, got {type(key).__name__}")
    if len(key) < 16:
        raise KeyLengthError(f"Dot16KDF key must be at least 16 bytes, got {len(key)}")
    kin = bytes(key)[-16:]
    astring = require_bytes(astring, "Dot16KDF astring")
    nblocks = (keylength_bits + 127) // 128
    out = b"".join(
        aes_cmac(kin, i.to_bytes(4, "big") + astring + keylength_bits.to_bytes(4, "big"))
        for i in range(nblocks)
    )
    return out[len(out) - keylength_bits // 8 :]


def _check_key_to_wrap(kek: bytes, key: object) -> bytes:
    """Validate a KEK and the key to wrap (non-empty bytes)."""
    _check_aes_key(kek, "KEK")
    key = require_bytes(key, "key to wrap")
    if len(key) == 0:
        raise MalformedError("cannot wrap an empty key")
    return key


def wrap_key(kek: bytes, key: bytes) -> bytes:
    """Wrap ``key`` under ``kek``: RFC 3394 when ``key`` is n×8 bytes (n ≥ 2), else RFC 5649.

    802.16m relay AK Transfer wraps a 20-byte AK, which is not a multiple of 8 bytes, so it always
    takes the RFC 5649 (padding) form; callers that need a specific variant use
    :func:`wrap_key_padded`.
    """
    key = _check_key_to_wrap(kek, key)
    if len(key) % 8 == 0 and len(key) >= 16:
        return aes_key_wrap(bytes(kek), key)
    return aes_key_wrap_with_padding(bytes(kek), key)


def wrap_key_padded(kek: bytes, key: bytes) -> bytes:
    """Wrap ``key`` under ``kek`` with RFC 5649 (AES key wrap with padding), whatever its length."""
    key = _check_key_to_wrap(kek, key)
    return aes_key_wrap_with_padding(bytes(kek), key)


def _check_wrapped(kek: bytes, wrapped: object) -> bytes:
    """Validate a KEK and the size of a wrapped key (n×8 bytes, n ≥ 2) before unwrapping."""
    _check_aes_key(kek, "KEK")
    wrapped = require_bytes(wrapped, "wrapped key")
    if len(wrapped) < 16 or len(wrapped) % 8:
        raise MalformedError(
            f"wrapped key must be a multiple of 8 bytes and at least 16, got {len(wrapped)}"
        )
    return wrapped


def unwrap_key(kek: bytes, wrapped: bytes) -> bytes:
    """Undo :func:`wrap_key` (RFC 3394 or RFC 5649, told apart by the integrity check value).

    Raises :class:`IntegrityError` when the integrity check fails (wrong KEK or tampered input) and
    :class:`MalformedError` when the wrapped length is impossible.
    """
    wrapped = _check_wrapped(kek, wrapped)
    try:
        return aes_key_unwrap_with_padding(bytes(kek), wrapped)
    except InvalidUnwrap:
        pass
    if len(wrapped) >= 24:
        try:
            return aes_key_unwrap(bytes(kek), wrapped)
        except InvalidUnwrap:
            pass
    raise IntegrityError("key unwrap integrity check failed", reason="bad_key_wrap")


def unwrap_key_padded(kek: bytes, wrapped: bytes) -> bytes:
    """Undo :func:`wrap_key_padded` (RFC 5649 only)."""
    wrapped = _check_wrapped(kek, wrapped)
    try:
        return aes_key_unwrap_with_padding(bytes(kek), wrapped)
    except InvalidUnwrap:
        raise IntegrityError("key unwrap integrity check failed", reason="bad_key_wrap") from None
