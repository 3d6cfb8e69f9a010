"""Regression tests for the attacks of issues 11 (hostile stations) and 17 (replay, freshness,
key life): each test is one finding, replayed against the roles over the in-memory network.
docs/threat-model.md names the attacker class and guarantee each one proves."""

from __future__ import annotations

import os

import pytest

from stack.pkm import messages as m
from stack.pkm.eap import EapPacket
from stack.roles import (
    AkTransferred,
    ContextReleased,
    DataReceived,
    EntryFailed,
    HandoverComplete,
    KeysInstalled,
    Lifetimes,
    SecurityMode,
    Timers,
)
from stack.roles.framing import FID_CONTROL, control_mpdu, mpdu_fid, plain_payload, split_frame
from stack.roles.ids import station_bytes
from tests.roles.harness import ABS, AMS, ARS1, ARS2, enter_all, same_keys

D, C = SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED
MODES = [D, C]
QUICK = Timers(rto=0.05, max_retries=6)


def roles_of(net):
    return [net.roles[s] for s in (ABS, ARS1, ARS2, AMS)]


def traffic_works(net, abs_, ams, tag: bytes) -> bool:
    """One packet each way between the ABS and the AMS gets through, intact."""
    n_up = len(net.of(ABS, DataReceived, src=AMS))
    n_down = len(net.of(AMS, DataReceived))
    ams.send_data(ABS, b"up " + tag, net.now)
    abs_.send_data(AMS, b"down " + tag, net.now)
    net.settle(0.1)
    up = [e.payload for e in net.of(ABS, DataReceived, src=AMS)[n_up:]]
    down = [e.payload for e in net.of(AMS, DataReceived)[n_down:]]
    return up == [b"up " + tag] and down == [b"down " + tag]


def control_mpdus(net, src, dst, code):
    """Control MPDUs with message ``code`` put on the air from ``src`` to ``dst`` so far."""
    return [mp for _t, s, d, f in net.log if (s, d) == (src, dst) for mp in split_frame(f)
            if mpdu_fid(mp) == FID_CONTROL and len(mp) > 2 and mp[2] == code]


def handover_req(stid: int, count: int, target: int, serving: int) -> m.RngReq:
    return m.RngReq(purpose=m.RangingPurpose.HANDOVER_REENTRY, cmac_key_count=count,
                    target_id=station_bytes(target), amsid=None, nonce_ams=None, stid=stid,
                    serving_id=station_bytes(serving))


def initial_req(station: int, target: int, nonce: bytes) -> m.RngReq:
    return m.RngReq(purpose=m.RangingPurpose.INITIAL_ENTRY, cmac_key_count=0,
                    target_id=station_bytes(target), amsid=station_bytes(station),
                    nonce_ams=nonce, stid=None, serving_id=None)


# == issue 11: hostile stations ===============================================================

@pytest.mark.parametrize("mode", MODES)
def test_11_1_empty_control_mpdu_crashes_no_station(mode):
    net, *_ = enter_all(mode)
    for role in roles_of(net):
        n = 0
        for src in (ABS, ARS1, AMS, 0x0BAD0BAD0BAD):
            if src == role.station_id:
                continue
            role.receive(src, b"\x00\x02", net.now)  # AGMH FID 0, Length 2, nothing after it
            n += 1
        assert sum(role.rejections.values()) == n  # each counted (malformed / wrong_link)
        assert role.rejections["malformed"] >= 1
    abs_, ams = net.roles[ABS], net.roles[AMS]
    assert traffic_works(net, abs_, ams, b"after")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("victim", [ARS1, "ams_at_abs"])
