"""RADIUS codec (stack.pkm.radius): framing, Message-/Response Authenticator, MS-MPPE keys."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from stack.errors import IntegrityError, MalformedError
from stack.pkm import radius as r

SECRET = b"testing123"
RA = bytes(range(16))


def _request(attrs: tuple[tuple[int, bytes], ...] = ((r.Attr.USER_NAME, b"a@x"),)) -> bytes:
    return r.encode_request(7, RA, attrs, SECRET)


def test_request_layout_annotated() -> None:
    raw = _request()
    assert raw[0] == 1 and raw[1] == 7                      # Code Access-Request, Identifier
    assert int.from_bytes(raw[2:4], "big") == len(raw) == 20 + 5 + 18
    assert raw[4:20] == RA                                  # Request Authenticator
    assert raw[20:25] == b"\x01\x05a@x"                     # User-Name, length 5
    assert raw[25:27] == b"\x50\x12"                        # Message-Authenticator, length 18
    zeroed = raw[:27] + bytes(16)
    assert raw[27:] == hmac.new(SECRET, zeroed, "md5").digest()  # RFC 3579 §3.2


def test_request_round_trip_and_verify() -> None:
    pkt = r.verify_request(_request(), SECRET)
    assert pkt.identifier == 7 and pkt.first(r.Attr.USER_NAME) == b"a@x"
    with pytest.raises(IntegrityError) as exc:
        r.verify_request(_request(), b"other")
    assert exc.value.reason == "bad_message_authenticator"


def test_answer_authenticators_match_rfc_formulas() -> None:
    eap = bytes([3, 9, 0, 4])
    ans = r.encode_answer(r.RadiusCode.ACCESS_ACCEPT, 7, RA, r.eap_attributes(eap), SECRET)
    # Response Authenticator = MD5(Code || ID || Length || RA || Attributes || Secret)
    assert ans[4:20] == hashlib.md5(ans[:4] + RA + ans[20:] + SECRET).digest()
    # Message-Authenticator over the packet with RA in the header and the value zeroed
    ma_off = ans.index(bytes([80, 18]), 20) + 2
    zeroed = ans[:4] + RA + ans[20:ma_off] + bytes(16) + ans[ma_off + 16:]
    assert ans[ma_off:ma_off + 16] == hmac.new(SECRET, zeroed, "md5").digest()
    pkt = r.verify_answer(ans, RA, SECRET)
    assert pkt.eap_message() == eap and pkt.code == r.RadiusCode.ACCESS_ACCEPT


@pytest.mark.parametrize("where", ["header", "attr", "ma"])
def test_altered_answer_is_rejected(where: str) -> None:
    ans = bytearray(r.encode_answer(r.RadiusCode.ACCESS_CHALLENGE, 7, RA,
                                    r.eap_attributes(bytes([1, 9, 0, 5, 47])), SECRET))
    pos = {"header": 4, "attr": 22, "ma": len(ans) - 1}[where]
    ans[pos] ^= 1
    with pytest.raises(IntegrityError):
        r.verify_answer(bytes(ans), RA, SECRET)


def test_answer_needs_its_request_authenticator_and_secret() -> None:
    ans = r.encode_answer(r.RadiusCode.ACCESS_REJECT, 7, RA, (), SECRET)
    with pytest.raises(IntegrityError) as exc:
        r.verify_answer(ans, bytes(16), SECRET)
    assert exc.value.reason == "bad_response_authenticator"
    with pytest.raises(IntegrityError):
        r.verify_answer(ans, RA, b"wrong")


def test_answer_without_message_authenticator_is_rejected() -> None:
    # a correct Response Authenticator but no Message-Authenticator (pre-RFC 3579 server)
    body = bytes([3, 7, 0, 20])
    ans = body + hashlib.md5(body + RA + SECRET).digest()
    with pytest.raises(IntegrityError) as exc:
        r.verify_answer(ans, RA, SECRET)
    assert exc.value.reason == "no_message_authenticator"


def test_long_eap_is_split_in_253_byte_attributes_in_order() -> None:
    eap = bytes([2, 1]) + (600).to_bytes(2, "big") + bytes([13]) + bytes(range(256)) * 2 \
        + bytes(83)
    attrs = r.eap_attributes(eap)
    assert [len(v) for _, v in attrs] == [253, 253, 94]
    pkt = r.verify_request(r.encode_request(1, RA, attrs, SECRET), SECRET)
    assert pkt.eap_message() == eap


@pytest.mark.parametrize("raw, what", [
    (b"\x01\x00\x00", "shorter than"),
    (bytes([1, 0, 0, 19]) + bytes(16), "length"),
    (bytes([1, 0, 0, 30]) + bytes(16), "Length 30"),
    (bytes([9, 0, 0, 20]) + bytes(16), "code"),
    (bytes([1, 0, 0, 23]) + bytes(16) + b"\x01\x02\x00", "attribute 1 with length 2"),
    (bytes([1, 0, 0, 24]) + bytes(16) + b"\x01\x05ab", "does not fit"),
    (bytes([1, 0, 0, 28]) + bytes(16) + b"\x50\x08" + bytes(6), "Message-Authenticator"),
    (bytes([1, 0, 0, 26]) + bytes(16) + b"\x06\x06" + bytes(4), None),   # Service-Type: fine
    (bytes([1, 0, 0, 30]) + bytes(16) + b"\x1a\x0a" + (311).to_bytes(4, "big") + b"\x11\x09ab",
     "Vendor-Specific"),
])
def test_decoder_rejects_malformed(raw: bytes, what: str | None) -> None:
    if what is None:
        r.decode(raw)
        return
    with pytest.raises(MalformedError, match=what):
        r.decode(raw)


def test_padding_after_length_is_ignored() -> None:
    raw = _request()
    assert r.verify_request(raw + b"\x00\x00", SECRET).first(r.Attr.USER_NAME) == b"a@x"


def test_repr_shows_no_values() -> None:
    pkt = r.decode(_request(((r.Attr.STATE, b"secret-state-value"),)))
    assert "secret-state" not in repr(pkt) and "State" in repr(pkt)


@pytest.mark.parametrize("n", [1, 16, 32, 64, 200])
def test_mppe_round_trip(n: int) -> None:
    key = bytes((i * 7) & 0xFF for i in range(n))
    value = r.mppe_encrypt(key, SECRET, RA, b"\x80\x01")
    assert len(value) == 2 + 16 * (-(-(n + 1) // 16))
    assert r.mppe_decrypt(value, SECRET, RA) == key


def test_mppe_first_block_matches_rfc2548() -> None:
    key = bytes(32)
    value = r.mppe_encrypt(key, SECRET, RA, b"\x80\x01")
    b1 = hashlib.md5(SECRET + RA + b"\x80\x01").digest()
    assert value[2:18] == bytes(x ^ y for x, y in zip(bytes([32]) + key[:15], b1, strict=True))
    c1 = value[2:18]
    b2 = hashlib.md5(SECRET + c1).digest()
    assert value[18:34] == bytes(x ^ y for x, y in zip(key[15:31], b2, strict=True))


def test_mppe_wrong_secret_or_form_is_rejected() -> None:
    value = r.mppe_encrypt(bytes(range(32)), SECRET, RA, b"\x80\x01")
    with pytest.raises(MalformedError):
        r.mppe_decrypt(value, SECRET, bytes(16))   # another request's authenticator
    with pytest.raises(MalformedError, match="salt"):
        r.mppe_decrypt(b"\x00\x01" + value[2:], SECRET, RA)
    with pytest.raises(MalformedError, match="blocks"):
        r.mppe_decrypt(value[:-1], SECRET, RA)
    with pytest.raises(MalformedError):
        r.mppe_encrypt(b"k", SECRET, RA, b"\x00\x01")


def test_empty_secret_is_refused() -> None:
    with pytest.raises(MalformedError, match="secret"):
        r.encode_request(1, RA, (), b"")
