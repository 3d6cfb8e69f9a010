"""Authenticator interface and the built-in EAP-PSK back end."""

from __future__ import annotations

import contextlib

import pytest

from stack.errors import KeyLengthError, ProtocolError
from stack.pkm.authenticator import Authenticator, AuthSession, BuiltinAuthenticator
from stack.pkm.eap import EapCode, EapPacket
from stack.pkm.eap_psk import EapPskPeer

A = bytes.fromhex("0000000000a1")
B = bytes.fromhex("001b11c9d50c")
PSK_A = bytes(range(16))
PSK_B = bytes(range(16, 32))


def _converse(session: AuthSession, peer: EapPskPeer) -> None:
    pkt = session.pending
    while pkt is not None:
        reply, _ = peer.handle(pkt)
        if reply is None:
            return
        pkt, _ = session.handle(reply)
        if pkt is not None and EapPacket.decode(pkt).code in (EapCode.SUCCESS, EapCode.FAILURE):
            with contextlib.suppress(ProtocolError):
                peer.handle(pkt)
            return


def test_builtin_is_an_authenticator() -> None:
    assert isinstance(BuiltinAuthenticator({}), Authenticator)


def test_concurrent_sessions_each_get_their_msk() -> None:
    auth = BuiltinAuthenticator({A: PSK_A, B: PSK_B}, rng=7)
    sa, sb = auth.start(A), auth.start(B)
    pa, pb = EapPskPeer(A, PSK_A, rng=1), EapPskPeer(B, PSK_B, rng=2)
    # interleave: first message of each, then the rest
    _converse(sb, pb)
    _converse(sa, pa)
    assert sa.result.success and sb.result.success
    assert sa.result.msk == pa.msk and sb.result.msk == pb.msk and pa.msk != pb.msk
    assert sa.poll() == (None, None)


def test_wrong_psk_gives_failed_result_without_msk() -> None:
    auth = BuiltinAuthenticator({A: PSK_A}, rng=7)
    s = auth.start(A)
    p = EapPskPeer(A, PSK_B, rng=1)
    _converse(s, p)
    assert not s.result.success and s.result.msk is None and s.result.reason == "bad_mac_p"
    assert not p.result.success and p.msk is None


def test_unknown_peer_rejected_immediately() -> None:
    auth = BuiltinAuthenticator({A: PSK_A}, rng=7)
    s = auth.start(B)
    assert s.result is not None and s.result.reason == "unknown_peer"
    assert EapPacket.decode(s.pending).code == EapCode.FAILURE
    assert B not in auth and A in auth


def test_seeded_authenticator_is_deterministic() -> None:
    r1 = BuiltinAuthenticator({A: PSK_A}, rng=3).start(A).pending
    r2 = BuiltinAuthenticator({A: PSK_A}, rng=3).start(A).pending
    r3 = BuiltinAuthenticator({A: PSK_A}, rng=4).start(A).pending
    assert r1 == r2 != r3


def test_bad_psk_length_and_repr() -> None:
    with pytest.raises(KeyLengthError):
        BuiltinAuthenticator({A: bytes(8)})
    auth = BuiltinAuthenticator({A: PSK_A})
    assert PSK_A.hex() not in repr(auth) and PSK_A.hex() not in repr(auth.start(A))
