"""RADIUS back end (stack.pkm.radius_client) against the in-memory server: EAP-PSK end to end,
retransmission, wrong secret, Access-Reject, forged/reordered answers, identifier space."""

from __future__ import annotations

import contextlib

import pytest

from stack.errors import MalformedError, ProtocolError
from stack.pkm import radius as r
from stack.pkm.eap import EapCode, EapPacket
from stack.pkm.eap_psk import EapPskPeer
from stack.pkm.radius_client import RadiusAuthenticator, RadiusSettings
from tests.aaa.memserver import MemRadiusServer, pump

SECRET = b"s3cret-shared"
A = bytes.fromhex("0a0000000011")
B = bytes.fromhex("0a0000000012")
NAI_A, NAI_B = b"0a0000000011@relaysec.test", b"0a0000000012@relaysec.test"
PSK_A, PSK_B = bytes(range(16)), bytes(range(16, 32))


def _auth(**kw: object) -> RadiusAuthenticator:
    settings = RadiusSettings(secret=kw.pop("secret", SECRET), timeout=0.5, retries=2,  # type: ignore[arg-type]
                              nas_identifier="abs-1", called_station_id="00-00-BB-00-00-01",
                              **kw)  # type: ignore[arg-type]
    return RadiusAuthenticator(settings, rng=3)


def _server() -> MemRadiusServer:
    return MemRadiusServer({NAI_A: PSK_A, NAI_B: PSK_B}, SECRET)


def _run(auth, server, sessions, peers, *, wire=None, until=30.0):
    """Drive sessions and peers with the server; returns the results per session."""
    now = 0.0
    for s, p in zip(sessions, peers, strict=True):
        if s.pending is not None:
            reply, _ = p.handle(s.pending)
            s.handle(reply)
    while now < until and any(s.result is None for s in sessions):
        pump(auth, server, now, wire)
        for s, p in zip(sessions, peers, strict=True):
            out, _ = s.poll()
            while out is not None:
                pkt = EapPacket.decode(out)
                if pkt.code in (EapCode.SUCCESS, EapCode.FAILURE):
                    with contextlib.suppress(ProtocolError):
                        p.handle(out)
                    break
                reply, _ = p.handle(out)
                s.handle(reply)
                out = None
        now += 0.1
    return [s.result for s in sessions]


def test_eap_psk_through_radius_gives_the_peers_msk() -> None:
    auth, server = _auth(), _server()
    sa, sb = auth.start(A), auth.start(B)
    pa, pb = EapPskPeer(NAI_A, PSK_A, rng=1), EapPskPeer(NAI_B, PSK_B, rng=2)
    ra, rb = _run(auth, server, [sa, sb], [pa, pb])
    assert ra.success and rb.success and ra.method == "EAP-PSK"
    assert ra.msk == pa.msk and rb.msk == pb.msk and ra.msk != rb.msk
    assert pa.confirmed and pb.confirmed
    first = server.seen[0]
    assert first.first(r.Attr.USER_NAME) == NAI_A
    assert first.first(r.Attr.NAS_IDENTIFIER) == b"abs-1"
    assert first.first(r.Attr.CALLING_STATION_ID) == b"0A-00-00-00-00-11"
    assert first.first(r.Attr.CALLED_STATION_ID) == b"00-00-BB-00-00-01"
    # every request after the first echoes the State of the challenge it answers
    assert all(p.first(r.Attr.STATE) is not None for p in server.seen[2:])
    assert auth.dropped == {} and auth.outstanding == 0


def test_request_identity_asks_the_peer() -> None:
    auth = RadiusAuthenticator(RadiusSettings(secret=SECRET), rng=1, request_identity=True)
    s = auth.start(A)
    assert EapPacket.decode(s.pending or b"").type == 1
    (res,) = _run(auth, _server(), [s], [EapPskPeer(NAI_A, PSK_A, rng=1)])
    assert res.success


