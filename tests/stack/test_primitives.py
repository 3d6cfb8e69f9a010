"""stack.crypto.primitives: published CCM vectors on the reference CCM, input validation."""

from __future__ import annotations

import numpy as np
import pytest

from stack.crypto.primitives import (
    CCM_NONCE_LEN,
    CCM_TAG_LEN,
    aes_cmac,
    aes_ecb_encrypt,
    ccm_decrypt,
    ccm_encrypt,
    dot16kdf,
    unwrap_key,
    wrap_key,
)
from stack.errors import IntegrityError, KeyLengthError, MalformedError, require_uint
from tests.stack._vectors import VECTOR_DIR


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


def _ccm_vectors(name: str) -> list[tuple[str, ...]]:
    """Rows ``name key nonce aad plaintext ciphertext tag`` of a ccm_* vector file (hex)."""
    rows = []
    for line in (VECTOR_DIR / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split()
            assert len(fields) == 7, line
            rows.append(tuple(fields))
    assert rows
    return rows


CCM_ROWS = _ccm_vectors("ccm_rfc3610.txt") + _ccm_vectors("ccm_sp800_38c.txt")


@pytest.mark.parametrize("row", CCM_ROWS, ids=lambda r: r[0])
def test_ccm_published_vectors(row: tuple[str, ...]) -> None:
    """RFC 3610 #1-#3 (M = 8, L = 2: the 802.16 parameters) and SP 800-38C C.1-C.3."""
    key, nonce, aad, pt, ct, tag = (bytes.fromhex(f) for f in row[1:])
    sealed = ccm_encrypt(key, nonce, pt, aad, tag_len=len(tag))
    assert sealed == ct + tag
    assert ccm_decrypt(key, nonce, sealed, aad, tag_len=len(tag)) == pt
    for i in (0, len(sealed) - 1):
        bad = bytearray(sealed)
        bad[i] ^= 0x01
        with pytest.raises(IntegrityError) as e:
            ccm_decrypt(key, nonce, bytes(bad), aad, tag_len=len(tag))
        assert e.value.reason == "bad_icv"
        assert key.hex() not in str(e.value)


def test_ccm_defaults_are_the_80216_parameters() -> None:
    """Default tag is the 8-byte ICV (M = 8); a 13-byte nonce means L = 2 (2^16-1 bytes max)."""
    assert (CCM_TAG_LEN, CCM_NONCE_LEN) == (8, 13)
    assert len(ccm_encrypt(bytes(16), bytes(13), b"abc")) == 3 + 8
    with pytest.raises(MalformedError, match="shorter than its 8-byte tag"):
        ccm_decrypt(bytes(16), bytes(13), bytes(7))
    with pytest.raises(KeyLengthError, match="tag length"):
        ccm_encrypt(bytes(16), bytes(13), b"", tag_len=5)
    with pytest.raises(KeyLengthError, match="nonce"):
        ccm_encrypt(bytes(16), bytes(14), b"")


def test_integers_are_not_taken_for_bytes() -> None:
    """``bytes(5)`` is five zero bytes: an int where bytes belong must be refused, not coerced."""
    with pytest.raises(MalformedError, match="wrapped key"):
        unwrap_key(bytes(16), 24)  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="key to wrap"):
        wrap_key(bytes(16), 16)  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="AES-ECB input"):
        aes_ecb_encrypt(bytes(16), 16)  # type: ignore[arg-type]


def test_require_uint_accepts_numpy_and_rejects_bool() -> None:
    assert require_uint(np.uint16(7), 4, "FID") == 7
    assert type(require_uint(np.int64(7), 4, "FID")) is int
    with pytest.raises(MalformedError, match="FID must be an int"):
        require_uint(True, 4, "FID")
    with pytest.raises(MalformedError, match=r"FID must fit in 4 bits \(0..15\), got 16"):
        require_uint(16, 4, "FID")
    with pytest.raises(MalformedError, match="FID must be an int, got float"):
        require_uint(1.0, 4, "FID")
