"""The send path of the roles: what waits for each neighbour and how it leaves as frames.

:class:`SendPath` is the other half of :class:`stack.roles.base.RoleBase` beside
:class:`stack.roles.arq_plumbing.ArqMixin`, kept apart so that each file does one job: MPDUs are
queued per neighbour (``_queue``; clear control messages ahead of data), a scheduler reads
:meth:`SendPath.backlog`, and :meth:`SendPath.frames_to_send` seals what fits a frame in one
burst buffer (docs/roles.md §3), sealing each run in one ``stack.mac.build_burst`` call
(``_build``). The base creates the state it uses (``_out``, ``_req_copies``, ``_resending``,
``air_messages``, ``tx_dropped``); the ARQ half folds feedback
into a frame and starts block timers (``_arq_fold``, ``_arq_on_air``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Hashable
from typing import NamedTuple

import numpy as np

from stack.arq import ArqConnection
from stack.errors import MalformedError, SecurityError
from stack.mac import build_burst
from stack.mpdu import protect as protect_mpdu
from stack.pkm.messages import message_class
from stack.roles.events import ControlSent, Event
from stack.roles.framing import FID_CONTROL, mpdu_fid
from stack.roles.ids import fmt_station
from stack.roles.link import Link, MpduQueue, PendingMpdu

log = logging.getLogger("stack.roles")

RELAYED = "relayed"
"""Title under which a role counts the control messages it relays on (``air_messages``)."""


class Backlog(NamedTuple):
    """Bytes queued for one neighbour (see :meth:`RoleBase.backlog`)."""

    nbytes: int
    head: int
    control: bool


class SendPath:
    """Output queues of :class:`stack.roles.base.RoleBase`: queue, report, seal and drain
    (see the module doc). Declared below: what it uses from the base and the ARQ half."""

    _out: dict[int, MpduQueue]
    _req_copies: dict[Hashable, list[tuple[int, bytes | PendingMpdu]]]
    _resending: Hashable | None
    air_messages: Counter[str]
    batch_seal: bool
    _arq: dict[Hashable, ArqConnection]
    _arq_fb_queued: dict[Hashable, tuple[int, PendingMpdu]]
    _arq_fold: Callable[[int, list[bytes | PendingMpdu], int], bool]
    _arq_on_air: Callable[[list[bytes | PendingMpdu], float], None]
    tx_dropped: Counter[str]
    batch_seal_min: int
    station_id: int
    _emit: Callable[[Event], None]

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
            out[dst] = Backlog(items.nbytes, len(head), control)
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
                self._out[dst] = MpduQueue.tail(items, cut)
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

    def _seal(self, link: Link, fid: int, payload: bytes, now: float) -> bytes | PendingMpdu:
        """A protected MPDU for ``link``: deferred to the frame's batch call or sealed now."""
        if self.batch_seal:
            return link.defer(fid, payload)
        return link.seal(fid, payload, now)

    def _queue(self, dst: int, mpdu: bytes | PendingMpdu, title: str | None = None, *,
               inner: bytes | None = None) -> None:
        """Queue ``mpdu`` to neighbour ``dst``; a control message is counted by ``title`` and
        reported as :class:`ControlSent` (title :data:`RELAYED`: a message relayed on, named from
        its clear control MPDU -- ``mpdu`` itself, or ``inner`` when sealed in a relay MPDU)."""
        if self._resending is not None:
            self._req_copies.setdefault(self._resending, []).append((dst, mpdu))
        queue = self._out.get(dst)
        if queue is None:
            queue = self._out[dst] = MpduQueue()
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
