"""Per-destination queues shared over a frame's resource units (RUs): round robin or PF.

Sans-I/O, one :class:`Scheduler` per transmitter. Every frame the runtime lists what each
destination has queued (:class:`Demand`: bytes, bytes one RU carries at the destination's MCS,
smallest useful allocation), calls :meth:`Scheduler.allocate` with the RUs of its zone, sends, tells
the scheduler what went out with :meth:`Scheduler.served` and closes the frame with
:meth:`Scheduler.end_frame`.

Every allocation obeys, whatever the policy: its RUs plus ``alloc_overhead_ru`` per destination
served (the MAP entry's share) never exceed ``n_ru``; no destination gets more RUs than its queue
needs (``ceil(queued_bytes / bytes_per_ru)``) nor fewer than its ``min_bytes`` need; at most
``max_allocs`` destinations are served; a destination with nothing queued gets nothing.

* ``"rr"`` -- round robin, **equal RUs** (airtime fairness): backlogged destinations are admitted
  in an order whose start rotates every frame, and share the RUs equally (max-min fair, subject
  to each one's minimum and need); what one cannot use goes to the others, the indivisible
  remainder to the first ones in this frame's order. Bytes are therefore fair only up to the
  MCS ratio between destinations.
* ``"pf"`` -- proportional fair: RUs go ``chunk_ru`` at a time to the destination with the
  highest ``rate / projected average``, where the rate is ``bytes_per_ru`` and the projected
  average is the EWMA of served bytes per frame as it would stand if the frame ended with the
  grants made so far (``window_frames`` frames). This is the greedy maximisation of
  ``sum(log(average))``; priorities are recomputed after every chunk, so a frame is shared
  between several destinations, the more so the shorter the window.

:func:`jain` is Jain's fairness index, for reports.
"""

from __future__ import annotations

import heapq
import math
import numbers
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

_EPS = 1e-9
_TINY = 1e-12


def _ceil_div(a: float, b: float) -> int:
    """``ceil(a / b)`` that does not round 3 / 0.3 up to 11 (``abs(q - round(q)) <= _EPS *
    max(1.0, abs(q))`` written out: the scheduler calls it thousands of times a second)."""
    q = a / b
    r = round(q)
    d = q - r
    m = q if q >= 0 else -q
    return int(r) if (d if d >= 0 else -d) <= _EPS * (m if m > 1.0 else 1.0) else math.ceil(q)


def _int(name: str, value: object, lo: int = 0) -> int:
    try:
        v = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name}: must be an int, got {value!r}") from None
    if isinstance(value, bool) or v < lo:
        raise ValueError(f"{name}: must be an int >= {lo}, got {value!r}")
    return v


