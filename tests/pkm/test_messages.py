"""PKMv3 / relay control-message codec: round trip over every message, strictness, fixtures."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stack.errors import MalformedError
from stack.pkm import messages as m
from stack.pkm.fields import (
    Embedded,
    FixedBytes,
    ListOf,
    Record,
    Stid,
    UInt,
    VarBytes,
    When,
)

# ---- strategies generated from the field tables ---------------------------------------------


def _codec_strategy(codec: Any) -> st.SearchStrategy[Any]:
    if isinstance(codec, UInt):
        if codec.choices is not None:
            return st.sampled_from(sorted(codec.choices))
        return st.integers(0, codec.max_value)
    if isinstance(codec, Stid):
        return st.integers(0, 0xFFF)
    if isinstance(codec, FixedBytes):
        return st.binary(min_size=codec.n, max_size=codec.n)
    if isinstance(codec, VarBytes):
        return st.binary(min_size=codec.min_len, max_size=min(codec.max_len, 300))
    if isinstance(codec, ListOf):
        return st.lists(record_strategy(codec.record), max_size=4).map(tuple)
    if isinstance(codec, Embedded):
        return record_strategy(codec.record)
    raise AssertionError(f"no strategy for {codec!r}")


@st.composite
def _record(draw: st.DrawFn, cls: type[Record]) -> Record:
    values: dict[str, Any] = {}
    for name, codec in cls.table():
        if isinstance(codec, When):
            values[name] = draw(_codec_strategy(codec.inner)) if codec.predicate(values) else None
        else:
            values[name] = draw(_codec_strategy(codec))
    if "eks" in values and "counter_tek" in values:  # cross-field rule EKS = COUNTER_TEK mod 4
        values["eks"] = values["counter_tek"] % 4
    return cls(**values)


def record_strategy(cls: type[Record]) -> st.SearchStrategy[Record]:
    return _record(cls)


any_message = st.sampled_from(sorted(m.MESSAGES.values(), key=lambda c: c.CODE)).flatmap(
    record_strategy
)


# ---- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", sorted(m.MESSAGES.values(), key=lambda c: c.CODE),
                         ids=lambda c: c.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_round_trip_every_message(cls: type[m.Message], data: st.DataObject) -> None:
    msg = data.draw(record_strategy(cls))
    wire = msg.encode()
    assert wire[0] == cls.CODE
    assert m.decode(wire) == msg
    assert cls.decode(wire) == msg
    assert m.decode(wire).encode() == wire


@settings(max_examples=150)
@given(msg=any_message, data=st.data())
def test_every_proper_prefix_is_rejected(msg: m.Message, data: st.DataObject) -> None:
    wire = msg.encode()
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(MalformedError):
        m.decode(wire[:cut])


@settings(max_examples=150)
@given(msg=any_message, extra=st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(msg: m.Message, extra: bytes) -> None:
    with pytest.raises(MalformedError, match="trailing"):
        m.decode(msg.encode() + extra)


def test_registry_covers_required_messages() -> None:
    codes = {c.CODE: c for c in m.MESSAGES.values()}
    assert codes[0x01] is m.ReauthRequest
    assert codes[0x02] is m.EapTransfer
    assert codes[0x03] is m.KeyAgreementMsg1
    assert codes[0x04] is m.KeyAgreementMsg2
    assert codes[0x05] is m.KeyAgreementMsg3
    assert codes[0x06] is m.TekRequest
    assert codes[0x07] is m.TekReply
    assert codes[0x08] is m.TekInvalid
    assert codes[0xA0] is m.AkTransfer
    assert codes[0xA1] is m.AkTransferAck
    assert {0xA2, 0xA3, 0xA4, 0xB0, 0xB1} <= set(codes)


@pytest.mark.parametrize("code", [c for c in range(256) if c not in m.MESSAGES])
def test_unknown_codes_are_rejected(code: int) -> None:
    with pytest.raises(MalformedError, match="unknown control message code"):
        m.decode(bytes([code]) + bytes(40))


def test_empty_and_non_bytes_rejected() -> None:
    with pytest.raises(MalformedError):
        m.decode(b"")
    with pytest.raises(MalformedError):
        m.decode("a0")  # type: ignore[arg-type]


# ---- byte-annotated fixtures -----------------------------------------------------------------

def _annotated(text: str) -> str:
    """Hex from a byte-annotated fixture: hex on the left, two or more spaces, then a comment."""
    return "".join(line.strip().split("  ")[0].replace(" ", "") for line in text.split("\n")
                   if line.strip())


AK_TRANSFER_HEX = _annotated("""
    a0                                  code 0xA0 AK Transfer
    07                                  transaction id 7
    1230                                AMS STID 0x123 << 4
    9114440a6059                        AMSID* (digest §8.5)
    3e0a24c793770271                    AKID (digest §8.5, count 0)
    00                                  AK SN = 0b0000 || PMK_SN 0
    00000e10                            AK lifetime 3600 s
    0000                                CMAC_KEY_COUNT 0
    02                                  SA context: 2 entries
    01 0000 00 00015180                 SAID 1, COUNTER_TEK 0, EKS 0, lifetime 86400
    02 0005 01 00000e10                 SAID 2, COUNTER_TEK 5, EKS 1, lifetime 3600
    c3d473fb04cf3bfd396bef0acbc2d709    wrapped AK, RFC 5649 (digest §8.5) ...
    97c3c3a627f227ebff5d37847248d0c6    ... 32 bytes
