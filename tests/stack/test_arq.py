"""stack.arq: the PDU encodings (strict decoding, byte-level fixtures, round trip) and the
sender/receiver state machines (window, selective ACK, timers, lifetime, in-order delivery,
duplicates, BSN wrap-around)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack.arq import (
    BSN_MODULUS,
    ArqData,
    ArqDataAck,
    ArqDiscard,
    ArqFeedback,
    ArqParams,
    ArqReceiver,
    ArqSender,
    decode_arq,
)
from stack.errors import MalformedError

P = ArqParams(window=8, rto_initial=0.1, rto_min=0.01, rto_max=1.0, lifetime=2.0, purge=3.0)


# -- encodings ----------------------------------------------------------------------------------
def test_fixtures_byte_by_byte():
    #                       type  BSN (6 zero bits | 10 bits)  SDU
    assert ArqData(0x2A5, b"hi").encode() == bytes.fromhex("01" "02a5" "6869")
    #                           type  ACK_BSN  N   bitmap (blocks ACK+1 and ACK+9 received)
    assert ArqFeedback(3, b"\x80\x80").encode() == bytes.fromhex("02" "0003" "02" "8080")
    assert ArqFeedback(3, b"\x80\x80").acked() == [1, 9]
    assert ArqDiscard(1023).encode() == bytes.fromhex("03" "03ff")
    #        type  BSN   ACK_BSN N  bitmap  SDU
    assert ArqDataAck(ArqData(0x2A5, b"hi"), ArqFeedback(3, b"\x80")).encode() == \
        bytes.fromhex("04" "02a5" "0003" "01" "80" "6869")


@given(st.one_of(
    st.builds(ArqData, st.integers(0, BSN_MODULUS - 1), st.binary(min_size=1, max_size=64)),
    st.builds(ArqFeedback, st.integers(0, BSN_MODULUS - 1), st.binary(max_size=64)),
    st.builds(ArqDiscard, st.integers(0, BSN_MODULUS - 1)),
    st.builds(ArqDataAck,
              st.builds(ArqData, st.integers(0, BSN_MODULUS - 1),
                        st.binary(min_size=1, max_size=64)),
              st.builds(ArqFeedback, st.integers(0, BSN_MODULUS - 1), st.binary(max_size=64)))))
def test_round_trip(pdu):
    assert decode_arq(pdu.encode()) == pdu


@pytest.mark.parametrize("raw, why", [
    (b"", "empty"),
    (b"\x01\x00", "short"),
    (b"\x01\x00\x05", "DATA without SDU"),
    (b"\x01\x04\x00x", "reserved BSN bits"),
    (b"\x02\x00\x01", "FEEDBACK without N"),
    (b"\x02\x00\x01\x02\x80", "bitmap shorter than N"),
    (b"\x02\x00\x01\x01\x80\x00", "trailing byte"),
    (b"\x02\x00\x01\x41" + bytes(65), "bitmap over 64 bytes"),
    (b"\x03\x00\x01\x00", "DISCARD with trailing byte"),
    (b"\x00\x00\x01x", "unknown type"),
    (b"\x05\x00\x01x", "unknown type"),
    (b"\x04\x00\x01\x00\x02\x00", "DATA+ACK without SDU"),
    (b"\x04\x00\x01\x00\x02\x01\x80", "DATA+ACK: bitmap, no SDU"),
    (b"\x04\x00\x01\x00\x02\x02\x80", "DATA+ACK: bitmap shorter than N"),
    (b"\x04\x00\x01\x04\x02\x00x", "DATA+ACK: reserved ACK_BSN bits"),
    (b"\x04\x00\x01\x00\x02\x41" + bytes(66), "DATA+ACK: bitmap over 64 bytes"),
])
def test_malformed_is_refused_with_the_projects_error(raw, why):
    with pytest.raises(MalformedError) as exc:
        decode_arq(raw)
    assert exc.value.reason == "bad_arq", why


def test_encoder_refuses_out_of_range_fields():
    with pytest.raises(MalformedError):
        ArqData(BSN_MODULUS, b"x").encode()
    with pytest.raises(MalformedError):
        ArqFeedback(0, bytes(65)).encode()
    with pytest.raises(MalformedError):
        ArqParams(window=BSN_MODULUS // 2 + 1)


# -- state machines -------------------------------------------------------------------------
def _sent(outs, now):
    for _pdu, block in outs:
        if block is not None:
            block.on_air(now)
    return [decode_arq(pdu) for pdu, _ in outs]


def test_window_holds_back_sdus_until_acknowledged():
    tx = ArqSender(P)
    pdus = [p for i in range(12) for p in _sent(tx.offer(bytes([i]), 0.0), 0.0)]
    assert [p.bsn for p in pdus] == list(range(8)) and len(tx.waiting) == 4
    more = _sent(tx.on_feedback(ArqFeedback(3), 0.05), 0.05)   # blocks 0..2 received
    assert [p.bsn for p in more] == [8, 9, 10] and tx.base == 3


def test_selective_ack_retransmits_only_the_holes():
    tx, rx = ArqSender(P), ArqReceiver(P)
    pdus = [p for i in range(5) for p in _sent(tx.offer(bytes([i]), 0.0), 0.0)]
    got = []
    for p in pdus:
        if p.bsn != 1:                      # block 1 lost on the air
            got += rx.on_data(p, 0.01)
    assert got == [b"\x00"]                 # 2..4 held: in order only
    fb = rx.feedback()
    assert fb.ack_bsn == 1 and fb.acked() == [1, 2, 3]
    again = _sent(tx.on_feedback(fb, 0.2), 0.2)   # a round trip later: the hole goes again
    assert [p.bsn for p in again] == [1] and tx.stats["fast_retransmissions"] == 1
    assert rx.on_data(again[0], 0.21) == [b"\x01", b"\x02", b"\x03", b"\x04"]
    assert rx.on_data(again[0], 0.22) == [] and rx.stats["duplicates"] == 1


def test_timer_retransmits_with_a_short_capped_backoff():
    tx = ArqSender(ArqParams(window=8, rto_initial=0.1, rto_min=0.01, rto_max=1.0,
                             lifetime=60.0, purge=70.0))
    _sent(tx.offer(b"a", 0.0), 0.0)
    assert tx.next_deadline() == pytest.approx(0.1)
    assert _sent(tx.on_timer(0.05), 0.05) == []
    waits = []
    t = tx.next_deadline()
    for _ in range(5):
        assert len(_sent(tx.on_timer(t), t)) == 1     # one retransmission per expiry
        waits.append(tx.next_deadline() - t)
        t = tx.next_deadline()
    # doubled per retransmission, MAX_BACKOFF_DOUBLINGS (3) times, then flat (below rto_max)
    assert waits == pytest.approx([0.2, 0.4, 0.8, 0.8, 0.8])


def test_a_queued_copy_stops_the_timer():
    tx = ArqSender(P)
    outs = tx.offer(b"a", 0.0)                # queued, not on the air yet
    assert tx.next_deadline() is None
    outs[0][1].on_air(0.5)
    assert tx.next_deadline() == pytest.approx(0.6)


def test_rtt_sets_the_timeout_karn():
    tx = ArqSender(P)
    _sent(tx.offer(b"a", 0.0), 0.0)
    tx.on_feedback(ArqFeedback(1), 0.04)
    assert tx.srtt == pytest.approx(0.04) and tx.rto == pytest.approx(0.04 + 4 * 0.02)
    _sent(tx.offer(b"b", 1.0), 1.0)
    _sent(tx.on_timer(2.0), 2.0)              # retransmitted: its ACK gives no sample
    tx.on_feedback(ArqFeedback(2), 2.05)      # (it may be for either copy)
    assert tx.srtt == pytest.approx(0.04)
    assert tx.stats["spurious_retransmissions"] == 0


def test_an_ack_sooner_than_any_round_trip_marks_the_retransmission_spurious():
    """An ACK 10 ms after a retransmission on a path whose fastest round trip took 40 ms is
    for the first copy: the retransmission was spurious (a late ACK, not a loss), and the
    first copy's round trip is a true sample that raises the timer."""
    tx = ArqSender(P)
    _sent(tx.offer(b"a", 0.0), 0.0)
    tx.on_feedback(ArqFeedback(1), 0.04)
    _sent(tx.offer(b"b", 1.0), 1.0)
    _sent(tx.on_timer(1.5), 1.5)
    tx.on_feedback(ArqFeedback(2), 1.51)
    assert tx.stats["spurious_retransmissions"] == 1
    assert tx.srtt == pytest.approx(0.875 * 0.04 + 0.125 * 0.51)
    # acknowledged while the retransmission still waits in the queue: spurious too
    tx.offer(b"c", 2.0)[0][1].on_air(2.0)
    out = tx.on_timer(3.0)                    # queued again, not on the air yet
    assert out and out[0][1] is not None and out[0][1].queued
    srtt = tx.srtt
    tx.on_feedback(ArqFeedback(3), 3.2)
    assert tx.stats["spurious_retransmissions"] == 2
    assert tx.srtt == pytest.approx(0.875 * srtt + 0.125 * 1.2)