def test_11_2_forged_handover_ranging_with_junk_cmac_crashes_nothing(mode, victim):
    net, abs_, ars1, _ars2, ams = enter_all(mode, via=ABS if victim == "ams_at_abs" else ARS1)
    station = AMS if victim == "ams_at_abs" else victim
    c = abs_.context(station)
    before = abs_.key_info(station)
    body = handover_req(c.stid, c.count, ABS, ARS1).encode() + os.urandom(11)
    abs_.receive(0x0BAD0BAD0BAD, control_mpdu(body), net.now)
    abs_.receive(ARS2, control_mpdu(body), net.now)
    if mode == C:  # also relayed through an ARS
        ars1.receive(0x0BAD0BAD0BAD, control_mpdu(
            handover_req(c.stid, c.count + 1, ARS1, ABS).encode() + os.urandom(11)), net.now)
        net.settle(0.5)
    assert abs_.key_info(station) == before and abs_.via_of(station) == c.via
    assert not net.of(ABS, HandoverComplete)
    assert sum(abs_.rejections.values()) >= 2
    assert traffic_works(net, abs_, ams, b"after")


def test_11_3_spoofed_entries_do_not_exhaust_stids_or_lock_out_the_cell():
    # 4100 unauthenticated initial RNG-REQs from invented ids (one second of sending), then a
    # legitimate ARS and AMS enter: half-open state stays under the cap, no STID runs out.
    from stack.roles.memnet import Net
    from tests.roles.harness import build

    abs_, ars1, ars2, ams = build(D)
    net = Net({ABS: abs_, ARS1: ars1, ARS2: ars2, AMS: ams})
    for i in range(4100):
        fake = 0x0FA0_0000_0000 + i
        net.now = i / 4100
        abs_.receive(fake, control_mpdu(initial_req(fake, ABS, os.urandom(6)).encode()), net.now)
        if i % 64 == 0:
            abs_.frames_to_send(net.now)  # the fakes' RNG-RSPs and EAP go to nobody
    assert abs_.peak_half_open <= abs_.config.max_half_open
    assert abs_.rejections["no_stid"] == 0
    ars1.attach(ABS, net.now)
    net.settle(10.0)
    ams.attach(ARS1, net.now)
    net.settle(10.0)
    assert ams.phase == "operational" and same_keys(ams.key_info(), ars1.key_info(AMS))
    net.settle(abs_.config.entry_timeout_for(abs_.timers) + 1.0)
    size = abs_.state_size()
    assert size["entries"] == 0 and size["stids"] == size["contexts"] == 2  # ARS-1, AMS


def test_11_4_centralized_forged_handover_request_does_not_redirect_an_ams():
    net, abs_, ars1, _ars2, ams = enter_all(C)
    stid = ams.stid
    forged = handover_req(stid, 1, ARS1, ABS).encode() + os.urandom(11)
    ars1.receive(0x0BAD0BAD0BAD, control_mpdu(forged), net.now)
    net.settle(30.0)
    assert ars1._stid_station[stid] == AMS
    assert traffic_works(net, abs_, ams, b"30 s later")


def test_11_5_centralized_data_from_an_unauthenticated_station_is_rejected():
    net, abs_, ars1, _ars2, ams = enter_all(C)
    fake = 0x0FA0_0000_0001
    ars1.receive(fake, control_mpdu(initial_req(fake, ARS1, os.urandom(6)).encode()), net.now)
    net.settle(0.1)
    stid = next(s for s, st in ars1._stid_station.items() if st == fake)
    junk = bytes([0x20 | 0, 0]) + os.urandom(30)  # FID 2
    junk = bytes([(2 << 4) | ((len(junk) >> 8) & 7), len(junk) & 0xFF]) + junk[2:]
    ars1.receive(fake, junk, net.now)
    net.settle(0.1)
    assert abs_.rejections["unknown_ams"] >= 1
    assert not [e for e in net.of(ABS, DataReceived) if e.src == fake]
    assert stid and traffic_works(net, abs_, ams, b"after")


