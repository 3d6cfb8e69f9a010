"""RADIUS packet codec for EAP over RADIUS (RFC 2865, RFC 3579, RFC 2548). Pure functions.

The header is a :class:`stack.pkm.fields.Record` (one field table for encode and decode); the
attributes are TLVs checked against one registry, :data:`ATTRIBUTES` (type -> name, value kind
and length bounds), the lldp/scapy habit: a known attribute with a wrong length is malformed,
an unknown one is kept as raw bytes (RFC 2865 §5: a client ignores attributes it does not know).

Why our own codec and not pyrad: a RADIUS packet is a 20-byte header and a TLV list, and the
security of the back end lives in four small functions that must be ours to test anyway -- the
Message-Authenticator (RFC 3579 §3.2), the Response Authenticator (RFC 2865 §3), and the
MS-MPPE key encryption (RFC 2548 §2.4.2). pyrad needs a dictionary file to name attributes, and
its decoder's errors are not :mod:`stack.errors` exceptions (the fuzz harness and the ABS count
rejections by our ``reason``). Interoperability is checked against hostapd's RADIUS server and
FreeRADIUS/wpa_supplicant (tests/aaa/).

Formulas (``||`` concatenation, ``S`` the shared secret, ``RA`` the Request Authenticator)::

    Response Authenticator = MD5(Code || Identifier || Length || RA || Attributes || S)
    Message-Authenticator  = HMAC-MD5(S, packet with the attribute's value zeroed; in an answer
                                         the header carries RA)
    MS-MPPE-*-Key value    = Salt(2, high bit set) || C(1) || ... || C(n)
        b(1) = MD5(S || RA || Salt)   C(1) = P(1) xor b(1)
        b(i) = MD5(S || C(i-1))       C(i) = P(i) xor b(i)
        P = KeyLength(1) || Key || zero padding to a multiple of 16

Nothing here logs or puts secrets, keys or attribute values into exception messages.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum

from stack.errors import IntegrityError, MalformedError
from stack.pkm import fields as f

__all__ = [
    "ATTRIBUTES",
    "HEADER_LEN",
    "MAX_ATTR_VALUE",
    "MAX_PACKET",
    "Attr",
    "RadiusCode",
    "RadiusHeader",
    "RadiusPacket",
    "decode",
    "eap_attributes",
    "encode_answer",
    "encode_request",
    "mppe_decrypt",
    "mppe_encrypt",
    "verify_answer",
    "verify_request",
]

HEADER_LEN = 20
MAX_PACKET = 4096
"""RFC 2865 §3: a packet is at most 4096 bytes."""
MAX_ATTR_VALUE = 253
AUTH_LEN = 16
MICROSOFT = 311
"""Vendor-Id of the MS-MPPE attributes (RFC 2548)."""
MS_MPPE_SEND_KEY = 16
MS_MPPE_RECV_KEY = 17


class RadiusCode(IntEnum):
    """Packet codes used by an EAP authenticator (RFC 2865 §3)."""

    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCESS_CHALLENGE = 11


ANSWER_CODES = frozenset({RadiusCode.ACCESS_ACCEPT, RadiusCode.ACCESS_REJECT,
                          RadiusCode.ACCESS_CHALLENGE})


class Attr(IntEnum):
    """Attribute types the back end sends or reads."""

    USER_NAME = 1
    SERVICE_TYPE = 6
    FRAMED_MTU = 12
    REPLY_MESSAGE = 18
    STATE = 24
    VENDOR_SPECIFIC = 26
    SESSION_TIMEOUT = 27
    CALLED_STATION_ID = 30
    CALLING_STATION_ID = 31
    NAS_IDENTIFIER = 32
    EAP_MESSAGE = 79
    MESSAGE_AUTHENTICATOR = 80


@dataclass(frozen=True)
class AttrSpec:
    """One row of the attribute registry: name, RFC 2865 §5 data kind, value length bounds."""

    name: str
    kind: str          # "text" | "string" | "integer" | "vsa"
    min_len: int = 1
    max_len: int = MAX_ATTR_VALUE


ATTRIBUTES: dict[int, AttrSpec] = {
    Attr.USER_NAME: AttrSpec("User-Name", "text"),
    Attr.SERVICE_TYPE: AttrSpec("Service-Type", "integer", 4, 4),
    Attr.FRAMED_MTU: AttrSpec("Framed-MTU", "integer", 4, 4),
    Attr.REPLY_MESSAGE: AttrSpec("Reply-Message", "text"),
    Attr.STATE: AttrSpec("State", "string"),
    Attr.VENDOR_SPECIFIC: AttrSpec("Vendor-Specific", "vsa", 5),
    Attr.SESSION_TIMEOUT: AttrSpec("Session-Timeout", "integer", 4, 4),
    Attr.CALLED_STATION_ID: AttrSpec("Called-Station-Id", "text"),
    Attr.CALLING_STATION_ID: AttrSpec("Calling-Station-Id", "text"),
    Attr.NAS_IDENTIFIER: AttrSpec("NAS-Identifier", "text"),
    Attr.EAP_MESSAGE: AttrSpec("EAP-Message", "string"),
    Attr.MESSAGE_AUTHENTICATOR: AttrSpec("Message-Authenticator", "string", AUTH_LEN, AUTH_LEN),
}
"""The attribute registry (RFC 2865 §5, RFC 3579 §3). Unknown types decode as raw values."""


@dataclass(frozen=True, kw_only=True)
class RadiusHeader(f.Record):
    """The 20-byte RADIUS header (RFC 2865 §3)."""

    code: int = f.u8("packet type", choices={int(c): c.name for c in RadiusCode})
    identifier: int = f.u8("matches an answer to its request")
    length: int = f.u16("whole packet, header included")
    authenticator: bytes = f.fixed(AUTH_LEN, "Request or Response Authenticator")

    def _validate(self) -> None:
        if not HEADER_LEN <= self.length <= MAX_PACKET:
            raise self._bad("length", f"{self.length} outside {HEADER_LEN}..{MAX_PACKET}")


@dataclass(frozen=True)
class RadiusPacket:
    """A decoded packet: header fields and the attributes as ``(type, value)`` in wire order."""

    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[tuple[int, bytes], ...]

    def values(self, attr: int) -> list[bytes]:
        """Every value of attribute type ``attr``, in order."""
        return [v for t, v in self.attributes if t == attr]

    def first(self, attr: int) -> bytes | None:
        """The first value of ``attr`` (None when absent)."""
        for t, v in self.attributes:
            if t == attr:
                return v
        return None

    def eap_message(self) -> bytes | None:
        """The EAP packet: all EAP-Message attributes concatenated (RFC 3579 §3.1), or None."""
        parts = self.values(Attr.EAP_MESSAGE)
        return b"".join(parts) if parts else None

    def vendor(self, vendor_id: int, vendor_type: int) -> list[bytes]:
        """Values of sub-attribute ``vendor_type`` of ``vendor_id`` in Vendor-Specific attributes
        (RFC 2865 §5.26 recommended format: type(1) length(1) value)."""
        out = []
        for v in self.values(Attr.VENDOR_SPECIFIC):
            if int.from_bytes(v[:4], "big") != vendor_id:
                continue
            for t, val in _vsa_items(v[4:]):
                if t == vendor_type:
                    out.append(val)
        return out

    def __repr__(self) -> str:
        names = [ATTRIBUTES[t].name if t in ATTRIBUTES else str(t) for t, _ in self.attributes]
        return (f"RadiusPacket(code={self.code}, identifier={self.identifier}, "
                f"attributes=[{', '.join(names)}])")


def _vsa_items(data: bytes) -> list[tuple[int, bytes]]:
    items, off = [], 0
    while off < len(data):
        if off + 2 > len(data) or data[off + 1] < 2 or off + data[off + 1] > len(data):
            raise MalformedError("RADIUS: Vendor-Specific sub-attribute truncated or with a "
                                 "length below 2", reason="malformed")
        items.append((data[off], data[off + 2 : off + data[off + 1]]))
        off += data[off + 1]
    return items


def _check_attr(t: int, value: bytes) -> None:
    spec = ATTRIBUTES.get(t)
    n = len(value)
    if not 1 <= n <= MAX_ATTR_VALUE:
        raise MalformedError(f"RADIUS: attribute {t} value of {n} bytes outside 1..253",
                             reason="malformed")
    if spec is None:
        return
    if not spec.min_len <= n <= spec.max_len:
        raise MalformedError(f"RADIUS: {spec.name} of {n} bytes, must be {spec.min_len}.."
                             f"{spec.max_len}", reason="malformed")
    if spec.kind == "vsa" and int.from_bytes(value[:4], "big") == MICROSOFT:
        _vsa_items(value[4:])  # the Microsoft sub-attributes must parse


def _encode_attrs(attributes: tuple[tuple[int, bytes], ...]) -> bytes:
    out = bytearray()
    for t, v in attributes:
        if not 1 <= int(t) <= 255:
            raise MalformedError(f"RADIUS: attribute type {t} outside 1..255", reason="malformed")
        _check_attr(int(t), bytes(v))
        out += bytes([int(t), len(v) + 2]) + bytes(v)
    return bytes(out)


def _encode(code: int, identifier: int, authenticator: bytes,
            attributes: tuple[tuple[int, bytes], ...]) -> bytearray:
    attrs = _encode_attrs(attributes)
    header = RadiusHeader(code=int(code), identifier=identifier,
                          length=HEADER_LEN + len(attrs), authenticator=bytes(authenticator))
    return bytearray(header.encode_body() + attrs)


def decode(data: bytes) -> RadiusPacket:
    """Parse one packet strictly: header (known code, 20 <= Length <= 4096, Length <= bytes
    given; bytes past Length are padding and ignored, RFC 2865 §3), then attributes that fill
    the packet exactly, each known one within its registry bounds. MalformedError otherwise."""
    data = bytes(data)
    if len(data) < HEADER_LEN:
        raise MalformedError(f"RADIUS: {len(data)} bytes, shorter than the 20-byte header",
                             reason="malformed")
    header, off = RadiusHeader.decode_from(memoryview(data), 0)
    if header.length > len(data):
        raise MalformedError(f"RADIUS: Length {header.length} > {len(data)} bytes received",
                             reason="malformed")
    attrs = []
    while off < header.length:
        if off + 2 > header.length:
            raise MalformedError("RADIUS: attribute header truncated", reason="malformed")
        t, n = data[off], data[off + 1]
        if n < 3 or off + n > header.length:
            raise MalformedError(f"RADIUS: attribute {t} with length {n} at offset {off} does "
                                 "not fit the packet", reason="malformed")
        value = data[off + 2 : off + n]
        _check_attr(t, value)
        attrs.append((t, value))
        off += n
    return RadiusPacket(header.code, header.identifier, header.authenticator, tuple(attrs))


def eap_attributes(eap: bytes) -> tuple[tuple[int, bytes], ...]:
    """An EAP packet as EAP-Message attributes of at most 253 bytes each (RFC 3579 §3.1)."""
    eap = bytes(eap)
    if not eap:
        raise MalformedError("RADIUS: empty EAP packet", reason="malformed")
    return tuple((int(Attr.EAP_MESSAGE), eap[i : i + MAX_ATTR_VALUE])
                 for i in range(0, len(eap), MAX_ATTR_VALUE))


def _with_message_authenticator(pkt: bytearray, secret: bytes, header_auth: bytes) -> None:
    """Fill the (zeroed) Message-Authenticator at the end of ``pkt`` in place, computed with
    ``header_auth`` in the header."""
    saved = bytes(pkt[4:20])
    pkt[4:20] = header_auth
    mac = hmac.new(secret, bytes(pkt), "md5").digest()
    pkt[4:20] = saved
    pkt[-AUTH_LEN:] = mac


def _ma_zero() -> tuple[int, bytes]:
    return (int(Attr.MESSAGE_AUTHENTICATOR), bytes(AUTH_LEN))


def _check_secret(secret: bytes) -> bytes:
    if not isinstance(secret, (bytes, bytearray)) or not secret:
        raise MalformedError("RADIUS: the shared secret must be non-empty bytes",
                             reason="malformed")
    return bytes(secret)


def encode_request(identifier: int, request_authenticator: bytes,
                   attributes: tuple[tuple[int, bytes], ...], secret: bytes) -> bytes:
    """An Access-Request with ``attributes`` and a Message-Authenticator (last) computed over
    it; ``request_authenticator`` must be 16 unpredictable bytes (RFC 2865 §3)."""
    secret = _check_secret(secret)
    pkt = _encode(RadiusCode.ACCESS_REQUEST, identifier, request_authenticator,
                  (*attributes, _ma_zero()))
    _with_message_authenticator(pkt, secret, bytes(request_authenticator))
    return bytes(pkt)


def encode_answer(code: int, identifier: int, request_authenticator: bytes,
                  attributes: tuple[tuple[int, bytes], ...], secret: bytes) -> bytes:
    """An answer (Accept/Reject/Challenge) to the request with ``request_authenticator``:
    Message-Authenticator (with RA in the header), then the Response Authenticator over the
    packet including it (RFC 3579 §3.2). Used by the tests' in-memory server and fuzz seeds."""
    secret = _check_secret(secret)
    if code not in ANSWER_CODES:
        raise MalformedError(f"RADIUS: code {code} is not an answer", reason="malformed")
    pkt = _encode(code, identifier, bytes(AUTH_LEN), (*attributes, _ma_zero()))
    _with_message_authenticator(pkt, secret, bytes(request_authenticator))
    pkt[4:20] = _response_authenticator(bytes(pkt), request_authenticator, secret)
    return bytes(pkt)


