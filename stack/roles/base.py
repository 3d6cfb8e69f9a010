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

from stack.errors import MalformedError, SecurityError
from stack.mac import TxMpdu, build_burst
from stack.roles.config import Timers
from stack.roles.events import Event, PeerLost, Rejected
from stack.roles.framing import split_frame
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
    """

    batch_seal: bool = True

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
        """Consume one frame (a burst payload) from neighbour ``src``; never raises on bad input."""
        try:
            mpdus = split_frame(frame)
        except MalformedError as exc:
            self._reject(src, exc.reason, str(exc))
            return
        for m in mpdus:
            try:
                self._on_mpdu(src, m, now)
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
        raise NotImplementedError

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
