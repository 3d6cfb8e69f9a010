"""CMAC tuple of control messages (digest §3.1): regression vector, replay, tamper, exhaustion."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack import cmac
from stack.crypto.primitives import aes_cmac
from stack.errors import (
    IntegrityError,
    KeyExhaustedError,
    KeyLengthError,
    MalformedError,
    ReplayError,
    SecurityError,
)
from stack.keys import AkContext
from tests.stack._ctx import secrets_of, vector_ctx
from tests.stack._vectors import h, load, n

V = load("relaysec_16m_regression.txt")["CMAC digest (3.1)"]
CTX = vector_ctx(0)
CTX1 = vector_ctx(1)


def test_regression_vector() -> None:
    ctx = CTX
    assert ctx.akid == h(V["akid"])
    assert ctx.cmac_key(uplink=bool(n(V["uplink"]))) == h(V["cmac_key"])
    prefix = cmac.cmac_prefix(ctx.akid, n(V["cmac_pn"]), n(V["stid"]), n(V["fid"]))
    assert prefix == h(V["prefix"])
    assert len(prefix) == 16
    assert aes_cmac(h(V["cmac_key"]), prefix + h(V["message"])) == h(V["full_cmac"])
    value = cmac.cmac_value(
        h(V["message"]), ctx, uplink=True, pn=n(V["cmac_pn"]), stid=n(V["stid"]), fid=n(V["fid"])
    )
    assert value == h(V["cmac_value"]) == h(V["full_cmac"])[-8:]
    wire = cmac.append_cmac(h(V["message"]), ctx, uplink=True, pn=1, stid=0x123)
    assert wire == h(V["message"]) + bytes([0, 0, 1]) + h(V["cmac_value"])
    assert cmac.check_cmac(wire, ctx, uplink=True, stid=0x123, last_pn=0) == (h(V["message"]), 1)


def _wire(pn: int = 1, *, uplink: bool = True, msg: bytes = b"\x03hello") -> bytes:
    return cmac.append_cmac(msg, CTX, uplink=uplink, pn=pn, stid=0x123)


@pytest.mark.parametrize(
    ("kwargs", "ctx"),
    [
        ({"uplink": False, "stid": 0x123, "fid": 0}, CTX),  # wrong direction key
        ({"uplink": True, "stid": 0x124, "fid": 0}, CTX),  # other station
        ({"uplink": True, "stid": 0x123, "fid": 1}, CTX),  # other FID
        ({"uplink": True, "stid": 0x123, "fid": 0}, CTX1),  # other AK (CMAC_KEY_COUNT 1)
    ],
)
def test_bad_cmac_wrong_context(kwargs: dict, ctx: AkContext) -> None:
    with pytest.raises(IntegrityError) as e:
        cmac.check_cmac(_wire(), ctx, last_pn=0, **kwargs)
    assert e.value.reason == "bad_cmac"
    for s in secrets_of(ctx):
        assert s not in str(e.value)


@given(st.data())
def test_any_bit_flip_rejected(data: st.DataObject) -> None:
    msg = data.draw(st.binary(max_size=64))
    wire = bytearray(cmac.append_cmac(msg, CTX, uplink=False, pn=7, stid=5))
    bit = data.draw(st.integers(0, len(wire) * 8 - 1))
    wire[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(IntegrityError):
        cmac.check_cmac(bytes(wire), CTX, uplink=False, stid=5, last_pn=0)


def test_replayed_cmac_pn_rejected() -> None:
    rx = cmac.CmacVerifier(CTX, uplink=True)
    assert rx.verify(_wire(1), stid=0x123) == b"\x03hello"
    assert rx.last_pn == 1
    with pytest.raises(ReplayError) as e:
        rx.verify(_wire(1), stid=0x123)
    assert e.value.reason == "cmac_replay"
    assert rx.verify(_wire(5), stid=0x123) == b"\x03hello"
    with pytest.raises(ReplayError):
        rx.verify(_wire(4), stid=0x123)  # below last accepted
    assert rx.last_pn == 5


def test_forged_message_does_not_advance_replay_state() -> None:
    rx = cmac.CmacVerifier(CTX, uplink=True)
    forged = bytearray(_wire(100))
    forged[0] ^= 1
    with pytest.raises(IntegrityError):
        rx.verify(bytes(forged), stid=0x123)
    assert rx.last_pn == 0
    assert rx.verify(_wire(1), stid=0x123)


def test_directions_independent() -> None:
    ul_tx = cmac.CmacSigner(CTX, uplink=True)
    dl_tx = cmac.CmacSigner(CTX, uplink=False)
    ul_rx = cmac.CmacVerifier(CTX, uplink=True)
    dl_rx = cmac.CmacVerifier(CTX, uplink=False)
    for i in range(1, 4):
        assert ul_rx.verify(ul_tx.protect(b"u", stid=9), stid=9) == b"u"
        assert ul_rx.last_pn == i
    assert dl_rx.verify(dl_tx.protect(b"d", stid=9), stid=9) == b"d"
    assert dl_rx.last_pn == 1
    with pytest.raises(IntegrityError):
        dl_rx.verify(ul_tx.protect(b"u", stid=9), stid=9)


def test_counter_never_wraps() -> None:
    c = cmac.CmacPnCounter(last=cmac.CMAC_PN_MAX - 1)
    assert c.next() == cmac.CMAC_PN_MAX
    assert c.exhausted
    with pytest.raises(KeyExhaustedError) as e:
        c.next()
    assert e.value.reason == "cmac_pn_exhausted"
    assert c.last == cmac.CMAC_PN_MAX


def test_first_pn_is_one_and_zero_never_sent() -> None:
    assert cmac.CmacPnCounter().next() == 1
    with pytest.raises(MalformedError):
        cmac.append_cmac(b"x", CTX, uplink=True, pn=0, stid=1)
    # a tuple with PN 0 (never legitimately sent) is not above the initial last_pn 0
    body = b"x"
    forged = body + bytes(3) + cmac.cmac_value(body, CTX, uplink=True, pn=0, stid=1)
    with pytest.raises(ReplayError):
        cmac.check_cmac(forged, CTX, uplink=True, stid=1, last_pn=0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: cmac.check_cmac(b"\x00" * 10, CTX, uplink=True, stid=1, last_pn=0),
        lambda: cmac.append_cmac(b"x", CTX, uplink=True, pn=1 << 24, stid=1),
        lambda: cmac.append_cmac(b"x", CTX, uplink=True, pn=1, stid=0x1000),
        lambda: cmac.append_cmac(b"x", CTX, uplink=True, pn=1, stid=1, fid=16),
        lambda: cmac.append_cmac(b"x", CTX, uplink=True, pn=-1, stid=1),
        lambda: cmac.append_cmac("text", CTX, uplink=True, pn=1, stid=1),  # type: ignore[arg-type]
        lambda: cmac.check_cmac(20, CTX, uplink=True, stid=1, last_pn=0),  # type: ignore[arg-type]
        lambda: cmac.check_cmac(_wire(), CTX, uplink=True, stid=0x123, last_pn=1 << 24),
    ],
)
def test_malformed_inputs(call) -> None:
    with pytest.raises(MalformedError) as e:
        call()
    assert str(e.value)


def test_short_tuple_reason() -> None:
    with pytest.raises(MalformedError) as e:
        cmac.check_cmac(b"\x00" * 10, CTX, uplink=True, stid=1, last_pn=0)
    assert e.value.reason == "short_cmac_tuple"


def test_empty_message_with_tuple_roundtrips() -> None:
    wire = cmac.append_cmac(b"", CTX, uplink=True, pn=3, stid=1)
    assert len(wire) == cmac.CMAC_TUPLE_LEN
    assert cmac.check_cmac(wire, CTX, uplink=True, stid=1, last_pn=2) == (b"", 3)


def test_reprs_hide_keys() -> None:
    objs = [cmac.CmacVerifier(CTX, uplink=True), cmac.CmacSigner(CTX, uplink=False)]
    for o in objs:
        text = repr(o) + str(o)
        assert CTX.akid.hex() in text
        for s in secrets_of(CTX):
            assert s not in text
    for err_call in (
        lambda: cmac.check_cmac(_wire(), CTX, uplink=False, stid=0x123, last_pn=0),
        lambda: cmac.check_cmac(_wire(1), CTX, uplink=True, stid=0x123, last_pn=1),
    ):
        with pytest.raises(SecurityError) as e:
            err_call()
        for s in secrets_of(CTX):
            assert s not in str(e.value) and s not in repr(e.value)


def test_akid_of_wrong_size_is_a_key_length_error() -> None:
    with pytest.raises(KeyLengthError, match="AKID"):
        cmac.cmac_prefix(bytes(7), 1, 1)
    with pytest.raises(KeyLengthError, match="AKID"):
        cmac.cmac_prefix("12345678", 1, 1)  # type: ignore[arg-type]


def test_numpy_integers_in_the_prefix() -> None:
    assert cmac.cmac_prefix(CTX.akid, np.int64(1), np.uint16(0x123), np.uint8(0)) == h(V["prefix"])
