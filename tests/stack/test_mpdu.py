"""MPDU codec and protection: §8.5 vector, every malformed input, properties over random SAs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stack import mpdu
from stack.errors import (
    IntegrityError,
    KeyLengthError,
    MalformedError,
    ReplayError,
    SecurityError,
    UnknownKeyError,
)
from stack.keys import AkContext
from stack.sa import SecurityAssociation
from tests.stack._ctx import ak_contexts, secrets_of, vector_ctx
from tests.stack._vectors import h, load, n

V = load("relaysec_16m_regression.txt")["MPDU (4.2)"]
CTX = vector_ctx(0)
STID = 0x123


def test_regression_vector() -> None:
    tek = h(V["tek"])
    assert tek == CTX.tek(1, 0)
    uplink = bool(n(V["uplink"]))
    out = mpdu.seal(
        tek,
        stid=n(V["stid"]),
        fid=n(V["fid"]),
        eks=n(V["eks"]),
        pn=n(V["pn"]),
        uplink=uplink,
        payload=h(V["plaintext"]),
    )
    assert out == h(V["mpdu"])
    assert out[:2] == h(V["agmh"])
    assert mpdu.decode_agmh(out) == mpdu.Agmh(fid=2, eh=False, length=len(out))
    nonce = mpdu.nonce(out[:2], stid=n(V["stid"]), uplink=uplink, eks_pn=out[2:5])
    assert nonce == h(V["nonce"])
    assert mpdu.unseal(tek, stid=n(V["stid"]), uplink=uplink, mpdu=out) == (
        n(V["fid"]),
        n(V["eks"]),
        n(V["pn"]),
        h(V["plaintext"]),
    )
    # the same MPDU through an SA (DL, first PN of TEK 0)
    sa = SecurityAssociation.start(CTX, 1)
    assert mpdu.protect(sa, stid=STID, fid=2, uplink=False, payload=h(V["plaintext"])) == out
    rx = SecurityAssociation.start(CTX, 1)
    assert mpdu.unprotect(rx, stid=STID, uplink=False, mpdu=out) == (2, 0, 1, h(V["plaintext"]))


def test_field_codecs() -> None:
    assert mpdu.encode_eks_pn(3, 0x3FFFFF) == b"\xff\xff\xff"
    assert mpdu.encode_eks_pn(2, 1) == b"\x80\x00\x01"
    assert mpdu.decode_eks_pn(b"\x80\x00\x01") == (2, 1)
    assert mpdu.Agmh(fid=15, eh=True, length=2047).encode() == b"\xff\xff"
    assert mpdu.nonce(b"\x20\x1d", stid=0xFFF, uplink=True, eks_pn=b"\x00\x00\x01")[2:4] == (
        b"\xff\xf1"
    )
    with pytest.raises(MalformedError):
        mpdu.Agmh(fid=16, eh=False, length=2)
    with pytest.raises(MalformedError):
        mpdu.encode_eks_pn(4, 1)
    with pytest.raises(MalformedError):
        mpdu.encode_eks_pn(0, 1 << 22)


def _fresh() -> tuple[SecurityAssociation, SecurityAssociation]:
    return SecurityAssociation.start(CTX, 1), SecurityAssociation.start(CTX, 1)


def _reason(exc_type: type[SecurityError], call) -> str:
    with pytest.raises(exc_type) as e:
        call()
    msg = str(e.value) + repr(e.value)
    for s in secrets_of(CTX):
        assert s not in msg
    assert str(e.value)
    return e.value.reason


def test_malformed_mpdus() -> None:
    tx, rx = _fresh()
    good = mpdu.protect(tx, stid=STID, fid=2, uplink=True, payload=b"hello world")

    def unp(data: bytes):
        return lambda: mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=data)

    assert _reason(MalformedError, unp(b"")) == "short_mpdu"
    assert _reason(MalformedError, unp(good[:1])) == "short_mpdu"
    short = mpdu.Agmh(fid=2, eh=False, length=12).encode() + bytes(10)
    assert _reason(MalformedError, unp(short)) == "short_mpdu"
    assert _reason(MalformedError, unp(good[:-1])) == "bad_length"  # truncated
    assert _reason(MalformedError, unp(good + b"\x00")) == "bad_length"  # trailing byte
    bad_len = bytearray(good)
    bad_len[1] ^= 0x01
    assert _reason(MalformedError, unp(bytes(bad_len))) == "bad_length"
    eh = bytearray(good)
    eh[0] |= 0x08
    assert _reason(MalformedError, unp(bytes(eh))) == "unsupported_eh"
    assert _reason(MalformedError, unp(bytes(2048))) == "long_mpdu"
    assert _reason(MalformedError, unp("text")) == "malformed"  # type: ignore[arg-type]
    # none of that touched the SA: the genuine MPDU is still accepted
    assert mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=good)[3] == b"hello world"


def test_wrong_eks_bad_icv_and_replay() -> None:
    tx, rx = _fresh()
    m1 = mpdu.protect(tx, stid=STID, fid=3, uplink=True, payload=b"one")
    wrong_eks = bytearray(m1)
    wrong_eks[2] |= 0x80  # EKS 2: not live
    assert (
        _reason(UnknownKeyError, lambda: mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=wrong_eks))
        == "unknown_eks"
    )
    other_eks = bytearray(m1)
    other_eks[2] |= 0x40  # EKS 1: live, but the ICV was made with TEK 0
    assert (
        _reason(IntegrityError, lambda: mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=other_eks))
        == "bad_icv"
    )
    bad = bytearray(m1)
    bad[-1] ^= 0x01
    assert (
        _reason(IntegrityError, lambda: mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=bad))
        == "bad_icv"
    )
    # wrong station / wrong direction: bad ICV (the nonce differs)
    assert (
        _reason(IntegrityError, lambda: mpdu.unprotect(rx, stid=STID + 1, uplink=True, mpdu=m1))
        == "bad_icv"
    )
    assert (
        _reason(IntegrityError, lambda: mpdu.unprotect(rx, stid=STID, uplink=False, mpdu=m1))
        == "bad_icv"
    )
    assert mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=m1)[3] == b"one"
    assert (
        _reason(ReplayError, lambda: mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=m1))
        == "pn_replay"
    )
    later = [mpdu.protect(tx, stid=STID, fid=3, uplink=True, payload=b"x") for _ in range(70)]
    mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=later[-1])  # PN 71
    assert (
        _reason(ReplayError, lambda: mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=later[0]))
        == "pn_window"
    )
    assert mpdu.unprotect(rx, stid=STID, uplink=True, mpdu=later[10])[2] == 12  # in window


def test_wrong_key_sizes() -> None:
    for key in (bytes(15), bytes(17), bytes(32), b""):
        with pytest.raises(KeyLengthError, match="TEK"):
            mpdu.seal(key, stid=1, fid=2, eks=0, pn=1, uplink=True, payload=b"")
        with pytest.raises(KeyLengthError, match="TEK"):
            mpdu.unseal(key, stid=1, uplink=True, mpdu=bytes.fromhex(V["mpdu"]))
    with pytest.raises(KeyLengthError):
        mpdu.seal("k" * 16, stid=1, fid=2, eks=0, pn=1, uplink=True, payload=b"")  # type: ignore[arg-type]


def test_bad_header_fields() -> None:
    tek = CTX.tek(1, 0)
    for kwargs in (
        {"stid": 0x1000},
        {"fid": 16},
        {"eks": 4},
        {"pn": 1 << 22},
        {"pn": -1},
        {"payload": bytes(2035)},
        {"payload": "text"},
    ):
        args = {"stid": 1, "fid": 2, "eks": 0, "pn": 1, "uplink": True, "payload": b""}
        args.update(kwargs)
        with pytest.raises(MalformedError):
            mpdu.seal(tek, **args)


def test_oversize_payload_consumes_no_pn() -> None:
    tx, _ = _fresh()
    with pytest.raises(MalformedError) as e:
        mpdu.protect(tx, stid=1, fid=2, uplink=True, payload=bytes(mpdu.MAX_PROTECTED_PAYLOAD + 1))
    assert e.value.reason == "long_mpdu"
    assert tx.next_pn(True)[1] == 1


def test_plain_codec() -> None:
    m = mpdu.encode_plain(0, b"\x01\x02")
    assert m == bytes([0x00, 0x04, 1, 2])
    assert mpdu.decode_plain(m) == (0, b"\x01\x02")
    assert mpdu.decode_plain(mpdu.encode_plain(5, b"")) == (5, b"")
    with pytest.raises(MalformedError):
        mpdu.decode_plain(m[:-1])
    with pytest.raises(MalformedError):
        mpdu.encode_plain(0, bytes(2046))


# hypothesis examples repeat AK contexts (fresh SAs each example)
@pytest.mark.nonce_reuse_expected
@settings(max_examples=60)
@given(
    ctx=ak_contexts,
    said=st.integers(0, 255),
    counter=st.integers(0, 1000),
    stid=st.integers(0, 0xFFF),
    fid=st.integers(0, 15),
    uplink=st.booleans(),
    size=st.integers(0, 2047),
    data=st.data(),
)
def test_roundtrip_and_bit_flips(
    ctx: AkContext,
    said: int,
    counter: int,
    stid: int,
    fid: int,
    uplink: bool,
    size: int,
    data: st.DataObject,
) -> None:
    payload = data.draw(st.binary(min_size=size, max_size=size))
    tx = SecurityAssociation.start(ctx, said, counter_tek=counter)
    rx = SecurityAssociation.start(ctx, said, counter_tek=counter)
    if size > mpdu.MAX_PROTECTED_PAYLOAD:
        # the 11-bit Length covers the whole MPDU: 2034 payload bytes at most
        with pytest.raises(MalformedError):
            mpdu.protect(tx, stid=stid, fid=fid, uplink=uplink, payload=payload)
        return
    skip = data.draw(st.integers(0, 5))
    for _ in range(skip):
        tx.next_pn(uplink)
    m = mpdu.protect(tx, stid=stid, fid=fid, uplink=uplink, payload=payload)
    assert len(m) == size + mpdu.PROTECTED_OVERHEAD
    bit = data.draw(st.integers(0, len(m) * 8 - 1))
    flipped = bytearray(m)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(SecurityError):
        mpdu.unprotect(rx, stid=stid, uplink=uplink, mpdu=bytes(flipped))
    with pytest.raises(SecurityError):
        mpdu.unseal(rx.teks[0].key, stid=stid, uplink=uplink, mpdu=bytes(flipped))
    assert mpdu.unprotect(rx, stid=stid, uplink=uplink, mpdu=m) == (
        fid,
        counter % 4,
        skip + 1,
        payload,
    )


def test_unprotect_lookup_unknown_sa_and_found_sa() -> None:
    tx, rx = _fresh()
    m = mpdu.protect(tx, stid=STID, fid=4, uplink=False, payload=b"via table")
    table = {(STID, 4): rx}
    seen: list[tuple[int, int]] = []

    def lookup(stid: int, fid: int) -> SecurityAssociation | None:
        seen.append((stid, fid))
        return table.get((stid, fid))

    with pytest.raises(UnknownKeyError, match=r"STID 0x124 FID 4") as e:
        mpdu.unprotect_lookup(lookup, stid=STID + 1, uplink=False, mpdu=m)
    assert e.value.reason == "unknown_sa"
    # framing is checked before the table is asked
    assert (
        _reason(
            MalformedError,
            lambda: mpdu.unprotect_lookup(lookup, stid=STID, uplink=False, mpdu=m[:-1]),
        )
        == "bad_length"
    )
    assert seen == [(STID + 1, 4)]
    assert mpdu.unprotect_lookup(lookup, stid=STID, uplink=False, mpdu=m) == (4, 0, 1, b"via table")
    assert (
        _reason(ReplayError, lambda: mpdu.unprotect_lookup(lookup, stid=STID, uplink=False, mpdu=m))
        == "pn_replay"
    )


def test_numpy_integers_are_accepted_as_header_fields() -> None:
    """Header fields often come out of numpy arrays: they must encode like plain ints."""
    tek = h(V["tek"])
    args = {"stid": np.int64(0x123), "fid": np.uint8(2), "eks": np.int8(0), "pn": np.int64(1)}
    out = mpdu.seal(tek, uplink=False, payload=h(V["plaintext"]), **args)
    assert out == h(V["mpdu"])
    assert mpdu.Agmh(fid=np.uint8(15), eh=np.bool_(True), length=np.int64(2047)).encode() == (
        b"\xff\xff"
    )