def _finite(x: object) -> bool:
    """A finite real number (numpy scalars included), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Demand:
    """What one destination wants this frame.

    Attributes:
        dst: destination id (e.g. STID), unique within one ``allocate`` call.
        queued_bytes: bytes waiting for it.
        bytes_per_ru: payload bytes one RU carries at its MCS (> 0).
        min_bytes: smallest useful allocation (e.g. the head-of-line MPDU); an allocation that
            carries less is not made. Capped at ``queued_bytes``.
        unit_ru: 0, or the RUs of one whole queued item (an MPDU that is not fragmented): the
            allocation is then a whole number of units, at least one (the unit replaces
            ``min_bytes``), since RUs beyond the last whole unit would carry nothing.
    """

    dst: int
    queued_bytes: int
    bytes_per_ru: float
    min_bytes: int = 0
    unit_ru: int = 0

    def __post_init__(self) -> None:
        for name in ("dst", "queued_bytes", "min_bytes", "unit_ru"):  # numpy ints: plain ints
            object.__setattr__(self, name, _int(name, getattr(self, name)))
        if not _finite(self.bytes_per_ru) or self.bytes_per_ru <= 0:
            raise ValueError(f"bytes_per_ru: must be a finite number > 0, "
                             f"got {self.bytes_per_ru!r}")
        object.__setattr__(self, "bytes_per_ru", float(self.bytes_per_ru))

    # the sizes below are functions of the (frozen) fields, asked again and again by the
    # policies: each is computed once per demand
    @cached_property
    def need_ru(self) -> int:
        """RUs that carry the whole queue."""
        return _ceil_div(self.queued_bytes, self.bytes_per_ru)

    @cached_property
    def min_ru(self) -> int:
        """RUs of the smallest useful allocation (0 when nothing is queued)."""
        if self.queued_bytes == 0:
            return 0
        return max(1, _ceil_div(min(self.min_bytes, self.queued_bytes), self.bytes_per_ru))

    @property
    def step_ru(self) -> int:
        """Granularity of an allocation: ``unit_ru``, or one RU."""
        return self.unit_ru or 1

    @cached_property
    def first_ru(self) -> int:
        """The smallest allocation made: one unit (the head item), else ``min_ru``."""
        return self.unit_ru if self.unit_ru and self.queued_bytes else self.min_ru

    @cached_property
    def top_ru(self) -> int:
        """The need in whole units: the largest allocation made."""
        q = self.step_ru
        return _ceil_div(self.need_ru, q) * q

    def fit(self, n_ru: int) -> int:
        """The largest allocation of at most *n_ru* RUs this destination can use: a whole
        number of units, at least the minimum and at most the need (0 when none fits)."""
        q = self.step_ru
        lo = self.first_ru
        hi = self.top_ru
        n = (hi if hi < n_ru else n_ru) // q * q     # min(n_ru, hi)
        return n if n >= lo and n > 0 else 0


def jain(xs: Sequence[float]) -> float:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)``: 1 when all equal, 1/n when one takes
    everything; 1 for all zeros. ``ValueError`` for an empty or negative input."""
    v = [float(x) for x in xs]
    if not v:
        raise ValueError("jain: needs at least one value")
    if any(not math.isfinite(x) or x < 0 for x in v):
        raise ValueError("jain: values must be finite and >= 0")
    sq = sum(x * x for x in v)
    return 1.0 if sq == 0.0 else sum(v) ** 2 / (len(v) * sq)


POLICIES = ("rr", "pf")


