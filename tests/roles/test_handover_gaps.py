"""What the old path still carries at a handover (per-hop ARQ, distributed mode; docs/roles.md
§11): over the air a move completes while bursts of the old access RS are still in flight, and
refusing them left gaps that only a status report round trip over the new path filled.

* the AMS keeps the old station's access hop receiving (and its link opening data) for a grace;
* the old ARS, told to release the AMS, still forwards the uplink it holds for as long;
* the ABS keeps its relay hop with the old ARS receiving for as long;
* what never went on the air of the old path goes again at once on the new one;
* after the grace, the old station's data is refused as before.
"""

from __future__ import annotations

from stack.arq import ArqParams
from stack.roles.arq_plumbing import ACCESS, HOP, LEFT, RELAY
from stack.roles.events import DataReceived, HandoverComplete, Rejected
from stack.roles.framing import FIRST_DATA_FID as FID

from .harness import ABS, AMS, ARS1, ARS2, enter_all

ARQ = ArqParams(window=64, rto_initial=0.05, rto_min=0.01, rto_max=0.5, lifetime=30.0, purge=40.0)


def _cell():
    net, abs_, ars1, ars2, ams = enter_all()
    for role in (abs_, ars1, ars2):
        role.configure_arq(ARQ, per_hop=True)
    ams.configure_arq(ARQ, per_hop=True)
    net.start_recording()
    for i in range(4):                       # the connections are up and acknowledged
        abs_.send_data(AMS, b"d%d" % i, net.now)
        ams.send_data(ABS, b"u%d" % i, net.now)
    net.settle(1.0)
    abs_.prepare_handover(AMS, [ARS2], net.now)
    net.settle(0.3)
    return net, abs_, ars1, ars2, ams


def _step_until(net, done, limit=200):
    for _ in range(limit):
        if done():
            return
        net.step()
        net.now += 0.001
    raise AssertionError("condition not reached")


def _move_with_a_hop_stuck(net, ars1, ams, *, stuck, hop, new_path, send, n):
    """Send *n* packets while the old RS's link *stuck* is down, so its *hop* holds them; move
    the AMS to ARS-2; once the ABS has the move, take the new path's *new_path* link down too
    (only ARS-1's drain can deliver them then), and wait for ARS-1's release, checking the
    hop is still there. Returns the set of blocked links (the tamper hook reads it)."""
    blocked = {stuck}
    net.tamper = lambda s, d, f: None if (s, d) in blocked else f
    for i in range(n):
        send(i)
    net.settle(0.01)
    assert ars1.arq_connections()[hop].tx.unacked()
    ams.handover(ARS2, net.now)
    _step_until(net, lambda: net.of(ABS, HandoverComplete))
    blocked.add(new_path)
    _step_until(net, lambda: not ars1.serves(AMS))     # released: the keys are gone ...
    assert hop in ars1.arq_connections()               # ... the hop still drains
    return blocked


def _drained_via_ars1(net, blocked, stuck, receiver, tag, n):
    """Bring the stuck link back: the *n* packets tagged *tag* arrive at *receiver*, in order,
    each reported as come through ARS-1 (its drain)."""
    blocked.discard(stuck)
    net.settle(0.5)
    got = [e for e in net.of(receiver, DataReceived) if e.payload.startswith(tag)]
    assert [e.payload for e in got] == [tag + b"%d" % i for i in range(n)]
    assert all(e.via == ARS1 for e in got)


def test_downlink_the_old_ars_delivers_late_is_taken_within_the_grace():
    net, abs_, _ars1, _ars2, ams = _cell()
    in_air: list[bytes] = []
    net.tamper = lambda s, d, f: (in_air.append(f), None)[1] if (s, d) == (ARS1, AMS) else f
    for i in range(4):
        abs_.send_data(AMS, b"late%d" % i, net.now)
    net.settle(0.005)                        # ARS-1 has sent them: still on their way
    assert in_air
    ams.handover(ARS2, net.now)
    _step_until(net, lambda: ams.serving == ARS2)
    assert (LEFT, FID, ARS1) in ams.arq_connections()
    for f in in_air:                         # the old station's bursts arrive after the move
        ams.receive(ARS1, f, net.now)
    late = [e for e in net.of(AMS, DataReceived) if e.payload.startswith(b"late")]
    assert [e.payload for e in late] == [b"late%d" % i for i in range(4)]
    assert all(e.via == ARS1 for e in late)  # reported as come by the path that brought them
    assert not net.of(AMS, Rejected, reason="wrong_link")
    net.tamper = None
    net.settle(2.0)
    got = [e.payload for e in net.of(AMS, DataReceived)]
    assert got == [b"d%d" % i for i in range(4)] + [b"late%d" % i for i in range(4)]
    assert (LEFT, FID, ARS1) not in ams.arq_connections()   # closed when the grace ended


