"""stack.arq fast paths: ArqSender.next_deadline keeps its last answer until something it
depends on changes. Driven through random send/ack/timer/resend/discard/handover sequences, it
must return exactly what the one-pass walk it replaced returns (kept here as the reference),
after every step, whoever made the change (the sender, the station's output path writing a
block, a role clearing the block map, a retune)."""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stack import arq_blocks
from stack.arq import (
    BSN_MODULUS,
    MAX_BACKOFF_DOUBLINGS,
    ArqConnection,
    ArqFeedback,
    ArqParams,
    ArqSender,
    TxBlock,
)

P = ArqParams(window=8, rto_initial=0.1, rto_min=0.01, rto_max=1.0, lifetime=2.0, purge=3.0)
Q = ArqParams(window=8, rto_initial=0.2, rto_min=0.05, rto_max=0.4, lifetime=1.0, purge=2.0,
              ack_delay=0.01)
SHORT = ArqParams(window=4, rto_initial=0.3, rto_min=0.2, rto_max=0.5, lifetime=0.6, purge=1.0)
"""Blocks outlive their lifetime within a few steps: DISCARDs are sent and repeated often."""
SLOW = ArqParams(window=8, rto_initial=0.5, rto_min=0.3, rto_max=1.5, lifetime=0.4, purge=1.0)
"""A timeout longer than the lifetime (as end to end over hops): lifetime ends come first."""
EXACT = ArqParams(window=8, rto_initial=0.25, rto_min=0.125, rto_max=1.0, lifetime=2.0,
                  purge=3.0)
"""Binary fractions: with steps of 1/8 s a timer can fall exactly on a block's due time."""


def reference_deadline(tx: ArqSender) -> float | None:
    """ArqSender.next_deadline as it was before the cache: one walk over every block."""
    best: float | None = None
    first: float | None = None
    rto, cap = tx.rto, tx.p.rto_max
    for b in tx.blocks.values():
        f = b.first_tx
        if f is not None and (first is None or f < first):
            first = f
        if not b.queued:
            t = b.last_tx
            w = 0.0 if t is None else \
                t + min(cap, rto * (1 << min(b.sends - 1, MAX_BACKOFF_DOUBLINGS)))
            if best is None or w < best:
                best = w
    if first is not None:
        w = first + tx.p.lifetime
        best = w if best is None or w < best else best
    if tx.discard_to is not None:
        w = (tx._discard_at or 0.0) + tx.rto
        best = w if best is None or w < best else best
    return best


OPS = ["offer", "offer", "air", "air", "air_any", "lost", "unqueue", "tick", "tick", "ack",
       "ack", "resend", "resend_all", "clear", "retune", "poll_twice"]


def _bitmap(k: int) -> bytes:
    return bytes([(k * 37) & 0xFF]) if k % 3 else b""


@settings(max_examples=400)
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 9), st.floats(0.0, 0.4)),
                max_size=80),
       st.booleans(), st.sampled_from([P, SHORT, SLOW]))
def test_next_deadline_equals_the_one_pass_walk_after_every_step(program, poll_every_step,
                                                                 params):
    conn = ArqConnection(params)
    tx = conn.tx
    now = 0.0
    seen: list[TxBlock] = []     # every block handed out, acknowledged ones included
    for op, k, dt in program:
        now += dt
        out = []
        if op == "offer":
            out = tx.offer(b"s%d" % k, now)
        elif op == "air":            # the output path sends some queued copies
            for b in list(tx.blocks.values())[k % 4::2]:
                if b.queued:
                    b.on_air(now)
        elif op == "air_any":        # a late copy of any block: gone, on the air or queued
            if seen:
                seen[k * 7 % len(seen)].on_air(now)
        elif op == "lost":
            for b in list(tx.blocks.values())[k % 3:k % 3 + 1]:
                b.lost()
        elif op == "unqueue":        # a role takes a queued copy out of its queue
            for b in list(tx.blocks.values())[k % 2::3]:
                b.queued = False
        elif op == "tick":
            out = tx.on_timer(now)
        elif op == "ack":
            out = tx.on_feedback(ArqFeedback((tx.base + k % 4) % BSN_MODULUS, _bitmap(k)), now)
        elif op == "resend":
            out = tx.resend([tx.base + k % 5, tx.base + (k + 2) % 5], now)
        elif op == "resend_all":
            out = tx.resend_all(now, sent_before=now - dt / 2 if k % 2 else None)
        elif op == "clear":          # a handover hands the blocks over and forgets them
            if k % 3 == 0:
                tx.blocks.clear()
            elif tx.blocks and k % 3 == 1:
                del tx.blocks[next(iter(tx.blocks))]
            elif tx.blocks:
                tx.blocks.pop(next(reversed(tx.blocks)))
        elif op == "retune":
            conn.retune(replace(Q, window=params.window) if k % 2 else params)
        else:
            assert tx.next_deadline() == reference_deadline(tx)
        seen += [b for _pdu, b in out if b is not None and b not in seen]
        for _pdu, b in out:
            if b is not None and k % 2:
                b.on_air(now)        # some go out at once, some stay queued
        if poll_every_step or k % 3 == 0:
            assert tx.next_deadline() == reference_deadline(tx)
    assert tx.next_deadline() == reference_deadline(tx)