class Scheduler:
    """Shares a frame's RUs between destinations (see the module doc).

    Args:
        policy: ``"rr"`` or ``"pf"``.
        window_frames: EWMA window (frames) of the served-throughput averages (> 0; 1 = only
            the last frame counts).
        chunk_ru: RUs granted per step by ``"pf"`` (>= 1; a first grant is at least the
            destination's ``min_ru``).
        forget_after: frames without a demand or service after which a destination's state is
            dropped (default ``4 * window_frames``), so memory stays bounded by the stations
            seen recently.
    """

    def __init__(self, policy: str = "rr", *, window_frames: float = 50.0, chunk_ru: int = 1,
                 forget_after: int | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy: unknown policy {policy!r}; known: {', '.join(POLICIES)}")
        if not _finite(window_frames) or window_frames < 1:
            raise ValueError(f"window_frames: must be a finite number >= 1, got {window_frames!r}")
        self.policy = policy
        self.window_frames = float(window_frames)
        self.chunk_ru = _int("chunk_ru", chunk_ru, 1)
        self.forget_after = (math.ceil(4 * self.window_frames) if forget_after is None
                             else _int("forget_after", forget_after, 1))
        self._beta = 1.0 / self.window_frames
        self._policy: dict[str, Callable[[list[Demand], int, float, int], dict[int, int]]] = {
            "rr": self._rr, "pf": self._pf}
        self._avg: dict[int, float] = {}
        self._served: dict[int, int] = {}
        self._last_seen: dict[int, int] = {}
        self._frame = 0
        # round robin: the allocate call that last admitted each destination (least recently
        # admitted first). Per destination, not one pointer: a transmitter's zones to other
        # peer sets (an ARS's UL relay burst to the ABS between its DL-access bursts) must not
        # move another zone's rotation back to its first destination.
        self._rr_turn: dict[int, int] = {}
        self._rr_calls = 0

    def __repr__(self) -> str:
        return (f"Scheduler({self.policy!r}, window_frames={self.window_frames:g}, "
                f"tracked={len(self._last_seen)})")

    # ---- per frame -----------------------------------------------------------------------
    def allocate(self, demands: Iterable[Demand], n_ru: int, *, alloc_overhead_ru: float = 0.0,
                 max_allocs: int | None = None, pack: bool = False) -> dict[int, int]:
        """RUs per destination for this frame, ``{dst: n}`` with ``n >= 1`` for served ones
        only (see the module doc for the guarantees). *pack*: serve only as many destinations
        (up to *max_allocs*) as carry the most RUs -- where each allocation costs much
        (``alloc_overhead_ru``) and fills in whole units, fewer, fuller allocations often carry
        more; the policy's order still decides who is served."""
        dem = list(demands)
        n_ru = _int("n_ru", n_ru)
        if not _finite(alloc_overhead_ru) or alloc_overhead_ru < 0:
            raise ValueError(f"alloc_overhead_ru: must be a finite number >= 0, "
                             f"got {alloc_overhead_ru!r}")
        cap = len(dem) if max_allocs is None else _int("max_allocs", max_allocs)
        seen: set[int] = set()
        for d in dem:
            if not isinstance(d, Demand):
                raise ValueError(f"demands: expected Demand, got {type(d).__name__}")
            if d.dst in seen:
                raise ValueError(f"demands: destination {d.dst} listed twice")
            seen.add(d.dst)
            self._last_seen[d.dst] = self._frame
        backlogged = [d for d in dem if d.queued_bytes > 0]
        if not backlogged or cap == 0:
            return {}
        policy = self._policy[self.policy]
        if pack and cap > 1:
            best, state = None, (dict(self._rr_turn), self._rr_calls)
            for c in range(1, min(cap, len(backlogged)) + 1):
                carried = sum(policy(backlogged, n_ru, float(alloc_overhead_ru), c).values())
                # a trial: the rotation moves on the real call only
                self._rr_turn, self._rr_calls = dict(state[0]), state[1]
                if best is None or carried > best[0]:
                    best = (carried, c)
            cap = best[1] if best else cap
        return policy(backlogged, n_ru, float(alloc_overhead_ru), cap)

    def served(self, dst: int, n_bytes: int) -> None:
        """Bytes actually sent to ``dst`` this frame (may be called several times)."""
        dst = _int("dst", dst)
        n_bytes = _int("n_bytes", n_bytes)
        self._served[dst] = self._served.get(dst, 0) + n_bytes
        self._last_seen[dst] = self._frame

    def end_frame(self) -> None:
        """Fold this frame's service into the averages; drop destinations not seen for
        ``forget_after`` frames."""
        b = self._beta
        for dst in self._avg.keys() | self._served.keys():
            self._avg[dst] = (1 - b) * self._avg.get(dst, 0.0) + b * self._served.get(dst, 0)
        self._served.clear()
        self._frame += 1
        stale = [d for d, f in self._last_seen.items() if self._frame - f > self.forget_after]
        for dst in stale:
            self.forget(dst)

    def forget(self, dst: int) -> None:
        """Drop every piece of state about ``dst`` (a station that left)."""
        self._avg.pop(dst, None)
        self._served.pop(dst, None)
        self._last_seen.pop(dst, None)
        self._rr_turn.pop(dst, None)

    def average(self, dst: int) -> float:
        """EWMA of bytes served to ``dst`` per frame (0 for an unknown destination)."""
        return self._avg.get(dst, 0.0)

    @property
    def tracked(self) -> frozenset[int]:
        """Destinations the scheduler holds state for."""
        return frozenset(self._last_seen) | frozenset(self._avg)

    # ---- policies ------------------------------------------------------------------------
    @staticmethod
    def _room(n_ru: int, used_ru: int, n_allocs: int, overhead: float) -> int:
        """Whole RUs left for data once ``n_allocs`` allocations pay their overhead."""
        return math.floor(n_ru - used_ru - n_allocs * overhead + _EPS)

    def _rr(self, dem: list[Demand], n_ru: int, overhead: float, cap: int) -> dict[int, int]:
        order = sorted(dem, key=lambda d: (self._rr_turn.get(d.dst, -1), d.dst))
        # admission in rotating order: as many as fit with their minimum and overhead
        admitted: list[Demand] = []
        reserved = 0
        first_out: int | None = None
        for i, d in enumerate(order):
            first = d.fit(d.first_ru)
            if len(admitted) < cap and first and \
                    self._room(n_ru, reserved + first, len(admitted) + 1, overhead) >= 0:
                admitted.append(d)
                reserved += first
            elif first_out is None:
                first_out = i
        # next time: those left out first (least recently admitted), then the admitted ones in
        # this frame's order -- or, when none was left out, this frame's first one last (so the
        # indivisible remainder rotates too)
        for d in admitted if first_out is not None else [*admitted[1:], *admitted[:1]]:
            self._rr_calls += 1
            self._rr_turn[d.dst] = self._rr_calls
        if not admitted:
            return {}
        budget = self._room(n_ru, 0, len(admitted), overhead)

        def share(d: Demand, level: int) -> int:
            # equal RUs up to *level*, in whole units, within the minimum and the need
            q = d.step_ru
            lo = d.first_ru
            return max(lo, min(d.top_ru, level // q * q))

        def total(level: int) -> int:
            return sum(share(d, level) for d in admitted)

        lo, hi = 0, max(d.top_ru for d in admitted)
        while lo < hi:  # largest level whose equal shares fit the budget
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if total(mid) <= budget else (lo, mid - 1)
        alloc = {d.dst: share(d, lo) for d in admitted}
        left = budget - sum(alloc.values())
        for d in admitted:  # the indivisible remainder, in this frame's order, a unit each
            if d.first_ru > lo:
                continue    # held at its minimum, above the level: no share on top
            grown = d.fit(alloc[d.dst] + min(left, d.step_ru))
            if grown > alloc[d.dst]:
                left -= grown - alloc[d.dst]
                alloc[d.dst] = grown
        return alloc

    def _pf(self, dem: list[Demand], n_ru: int, overhead: float, cap: int) -> dict[int, int]:
        b = self._beta
        base = {d.dst: (1 - b) * self._avg.get(d.dst, 0.0) for d in dem}
        alloc = {d.dst: 0 for d in dem}

        def key(d: Demand) -> tuple[float, float, int]:
            sent = min(alloc[d.dst] * d.bytes_per_ru, d.queued_bytes)
            prio = d.bytes_per_ru / max(base[d.dst] + b * sent, _TINY)
            return (-prio, -d.bytes_per_ru, d.dst)

        heap = [(key(d), i) for i, d in enumerate(dem)]
        heapq.heapify(heap)
        used = n_allocs = 0
        while heap:
            _, i = heapq.heappop(heap)
            d = dem[i]
            first = alloc[d.dst] == 0
            if first and n_allocs == cap:
                continue
            room = self._room(n_ru, used, n_allocs + first, overhead)
            want = max(d.first_ru, self.chunk_ru) if first else self.chunk_ru
            total = d.fit(alloc[d.dst] + min(max(want, d.step_ru), room))
            grant = total - alloc[d.dst]
            if grant <= 0:
                continue  # does not fit any more; room only shrinks
            alloc[d.dst] += grant
            used += grant
            n_allocs += first
            if alloc[d.dst] < d.need_ru:
                heapq.heappush(heap, (key(d), i))
        return {dst: n for dst, n in alloc.items() if n > 0}


__all__ = ["POLICIES", "Demand", "Scheduler", "jain"]
