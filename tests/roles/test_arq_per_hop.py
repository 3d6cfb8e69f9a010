"""Per-hop ARQ in distributed mode (issue 14 item 1, docs/roles.md §11): ABS<->ARS and ARS<->AMS
each run ARQ under the end-to-end connection, so a hop recovers its own air losses and the
end-to-end layer keeps only what a path that ends (handover) or a hop that gave up needs."""

from __future__ import annotations

import random

import pytest

from stack.arq import ArqParams, over_hops
from stack.errors import MalformedError
from stack.nonces import NonceMonitor, monitoring
from stack.roles import AmsConfig, AmsRole, SecurityMode
from stack.roles.arq_plumbing import ACCESS, HOP, RELAY
from stack.roles.events import DataReceived
from stack.roles.framing import FIRST_DATA_FID as FIRST_FID

from .harness import ABS, AMS, ARS1, ARS2, PSK, enter_all

ARQ = ArqParams(window=64, rto_initial=0.05, rto_min=0.01, rto_max=0.5, lifetime=30.0, purge=40.0)


def _cell(mode=SecurityMode.DISTRIBUTED, seed=0):
    """The standard cell entered without ARQ, then ARQ turned on per hop (as the runtime does
    before any data flows). The ABS and the ARSs decide by their own security mode; the AMS is
    told (relaysec.config.arq_per_hop)."""
    net, abs_, ars1, ars2, ams = enter_all(mode=mode, seed=seed)
    for role in (abs_, ars1, ars2):
        role.configure_arq(ARQ, per_hop=True)
    ams.configure_arq(ARQ, per_hop=mode == SecurityMode.DISTRIBUTED)
    net.start_recording()
    return net, abs_, ars1, ars2, ams


def _lossy(net, pairs, p, seed):
    """Drop each frame between the station pairs with probability ``p`` (seeded)."""
    rng = random.Random(seed)
    net.tamper = lambda src, dst, f: None if {src, dst} in pairs and rng.random() < p else f


def _payloads(net, sid):
    return [e.payload for e in net.of(sid, DataReceived)]


def _exchange(net, abs_, ams, n, tag=b""):
    for i in range(n):
        abs_.send_data(AMS, tag + b"D%03d" % i, net.now)
        ams.send_data(ABS, tag + b"U%03d" % i, net.now)
        net.settle(0.01)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_lossy_access_hop_is_recovered_by_the_hop_not_end_to_end(seed):
    net, abs_, ars1, _a2, ams = _cell(seed=seed)
    _lossy(net, [{AMS, ARS1}], 0.3, seed)
    with monitoring(NonceMonitor()) as mon:
        _exchange(net, abs_, ams, 40)
        net.settle(5.0)
    assert _payloads(net, AMS) == [b"D%03d" % i for i in range(40)]
    assert _payloads(net, ABS) == [b"U%03d" % i for i in range(40)]
    hops = ars1.arq_connections()
    assert {(ACCESS, AMS, 2), (RELAY, AMS, 2)} <= set(hops)
    # the access hop resent what the air lost, both ways ...
    assert hops[(ACCESS, AMS, 2)].tx.stats["retransmissions"] > 0
    assert ams.arq_connections()[(HOP, 2)].tx.stats["retransmissions"] > 0
    # ... so the end-to-end layer never had to: its timer waits for a path that ends
    for e2e in (abs_.arq_connections()[(AMS, 2)], ams.arq_connections()[2]):
        assert e2e.tx.p == over_hops(ARQ)
        assert e2e.tx.stats["retransmissions"] == 0
    # the relay hop (clean) resent nothing either
    assert abs_.arq_connections()[(HOP, ARS1, AMS, 2)].tx.stats["retransmissions"] == 0
    assert mon.seen > 160 and mon.reused == 0


@pytest.mark.parametrize("seed", [1, 2])
def test_handover_between_relays_loses_and_duplicates_nothing(seed):
    net, abs_, ars1, ars2, ams = _cell(seed=seed)
    net.loss = 0.2
    with monitoring(NonceMonitor()) as mon:
        _exchange(net, abs_, ams, 30, b"a")
        abs_.prepare_handover(AMS, [ARS2], net.now)
        net.settle(0.3)
        ams.handover(ARS2, net.now)
        _exchange(net, abs_, ams, 30, b"b")
        net.settle(30.0)
    assert ams.serving == ARS2
    want = [t + b"%03d" % i for t in (b"a", b"b") for i in range(30)]
    assert _payloads(net, AMS) == [w[:1] + b"D" + w[1:] for w in want]
    assert _payloads(net, ABS) == [w[:1] + b"U" + w[1:] for w in want]
    # the old relay's hops for the AMS closed with its context; the new relay's carry it
    assert not any(k[1] == AMS for k in ars1.arq_connections() if isinstance(k, tuple))
    assert {(ACCESS, AMS, 2), (RELAY, AMS, 2)} <= set(ars2.arq_connections())
    assert not any(k[:2] == (HOP, ARS1) for k in abs_.arq_connections() if isinstance(k, tuple))
    assert mon.reused == 0