def _response_authenticator(pkt: bytes, request_authenticator: bytes, secret: bytes) -> bytes:
    return hashlib.md5(pkt[:4] + bytes(request_authenticator) + pkt[20:] + secret).digest()


def _check_message_authenticator(pkt: RadiusPacket, raw: bytes, secret: bytes,
                                 header_auth: bytes, what: str) -> None:
    mas = pkt.values(Attr.MESSAGE_AUTHENTICATOR)
    if len(mas) != 1:
        raise IntegrityError(f"RADIUS {what}: {len(mas)} Message-Authenticator attributes, "
                             "exactly one required", reason="no_message_authenticator")
    # zero the attribute's value where it sits (it need not be the last attribute)
    off = HEADER_LEN
    buf = bytearray(raw)
    while off < len(buf):
        if buf[off] == Attr.MESSAGE_AUTHENTICATOR:
            buf[off + 2 : off + 2 + AUTH_LEN] = bytes(AUTH_LEN)
            break
        off += buf[off + 1]
    buf[4:20] = header_auth
    if not hmac.compare_digest(hmac.new(secret, bytes(buf), "md5").digest(), mas[0]):
        raise IntegrityError(f"RADIUS {what}: Message-Authenticator does not verify",
                             reason="bad_message_authenticator")


def verify_answer(data: bytes, request_authenticator: bytes, secret: bytes) -> RadiusPacket:
    """Decode an answer to the request with ``request_authenticator`` and authenticate it:
    an answer code, the Response Authenticator, and exactly one Message-Authenticator that
    verifies (required on every answer here, not only with EAP-Message). MalformedError or
    IntegrityError (``bad_response_authenticator``, ``no_message_authenticator``,
    ``bad_message_authenticator``) otherwise. The identifier is the caller's to match."""
    secret = _check_secret(secret)
    pkt = decode(data)
    raw = bytes(data)[: HEADER_LEN + sum(len(v) + 2 for _, v in pkt.attributes)]
    if pkt.code not in ANSWER_CODES:
        raise MalformedError(f"RADIUS: code {pkt.code} is not an answer", reason="not_answer")
    want = _response_authenticator(raw, request_authenticator, secret)
    if not hmac.compare_digest(want, pkt.authenticator):
        raise IntegrityError("RADIUS answer: Response Authenticator does not verify",
                             reason="bad_response_authenticator")
    _check_message_authenticator(pkt, raw, secret, bytes(request_authenticator), "answer")
    return pkt