@pytest.mark.parametrize("proof", ["none", "replayed_old_request"])
def test_11_6_compromised_ars_cannot_obtain_the_ak_of_an_ams_it_does_not_serve(proof):
    net, abs_, _ars1, ars2, ams = enter_all(D)
    if proof == "replayed_old_request":  # the AMS handed over to ARS-2 once and came back
        ams.handover(ARS2, net.now)
        net.settle(2.0)
        ams.handover(ARS1, net.now)
        net.settle(2.0)
        old = control_mpdus(net, AMS, ARS2, m.RngReq.CODE)[0]
        rng_req = plain_payload(old)
    else:
        rng_req = handover_req(ams.stid, ams.cmac_key_count + 1, ARS2, ARS1).encode() + \
            os.urandom(11)
    count = m.RngReq.decode(rng_req[:-11]).cmac_key_count
    net.start_recording()
    req = m.AkRequest(transaction_id=200, ams_stid=ams.stid, cmac_key_count=max(
        count, ams.cmac_key_count + 1), rng_req=rng_req)
    ars2.receive(ABS, b"", net.now)  # (nothing: just to show ARS-2 is live)
    abs_.receive(ARS2, control_mpdu(ars2.link.sign(req)), net.now)
    net.settle(2.0)
    assert not net.of(ABS, AkTransferred, ars=ARS2)
    assert not control_mpdus(net, ABS, ARS2, m.AkTransfer.CODE)[-1:] or \
        not net.of(ARS2, AkTransferred)
    assert abs_.via_of(AMS) == ARS1 and ams.serving == ARS1
    assert traffic_works(net, abs_, ams, b"still at ARS-1")


def test_11_7_an_ams_never_obtains_another_stations_ak():
    net, abs_, _ars1, _ars2, ams = enter_all(D, via=ABS)
    ars1_stid = abs_.context(ARS1).stid
    net.start_recording()
    rng_req = handover_req(ars1_stid, 1, AMS, ABS).encode() + os.urandom(11)
    req = m.AkRequest(transaction_id=1, ams_stid=ars1_stid, cmac_key_count=1, rng_req=rng_req)
    abs_.receive(AMS, control_mpdu(ams.link.sign(req)), net.now)
    net.settle(1.0)
    assert abs_.rejections["not_relay"] == 1
    assert not control_mpdus(net, ABS, AMS, m.AkTransfer.CODE)


def test_11_8_mismatched_ak_transfer_ack_from_a_compromised_ars():
    net, abs_, _ars1, ars2, ams = enter_all(D)
    abs_.prepare_handover(AMS, [ARS2], net.now)
    [(dst, frame)] = abs_.frames_to_send(net.now)
    assert dst == ARS2
    akt = m.AkTransfer.decode(plain_payload(split_frame(frame)[0])[:-11])
    ack = m.AkTransferAck(transaction_id=akt.transaction_id, ams_stid=abs_.context(ARS1).stid,
                          akid=akt.akid, status=m.AkStatus.OK)
    abs_.receive(ARS2, control_mpdu(ars2.link.sign(ack)), net.now)
    assert abs_.rejections["bad_ack"] == 1
    assert ams.serving == ARS1 and traffic_works(net, abs_, ams, b"after")


# == issue 17: replay, freshness, key life ====================================================

def test_17_1_replayed_handover_request_neither_reruns_the_handover_nor_reuses_nonces():
    # ARS-1 -> ABS -> ARS-1, then the old request to the ABS is replayed (the nonce monitor of
    # tests/conftest.py fails the test on any (TEK, PN) sent twice)
    net, abs_, ars1, _ars2, ams = enter_all(D)
    ams.handover(ABS, net.now)
    net.settle(2.0)
    ams.handover(ARS1, net.now)
    net.settle(2.0)
    assert abs_.context(AMS).count == 2 and abs_.via_of(AMS) == ARS1
    old = control_mpdus(net, AMS, ABS, m.RngReq.CODE)[0]
    net.start_recording()
    abs_.receive(AMS, old, net.now)
    abs_.receive(ARS1, old, net.now)
    net.settle(1.0)
    assert not net.of(ABS, HandoverComplete)
    assert abs_.context(AMS).count == 2 and abs_.via_of(AMS) == ARS1
    assert ars1.serves(AMS)
    for i in range(5):
        assert traffic_works(net, abs_, ams, b"%d" % i)


