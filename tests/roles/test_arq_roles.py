"""ARQ in the roles (end to end ABS<->AMS, both modes): nothing lost or duplicated under loss and
across a handover, and the security rules hold for every transmission -- its own PN under the
current TEK (retransmissions included), the new TEK after a TEK update, no replay accepted,
feedback protected like data."""

from __future__ import annotations

import pytest

from stack.arq import ArqParams
from stack.nonces import NonceMonitor, monitoring
from stack.roles import SecurityMode
from stack.roles.events import DataReceived
from stack.roles.framing import split_frame

from .harness import ABS, AMS, ARS1, ARS2, enter_all

ARQ = ArqParams(window=64, rto_initial=0.05, rto_min=0.01, rto_max=0.5, lifetime=30.0, purge=40.0)
MODES = [SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED]


def _payloads(net, sid):
    return [e.payload for e in net.of(sid, DataReceived)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2])
def test_lossy_links_and_a_handover_lose_and_duplicate_nothing(mode, seed):
    net, abs_, _a1, _a2, ams = enter_all(mode=mode, arq=ARQ, seed=seed)
    net.start_recording()
    net.loss = 0.3
    with monitoring(NonceMonitor()) as mon:
        for i in range(60):
            abs_.send_data(AMS, b"D%03d" % i, net.now)
            ams.send_data(ABS, b"U%03d" % i, net.now)
            if i == 30:
                abs_.prepare_handover(AMS, [ARS2], net.now)
                net.settle(0.3)
                ams.handover(ARS2, net.now)
            net.settle(0.01)
        net.settle(30.0)
    assert ams.serving == ARS2
    # every packet exactly once, in order, both ways -- across the move
    assert _payloads(net, AMS) == [b"D%03d" % i for i in range(60)]
    assert _payloads(net, ABS) == [b"U%03d" % i for i in range(60)]
    tx = ams.arq_connections()[2].tx.stats
    assert tx["retransmissions"] > 0      # the loss was real and ARQ recovered it
    # every transmission, retransmissions included, had a PN of its own
    assert mon.seen > 240 and mon.reused == 0


def test_unacknowledged_uplink_goes_again_after_re_entry():
    net, abs_, _a1, _a2, ams = enter_all(arq=ARQ)
    net.start_recording()
    abs_.prepare_handover(AMS, [ARS2], net.now)
    net.settle(0.3)
    net.tamper = lambda src, dst, f: None if (src, dst) == (AMS, ARS1) else f   # old path dead
    for i in range(5):
        ams.send_data(ABS, b"U%d" % i, net.now)
    net.settle(0.02)
    assert _payloads(net, ABS) == []
    ams.handover(ARS2, net.now)
    net.settle(0.5)
    assert _payloads(net, ABS) == [b"U%d" % i for i in range(5)]
    assert all(e.via == ARS2 for e in net.of(ABS, DataReceived))


def _eks_pns(frames):
    out = []
    for frame in frames:
        for mpdu in split_frame(frame):
            if mpdu[0] >> 4 == 2:
                v = int.from_bytes(mpdu[2:5], "big")
                out.append((v >> 22, v & 0x3FFFFF))
    return out


def test_a_retransmission_after_a_tek_update_uses_the_new_tek():
    net, abs_, _ars1, _a2, ams = enter_all(arq=ARQ)
    sent = []

    def tap(src, dst, f):
        if (src, dst) == (AMS, ARS1):
            sent.append(f)
            if len(sent) == 1:
                return None          # the first transmission is lost
        return f

    net.tamper = tap
    ams.send_data(ABS, b"only", net.now)
    net.step()
    old = ams.link.tx_eks()
    ams._start_refresh(net.now)      # a TEK update before the retransmission timer fires
    net.settle(0.2)
    assert ams.link.tx_eks() != old
    first, *later = _eks_pns(sent)
    assert first[0] == old
    retrans = [p for p in later if p[0] != old]
    assert retrans, "the retransmission went out under the new TEK"
    assert [e.payload for e in ams.events() if isinstance(e, DataReceived)] == []
    assert abs_.arq_connections()[(AMS, 2)].rx.stats["delivered"] == 1


