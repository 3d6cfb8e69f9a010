"""Common machinery of the roles: receive path, events, rejection counters, retransmissions.

The send path (output queues, frames) is :class:`stack.roles.sendpath.SendPath` and the ARQ
plumbing :class:`stack.roles.arq_plumbing.ArqMixin`, both mixed into :class:`RoleBase`;
``Backlog`` and ``RELAYED`` are defined there and importable from here as before.

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

import numpy as np

from stack.errors import MalformedError, SecurityError, UnknownKeyError
from stack.pkm.messages import TekReply
from stack.roles.arq_plumbing import ArqMixin
from stack.roles.config import Lifetimes, Timers
from stack.roles.events import Event, KeysInstalled, PeerLost, Rejected
from stack.roles.framing import frame_bounds
from stack.roles.ids import check_station_id, fmt_station
from stack.roles.link import KeyInfo, Link, MpduQueue, PendingMpdu
from stack.roles.sendpath import RELAYED as RELAYED
from stack.roles.sendpath import Backlog as Backlog
from stack.roles.sendpath import SendPath

log = logging.getLogger("stack.roles")

MAX_REJECTION_KEYS = 1024
"""Distinct (neighbour, reason) pairs counted in ``rejections_by_link``; past it, rejections
from neighbours not yet listed are counted under ``OTHER_LINKS``."""
OTHER_LINKS = -1

MAX_PAYLOAD = 2000
"""Largest application payload accepted by ``send_data`` (fits every encapsulation)."""


@dataclass
class _Pending:
    """An outstanding request: resent by ``timer`` until answered or retries run out."""

    peer: int
    procedure: str
    send: Callable[[], None]
    deadline: float
    attempt: int = 1
    on_fail: Callable[[float], None] | None = field(default=None, repr=False)


class RoleBase(ArqMixin, SendPath):
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
        self._arrivals: list[int] = []   # handover re-entries completed (take_arrivals)
        # None: every key, nonce and protocol random comes from the OS CSPRNG (radios); a seed
        # or Generator makes a simulated run reproducible (docs/threat-model.md, "Randomness").
        self._rng: np.random.Generator | None = (
            None if rng is None else
            rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng))
        self._events: deque[Event] = deque()
        self._out: dict[int, MpduQueue] = {}
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
        self._init_arq()

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
                    elif isinstance(key, tuple) and key[0] == "arqs":
                        self._arq_status_late(key[1], now)
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

    def expected_stids(self) -> list[int]:
        """STIDs of the stations counted by :meth:`expected_arrivals` (none here)."""
        return []

    def take_arrivals(self) -> list[int]:
        """Stations whose handover re-entry here completed since the last call (the MAC
        grants them data at once: ``relaysec.zonemac.ARRIVAL_BYTES``)."""
        out, self._arrivals = self._arrivals, []
        return out

    def _arrived(self, station: int) -> None:
        """``station`` re-entered here by handover (kept for :meth:`take_arrivals`; bounded:
        a role driven without a MAC never takes them)."""
        self._arrivals = [*self._arrivals[-63:], station]

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