def test_handle_while_waiting_or_with_wrong_identifier_changes_nothing() -> None:
    auth = _auth()
    s = auth.start(A)
    with pytest.raises(ProtocolError):      # the server has not asked anything yet
        s.handle(EapPacket(EapCode.RESPONSE, 1, 1, b"x").encode())
    server = _server()
    pump(auth, server, 0.0)
    out, _ = s.poll()
    req = EapPacket.decode(out or b"")
    with pytest.raises(ProtocolError):
        s.handle(EapPacket(EapCode.RESPONSE, (req.identifier + 1) & 0xFF, 47, b"x").encode())
    with pytest.raises(MalformedError):
        s.handle(b"\x02")
    assert s.pending == out and auth.datagrams_to_send(0.0) == []


def test_silent_server_retries_with_backoff_then_fails_with_reason() -> None:
    auth, server = _auth(), _server()
    server.silent = True
    s = auth.start(A)
    sent_at = []
    now = 0.0
    while s.result is None and now < 10:
        auth.timer(now)
        for d in auth.datagrams_to_send(now):
            sent_at.append(round(now, 2))
            server.handle(d)
        s.poll()
        now = round(now + 0.05, 2)
    assert sent_at == [0.0, 0.5, 1.5]            # timeout 0.5 s, doubled, 2 retries
    assert len({p.authenticator for p in server.seen}) == 1   # resent unchanged
    assert s.result is not None and not s.result.success and s.result.reason == "aaa_timeout"
    assert auth.stats["timeouts"] == 1 and auth.outstanding == 0


def test_wrong_secret_answers_are_dropped_and_named() -> None:
    auth, server = _auth(), _server()
    server.answer_secret = b"not-the-secret"
    s = auth.start(A)
    res = _run(auth, server, [s], [EapPskPeer(NAI_A, PSK_A)])[0]
    assert not res.success and res.reason == "aaa_unauthentic"
    assert auth.dropped["bad_response_authenticator"] == 3     # one per try
    reply, _ = s.poll()
    assert reply is None   # the failure was handed out once


def test_wrong_secret_at_the_server_looks_like_a_silent_server() -> None:
    auth, server = _auth(secret=b"client-side-secret"), _server()
    s = auth.start(A)
    res = _run(auth, server, [s], [EapPskPeer(NAI_A, PSK_A)])[0]
    assert res.reason == "aaa_timeout" and server.seen == []


def test_access_reject_fails_the_entry_with_eap_failure() -> None:
    auth, server = _auth(), _server()
    s = auth.start(bytes.fromhex("0a00000000ff"))          # not a user of the server
    server.users.pop(b"x", None)
    pump(auth, server, 0.0)
    reply, res = s.poll()
    assert res is not None and not res.success and res.reason == "access_reject"
    assert EapPacket.decode(reply or b"").code == EapCode.FAILURE
    assert s.pending is None


def test_wrong_psk_at_the_peer_is_rejected_by_the_server() -> None:
    auth, server = _auth(), _server()
    s = auth.start(A)
    res = _run(auth, server, [s], [EapPskPeer(NAI_A, bytes(16))])[0]
    assert not res.success and res.reason == "access_reject" and res.msk is None


def test_forged_duplicated_and_reordered_answers_are_dropped_and_counted() -> None:
    auth, server = _auth(), _server()
    held: list[bytes] = []

    def wire(ans: bytes) -> list[bytes]:
        forged = bytearray(ans)
        forged[-1] ^= 0x40                     # altered Message-Authenticator
        out = [bytes(forged), ans, ans]        # forged first, then the real one twice
        out += held                            # and every older answer again, late
        held.append(ans)
        return out

    s = auth.start(A)
    peer = EapPskPeer(NAI_A, PSK_A, rng=5)
    res = _run(auth, server, [s], [peer], wire=wire)[0]
    assert res.success and res.msk == peer.msk
    assert auth.dropped["bad_message_authenticator"] + auth.dropped[
        "bad_response_authenticator"] >= 3
    assert auth.dropped["unknown_identifier"] >= 3