@pytest.mark.parametrize("mode", MODES)
def test_17_1_centralized_replay_to_the_target_does_not_reroute(mode):
    net, abs_, _ars1, ars2, ams = enter_all(mode)
    ams.handover(ARS2, net.now)
    net.settle(2.0)
    ams.handover(ARS1, net.now)
    net.settle(2.0)
    old = control_mpdus(net, AMS, ARS2, m.RngReq.CODE)[0]
    net.start_recording()
    ars2.receive(AMS, old, net.now)
    net.settle(1.0)
    assert abs_.via_of(AMS) == ARS1 and not net.of(ABS, HandoverComplete)
    assert traffic_works(net, abs_, ams, b"after replay")


def test_17_2_forged_handover_request_to_the_serving_ars_leaves_the_keys_alone():
    net, abs_, ars1, _ars2, ams = enter_all(D)
    before = ars1.key_info(AMS)
    forged = handover_req(ams.stid, 7, ARS1, ARS1).encode() + os.urandom(11)
    ars1.receive(0x0BAD0BAD0BAD, control_mpdu(forged), net.now)
    net.settle(3.0)
    assert ars1.key_info(AMS) == before
    assert abs_.rejections["bad_cmac"] >= 1
    assert traffic_works(net, abs_, ams, b"after")


@pytest.mark.parametrize("mode", MODES)
def test_17_3_identity_squatting_does_not_block_entry(mode):
    from stack.roles.memnet import Net
    from tests.roles.harness import build

    abs_, ars1, ars2, ams = build(mode)
    net = Net({ABS: abs_, ARS1: ars1, ARS2: ars2, AMS: ams})
    ars1.attach(ABS, 0.0)
    ars2.attach(ABS, 0.0)
    net.settle(5.0)
    squatted = []

    def squat(src, dst, frame):  # on every RNG-REQ of the AMS, one of the attacker's
        if (src, dst) == (AMS, ARS1) and any(mp[2] == m.RngReq.CODE for mp in split_frame(frame)
                                              if mpdu_fid(mp) == FID_CONTROL):
            squatted.append(1)
            return [frame, control_mpdu(initial_req(AMS, ARS1, os.urandom(6)).encode())]
        return frame

    net.tamper = squat
    ams.attach(ARS1, net.now)
    net.settle(10.0)
    assert squatted and ams.phase == "operational"
    holder = ars1 if mode == D else abs_
    assert same_keys(ams.key_info(), holder.key_info(AMS))
    assert traffic_works(net, abs_, ams, b"entered")


def test_17_3_reauthentication_under_squatting_and_the_ak_lifetime():
    life = Lifetimes(ak=20.0, tek=10.0)
    net, abs_, ars1, _ars2, ams = enter_all(D, lifetimes=life, timers=QUICK)
    net.start_recording()
    # re-authentication works while someone squats the identity ...
    net.tamper = lambda s, d, f: [f, control_mpdu(initial_req(AMS, ARS1, os.urandom(6))
                                                  .encode())] if (s, d) == (AMS, ARS1) else f
    net.settle(25.0)
    assert net.of(AMS, KeysInstalled, cause="reauth") and ams.phase == "operational"
    net.tamper = None
    # ... and when re-authentication cannot complete, the expired AK carries nothing: the
    # station is detached with an event
    net.tamper = lambda s, d, f: None if (s, d) == (ARS1, ABS) else f
    net.settle(30.0)
    assert net.of(AMS, EntryFailed, reason="ak_expired")
    assert ams.key_info() is None
    # ... at every end: the ABS dropped its context and had the ARS drop its keys
    assert abs_.context(AMS) is None and not ars1.serves(AMS)
    assert net.of(ABS, ContextReleased, ams=AMS) and net.of(ARS1, ContextReleased, ams=AMS)
    with pytest.raises(Exception, match="keys"):
        ams.send_data(ABS, b"x", net.now)