def test_handover_to_the_abs_itself_turns_the_connection_direct():
    net, abs_, _a1, _a2, ams = _cell()
    _exchange(net, abs_, ams, 10, b"a")
    assert ams.arq_connections()[2].tx.p == over_hops(ARQ)
    abs_.prepare_handover(AMS, [ABS], net.now)
    net.settle(0.3)
    ams.handover(ABS, net.now)
    net.settle(1.0)
    _exchange(net, abs_, ams, 10, b"b")
    net.settle(5.0)
    assert ams.serving == ABS
    assert len(_payloads(net, AMS)) == len(_payloads(net, ABS)) == 20
    # one ARQ layer on a direct link: its own timers, no hop left at either end
    assert ams.arq_connections()[2].tx.p == ARQ
    assert abs_.arq_connections()[(AMS, 2)].tx.p == ARQ
    assert not any(isinstance(k, tuple) for k in ams.arq_connections())
    assert not any(k[0] == HOP for k in abs_.arq_connections())


def test_centralized_relays_only_forward():
    """In centralized mode the ARS holds no AMS keys and so runs no hop: ARQ is end to end."""
    net, abs_, ars1, _a2, ams = _cell(mode=SecurityMode.CENTRALIZED)
    assert not abs_.arq_per_hop and not ars1.arq_per_hop
    _exchange(net, abs_, ams, 5)
    net.settle(2.0)
    assert len(_payloads(net, AMS)) == 5
    assert ars1.arq_connections() == {}


def test_per_hop_needs_to_know_which_station_is_the_abs():
    ams = AmsRole(AmsConfig(station_id=AMS, psk=PSK[AMS]), rng=4)
    with pytest.raises(MalformedError, match="abs_id"):
        ams.configure_arq(ARQ, per_hop=True)
    ams.configure_arq(ARQ)   # end to end only: no need
    assert ams.arq_enabled and not ams.arq_per_hop


def test_a_relays_own_traffic_is_one_hop_with_one_arq_layer():
    """An ARS's own data to the ABS runs plain ARQ (it *is* the hop), even in a cell running
    per-hop ARQ and with no ``abs_id`` in the ARS's config (the roles fuzzer found the ARS
    treating its own connection as one over hops)."""
    net, _abs, ars1, _a2, _ams = _cell()
    ars1.send_data(ABS, b"own traffic", net.now)
    net.settle(1.0)
    got = [e for e in net.of(ABS, DataReceived) if e.src == ARS1]
    assert [e.payload for e in got] == [b"own traffic"]
    assert 2 in ars1.arq_connections() and ars1.arq_connections()[2].tx.p == ARQ


def test_after_a_handover_only_what_the_far_end_lacks_goes_again():
    """Status reports (as LTE's PDCP): both ends send their receiver's feedback on the new path
    and resend only what the other's report leaves unacknowledged -- end-to-end feedback over
    hops is coarse (every quarter window), so at the move most held blocks had in fact arrived."""
    net, abs_, _a1, _a2, ams = _cell()
    _exchange(net, abs_, ams, 30)
    net.settle(1.0)
    for i in range(12):              # a burst each way that arrives within 20 ms, while
        abs_.send_data(AMS, b"cD%03d" % i, net.now)      # the end-to-end acknowledgement
        ams.send_data(ABS, b"cU%03d" % i, net.now)       # (a quarter window, or 125 ms)
    net.settle(0.02)                                     # is still due
    held_dl = sum(c.tx.unacked() for k, c in abs_.arq_connections().items()
                  if isinstance(k, tuple) and k[0] == AMS)
    held_ul = sum(c.tx.unacked() for k, c in ams.arq_connections().items() if isinstance(k, int))
    assert held_dl > 5 and held_ul > 5   # held for a coarse end-to-end acknowledgement
    abs_.prepare_handover(AMS, [ARS2], net.now)
    net.settle(0.01)
    ams.handover(ARS2, net.now)
    _exchange(net, abs_, ams, 10, b"b")
    net.settle(10.0)
    assert _payloads(net, AMS)[-10:] == [b"bD%03d" % i for i in range(10)]
    assert _payloads(net, ABS)[-10:] == [b"bU%03d" % i for i in range(10)]
    assert len(_payloads(net, AMS)) == 52 and len(_payloads(net, ABS)) == 52
    # nothing the far end had went again: not the blocks held at the move
    assert abs_.arq_stats["resent_after_move"] < held_dl
    assert ams.arq_stats["resent_after_move"] < held_ul


def test_without_a_status_report_the_held_blocks_go_again_after_a_while():
    net, _abs, _a1, _a2, ams = _cell()
    for i in range(6):
        ams.send_data(ABS, b"U%03d" % i, net.now)
    net.settle(0.02)
    key = FIRST_FID
    conn = ams.arq_connections()[key]
    held = conn.tx.unacked()
    assert held
    ams._arq_path_changed(key, net.now)          # the report from the far end never comes
    assert ams.arq_stats["resent_after_move"] == 0
    ams.timer(net.now + ARQ.rto_max / 4)
    assert ams.arq_stats["resent_after_move"] == held
