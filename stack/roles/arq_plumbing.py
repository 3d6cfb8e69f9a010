"""ARQ plumbing of the roles (docs/roles.md §11): connections by key, what goes out and comes
in on them, feedback (piggybacked on data where it can be), timers, and what a path change or a
new entry does to them. :class:`ArqMixin` is half of :class:`stack.roles.base.RoleBase`, kept
apart so that each file does one job; it uses the send path's queue (``_out``, ``_queue``:
:class:`stack.roles.sendpath.SendPath`) and deadlines (``_set_deadline``), and the roles name
their connections and say how an ARQ PDU is
carried (``_arq_transmit``, ``_arq_wrap``, ``_arq_deliver``).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from stack.arq import (
    BSN_MODULUS,
    ArqConnection,
    ArqData,
    ArqDataAck,
    ArqDiscard,
    ArqFeedback,
    ArqParams,
    TxBlock,
    decode_arq,
    over_hops,
)
from stack.errors import MalformedError
from stack.mpdu import MAX_PROTECTED_PAYLOAD, PROTECTED_OVERHEAD
from stack.roles.link import MpduQueue, PendingMpdu


@dataclass(eq=False, slots=True)
class _ArqTag:
    """Marks a queued MPDU that carries an ARQ PDU of connection ``key`` (``block`` None: a
    feedback), so the output path can tell the ARQ sender when it went on the air."""

    key: Hashable
    block: TxBlock | None
    queued: bool = True
    plain: bool = True   # still unsealed in the queue: its payload may be rewritten

    def on_air(self, now: float) -> None:
        self.queued = False
        self.plain = False
        if self.block is not None:
            self.block.on_air(now)


HOP = "hop"
#: At an AMS, ``(LEFT, fid, station)``: the access hop of a station it just left, receiving
#: only, for a grace after the handover (:meth:`SubscriberRole._hold_left`).
LEFT = "left"
"""First item of the key of a per-hop ARQ connection (distributed mode, docs/roles.md §11): at
the ABS ``(HOP, ars, ams, fid)``, at an AMS ``(HOP, fid)``; an ARS names its two hops
``(ACCESS, ams, fid)`` and ``(RELAY, ams, fid)``."""
ACCESS = "access"
RELAY = "relay"


def arq_layer(key: Hashable) -> str:
    """``"hop"`` for a per-hop ARQ connection's key, ``"e2e"`` for an end-to-end one (for
    reports: where retransmissions happened)."""
    return "hop" if isinstance(key, tuple) and isinstance(key[0], str) else "e2e"


def arq_of(key: Hashable, station: int) -> bool:
    """ARQ connection ``key`` of the ABS concerns ``station`` (end to end or its relay hop)."""
    return isinstance(key, tuple) and (key[0] == station or (key[0] == HOP and key[2] == station))


class ArqMixin:
    """The ARQ half of :class:`stack.roles.base.RoleBase` (see the module doc)."""

    _out: dict[int, MpduQueue]
    _set_deadline: Callable[[Hashable, float | None], None]

    def _init_arq(self) -> None:
        # ARQ (docs/roles.md §11): None = off; connections by key (the subclass names them)
        self._arq_params: ArqParams | None = None
        self._arq_per_hop = False
        self._arq: dict[Hashable, ArqConnection] = {}
        # counts of the connections closed or reset (a hop ends with every handover), by
        # (layer, side): ("hop" | "e2e", "tx" | "rx")
        self.arq_retired: dict[tuple[str, str], Counter[str]] = {
            (layer, side): Counter() for layer in ("hop", "e2e") for side in ("tx", "rx")}
        self._arq_fb_due: dict[Hashable, None] = {}
        self._arq_fb_queued: dict[Hashable, tuple[int, PendingMpdu]] = {}
        # per connection, its data MPDUs queued unsealed, oldest first: hosts a feedback can
        # ride on (``_arq_piggyback``); pruned of what left the queue whenever one is added
        self._arq_hosts: dict[Hashable, deque[tuple[int, PendingMpdu]]] = {}
        # connections whose path changed: resent once the far end's status report is in
        self._arq_await: dict[Hashable, float] = {}   # path changed at, awaiting a report
        self.mpdu_limit: int | None = None
        """Largest MPDU the MAC below can carry (None: no limit): a piggybacked feedback never
        grows a queued MPDU past it."""
        self.arq_stats: Counter[str] = Counter()     # ARQ connections that were reset, closed

    def configure_arq(self, params: ArqParams | None, *, per_hop: bool = False) -> None:
        """Turn ARQ on (``params``) or off before any data flowed (the runtime's way to set
        what the role's config did not; every station of a cell must agree). ``per_hop``: in
        distributed mode each hop through an ARS runs its own ARQ under the end-to-end one
        (docs/roles.md §11); the ABS and an ARS take it from their security mode."""
        if self._arq:
            raise MalformedError("ARQ cannot be reconfigured once connections exist")
        self._arq_params = params
        self._arq_per_hop = params is not None and per_hop and self._may_run_hops()

    def _may_run_hops(self) -> bool:
        """Whether per-hop ARQ applies to this role (distributed mode; the AMS is told)."""
        return True

    @property
    def arq_per_hop(self) -> bool:
        """True when the hops through an ARS run their own ARQ (distributed mode)."""
        return self._arq_per_hop

    @property
    def arq_enabled(self) -> bool:
        """True when this role runs ARQ on its data connections."""
        return self._arq_params is not None

    @property
    def arq_params(self) -> ArqParams | None:
        """The ARQ settings of this role's data connections (None: ARQ off)."""
        return self._arq_params

    def arq_connections(self) -> dict[Hashable, ArqConnection]:
        """The ARQ connections this role holds, by key (read-only use: tests, reports)."""
        return self._arq

    def _arq_conn(self, key: Hashable) -> ArqConnection:
        conn = self._arq.get(key)
        if conn is None:
            conn = self._arq[key] = ArqConnection(self._arq_params_for(key))
        return conn

    def _arq_over_hops(self, key: Hashable) -> bool:
        """End-to-end connection ``key`` runs over hops that each run ARQ (the roles that
        can say so override this)."""
        return False

    def _arq_params_for(self, key: Hashable) -> ArqParams:
        assert self._arq_params is not None
        return over_hops(self._arq_params) if self._arq_over_hops(key) else self._arq_params

    def _arq_retune(self, key: Hashable) -> None:
        """The path of connection ``key`` changed: its timers follow (per hop or direct)."""
        conn = self._arq.get(key)
        if conn is not None:
            conn.retune(self._arq_params_for(key))

    def _arq_retire(self, key: Hashable, conn: ArqConnection) -> None:
        layer = arq_layer(key)
        self.arq_retired[(layer, "tx")].update(conn.tx.stats)
        self.arq_retired[(layer, "rx")].update(conn.rx.stats)

    def _arq_offer(self, key: Hashable, sdu: bytes, now: float) -> None:
        """Send ``sdu`` on ARQ connection ``key`` (numbered, kept until acknowledged)."""
        conn = self._arq_conn(key)
        for pdu, block in conn.tx.offer(sdu, now):
            self._arq_emit(key, pdu, block, now)
        self._arq_arm(key)

    def _arq_emit(self, key: Hashable, pdu: bytes, block: TxBlock | None, now: float) -> None:
        sent = self._arq_transmit(key, pdu, now)
        obj = None if sent is None else sent[1]
        if isinstance(obj, PendingMpdu):
            obj.tag = _ArqTag(key, block)   # its timer starts when it goes on the air
            if block is not None and sent is not None:
                hosts = self._arq_hosts.get(key)
                if hosts is None:
                    hosts = self._arq_hosts[key] = deque()
                while hosts and not hosts[0][1].tag.plain:
                    hosts.popleft()
                hosts.append((sent[0], obj))
                self._arq_fold_tail(key, sent[0], obj)
        elif block is not None:
            block.on_air(now)  # sealed at once, or no path now: the timer retries it

    def _arq_input(self, key: Hashable, payload: bytes, now: float,
                   tag: object = None) -> list[bytes]:
        """An ARQ PDU received on connection ``key`` (authenticated already): returns the SDUs
        now deliverable in order; acknowledgements release and may trigger retransmissions.
        A data block's *tag* comes back with its SDU in the receiver's ``last_tags``."""
        pdu = decode_arq(payload)
        conn = self._arq_conn(key)
        out: list[bytes] = []
        conn.rx.last_tags = []
        if isinstance(pdu, ArqDataAck):   # the feedback first: it may open the window
            self._arq_acked(key, conn, pdu.feedback, now)
            pdu = pdu.data
        if isinstance(pdu, ArqData):
            out = conn.rx.on_data(pdu, now, tag)
            if conn.rx.feedback_due:
                self._arq_fb_due[key] = None
        elif isinstance(pdu, ArqDiscard):
            out = conn.rx.on_discard(pdu, now)
            self._arq_fb_due[key] = None
        elif isinstance(pdu, ArqFeedback):
            self._arq_acked(key, conn, pdu, now)
        self._arq_arm(key)
        return out

    def _arq_acked(self, key: Hashable, conn: ArqConnection, fb: ArqFeedback,
                   now: float) -> None:
        """Apply a feedback to our sender on ``key``. A block it acknowledges whose
        retransmission still waits unsealed in the queue (the timer fired a little before a
        late acknowledgement: a UL grant a frame later) is taken out of the queue again, so a
        spurious retransmission costs no air; a feedback that rode on it is owed again."""
        held = len(conn.tx.blocks)
        for data, block in conn.tx.on_feedback(fb, now):
            self._arq_emit(key, data, block, now)
        if key in self._arq_await:   # the far end's status report after a path change
            moved = self._arq_await.pop(key)
            self._set_deadline(("arqs", key), None)
            self._arq_resend(key, now, sent_before=moved)
        hosts = self._arq_hosts.get(key)
        if not hosts or len(conn.tx.blocks) >= held:
            return
        gone = [(d, x) for d, x in hosts if x.tag.plain and x.tag.block is not None
                and conn.tx.blocks.get(x.tag.block.sn) is not x.tag.block]
        for dst, obj in gone:
            q = self._out.get(dst, [])
            for i, x in enumerate(q):
                if x is obj:
                    del q[i]
                    break
            obj.tag.plain = obj.tag.queued = False
            obj.tag.block.queued = False
            self.arq_stats["retransmissions_unqueued"] += 1
            fbq = self._arq_fb_queued.get(key)
            if fbq is not None and fbq[1] is obj:
                del self._arq_fb_queued[key]
                self._arq_fb_due[key] = None
        if gone:
            self._arq_hosts[key] = deque(h for h in hosts if h[1].tag.plain)

    def _arq_flush(self, now: float) -> None:
        """One feedback per connection that received blocks since the last one: piggybacked
        on a data block of the connection waiting in the queue where one is, else an MPDU of
        its own. A feedback still waiting unsealed in the queue is rewritten in its place
        with the newer one (one that cannot be rewritten -- sealed end to end inside a relay
        MPDU -- stays, and the newer one queues behind)."""
        due, self._arq_fb_due = self._arq_fb_due, {}
        for key in due:
            conn = self._arq.get(key)
            if conn is None:
                continue
            old = self._arq_fb_queued.pop(key, None)
            fb = conn.rx.feedback()
            if old is not None and old[1].tag.plain and old[1].tag.block is None:
                payload = self._arq_wrap(key, fb.encode())
                if payload is not None:   # rewritten where it waits: moved to the back of a
                    self._rewrite(old[0], old[1], payload)  # busy queue each time, it would starve
                    self._arq_fb_queued[key] = old
                    continue
            host = self._arq_piggyback(key, fb)
            if host is not None:
                self._arq_fb_queued[key] = host
                continue
            sent = self._arq_transmit(key, fb.encode(), now)
            self.arq_stats["feedback_mpdus"] += 1
            if sent is not None and isinstance(sent[1], PendingMpdu):
                sent[1].tag = _ArqTag(key, None)
                self._arq_fb_queued[key] = (sent[0], sent[1])

    def _arq_fold_tail(self, key: Hashable, dst: int, obj: PendingMpdu) -> None:
        """A block of ``key`` was just queued right behind a FEEDBACK MPDU of the same
        connection: the feedback rides on the block instead (adjacent, it goes out no later)
        and its MPDU leaves the queue, so what this station reports queued and asks room for
        is what it will send."""
        old = self._arq_fb_queued.get(key)
        q = self._out.get(dst)
        if old is None or old[0] != dst or not q or len(q) < 2 or q[-1] is not obj \
                or q[-2] is not old[1] or not old[1].tag.plain or old[1].tag.block is not None:
            return   # (a block carrying the feedback already is no FEEDBACK MPDU to fold)
        conn = self._arq.get(key)
        host = None if conn is None else self._arq_piggyback(key, conn.rx.feedback())
        if host is not None:
            del q[-2]
            old[1].tag.plain = old[1].tag.queued = False
            self._arq_fb_queued[key] = host
            self.arq_stats["feedback_mpdus"] -= 1

    def _arq_fold(self, dst: int, items: list[bytes | PendingMpdu], cut: int) -> bool:
        """FEEDBACK MPDUs among the first ``cut`` queue entries to ``dst`` (what goes out in
        this frame) whose connection also has a block among them ride on that block instead,
        and leave the queue: the feedback goes out no later and the frame only shrinks. (It
        went alone because the block was queued after it: an AMS's UL slot then lost the room
        of a whole block to it.) Returns True when a feedback was folded."""
        head = {id(x) for x in items[:cut]}
        gone = set()
        for key, (d, f) in list(self._arq_fb_queued.items()):
            if d != dst or f.tag.block is not None or not f.tag.plain or id(f) not in head:
                continue
            hosts = self._arq_hosts.get(key)
            while hosts and not hosts[0][1].tag.plain:
                hosts.popleft()
            conn = self._arq.get(key)
            if not hosts or conn is None or id(hosts[0][1]) not in head:
                continue
            host = self._arq_piggyback(key, conn.rx.feedback())
            if host is None:
                continue
            f.tag.plain = f.tag.queued = False
            self._arq_fb_queued[key] = host
            self.arq_stats["feedback_mpdus"] -= 1
            gone.add(id(f))
        if gone:
            items[:] = [x for x in items if id(x) not in gone]
        return bool(gone)

    def _rewrite(self, dst: int, obj: PendingMpdu, payload: bytes) -> None:
        """Give ``obj``, waiting unsealed in the queue to ``dst``, a new payload (the queue
        counts its new length: :meth:`stack.roles.link.MpduQueue.rewrite`)."""
        q = self._out.get(dst)
        if q is None:
            obj.payload = payload
        else:
            q.rewrite(obj, payload)

    def _arq_piggyback(self, key: Hashable, fb: ArqFeedback) -> tuple[int, PendingMpdu] | None:
        """Ride ``fb`` on the oldest data block of ``key`` still unsealed in the queue (a
        feedback it carried already is replaced); None when none waits or the MPDU would
        outgrow :attr:`mpdu_limit`."""
        hosts = self._arq_hosts.get(key)
        while hosts and not hosts[0][1].tag.plain:
            hosts.popleft()
        if not hosts:
            return None
        dst, obj = hosts[0]
        block = obj.tag.block
        payload = self._arq_wrap(key, ArqDataAck(ArqData(block.sn % BSN_MODULUS, block.sdu),
                                                 fb).encode())
        limit = min(self.mpdu_limit or MAX_PROTECTED_PAYLOAD + PROTECTED_OVERHEAD,
                    MAX_PROTECTED_PAYLOAD + PROTECTED_OVERHEAD)
        if payload is None or len(payload) + PROTECTED_OVERHEAD > limit:
            return None
        self._rewrite(dst, obj, payload)
        self.arq_stats["feedback_piggybacked"] += 1
        return dst, obj

    def _arq_wrap(self, key: Hashable, pdu: bytes) -> bytes | None:
        """The payload of a data MPDU of connection ``key`` that carries ARQ PDU ``pdu``, as
        :meth:`_arq_transmit` queues it (its relay encapsulation included); None where it
        cannot be rewritten (e.g. sealed end to end inside a relay MPDU)."""
        return None

    def _arq_timer(self, key: Hashable, now: float) -> None:
        conn = self._arq.get(key)
        if conn is None:
            return
        for pdu, block in conn.tx.on_timer(now):
            self._arq_emit(key, pdu, block, now)
        sdus = conn.rx.on_timer(now)
        if sdus or conn.rx.feedback_due:
            self._arq_fb_due[key] = None
        if sdus:
            self._arq_deliver(key, sdus, now)
        self._arq_arm(key)

    def _arq_arm(self, key: Hashable) -> None:
        conn = self._arq.get(key)
        self._set_deadline(("arq", key), None if conn is None else conn.next_deadline())

    def _arq_on_air(self, items: list[bytes | PendingMpdu], now: float) -> None:
        """The queue entries of a frame leave the queue: their ARQ timers start now."""
        keys = {}
        for x in items:
            tag = x.tag if isinstance(x, PendingMpdu) else None
            if tag is not None:
                tag.on_air(now)
                keys[tag.key] = None
        for key in keys:
            self._arq_arm(key)

    def _arq_path_changed(self, key: Hashable, now: float) -> None:
        """The path of connection ``key`` changed (a handover), as LTE's PDCP status report
        does it: our receiver's feedback goes out at once on the new path, and what our
        sender holds unacknowledged goes again only once the far end's own report is in
        (:meth:`_arq_acked`), or after a quarter of ``rto_max`` without one. Resending all
        at once put every block the far end already had -- up to a quarter window, its
        acknowledgements being that coarse over hops -- on the new path ahead of new data
        (239 ms of interruption with 10 ms frames and 500-byte packets)."""
        conn = self._arq.get(key)
        if conn is None:
            return
        self._arq_fb_due[key] = None
        if not conn.tx.blocks:
            return
        assert self._arq_params is not None
        self._arq_await[key] = now
        self._set_deadline(("arqs", key), now + self._arq_params.rto_max / 4)

    def _arq_status_late(self, key: Hashable, now: float) -> None:
        """No status report came after a path change: send again what is unacknowledged."""
        if key in self._arq_await:
            self._arq_resend(key, now, sent_before=self._arq_await.pop(key))

    def _arq_resend_carried(self, key: Hashable, pdus: Iterable[bytes], now: float) -> None:
        """End-to-end connection ``key``'s blocks that a hop which ended carried (its ARQ
        PDUs *pdus*, never delivered by it) go out again now on the new path: waiting for
        the far end's status report to say so costs a UL grant and two hops."""
        conn = self._arq.get(key)
        if conn is None:
            return
        bsns = []
        for pdu in pdus:
            try:
                d = decode_arq(pdu)
            except MalformedError:
                continue
            d = d.data if isinstance(d, ArqDataAck) else d
            if isinstance(d, ArqData):
                bsns.append(d.bsn)
        self._arq_resent_after_move(key, conn.tx.resend(bsns, now) if bsns else [], now)

    def _arq_resend(self, key: Hashable, now: float, *, sent_before: float | None = None
                    ) -> None:
        """The path of connection ``key`` changed (handover): the unacknowledged blocks go out
        again now on the new path (the receiver drops the copies it already has) -- those last
        sent before ``sent_before``, the change, when given: a block sent since went on the new
        path, and its own timer decides about it."""
        conn = self._arq.get(key)
        if conn is None:
            return
        self._arq_resent_after_move(key, conn.tx.resend_all(now, sent_before=sent_before), now)

    def _arq_resent_after_move(self, key: Hashable, out: list[tuple[bytes, TxBlock | None]],
                               now: float) -> None:
        """Put what a move made connection ``key`` send again on the air, counted."""
        self.arq_stats["resent_after_move"] += len(out)
        self.arq_stats["resent_bytes_after_move"] += sum(len(b.sdu) for _p, b in out
                                                         if b is not None)
        for pdu, block in out:
            self._arq_emit(key, pdu, block, now)
        self._arq_arm(key)

    def _arq_unqueue(self, dst: int, keep: Callable[[Hashable], bool]) -> None:
        """Drop from the queue to ``dst`` the (unsealed) ARQ MPDUs of the connections ``keep``
        rejects; their blocks go out again by :meth:`_arq_resend` or their timer."""
        q = self._out.get(dst)
        if not q:
            return
        rest: list[bytes | PendingMpdu] = []
        for x in q:
            tag = x.tag if isinstance(x, PendingMpdu) else None
            if tag is not None and not keep(tag.key):
                if tag.block is not None:
                    tag.block.lost()
                tag.queued = tag.plain = False
                self.arq_stats["unqueued"] += 1
                continue
            rest.append(x)
        self._out[dst] = MpduQueue(rest)

    def _arq_forget(self, key: Hashable) -> ArqConnection | None:
        """Drop connection ``key`` and every table entry about it (feedback owed or queued,
        piggyback hosts, a status report awaited); returns the connection."""
        for table in (self._arq_fb_due, self._arq_fb_queued, self._arq_hosts, self._arq_await):
            table.pop(key, None)
        self._set_deadline(("arqs", key), None)
        return self._arq.pop(key, None)

    def _arq_reset(self, key: Hashable, now: float) -> None:
        """Start connection ``key`` afresh (the peer entered anew: its ARQ state is gone); the
        SDUs not yet acknowledged are offered again on the new connection, nothing dropped."""
        conn = self._arq_forget(key)
        if conn is None:
            return
        self._arq_retire(key, conn)
        self.arq_stats["reset"] += 1
        pending = [b.sdu for b in sorted(conn.tx.blocks.values(), key=lambda b: b.sn)]
        pending += list(conn.tx.waiting)
        for b in conn.tx.blocks.values():
            b.queued = False  # a copy still queued belongs to the old connection
        for sdu in pending:
            self._arq_offer(key, sdu, now)
        self._arq_arm(key)

    def _arq_close(self, key: Hashable) -> None:
        """Forget connection ``key`` (its peer is gone for good); what it held is counted."""
        conn = self._arq_forget(key)
        self._set_deadline(("arq", key), None)
        if conn is not None:
            self._arq_retire(key, conn)
            self.arq_stats["closed"] += 1
            self.arq_stats["closed_unacked"] += conn.tx.unacked()

    def _arq_transmit(self, key: Hashable, pdu: bytes, now: float
                      ) -> tuple[int, bytes | PendingMpdu] | None:
        """Queue one ARQ PDU as a protected data MPDU of connection ``key``; returns the
        neighbour and the queued object, or None when there is no path now."""
        raise NotImplementedError

    def _arq_deliver(self, key: Hashable, sdus: list[bytes], now: float) -> None:
        """SDUs released by a receiver outside a frame (a purged gap)."""
        raise NotImplementedError