""")

AK_TRANSFER = m.AkTransfer(
    transaction_id=7,
    ams_stid=0x123,
    amsid_star=bytes.fromhex("9114440a6059"),
    akid=bytes.fromhex("3e0a24c793770271"),
    ak_sn=0,
    ak_lifetime=3600,
    cmac_key_count=0,
    sa_context=(
        m.SaContext(said=1, counter_tek=0, eks=0, tek_lifetime=86400),
        m.SaContext(said=2, counter_tek=5, eks=1, tek_lifetime=3600),
    ),
    wrapped_ak=bytes.fromhex(
        "c3d473fb04cf3bfd396bef0acbc2d70997c3c3a627f227ebff5d37847248d0c6"),
)

MSG3_HEX = _annotated("""
    05                                  code 0x05 Key_Agreement-MSG#3
    a0a1a2a3a4a5a6a7                    NONCE_ABS
    b0b1b2b3b4b5b6b7                    NONCE_AMS
    3e0a24c793770271                    AKID
    01                                  SA-TEK-Update: 1 entry
    01 01 0000 00 00015180              SAID 1, AES-CCM, COUNTER_TEK 0, EKS 0, lifetime 86400
    03                                  security params: PKM version 3
    01                                  authorization policy: EAP
    01                                  MAC mode: CMAC
    0040                                PN window 64
    04                                  max SAs 4
    """)

MSG3 = m.KeyAgreementMsg3(
    nonce_abs=bytes.fromhex("a0a1a2a3a4a5a6a7"),
    nonce_ams=bytes.fromhex("b0b1b2b3b4b5b6b7"),
    akid=bytes.fromhex("3e0a24c793770271"),
    sa_tek_updates=(
        m.SaTekUpdate(said=1, crypto_suite=m.CryptoSuite.AES_CCM_128, counter_tek=0, eks=0,
                      tek_lifetime=86400),
    ),
    security_params=m.SecurityNegotiationParameters(
        pkm_version=3, auth_policy=1, mac_mode=1, pn_window_size=64, max_sas=4),
)


def test_ak_transfer_fixture() -> None:
    wire = bytes.fromhex(AK_TRANSFER_HEX)
    assert len(wire) == 2 + 2 + 6 + 8 + 1 + 4 + 2 + (1 + 8 * 2) + 32  # digest §6.3 sizes
    assert AK_TRANSFER.encode() == wire
    assert m.decode(wire) == AK_TRANSFER
    assert m.requires_cmac(AK_TRANSFER)


def test_msg3_fixture() -> None:
    wire = bytes.fromhex(MSG3_HEX)
    assert MSG3.encode() == wire
    assert m.decode(wire) == MSG3
    assert m.requires_cmac(MSG3)


def _patch(wire: bytes, off: int, new: bytes) -> bytes:
    return wire[:off] + new + wire[off + len(new):]


@pytest.mark.parametrize(
    ("offset", "new", "field"),
    [
        (2, b"\x12\x31", "ams_stid"),      # reserved low 4 STID bits set
        (18, b"\x10", "ak_sn"),            # AK SN high nibble must be 0
        (29, b"\x01", "eks"),              # EKS 1 for COUNTER_TEK 0
        (29, b"\x04", "eks"),              # EKS beyond 2 bits
    ],
)
def test_ak_transfer_out_of_range_values(offset: int, new: bytes, field: str) -> None:
    wire = _patch(bytes.fromhex(AK_TRANSFER_HEX), offset, new)
    with pytest.raises(MalformedError, match=rf"AkTransfer.*{field}"):
        m.decode(wire)


def test_ak_transfer_list_count_too_large_is_truncation() -> None:
    wire = _patch(bytes.fromhex(AK_TRANSFER_HEX), 25, b"\x03")
    with pytest.raises(MalformedError, match="AkTransfer"):
        m.decode(wire)


def test_ak_transfer_list_count_too_small_leaves_trailing() -> None:
    wire = _patch(bytes.fromhex(AK_TRANSFER_HEX), 25, b"\x01")
    with pytest.raises(MalformedError):
        m.decode(wire)


def test_msg3_bad_values() -> None:
    wire = bytes.fromhex(MSG3_HEX)
    with pytest.raises(MalformedError, match=r"crypto_suite"):
        m.decode(_patch(wire, 27, b"\x09"))
    with pytest.raises(MalformedError, match=r"pkm_version"):
        m.decode(_patch(wire, 35, b"\x02"))
    with pytest.raises(MalformedError, match=r"mac_mode"):
        m.decode(_patch(wire, 37, b"\x00"))


def test_short_field_message_names_message_and_field() -> None:
    wire = bytes.fromhex(AK_TRANSFER_HEX)[:40]
    with pytest.raises(MalformedError, match=r"AkTransfer\.sa_context\[1\]\.tek_lifetime"):
        m.decode(wire)


def test_var_bytes_length_field_over_long() -> None:
    msg = m.EapTransfer(eap_payload=bytes.fromhex("01020004"))
    wire = msg.encode()
    assert wire == bytes.fromhex("02" "0004" "01020004")
    with pytest.raises(MalformedError, match=r"EapTransfer\.eap_payload"):
        m.decode(_patch(wire, 1, b"\x00\x05"))  # claims 5, only 4 present
    with pytest.raises(MalformedError, match=r"EapTransfer\.eap_payload"):
        m.decode(bytes.fromhex("02" "0002" "0102"))  # below EAP's 4-byte minimum


def test_construction_validates() -> None:
    with pytest.raises(MalformedError, match=r"TekReply\.eks"):
        m.TekReply(said=1, counter_tek=6, eks=1, tek_lifetime=10)
    with pytest.raises(MalformedError, match=r"TekRequest\.said"):
        m.TekRequest(said=256)
    with pytest.raises(MalformedError, match=r"KeyAgreementMsg1\.akid"):
        m.KeyAgreementMsg1(nonce_abs=bytes(8), akid=bytes(7), key_lifetime=1)
    with pytest.raises(MalformedError, match=r"RngReq\.stid"):
        m.RngReq(purpose=m.RangingPurpose.INITIAL_ENTRY, cmac_key_count=0, target_id=bytes(6),
                 amsid=bytes(6), nonce_ams=bytes(6), stid=5)
    with pytest.raises(MalformedError, match=r"RngReq\.serving_id"):
        m.RngReq(purpose=m.RangingPurpose.HANDOVER_REENTRY, cmac_key_count=1,
                 target_id=bytes(6), stid=5)
    with pytest.raises(MalformedError, match=r"AkTransfer\.sa_context"):
        m.AkTransfer(**{**_fields(AK_TRANSFER), "sa_context": [AK_TRANSFER.sa_context[0]]})


def _fields(msg: Record) -> dict[str, Any]:
    return {name: getattr(msg, name) for name, _ in msg.table()}


def test_ranging_conditional_layout_and_cmac() -> None:
    init = m.RngReq(purpose=m.RangingPurpose.INITIAL_ENTRY, cmac_key_count=0,
                    target_id=bytes.fromhex("000000000005"), amsid=bytes.fromhex("001b11c9d50c"),
                    nonce_ams=bytes.fromhex("a1a2a3a4a5a6"))
    assert init.encode() == bytes.fromhex("b0" "00" "0000" "000000000005" "001b11c9d50c"
                                          "a1a2a3a4a5a6")
    assert not m.requires_cmac(init)
    ho = m.RngReq(purpose=m.RangingPurpose.HANDOVER_REENTRY, cmac_key_count=2,
                  target_id=bytes.fromhex("0000000000a2"), stid=0x123,
                  serving_id=bytes.fromhex("0000000000a1"))
    assert ho.encode() == bytes.fromhex("b0" "01" "0002" "0000000000a2" "1230" "0000000000a1")
    assert m.requires_cmac(ho)
    ok = m.RngRsp(purpose=1, status=m.RngStatus.SUCCESS, stid=0x123, request_cmac=bytes(11))
    retry = m.RngRsp(purpose=1, status=m.RngStatus.RETRY, stid=0, request_cmac=bytes(11))
    first = m.RngRsp(purpose=0, status=0, stid=0x45, amsid=bytes.fromhex("001b11c9d50c"),
                     nonce_ams=bytes.fromhex("a1a2a3a4a5a6"))
    # the initial response echoes AMSID and NONCE_AMS of the request it answers
    assert first.encode() == bytes.fromhex("b1" "00" "00" "0450" "001b11c9d50c" "a1a2a3a4a5a6")
    assert m.decode(first.encode()) == first
    with pytest.raises(MalformedError):
        m.decode(first.encode()[:-6])          # an RNG-RSP without the nonce echo is refused
    # re-entry: no AMSID/NONCE_AMS echo; the CMAC tuple of the request answered instead
    assert ok.encode() == bytes.fromhex("b1" "01" "00" "1230") + bytes(11)
    assert m.requires_cmac(ok) and not m.requires_cmac(retry) and not m.requires_cmac(first)
    assert not m.requires_cmac(m.EapTransfer)


def test_decode_as_wrong_type() -> None:
    with pytest.raises(MalformedError, match="expected TekReply"):
        m.TekReply.decode(m.TekRequest(said=1).encode())


def test_repr_hides_long_byte_fields() -> None:
    r = repr(AK_TRANSFER)
    assert "c3d473fb" not in r and "wrapped_ak=<32 B>" in r
    assert "3e0a24c793770271" in r  # AKID is an identifier, shown
    assert "<" in repr(m.EapTransfer(eap_payload=bytes(40)))


def test_messages_are_frozen_and_hashable() -> None:
    with pytest.raises(AttributeError):
        MSG3.akid = bytes(8)  # type: ignore[misc]
    assert hash(MSG3) == hash(m.decode(MSG3.encode()))


@settings(max_examples=200)
@given(msg=any_message)
def test_expects_cmac_agrees_with_requires_cmac(msg: m.Message) -> None:
    assert m.expects_cmac(msg.encode()) == m.requires_cmac(msg)


def test_expects_cmac_needs_leading_bytes() -> None:
    for bad in (b"", b"\xb0", b"\xb1\x01", b"\xee"):
        with pytest.raises(MalformedError):
            m.expects_cmac(bad)


def test_docs_tables_match_code() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "pkm.md").read_text()
    assert m.markdown_tables() in doc, "regenerate the tables in docs/pkm.md"


def test_doc_examples() -> None:
    assert m.TekReply(said=1, counter_tek=5, eks=1, tek_lifetime=600).encode() == \
        b"\x07\x01\x00\x05\x01\x00\x00\x02\x58"
    with pytest.raises(MalformedError) as exc:
        m.decode(bytes.fromhex(AK_TRANSFER_HEX)[:40])
    assert str(exc.value) == ("AkTransfer.sa_context[1].tek_lifetime: truncated: need 4 bytes "
                              "at offset 38, only 2 left")


@settings(max_examples=400)
@given(code=st.sampled_from(sorted(m.MESSAGES)), rest=st.binary(max_size=80))
def test_arbitrary_bytes_decode_canonically_or_raise_malformed(code: int, rest: bytes) -> None:
    """Fuzz: any input either decodes to a message that re-encodes to exactly the same bytes (the
    encoding is canonical) or raises MalformedError — never another exception."""
    data = bytes([code]) + rest
    try:
        msg = m.decode(data)
    except MalformedError:
        return
    assert msg.encode() == data