def test_each_change_moves_the_deadline_after_a_poll():
    """Every kind of change after a cached answer is seen (the cache never answers stale)."""
    tx = ArqSender(P)
    (_pdu, b), = tx.offer(b"a", 0.0)
    assert tx.next_deadline() is None                            # queued: no timer runs
    b.lost()
    assert tx.next_deadline() == 0.0 == reference_deadline(tx)   # dropped: at once
    b.on_air(0.1)
    assert tx.next_deadline() == 0.1 + P.rto_initial
    b.queued = True                                              # a copy waits again
    assert tx.next_deadline() == 0.1 + P.lifetime
    b.queued = False
    b.sends = 3                                                  # two doublings
    assert tx.next_deadline() == 0.1 + 4 * P.rto_initial
    b.last_tx = 0.5
    assert tx.next_deadline() == 0.5 + 4 * P.rto_initial
    b.first_tx = -1.2
    assert tx.next_deadline() == -1.2 + P.lifetime
    tx.rto = 0.01
    assert tx.next_deadline() == 0.5 + 4 * 0.01
    tx.p = Q
    assert tx.next_deadline() == -1.2 + Q.lifetime
    tx.blocks.clear()
    assert tx.next_deadline() is None
    tx.discard_to, tx._discard_at = 3, 1.0
    assert tx.next_deadline() == 1.0 + 0.01
    tx.blocks = {}                                               # not a tracked map: never cached
    tx.blocks[0] = TxBlock(0, b"x", last_tx=2.0, sends=1)
    assert tx.next_deadline() == reference_deadline(tx) == 1.0 + 0.01
    tx.blocks[1] = TxBlock(1, b"y")
    assert tx.next_deadline() == 0.0


def test_a_repeated_discard_alone_moves_the_deadline():
    """A DISCARD repeated by the timer, nothing else changing, moves the deadline by an rto."""
    tx = ArqSender(SHORT)
    (_pdu, b), = tx.offer(b"a", 0.0)
    b.on_air(0.0)
    (_pdu, b), = tx.on_timer(0.3)                      # retransmitted, lost on the way
    b.on_air(0.3)
    assert [p[1] for p in tx.on_timer(0.6)] == [None]  # lifetime over: DISCARD
    assert tx.next_deadline() == 0.6 + tx.rto == reference_deadline(tx)
    assert [p[1] for p in tx.on_timer(0.9)] == [None]  # not confirmed: repeated
    assert tx.next_deadline() == 0.9 + tx.rto == reference_deadline(tx)
    assert tx.on_feedback(ArqFeedback(1), 1.0) == []   # confirmed (no block acknowledged)
    assert tx.next_deadline() is None


