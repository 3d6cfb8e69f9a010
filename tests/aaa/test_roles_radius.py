"""The ABS role with the RADIUS back end (in-memory server): entry of ARSs and an AMS in both
security modes, Access-Reject and a dead server ending an entry with the reason, and the
stations already in unaffected -- without any change to how the roles handle messages."""

from __future__ import annotations

import pytest

from stack.pkm.radius_client import RadiusAuthenticator, RadiusSettings
from stack.roles import (
    AbsConfig,
    AbsRole,
    AmsConfig,
    AmsRole,
    ArsConfig,
    ArsRole,
    SecurityMode,
    Timers,
)
from stack.roles.events import EntryFailed
from stack.roles.ids import station_bytes
from stack.roles.memnet import Net
from tests.aaa.memserver import MemRadiusServer, pump

ABS, ARS1, AMS = 0x0000BB000001, 0x0A0000000011, 0x0C0000000101
PSK = {ARS1: b"\x11" * 16, AMS: b"\x22" * 16}
SECRET = b"role-test-secret"


def nai(sid: int) -> bytes:
    return f"{sid:012x}@relaysec.test".encode()


def build(mode: SecurityMode, *, users: dict[int, bytes] | None = None):
    users = PSK if users is None else users
    server = MemRadiusServer({nai(s): k for s, k in users.items()}, SECRET)
    auth = RadiusAuthenticator(RadiusSettings(secret=SECRET, timeout=0.1, retries=2,
                                              called_station_id="00-00-BB-00-00-01"), rng=9)
    timers = Timers(rto=0.2, max_retries=10)
    abs_ = AbsRole(AbsConfig(station_id=ABS, mode=mode, timers=timers,
                             relays=frozenset({ARS1})), authenticator=auth, rng=1)
    ars = ArsRole(ArsConfig(station_id=ARS1, psk=PSK[ARS1], mode=mode, timers=timers,
                            identity=nai(ARS1)), rng=2)
    ams = AmsRole(AmsConfig(station_id=AMS, psk=PSK[AMS], timers=timers, abs_id=ABS,
                            identity=nai(AMS)), rng=3)
    net = Net({ABS: abs_, ARS1: ars, AMS: ams})
    net.start_recording()
    return net, server, auth, abs_, ars, ams


def run(net: Net, auth: RadiusAuthenticator, server: MemRadiusServer, seconds: float) -> None:
    """Frames hop by hop; the RADIUS datagrams move after every hop (a server answering within
    a millisecond), and the ABS polls its sessions when an answer came."""
    end = net.now + seconds
    abs_ = net.roles[ABS]
    while net.now < end:
        net.step()
        if pump(auth, server, net.now):
            abs_.timer(net.now)
        for role in net.roles.values():
            d = role.next_deadline()
            if d is not None and d <= net.now:
                role.timer(net.now)
        net.now += 0.002


@pytest.mark.parametrize("mode", [SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED])
def test_ars_and_ams_enter_through_radius(mode: SecurityMode) -> None:
    net, server, auth, abs_, ars, ams = build(mode)
    ars.attach(ABS, net.now)
    run(net, auth, server, 1.0)
    assert abs_.context(ARS1) is not None
    ams.attach(ARS1, net.now)
    run(net, auth, server, 1.0)
    assert abs_.context(AMS) is not None and ams.key_info(ARS1 if mode ==
                                                          SecurityMode.DISTRIBUTED else ABS)
    users = [p.first(1) for p in server.seen]
    assert nai(ARS1) in users and nai(AMS) in users
    assert auth.dropped == {}


def test_access_reject_ends_the_entry_with_its_reason() -> None:
    net, server, auth, abs_, ars, _ams = build(SecurityMode.DISTRIBUTED, users={})
    ars.attach(ABS, net.now)
    run(net, auth, server, 0.5)
    assert abs_.context(ARS1) is None
    assert [e.reason for e in net.of(ABS, EntryFailed)][:1] == ["access_reject"]
    assert abs_.half_open == 0


def test_dead_server_fails_new_entries_and_spares_stations_already_in() -> None:
    net, server, auth, abs_, ars, ams = build(SecurityMode.DISTRIBUTED)
    ars.attach(ABS, net.now)
    run(net, auth, server, 1.0)
    assert abs_.context(ARS1) is not None
    server.silent = True
    ams.attach(ARS1, net.now)
    run(net, auth, server, 1.5)
    assert abs_.context(AMS) is None
    assert "aaa_timeout" in [e.reason for e in net.of(ABS, EntryFailed, station=AMS)]
    assert auth.stats["timeouts"] >= 1 and auth.outstanding == 0
    # the ARS that entered before keeps its keys, and data still flows over its link
    abs_.send_data(ARS1, b"still here", net.now)
    net.keep_events = True
    run(net, auth, server, 0.1)
    from stack.roles.events import DataReceived

    assert any(e.payload == b"still here" for e in net.of(ARS1, DataReceived))
    assert station_bytes(AMS)  # (the AMS retries entry on its own schedule)


def test_an_accept_with_an_msk_the_peer_does_not_share_gives_no_keys() -> None:
    net, server, auth, abs_, ars, _ams = build(SecurityMode.DISTRIBUTED)
    server.wrong_msk = True
    ars.attach(ABS, net.now)
    run(net, auth, server, 1.0)
    assert auth.stats["answers"] >= 3                  # EAP itself succeeded at the server
    assert abs_.context(ARS1) is None and ars.key_info(ABS) is None