def test_lifetime_discards_and_the_receiver_skips():
    tx, rx = ArqSender(P), ArqReceiver(P)
    a = _sent(tx.offer(b"a", 0.0), 0.0)[0]     # lost for good
    b = _sent(tx.offer(b"b", 0.0), 0.0)[0]
    assert rx.on_data(b, 0.01) == []
    outs = _sent(tx.on_timer(2.0), 2.0)          # both past their lifetime
    assert tx.stats["discarded"] == 2 and not tx.blocks
    disc = [p for p in outs if isinstance(p, ArqDiscard)]
    assert disc == [ArqDiscard(2)]
    assert rx.on_discard(disc[0], 2.01) == [b"b"]   # what it held is delivered, a skipped
    assert rx.stats["skipped"] == 1 and a.bsn == 0
    assert tx.discard_to == 2
    tx.on_feedback(rx.feedback(), 2.02)
    assert tx.discard_to is None                   # confirmed: no more DISCARDs


def test_purge_skips_a_gap_when_the_discard_is_lost():
    rx = ArqReceiver(P)
    assert rx.on_data(ArqData(1, b"b"), 0.0) == []
    assert rx.next_deadline() == pytest.approx(3.0)
    assert rx.on_timer(2.9) == []
    assert rx.on_timer(3.0) == [b"b"] and rx.stats["skipped"] == 1


