"""EAP-PSK (RFC 4764): key derivation, message codec, peer and server as sans-I/O objects.

EAP-PSK gives mutual authentication from a 16-byte pre-shared key with AES-128 only, and exports
the 64-byte MSK that PKMv3 turns into the PMK/AK (digest §2.1).

Key hierarchy (RFC 4764 §3.1–3.2; ``E_K`` = one AES-128 block encryption, ``c_i`` = the 128-bit
block whose value is the integer i, XORed into the last byte)::

    AK   = E_PSK(E_PSK(0^128) xor c1)              # authentication key
    KDK  = E_PSK(E_PSK(0^128) xor c2)              # key-derivation key
    X    = E_KDK(RAND_P)
    TEK  = E_KDK(X xor c1)                          # protects the PCHANNEL (EAX)
    MSK  = E_KDK(X xor c2) || ... || E_KDK(X xor c5)   # 64 bytes
    EMSK = E_KDK(X xor c6) || ... || E_KDK(X xor c9)   # 64 bytes

Exchange (T = two top bits of the Flags byte; the other six are reserved)::

    1 server→peer  Flags(T=0) RAND_S(16) ID_S
    2 peer→server  Flags(T=1) RAND_S RAND_P(16) MAC_P(16) ID_P
                   MAC_P = CMAC_AK(ID_P || ID_S || RAND_S || RAND_P)
    3 server→peer  Flags(T=2) RAND_S MAC_S(16) PCHANNEL(nonce 0, R = DONE_SUCCESS)
                   MAC_S = CMAC_AK(ID_S || RAND_P)
    4 peer→server  Flags(T=3) RAND_S PCHANNEL(nonce 1, R = DONE_SUCCESS)
    PCHANNEL = Nonce(4) || Tag(16) || EAX_TEK(R(2) E(1) reserved(5))
               EAX nonce = 0^96 || Nonce, EAX header = first 22 bytes of the EAP packet

Deviations (documented in docs/pkm.md): reserved Flags bits and the PCHANNEL reserved bits must be
zero on receipt (RFC: ignored) so that every bit of every message is checked; the optional
extension (E = 1, EXT) is not supported; a PCHANNEL is exactly 21 bytes.

No published RFC 4764 test vectors exist (the RFC has none); the tests check the derivation chain
against its definition on AES blocks, internal consistency, and EAX/CMAC against their published
vectors.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from stack.crypto import aes_cmac, aes_ecb_encrypt
from stack.errors import IntegrityError, KeyLengthError, MalformedError, ProtocolError
from stack.pkm.eap import AuthResult, AuthSession, EapCode, EapPacket, EapType
from stack.pkm.eax import eax_decrypt, eax_encrypt

__all__ = [
    "PSK_LEN",
    "RAND_LEN",
    "EapPskPeer",
    "EapPskServer",
    "PskMsg1",
    "PskMsg2",
    "PskMsg3",
    "PskMsg4",
    "ResultFlag",
    "decode_psk",
    "derive_session_keys",
    "key_setup",
    "mac_p",
    "mac_s",
    "open_pchannel",
    "seal_pchannel",
]

PSK_LEN = 16
RAND_LEN = 16
MAC_LEN = 16
TAG_LEN = 16
EMSK_LEN = 64
PCHANNEL_LEN = 4 + TAG_LEN + 1
EAX_HEADER_LEN = 22  # Code, Identifier, Length, Type, Flags, RAND_S


class ResultFlag(IntEnum):
    """R field of the PCHANNEL (RFC 4764 §5.3)."""

    CONT = 1
    DONE_SUCCESS = 2
    DONE_FAILURE = 3


RngLike = np.random.Generator | int | None


def _rand_source(rng: RngLike) -> Callable[[int], bytes]:
    """Nonce source: ``None`` → the OS CSPRNG; an int seed or Generator → deterministic runs."""
    if rng is None:
        return os.urandom
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return gen.bytes


def _aes(key: bytes, block: bytes) -> bytes:
    return aes_ecb_encrypt(key, block)


def _xor_counter(block: bytes, i: int) -> bytes:
    return block[:-1] + bytes([block[-1] ^ i])


def key_setup(psk: bytes) -> tuple[bytes, bytes]:
    """``(AK, KDK)`` from the PSK (RFC 4764 §3.1, modified counter mode on E_PSK(0^128))."""
    psk = bytes(psk)
    if len(psk) != PSK_LEN:
        raise KeyLengthError(f"EAP-PSK PSK must be {PSK_LEN} bytes, got {len(psk)}")
    x = _aes(psk, bytes(16))
    return _aes(psk, _xor_counter(x, 1)), _aes(psk, _xor_counter(x, 2))


def derive_session_keys(kdk: bytes, rand_p: bytes) -> tuple[bytes, bytes, bytes]:
    """``(TEK(16), MSK(64), EMSK(64))`` from KDK and RAND_P (RFC 4764 §3.2)."""
    if len(kdk) != 16 or len(rand_p) != RAND_LEN:
        raise KeyLengthError("EAP-PSK derivation needs a 16-byte KDK and a 16-byte RAND_P")
    x = _aes(kdk, bytes(rand_p))
    blocks = [_aes(kdk, _xor_counter(x, i)) for i in range(1, 10)]
    return blocks[0], b"".join(blocks[1:5]), b"".join(blocks[5:9])


def mac_p(ak: bytes, id_p: bytes, id_s: bytes, rand_s: bytes, rand_p: bytes) -> bytes:
    """MAC_P = CMAC-AES-128(AK, ID_P || ID_S || RAND_S || RAND_P) (RFC 4764 §5.2)."""
    return aes_cmac(ak, id_p + id_s + rand_s + rand_p)


def mac_s(ak: bytes, id_s: bytes, rand_p: bytes) -> bytes:
    """MAC_S = CMAC-AES-128(AK, ID_S || RAND_P) (RFC 4764 §5.3)."""
    return aes_cmac(ak, id_s + rand_p)


# ---- message codec (Type-Data of an EAP packet of type 47) ------------------------------------


@dataclass(frozen=True)
class PskMsg1:
    """First message (server → peer)."""

    rand_s: bytes
    id_s: bytes
    T = 0


@dataclass(frozen=True)
class PskMsg2:
    """Second message (peer → server)."""

    rand_s: bytes
    rand_p: bytes
    mac_p: bytes
    id_p: bytes
    T = 1


@dataclass(frozen=True)
class PskMsg3:
    """Third message (server → peer)."""

    rand_s: bytes
    mac_s: bytes
    pchannel: bytes
    T = 2


@dataclass(frozen=True)
class PskMsg4:
    """Fourth message (peer → server)."""

    rand_s: bytes
    pchannel: bytes
    T = 3


PskMsg = PskMsg1 | PskMsg2 | PskMsg3 | PskMsg4


def encode_psk(msg: PskMsg) -> bytes:
    """Type-Data bytes (Flags onwards) of an EAP-PSK message."""
    flags = bytes([msg.T << 6])
    if isinstance(msg, PskMsg1):
        return flags + msg.rand_s + msg.id_s
    if isinstance(msg, PskMsg2):
        return flags + msg.rand_s + msg.rand_p + msg.mac_p + msg.id_p
    if isinstance(msg, PskMsg3):
        return flags + msg.rand_s + msg.mac_s + msg.pchannel
    return flags + msg.rand_s + msg.pchannel


def decode_psk(data: bytes) -> PskMsg:
    """Parse EAP-PSK Type-Data strictly (reserved flag bits zero, exact lengths)."""
    data = bytes(data)
    if not data:
        raise MalformedError("EAP-PSK: empty Type-Data", reason="malformed")
    flags = data[0]
    if flags & 0x3F:
        raise MalformedError(f"EAP-PSK: reserved Flags bits set ({flags & 0x3F:#04x})",
                             reason="malformed")
    t = flags >> 6
    body = data[1:]
    need = {0: RAND_LEN + 1, 1: 3 * 16 + 1, 2: 32 + PCHANNEL_LEN, 3: 16 + PCHANNEL_LEN}[t]
    exact = t in (2, 3)
    if len(body) < need or (exact and len(body) != need):
        raise MalformedError(f"EAP-PSK message {t + 1}: {len(body)} bytes after Flags, "
                             f"{'exactly' if exact else 'at least'} {need} needed",
                             reason="malformed")
    if t == 0:
        return PskMsg1(body[:16], body[16:])
    if t == 1:
        return PskMsg2(body[:16], body[16:32], body[32:48], body[48:])
    if t == 2:
        return PskMsg3(body[:16], body[16:32], body[32:])
    return PskMsg4(body[:16], body[16:])


def _packet(code: int, ident: int, msg: PskMsg) -> EapPacket:
    return EapPacket(code, ident, EapType.PSK, encode_psk(msg))


def seal_pchannel(tek: bytes, header: bytes, nonce: int, result: ResultFlag) -> bytes:
    """PCHANNEL = Nonce(4) || Tag(16) || EAX(R << 6)."""
    n = nonce.to_bytes(4, "big")
    ct, tag = eax_encrypt(tek, bytes(12) + n, header, bytes([int(result) << 6]))
    return n + tag + ct


def open_pchannel(tek: bytes, header: bytes, pchannel: bytes, expected_nonce: int) -> ResultFlag:
    """Check and open a PCHANNEL; IntegrityError on a bad tag, MalformedError on a wrong nonce or
    reserved bits."""
    if len(pchannel) != PCHANNEL_LEN:
        raise MalformedError(f"EAP-PSK PCHANNEL must be {PCHANNEL_LEN} bytes", reason="malformed")
    n, tag, ct = pchannel[:4], pchannel[4:20], pchannel[20:]
    if int.from_bytes(n, "big") != expected_nonce:
        raise MalformedError(f"EAP-PSK PCHANNEL nonce {int.from_bytes(n, 'big')}, expected "
                             f"{expected_nonce}", reason="malformed")
    pt = eax_decrypt(tek, bytes(12) + n, header, ct, tag)[0]
    if pt & 0x3F:
        raise MalformedError("EAP-PSK PCHANNEL: E flag / reserved bits set (extensions are not "
                             "supported)", reason="malformed")
    r = pt >> 6
    if r == 0:
        raise MalformedError("EAP-PSK PCHANNEL: R = 0 is reserved", reason="malformed")
    return ResultFlag(r)


def _header(code: int, ident: int, msg: PskMsg) -> bytes:
    """First 22 bytes of the EAP packet carrying ``msg`` (its PCHANNEL length is fixed)."""
    length = 5 + 1 + 16 + (16 if isinstance(msg, PskMsg3) else 0) + PCHANNEL_LEN
    return (bytes([code, ident]) + length.to_bytes(2, "big") + bytes([EapType.PSK, msg.T << 6])
            + msg.rand_s)


def _unexpected(what: str) -> ProtocolError:
    return ProtocolError(f"EAP: {what}", reason="eap_unexpected")


# ---- peer ------------------------------------------------------------------------------------


class EapPskPeer:
    """EAP peer running EAP-PSK (the AMS / ARS side). Sans-I/O.

    ``handle(eap_bytes) -> (reply | None, result | None)``: feed each EAP packet from the
    authenticator; send ``reply`` if not None. ``result`` becomes an :class:`AuthResult` once the
    outcome is known: success (with the 64-byte MSK) as soon as a valid message 3 with
    DONE_SUCCESS was answered. That success is provisional until EAP-Success arrives
    (``confirmed``): an EAP-Failure instead (the server rejected message 4) turns it into a
    failure. If EAP-Success is lost, the next CMAC-verified PKMv3 message (Key_Agreement MSG#1,
    keyed from this MSK) is the alternate success indication (RFC 3748 §7.16).
    Packets that are malformed, out of state or replays raise a :mod:`stack.errors` exception and
    change nothing; a duplicate of the last request is answered with the cached response.
    """

    def __init__(self, identity: bytes, psk: bytes, *, rng: RngLike = None,
                 server_id: bytes | None = None) -> None:
        self.identity = bytes(identity)
        self._ak, self._kdk = key_setup(psk)
        self._rand = _rand_source(rng)
        self._expected_server = server_id
        self._state = "idle"
        self._rand_s = self._rand_p = self._id_s = b""
        self._last_request: bytes | None = None
        self._last_response: bytes | None = None
        self.result: AuthResult | None = None
        self.confirmed = False

    def __repr__(self) -> str:
        return f"EapPskPeer(identity={self.identity.hex()}, state={self._state})"

    @property
    def msk(self) -> bytes | None:
        """The 64-byte MSK after a successful exchange, else None."""
        return self.result.msk if self.result is not None else None

    def _fail(self, reason: str) -> tuple[None, AuthResult]:
        self._state = "done"
        self.result = AuthResult(False, self.identity, reason)
        return None, self.result

    def _respond(self, req_raw: bytes, pkt: EapPacket, reply: EapPacket) -> bytes:
        out = reply.encode()
        self._last_request, self._last_response = req_raw, out
        return out

    def handle(self, eap: bytes) -> tuple[bytes | None, AuthResult | None]:
        raw = bytes(eap)
        pkt = EapPacket.decode(raw)
        if pkt.code == EapCode.SUCCESS:
            if self.result is not None and self.result.success:
                self.confirmed = True
                return None, self.result
            raise _unexpected("Success without a protected success indication")
        if pkt.code == EapCode.FAILURE:
            if self.confirmed:
                raise _unexpected("Failure after EAP-Success")
            if self.result is not None and not self.result.success:
                return None, self.result
            # Also after our DONE_SUCCESS message 4: the server rejected it, so drop the MSK.
            return self._fail("eap_failure")
        if pkt.code != EapCode.REQUEST:
            raise _unexpected("peer received a Response")
        if raw == self._last_request and self._last_response is not None:
            return self._last_response, self.result  # retransmitted request: same answer
        if self._state == "done":
            raise _unexpected("request after the conversation ended")
        if pkt.type == EapType.IDENTITY:
            if self._state != "idle":
                raise _unexpected("Identity request in the middle of EAP-PSK")
            return self._respond(raw, pkt, EapPacket(EapCode.RESPONSE, pkt.identifier,
                                                     EapType.IDENTITY, self.identity)), None
        if pkt.type == EapType.NOTIFICATION:
            return self._respond(raw, pkt, EapPacket(EapCode.RESPONSE, pkt.identifier,
                                                     EapType.NOTIFICATION)), None
        if pkt.type != EapType.PSK:
            return self._respond(raw, pkt, EapPacket(EapCode.RESPONSE, pkt.identifier,
                                                     EapType.NAK, bytes([EapType.PSK]))), None
        msg = decode_psk(pkt.data)
        if isinstance(msg, PskMsg1):
            # A first message (re)starts the method, also from wait_msg3 (server restarted).
            if self._expected_server is not None and msg.id_s != self._expected_server:
                raise ProtocolError("EAP-PSK: unexpected server identity", reason="bad_id_s")
            self._rand_s, self._id_s = msg.rand_s, msg.id_s
            self._rand_p = self._rand(RAND_LEN)
            m2 = PskMsg2(self._rand_s, self._rand_p,
                         mac_p(self._ak, self.identity, self._id_s, self._rand_s, self._rand_p),
                         self.identity)
            self._state = "wait_msg3"
            return self._respond(raw, pkt, _packet(EapCode.RESPONSE, pkt.identifier, m2)), None
        if isinstance(msg, PskMsg3) and self._state == "wait_msg3":
            if msg.rand_s != self._rand_s:
                raise ProtocolError("EAP-PSK message 3: RAND_S does not match", reason="bad_rand")
            if not hmac.compare_digest(msg.mac_s, mac_s(self._ak, self._id_s, self._rand_p)):
                return self._fail("bad_mac_s")
            tek, msk, emsk = derive_session_keys(self._kdk, self._rand_p)
            try:
                r = open_pchannel(tek, raw[:EAX_HEADER_LEN], msg.pchannel, 0)
            except (MalformedError, IntegrityError):
                return self._fail("bad_pchannel")
            ok = r == ResultFlag.DONE_SUCCESS
            m4 = PskMsg4(self._rand_s, b"")
            header = _header(EapCode.RESPONSE, pkt.identifier, m4)
            m4 = PskMsg4(self._rand_s, seal_pchannel(
                tek, header, 1, ResultFlag.DONE_SUCCESS if ok else ResultFlag.DONE_FAILURE))
            out = self._respond(raw, pkt, _packet(EapCode.RESPONSE, pkt.identifier, m4))
            self._state = "done"
            if ok:
                self.result = AuthResult(True, self.identity, "ok", msk=msk, emsk=emsk)
            else:
                self.result = AuthResult(False, self.identity, "server_failure")
            return out, self.result
        raise _unexpected(f"EAP-PSK message {msg.T + 1} in state {self._state}")


# ---- server ----------------------------------------------------------------------------------


class EapPskServer(AuthSession):
    """EAP-PSK server side of one conversation (an :class:`AuthSession`). Sans-I/O.

    ``pending`` is the request to send now — and to resend on the caller's retransmission timer
    (RFC 3748 §4.3: only the authenticator retransmits). ``handle(response)`` returns
    ``(reply | None, result | None)``; the final reply is EAP-Success or EAP-Failure, after which
    ``pending`` is None. Wrong PSK / tampered MAC_P or PCHANNEL → EAP-Failure and a failed
    :class:`AuthResult` (never an MSK)."""

    def __init__(self, peer_id: bytes, psk: bytes, *, server_id: bytes, rng: RngLike = None,
                 request_identity: bool = False) -> None:
        self.peer_id = bytes(peer_id)
        self.server_id = bytes(server_id)
        self._ak, self._kdk = key_setup(psk)
        self._rand = _rand_source(rng)
        self._ident = self._rand(1)[0]
        self.result: AuthResult | None = None
        self._rand_s = self._rand_p = b""
        self._tek = b""
        self._msk = self._emsk = b""
        if request_identity:
            self._state = "wait_identity"
            self._pending: bytes | None = EapPacket(EapCode.REQUEST, self._ident,
                                                    EapType.IDENTITY).encode()
        else:  # identity known from the lower layer (ranging): RFC 3748 §5.1 allows skipping it
            self._send_msg1()

    def __repr__(self) -> str:
        return f"EapPskServer(peer_id={self.peer_id.hex()}, state={self._state})"

    @property
    def pending(self) -> bytes | None:
        return self._pending

    def poll(self) -> tuple[bytes | None, AuthResult | None]:
        return None, None  # the built-in server answers synchronously

    def _next_request(self, pkt: EapPacket) -> bytes:
        self._pending = pkt.encode()
        return self._pending

    def _send_msg1(self) -> bytes:
        self._ident = (self._ident + 1) & 0xFF
        self._rand_s = self._rand(RAND_LEN)
        self._state = "wait_msg2"
        return self._next_request(_packet(EapCode.REQUEST, self._ident,
                                          PskMsg1(self._rand_s, self.server_id)))

    def _finish(self, success: bool, reason: str) -> tuple[bytes, AuthResult]:
        self._state = "done"
        self._pending = None
        self._ident = (self._ident + 1) & 0xFF
        if success:
            self.result = AuthResult(True, self.peer_id, "ok", msk=self._msk, emsk=self._emsk)
            code = EapCode.SUCCESS
        else:
            self.result = AuthResult(False, self.peer_id, reason)
            code = EapCode.FAILURE
        return EapPacket(code, self._ident).encode(), self.result

    def handle(self, eap: bytes) -> tuple[bytes | None, AuthResult | None]:
        raw = bytes(eap)
        pkt = EapPacket.decode(raw)
        if self._state == "done":
            raise _unexpected("response after the conversation ended")
        if pkt.code != EapCode.RESPONSE:
            raise _unexpected(f"authenticator received code {pkt.code}")
        if pkt.identifier != self._ident:
            raise _unexpected(f"response identifier {pkt.identifier}, expected {self._ident}")
        if pkt.type == EapType.NAK:
            return self._finish(False, "peer_nak")
        if self._state == "wait_identity":
            if pkt.type != EapType.IDENTITY:
                raise _unexpected("expected Identity response")
            if pkt.data != self.peer_id:
                return self._finish(False, "identity_mismatch")
            return self._send_msg1(), None
        if pkt.type != EapType.PSK:
            raise _unexpected(f"expected EAP-PSK, got type {pkt.type}")
        msg = decode_psk(pkt.data)
        if self._state == "wait_msg2" and isinstance(msg, PskMsg2):
            if msg.rand_s != self._rand_s:
                raise ProtocolError("EAP-PSK message 2: RAND_S does not match",
                                    reason="bad_rand")
            if msg.id_p != self.peer_id:
                return self._finish(False, "identity_mismatch")
            expect = mac_p(self._ak, msg.id_p, self.server_id, self._rand_s, msg.rand_p)
            if not hmac.compare_digest(msg.mac_p, expect):
                return self._finish(False, "bad_mac_p")
            self._rand_p = msg.rand_p
            self._tek, self._msk, self._emsk = derive_session_keys(self._kdk, self._rand_p)
            self._ident = (self._ident + 1) & 0xFF
            m3 = PskMsg3(self._rand_s, mac_s(self._ak, self.server_id, self._rand_p), b"")
            header = _header(EapCode.REQUEST, self._ident, m3)
            m3 = PskMsg3(m3.rand_s, m3.mac_s,
                         seal_pchannel(self._tek, header, 0, ResultFlag.DONE_SUCCESS))
            self._state = "wait_msg4"
            return self._next_request(_packet(EapCode.REQUEST, self._ident, m3)), None
        if self._state == "wait_msg4" and isinstance(msg, PskMsg4):
            if msg.rand_s != self._rand_s:
                raise ProtocolError("EAP-PSK message 4: RAND_S does not match",
                                    reason="bad_rand")
            try:
                r = open_pchannel(self._tek, raw[:EAX_HEADER_LEN], msg.pchannel, 1)
            except (MalformedError, IntegrityError):
                return self._finish(False, "bad_pchannel")
            if r != ResultFlag.DONE_SUCCESS:
                return self._finish(False, "peer_failure")
            return self._finish(True, "ok")
        raise _unexpected(f"EAP-PSK message {msg.T + 1} in state {self._state}")

