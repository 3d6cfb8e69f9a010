"""Key lifecycle flows of the roles (issue 4, flows 5-7 and faults): TEK refresh with traffic
running across it, re-authentication, handover to the ABS and in centralized mode, and clean
failure when the peer is gone."""

from __future__ import annotations

from collections import Counter

import pytest

from stack import sa as sa_mod
from stack.pkm import messages as m
from stack.roles import (
    AkTransferred,
    Attached,
    ContextReleased,
    DataReceived,
    EntryFailed,
    HandoverComplete,
    KeysInstalled,
    Lifetimes,
    PeerLost,
    Rejected,
    SecurityMode,
    Timers,
)
from stack.roles.framing import FID_CONTROL, FIRST_DATA_FID, mpdu_fid, split_frame
from tests.roles.harness import ABS, AMS, ARS1, ARS2, enter_all, same_keys

D, C = SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED


@pytest.fixture
def pn_log(monkeypatch):
    """Every (AKID, SAID, COUNTER_TEK, direction, PN) handed out by any SA, in order."""
    log: list[tuple[bytes, int, int, bool, int]] = []
    orig = sa_mod.SecurityAssociation.next_pn

    def spy(self, uplink, *, now=None):
        tek, pn = orig(self, uplink, now=now)
        log.append((self.akid, self.said, tek.counter_tek, uplink, pn))
        return tek, pn

    monkeypatch.setattr(sa_mod.SecurityAssociation, "next_pn", spy)
    return log


def holder_of(mode, abs_, ars):
    """The station terminating the AMS's keys: the ARS (distributed) or the ABS (centralized)."""
    return ars if mode == D else abs_


def drop_while(net, src, dst, code):
    """Make the air drop control messages ``code`` from ``src`` to ``dst`` while the returned
    switch (a one-item list) holds True."""
    on = [True]

    def tamper(s, d, frame):
        return None if on[0] and (s, d) == (src, dst) and frame[2] == code else frame

    net.tamper = tamper
    return on


def pump(net, abs_, ams, n, dt=0.01, tag=b""):
    """Send ``n`` packets each way, one per ``dt`` (deadlines run in between)."""
    for i in range(n):
        ams.send_data(ABS, tag + b"up-%d" % i, net.now)
        abs_.send_data(AMS, tag + b"dn-%d" % i, net.now)
        net.settle(dt)
    net.settle(1.0)


def payloads(net, sid, src):
    return [e.payload for e in net.of(sid, DataReceived, src=src)]


# -- TEK refresh -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [D, C])
def test_tek_refresh_by_pn_threshold_keeps_traffic(mode, pn_log):
    life = Lifetimes(pn_refresh=16)
    net, abs_, ars1, _ars2, ams = enter_all(mode, lifetimes=life)
    net.start_recording()
    holder = holder_of(mode, abs_, ars1)
    before = ams.key_info()
    pump(net, abs_, ams, 120)
    # every packet delivered exactly once, in order, both ways
    assert payloads(net, ABS, AMS) == [b"up-%d" % i for i in range(120)]
    assert payloads(net, AMS, ABS) == [b"dn-%d" % i for i in range(120)]
    assert not net.of(AMS, Rejected) and not net.of(ABS, Rejected)
    assert not net.of(ARS1, Rejected)
    # several refreshes, EKS wrapped around mod 4, same counters and keys at both ends
    after = ams.key_info()
    assert after.akid == before.akid
    assert after.counter_teks[0] >= 4
    assert after.tx_eks == after.counter_teks[0] % 4
    assert same_keys(after, holder.key_info(AMS))
    refreshes_ams = net.of(AMS, KeysInstalled, cause="tek_refresh", subject=AMS)
    refreshes_holder = net.of(holder.station_id, KeysInstalled, cause="tek_refresh", subject=AMS)
    assert len(refreshes_ams) == len(refreshes_holder) == after.counter_teks[-1] - 1
    assert [e.counter_teks for e in refreshes_ams] == [e.counter_teks for e in refreshes_holder]
    # the ARS's own relay link (which carries the AMS traffic) refreshed too, and matches
    relay = ars1.key_info()
    assert relay.counter_teks[0] >= 1 and same_keys(relay, abs_.key_info(ARS1))
    # no {TEK, direction, PN} was ever used twice
    dup = [k for k, n in Counter(pn_log).items() if n > 1]
    assert not dup