def test_bsn_wraps_around_and_old_blocks_stay_duplicates():
    tx, rx = ArqSender(P), ArqReceiver(P)
    got = []
    for i in range(3 * BSN_MODULUS + 5):
        (p,) = _sent(tx.offer(i.to_bytes(2, "big"), i * 1e-3), i * 1e-3)
        got += rx.on_data(p, i * 1e-3)
        tx.on_feedback(rx.feedback(), i * 1e-3)
    assert [int.from_bytes(g, "big") for g in got] == list(range(3 * BSN_MODULUS + 5))
    # a block from one modulus ago carries a BSN inside the window's past: a duplicate
    assert rx.on_data(ArqData((rx.start - 3) % BSN_MODULUS, b"old"), 9.0) == []
    assert rx.stats["duplicates"] == 1


def test_stale_feedback_is_ignored():
    tx = ArqSender(P)
    for i in range(3):
        _sent(tx.offer(bytes([i]), 0.0), 0.0)
    tx.on_feedback(ArqFeedback(3), 0.1)
    assert tx.base == 3
    assert tx.on_feedback(ArqFeedback(1), 0.2) == [] and tx.stats["stale_feedback"] == 1
    assert tx.base == 3


def test_delayed_ack_waits_for_a_second_block_or_the_delay_but_not_for_a_gap():
    p = ArqParams(window=8, ack_delay=0.02, rto_initial=0.1, rto_min=0.01, rto_max=1.0)
    rx = ArqReceiver(p)
    rx.on_data(ArqData(0, b"a"), 0.0)
    assert not rx.feedback_due and rx.next_deadline() == pytest.approx(0.02)
    rx.on_timer(0.02)
    assert rx.feedback_due                      # the delay ran out
    rx.feedback()
    rx.on_data(ArqData(1, b"b"), 0.1)
    rx.on_data(ArqData(2, b"c"), 0.1)
    assert rx.feedback_due                      # every second block at once
    rx.feedback()
    rx.on_data(ArqData(4, b"e"), 0.2)           # block 3 missing: a gap is reported at once
    assert rx.feedback_due and rx.feedback().acked() == [1]
    rx.on_data(ArqData(4, b"e"), 0.3)           # a duplicate: the sender retransmits, at once
    assert rx.feedback_due


def _deadline_by_definition(tx: ArqSender) -> float | None:
    """What ``next_deadline`` must return, written out plainly (lifetime ends, retransmission
    times of blocks on the air, a DISCARD to repeat)."""
    when = []
    for b in tx.blocks.values():
        if b.first_tx is not None:
            when.append(b.first_tx + tx.p.lifetime)
        if not b.queued:
            when.append(b.last_tx + tx._timeout(b) if b.last_tx is not None else 0.0)
    if tx.discard_to is not None:
        when.append((tx._discard_at or 0.0) + tx.rto)
    return min(when, default=None)