def test_many_blocks_on_the_air_between_polls(monkeypatch):
    """Past MAX_AIRED blocks gone on the air since the last poll, the sender walks them all;
    a block acknowledged while its copy waited does not count when that copy goes out."""
    monkeypatch.setattr(arq_blocks, "MAX_AIRED", 2)
    tx = ArqSender(replace(P, window=16))
    blocks = [b for i in range(6) for _pdu, b in tx.offer(b"%d" % i, 0.0)]
    assert tx.next_deadline() is None
    blocks[0].on_air(0.3)
    assert tx.next_deadline() == 0.3 + P.rto_initial == reference_deadline(tx)
    for i, b in enumerate(blocks[1:5]):
        b.on_air(0.2 - 0.01 * i)
    assert tx._changed.flag
    assert tx.next_deadline() == reference_deadline(tx) == 0.17 + P.rto_initial
    tx.on_feedback(ArqFeedback(0, b"\x08"), 0.25)             # block 5 acknowledged, queued
    assert tx.next_deadline() == reference_deadline(tx)
    blocks[5].on_air(0.01)                               # its copy goes out: no longer held
    assert tx.next_deadline() == reference_deadline(tx)


def test_a_block_put_where_the_next_one_goes_is_replaced_with_notice():
    """A block someone put at the next SN is replaced by the new block, and that is a change."""
    tx = ArqSender(P)
    assert tx.next_deadline() is None
    tx.blocks[0] = TxBlock(0, b"old", first_tx=0.0, last_tx=0.0, sends=1)
    assert tx.next_deadline() == P.rto_initial
    (_pdu, b), = tx.offer(b"new", 0.1)
    assert tx.blocks[0] is b and tx.next_deadline() is None == reference_deadline(tx)


def test_a_block_written_before_it_was_ever_sent_fails_as_before():
    """``sends`` 0 with a ``last_tx`` (only by hand): the backoff shift raised ValueError, and
    raises again at the next poll (no answer was kept), walked or folded in."""
    tx = ArqSender(P)
    tx.blocks[0] = TxBlock(0, b"x", last_tx=1.0)
    for f in (tx.next_deadline, tx.next_deadline, lambda: reference_deadline(tx)):
        with pytest.raises(ValueError):
            f()
    tx = ArqSender(P)
    assert tx.next_deadline() is None
    tx.blocks[0] = b = TxBlock(0, b"x", queued=True, changed=tx._changed)
    assert tx.next_deadline() is None
    b.on_air(1.0)                                  # folded in: the same shift, the same error
    for f in (tx.next_deadline, tx.next_deadline, lambda: reference_deadline(tx)):
        with pytest.raises(ValueError):
            f()


@dataclass(eq=False)
class _OldTxBlock:
    """TxBlock as it was (a dataclass), for its repr and equality."""

    sn: int
    sdu: bytes = field(repr=False)
    first_tx: float | None = None
    last_tx: float | None = None
    prev_tx: float | None = None
    sends: int = 0
    queued: bool = False


def test_txblock_keeps_its_dataclass_face():
    """Same constructor, repr, identity equality and hashing as the dataclass it was."""
    args = (5, b"sdu", 1.0, 2.0, 0.5, 3, True)
    new, old = TxBlock(*args), _OldTxBlock(*args)
    assert repr(new).replace("TxBlock", "X") == repr(old).replace("_OldTxBlock", "X")
    assert repr(TxBlock(1, b"")) == repr(_OldTxBlock(1, b"")).replace("_OldTxBlock", "TxBlock")
    assert new != TxBlock(*args) and new == new and len({new, TxBlock(*args)}) == 2
    assert (new.sn, new.sdu, new.first_tx, new.last_tx, new.prev_tx, new.sends, new.queued) \
        == args
    new.on_air(4.0)
    old.queued = False
    assert (new.prev_tx, new.last_tx, new.first_tx, new.queued) == (2.0, 4.0, 1.0, False)
    new.lost()
    assert (new.last_tx, new.queued) == (None, False)


def test_a_pickled_or_copied_sender_keeps_following_its_changes():
    """A role's snapshot (pickle, any protocol) or deepcopy: the copy's blocks and map tell
    the copy, not the original, and its deadline stays the walk's."""
    conn = ArqConnection(P)
    for i in range(5):
        for _pdu, b in conn.tx.offer(b"x%d" % i, 0.0):
            if i % 2:
                b.on_air(0.1 * i)
    want = reference_deadline(conn.tx)
    assert conn.tx.next_deadline() == want
    copies = [pickle.loads(pickle.dumps(conn, protocol=p))
              for p in range(pickle.HIGHEST_PROTOCOL + 1)] + [copy.deepcopy(conn)]
    for c in copies:
        tx = c.tx
        assert tx.next_deadline() == want
        tx.blocks[0].on_air(0.05)                    # the copy changes, the original not
        assert tx.next_deadline() == reference_deadline(tx) != want
        tx.blocks.clear()
        assert tx.next_deadline() is None
        assert conn.tx.next_deadline() == want == reference_deadline(conn.tx)


