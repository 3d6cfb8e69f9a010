"""EAX against the ten published Bellare-Rogaway-Wagner vectors (tests/vectors/eax_brw2004.txt)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack.errors import IntegrityError, KeyLengthError
from stack.pkm.eax import eax_decrypt, eax_encrypt

VECTORS = Path(__file__).parent.parent / "vectors" / "eax_brw2004.txt"


def _load() -> list[dict[str, bytes]]:
    out, cur = [], {}
    for line in VECTORS.read_text().splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                out.append(cur)
            cur = {}
            continue
        k, _, v = line.partition(":")
        cur[k.strip()] = bytes.fromhex(v.strip())
    if cur:
        out.append(cur)
    return out


CASES = _load()


def test_all_ten_vectors_loaded() -> None:
    assert len(CASES) == 10


@pytest.mark.parametrize("v", CASES, ids=[f"eax{i + 1}" for i in range(len(CASES))])
def test_eax_published_vector(v: dict[str, bytes]) -> None:
    ct, tag = eax_encrypt(v["KEY"], v["NONCE"], v["HEADER"], v["MSG"])
    assert ct + tag == v["CIPHER"]
    n = len(v["MSG"])
    assert eax_decrypt(v["KEY"], v["NONCE"], v["HEADER"], v["CIPHER"][:n], v["CIPHER"][n:]) \
        == v["MSG"]


@pytest.mark.parametrize("v", CASES[1:4], ids=["eax2", "eax3", "eax4"])
def test_eax_rejects_any_flip(v: dict[str, bytes]) -> None:
    n = len(v["MSG"])
    ct, tag = v["CIPHER"][:n], v["CIPHER"][n:]
    for field in ("NONCE", "HEADER", "ct", "tag"):
        base = {"NONCE": v["NONCE"], "HEADER": v["HEADER"], "ct": ct, "tag": tag}
        for bit in range(len(base[field]) * 8):
            b = bytearray(base[field])
            b[bit // 8] ^= 0x80 >> (bit % 8)
            base2 = {**base, field: bytes(b)}
            with pytest.raises(IntegrityError):
                eax_decrypt(v["KEY"], base2["NONCE"], base2["HEADER"], base2["ct"], base2["tag"])


@given(key=st.binary(min_size=16, max_size=16), nonce=st.binary(max_size=20),
       header=st.binary(max_size=40), msg=st.binary(max_size=100))
def test_eax_round_trip(key: bytes, nonce: bytes, header: bytes, msg: bytes) -> None:
    ct, tag = eax_encrypt(key, nonce, header, msg)
    assert len(ct) == len(msg) and len(tag) == 16
    assert eax_decrypt(key, nonce, header, ct, tag) == msg


def test_eax_bad_key_length() -> None:
    with pytest.raises(KeyLengthError):
        eax_encrypt(bytes(15), b"", b"", b"")