def verify_request(data: bytes, secret: bytes) -> RadiusPacket:
    """Decode an Access-Request and check its Message-Authenticator (the server side, for the
    tests' in-memory server)."""
    secret = _check_secret(secret)
    pkt = decode(data)
    raw = bytes(data)[: HEADER_LEN + sum(len(v) + 2 for _, v in pkt.attributes)]
    if pkt.code != RadiusCode.ACCESS_REQUEST:
        raise MalformedError(f"RADIUS: code {pkt.code} is not an Access-Request",
                             reason="not_request")
    _check_message_authenticator(pkt, raw, secret, pkt.authenticator, "request")
    return pkt


def mppe_encrypt(key: bytes, secret: bytes, request_authenticator: bytes, salt: bytes) -> bytes:
    """The value of an MS-MPPE-Send/Recv-Key sub-attribute (RFC 2548 §2.4.2): Salt || C."""
    secret = _check_secret(secret)
    if len(salt) != 2 or not salt[0] & 0x80:
        raise MalformedError("MS-MPPE: the salt is 2 bytes with its high bit set",
                             reason="malformed")
    if not 1 <= len(key) <= 239:
        raise MalformedError(f"MS-MPPE: key of {len(key)} bytes outside 1..239",
                             reason="malformed")
    plain = bytes([len(key)]) + bytes(key)
    plain += bytes(-len(plain) % 16)
    out, prev = bytearray(), bytes(request_authenticator) + bytes(salt)
    for i in range(0, len(plain), 16):
        b = hashlib.md5(secret + prev).digest()
        c = bytes(x ^ y for x, y in zip(plain[i : i + 16], b, strict=True))
        out += c
        prev = c
    return bytes(salt) + bytes(out)


def mppe_decrypt(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """The key inside an MS-MPPE-Send/Recv-Key value (RFC 2548 §2.4.2/§2.4.3); MalformedError
    when the salt, the length or the padding is wrong (a wrong secret usually shows here)."""
    secret = _check_secret(secret)
    value = bytes(value)
    if len(value) < 2 + 16 or (len(value) - 2) % 16:
        raise MalformedError(f"MS-MPPE: value of {len(value)} bytes is not a salt and whole "
                             "16-byte blocks", reason="bad_mppe_key")
    salt, cipher = value[:2], value[2:]
    if not salt[0] & 0x80:
        raise MalformedError("MS-MPPE: salt without its high bit", reason="bad_mppe_key")
    plain, prev = bytearray(), bytes(request_authenticator) + salt
    for i in range(0, len(cipher), 16):
        c = cipher[i : i + 16]
        b = hashlib.md5(secret + prev).digest()
        plain += bytes(x ^ y for x, y in zip(c, b, strict=True))
        prev = c
    n = plain[0]
    if n == 0 or 1 + n > len(plain) or any(plain[1 + n :]):
        raise MalformedError("MS-MPPE: key length or padding inconsistent",
                             reason="bad_mppe_key")
    return bytes(plain[1 : 1 + n])