def test_17_4_spoofed_abort_from_the_target_does_not_desynchronise_a_handover():
    net, abs_, _ars1, ars2, ams = enter_all(D)

    def abort_first(src, dst, frame):  # the attacker answers the AMS's request first
        if (src, dst) == (AMS, ARS2):
            req = next(mp for mp in split_frame(frame) if mp[2] == m.RngReq.CODE)
            rsp = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY, status=m.RngStatus.ABORT,
                           stid=ams.stid, amsid=None, request_cmac=req[-11:])
            ams.receive(ARS2, control_mpdu(rsp.encode()), net.now)
        return frame

    net.tamper = abort_first
    ams.handover(ARS2, net.now)
    net.settle(3.0)
    net.tamper = None
    assert ams.serving == ARS2 == abs_.via_of(AMS) and ars2.serves(AMS)
    assert traffic_works(net, abs_, ams, b"at ARS-2")


def test_17_6_forged_unknown_eks_frames_do_not_drive_tek_updates():
    life = Lifetimes(tek=40.0, tek_refresh_margin=0.25)  # one update every 30 s
    net, _abs, ars1, _ars2, ams = enter_all(D, lifetimes=life)
    net.start_recording()
    for i in range(600):  # 10 forged frames a second for 60 s
        forged = bytes([0x20, 16]) + bytes([(i % 4) << 6, 0, 1]) + os.urandom(11)
        ars1.receive(AMS, forged, net.now)
        net.settle(0.1)
    updates = net.of(AMS, KeysInstalled, cause="tek_refresh")
    assert 1 <= len(updates) <= 2
    assert ams.rejections["tek_in_sync"] >= 1


def test_17_7_replayed_tek_request_to_the_abs_is_refused():
    net, abs_, ars1, _ars2, ams = enter_all(D)
    ams._start_refresh(net.now)
    net.settle(1.0)
    req = control_mpdus(net, AMS, ARS1, m.TekRequest.CODE)[0]
    before = abs_.key_info(AMS)
    abs_.receive(AMS, req, net.now)
    ars1.receive(AMS, req, net.now)
    net.settle(0.5)
    assert abs_.key_info(AMS) == before
    assert abs_.rejections["wrong_link"] == 1 and ars1.rejections["cmac_replay"] == 1
    assert traffic_works(net, abs_, ams, b"after")


@pytest.mark.parametrize("stage", ["after_rng_rsp", "after_done_success"])
def test_17_8_spoofed_eap_failure_does_not_end_an_entry(stage):
    from stack.roles.memnet import Net
    from tests.roles.harness import build

    abs_, ars1, ars2, ams = build(D)
    net = Net({ABS: abs_, ARS1: ars1, ARS2: ars2, AMS: ams})
    ars1.attach(ABS, 0.0)
    net.settle(5.0)
    failure = control_mpdu(m.EapTransfer(eap_payload=EapPacket(4, 0).encode()).encode())
    sent = []

    def spoof(src, dst, frame):
        ready = (stage == "after_rng_rsp" and ams.stid is not None) or \
            (stage == "after_done_success" and ams._pmk_pending is not None)
        if (src, dst) == (ARS1, AMS) and not sent and ready:
            sent.append(1)
            return [failure, frame]
        return frame

    net.tamper = spoof
    ams.attach(ARS1, net.now)
    net.settle(5.0)
    assert sent and ams.phase == "operational" and not net.of(AMS, EntryFailed)
    assert ams.rejections["eap_failure"] == 1


def test_17_9_late_context_release_does_not_drop_a_returning_ams():
    net, abs_, ars1, _ars2, ams = enter_all(C)
    # ARS-1 acknowledges nothing for a while: the ABS's release of the AMS stays outstanding
    held = []
    net.tamper = lambda s, d, f: (held.append(f) or None) if (s, d) == (ARS1, ABS) and any(
        mp[2] == m.ContextReleaseAck.CODE for mp in split_frame(f)
        if mpdu_fid(mp) == FID_CONTROL) else f
    ams.handover(ARS2, net.now)
    net.settle(1.0)
    ams.handover(ARS1, net.now)
    net.settle(3.0)
    net.tamper = None
    net.settle(3.0)
    assert ams.serving == ARS1 and ars1._stid_station.get(ams.stid) == AMS
    assert traffic_works(net, abs_, ams, b"back at ARS-1")