def test_after_the_grace_the_old_station_is_refused_again():
    net, abs_, _ars1, _ars2, ams = _cell()
    in_air: list[bytes] = []
    net.tamper = lambda s, d, f: (in_air.append(f), None)[1] if (s, d) == (ARS1, AMS) else f
    abs_.send_data(AMS, b"late", net.now)
    net.settle(0.005)
    ams.handover(ARS2, net.now)
    net.tamper = None
    net.settle(ams._grace + 0.1)
    for f in in_air:
        ams.receive(ARS1, f, net.now)
    assert [e.payload for e in net.of(AMS, DataReceived)][-1] == b"late"   # via ARS-2, once
    assert [e.via for e in net.of(AMS, DataReceived) if e.payload == b"late"] == [ARS2]
    assert net.of(AMS, Rejected, reason="wrong_link")


def test_uplink_the_old_ars_holds_is_forwarded_after_its_release():
    """ARS-1 has the AMS's uplink but its hop to the ABS is down when the move completes; the
    new path's uplink is down too, so only ARS-1's drain can bring the blocks to the ABS."""
    net, abs_, ars1, _ars2, ams = _cell()
    blocked = _move_with_a_hop_stuck(
        net, ars1, ams, stuck=(ARS1, ABS), hop=(RELAY, AMS, FID), new_path=(AMS, ARS2),
        send=lambda i: ams.send_data(ABS, b"held%d" % i, net.now), n=4)
    _drained_via_ars1(net, blocked, (ARS1, ABS), ABS, b"held", 4)
    assert not net.of(ABS, Rejected, reason="wrong_link")
    net.tamper = None
    net.settle(2.0)
    assert (RELAY, AMS, FID) not in ars1.arq_connections()             # drained, then closed
    assert not any(k[0] == HOP and k[1] == ARS1 for k in abs_.arq_connections()
                   if isinstance(k, tuple))                             # the ABS's hop too
    got = [e.payload for e in net.of(ABS, DataReceived)]
    assert got == [b"u%d" % i for i in range(4)] + [b"held%d" % i for i in range(4)]


def _withhold(role, held):
    """Leave *role*'s queue to *held* unsent, as a MAC whose zone for it has not come yet."""
    orig = role.frames_to_send

    def frames_to_send(now, max_bytes=None, *, dst=None):
        out = []
        for d in [dst] if dst is not None else list(role.backlog()):
            if d != held:
                out += orig(now, max_bytes, dst=d)
        return out

    role.frames_to_send = frames_to_send
    return lambda: setattr(role, "frames_to_send", orig)


def test_what_never_left_for_the_old_relay_goes_at_once_on_the_new_path():
    """Downlink the ABS still had queued for ARS-1 (unsealed, never on the air) goes again at
    the move, without waiting for the AMS's status report (its uplink by the new path is
    down once it has re-entered)."""
    net, abs_, _ars1, _ars2, ams = _cell()
    release = _withhold(abs_, ARS1)
    for i in range(3):
        abs_.send_data(AMS, b"q%d" % i, net.now)    # queued for ARS-1, not sent
    ams.handover(ARS2, net.now)
    net.tamper = lambda s, d, f: None if (s, d) == (AMS, ARS2) and ams.serving == ARS2 else f
    net.settle(0.05)
    assert abs_.arq_stats["resent_after_move"] == 3
    got = [e for e in net.of(AMS, DataReceived) if e.payload.startswith(b"q")]
    assert [e.payload for e in got] == [b"q%d" % i for i in range(3)]
    assert all(e.via == ARS2 for e in got)
    release()


def test_downlink_the_old_ars_still_holds_at_its_release_is_delivered():
    """ARS-1 has downlink for the AMS that it could not deliver before the move; released, it
    keeps the AMS's link for the grace only to finish that (16m's resource retain time), and
    the AMS takes it on the held hop. The ABS's own path to ARS-2 is down meanwhile, so the
    drain is the only way those blocks arrive."""
    net, abs_, ars1, _ars2, ams = _cell()
    blocked = _move_with_a_hop_stuck(
        net, ars1, ams, stuck=(ARS1, AMS), hop=(ACCESS, AMS, FID), new_path=(ABS, ARS2),
        send=lambda i: abs_.send_data(AMS, b"kept%d" % i, net.now), n=3)
    _drained_via_ars1(net, blocked, (ARS1, AMS), AMS, b"kept", 3)
    net.tamper = None
    net.settle(2.0)
    assert not [k for k in ars1.arq_connections() if isinstance(k, tuple) and k[1] == AMS]
    assert ars1.key_info(AMS) is None                   # and its keys are gone


def test_the_target_reports_each_arrival_to_its_mac_once():
    """RoleBase.take_arrivals: the ARS (or the ABS, for an AMS moving to it directly) whose
    handover re-entry completed names the AMS once, for the zone MAC's arrival grants."""
    net, abs_, _ars1, ars2, ams = _cell()
    abs_.take_arrivals()
    ams.handover(ARS2, net.now)
    net.settle(0.2)
    assert ars2.take_arrivals() == [AMS] and ars2.take_arrivals() == []
    assert abs_.take_arrivals() == []                 # the AMS went to ARS-2, not to us
    ams.handover(ABS, net.now)
    net.settle(0.5)
    assert ams.serving == ABS
    assert abs_.take_arrivals() == [AMS]
