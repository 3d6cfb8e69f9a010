"""ARQ feedback piggybacked on data (stack.arq DATA+ACK, docs/roles.md §11): a station owing a
feedback rides it on the oldest block of the same connection still unsealed in its queue, and
sends a FEEDBACK MPDU of its own only when none waits; a frame cut by ``max_bytes`` seals only
what goes out, so the rest stays rewritable and takes its PN when it is sent."""

from __future__ import annotations

import pytest

from stack.arq import DATA, DATA_ACK, FEEDBACK, ArqParams
from stack.nonces import NonceMonitor, monitoring
from stack.roles import SecurityMode
from stack.roles.arq_plumbing import HOP
from stack.roles.events import DataReceived
from stack.roles.framing import FIRST_DATA_FID, split_frame
from stack.roles.link import PendingMpdu

from .harness import ABS, AMS, ARS1, enter_all

ARQ = ArqParams(window=64, rto_initial=0.05, rto_min=0.01, rto_max=0.5, lifetime=30.0, purge=40.0)


def _cell(mode=SecurityMode.DISTRIBUTED):
    net, abs_, ars1, ars2, ams = enter_all(mode=mode)
    for role in (abs_, ars1, ars2):
        role.configure_arq(ARQ, per_hop=True)
    ams.configure_arq(ARQ, per_hop=mode == SecurityMode.DISTRIBUTED)
    net.start_recording()
    return net, abs_, ars1, ams


def _held_downlink(net, abs_, payload):
    """One DL block sent by the ABS, its last hop to the AMS held back: the frame(s) the AMS
    would have received."""
    held = []

    def hold(src, dst, frame):
        if dst == AMS:
            held.append((src, frame))
            return None
        return frame

    net.tamper = hold
    abs_.send_data(AMS, payload, net.now)
    for _ in range(20):
        if held:
            break
        net.step()
        net.now += 0.001
    net.tamper = None
    assert held
    return held


def _queued(role, dst):
    return [x for x in role._out.get(dst, []) if isinstance(x, PendingMpdu)]


@pytest.mark.parametrize("mode", [SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED])
def test_the_feedback_rides_on_a_queued_block_and_both_arrive(mode):
    net, abs_, ars1, ams = _cell(mode)
    held = _held_downlink(net, abs_, b"D0")
    ams.send_data(ABS, b"U0", net.now)                 # one UL block waits, unsealed
    (ul,) = _queued(ams, ARS1)
    assert ul.payload[0] == DATA
    for src, frame in held:
        ams.receive(src, frame, net.now)                # the DL block arrives: feedback owed
    assert [e.payload for e in net.of(AMS, DataReceived)] == [b"D0"]
    assert ams.arq_stats["feedback_piggybacked"] == 1
    (ul2,) = _queued(ams, ARS1)                         # no MPDU of its own for the feedback
    assert ul2 is ul and ul.payload[0] == DATA_ACK
    net.settle(0.02)
    assert [e.payload for e in net.of(ABS, DataReceived)] == [b"U0"]
    # the DL sender of that hop got its acknowledgement from the piggybacked feedback, before
    # any timer ran: nothing retransmitted, nothing left unacknowledged
    dl_sender = ars1 if mode == SecurityMode.DISTRIBUTED else abs_
    assert all(c.tx.unacked() == 0 for c in dl_sender.arq_connections().values())
    assert sum(c.tx.stats["retransmissions"] for c in dl_sender.arq_connections().values()) == 0


def test_without_a_queued_block_the_feedback_goes_on_its_own():
    net, abs_, _ars1, ams = _cell()
    held = _held_downlink(net, abs_, b"D0")
    for src, frame in held:
        ams.receive(src, frame, net.now)
    (fb,) = _queued(ams, ARS1)
    assert fb.payload[0] == FEEDBACK and ams.arq_stats["feedback_piggybacked"] == 0


def test_a_piggybacked_feedback_never_grows_an_mpdu_past_the_mac_limit():
    net, abs_, _ars1, ams = _cell()
    held = _held_downlink(net, abs_, b"D0")
    ams.send_data(ABS, b"U" * 40, net.now)
    (ul,) = _queued(ams, ARS1)
    ams.mpdu_limit = len(ul)                            # the block fills the largest MPDU
    for src, frame in held:
        ams.receive(src, frame, net.now)
    data, fb = _queued(ams, ARS1)
    assert data is ul and ul.payload[0] == DATA and fb.payload[0] == FEEDBACK
    assert ams.arq_stats["feedback_piggybacked"] == 0


