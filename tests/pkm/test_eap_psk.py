"""EAP-PSK (RFC 4764): derivation, full exchanges, mutual-authentication failures, tampering.

RFC 4764 publishes no test vectors and none were found elsewhere; the derivation is checked
against its definition on raw AES blocks (computed here with `cryptography` directly), pinned
regression values, and peer/server consistency. AES-CMAC and EAX have their own published vectors.
"""

from __future__ import annotations

import contextlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from stack.errors import KeyLengthError, MalformedError, ProtocolError, SecurityError
from stack.pkm.eap import AuthResult, EapCode, EapPacket, EapType
from stack.pkm.eap_psk import (
    EapPskPeer,
    EapPskServer,
    PskMsg1,
    ResultFlag,
    decode_psk,
    derive_session_keys,
    encode_psk,
    key_setup,
    open_pchannel,
    seal_pchannel,
)

PEER = bytes.fromhex("001b11c9d50c")
SERVER = b"relaysec-aaa"
PSK = bytes(range(16))


def _aes(key: bytes, block: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def _c(i: int) -> bytes:
    return i.to_bytes(16, "big")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def test_aes_block_fips197() -> None:
    # FIPS-197 Appendix C.1 — the block cipher under everything below.
    assert _aes(bytes(range(16)), bytes.fromhex("00112233445566778899aabbccddeeff")).hex() == \
        "69c4e0d86a7b0430d8cdb78070b4c55a"


@given(psk=st.binary(min_size=16, max_size=16), rand_p=st.binary(min_size=16, max_size=16))
def test_derivation_matches_rfc4764_definition(psk: bytes, rand_p: bytes) -> None:
    ak, kdk = key_setup(psk)
    x = _aes(psk, bytes(16))
    assert ak == _aes(psk, _xor(x, _c(1)))
    assert kdk == _aes(psk, _xor(x, _c(2)))
    tek, msk, emsk = derive_session_keys(kdk, rand_p)
    y = _aes(kdk, rand_p)
    assert tek == _aes(kdk, _xor(y, _c(1)))
    assert msk == b"".join(_aes(kdk, _xor(y, _c(i))) for i in range(2, 6))
    assert emsk == b"".join(_aes(kdk, _xor(y, _c(i))) for i in range(6, 10))
    assert len(msk) == 64 and len(emsk) == 64


def test_derivation_regression_pin() -> None:
    # Self-generated (no public RFC 4764 vectors exist); pins the implementation.
    ak, kdk = key_setup(PSK)
    tek, msk, emsk = derive_session_keys(kdk, bytes(range(16, 32)))
    got = (ak.hex(), kdk.hex(), tek.hex(), msk[:16].hex(), emsk[-16:].hex())
    assert got == PINNED


def test_bad_psk_length() -> None:
    with pytest.raises(KeyLengthError):
        key_setup(bytes(15))
    with pytest.raises(KeyLengthError):
        EapPskPeer(PEER, bytes(32))


def _run(peer: EapPskPeer, server: EapPskServer, tamper: tuple[int, int] | None = None):
    """Deliver messages alternately; ``tamper=(k, bit)`` flips ``bit`` of the k-th message (0-based,
    counting every EAP packet on the wire). Returns the list of exceptions raised at receivers."""
    errors: list[SecurityError] = []
    pkt = server.pending
    k = 0
    to_peer = True
    while pkt is not None:
        if tamper is not None and tamper[0] == k:
            b = bytearray(pkt)
            b[tamper[1] // 8] ^= 0x80 >> (tamper[1] % 8)
            pkt = bytes(b)
        k += 1
        try:
            if to_peer:
                reply, _ = peer.handle(pkt)
            else:
                reply, _ = server.handle(pkt)
        except SecurityError as exc:
            errors.append(exc)
            return errors
        pkt = reply
        to_peer = not to_peer
    return errors


def _pair(psk_peer: bytes = PSK, psk_server: bytes = PSK, **kw):
    return (EapPskPeer(PEER, psk_peer, rng=1),
            EapPskServer(PEER, psk_server, server_id=SERVER, rng=2, **kw))


def test_same_psk_same_msk() -> None:
    peer, server = _pair()
    assert _run(peer, server) == []
    assert server.result.success and peer.result.success and peer.confirmed
    assert len(peer.msk) == 64 and peer.result.msk == server.result.msk
    assert peer.result.emsk == server.result.emsk and len(server.result.emsk) == 64
    assert server.pending is None


@settings(max_examples=25)
@given(seed_p=st.integers(0, 2**32), seed_s=st.integers(0, 2**32))
def test_msk_is_fresh_and_agreed(seed_p: int, seed_s: int) -> None:
    peer = EapPskPeer(PEER, PSK, rng=seed_p)
    server = EapPskServer(PEER, PSK, server_id=SERVER, rng=seed_s)
    assert _run(peer, server) == []
    assert peer.msk == server.result.msk


def test_different_rand_p_different_msk() -> None:
    a, sa = EapPskPeer(PEER, PSK, rng=1), EapPskServer(PEER, PSK, server_id=SERVER, rng=5)
    b, sb = EapPskPeer(PEER, PSK, rng=2), EapPskServer(PEER, PSK, server_id=SERVER, rng=5)
    _run(a, sa)
    _run(b, sb)
    assert a.msk != b.msk


def test_wrong_psk_fails_on_both_sides() -> None:
    peer, server = _pair(psk_peer=bytes(16))
    assert _run(peer, server) == []
    assert server.result == AuthResult(False, PEER, "bad_mac_p")
    assert peer.result is not None and not peer.result.success and peer.msk is None
    assert peer.result.reason == "eap_failure"


def test_forged_mac_s_rejected() -> None:
    peer, server = _pair()
    m2, _ = peer.handle(server.pending)
    m3, _ = server.handle(m2)
    b = bytearray(m3)
    b[5 + 1 + 16] ^= 1  # first byte of MAC_S
    reply, res = peer.handle(bytes(b))
    assert reply is None and res.reason == "bad_mac_s" and peer.msk is None


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_any_bit_flip_in_any_psk_message_is_rejected(k: int) -> None:
    """Flip every bit of EAP-PSK message k+1 in turn: the exchange never ends in an agreed
    success built on the tampered message. The receiver of the flipped message either raises
    (message discarded, state unchanged) or reports failure; when the server fails, the peer
    ends in failure too (EAP-Failure)."""
    peer0, server0 = _pair()
    lengths = []
    pkt = server0.pending
    to_peer = True
    while pkt is not None:
        lengths.append(len(pkt))
        pkt = (peer0.handle(pkt) if to_peer else server0.handle(pkt))[0]
        to_peer = not to_peer
    assert len(lengths) == 5  # 4 EAP-PSK messages + EAP-Success
    for bit in range(lengths[k] * 8):
        peer, server = _pair()
        errors = _run(peer, server, tamper=(k, bit))
        assert server.result is None or not server.result.success, (k, bit)
        if k < 3:  # messages 1-3: the peer never holds an MSK from a tampered exchange
            assert peer.msk is None, (k, bit)
        else:  # message 4: its receiver (the server) rejected it
            assert errors or server.result.reason == "bad_pchannel", (k, bit)
            if not errors:
                assert peer.result is not None and not peer.result.success


def test_tampered_msg4_recovers_by_retransmission_when_discarded() -> None:
    """A message-4 copy with a flipped identifier is discarded; the server's retransmitted
    message 3 gets the cached message 4 again and both sides agree."""
    peer, server = _pair()
    m2, _ = peer.handle(server.pending)
    m3, _ = server.handle(m2)
    m4, _ = peer.handle(m3)
    bad = bytearray(m4)
    bad[1] ^= 0xFF
    with pytest.raises(ProtocolError):
        server.handle(bytes(bad))
    m4_again, _ = peer.handle(server.pending)
    assert m4_again == m4
    succ, res = server.handle(m4_again)
    assert res.success and EapPacket.decode(succ).code == EapCode.SUCCESS
    peer.handle(succ)
    assert peer.confirmed and peer.msk == res.msk


def test_duplicate_request_answered_from_cache_and_stale_response_ignored() -> None:
    peer, server = _pair()
    m1 = server.pending
    m2a, _ = peer.handle(m1)
    m2b, _ = peer.handle(m1)  # retransmitted request
    assert m2a == m2b
    m3, _ = server.handle(m2a)
    with pytest.raises(ProtocolError):
        server.handle(m2b)  # stale identifier
    assert server.pending == m3


def test_identity_round_trip_variant() -> None:
    peer, server = _pair(request_identity=True)
    first = EapPacket.decode(server.pending)
    assert first.type == EapType.IDENTITY
    assert _run(peer, server) == []
    assert peer.msk == server.result.msk


def test_identity_mismatch_fails() -> None:
    peer = EapPskPeer(b"other-station", PSK, rng=1)
    server = EapPskServer(PEER, PSK, server_id=SERVER, rng=2)
    _run(peer, server)
    assert server.result.reason == "identity_mismatch" and not peer.result.success


def test_peer_naks_other_methods_and_server_fails_on_nak() -> None:
    peer, server = _pair()
    md5 = EapPacket(EapCode.REQUEST, 9, 4, b"\x10" + bytes(16)).encode()
    nak = EapPacket.decode(peer.handle(md5)[0])
    assert nak.type == EapType.NAK and nak.data == bytes([EapType.PSK])
    server._ident = 9
    server._state = "wait_msg2"
    reply, res = server.handle(EapPacket(EapCode.RESPONSE, 9, EapType.NAK, b"\x2f").encode())
    assert res.reason == "peer_nak" and EapPacket.decode(reply).code == EapCode.FAILURE


def test_unexpected_packets_raise_without_state_change() -> None:
    peer, server = _pair()
    with pytest.raises(ProtocolError):
        peer.handle(EapPacket(EapCode.SUCCESS, 1).encode())  # Success before anything
    with pytest.raises(ProtocolError):
        server.handle(EapPacket(EapCode.REQUEST, 1, 1, b"").encode())
    with pytest.raises(MalformedError):
        peer.handle(b"\x01\x02")
    assert _run(peer, server) == []  # still completes normally
    with pytest.raises(ProtocolError):
        peer.handle(EapPacket(EapCode.FAILURE, 0).encode())  # after EAP-Success: ignored
    assert peer.result.success


def test_psk_codec_strict() -> None:
    m1 = PskMsg1(bytes(16), SERVER)
    assert decode_psk(encode_psk(m1)) == m1
    with pytest.raises(MalformedError):
        decode_psk(b"\x01" + bytes(17))  # reserved flag bit
    with pytest.raises(MalformedError):
        decode_psk(b"\x80" + bytes(32 + 22))  # message 3 one byte too long
    with pytest.raises(MalformedError):
        decode_psk(b"\x40" + bytes(47))  # message 2 short


def test_pchannel() -> None:
    tek = bytes(16)
    hdr = bytes(22)
    pc = seal_pchannel(tek, hdr, 0, ResultFlag.DONE_SUCCESS)
    assert len(pc) == 21 and pc[:4] == bytes(4)
    assert open_pchannel(tek, hdr, pc, 0) == ResultFlag.DONE_SUCCESS
    with pytest.raises(MalformedError):
        open_pchannel(tek, hdr, pc, 1)


def test_reprs_hide_keys() -> None:
    peer, server = _pair()
    _run(peer, server)
    for obj in (peer, server, peer.result, server.result):
        r = repr(obj)
        assert PSK.hex() not in r and peer.msk.hex()[:12] not in r


PINNED = (
    "18b62d2c84c5e4571afc41a29db71f4d",  # AK
    "97b704350085028363924612565b9b0d",  # KDK
    "4a60ff36b8435790bfc64569b677d613",  # TEK
    "3d57fffaa740360b2b43888b4ce41fa5",  # MSK[0:16]
    "0a1915ec9d1bfae0f591fc058cd9fc14",  # EMSK[48:64]
)


@settings(max_examples=300)
@given(data=st.binary(max_size=80), t=st.integers(0, 3))
def test_fuzzed_input_only_raises_security_errors(data: bytes, t: int) -> None:
    peer, server = _pair()
    psk_body = bytes([t << 6]) + data
    for raw in (data, EapPacket(1, 1, EapType.PSK, psk_body).encode(),
                EapPacket(2, server._ident, EapType.PSK, psk_body).encode()):
        for side in (peer, server):
            with contextlib.suppress(SecurityError):
                side.handle(raw)
