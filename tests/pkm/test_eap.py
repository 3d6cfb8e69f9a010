"""RFC 3748 packet codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack.errors import MalformedError
from stack.pkm.eap import AuthResult, EapCode, EapPacket, EapType


@given(code=st.sampled_from([1, 2]), ident=st.integers(0, 255), typ=st.integers(1, 255),
       data=st.binary(max_size=200))
def test_request_response_round_trip(code: int, ident: int, typ: int, data: bytes) -> None:
    p = EapPacket(code, ident, typ, data)
    wire = p.encode()
    assert int.from_bytes(wire[2:4], "big") == len(wire) == 5 + len(data)
    assert EapPacket.decode(wire) == p


def test_success_failure_layout() -> None:
    assert EapPacket(EapCode.SUCCESS, 7).encode() == bytes.fromhex("03070004")
    assert EapPacket(EapCode.FAILURE, 9).encode() == bytes.fromhex("04090004")
    assert EapPacket.decode(bytes.fromhex("03070004")) == EapPacket(3, 7)


def test_identity_fixture() -> None:
    # Code 2 Response, id 1, Length 11, Type 1 Identity, "user@x" (RFC 3748 §5.1)
    wire = bytes.fromhex("0201000b01" + b"user@x".hex())
    assert EapPacket.decode(wire) == EapPacket(2, 1, EapType.IDENTITY, b"user@x")


@pytest.mark.parametrize(
    "hexwire",
    [
        "",  # empty
        "0301",  # shorter than the header
        "03070005",  # Length says 5, 4 given
        "0307000400",  # trailing byte after Length
        "0307000500",  # Success with data
        "01010004",  # Request without Type
        "05010004",  # unknown code
        "00010004",  # code 0
        "0201000601",  # Length 6, 5 given
    ],
)
def test_malformed_packets(hexwire: str) -> None:
    with pytest.raises(MalformedError):
        EapPacket.decode(bytes.fromhex(hexwire))


def test_construction_checks() -> None:
    with pytest.raises(MalformedError):
        EapPacket(1, 256, 1)
    with pytest.raises(MalformedError):
        EapPacket(3, 1, 1)
    with pytest.raises(MalformedError):
        EapPacket(1, 1, None)


def test_auth_result_invariants_and_repr() -> None:
    ok = AuthResult(True, b"\x01" * 6, "ok", msk=bytes(range(64)), emsk=bytes(64))
    assert "msk" not in repr(ok) and bytes(range(64)).hex()[:16] not in repr(ok)
    with pytest.raises(ValueError):
        AuthResult(False, b"x", "bad", msk=bytes(64))
    with pytest.raises(ValueError):
        AuthResult(True, b"x", "ok")
    with pytest.raises(ValueError):
        AuthResult(True, b"x", "ok", msk=bytes(32))
