"""Common machinery of the roles: output queues, events, rejection counters, retransmissions.

Sans-I/O (docs/roles.md §3): nothing here reads a clock or does I/O. Time only enters through the
``now`` arguments; retransmissions are deadlines reported by :meth:`RoleBase.next_deadline`.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from stack.errors import MalformedError, SecurityError, UnknownKeyError
from stack.mac import TxMpdu, build_burst
from stack.pkm.messages import TekReply
from stack.roles.config import Timers
from stack.roles.events import Event, KeysInstalled, PeerLost, Rejected
from stack.roles.framing import mpdu_fid, split_frame
from stack.roles.ids import check_station_id, fmt_station
from stack.roles.link import KeyInfo, Link, PendingMpdu

log = logging.getLogger("stack.roles")

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

    def __init__(self, station_id: int, timers: Timers, rng: int | np.random.Generator | None):
        self.station_id = check_station_id(station_id)
        self.timers = timers
        self._rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self._events: deque[Event] = deque()
        self._out: dict[int, list[bytes | PendingMpdu]] = {}
        self._pending: dict[Hashable, _Pending] = {}
        self._deadlines: dict[Hashable, float] = {}
        self.rejections: Counter[str] = Counter()
        self.rejections_by_link: Counter[tuple[int, str]] = Counter()
        self.air_messages: Counter[str] = Counter()  # control messages sent, by message title
        self.tx_dropped: Counter[str] = Counter()     # queued MPDUs that could not be sealed

    # -- public API -----------------------------------------------------------------------------
    def receive(self, src: int, frame: bytes, now: float) -> None:
        """Consume one frame (a burst payload) from neighbour ``src``; never raises on bad input.

        MPDUs are handled in burst order. With ``batch_open`` (default) each run of consecutive
        protected MPDUs under the link with ``src`` is opened with one ``stack.mac.open_burst``
        call (in practice one per burst); control MPDUs and MPDUs the link does not carry go one
        by one, so state changed by a control message applies to the MPDUs after it.
        """
        try:
            mpdus = split_frame(frame)
        except MalformedError as exc:
            self._reject(src, exc.reason, str(exc))
            return
        i = 0
        while i < len(mpdus):
            rx = self._rx_link(src) if self.batch_open else None
            j = i
            if rx is not None:
                while j < len(mpdus) and mpdu_fid(mpdus[j]) in rx[1]:
                    j += 1
            if j > i:
                assert rx is not None
                self._open_run(src, rx[0], mpdus[i:j], now)
                i = j
                continue
            try:
                self._on_mpdu(src, mpdus[i], now)
            except SecurityError as exc:
                self._reject(src, exc.reason, str(exc))
            i += 1

    def _open_run(self, src: int, link: Link, mpdus: list[bytes], now: float) -> None:
        """Open a run of protected MPDUs from ``src`` in one batch call, then dispatch each."""
        opened, rejected = link.open_many(mpdus, now)
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
        """Run every retransmission or housekeeping deadline that is due at ``now``."""
        for key, p in list(self._pending.items()):
            if self._pending.get(key) is not p or p.deadline > now:
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
            p.send()
        for key, when in list(self._deadlines.items()):
            if when <= now and self._deadlines.get(key) == when:
                del self._deadlines[key]
                self._on_deadline(key, now)

    def next_deadline(self) -> float | None:
        """Earliest time at which :meth:`timer` has work, or None."""
        times = [p.deadline for p in self._pending.values()] + list(self._deadlines.values())
        return min(times) if times else None

    def frames_to_send(self, now: float, max_bytes: int | None = None) -> list[tuple[int, bytes]]:
        """Drain queued MPDUs as ``(neighbour, frame)``; frames never exceed ``max_bytes``."""
        out: list[tuple[int, bytes]] = []
        for dst in list(self._out):
            mpdus = self._seal_queued(self._out.pop(dst), now)
            cur: list[bytes] = []
            size = 0
            rest: list[bytes] = []
            for i, m in enumerate(mpdus):
                if max_bytes is not None and size + len(m) > max_bytes:
                    if not cur:
                        raise MalformedError(
                            f"an MPDU of {len(m)} bytes does not fit max_bytes={max_bytes}"
                        )
                    rest = mpdus[i:]
                    break
                cur.append(m)
                size += len(m)
            if cur:
                out.append((dst, b"".join(cur)))
            if rest:
                self._out[dst] = rest
        return out

    def _seal_queued(self, items: list[bytes | PendingMpdu], now: float) -> list[bytes]:
        """Seal the pending MPDUs of one frame: one ``build_burst`` per (STID, direction) --
        in practice one per frame, since a frame to a neighbour belongs to one link."""
        groups: dict[tuple[int, bool], list[int]] = {}
        for i, x in enumerate(items):
            if isinstance(x, PendingMpdu):
                groups.setdefault((x.stid, x.uplink), []).append(i)
        if not groups:
            return items  # type: ignore[return-value]
        out: list[bytes | PendingMpdu | None] = list(items)
        for (stid, uplink), idx in groups.items():
            pend = [items[i] for i in idx]
            try:
                buf = build_burst(stid, [TxMpdu(p.fid, p.payload, p.sa) for p in pend],
                                  uplink=uplink, now=now)
            except SecurityError as exc:  # e.g. no usable TEK left: drop, count, carry on
                self.tx_dropped[exc.reason] += len(idx)
                log.warning("%s: %d MPDUs not sealed: %s", fmt_station(self.station_id),
                            len(idx), exc.reason)
                for i in idx:
                    out[i] = None
                continue
            pos = 0
            for i, p in zip(idx, pend, strict=True):
                n = len(p)  # type: ignore[arg-type]
                out[i] = buf[pos : pos + n].tobytes()
                pos += n
        return [x for x in out if isinstance(x, bytes)]

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
        if link.serve_tek_request(now, grace=self._server_grace,
                                  retry_span=self.timers.give_up_after):
            self._keys_event(link, "tek_refresh")
        c = link.newest_counter
        return link.sign(TekReply(said=link.sa.said, counter_tek=c, eks=c % 4,
                                  tek_lifetime=int(lifetime)))

    def _on_deadline(self, key: Hashable, now: float) -> None:
        """Housekeeping deadline ``key`` fired (TEK refresh, re-authentication, grace ends)."""

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _reject(self, link: int, reason: str, detail: str = "") -> None:
        self.rejections[reason] += 1
        self.rejections_by_link[(link, reason)] += 1
        log.debug("%s: rejected from %s: %s", fmt_station(self.station_id), fmt_station(link),
                  reason)
        self._emit(Rejected(reason=reason, link=link, detail=detail))

    def _queue(self, dst: int, mpdu: bytes | PendingMpdu, title: str | None = None) -> None:
        self._out.setdefault(dst, []).append(mpdu)
        if title is not None:
            self.air_messages[title] += 1

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
        self._pending[key] = _Pending(
            peer=peer, procedure=procedure, send=send,
            deadline=now + self.timers.interval(1), on_fail=on_fail,
        )
        send()

    def _answered(self, key: Hashable) -> bool:
        """Stop retransmitting ``key``; True if it was outstanding."""
        return self._pending.pop(key, None) is not None

    def _set_deadline(self, key: Hashable, when: float | None) -> None:
        if when is None:
            self._deadlines.pop(key, None)
        else:
            self._deadlines[key] = when

    @property
    def _grace(self) -> float:
        """How long a TEK retired by an update stays receivable (frames in flight) [D]."""
        return max(1.0, 5 * self.timers.rto)

    @property
    def _server_grace(self) -> float:
        """Grace of the TEK retired when *serving* a TEK update: the requester keeps sending
        under it until our TEK-Reply gets through, i.e. up to its whole retry span."""
        return max(self._grace, self.timers.give_up_after + self.timers.rto)

    def _random(self, n: int) -> bytes:
        return self._rng.bytes(n)