def test_tek_refresh_by_lifetime():
    life = Lifetimes(tek=10.0, tek_refresh_margin=0.2)
    net, abs_, ars1, _ars2, ams = enter_all(D, lifetimes=life)
    net.start_recording()
    for i in range(30):  # 30 s, one packet each way per second
        ams.send_data(ABS, b"u%d" % i, net.now)
        abs_.send_data(AMS, b"d%d" % i, net.now)
        net.settle(1.0)
    ki = ams.key_info()
    # a refresh every (1 - margin) * lifetime = 8 s since the keys were agreed
    t_keys = next(t for t, src, _d, f in net.log if src == AMS and f[2] == 0x04)  # MSG#2
    n = int((net.now - t_keys) // 8.0)
    assert n >= 6 and ki.counter_teks == (n, n + 1)
    assert len(net.of(AMS, KeysInstalled, cause="tek_refresh")) in (3, 4)  # during the 30 s
    assert same_keys(ki, ars1.key_info(AMS))
    assert len(payloads(net, ABS, AMS)) == 30 and len(payloads(net, AMS, ABS)) == 30
    assert not net.of(AMS, Rejected) and not net.of(ARS1, Rejected)


def test_tek_reply_lost_then_retransmitted_request_does_not_skip_a_tek():
    life = Lifetimes(pn_refresh=8)
    net, _abs, ars1, _ars2, ams = enter_all(D, lifetimes=life)
    net.start_recording()
    dropped = []

    def drop_first_reply(src, dst, frame):
        if src == ARS1 and dst == AMS and frame[2] == 0x07 and not dropped:  # TEK-Reply
            dropped.append(frame)
            return None
        return frame

    net.tamper = drop_first_reply
    for i in range(12):  # uplink only: the ARS confirms the update from the AMS's traffic
        ams.send_data(ABS, b"u%d" % i, net.now)
        net.settle(0.01)
    net.settle(2.0)
    assert dropped
    ki = ams.key_info()
    assert ki.counter_teks == (1, 2)
    assert same_keys(ki, ars1.key_info(AMS))
    assert len(net.of(ARS1, KeysInstalled, cause="tek_refresh", subject=AMS)) == 1
    assert len(payloads(net, ABS, AMS)) == 12


# -- re-authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [D, C])
def test_reauthentication_when_ak_lifetime_runs_low(mode):
    life = Lifetimes(ak=100.0, reauth_margin=0.1)
    net, abs_, ars1, _ars2, ams = enter_all(mode, lifetimes=life)
    net.start_recording()
    holder = holder_of(mode, abs_, ars1)
    old = ams.key_info()
    t0 = net.now
    net.settle(95.0)  # re-auth due at 90 s after entry
    new = ams.key_info()
    assert new.pmk_sn == (old.pmk_sn + 1) % 16 and new.akid != old.akid
    assert new.cmac_key_count == 0 and new.counter_teks == (0, 1)
    assert same_keys(new, holder.key_info(AMS))
    assert abs_.key_info(AMS).akid == new.akid
    re = net.of(AMS, KeysInstalled, cause="reauth")
    assert len(re) == 1 and re[0].akid == new.akid
    assert net.of(ABS, KeysInstalled, cause="reauth", subject=AMS)
    # ... requested once, at the scheduled time: 0.9 * AK lifetime after the keys were agreed
    sent = [(t, frame[2]) for t, src, _dst, frame in net.log if src == AMS and len(frame) > 2]
    t_keys = max(t for t, code in sent if code == 0x04 and t < t0)  # last entry MSG#2
    t_reauth = [t for t, code in sent if code == 0x01]               # Reauth-Request
    assert len(t_reauth) == 1 and abs(t_reauth[0] - t_keys - 0.9 * life.ak) < 0.05
    # data flows under the new keys
    ams.send_data(ABS, b"after-reauth", net.now)
    abs_.send_data(AMS, b"after-reauth-dn", net.now)
    net.settle(1.0)
    assert payloads(net, ABS, AMS)[-1:] == [b"after-reauth"]
    assert payloads(net, AMS, ABS)[-1:] == [b"after-reauth-dn"]


def test_reauthentication_after_handover():
    net, _abs, _ars1, ars2, ams = enter_all(D)
    net.start_recording()
    ams.handover(ARS2, net.now)
    net.settle(3.0)
    old = ams.key_info()
    assert old.cmac_key_count == 1
    ams.reauthenticate(net.now)
    net.settle(5.0)
    new = ams.key_info()
    assert new.pmk_sn == old.pmk_sn + 1 and new.cmac_key_count == 0 and new.akid != old.akid
    assert same_keys(new, ars2.key_info(AMS))
    assert net.of(ARS2, AkTransferred, akid=new.akid)


@pytest.mark.parametrize("mode", [D, C])
@pytest.mark.parametrize("who", ["ams", "relay"])
def test_data_sealed_under_the_old_ak_arriving_after_reauthentication_is_received(mode, who):
    """The two ends of a link switch AKs a few frames apart (the ABS at MSG#3, an access RS at
    the AK Transfer, the subject when MSG#3 arrives): an MPDU sealed under the old AK that
    arrives after its receiver switched is received, not counted as a forgery (no ARQ here:
    it would be missing)."""
    net, abs_, ars1, _ars2, ams = enter_all(mode)
    net.start_recording()
    subject, sid = (ams, AMS) if who == "ams" else (ars1, ARS1)
    peer = subject.serving
    held = []

    def hold_data(src, dst, frame):
        if {src, dst} == {sid, peer} and mpdu_fid(frame) == FIRST_DATA_FID:
            held.append((src, dst, frame))
            return None
        return frame

    net.tamper = hold_data
    subject.send_data(ABS, b"up, old AK", net.now)
    abs_.send_data(sid, b"down, old AK", net.now)
    net.settle(0.05)
    assert len(held) == 2
    net.tamper = None
    old = subject.key_info()
    subject.reauthenticate(net.now)
    net.settle(0.5)
    assert subject.key_info().akid != old.akid and net.of(sid, KeysInstalled, cause="reauth")
    for src, dst, frame in held:  # late, after both ends switched
        net.roles[dst].receive(src, frame, net.now)
    net.settle(0.1)
    assert payloads(net, ABS, sid) == [b"up, old AK"]
    assert payloads(net, sid, ABS) == [b"down, old AK"]
    for st in (ABS, ARS1, AMS):
        assert not net.of(st, Rejected), st


def test_data_under_the_new_ak_before_msg3_arrives_is_received():
    """Distributed re-authentication: the access RS holds the new AK from its AK Transfer on
    and seals the AMS's downlink under it; an AMS whose MSG#3 is late already accepts it."""
    net, abs_, ars1, _ars2, ams = enter_all(D)
    net.start_recording()
    dropped = []

    def drop_first_msg3(src, dst, frame):
        if src == ARS1 and dst == AMS and frame[2] == m.KeyAgreementMsg3.CODE and not dropped:
            dropped.append(frame)
            return None
        return frame

    net.tamper = drop_first_msg3
    old = ams.key_info()
    ams.reauthenticate(net.now)
    while not dropped:
        net.settle(0.002)
    assert ams.key_info().akid == old.akid  # the AMS has not switched
    assert ars1.key_info(AMS).akid != old.akid  # its RS has
    abs_.send_data(AMS, b"down, new AK", net.now)
    net.settle(0.01)
    assert payloads(net, AMS, ABS) == [b"down, new AK"]
    net.settle(2.0)  # MSG#2 is resent, MSG#3 then arrives
    assert ams.key_info().akid == ars1.key_info(AMS).akid
    assert not net.of(AMS, Rejected) and not net.of(ARS1, Rejected)


def test_old_keys_are_accepted_for_the_grace_only():
    """The other key set of a re-authenticated link is accepted for a short grace only: an
    MPDU sealed under the old AK within it is delivered, one after it is refused (bad ICV)."""
    net, _abs, ars1, _ars2, ams = enter_all(D)
    old_link = ams.link
    ams.reauthenticate(net.now)
    net.settle(0.3)
    assert ams.link is not old_link
    net.start_recording()
    ars1.receive(AMS, old_link.seal(FIRST_DATA_FID, b"within the grace"), net.now)
    late = old_link.seal(FIRST_DATA_FID, b"after the grace")
    net.settle(ars1._grace)
    ars1.receive(AMS, late, net.now)
    net.settle(0.1)
    assert payloads(net, ABS, AMS) == [b"within the grace"]
    assert [e.reason for e in net.of(ARS1, Rejected)] == ["bad_icv"]


def test_tek_request_outstanding_across_reauthentication_does_not_stall_the_new_sa():
    """A 600 s soak: the relay link re-authenticated while the ARS's TEK-Request waited for its
    reply; the old request held off every refresh of the new SA (27 s unrefreshed, and nothing
    rescheduled when it finally gave up). New keys end it; the new SA is refreshed on time."""
    life = Lifetimes(tek=2.0, tek_refresh_margin=0.5)  # a refresh 1 s after new keys
    net, abs_, ars1, _ars2, _ams = enter_all(D, lifetimes=life)
    net.start_recording()
    drop = drop_while(net, ABS, ARS1, m.TekReply.CODE)
    t0 = net.now
    while not any(t > t0 and src == ARS1 and f[2] == m.TekRequest.CODE
                  for t, src, _d, f in net.log):
        net.settle(0.05)
    assert "tek" in ars1._pending  # the old SA's request is outstanding
    ars1.reauthenticate(net.now)
    net.settle(0.5)
    [re] = net.of(ARS1, KeysInstalled, cause="reauth")
    drop[0] = False
    t_re = net.now
    net.settle(2.5)
    refreshed = net.of(ARS1, KeysInstalled, cause="tek_refresh", akid=re.akid)
    assert refreshed and ars1.key_info().counter_teks[0] >= 1
    assert same_keys(ars1.key_info(), abs_.key_info(ARS1))
    assert not net.of(ARS1, PeerLost)
    assert net.now - t_re < 3.0


def test_ak_transfer_outstanding_across_the_relays_reauthentication_is_delivered():
    """A 600 s soak: an AK Transfer was outstanding when its ARS re-authenticated; every resend
    went under the ARS's old keys, was refused there, and the handover failed. Resends use
    the ARS's keys of the moment."""
    net, abs_, _ars1, ars2, _ams = enter_all(D)
    net.start_recording()
    drop = drop_while(net, ABS, ARS2, m.AkTransfer.CODE)
    abs_.prepare_handover(AMS, [ARS2], net.now)
    net.settle(0.05)
    assert abs_._akt  # outstanding
    ars2.reauthenticate(net.now)
    net.settle(0.5)
    [re] = net.of(ARS2, KeysInstalled, cause="reauth")
    assert abs_.key_info(ARS2).akid == re.akid and abs_._akt  # still outstanding
    drop[0] = False
    net.settle(3.0)
    assert net.of(ABS, AkTransferred, ars=ARS2)
    assert not net.of(ABS, PeerLost) and not abs_._akt
    assert not net.of(ARS2, Rejected)


# -- handover to the ABS itself, and in centralized mode ------------------------------------------


@pytest.mark.parametrize("mode", [D, C])
def test_handover_to_the_abs(mode):
    net, abs_, ars1, _ars2, ams = enter_all(mode)
    net.start_recording()
    old = ams.key_info()
    ams.handover(ABS, net.now)
    net.settle(3.0)
    new = ams.key_info()
    assert ams.serving == ABS
    assert new.cmac_key_count == old.cmac_key_count + 1 and new.akid != old.akid
    assert same_keys(new, abs_.key_info(AMS))
    assert abs_.via_of(AMS) == ABS
    assert not ars1.serves(AMS)
    hc = net.of(AMS, HandoverComplete)
    assert len(hc) == 1 and (hc[0].source, hc[0].target) == (ARS1, ABS)
    assert net.of(ABS, HandoverComplete, ams=AMS, target=ABS, akid=new.akid)
    assert net.of(ARS1, ContextReleased, ams=AMS, station=ARS1)
    ams.send_data(ABS, b"direct-up", net.now)
    abs_.send_data(AMS, b"direct-dn", net.now)
    net.settle(1.0)
    up = net.of(ABS, DataReceived, src=AMS)
    dn = net.of(AMS, DataReceived, src=ABS)
    assert [(e.payload, e.via) for e in up] == [(b"direct-up", AMS)]
    assert [(e.payload, e.via) for e in dn] == [(b"direct-dn", ABS)]


def test_handover_from_the_abs_to_an_ars():
    net, abs_, _ars1, ars2, ams = enter_all(D, via=ABS)
    net.start_recording()
    assert ams.serving == ABS and same_keys(ams.key_info(), abs_.key_info(AMS))
    ams.handover(ARS2, net.now)
    net.settle(3.0)
    assert ams.serving == ARS2 and same_keys(ams.key_info(), ars2.key_info(AMS))
    assert net.of(ABS, ContextReleased, ams=AMS, station=ABS)
    ams.send_data(ABS, b"x", net.now)
    net.settle(1.0)
    assert [(e.payload, e.via) for e in net.of(ABS, DataReceived, src=AMS)] == [(b"x", ARS2)]


def test_handover_in_centralized_mode():
    net, abs_, ars1, ars2, ams = enter_all(C)
    net.start_recording()
    old = ams.key_info()
    ams.handover(ARS2, net.now)
    net.settle(3.0)
    new = ams.key_info()
    assert new.cmac_key_count == old.cmac_key_count + 1 and new.akid != old.akid
    # the ABS holds the AMS's keys end to end; neither RS holds any
    assert same_keys(new, abs_.key_info(AMS))
    assert ars1.key_info(AMS) is None and ars2.key_info(AMS) is None
    assert not net.of(ARS2, AkTransferred) and not net.of(ABS, AkTransferred)
    assert abs_.via_of(AMS) == ARS2
    assert net.of(ARS1, ContextReleased, ams=AMS)
    ams.send_data(ABS, b"c-up", net.now)
    abs_.send_data(AMS, b"c-dn", net.now)
    net.settle(1.0)
    assert [(e.payload, e.via) for e in net.of(ABS, DataReceived, src=AMS)] == [(b"c-up", ARS2)]
    assert [(e.payload, e.via) for e in net.of(AMS, DataReceived)] == [(b"c-dn", ARS2)]


@pytest.mark.parametrize("predistribute", [True, False])
def test_handover_data_via_target_and_old_rs_refuses(predistribute):
    net, abs_, ars1, _ars2, ams = enter_all(D)
    net.start_recording()
    if predistribute:
        abs_.prepare_handover(AMS, [ARS2], net.now)
        net.settle(2.0)
        assert net.of(ABS, AkTransferred, ams=AMS, ars=ARS2, cmac_key_count=1, status=0)
    ams.handover(ARS2, net.now)
    net.settle(3.0)
    assert net.of(ARS2, HandoverComplete, ams=AMS, target=ARS2)
    assert net.of(ARS2, KeysInstalled, subject=AMS, cause="handover")
    assert net.of(ARS1, ContextReleased, ams=AMS, station=ARS1)
    assert ars1.key_info(AMS) is None
    ams.send_data(ABS, b"h-up", net.now)
    abs_.send_data(AMS, b"h-dn", net.now)
    net.settle(1.0)
    assert [(e.payload, e.via) for e in net.of(ABS, DataReceived, src=AMS)] == [(b"h-up", ARS2)]
    assert [(e.payload, e.via) for e in net.of(AMS, DataReceived)] == [(b"h-dn", ARS2)]


# -- peer gone ---------------------------------------------------------------------------------

QUICK = Timers(rto=0.1, max_retries=3)


def test_ams_entry_at_a_silent_ars_fails_cleanly():
    net, _abs, _ars1, _ars2, ams = enter_all(D, timers=QUICK, via=ARS1)
    net.start_recording()
    ams2 = type(ams)(ams.config.__class__(station_id=AMS + 1, psk=b"\x33" * 16, timers=QUICK),
                     rng=9)
    net.roles[AMS + 1] = ams2
    del net.roles[ARS2]  # ARS-2 is gone
    ams2.attach(ARS2, net.now)
    net.settle(5.0)
    lost = net.of(AMS + 1, PeerLost)
    assert [(e.peer, e.procedure) for e in lost] == [(ARS2, "ranging")]
    assert [e.reason for e in net.of(AMS + 1, EntryFailed)] == ["peer_lost"]
    assert ams2.phase == "failed" and ams2.key_info() is None
    assert ams2.next_deadline() is None  # nothing left running
    assert not net.of(AMS + 1, Attached)


def test_tek_refresh_with_serving_station_gone():
    life = Lifetimes(tek=4.0, tek_refresh_margin=0.5)
    net, _abs, _ars1, _ars2, ams = enter_all(D, timers=QUICK, lifetimes=life)
    net.start_recording()
    before = ams.key_info()
    del net.roles[ARS1]
    net.settle(3.0)
    lost = net.of(AMS, PeerLost)  # the refresh gives up, and is tried again later
    assert lost and {(e.peer, e.procedure) for e in lost} == {(ARS1, "tek_refresh")}
    assert ams.key_info().counter_teks == before.counter_teks  # nothing installed


def test_handover_to_a_silent_target_keeps_the_serving_link():
    net, _abs, _ars1, _ars2, ams = enter_all(D, timers=QUICK)
    net.start_recording()
    before = ams.key_info()
    del net.roles[ARS2]
    ams.handover(ARS2, net.now)
    net.settle(3.0)
    assert [(e.peer, e.procedure) for e in net.of(AMS, PeerLost)] == [(ARS2, "handover")]
    assert not net.of(AMS, HandoverComplete)
    assert ams.serving == ARS1 and ams.key_info() == before
    ams.send_data(ABS, b"still-here", net.now)
    net.settle(1.0)
    assert payloads(net, ABS, AMS) == [b"still-here"]


def test_ak_transfer_to_a_gone_ars_reports_peer_lost():
    net, abs_, _ars1, _ars2, _ams = enter_all(D, timers=QUICK)
    net.start_recording()
    del net.roles[ARS2]
    abs_.prepare_handover(AMS, [ARS2], net.now)
    net.settle(3.0)
    assert [(e.peer, e.procedure) for e in net.of(ABS, PeerLost)] == [(ARS2, "ak_transfer")]
    assert not net.of(ABS, AkTransferred)
    assert not abs_._pending  # no retransmission left; only the AK lifetimes' ends are armed
    assert abs_.next_deadline() >= abs_.life.ak - 10


def test_on_demand_handover_with_silent_abs_is_refused():
    net, _abs, _ars1, ars2, ams = enter_all(D, timers=QUICK)
    net.start_recording()

    def abs_deaf_to_ars2(src, dst, frame):
        return None if (src, dst) == (ARS2, ABS) else frame

    net.tamper = abs_deaf_to_ars2
    ams.handover(ARS2, net.now)
    net.settle(3.0)
    assert (ABS, "ak_request") in [(e.peer, e.procedure) for e in net.of(ARS2, PeerLost)]
    # the target refused the AMS (RNG-RSP ABORT); the AMS gave up on its own just before
    refusals = [m.RngRsp.decode(f[2:]) for _t, src, dst, f in net.log
                if (src, dst) == (ARS2, AMS) and f[2] == m.RngRsp.CODE]
    assert [r.status for r in refusals] == [m.RngStatus.ABORT]
    assert [(e.peer, e.procedure) for e in net.of(AMS, PeerLost)] == [(ARS2, "handover")]
    assert ams.serving == ARS1 and not ars2.serves(AMS)


# -- TEK-Invalid (digest §5.1 step 4) --------------------------------------------------------------


def test_tek_invalid_recovers_a_station_that_missed_a_tek_update():
    # TEK refresh 25 s after the keys; every TEK-Reply to the AMS is lost until it gives up
    life = Lifetimes(tek=50.0, tek_refresh_margin=0.5)
    net, _abs, ars1, _ars2, ams = enter_all(D, timers=QUICK, lifetimes=life)
    net.start_recording()
    blocking = [True]

    def drop_tek_replies(src, dst, frame):
        if blocking[0] and (src, dst) == (ARS1, AMS) and any(
                mpdu_fid(mp) == FID_CONTROL and mp[2] == m.TekReply.CODE
                for mp in split_frame(frame)):
            return None
        return frame

    net.tamper = drop_tek_replies
    net.settle(8.0)
    lost = net.of(AMS, PeerLost)  # the refresh gave up (and is retried later)
    assert lost and {(e.peer, e.procedure) for e in lost} == {(ARS1, "tek_refresh")}
    # the ARS moved on to (1, 2) and its grace for TEK 0 is over; the AMS still sends under 0
    assert ams.key_info().counter_teks == (0, 1)
    assert ars1.key_info(AMS).counter_teks == (1, 2)
    blocking[0] = False
    for i in range(10):
        ams.send_data(ABS, b"u%d" % i, net.now)
        net.settle(0.2)
    # u0 arrived under the unknown EKS: rejected, answered with TEK-Invalid; the AMS, whose last
    # update was never confirmed, restarted from TEK-Request; the ARS announced the unconfirmed
    # update again (no new TEK) and everything after it flows under it
    assert ars1.rejections_by_link[(AMS, "unknown_eks")] == 1
    assert ars1.air_messages[m.TekInvalid.TITLE] == 1
    assert payloads(net, ABS, AMS) == [b"u%d" % i for i in range(1, 10)]
    ki = ams.key_info()
    assert ki.counter_teks == (1, 2) and same_keys(ki, ars1.key_info(AMS))
    assert [e.counter_teks for e in net.of(AMS, KeysInstalled, cause="tek_refresh")] == [(1, 2)]


def test_tek_invalid_on_the_relay_link():
    net, abs_, ars1, _ars2, _ams = enter_all(D)
    ars1.send_data(ABS, b"own", net.now)
    [(_d, frame)] = ars1.frames_to_send(net.now)
    forged = bytearray(frame)
    forged[2] ^= 0x80  # EKS 2: the relay link holds 0 and 1
    abs_.receive(ARS1, bytes(forged), net.now)
    [(dst, inv)] = abs_.frames_to_send(net.now)
    assert dst == ARS1 and mpdu_fid(inv) == FID_CONTROL and inv[2] == m.TekInvalid.CODE
    assert abs_.rejections_by_link[(ARS1, "unknown_eks")] == 1
    ars1.receive(ABS, inv, net.now)  # CMAC-verified with the relay link's keys
    # ... but the ARS's last TEK update was confirmed, so a TEK-Invalid (which any forged frame
    # to the ABS provokes) starts no update (issue 17, finding 6)
    assert ars1.frames_to_send(net.now) == [] and ars1.rejections == {"tek_in_sync": 1}
    # a TEK-Invalid replayed (or for another SAID) is not acted on
    ars1.receive(ABS, inv, net.now)
    assert ars1.rejections["cmac_replay"] == 1


def test_a_second_signed_handover_answer_is_counted_stale_not_malformed():
    """The target answers a resent handover RNG-REQ again; a second signed success arriving
    after the handover completed is verified and counted ``stale_rng_rsp`` (a 600 s soak
    counted them ``malformed``), and changes nothing; a replayed one is ``cmac_replay``."""
    from stack.roles.framing import control_mpdu

    net, _abs, _ars1, ars2, ams = enter_all(D)
    seen = []

    def keep_rng_rsp(src, dst, frame):
        if src == ARS2 and dst == AMS and frame[2] == m.RngRsp.CODE:
            seen.append(frame)
        return frame

    net.tamper = keep_rng_rsp
    ams.handover(ARS2, net.now)
    net.settle(3.0)
    assert ams.serving == ARS2 and seen
    before = ams.key_info()
    link = ars2._ams_links[ams.stid]
    again = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY, status=m.RngStatus.SUCCESS,
                     stid=ams.stid, amsid=None, request_cmac=bytes(11))
    ams.receive(ARS2, control_mpdu(link.sign(again)), net.now)
    ams.receive(ARS2, seen[0], net.now)
    assert ams.rejections["stale_rng_rsp"] == 1 and ams.rejections["cmac_replay"] == 1
    assert not ams.rejections["malformed"]
    assert ams.key_info() == before and ams.serving == ARS2
