"""Input validation of stack.crypto.primitives (A's fixes: wrong types, over-long CCM input)."""

from __future__ import annotations

import pytest

from stack.crypto.primitives import aes_cmac, ccm_decrypt, ccm_encrypt, dot16kdf
from stack.errors import KeyLengthError, MalformedError


def test_wrong_types_raise_project_errors() -> None:
    with pytest.raises(KeyLengthError, match="Dot16KDF key"):
        dot16kdf("k" * 16, b"", 128)  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="astring"):
        dot16kdf(bytes(16), "AK", 128)  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="CMAC message"):
        aes_cmac(bytes(16), "abc")  # type: ignore[arg-type]
    with pytest.raises(KeyLengthError, match="nonce"):
        ccm_encrypt(bytes(16), "n" * 13, b"")  # type: ignore[arg-type]


def test_ccm_too_long_for_l2() -> None:
    with pytest.raises(MalformedError, match="too long"):
        ccm_encrypt(bytes(16), bytes(13), bytes(1 << 16))
    with pytest.raises(MalformedError, match="too long"):
        ccm_decrypt(bytes(16), bytes(13), bytes((1 << 16) + 8))
    assert len(ccm_encrypt(bytes(16), bytes(13), bytes((1 << 16) - 1))) == (1 << 16) + 7


def test_dot16kdf_output_is_rightmost() -> None:
    full = dot16kdf(bytes(16), b"x", 256)
    assert len(full) == 32
    # 64-bit output = bytes 8..15 of the single CMAC block (digest §1.1 consequence)
    one = aes_cmac(bytes(16), (0).to_bytes(4, "big") + b"x" + (64).to_bytes(4, "big"))
    assert dot16kdf(bytes(16), b"x", 64) == one[8:]
    # a 20-byte key contributes its last 16 bytes
    assert dot16kdf(b"\xff" * 4 + bytes(16), b"x", 128) == dot16kdf(bytes(16), b"x", 128)
