"""EAP-PSK (RFC 4764): the Type-Data codec, and a peer and a server fed arbitrary packets.

Input: byte 0 picks the mode. Mode 0: the rest is EAP-PSK Type-Data for ``decode_psk`` (must
round-trip through ``encode_psk``). Mode 1: a conversation between an :class:`EapPskPeer` and an
:class:`EapPskServer` (seeded, so each input replays exactly) driven by a program of up to
:data:`MAX_OPS` operations: deliver the genuine next packet either way, or a mutated, replayed or
arbitrary one to either side.

Invariants: ``handle`` rejects only with :class:`stack.errors.SecurityError` and a rejected packet
changes nothing (as the classes promise); a success on either side means both sides hold the same
MSK (nothing forged or tampered is ever accepted); no success with a wrong PSK.
"""

from __future__ import annotations

from typing import Any

from stack.errors import SecurityError
from stack.pkm.eap_psk import EapPskPeer, EapPskServer, decode_psk, encode_psk
from tests.fuzz._core import Reader, check

ALLOWED = (SecurityError,)

MAX_OPS = 24
PEER_ID = bytes.fromhex("001b11c9d50c")
SERVER_ID = b"relaysec-aaa"
PSK = bytes(range(16))
WRONG_PSK = bytes(range(1, 17))


def _state(obj: Any) -> dict[str, Any]:
    """What a rejected packet must leave unchanged (the random source aside)."""
    return {k: v for k, v in vars(obj).items() if k != "_rand"}


def _handle(side: Any, packet: bytes) -> tuple[bytes | None, Any]:
    before = _state(side)
    try:
        return side.handle(packet)
    except SecurityError:
        check(_state(side) == before, "rejection_changed_state", type(side).__name__)
        return None, None


def _conversation(r: Reader) -> None:
    opts = r.u8()
    peer_psk = WRONG_PSK if opts & 1 else PSK
    server = EapPskServer(PEER_ID, PSK, server_id=SERVER_ID, rng=11,
                          request_identity=bool(opts & 2))
    peer = EapPskPeer(PEER_ID, peer_psk, rng=12, server_id=SERVER_ID if opts & 4 else None)
    history: list[bytes] = []
    to_server: bytes | None = None   # the peer's last reply
    to_peer_final: bytes | None = None  # the server's last Success/Failure
    for _ in range(MAX_OPS):
        if not r.remaining:
            break
        op = r.below(6)
        if op == 0 and server.pending is not None:  # genuine request to the peer
            history.append(server.pending)
            reply, _ = _handle(peer, server.pending)
            to_server = reply if reply is not None else to_server
        elif op == 1 and to_server is not None:  # genuine response to the server
            history.append(to_server)
            reply, _ = _handle(server, to_server)
            if reply is not None and server.pending is None:
                to_peer_final = reply
        elif op == 2 and to_peer_final is not None:  # the server's verdict to the peer
            history.append(to_peer_final)
            _handle(peer, to_peer_final)
        elif op == 3 and history:  # a known packet with one byte changed
            pkt = bytearray(history[r.below(len(history))])
            pos = r.below(len(pkt))
            pkt[pos] ^= r.u8() or 1
            _handle(peer if r.flag() else server, bytes(pkt))
        elif op == 4:  # arbitrary bytes
            _handle(peer if r.flag() else server, r.blob())
        elif op == 5 and history:  # replay
            _handle(peer if r.flag() else server, history[r.below(len(history))])
    presult, sresult = peer.result, server.result
    if presult is not None and presult.success:
        check(peer_psk == PSK, "success_with_wrong_psk", "peer")
        check(presult.msk == server._msk, "peer_msk_mismatch", "")
    if sresult is not None and sresult.success:
        check(peer_psk == PSK, "success_with_wrong_psk", "server")
        check(presult is not None and presult.success and presult.msk == sresult.msk,
              "server_success_without_peer", "")


def one_input(data: bytes) -> None:
    """Run ``data`` (see the module docstring)."""
    r = Reader(data)
    if r.u8() & 1 == 0:
        body = r.rest()
        msg = decode_psk(body)
        check(encode_psk(msg) == body, "psk_not_canonical", type(msg).__name__)
        return
    _conversation(r)