def test_a_replayed_arq_mpdu_is_refused_by_the_replay_window():
    net, _abs, ars1, _a2, ams = enter_all(arq=ARQ)
    net.start_recording()
    copies = []

    def tap(src, dst, f):
        if (src, dst) == (AMS, ARS1):
            copies.append(f)
        return f

    net.tamper = tap
    ams.send_data(ABS, b"once", net.now)
    net.settle(0.2)
    assert _payloads(net, ABS) == [b"once"]
    before = ars1.rejections["pn_replay"]
    ars1.receive(AMS, copies[0], net.now)      # the data block again, verbatim
    net.settle(0.2)
    assert ars1.rejections["pn_replay"] == before + 1
    assert _payloads(net, ABS) == [b"once"]


@pytest.mark.parametrize("mode", MODES)
def test_feedback_is_a_protected_mpdu_of_its_connection(mode):
    net, abs_, ars1, _a2, _ams = enter_all(mode=mode, arq=ARQ)
    net.start_recording()
    fb_len = 13 + 4           # AGMH + EKS/PN + ICV around a FEEDBACK without bitmap
    seen, flip = [], [True]

    def tap(src, dst, f):
        if (src, dst) != (AMS, ARS1):
            return f
        out = bytearray()
        for m in split_frame(f):
            if m[0] >> 4 == 2 and len(m) == fb_len:
                seen.append(m)
                if flip[0]:
                    m = m[:6] + bytes([m[6] ^ 1]) + m[7:]   # one ciphertext bit
            out += m
        return bytes(out)

    net.tamper = tap
    abs_.send_data(AMS, b"down", net.now)
    net.settle(0.3)
    # the AMS acknowledged with a protected FID 2 MPDU (EKS/PN, ICV): never in the clear
    assert seen and all(bytes.fromhex("020001") not in m for m in seen)
    # ... and a tampered one is refused by the security layer, so the ABS still holds the block
    judge = ars1 if mode == SecurityMode.DISTRIBUTED else abs_
    assert judge.rejections["bad_icv"] >= 1
    conn = abs_.arq_connections()[(AMS, 2)]
    assert conn.tx.blocks and conn.tx.stats["retransmissions"] >= 1
    flip[0] = False
    net.settle(0.5)
    assert not conn.tx.blocks
    assert _payloads(net, AMS) == [b"down"]   # retransmitted copies were duplicates, dropped
    # a forged feedback in the clear (a plain FID 2 MPDU) never reaches ARQ
    before = dict(conn.tx.stats)
    abs_.send_data(AMS, b"more", net.now)
    forged = bytes([0x20, 2 + 4]) + bytes.fromhex("020002" "00")
    n = sum(judge.rejections.values())
    judge.receive(ARS1 if judge is abs_ else AMS, forged, net.now)
    assert sum(judge.rejections.values()) == n + 1
    assert conn.tx.blocks and conn.tx.stats["blocks_acked"] == before["blocks_acked"]


def test_a_block_waiting_sealed_in_the_queue_is_never_queued_twice():
    # a starved link: only one MPDU fits each frame, the rest waits already sealed (PN taken);
    # the ARQ timer must not add copies of blocks that are still waiting
    _net, _abs, _a1, _a2, ams = enter_all(arq=ARQ)
    now = 100.0
    for i in range(5):
        ams.send_data(ABS, b"U%d" % i, now)
    one = ams.backlog()[ARS1].head
    sent = ams.frames_to_send(now, max_bytes=one, dst=ARS1)     # one goes out (and is lost)
    assert len(sent) == 1 and len(ams._out[ARS1]) == 4
    for k in range(1, 40):                                       # long past every timeout
        ams.timer(now + 0.05 * k)
    conn = ams.arq_connections()[2]
    assert conn.tx.blocks[0].sends > 1                           # the lost one went again
    assert all(b.sends == 1 for sn, b in conn.tx.blocks.items() if sn)   # the waiting ones not
    assert len(ams._out[ARS1]) == 5                              # 4 waiting + 1 retransmission
