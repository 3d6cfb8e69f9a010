"""Entry restarts under attack (docs/roles.md §6 "Entry restarts"): an EAP exchange broken by
forged frames recovers when the station starts over; an initial RNG-REQ, replayed or forged, never
tears down an established security context; a late EAP-Failure after a provisional EAP success
ends the entry; a stalled entry ends with an event instead of hanging."""

from __future__ import annotations

import numpy as np
import pytest

from stack.pkm import messages as m
from stack.pkm.eap import EapPacket
from stack.roles import (
    AmsConfig,
    AmsRole,
    Attached,
    ContextReleased,
    DataReceived,
    EntryFailed,
    HandoverComplete,
    KeysInstalled,
    PeerLost,
    SecurityMode,
)
from stack.roles.framing import FID_CONTROL, control_mpdu, mpdu_fid, plain_payload, split_frame
from stack.roles.ids import station_bytes
from tests.roles.harness import ABS, AMS, ARS1, ARS2, PSK, Net, build, enter_all, same_keys

D, C = SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED
MODES = [pytest.param(D, id="distributed"), pytest.param(C, id="centralized")]
ATTACKED = {(AMS, ARS1), (ARS1, AMS), (ABS, ARS1), (ARS1, ABS)}


class Attacker:
    """Flips one random bit in a fraction of the frames on the attacked links (the modem CRC
    would be recomputed: only the security layer can notice) and replays earlier frames."""

    def __init__(self, seed: int, *, flip: float = 0.3, replay: float = 0.3) -> None:
        self.rng = np.random.default_rng(seed)
        self.flip, self.replay = flip, replay
        self.history: dict[tuple[int, int], list[bytes]] = {}
        self.active = True
        self.flipped = self.replayed = 0

    def __call__(self, src: int, dst: int, frame: bytes) -> list[bytes]:
        if not self.active or (src, dst) not in ATTACKED:
            return [frame]
        out = frame
        if self.rng.random() < self.flip:
            bad = bytearray(frame)
            bit = int(self.rng.integers(0, 8 * len(bad)))
            bad[bit // 8] ^= 1 << (bit % 8)
            out = bytes(bad)
            self.flipped += 1
        sent = [out]
        past = self.history.setdefault((src, dst), [])
        if past and self.rng.random() < self.replay:
            sent.append(past[int(self.rng.integers(0, len(past)))])
            self.replayed += 1
        past.append(frame)
        return sent


def cell_with_arss(mode):
    abs_, ars1, ars2, ams = build(mode)
    net = Net({ABS: abs_, ARS1: ars1, ARS2: ars2, AMS: ams})
    ars1.attach(ABS, 0.0)
    ars2.attach(ABS, 0.0)
    net.settle(10.0)
    net.start_recording()
    return net, abs_, ars1, ars2, ams


def key_holder(mode, abs_, ars):
    return ars if mode == D else abs_


def assert_entered(mode, abs_, ars, ams):
    assert ams.phase == "operational"
    info = ams.key_info()
    assert same_keys(info, key_holder(mode, abs_, ars).key_info(AMS))
    assert same_keys(info, abs_.key_info(AMS))
    assert info.counter_teks == (0, 1) and info.cmac_key_count == 0


def exchange_data(net, abs_, ams, tag: bytes) -> None:
    n_ams = len(net.of(AMS, DataReceived))
    n_abs = len(net.of(ABS, DataReceived, src=AMS))
    ams.send_data(ABS, b"up " + tag, net.now)
    abs_.send_data(AMS, b"down " + tag, net.now)
    net.settle(0.05)
    assert [e.payload for e in net.of(AMS, DataReceived)[n_ams:]] == [b"down " + tag]
    assert [e.payload for e in net.of(ABS, DataReceived, src=AMS)[n_abs:]] == [b"up " + tag]


# -- forged frames during EAP, then recovery ----------------------------------------------------

# Seeds whose EAP the attacker breaks at least once (entry needs 2-5 attempts); none recovered
# before entry restarts were handled (replayed old RNG-REQs answered, a stale pending PMK at
# the AMS, EAP-Failure after a provisional success ignored, nobody waiting for a dead attempt).
@pytest.mark.parametrize("seed", [1, 6, 8, 11])
@pytest.mark.parametrize("mode", MODES)
def test_entry_recovers_after_attacker_breaks_eap(mode, seed):
    net, abs_, ars1, _ars2, ams = cell_with_arss(mode)
    attacker = Attacker(seed)
    net.tamper = attacker
    t_attack_end = net.now + 2.0
    ams.attach(ARS1, net.now)
    attempts, seen = 1, 0
    while net.now < t_attack_end + 40.0 and ams.phase != "operational":
        net.settle(0.05)
        attacker.active = net.now < t_attack_end
        evs = net.of(AMS, EntryFailed) + net.of(AMS, PeerLost)
        if len(evs) > seen:
            seen = len(evs)
            attempts += 1
            ams.attach(ARS1, net.now)
    attacker.active = False
    assert attacker.flipped > 0 and attempts >= 2  # the attack did break an attempt
    assert ams.phase == "operational", (attempts, dict(ams.rejections), dict(abs_.rejections))
    net.settle(1.0)
    assert_entered(mode, abs_, ars1, ams)
    assert sum(abs_.rejections.values()) + sum(ars1.rejections.values()) + \
        sum(ams.rejections.values()) > 0
    assert not abs_._entries  # no half-finished parallel entry left behind
    exchange_data(net, abs_, ams, b"after attack")


@pytest.mark.parametrize("mode", MODES)
def test_replayed_old_ranging_does_not_stall_a_restarted_entry(mode):
    # Attempt 1's RNG-REQ is replayed while attempt 2 runs: at most it keeps attempt 1 (a
    # parallel, bounded attempt) alive; attempt 2 completes and the ARS accepts its AK.
    net, abs_, ars1, _ars2, ams = cell_with_arss(mode)
    ams.attach(ARS1, net.now)
    net.step()
    first = [f for _t, s, d, f in net.log if (s, d) == (AMS, ARS1)][-1]
    ams.attach(ARS1, net.now)       # the station starts over (new NONCE_AMS, new AMSID*)
    for _ in range(3):
        net.step()
        net.now += 0.001
    ars1.receive(AMS, first, net.now)
    net.settle(10.0)
    assert ars1.rejections["unknown_ams"] == 0
    assert_entered(mode, abs_, ars1, ams)
    assert len(net.of(AMS, Attached)) == 1


# -- an established station cannot be deauthenticated by an initial RNG-REQ -------------------

def snapshot(abs_, ars1, ars2, ams):
    return (ams.key_info(), ams.phase, ams.serving, abs_.key_info(AMS), abs_.via_of(AMS),
            ars1.key_info(AMS), ars2.key_info(AMS), ars1.serves(AMS))


def success_events(net):
    return [e for sid in (ABS, ARS1, ARS2, AMS) for cls in (KeysInstalled, Attached)
            for e in net.of(sid, cls)]


@pytest.mark.parametrize("mode", MODES)
def test_replayed_initial_ranging_against_established_station_achieves_nothing(mode):
    net, abs_, ars1, ars2, ams = enter_all(mode)
    net.start_recording()
    before = snapshot(abs_, ars1, ars2, ams)
    req = next(f for _t, s, d, f in net.log if (s, d) == (AMS, ARS1)
               and mpdu_fid(split_frame(f)[0]) == FID_CONTROL
               and plain_payload(split_frame(f)[0])[0] == m.RngReq.CODE)
    for _ in range(3):
        ars1.receive(AMS, req, net.now)        # through the ARS, as on the air
        abs_.receive(AMS, req, net.now)        # and straight at the ABS
        net.settle(0.5)
    assert abs_.rejections["stale_entry"] == 6
    assert snapshot(abs_, ars1, ars2, ams) == before
    assert not success_events(net) and not abs_._entries
    exchange_data(net, abs_, ams, b"still here")


@pytest.mark.parametrize("mode", MODES)
def test_forged_fresh_initial_ranging_cannot_deauthenticate(mode):
    # A forged RNG-REQ with a new NONCE_AMS starts at most a parallel entry, which cannot
    # complete without the PSK; the established context is untouched throughout and after.
    net, abs_, ars1, ars2, ams = enter_all(mode)
    net.start_recording()
    before = snapshot(abs_, ars1, ars2, ams)
    forged = m.RngReq(purpose=m.RangingPurpose.INITIAL_ENTRY, cmac_key_count=0,
                      target_id=station_bytes(ARS1), amsid=station_bytes(AMS),
                      nonce_ams=b"\xa5" * 6, stid=None, serving_id=None)
    ars1.receive(AMS, control_mpdu(forged.encode()), net.now)
    net.settle(0.3)
    assert AMS in abs_._entries_of                  # a pending parallel entry, nothing more
    assert snapshot(abs_, ars1, ars2, ams)[:4] == before[:4]
    exchange_data(net, abs_, ams, b"during")
    net.settle(abs_.timers.give_up_after + 1.0)
    assert not abs_._entries                      # it gave up
    assert net.of(ABS, PeerLost, peer=ARS1, procedure="eap")
    assert snapshot(abs_, ars1, ars2, ams)[:4] == before[:4]
    assert not success_events(net)
    assert ams.rejections["unexpected_message"] > 0   # unsolicited RSP/EAP, not acted on
    exchange_data(net, abs_, ams, b"after")


@pytest.mark.parametrize("via", [ARS1, ARS2], ids=["same_ars", "other_ars"])
@pytest.mark.parametrize("mode", MODES)
def test_restarted_station_replaces_its_established_context(mode, via):
    # The station lost its state (reboot) while the network still holds its keys: its new entry
    # runs in parallel and replaces the old context when it completes; the old RS lets go.
    net, abs_, ars1, ars2, ams = enter_all(mode)
    old_akid = abs_.key_info(AMS).akid
    reborn = AmsRole(AmsConfig(station_id=AMS, psk=PSK[AMS], timers=ams.timers,
                               lifetimes=ams.life, abs_id=ABS), rng=99)
    net.roles[AMS] = reborn
    net.start_recording()
    reborn.attach(via, net.now)
    net.settle(10.0)
    ars = ars1 if via == ARS1 else ars2
    assert_entered(mode, abs_, ars, reborn)
    assert reborn.key_info().akid != old_akid
    assert abs_.via_of(AMS) == via
    assert net.of(ABS, Attached, station=AMS, via=via)
    if via == ARS2:
        assert net.of(ARS1, ContextReleased, ams=AMS)
        assert not ars1.serves(AMS) and ars1.key_info(AMS) is None
    assert not abs_._entries
    exchange_data(net, abs_, reborn, b"reborn")


# -- EAP-Failure after a provisional success; stalled entries ---------------------------------

def _is_psk_msg4(mpdu: bytes) -> bool:
    if mpdu_fid(mpdu) != FID_CONTROL or plain_payload(mpdu)[0] != m.EapTransfer.CODE:
        return False
    pkt = EapPacket.decode(m.EapTransfer.decode(plain_payload(mpdu)).eap_payload)
    return pkt.code == 2 and pkt.type == 47 and pkt.data[0] >> 6 == 3


@pytest.mark.parametrize("mode", MODES)
def test_eap_failure_after_provisional_success_ends_the_entry(mode):
    # The peer reports success after EAP-PSK message 3; the attacker spoils message 4's
    # PCHANNEL, the server answers EAP-Failure. An EAP-Failure is unauthenticated, and after a
    # verified DONE_SUCCESS it is ignored (issue 17, finding 8): the entry ends by its
    # watchdog when no MSG#1 follows, naming the failure, and a new attempt works.
    net, abs_, ars1, _ars2, ams = cell_with_arss(mode)
    spoiled = []

    def tamper(src, dst, frame):
        if (src, dst) == (AMS, ARS1) and not spoiled and any(map(_is_psk_msg4,
                                                                 split_frame(frame))):
            spoiled.append(frame)
            return frame[:-1] + bytes([frame[-1] ^ 1])
        return frame

    net.tamper = tamper
    ams.attach(ARS1, net.now)
    net.settle(0.5)
    assert spoiled
    assert [e.reason for e in net.of(ABS, EntryFailed, station=AMS)] == ["bad_pchannel"]
    assert ams.rejections["eap_failure"] == 1 and not net.of(AMS, EntryFailed)
    net.settle(ams.timers.give_up_after + 0.5)
    assert [e.reason for e in net.of(AMS, EntryFailed)] == ["eap_failure"]
    assert ams.phase == "failed" and ams.key_info() is None
    assert ams.next_deadline() is None  # nothing left waiting: the runtime may start over
    ams.attach(ARS1, net.now)                  # starting over works
    net.settle(10.0)
    assert_entered(mode, abs_, ars1, ams)


def test_forged_eap_failure_after_entry_is_ignored():
    net, abs_, ars1, ars2, ams = enter_all(D)
    before = snapshot(abs_, ars1, ars2, ams)
    failure = m.EapTransfer(eap_payload=EapPacket(4, 7).encode())
    ams.receive(ARS1, control_mpdu(failure.encode()), net.now)
    assert ams.rejections["unexpected_message"] == 1
    assert snapshot(abs_, ars1, ars2, ams) == before


def test_entry_that_stalls_after_ranging_fails_with_an_event():
    # The RNG-RSP gets through, then the ABS side goes silent: the AMS holds no request of its
    # own (the authenticator drives EAP), so its entry watchdog must end the entry.
    net, _abs, _ars1, _ars2, ams = cell_with_arss(D)
    net.tamper = lambda s, d, f: None if (s, d) == (ARS1, AMS) and ams.stid is not None else f
    ams.attach(ARS1, net.now)
    net.settle(0.9 * ams.timers.give_up_after)
    assert ams.stid is not None and ams.phase == "eap" and not net.of(AMS, EntryFailed)
    net.settle(ams.timers.give_up_after)
    assert len(net.of(AMS, PeerLost, procedure="eap")) == 1
    assert net.of(AMS, EntryFailed, reason="peer_lost")
    assert ams.phase == "failed" and ams.next_deadline() is None


# -- a replayed initial RNG-RSP is bound to its request ----------------------------------------

def _rng_rsp_mpdu(net, src, dst) -> bytes:
    """The last initial RNG-RSP MPDU put on the air from ``src`` to ``dst`` (as an attacker
    would cut it out of a recorded burst: control MPDUs travel in clear)."""
    return [mp for _t, s, d, f in net.log if (s, d) == (src, dst) for mp in split_frame(f)
            if mpdu_fid(mp) == FID_CONTROL and plain_payload(mp)[0] == m.RngRsp.CODE][-1]


@pytest.mark.parametrize("via", [ARS1, ABS], ids=["via_ars", "at_abs"])
@pytest.mark.parametrize("mode", MODES)
def test_replayed_old_rng_rsp_cannot_stop_a_restarted_entry(mode, via):
    # Attempt 1 fails (EAP-Failure after a provisional success). The station starts over; its
    # first RNG-REQ is lost and the attacker replays attempt 1's RNG-RSP at once. That RSP
    # echoes the old NONCE_AMS: it is refused (stale_rng_rsp) and counted, the RNG-REQ
    # retransmission goes on and the entry completes after one retry interval instead of
    # ending only when the entry watchdog fires (Timers.give_up_after).
    net, abs_, ars1, _ars2, ams = cell_with_arss(mode)
    spoiled, dropped = [], []

    def tamper(src, dst, frame):
        if (src, dst) == (AMS, via) and not spoiled and any(map(_is_psk_msg4,
                                                                 split_frame(frame))):
            spoiled.append(frame)
            return frame[:-1] + bytes([frame[-1] ^ 1])
        if (src, dst) == (AMS, via) and spoiled and not dropped:
            dropped.append(frame)        # attempt 2's first RNG-REQ is lost
            return None
        return frame

    net.tamper = tamper
    ams.attach(via, net.now)
    net.settle(ams.timers.give_up_after + 0.5)  # the EAP-Failure is ignored; the watchdog ends it
    assert [e.reason for e in net.of(AMS, EntryFailed)] == ["eap_failure"]
    old_rsp = _rng_rsp_mpdu(net, via, AMS)
    assert m.RngRsp.decode(plain_payload(old_rsp)).status == m.RngStatus.SUCCESS

    t_before = net.now
    ams.attach(via, net.now)
    net.step()
    assert dropped and plain_payload(split_frame(dropped[0])[0])[0] == m.RngReq.CODE
    ams.receive(via, old_rsp, net.now)      # the replay, before any real answer
    assert ams.rejections["stale_rng_rsp"] == 1
    assert ams.phase == "ranging" and "rng" in ams._pending   # still retrying
    while not net.of(AMS, Attached) and net.now < t_before + 2 * ams.timers.give_up_after:
        net.settle(0.01)
    t_after = net.now
    assert net.of(AMS, Attached), dict(ams.rejections)
    assert t_after - t_before < ams.timers.interval(1) + 0.5 < ams.timers.give_up_after
    assert not net.of(AMS, PeerLost)
    key_station = ars1 if via == ARS1 else abs_
    assert_entered(mode, abs_, key_station, ams)
    # the RSP that did answer attempt 2 echoes its nonce
    new_rsp = m.RngRsp.decode(plain_payload(_rng_rsp_mpdu(net, via, AMS)))
    assert new_rsp.nonce_ams == ams._nonce_ams6 != m.RngRsp.decode(
        plain_payload(old_rsp)).nonce_ams
    exchange_data(net, abs_, ams, b"after replay")


@pytest.mark.parametrize("mode", MODES)
def test_replayed_handover_rng_rsp_is_bound_to_its_cmac_key_count(mode):
    # Re-entry RNG-RSPs need no nonce echo: a successful one carries a CMAC under the AK' of
    # this attempt (target id and CMAC_KEY_COUNT, which every handover() increments), so the
    # RSP of an earlier re-entry at the same target does not verify.
    net, abs_, _ars1, ars2, ams = enter_all(mode)
    net.start_recording()
    ams.handover(ARS2, net.now)
    net.settle(2.0)
    old_rsp = _ho_rsp_mpdu(net, ARS2, AMS)
    ams.handover(ARS1, net.now)
    net.settle(2.0)
    ams.handover(ARS2, net.now)                 # CMAC_KEY_COUNT 3 at ARS-2 (the old RSP: 1)
    ams.receive(ARS2, old_rsp, net.now)         # replayed before the real answer
    assert ams.rejections["bad_cmac"] == 1
    assert ams.serving == ARS1 and ams._ho is not None
    net.settle(2.0)
    done = net.of(AMS, HandoverComplete)
    assert [(e.target, e.cmac_key_count) for e in done] == [(ARS2, 1), (ARS1, 2), (ARS2, 3)]
    assert same_keys(ams.key_info(), key_holder(mode, abs_, ars2).key_info(AMS))
    exchange_data(net, abs_, ams, b"after handover replay")


def _ho_rsp_mpdu(net, src, dst) -> bytes:
    return [mp for _t, s, d, f in net.log if (s, d) == (src, dst) for mp in split_frame(f)
            if mpdu_fid(mp) == FID_CONTROL and plain_payload(mp)[:2] == bytes([m.RngRsp.CODE, 1])
            ][-1]