def test_17_10_ars_relays_spoofed_ranging_at_a_bounded_rate_and_keeps_bounded_state():
    net, abs_, ars1, _ars2, ams = enter_all(D)
    relayed_before = ars1.air_messages["relayed"]
    for i in range(5000):  # 5000 spoofed ids in one second
        fake = 0x0FB0_0000_0000 + i
        ars1.receive(fake, control_mpdu(initial_req(fake, ARS1, os.urandom(6)).encode()),
                     net.now + i / 5000)
    relayed = ars1.air_messages["relayed"] - relayed_before
    cfg = ars1.config
    assert relayed <= cfg.ranging_burst + cfg.max_ranging_per_s * 1.0 + 1
    assert ars1.rejections["rate_limited"] >= 5000 - relayed
    size = ars1.state_size()
    assert size["entries"] <= cfg.max_known_stations
    assert size["ranging_last"] <= cfg.max_known_stations
    net.now += 1.0
    assert traffic_works(net, abs_, ams, b"after flood")


# == the last line of defence ================================================================

def test_a_handler_bug_is_counted_not_raised_outside_strict_mode(monkeypatch):
    net, abs_, _ars1, _ars2, _ams = enter_all(D)

    def broken(*_a, **_k):
        raise KeyError("a bug")

    monkeypatch.setattr(abs_, "_on_mpdu", broken)
    monkeypatch.setattr(type(abs_), "strict", False)
    abs_.receive(AMS, b"\x00\x05abc", net.now)      # no exception escapes
    assert abs_.rejections["internal_error"] == 1
    monkeypatch.setattr(type(abs_), "strict", True)  # what the tests and fuzzers run with
    with pytest.raises(KeyError):
        abs_.receive(AMS, b"\x00\x05abc", net.now)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("active", [True, False], ids=["sending", "silent"])
def test_17_11_a_restarted_ars_does_not_strand_its_amss(mode, active):
    from stack.roles import ArsConfig, ArsRole, PeerLost
    from tests.roles.harness import PSK

    life = Lifetimes(tek=20.0, tek_refresh_margin=0.5)  # a silent AMS talks every 10 s
    net, abs_, ars1, _ars2, ams = enter_all(mode, lifetimes=life)
    reborn = ArsRole(ArsConfig(station_id=ARS1, psk=PSK[ARS1], mode=mode, timers=ars1.timers,
                               lifetimes=life), rng=77)
    net.roles[ARS1] = reborn                       # power cycle: every AMS context is gone
    net.start_recording()
    reborn.attach(ABS, net.now)
    net.settle(2.0)
    assert net.of(ABS, PeerLost, peer=ARS1, procedure="relay_restarted")
    t0 = net.now
    if active:
        ams.send_data(ABS, b"anyone there?", net.now)
    net.settle(12.0 if not active else 2.0)
    assert net.of(AMS, PeerLost, procedure="context_lost")
    [done] = net.of(AMS, HandoverComplete)
    assert done.source == done.target == ARS1 and done.cmac_key_count == 1
    assert net.now - t0 <= (12.0 if not active else 2.0)
    assert traffic_works(net, abs_, ams, b"after the restart")


def test_repeated_ak_requests_and_predistribution_start_one_transfer_per_ak():
    # Found by the role fuzzer: each retransmitted AK Request (and each repeated request to
    # pre-distribute) started a new AK Transfer: 74 outstanding to one RS.
    net, abs_, _ars1, _ars2, ams = enter_all(D)
    for _ in range(20):
        abs_.prepare_handover(AMS, [ARS2], net.now)
    assert abs_.state_size()["ak_transfers"] == 1
    net.settle(1.0)
    assert abs_.state_size()["ak_transfers"] == 0
    for _ in range(5):
        abs_.prepare_handover(AMS, [ARS2], net.now)  # that AK is at ARS-2 already
    assert abs_.state_size()["ak_transfers"] == 0
    ams.handover(ARS2, net.now)
    net.settle(1.0)
    assert ams.serving == ARS2 and traffic_works(net, abs_, ams, b"once")