@given(st.lists(st.tuples(st.sampled_from(["offer", "air", "tick", "ack"]),
                          st.integers(0, 7), st.floats(0.0, 0.3)), max_size=60))
def test_next_deadline_is_the_earliest_of_its_definition(program):
    tx = ArqSender(P)
    now = 0.0
    for op, k, dt in program:
        now += dt
        if op == "offer":
            for _pdu, b in tx.offer(b"s%d" % k, now):
                if b is not None and k % 2:
                    b.on_air(now)                  # some go out at once, some stay queued
        elif op == "air":
            for b in list(tx.blocks.values())[: k + 1]:
                if b.queued:
                    b.on_air(now)
        elif op == "tick":
            for _pdu, b in tx.on_timer(now):
                if b is not None:
                    b.on_air(now)
        else:
            tx.on_feedback(ArqFeedback((tx.base + k % 3) % BSN_MODULUS), now)
        assert tx.next_deadline() == _deadline_by_definition(tx)


def test_resend_after_a_path_change_skips_what_already_went_on_the_new_path():
    """ArqSender.resend_all(sent_before=t): the status report after a handover sends again what
    went out before the path changed at t; a block sent since went on the new path (its own
    timer decides about it), a block never on the air counts as old."""
    tx = ArqSender(P)
    out = tx.offer(b"a", 0.0) + tx.offer(b"b", 0.0) + tx.offer(b"c", 0.0)
    for _pdu, b in out[:2]:
        b.on_air(0.01)          # a, b on the old path; c queued, never on the air
    out[2][1].queued = False
    new = tx.offer(b"d", 0.2)   # after the change at 0.1, on the new path
    new[0][1].on_air(0.2)
    again = tx.resend_all(0.3, sent_before=0.1)
    assert [b.sdu for _p, b in again] == [b"a", b"b", b"c"]
    assert [b.sdu for _p, b in tx.resend_all(0.3)] == [b"d"]  # the rest are queued again


def test_resend_names_blocks_by_bsn_and_leaves_queued_copies():
    """ArqSender.resend(bsns): what a path that ended carried goes again, by BSN (wrapped
    numbers included); a block whose copy waits in the queue, or acknowledged, is not sent."""
    tx = ArqSender(P)
    out = [o for i in range(4) for o in tx.offer(bytes([i]), 0.0)]
    for _pdu, b in out:
        b.on_air(0.01)
    out[3][1].queued = True                          # a copy of block 3 waits in the queue
    tx.on_feedback(ArqFeedback(1), 0.02)             # block 0 acknowledged
    again = tx.resend([0, 2, 3, 2 + BSN_MODULUS], 0.03)
    assert [b.sn for _p, b in again] == [2]
    assert [decode_arq(p).bsn for p, _b in again] == [2]
    assert tx.blocks[2].sends == 2 and tx.stats["retransmissions"] == 1


def test_receiver_hands_back_each_blocks_tag_when_it_is_delivered():
    """ArqReceiver tags (the path a block came by): returned in ``last_tags`` in the order of
    the SDUs, whichever arrival releases them -- a gap filled by one path releases blocks of
    another with their own tags -- and through a DISCARD or a purge."""
    rx = ArqReceiver(P)
    assert rx.on_data(ArqData(1, b"b"), 0.0, "new") == [] and rx.last_tags == []
    assert rx.on_data(ArqData(2, b"c"), 0.0, "new") == []
    assert rx.on_data(ArqData(0, b"a"), 0.0, "old") == [b"a", b"b", b"c"]
    assert rx.last_tags == ["old", "new", "new"]
    assert rx.on_data(ArqData(0, b"a"), 0.0, "old") == [] and rx.last_tags == []  # duplicate
    assert rx.on_data(ArqData(3, b"d"), 0.0) == [b"d"] and rx.last_tags == [None]
    assert rx.on_data(ArqData(5, b"f"), 0.0, "x") == []
    assert rx.on_discard(ArqDiscard(5), 0.1) == [b"f"] and rx.last_tags == ["x"]
    assert rx.on_data(ArqData(7, b"h"), 0.2, "y") == []
    assert rx.on_timer(3.3) == [b"h"] and rx.last_tags == ["y"]
    assert not rx._tags