def test_each_outstanding_request_has_its_own_identifier() -> None:
    auth, server = _auth(), _server()
    server.silent = True
    sessions = [auth.start((0x0A0000000100 + i).to_bytes(6, "big")) for i in range(300)]
    sent = auth.datagrams_to_send(0.0)
    assert len(sent) == 256 and len({d[1] for d in sent}) == 256
    assert auth.outstanding == 256 and auth.busy()
    # the rest go out as identifiers free up (here: as requests time out)
    now, later = 0.0, []
    while now < 5:
        now += 0.5
        auth.timer(now)
        later += [d for d in auth.datagrams_to_send(now) if d[4:20] not in {x[4:20] for x in sent}]
    assert len({d[4:20] for d in later}) == 300 - 256
    assert all(s.result is not None for s in sessions[:256])


def test_waiting_queue_is_bounded() -> None:
    auth = _auth(max_waiting=4)
    sessions = [auth.start((0x0A0000000100 + i).to_bytes(6, "big")) for i in range(262)]
    busy = [s for s in sessions if s.result is not None]
    assert len(busy) == 2 and all(s.result.reason == "aaa_busy" for s in busy)


def test_garbage_never_raises() -> None:
    auth = _auth()
    auth.start(A)
    auth.datagrams_to_send(0.0)
    for junk in (b"", b"\x02", bytes(20), bytes([2, 0]) + bytes(40), bytes(range(256)) * 20):
        assert auth.receive_datagram(junk, 0.0) is False
    assert sum(auth.dropped.values()) == 5


def test_settings_validate_and_hide_the_secret() -> None:
    st = RadiusSettings(secret=b"very-secret")
    assert "very-secret" not in repr(st)
    for bad in ({"secret": b""}, {"secret": b"x", "timeout": 0}, {"secret": b"x", "retries": -1},
                {"secret": b"x", "realm": "bad realm"}, {"secret": b"x", "nas_identifier": ""}):
        with pytest.raises(MalformedError):
            RadiusSettings(**bad)  # type: ignore[arg-type]


def test_failures_are_logged_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    auth, server = _auth(), _server()
    server.answer_secret = b"not-the-secret"
    s = auth.start(A)
    with caplog.at_level("WARNING", logger="stack.pkm.radius"):
        _run(auth, server, [s], [EapPskPeer(NAI_A, PSK_A)])
    text = caplog.text
    assert "shared secret" in text and "failed authentication" in text
    assert SECRET.decode() not in text and "not-the-secret" not in text
    assert SECRET.decode() not in repr(auth) and SECRET.decode() not in repr(s)


def test_slow_server_answers_after_a_resend_and_the_late_copy_is_dropped() -> None:
    """A server slower than the timeout: the request is resent, the server answers both copies
    (the same answer), the first completes the round trip and the late one is dropped."""
    auth, server = _auth(), _server()
    s = auth.start(A)
    peer = EapPskPeer(NAI_A, PSK_A, rng=8)
    delayed: list[tuple[float, bytes]] = []
    now = 0.0
    while s.result is None and now < 20:
        auth.timer(now)
        for d in auth.datagrams_to_send(now):
            ans = server.handle(d)
            if ans is not None:
                delayed.append((now + 0.7, ans))      # 0.7 s > the 0.5 s timeout
        for t, ans in [x for x in delayed if x[0] <= now]:
            delayed.remove((t, ans))
            auth.receive_datagram(ans, now)
        out, _ = s.poll()
        if out is not None:
            if EapPacket.decode(out).code == EapCode.REQUEST:
                reply, _ = peer.handle(out)
                s.handle(reply)
            else:
                peer.handle(out)
        now = round(now + 0.05, 2)
    assert s.result is not None and s.result.success and s.result.msk == peer.msk
    # each round trip was resent once; the late copies that came before the end were dropped
    assert auth.stats["retransmissions"] == 3 and auth.dropped["unknown_identifier"] >= 2


def test_timer_reports_the_sessions_it_ended() -> None:
    auth = _auth()
    s = auth.start(A)
    auth.datagrams_to_send(0.0)
    assert auth.timer(0.6) is False            # a resend is due: no news yet
    auth.datagrams_to_send(0.6)
    auth.timer(1.7)
    auth.datagrams_to_send(1.7)
    assert auth.timer(3.8) is True and s.result is not None   # out of tries: news to poll