def test_a_newer_feedback_replaces_the_one_a_queued_block_carries():
    net, abs_, _ars1, ams = _cell()
    first = _held_downlink(net, abs_, b"D0")
    second = _held_downlink(net, abs_, b"D1")
    ams.send_data(ABS, b"U0", net.now)
    for src, frame in first:
        ams.receive(src, frame, net.now)
    (ul,) = _queued(ams, ARS1)
    before = bytes(ul.payload)
    for src, frame in second:
        ams.receive(src, frame, net.now)
    (ul2,) = _queued(ams, ARS1)                         # still one MPDU, its feedback newer
    assert ul2 is ul and ul.payload[0] == DATA_ACK and bytes(ul.payload) != before
    assert ams.arq_stats["feedback_piggybacked"] == 2


def test_a_cut_frame_seals_only_what_goes_out():
    net, _abs, _ars1, ams = _cell()
    for i in range(3):
        ams.send_data(ABS, b"U%d" % i, net.now)
    first = _queued(ams, ARS1)
    assert len(first) == 3
    with monitoring(NonceMonitor()) as mon:
        (_dst, frame), = ams.frames_to_send(net.now, len(first[0]) + 1, dst=ARS1)
        assert len(split_frame(frame)) == 1
        rest = _queued(ams, ARS1)
        assert rest == first[1:]                        # still unsealed: no PN taken yet
        assert mon.seen == 1
        frames = ams.frames_to_send(net.now, dst=ARS1)
        assert len(split_frame(frames[0][1])) == 2 and mon.seen == 3 and mon.reused == 0


def test_a_queued_feedback_mpdu_is_rewritten_where_it_waits():
    # moved to the back of a busy queue at every new feedback, it never went out (found in
    # centralized mode, where the ABS's queue to the relay is always deep)
    net, abs_, _ars1, ams = _cell()
    first = _held_downlink(net, abs_, b"D0")
    second = _held_downlink(net, abs_, b"D1")
    for src, frame in first:
        ams.receive(src, frame, net.now)
    (fb,) = _queued(ams, ARS1)
    before = bytes(fb.payload)
    ams.send_data(ABS, b"X0", net.now, fid=3)          # another connection's block, then ours
    ams.send_data(ABS, b"U0", net.now)
    for src, frame in second:
        ams.receive(src, frame, net.now)
    fb2, other, data = _queued(ams, ARS1)
    assert fb2 is fb and fb.payload[0] == FEEDBACK and bytes(fb.payload) != before
    assert other.payload[0] == DATA and data.payload[0] == DATA
    net.settle(0.05)
    assert sorted(e.payload for e in net.of(ABS, DataReceived)) == [b"U0", b"X0"]


def test_a_feedback_mpdu_goes_as_queued_when_its_connection_has_no_block_in_the_frame():
    net, abs_, _ars1, ams = _cell()
    held = _held_downlink(net, abs_, b"D0")
    for src, frame in held:
        ams.receive(src, frame, net.now)
    ams.send_data(ABS, b"X0", net.now, fid=3)          # another connection's block
    ams.send_data(ABS, b"U0", net.now)                 # queued after it, not adjacent
    fb, other, data = _queued(ams, ARS1)
    assert fb.payload[0] == FEEDBACK and ams.arq_stats["feedback_mpdus"] == 1
    # a frame with room for the feedback and X0 only: nothing to fold into, all as queued
    (_d, frame), = ams.frames_to_send(net.now, len(fb) + len(other), dst=ARS1)
    assert len(split_frame(frame)) == 2 and _queued(ams, ARS1) == [data]
    assert data.payload[0] == DATA