def reference_on_timer(tx: ArqSender, now: float) -> list:
    """ArqSender.on_timer as it was: every block through its properties, all sorted by SN."""
    from stack.arq import ArqDiscard

    out: list = []
    expired = [b for b in tx.blocks.values()
               if b.first_tx is not None and now >= b.first_tx + tx.p.lifetime]
    for b in expired:
        del tx.blocks[b.sn]
        tx.stats["discarded"] += 1
        tx.stats["discarded_bytes"] += len(b.sdu)
    if expired:
        top = max(b.sn for b in expired) + 1
        tx.discard_to = max(tx.discard_to or 0, top)
        tx.base = max(tx.base, top)
        while tx.base < tx.next_sn and tx.base not in tx.blocks:
            tx.base += 1
        tx._discard_at = None
    if tx.discard_to is not None and (tx._discard_at is None or now >= tx._discard_at + tx.rto):
        tx._discard_at = now
        out.append((ArqDiscard(tx.discard_to % BSN_MODULUS).encode(), None))
    for b in sorted(tx.blocks.values(), key=lambda x: x.sn):
        if b.queued:
            continue
        if b.last_tx is None or now >= b.last_tx + tx._timeout(b):
            out.append(tx._send(b))
    return out + tx._fill(now)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["offer", "offer", "air", "lost", "unqueue", "tick",
                                           "tick", "ack", "resend_all"]),
                          st.integers(0, 9),
                          # binary fractions too: a block due exactly at a timer's time
                          st.one_of(st.floats(0.0, 0.4), st.sampled_from([0.0, 0.125, 0.25]))),
                max_size=80),
       st.sampled_from([P, SHORT, SLOW, EXACT]))
def test_on_timer_sends_what_the_sorted_walk_through_every_block_sent(program, params):
    """ArqSender.on_timer (one pass over the block fields, only the due blocks sorted) and the
    walk it replaced, driven in lockstep through the same random program on two senders, give
    the same PDUs for the same blocks in the same order, and leave the same state."""
    a, b = ArqConnection(params).tx, ArqConnection(params).tx
    now = 0.0
    for op, k, dt in program:
        now += dt
        outs = []
        for tx, timer in ((a, ArqSender.on_timer), (b, reference_on_timer)):
            if op == "offer":
                out = tx.offer(b"s%d" % k, now)
            elif op == "air":
                out = []
                for blk in list(tx.blocks.values())[k % 4::2]:
                    if blk.queued:
                        blk.on_air(now)
            elif op == "lost":
                out = []
                for blk in list(tx.blocks.values())[k % 3:k % 3 + 1]:
                    blk.lost()
            elif op == "unqueue":
                out = []
                for blk in list(tx.blocks.values())[k % 2::3]:
                    blk.queued = False
            elif op == "tick":
                out = timer(tx, now)
            elif op == "ack":
                out = tx.on_feedback(ArqFeedback((tx.base + k % 4) % BSN_MODULUS, _bitmap(k)),
                                     now)
            else:
                out = tx.resend_all(now, sent_before=now - dt / 2 if k % 2 else None)
            for _pdu, blk in out:
                if blk is not None and k % 2:
                    blk.on_air(now)
            outs.append([(pdu, None if blk is None else blk.sn) for pdu, blk in out])
        assert outs[0] == outs[1]
        assert a.stats == b.stats and (a.base, a.next_sn, a.discard_to, a._discard_at) == \
            (b.base, b.next_sn, b.discard_to, b._discard_at)
        assert [(x.sn, x.sends, x.queued, x.last_tx, x.first_tx) for x in a.blocks.values()] == \
            [(x.sn, x.sends, x.queued, x.last_tx, x.first_tx) for x in b.blocks.values()]
