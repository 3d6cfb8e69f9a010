"""Common machinery of the roles: output queues, events, rejection counters, retransmissions.

Sans-I/O (docs/roles.md §3): nothing here reads a clock or does I/O. Time only enters through the
``now`` arguments; retransmissions are deadlines reported by :meth:`RoleBase.next_deadline`.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections import Counter, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

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
from stack.errors import MalformedError, SecurityError, UnknownKeyError
from stack.mac import build_burst
from stack.mpdu import MAX_PROTECTED_PAYLOAD, PROTECTED_OVERHEAD
from stack.mpdu import protect as protect_mpdu
from stack.pkm.messages import TekReply, message_class
from stack.roles.config import Lifetimes, Timers
from stack.roles.events import ControlSent, Event, KeysInstalled, PeerLost, Rejected
from stack.roles.framing import FID_CONTROL, frame_bounds, mpdu_fid
from stack.roles.ids import check_station_id, fmt_station
from stack.roles.link import KeyInfo, Link, PendingMpdu

log = logging.getLogger("stack.roles")

MAX_REJECTION_KEYS = 1024
"""Distinct (neighbour, reason) pairs counted in ``rejections_by_link``; past it, rejections
from neighbours not yet listed are counted under ``OTHER_LINKS``."""
OTHER_LINKS = -1

RELAYED = "relayed"
"""Title under which a role counts the control messages it relays on (``air_messages``)."""

MAX_PAYLOAD = 2000
"""Largest application payload accepted by ``send_data`` (fits every encapsulation)."""


class Backlog(NamedTuple):
    """Bytes queued for one neighbour (see :meth:`RoleBase.backlog`)."""

    nbytes: int
    head: int
    control: bool


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


@dataclass
class _Pending:
    """An outstanding request: resent by ``timer`` until answered or retries run out."""

    peer: int
    procedure: str
    send: Callable[[], None]
    deadline: float
    attempt: int = 1
    on_fail: Callable[[float], None] | None = field(default=None, repr=False)


HOP = "hop"
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


class RoleBase:
    """Queues, events, counters and the retransmission engine shared by ABS, ARS and AMS.

    ``batch_seal`` (default True): data and relay MPDUs are queued unsealed and sealed in
    :meth:`frames_to_send`, all MPDUs of one frame in one ``stack.mac.build_burst`` call (one
    ``seal_batch``); False seals each MPDU when it is queued (``stack.mpdu.protect``). Both
    produce the same wire format; ``tx_dropped`` counts MPDUs that could not be sealed.
    ``batch_open`` (default True): received protected MPDUs are opened with one
    ``stack.mac.open_burst`` per run (see :meth:`receive`); False opens them one at a time
    (``stack.mpdu.unprotect``). Both accept, reject and deliver exactly the same MPDUs.
    """

    batch_seal: bool = True
    batch_open: bool = True
    batch_seal_min: int = 4
    """Frames with fewer pending data MPDUs are sealed one by one (``stack.mpdu.protect``): below
    this size the per-MPDU path is faster than one ``build_burst`` (measured crossover: 4 MPDUs
    at 64 and 1500 B, docs/roles.md §3.1). Same bytes either way."""
    batch_open_min: int = 4
    """Runs of fewer protected MPDUs are opened one by one (``stack.mpdu.unprotect``); crossover
    measured at 4 (64 and 1500 B). Same accepted and rejected MPDUs either way."""

    def __init__(self, station_id: int, timers: Timers, rng: int | np.random.Generator | None):
        self.station_id = check_station_id(station_id)
        self.timers = timers
        # None: every key, nonce and protocol random comes from the OS CSPRNG (radios); a seed
        # or Generator makes a simulated run reproducible (docs/threat-model.md, "Randomness").
        self._rng: np.random.Generator | None = (
            None if rng is None else
            rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng))
        self._events: deque[Event] = deque()
        self._out: dict[int, list[bytes | PendingMpdu]] = {}
        # the queued copy of each outstanding request (replaced by a retransmission if unsent)
        self._req_copies: dict[Hashable, list[tuple[int, bytes | PendingMpdu]]] = {}
        self._resending: Hashable | None = None
        self._pending: dict[Hashable, _Pending] = {}
        self._deadlines: dict[Hashable, float] = {}
        # (when, seq, "p"/"d", key, pending): every armed retransmission and deadline, lazily
        # pruned -- timer() and next_deadline() never scan all outstanding requests
        self._heap: list[tuple[float, int, str, Hashable, _Pending | None]] = []
        self._seq = 0
        self.rejections: Counter[str] = Counter()
        self.rejections_by_link: Counter[tuple[int, str]] = Counter()
        self.air_messages: Counter[str] = Counter()  # control messages sent, by message title
        self.tx_dropped: Counter[str] = Counter()     # queued MPDUs that could not be sealed
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
        self.mpdu_limit: int | None = None
        """Largest MPDU the MAC below can carry (None: no limit): a piggybacked feedback never
        grows a queued MPDU past it."""
        self.arq_stats: Counter[str] = Counter()     # ARQ connections that were reset, closed

    # -- public API -----------------------------------------------------------------------------
    strict: bool = os.environ.get("RELAYSEC_STRICT_ROLES") == "1"
    """A bug in a handler (any exception that is not a counted rejection) is caught, logged and
    counted as ``internal_error`` so that a node keeps running (``receive`` and ``timer`` never
    raise). The test suite and the fuzzers set ``strict`` (environment: ``RELAYSEC_STRICT_ROLES=1``)
    so that such a bug fails loudly."""

    def receive(self, src: int, frame: bytes, now: float) -> None:
        """Consume one frame (a burst payload) from neighbour ``src``; never raises on bad input
        (docs/threat-model.md: every rejection is counted under a named reason)."""
        try:
            self._receive(src, frame, now)
            if self._arq_fb_due:
                self._arq_flush(now)
        except Exception as exc:  # the last line of defence, see ``strict``
            self._internal_error("receive", src, exc)

    def _internal_error(self, where: str, src: int, exc: Exception) -> None:
        if self.strict:
            raise exc
        log.error("%s: internal error in %s (%s); input from %s dropped",
                  fmt_station(self.station_id), where, type(exc).__name__, fmt_station(src))
        self._reject(src, "internal_error", f"{where}: {type(exc).__name__}")

    def _receive(self, src: int, frame: bytes, now: float) -> None:
        """The receive path proper (:meth:`receive` guards it).

        MPDUs are handled in burst order. With ``batch_open`` (default) each run of consecutive
        protected MPDUs under the link with ``src`` is opened with one ``stack.mac.open_burst``
        call (in practice one per burst) directly on a view of one writeable copy of the frame
        (no per-MPDU bytes); control MPDUs and MPDUs the link does not carry go one by one, so
        state changed by a control message applies to the MPDUs after it.
        """
        if not isinstance(frame, (bytes, bytearray)):
            frame = bytes(frame)
        try:
            bounds = frame_bounds(frame)
        except MalformedError as exc:
            self._reject(src, exc.reason, str(exc))
            return
        n = len(bounds) - 1
        buf: np.ndarray | None = None  # writeable copy of the frame, made for the first run
        i = 0
        while i < n:
            rx = self._rx_link(src) if self.batch_open else None
            j = i
            if rx is not None:
                fids = rx[1]
                while j < n and frame[bounds[j]] >> 4 in fids:
                    j += 1
            if j - i >= max(1, self.batch_open_min):
                assert rx is not None
                if buf is None:
                    buf = np.frombuffer(bytearray(frame), dtype=np.uint8)
                self._open_run(src, rx[0], buf[bounds[i] : bounds[j]], now)
                i = j
                continue
            for k in range(i, max(j, i + 1)):  # a short run, or one MPDU outside any run
                try:
                    self._on_mpdu(src, bytes(frame[bounds[k] : bounds[k + 1]]), now)
                except SecurityError as exc:
                    self._reject(src, exc.reason, str(exc))
            i = max(j, i + 1)

    def _open_run(self, src: int, link: Link, run: np.ndarray, now: float) -> None:
        """Open a run of protected MPDUs from ``src`` (a view of the frame buffer, opened in
        place) in one batch call, then dispatch each accepted one."""
        opened, rejected = link.open_many(run, now)
        for reason, n in rejected.items():
            for _ in range(n):
                self._reject(src, reason, "protected MPDU rejected")
        if rejected.get("unknown_eks"):
            self._on_unknown_eks(link, now)
        for fid, _eks, payload in opened:
            try:
                self._on_opened(src, link, fid, payload, now)
            except SecurityError as exc:
                self._reject(src, exc.reason, str(exc))

    def timer(self, now: float) -> None:
        """Run every retransmission or housekeeping deadline that is due at ``now``; never
        raises (see :attr:`strict`)."""
        try:
            self._timer(now)
        except Exception as exc:  # the last line of defence, see ``strict``
            self._internal_error("timer", self.station_id, exc)

    def _timer(self, now: float) -> None:
        due: list[tuple[float, int, str, Hashable, _Pending | None]] = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap))
        for when, _seq, kind, key, p in due:  # in deadline order; stale entries are skipped
            if kind == "d":
                if self._deadlines.get(key) == when:
                    del self._deadlines[key]
                    if isinstance(key, tuple) and key[0] == "arq":
                        self._arq_timer(key[1], now)
                    else:
                        self._on_deadline(key, now)
                continue
            if p is None or self._pending.get(key) is not p or p.deadline != when:
                continue
            if p.attempt > self.timers.max_retries:
                del self._pending[key]
                log.info("%s: %s to %s gave up", fmt_station(self.station_id), p.procedure,
                         fmt_station(p.peer))
                self._emit(PeerLost(peer=p.peer, procedure=p.procedure))
                if p.on_fail is not None:
                    p.on_fail(now)
                continue
            p.attempt += 1
            p.deadline = now + self.timers.interval(p.attempt)
            self._arm(p.deadline, "p", key, p)
            self._send_request(key, p.send)
        if self._arq_fb_due:
            self._arq_flush(now)

    def next_deadline(self) -> float | None:
        """Earliest time at which :meth:`timer` has work, or None (O(1) amortised: a heap of
        deadlines; entries made stale by an answer or a new deadline are dropped here)."""
        heap = self._heap
        while heap:
            when, _seq, kind, key, p = heap[0]
            if kind == "d":
                if self._deadlines.get(key) == when:
                    return when
            elif p is not None and self._pending.get(key) is p and p.deadline == when:
                return when
            heapq.heappop(heap)
        return None

    def _arm(self, when: float, kind: str, key: Hashable, p: _Pending | None = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, key, p))
        live = len(self._pending) + len(self._deadlines)
        if len(self._heap) > 2 * live + 32:  # mostly stale (answered, rescheduled): compact
            self._heap = [e for e in self._heap if (
                self._deadlines.get(e[3]) == e[0] if e[2] == "d" else
                e[4] is not None and self._pending.get(e[3]) is e[4] and e[4].deadline == e[0])]
            heapq.heapify(self._heap)

    def expected_arrivals(self) -> int:
        """Stations known to be about to arrive here (an ARS holding pre-distributed handover
        AKs); 0 for other roles."""
        return 0

    def backlog(self) -> dict[int, Backlog]:
        """What waits per neighbour, for a scheduler: bytes as they will go on the air, the
        first MPDU's size (an allocation smaller than that is useless) and whether that first
        MPDU is a control message in the clear (sent at the most robust MCS)."""
        out = {}
        for dst, items in self._out.items():
            if not items:
                continue
            head = items[0]
            control = not isinstance(head, PendingMpdu) and mpdu_fid(head) == FID_CONTROL
            out[dst] = Backlog(sum(map(len, items)), len(head), control)
        return out

    def frames_to_send(self, now: float, max_bytes: int | None = None, *,
                       dst: int | None = None) -> list[tuple[int, bytes]]:
        """Drain queued MPDUs as ``(neighbour, frame)`` (*dst*: only that neighbour's); frames
        never exceed ``max_bytes``.

        The MPDUs that fit ``max_bytes`` are taken from the head of the queue (every queue
        entry knows its sealed length) and only those are sealed, in place in one burst buffer
        (:meth:`_seal_queued`); the frame is that buffer copied once into ``bytes`` (with any
        control MPDUs spliced in between, still one join), never per-MPDU copies. The rest stay
        queued unsealed -- no PN taken before an MPDU goes on the air, and an ARQ feedback can
        still ride on a queued block (``_arq_piggyback``).
        """
        only = dst
        out: list[tuple[int, bytes]] = []
        for dst in (list(self._out) if only is None else [only] if only in self._out else []):
            items = self._out[dst]
            cut = _fit(items, max_bytes)
            if self._arq_fb_queued and self._arq_fold(dst, items, cut):
                cut = _fit(items, max_bytes)   # the frame shrank: more may fit
            del self._out[dst]
            if cut < len(items):
                self._out[dst] = items[cut:]
                items = items[:cut]
            segs = self._seal_queued(items, now)
            if self._arq:  # what goes out now starts its ARQ timer; the rest stays queued
                self._arq_on_air([items[k] for *_r, k in segs], now)
            if segs:
                out.append((dst, _join([(src, a, b) for src, a, b, _k in segs])))
        return out

    def _seal_queued(
        self, items: list[bytes | PendingMpdu], now: float
    ) -> list[tuple[bytes | np.ndarray, int, int, int]]:
        """Seal the pending MPDUs of one frame: one ``build_burst`` per (STID, direction) --
        in practice one per frame, since a frame to a neighbour belongs to one link.

        Returns each MPDU that goes out, in queue order, as ``(source, start, end, index in
        items)``: a control MPDU is ``(its bytes, 0, len, i)``; a sealed one is its range in the
        burst buffer (no copy; adjacent ranges are joined again by :func:`_join`). MPDUs that
        could not be sealed are dropped and counted in ``tx_dropped``.
        """
        groups: dict[tuple[int, bool], list[int]] = {}
        for i, x in enumerate(items):
            if isinstance(x, PendingMpdu):
                groups.setdefault((x.stid, x.uplink), []).append(i)
        if len(groups) == 1 and len(next(iter(groups.values()))) == len(items):
            # the usual frame: only data MPDUs of one link, laid out in queue order
            (stid, uplink), = groups
            buf = self._build(stid, uplink, items, now)  # type: ignore[arg-type]
            if buf is None:
                return []
            return [(buf, 0, int(buf.shape[0]), 0)] if len(items) == 1 else _spans(buf, items)
        out: list[tuple[bytes | np.ndarray, int, int, int] | None] = [
            None if isinstance(x, PendingMpdu) else (x, 0, len(x), i) for i, x in enumerate(items)
        ]
        for key, idx in groups.items():
            pend: list[PendingMpdu] = [items[i] for i in idx]  # type: ignore[misc]
            buf = self._build(*key, pend, now)
            if buf is None:
                continue
            pos = 0
            for i, p in zip(idx, pend, strict=True):
                n = len(p)
                out[i] = (buf, pos, pos + n, i)
                pos += n
        return [x for x in out if x is not None]

    def _build(
        self, stid: int, uplink: bool, pend: list[PendingMpdu], now: float
    ) -> np.ndarray | None:
        """One ``build_burst`` over ``pend`` (the queue entries are its ``TxMpdu``s), or for
        fewer than ``batch_seal_min`` MPDUs one ``stack.mpdu.protect`` each (same bytes); None
        when the MPDUs cannot be sealed (e.g. no usable TEK left): dropped, counted, not
        raised."""
        try:
            if len(pend) >= self.batch_seal_min:
                return build_burst(stid, pend, uplink=uplink, now=now)
            return np.frombuffer(bytearray().join(
                protect_mpdu(p.sa, stid=stid, fid=p.fid, uplink=uplink, payload=p.payload,
                             now=now) for p in pend), dtype=np.uint8)
        except SecurityError as exc:
            self.tx_dropped[exc.reason] += len(pend)
            log.warning("%s: %d MPDUs not sealed: %s", fmt_station(self.station_id),
                        len(pend), exc.reason)
            return None

    def _seal(self, link: Link, fid: int, payload: bytes, now: float) -> bytes | PendingMpdu:
        """A protected MPDU for ``link``: deferred to the frame's batch call or sealed now."""
        if self.batch_seal:
            return link.defer(fid, payload)
        return link.seal(fid, payload, now)

    def events(self) -> list[Event]:
        """Drain and return the events that happened since the last call."""
        evs = list(self._events)
        self._events.clear()
        return evs

    def key_info(self, peer: int) -> KeyInfo | None:  # overridden
        """Identifiers/check values of the link with ``peer`` (None when no keys)."""
        return None

    # -- ARQ (docs/roles.md §11) ------------------------------------------------------------
    def state_counts(self) -> dict[str, int]:
        """Sizes of the role's tables (a soak samples them: none may grow without bound):
        outstanding requests, deadlines, timer heap, queued MPDUs, ARQ connections, blocks held
        unacknowledged or waiting, blocks held out of order; plus ``state_size()`` where the
        role has one (ABS, ARS)."""
        out = {"pending": len(self._pending), "deadlines": len(self._deadlines),
               "heap": len(self._heap), "queued": sum(map(len, self._out.values())),
               "arq_connections": len(self._arq),
               "arq_tx_held": sum(c.tx.unacked() for c in self._arq.values()),
               "arq_rx_held": sum(len(c.rx.buf) for c in self._arq.values())}
        out.update({f"table_{k}": v for k, v in self.state_size().items()})
        return out

    def state_size(self) -> dict[str, int]:
        """Sizes of the tables a stranger could try to grow (the ABS and ARS have some)."""
        return {}

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

    def _arq_input(self, key: Hashable, payload: bytes, now: float) -> list[bytes]:
        """An ARQ PDU received on connection ``key`` (authenticated already): returns the SDUs
        now deliverable in order; acknowledgements release and may trigger retransmissions."""
        pdu = decode_arq(payload)
        conn = self._arq_conn(key)
        out: list[bytes] = []
        if isinstance(pdu, ArqDataAck):   # the feedback first: it may open the window
            for data, block in conn.tx.on_feedback(pdu.feedback, now):
                self._arq_emit(key, data, block, now)
            pdu = pdu.data
        if isinstance(pdu, ArqData):
            out = conn.rx.on_data(pdu, now)
            if conn.rx.feedback_due:
                self._arq_fb_due[key] = None
        elif isinstance(pdu, ArqDiscard):
            out = conn.rx.on_discard(pdu, now)
            self._arq_fb_due[key] = None
        elif isinstance(pdu, ArqFeedback):
            for data, block in conn.tx.on_feedback(pdu, now):
                self._arq_emit(key, data, block, now)
        self._arq_arm(key)
        return out

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
                    old[1].payload = payload   # busy queue each time, it would starve
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
        obj.payload = payload
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

    def _arq_resend(self, key: Hashable, now: float) -> None:
        """The path of connection ``key`` changed (handover): every unacknowledged block goes
        out again now on the new path (the receiver drops the copies it already has)."""
        conn = self._arq.get(key)
        if conn is None:
            return
        out = conn.tx.resend_all(now)
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
        self._out[dst] = rest

    def _arq_reset(self, key: Hashable, now: float) -> None:
        """Start connection ``key`` afresh (the peer entered anew: its ARQ state is gone); the
        SDUs not yet acknowledged are offered again on the new connection, nothing dropped."""
        conn = self._arq.pop(key, None)
        self._arq_fb_due.pop(key, None)
        self._arq_fb_queued.pop(key, None)
        self._arq_hosts.pop(key, None)
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
        conn = self._arq.pop(key, None)
        self._arq_fb_due.pop(key, None)
        self._arq_fb_queued.pop(key, None)
        self._arq_hosts.pop(key, None)
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

    # -- helpers for subclasses -----------------------------------------------------------------
    def _on_mpdu(self, src: int, mpdu: bytes, now: float) -> None:
        """Handle one MPDU from ``src`` (the per-MPDU path); raise SecurityError to reject."""
        raise NotImplementedError

    def _rx_link(self, src: int) -> tuple[Link, frozenset[int]] | None:
        """The link whose SA protects MPDUs from ``src`` and the FIDs opened with it in batch
        (None: every MPDU from ``src`` goes through :meth:`_on_mpdu`)."""
        return None

    def _on_opened(self, src: int, link: Link, fid: int, payload: bytes, now: float) -> None:
        """Dispatch one authenticated MPDU of ``link`` (both receive paths end here)."""
        raise NotImplementedError

    def _open(self, link: Link, mpdu: bytes, now: float) -> tuple[int, int, bytes]:
        """Per-MPDU path: :meth:`Link.open`, reacting to an unknown EKS as the batch path does."""
        try:
            return link.open(mpdu, now)
        except UnknownKeyError as exc:
            if exc.reason == "unknown_eks":
                self._on_unknown_eks(link, now)
            raise

    def _on_unknown_eks(self, link: Link, now: float) -> None:
        """MPDUs of ``link`` arrived under an EKS we do not hold (digest §5.1 step 4): the
        serving end answers TEK-Invalid, the subordinate end restarts from TEK-Request."""

    def _send_tek_invalid(self, link: Link, now: float) -> bytes | None:
        """Signed TEK-Invalid for the subject of ``link``, at most one per ``timers.rto``."""
        return link.tek_invalid(now, self.timers.rto)

    def _keys_event(self, link: Link, cause: str, *, subject: int | None = None,
                    peer: int | None = None) -> None:
        """Emit :class:`KeysInstalled` describing ``link`` (identifiers only)."""
        self._emit(KeysInstalled(
            subject=link.subject if subject is None else subject,
            peer=self.station_id if peer is None else peer, stid=link.stid,
            akid=link.ctx.akid.hex(), cmac_key_count=link.ctx.cmac_key_count,
            said=link.sa.said, counter_teks=link.counters, tx_eks=link.tx_eks() or 0,
            cause=cause))

    def _serve_tek(self, link: Link, lifetime: float, now: float) -> bytes:
        """Serving end: answer a verified TEK-Request on ``link``; returns the signed TEK-Reply.

        Installs the next TEK unless the request is a retransmission of one already served
        (:meth:`Link.serve_tek_request`); either way the reply names the newest COUNTER_TEK.
        """
        # An unconfirmed update is announced again (not a new TEK) for as long as a requester
        # could still be retrying it -- also after it gave up and tries again later -- but no
        # longer than half a refresh interval, after which a request is a new update.
        span = max(self.timers.give_up_after,
                   lifetime * (1 - self._life.tek_refresh_margin) / 2)
        if link.serve_tek_request(now, grace=self._server_grace, retry_span=span):
            self._keys_event(link, "tek_refresh")
        c = link.newest_counter
        return link.sign(TekReply(said=link.sa.said, counter_tek=c, eks=c % 4,
                                  tek_lifetime=int(lifetime)))

    @property
    def _life(self) -> Lifetimes:
        return self.life  # type: ignore[attr-defined,no-any-return]  # set by every role

    def _on_deadline(self, key: Hashable, now: float) -> None:
        """Housekeeping deadline ``key`` fired (TEK refresh, re-authentication, grace ends)."""

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _reject(self, link: int, reason: str, detail: str = "") -> None:
        self.rejections[reason] += 1
        key = (link, reason)
        if key not in self.rejections_by_link and \
                len(self.rejections_by_link) >= MAX_REJECTION_KEYS:
            key = (OTHER_LINKS, reason)  # invented sender ids must not grow this table
        self.rejections_by_link[key] += 1
        log.debug("%s: rejected from %s: %s", fmt_station(self.station_id), fmt_station(link),
                  reason)
        self._emit(Rejected(reason=reason, link=link, detail=detail))

    def _queue(self, dst: int, mpdu: bytes | PendingMpdu, title: str | None = None, *,
               inner: bytes | None = None) -> None:
        """Queue ``mpdu`` to neighbour ``dst``; a control message is counted by ``title`` and
        reported as :class:`ControlSent` (title :data:`RELAYED`: a message relayed on, named from
        its clear control MPDU -- ``mpdu`` itself, or ``inner`` when sealed in a relay MPDU)."""
        if self._resending is not None:
            self._req_copies.setdefault(self._resending, []).append((dst, mpdu))
        queue = self._out.setdefault(dst, [])
        if title is not None and not isinstance(mpdu, PendingMpdu) \
                and mpdu_fid(mpdu) == FID_CONTROL:
            # a control message in the clear (no PN: reordering it cannot trip a replay window)
            # goes ahead of queued data, so a loaded link never starves key management
            at = next((i for i, x in enumerate(queue)
                       if isinstance(x, PendingMpdu) or mpdu_fid(x) != FID_CONTROL), len(queue))
            queue.insert(at, mpdu)
        else:
            queue.append(mpdu)
        if title is None:
            return
        self.air_messages[title] += 1
        sealed = isinstance(mpdu, PendingMpdu) or mpdu_fid(mpdu) != FID_CONTROL
        relayed = title == RELAYED
        if relayed:
            clear = inner if sealed else mpdu
            title = _control_title(clear) if clear is not None else "message"
        self._emit(ControlSent(peer=dst, title=title, sealed=sealed, relayed=relayed))

    def _request(
        self,
        key: Hashable,
        peer: int,
        procedure: str,
        send: Callable[[], None],
        now: float,
        on_fail: Callable[[float], None] | None = None,
    ) -> None:
        """Send a request now and keep resending it until :meth:`_answered` (or give up)."""
        p = self._pending[key] = _Pending(
            peer=peer, procedure=procedure, send=send,
            deadline=now + self.timers.interval(1), on_fail=on_fail,
        )
        self._arm(p.deadline, "p", key, p)
        self._send_request(key, send)

    def _send_request(self, key: Hashable, send: Callable[[], None]) -> None:
        """Send (again) the request *key*: a copy still waiting in the output queue -- its zone
        has not come yet -- is replaced, not followed, by the new one, so a slow link does not
        pile up retransmissions that would all go out together."""
        for dst, obj in self._req_copies.pop(key, []):
            q = self._out.get(dst, [])
            for i, x in enumerate(q):
                if x is obj:
                    del q[i]     # never sent: the new copy takes its place
                    break
        self._resending = key
        try:
            send()
        finally:
            self._resending = None

    def _answered(self, key: Hashable) -> bool:
        """Stop retransmitting ``key``; True if it was outstanding."""
        self._req_copies.pop(key, None)
        return self._pending.pop(key, None) is not None

    def _set_deadline(self, key: Hashable, when: float | None) -> None:
        if when is None:
            self._deadlines.pop(key, None)
        elif self._deadlines.get(key) != when:
            self._deadlines[key] = when
            self._arm(when, "d", key)

    @property
    def _grace(self) -> float:
        """How long a TEK retired by an update stays receivable (frames in flight) [D]."""
        return max(1.0, 5 * self.timers.rto)

    @property
    def _server_grace(self) -> float:
        """Grace of the TEK retired when *serving* a TEK update: the requester keeps sending
        under it until our TEK-Reply gets through, i.e. up to its whole retry span."""
        return max(self._grace, self.timers.give_up_after + self.timers.rto)

    @property
    def deterministic(self) -> bool:
        """True when this role draws its randoms from a seed (simulation only)."""
        return self._rng is not None

    def _random(self, n: int) -> bytes:
        return os.urandom(n) if self._rng is None else self._rng.bytes(n)


def _control_title(mpdu: bytes) -> str:
    """Title of the control message in a clear control MPDU (its type byte; never its body)."""
    try:
        return message_class(mpdu[2]).TITLE
    except Exception:
        return "control message"


def _spans(buf: np.ndarray, items: list[bytes | PendingMpdu]
           ) -> list[tuple[bytes | np.ndarray, int, int, int]]:
    """The range of each item in a burst buffer laid out in queue order."""
    out: list[tuple[bytes | np.ndarray, int, int, int]] = []
    pos = 0
    for i, x in enumerate(items):
        out.append((buf, pos, pos + len(x), i))
        pos += len(x)
    return out


def _fit(items: list[bytes | PendingMpdu], max_bytes: int | None) -> int:
    """How many queue entries from the head fit ``max_bytes`` (each knows its sealed length);
    :class:`MalformedError` when not even the first does."""
    if max_bytes is None:
        return len(items)
    size = 0
    for i, x in enumerate(items):
        size += len(x)
        if size > max_bytes:
            if i == 0:
                raise MalformedError(f"an MPDU of {len(x)} bytes does not fit "
                                     f"max_bytes={max_bytes}")
            return i
    return len(items)


def _join(segs: list[tuple[bytes | np.ndarray, int, int]]) -> bytes:
    """One frame from MPDU ranges: adjacent ranges of one buffer are merged, then one copy."""
    parts: list[bytes | np.ndarray] = []
    cur: bytes | np.ndarray | None = None
    lo = hi = 0
    for src, a, b in segs:
        if src is cur and a == hi:
            hi = b
            continue
        if cur is not None:
            parts.append(cur[lo:hi] if (lo, hi) != (0, len(cur)) else cur)
        cur, lo, hi = src, a, b
    if cur is not None:
        parts.append(cur[lo:hi] if (lo, hi) != (0, len(cur)) else cur)
    if len(parts) == 1:
        part = parts[0]
        return part.tobytes() if isinstance(part, np.ndarray) else bytes(part)
    return b"".join(parts)
