"""ARQ, 802.16m style: numbered blocks, selective ACK bitmaps, retransmission timers, a window,
a block lifetime and in-order delivery with duplicates removed (docs/roles.md §11).

Sans-I/O like the roles: :class:`ArqSender` and :class:`ArqReceiver` take SDUs, PDUs and a time
and return PDUs to send and SDUs to deliver; deadlines are polled. A connection is one
direction of one FID between two ends; each end holds a sender for what it sends and a
receiver for what it gets.

**Where ARQ sits** [D]: an ARQ PDU is the *plaintext* of a protected data MPDU of its
connection. Every transmission -- a first one, a retransmission, a feedback -- is therefore a
new MPDU sealed when it goes on the air, with its own PN under the TEK then in use, and the
feedback is authenticated and replay-protected exactly like the data it acknowledges. (16m
carries the BSN in a clear extended header and the feedback in its own header or message; here
both are inside the CCM envelope, so a stranger can neither forge an ACK nor read the BSNs.)

The wire format and its codec are :mod:`stack.arq_pdu`; the sender's block records (and
what tells it to recompute its deadline) are :mod:`stack.arq_blocks`. Both are re-exported here.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from stack.arq_blocks import MAX_AIRED, TxBlock, _BlockMap, _Changed  # noqa: F401
from stack.arq_pdu import (  # noqa: F401 - the wire format, re-exported (it lived here)
    BSN_BITS,
    BSN_MODULUS,
    DATA,
    DATA_ACK,
    DATA_OVERHEAD,
    DISCARD,
    FEEDBACK,
    MAX_BITMAP_BYTES,
    MAX_WINDOW,
    ArqData,
    ArqDataAck,
    ArqDiscard,
    ArqFeedback,
    ArqPdu,
    decode_arq,
)
from stack.errors import MalformedError

MAX_BACKOFF_DOUBLINGS = 3
"""How often the timeout of one block doubles (then ``rto_max`` caps it)."""

_BACKOFF = tuple(1 << k for k in range(MAX_BACKOFF_DOUBLINGS + 1))


@dataclass(frozen=True)
class ArqParams:
    """ARQ settings of a connection (both ends must agree on ``window``).

    ``rto_initial``: retransmission timeout before any round trip was measured; afterwards
    ``srtt + 4 * rttvar`` (RFC 6298 style, Karn's rule), kept within ``rto_min``..``rto_max``
    and doubled per retransmission of a block, at most ``MAX_BACKOFF_DOUBLINGS`` times.
    ``lifetime``: a block not acknowledged this long after its first transmission is
    discarded (and counted).
    ``purge``: a receiver holding blocks behind a gap for this long delivers them and skips
    the gap (a lost DISCARD). ``ack_delay``: an in-order block is acknowledged at the latest
    this long after it arrived, or when ``ack_every`` in-order blocks arrived since the last
    acknowledgement (2: every second one at once, as TCP's delayed ACK); a gap, a duplicate or
    a DISCARD is acknowledged at once (``ack_delay`` 0: every frame).
    """

    window: int = 256
    ack_delay: float = 0.0
    rto_initial: float = 0.5
    rto_min: float = 0.03
    rto_max: float = 2.0
    lifetime: float = 10.0
    purge: float = 12.0
    ack_every: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.window <= MAX_WINDOW:
            raise MalformedError(f"ARQ window must lie in 1..{MAX_WINDOW}, got {self.window}")
        if not 0 < self.rto_min <= self.rto_initial <= self.rto_max:
            raise MalformedError("ARQ timeouts need 0 < rto_min <= rto_initial <= rto_max")
        if not self.ack_delay >= 0:
            raise MalformedError("ARQ ack_delay must be >= 0")
        if not self.lifetime > 0 or not self.purge > 0:
            raise MalformedError("ARQ lifetime and purge must be > 0")
        if not 1 <= self.ack_every <= self.window:
            raise MalformedError("ARQ ack_every must lie in 1..window")


def over_hops(p: ArqParams) -> ArqParams:
    """The end-to-end settings of a connection whose hops each run their own ARQ (distributed
    mode through an ARS, docs/roles.md §11). Each hop recovers its own air losses within its
    round trip, so the end-to-end layer keeps blocks only for a path that ends (handover,
    restart: sent again at once on the new path) or a block a hop gave up (a gap in the
    end-to-end feedback: sent again at once). Its timer waits half a block lifetime, for a lost
    tail only -- a block waiting in a busy relay's queue or behind a UL grant is not lost (as
    LTE's PDCP over RLC) -- and it acknowledges every quarter window or after a quarter of the
    hop's longest timeout (its feedback only releases what the sender retains: every one is a
    hop block of its own, acknowledged in turn)."""
    rto = max(p.rto_max, p.lifetime / 2)
    return replace(p, rto_initial=rto, rto_min=rto, rto_max=max(rto, p.lifetime),
                   ack_delay=max(p.ack_delay, p.rto_max / 4),
                   ack_every=max(1, p.window // 4))


# -- sender -----------------------------------------------------------------------------------
def _sn(b: TxBlock) -> int:
    return b.sn


class ArqSender:
    """Send side of one ARQ connection. :meth:`offer`, :meth:`on_feedback` and :meth:`on_timer`
    return the PDUs to transmit now as ``(pdu, block)`` (block None for a DISCARD)."""

    def __init__(self, params: ArqParams) -> None:
        self.p = params
        self.base = 0            # lowest SN neither acknowledged nor discarded
        self.next_sn = 0
        self._changed = _Changed()
        self.blocks: dict[int, TxBlock] = _BlockMap(self._changed)
        self.waiting: deque[bytes] = deque()   # SDUs beyond the window
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.min_rtt: float | None = None
        self.rto = params.rto_initial
        self.discard_to: int | None = None     # DISCARD announced, not yet confirmed
        self._discard_at: float | None = None
        self.stats: Counter[str] = Counter()
        # what the last next_deadline() found, and what it was computed from besides the
        # blocks (assigned wholesale, so compared by identity)
        self._deadline: float | None = None
        self._deadline_of: tuple[object, ...] = ()

    # what the station asks
    def offer(self, sdu: bytes, now: float) -> list[tuple[bytes, TxBlock | None]]:
        """Queue one SDU; a block goes out at once when the window allows."""
        self.waiting.append(bytes(sdu))
        self.stats["sdus"] += 1
        return self._fill(now)

    def unacked(self) -> int:
        """Blocks sent and not yet acknowledged, plus SDUs waiting for the window."""
        return len(self.blocks) + len(self.waiting)

    def _fill(self, now: float) -> list[tuple[bytes, TxBlock | None]]:
        out = []
        blocks = self.blocks
        while self.waiting and self.next_sn - self.base < self.p.window:
            b = TxBlock(self.next_sn, self.waiting.popleft(), changed=self._changed)
            if b.sn in blocks:
                blocks[b.sn] = b
            else:   # a new block, queued and never sent, moves no deadline: nobody is told
                dict.__setitem__(blocks, b.sn, b)
            self.next_sn += 1
            out.append(self._send(b, new=True))
        return out

    def _send(self, b: TxBlock, *, new: bool = False) -> tuple[bytes, TxBlock]:
        b._sends += 1      # the fields behind the properties, and one notice for both
        b._queued = True
        if not new:
            b._touch()
        if b._sends > 1:
            self.stats["retransmissions"] += 1
            self.stats["retransmitted_bytes"] += len(b.sdu)
        self.stats["blocks_sent"] += 1
        self.stats["bytes_sent"] += len(b.sdu)
        return ArqData(b.sn % BSN_MODULUS, b.sdu).encode(), b

    def on_feedback(self, fb: ArqFeedback, now: float) -> list[tuple[bytes, TxBlock | None]]:
        """Acknowledged blocks are released; holes below the highest selectively acknowledged
        block that have been on the air for a round trip are sent again at once."""
        d = (fb.ack_bsn - self.base) % BSN_MODULUS
        if d > self.next_sn - self.base:
            self.stats["stale_feedback"] += 1
            return []
        ack = self.base + d
        acked = [sn for sn in range(self.base, ack)]
        acked += [ack + off for off in fb.acked() if ack + off < self.next_sn]
        for sn in acked:
            b = self.blocks.pop(sn, None)
            if b is None:
                continue
            self.stats["blocks_acked"] += 1
            if b.last_tx is None:
                continue
            if b.sends == 1:  # Karn: only unambiguous samples ...
                self._rtt(now - b.last_tx)
            elif b.queued or (b.prev_tx is not None and self.min_rtt is not None
                              and now - b.last_tx < self.min_rtt):
                # ... or one that can only be for the earlier copy: acknowledged before the
                # retransmission went out, or sooner after it than any round trip ever took.
                # The retransmission was spurious (a late ACK -- a busy relay, a UL grant
                # some frames away -- not a loss: Eifel's idea, RFC 3522, by timing); the
                # sample teaches the timer how long this path's acknowledgements take
                self.stats["spurious_retransmissions"] += 1
                self._rtt(now - (b.last_tx if b.queued else b.prev_tx))  # type: ignore[operator]
        if self.discard_to is not None and ack >= self.discard_to:
            self.discard_to = None
        self.base = max(self.base, ack)
        while self.base < self.next_sn and self.base not in self.blocks:
            self.base += 1
        out = []
        top = max(acked, default=-1)
        holdoff = self.srtt if self.srtt is not None else self.rto
        for sn in range(ack, top):
            b = self.blocks.get(sn)
            if b is not None and not b.queued and b.last_tx is not None \
                    and now >= b.last_tx + holdoff:
                self.stats["fast_retransmissions"] += 1
                out.append(self._send(b))
        return out + self._fill(now)

    def _rtt(self, r: float) -> None:
        self.min_rtt = r if self.min_rtt is None else min(self.min_rtt, r)
        if self.srtt is None:
            self.srtt, self.rttvar = r, r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        self.rto = min(self.p.rto_max, max(self.p.rto_min, self.srtt + 4 * self.rttvar))

    def _timeout(self, b: TxBlock) -> float:
        # a short backoff (x8 at most, then rto_max): a lost burst is not congestion and a long
        # backoff stalls in-order delivery behind one block; but a block still queued at a busy
        # relay (end-to-end ARQ cannot see that queue) must not be resent every rto
        return min(self.p.rto_max, self.rto * (1 << min(b.sends - 1, MAX_BACKOFF_DOUBLINGS)))

    def on_timer(self, now: float) -> list[tuple[bytes, TxBlock | None]]:
        """Retransmit blocks whose timer ran out; discard blocks past their lifetime.

        One pass over the blocks reads their fields (not the properties) and looks each
        timeout up per backoff step (:meth:`_retx_steps`); only the blocks due are sorted,
        into SN order: a window of hundreds of blocks was sorted whole and walked through
        properties on every timer (~1 ms a call on a node that had fallen behind)."""
        out: list[tuple[bytes, TxBlock | None]] = []
        life = self.p.lifetime
        expired = [b for b in self.blocks.values()
                   if b._first_tx is not None and now >= b._first_tx + life]
        for b in expired:
            del self.blocks[b.sn]
            self.stats["discarded"] += 1
            self.stats["discarded_bytes"] += len(b.sdu)
        if expired:
            top = max(b.sn for b in expired) + 1
            self.discard_to = max(self.discard_to or 0, top)
            self.base = max(self.base, top)
            while self.base < self.next_sn and self.base not in self.blocks:
                self.base += 1
            self._discard_at = None
        if self.discard_to is not None and (
                self._discard_at is None or now >= self._discard_at + self.rto):
            # repeated until a feedback confirms it (ACK_BSN at or past it)
            self._discard_at = now
            out.append((ArqDiscard(self.discard_to % BSN_MODULUS).encode(), None))
        steps = self._retx_steps()
        due = [b for b in self.blocks.values() if not b._queued
               and (b._last_tx is None or now >= self._retx_at(b, steps))]
        if len(due) > 1:
            due.sort(key=_sn)
        out += [self._send(b) for b in due]
        return out + self._fill(now)

    def _retx_steps(self) -> list[float]:
        """:meth:`_timeout` per backoff step (``sends - 1`` = 0 .. MAX_BACKOFF_DOUBLINGS)."""
        rto, cap = self.rto, self.p.rto_max
        return [cap if not (x := rto * m) < cap else x for m in _BACKOFF]  # min(cap, x)

    def _retx_at(self, b: TxBlock, steps: list[float]) -> float:
        """When block ``b`` (on the air, ``_last_tx`` set) is due again: its last send plus
        :meth:`_timeout`, looked up in ``steps`` (:meth:`_retx_steps`)."""
        k = b._sends - 1
        top = MAX_BACKOFF_DOUBLINGS
        return b._last_tx + (steps[k] if 0 <= k <= top else steps[top] if k > top  # type: ignore[operator]
                             else self._timeout(b))  # k < 0 raises there

    def next_deadline(self) -> float | None:
        """Earliest time :meth:`on_timer` has work (None: nothing on the air): a block's
        lifetime end or retransmission time, or a DISCARD to repeat. The roles poll this after
        every frame of every connection, so the last answer is kept until a block, the block
        map, the timeout, the settings or the DISCARD state changes."""
        c = self._changed
        of = self._deadline_of
        if not c.flag and of and of[0] is self.rto and of[1] is self.p \
                and of[2] is self.discard_to and of[3] is self._discard_at \
                and of[4] is self.blocks:
            if c.aired:
                self._deadline = self._fold(c.aired)
                c.aired.clear()
            return self._deadline
        best = self._next_deadline()
        c.flag = False
        c.aired.clear()
        # a map put in place of ours (not a _BlockMap) reports no change: never trust it
        tracked = self.blocks if isinstance(self.blocks, _BlockMap) else None
        self._deadline_of = (self.rto, self.p, self.discard_to, self._discard_at, tracked)
        self._deadline = best
        return best

    def _fold(self, aired: list[TxBlock]) -> float | None:
        # the last deadline with the times of blocks that went on the air from the queue since:
        # each kept its lifetime end (or gained one) and gained a retransmission time, nothing
        # else changed, so the earliest is the earlier of the last answer and these
        best = self._deadline
        life = self.p.lifetime
        blocks = self.blocks
        for b in aired:
            if blocks.get(b.sn) is not b:
                continue     # acknowledged or given up since it went out
            f = b._first_tx
            if f is not None:
                w = f + life
                if best is None or w < best:
                    best = w
            if not b._queued:
                t = b._last_tx
                w = 0.0 if t is None else t + self._timeout(b)
                if best is None or w < best:
                    best = w
        return best

    def _next_deadline(self) -> float | None:
        # one pass with the timeout of _timeout() per backoff step looked up, not recomputed
        best: float | None = None
        first: float | None = None
        steps = self._retx_steps()
        retx_at = self._retx_at
        for b in self.blocks.values():
            f = b._first_tx
            if f is not None and (first is None or f < first):
                first = f
            if not b._queued:
                w = 0.0 if b._last_tx is None else retx_at(b, steps)
                if best is None or w < best:
                    best = w
        if first is not None:
            w = first + self.p.lifetime
            best = w if best is None or w < best else best
        if self.discard_to is not None:
            w = (self._discard_at or 0.0) + self.rto
            best = w if best is None or w < best else best
        return best

    def resend(self, bsns: Iterable[int], now: float) -> list[tuple[bytes, TxBlock | None]]:
        """Send again now the unacknowledged blocks numbered *bsns* (BSNs: a path ended with
        them on it, so they are known not to arrive by it); those already queued stay."""
        want = {b % BSN_MODULUS for b in bsns}
        return [self._send(b) for b in sorted(self.blocks.values(), key=lambda x: x.sn)
                if not b.queued and b.sn % BSN_MODULUS in want]

    def resend_all(self, now: float, *, sent_before: float | None = None
                   ) -> list[tuple[bytes, TxBlock | None]]:
        """Send every unacknowledged block again now (after a handover: the path changed); with
        ``sent_before``, only those last sent before it (a block never sent counts)."""
        out = []
        for b in sorted(self.blocks.values(), key=lambda x: x.sn):
            if b.queued:
                continue
            if sent_before is not None and b.last_tx is not None and b.last_tx >= sent_before:
                continue
            out.append(self._send(b))
        return out


# -- receiver ---------------------------------------------------------------------------------
class ArqReceiver:
    """Receive side of one ARQ connection: in-order delivery, duplicates dropped and counted."""

    def __init__(self, params: ArqParams) -> None:
        self.p = params
        self.start = 0                     # lowest SN not delivered (absolute)
        self.buf: dict[int, bytes] = {}    # out-of-order blocks held
        self._tags: dict[int, object] = {}  # what the station noted about a held block
        #: The tags (:meth:`on_data`'s ``tag``, None if none) of the SDUs the last call
        #: returned, in the same order.
        self.last_tags: list[object] = []
        self.gap_since: float | None = None
        self.feedback_due = False
        self.ack_at: float | None = None   # a delayed acknowledgement is due then
        self._fresh = 0                    # in-order blocks since the last feedback
        self.stats: Counter[str] = Counter()

    def _abs(self, bsn: int) -> int:
        d = (bsn - self.start) % BSN_MODULUS
        return self.start + d if d < self.p.window else self.start + d - BSN_MODULUS

    def on_data(self, pdu: ArqData, now: float, tag: object = None) -> list[bytes]:
        """A received block; returns the SDUs now deliverable in order. Sets
        :attr:`feedback_due` when the acknowledgement should go now (see ``ack_delay``).
        *tag* (e.g. the path it came by) is handed back in :attr:`last_tags` with the block's
        SDU when that is delivered."""
        self.last_tags = []
        sn = self._abs(pdu.bsn)
        if sn < self.start or sn in self.buf:
            self.stats["duplicates"] += 1
            self.feedback_due = True   # the sender is retransmitting: tell it at once
            return []
        self.stats["blocks"] += 1
        self.buf[sn] = pdu.sdu
        if tag is not None:
            self._tags[sn] = tag
        out = self._deliver(now)
        self._fresh += 1
        if self.buf or self._fresh >= self.p.ack_every or self.p.ack_delay <= 0:
            self.feedback_due = True   # a gap, or every second block: at once
        elif self.ack_at is None:
            self.ack_at = now + self.p.ack_delay
        return out

    def on_discard(self, pdu: ArqDiscard, now: float) -> list[bytes]:
        """The sender gave up blocks before BSN: deliver what we hold of them, skip the rest."""
        self.feedback_due = True
        d = (pdu.bsn - self.start) % BSN_MODULUS
        if d == 0 or d > self.p.window:
            return []  # old or already applied
        to = self.start + d
        held = sorted(s for s in self.buf if s < to)
        out = [self.buf.pop(sn) for sn in held]
        tags = [self._tags.pop(sn, None) for sn in held]
        self.stats["skipped"] += to - self.start - len(out)
        self.start = to
        out += self._deliver(now)
        self.last_tags = tags + self.last_tags
        return out

    def _deliver(self, now: float) -> list[bytes]:
        out = []
        tags = self.last_tags = []
        while self.start in self.buf:
            out.append(self.buf.pop(self.start))
            tags.append(self._tags.pop(self.start, None) if self._tags else None)
            self.start += 1
        self.stats["delivered"] += len(out)
        self.gap_since = (self.gap_since or now) if self.buf else None
        return out

    def on_timer(self, now: float) -> list[bytes]:
        """Skip a gap held longer than ``purge`` (the sender's DISCARD was lost); a delayed
        acknowledgement whose time came becomes due."""
        if self.ack_at is not None and now >= self.ack_at:
            self.feedback_due = True
        if not self.buf or self.gap_since is None or now < self.gap_since + self.p.purge:
            return []
        first = min(self.buf)
        self.stats["skipped"] += first - self.start
        for sn in [sn for sn in self._tags if sn < first]:
            del self._tags[sn]
        self.start = first
        self.gap_since = None
        return self._deliver(now)

    def next_deadline(self) -> float | None:
        """The delayed acknowledgement's time or the end of the gap's purge time, the earlier."""
        a = self.ack_at
        g = None if self.gap_since is None else self.gap_since + self.p.purge
        return g if a is None else a if g is None or not g < a else g

    def feedback(self) -> ArqFeedback:
        """Cumulative ACK plus bitmap of the blocks held after the first gap."""
        self.feedback_due = False
        self.ack_at = None
        self._fresh = 0
        bits = bytearray()
        if self.buf:
            top = min(max(self.buf) - self.start, 8 * MAX_BITMAP_BYTES)
            bits = bytearray((top + 7) // 8)
            for sn in self.buf:
                off = sn - self.start - 1
                if 0 <= off < 8 * len(bits):
                    bits[off // 8] |= 0x80 >> (off % 8)
        return ArqFeedback(self.start % BSN_MODULUS, bytes(bits))


class ArqConnection:
    """Both directions of one ARQ connection at one end: a sender and a receiver."""

    def __init__(self, params: ArqParams) -> None:
        self.tx = ArqSender(params)
        self.rx = ArqReceiver(params)

    def retune(self, params: ArqParams) -> None:
        """New timer and acknowledgement settings (the path changed: relayed per hop or
        direct); blocks, sequence numbers and the window stay."""
        if params.window != self.tx.p.window:
            raise MalformedError("ARQ window cannot change on a live connection")
        self.tx.p = self.rx.p = params
        self.tx.rto = min(params.rto_max, max(params.rto_min, self.tx.rto))

    def next_deadline(self) -> float | None:
        a, b = self.tx.next_deadline(), self.rx.next_deadline()
        return a if b is None else b if a is None or b < a else a