def test_a_feedback_mpdu_rides_on_its_connections_block_of_the_same_frame():
    # (a block queued right behind it takes it at once: tested below with bulk traffic)
    net, abs_, ars1, ams = _cell()
    held = _held_downlink(net, abs_, b"D0")
    for src, frame in held:
        ams.receive(src, frame, net.now)
    ams.send_data(ABS, b"X0", net.now, fid=3)          # another connection's block, then
    ams.send_data(ABS, b"U0", net.now)                 # ours: not adjacent, so still apart
    fb, other, data = _queued(ams, ARS1)
    assert fb.payload[0] == FEEDBACK and data.payload[0] == DATA
    room = len(fb) + len(other) + len(data)
    (_d, frame), = ams.frames_to_send(net.now, room, dst=ARS1)
    assert len(split_frame(frame)) == 2                 # X0, and U0 with the feedback on it
    assert len(frame) < room and data.payload[0] == DATA_ACK
    assert ams.arq_stats["feedback_mpdus"] == 0 and ams.arq_stats["feedback_piggybacked"] == 1
    ars1.receive(AMS, frame, net.now)
    net.settle(0.05)
    assert sorted(e.payload for e in net.of(ABS, DataReceived)) == [b"U0", b"X0"]
    assert all(c.tx.unacked() == 0 for c in ars1.arq_connections().values())


@pytest.mark.parametrize("loss", [0.0, 0.2])
@pytest.mark.parametrize("mode", [SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED])
def test_bulk_both_ways_arrives_once_in_order_with_feedback_mostly_piggybacked(mode, loss):
    net, abs_, ars1, ams = _cell(mode)
    net.loss = loss
    n = 100
    with monitoring(NonceMonitor()) as mon:
        for i in range(n):
            abs_.send_data(AMS, b"D%03d" % i, net.now)
            ams.send_data(ABS, b"U%03d" % i, net.now)
            if i % 3 == 0:   # frames leave while more is queued: feedback finds blocks waiting
                net.step()
                net.now += 0.001
        net.settle(20.0)
    assert [e.payload for e in net.of(AMS, DataReceived)] == [b"D%03d" % i for i in range(n)]
    assert [e.payload for e in net.of(ABS, DataReceived)] == [b"U%03d" % i for i in range(n)]
    assert mon.reused == 0
    rode = {r: r.arq_stats["feedback_piggybacked"] for r in (abs_, ars1, ams)}
    if mode == SecurityMode.DISTRIBUTED:
        assert all(rode.values())
    else:   # the ABS's blocks to a relayed AMS are sealed end to end inside relay MPDUs:
        assert rode[ams] and not rode[abs_] and not rode[ars1]   # it cannot rewrite them


def test_a_block_queued_right_behind_a_feedback_mpdu_takes_the_feedback_at_once():
    net, abs_, _ars1, ams = _cell()
    held = _held_downlink(net, abs_, b"D0")
    for src, frame in held:
        ams.receive(src, frame, net.now)
    (fb,) = _queued(ams, ARS1)
    ams.send_data(ABS, b"U0", net.now)
    (data,) = _queued(ams, ARS1)          # what the AMS reports queued is what it will send
    assert data.payload[0] == DATA_ACK and not fb.tag.queued
    assert ams.arq_stats["feedback_mpdus"] == 0 and ams.arq_stats["feedback_piggybacked"] == 1


def test_a_retransmission_still_queued_when_its_block_is_acknowledged_never_goes_out():
    net, _abs, ars1, ams = _cell()
    ams.send_data(ABS, b"U0", net.now)
    (_d, first), = ams.frames_to_send(net.now, dst=ARS1)      # on the air, its ACK late
    net.now += 0.6                                            # past the first timeout
    ams.timer(net.now)
    (copy,) = _queued(ams, ARS1)                              # the retransmission waits
    assert copy.payload[0] == DATA
    ars1.receive(AMS, first, net.now)                         # the first copy arrives ...
    ars1.timer(net.now + 0.02)                                # ... acknowledged (delayed ACK)
    for dst, frame in ars1.frames_to_send(net.now + 0.02):
        if dst == AMS:
            ams.receive(ARS1, frame, net.now + 0.02)          # ... and the ACK comes back
    assert _queued(ams, ARS1) == [] and ams.arq_stats["retransmissions_unqueued"] == 1
    assert ams.arq_connections()[(HOP, FIRST_DATA_FID)].tx.unacked() == 0   # the access hop