def test_a_lost_handover_acknowledgement_is_recovered_by_the_notifications_retransmission():
    # Found by benchmarks/scale.py at 10 % loss: the target RS resends its handover notification
    # (the AMS's request, identical bytes) until the ABS answers; the ABS refused the copy as a
    # CMAC replay, so one lost answer meant PeerLost(ho_notify) at the RS.
    from stack.roles import PeerLost

    net, abs_, _ars1, _ars2, ams = enter_all(D)
    dropped = []

    def drop_first_answer(src, dst, frame):
        if (src, dst) == (ABS, ARS2) and not dropped and abs_.via_of(AMS) == ARS2:
            dropped.append(frame)
            return None
        return frame

    net.tamper = drop_first_answer
    net.start_recording()
    ams.handover(ARS2, net.now)
    net.settle(5.0)
    assert dropped
    assert not net.of(ARS2, PeerLost) and abs_.rejections["cmac_replay"] == 0
    assert ams.serving == ARS2 and traffic_works(net, abs_, ams, b"after")


def test_an_unconfirmed_reauthentication_ends_in_a_new_entry_not_in_dead_keys():
    # Found by the soak: the ABS switches to the new AK on the AMS's MSG#2, the AMS on the ABS's
    # MSG#3. When every MSG#3 is lost, the AMS used to keep its old keys while the network held
    # the new ones: neither side could talk. Now it leaves both and enters again.
    from stack.roles import PeerLost

    net, abs_, ars1, _ars2, ams = enter_all(D, timers=QUICK)
    # every MSG#3 of the re-authentication is lost (those of the new entry get through)
    net.tamper = lambda s, d, f: None if (s, d) == (ARS1, AMS) and not ams._attaching and any(
        mp[2] == m.KeyAgreementMsg3.CODE for mp in split_frame(f)
        if mpdu_fid(mp) == FID_CONTROL) else f
    net.start_recording()
    ams.reauthenticate(net.now)
    net.settle(5.0)
    assert net.of(AMS, PeerLost, procedure="key_agreement")
    assert net.of(AMS, EntryFailed, reason="reauth_unconfirmed")
    assert ams.phase == "operational"
    assert same_keys(ams.key_info(), ars1.key_info(AMS))
    assert traffic_works(net, abs_, ams, b"entered again")


def test_relay_mpdus_from_a_station_that_is_not_an_access_rs_are_refused():
    # An authenticated AMS attached at the ABS seals a relay MPDU (FID 15) under its own SA,
    # carrying an item for ARS-1's STID: the ABS opens it (valid ICV) but takes relay items only
    # from AbsConfig.relays.
    from stack.mac import encapsulate_relay
    from stack.roles.framing import control_mpdu as ctl

    net, abs_, _ars1, _ars2, ams = enter_all(D, via=ABS)
    before = abs_.key_info(ARS1)
    item = encapsulate_relay([(abs_.context(ARS1).stid, ctl(m.ReauthRequest().encode()))])
    frame = ams.link.seal(15, item)
    abs_.receive(AMS, frame, net.now)
    assert abs_.rejections["not_relay"] == 1
    assert abs_.key_info(ARS1) == before and not abs_._entries


def test_a_retransmitted_request_replaces_its_unsent_copy_and_control_goes_first():
    """Over a slow link a request's retransmission replaces the copy still queued (no pile-up of
    duplicates that would all go out together), and a clear control message is queued ahead of
    data (no PN: reordering it cannot trip a replay window)."""
    from stack.roles.framing import FID_CONTROL, mpdu_fid

    net, _abs, _ars1, _ars2, ams = enter_all(D)
    ams.send_data(ABS, b"data", net.now)
    ams._start_refresh(net.now)          # a TEK-Request, queued behind nothing it could pass
    queue = ams._out[ARS1]
    assert mpdu_fid(queue[0]) == FID_CONTROL                        # ahead of the data
    first = queue[0]
    ams.timer(net.now + 10.0)            # retransmission time passed, nothing was sent
    queue = ams._out[ARS1]
    controls = [x for x in queue if not hasattr(x, "stid") and mpdu_fid(x) == FID_CONTROL]
    assert len(controls) == 1 and controls[0] is not first          # replaced, not added
