"""Nonce monitor: catch a sender that uses one (TEK, direction, PN) twice (issue 17).

The CCM nonce of a protected MPDU (digest §4.2) is fixed by the TEK's station, the direction and
EKS/PN, so "a sender never uses a (TEK, PN) twice per direction" is what keeps nonces unique.
:class:`~stack.sa.SecurityAssociation` is the only place that hands out PNs for sending
(``next_pn``, used by :func:`stack.mpdu.protect`; ``next_pns``, used by
:func:`stack.mac.build_burst`); both report every PN to the monitors active at that moment.

A TEK is identified by its *fingerprint*, an 8-byte BLAKE2b hash of the key bytes
(:func:`tek_fingerprint`): one-way, never the key, and equal for the same TEK value held by
different :class:`~stack.sa.Tek` objects or SAs -- so a station that rebuilds an old AK context
with fresh PN counters is caught, not just a counter bug inside one SA. Fingerprints do not
depend on the process, so monitors of different processes can be compared.

Usage::

    with monitoring() as mon:
        ...                 # run roles, build bursts
    mon.check()             # NonceReuseError naming the first reuses

Several monitors may be active at once (nested ``monitoring()`` blocks all record). With none
active, the send path pays one truthiness test of :data:`active`. Not thread-safe: record from one
thread at a time (as the sans-I/O roles do).
"""

from __future__ import annotations

import hashlib
import traceback
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stack.errors import MalformedError, NonceReuseError

if TYPE_CHECKING:
    from stack.sa import Tek

FINGERPRINT_LEN = 8
"""Bytes of a TEK fingerprint (BLAKE2b digest size)."""
_PERSON = b"relaysec-tek-fp"
MAX_REUSE_RECORDS = 100
"""Reuse records a monitor keeps (the count of reused PNs goes on past it)."""
_WHERE_FRAMES = 6

active: list[NonceMonitor] = []
"""Monitors recording now, outermost first. :mod:`stack.sa` holds this very list object: it is
changed in place only (never rebound), so an empty list is the one check the send path pays."""

_fingerprints: dict[int, tuple[Tek, bytes]] = {}
"""id(Tek) -> (Tek, fingerprint) while any monitor is active; holding the Tek keeps its id from
being reused. Cleared when the last monitor stops."""


def tek_fingerprint(tek: Tek) -> bytes:
    """8-byte one-way fingerprint of the TEK key bytes (cached per Tek object while monitoring)."""
    hit = _fingerprints.get(id(tek))
    if hit is not None and hit[0] is tek:
        return hit[1]
    fp = hashlib.blake2b(tek.key, digest_size=FINGERPRINT_LEN, person=_PERSON).digest()
    if active:
        _fingerprints[id(tek)] = (tek, fp)
    return fp


def _direction(uplink: bool) -> str:
    return "UL" if uplink else "DL"


@dataclass(frozen=True)
class NonceReuse:
    """One run of reused nonces: ``count`` PNs from ``pn`` on, sent again under the TEK with
    fingerprint ``tek`` (hex) in ``direction`` ("UL"/"DL"). ``at`` is how many PNs the monitor
    had seen before this allocation; ``where`` the innermost caller frames (no key material)."""

    tek: str
    direction: str
    pn: int
    count: int
    at: int
    where: str = ""

    def __str__(self) -> str:
        pns = f"PN {self.pn}" if self.count == 1 else f"PNs {self.pn}..{self.pn + self.count - 1}"
        return f"TEK {self.tek} {self.direction} {pns} sent again (after {self.at} nonces)"


class NonceMonitor:
    """Records every (TEK fingerprint, direction, PN) reported while it is active.

    Per (fingerprint, direction) it keeps the PNs seen as sorted, disjoint, non-adjacent
    half-open intervals; a block that starts at or after the end of the last one (the usual
    case: PNs count up) costs O(1), anything else a binary search plus the overlapped intervals.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.seen = 0
        """PNs (nonces) reported, reused ones included."""
        self.reused = 0
        """PNs reported while already seen (each repeat counts)."""
        self.reuses: list[NonceReuse] = []
        """The first :data:`MAX_REUSE_RECORDS` runs of reuse, in order."""
        self._pns: dict[tuple[bytes, bool], tuple[list[int], list[int]]] = {}

    @property
    def ok(self) -> bool:
        """True while no nonce was reused."""
        return not self.reused

    @property
    def streams(self) -> int:
        """Number of (TEK, direction) pairs seen."""
        return len(self._pns)

    def add(
        self, fingerprint: bytes, uplink: bool, first: int, count: int = 1
    ) -> list[tuple[int, int]]:
        """Record PNs ``first .. first+count-1`` sent under ``fingerprint`` in this direction;
        returns the reused runs ``(pn, count)`` (empty when all were new). Does not make a
        :class:`NonceReuse` record: :func:`report` does, once for every active monitor."""
        if count <= 0:
            return []
        self.seen += count
        key = (fingerprint, uplink)
        ivs = self._pns.get(key)
        if ivs is None:
            self._pns[key] = ([first], [first + count])
            return []
        starts, ends = ivs
        end = first + count
        last = ends[-1]
        if first > last:  # the common case: counting up past everything seen
            starts.append(first)
            ends.append(end)
            return []
        if first == last:
            ends[-1] = end
            return []
        lo = bisect_left(ends, first)  # first interval ending at or after `first`
        hi = lo
        overlaps: list[tuple[int, int]] = []
        n = len(starts)
        while hi < n and starts[hi] <= end:
            o1, o2 = max(first, starts[hi]), min(end, ends[hi])
            if o1 < o2:
                overlaps.append((o1, o2 - o1))
            hi += 1
        if hi > lo:
            first, end = min(first, starts[lo]), max(end, ends[hi - 1])
        starts[lo:hi] = [first]
        ends[lo:hi] = [end]
        self.reused += sum(c for _, c in overlaps)
        return overlaps

    def export(self) -> dict[str, list[tuple[int, int]]]:
        """Every PN seen, as ``{"<fingerprint hex>:<UL|DL>": [(first, count), ...]}`` (JSON-able,
        no key material): what another process's monitor needs to :meth:`merge` it."""
        return {f"{fp.hex()}:{_direction(up)}": [(s, e - s) for s, e in zip(*ivs, strict=True)]
                for (fp, up), ivs in self._pns.items()}

    def merge(self, exported: dict[str, list[tuple[int, int]]], source: str = "") -> None:
        """Add what another monitor :meth:`export`-ed (e.g. another station's process): a PN
        both sent under one TEK and direction counts as reused, with ``where`` naming
        ``source``."""
        for stream, runs in exported.items():
            fp_hex, _, direction = stream.partition(":")
            if direction not in ("UL", "DL"):
                raise MalformedError(f"bad nonce stream name {stream!r}")
            fp = bytes.fromhex(fp_hex)
            for first, count in runs:
                at = self.seen
                for pn, k in self.add(fp, direction == "UL", int(first), int(count)):
                    if len(self.reuses) < MAX_REUSE_RECORDS:
                        self.reuses.append(NonceReuse(fp_hex, direction, pn, k, at,
                                                      f"merged from {source or 'another monitor'}"))

    def describe(self, limit: int = 5) -> str:
        """One line of totals, then the first ``limit`` reuse runs (with where they happened)."""
        name = f" {self.name!r}" if self.name else ""
        head = (f"nonce monitor{name}: {self.seen} nonces in {self.streams} (TEK, direction) "
                f"streams, {self.reused} reused")
        if not self.reused:
            return head
        lines = [head + f" in {len(self.reuses)} run(s)" +
                 (" (records capped)" if len(self.reuses) >= MAX_REUSE_RECORDS else "") + ":"]
        for r in self.reuses[:limit]:
            lines.append(f"  {r}")
            lines.extend(f"      {w}" for w in r.where.splitlines())
        if len(self.reuses) > limit:
            lines.append(f"  ... and {len(self.reuses) - limit} more run(s)")
        return "\n".join(lines)

    def check(self) -> None:
        """Raise :class:`~stack.errors.NonceReuseError` (``nonce_reuse``) if a nonce was reused."""
        if self.reused:
            raise NonceReuseError(self.describe())

    def __repr__(self) -> str:
        name = f"{self.name!r}, " if self.name else ""
        return (f"NonceMonitor({name}seen={self.seen}, streams={self.streams}, "
                f"reused={self.reused})")


def _where() -> str:
    """The innermost caller frames outside this module and stack.sa, one per line."""
    frames = [f for f in traceback.extract_stack()[:-1]
              if not f.filename.endswith(("stack/nonces.py", "stack/sa.py"))]
    return "\n".join(f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-_WHERE_FRAMES:])


def report(tek: Tek, uplink: bool, first: int, count: int = 1) -> None:
    """Tell every active monitor that PNs ``first .. first+count-1`` were handed out to send
    under ``tek`` in this direction (called by :class:`~stack.sa.SecurityAssociation`)."""
    if not active or count <= 0:
        return
    hit = _fingerprints.get(id(tek))
    fp = hit[1] if hit is not None and hit[0] is tek else tek_fingerprint(tek)
    uplink = uplink is True or bool(uplink)
    where: str | None = None
    for mon in active:
        at = mon.seen
        overlaps = mon.add(fp, uplink, first, count)
        if not overlaps:
            continue
        if where is None:
            where = _where()
        for pn, k in overlaps:
            if len(mon.reuses) < MAX_REUSE_RECORDS:
                mon.reuses.append(NonceReuse(fp.hex(), _direction(uplink), pn, k, at, where))


@contextmanager
def monitoring(monitor: NonceMonitor | None = None, *, name: str = "") -> Iterator[NonceMonitor]:
    """Activate ``monitor`` (a new :class:`NonceMonitor` named ``name`` if None) for the block and
    yield it. Blocks may nest or overlap; each monitor sees what is sent while it is active. Does
    not raise on reuse: call :meth:`NonceMonitor.check` (or read ``reused``) afterwards."""
    mon = NonceMonitor(name) if monitor is None else monitor
    active.append(mon)
    try:
        yield mon
    finally:
        for i in range(len(active) - 1, -1, -1):
            if active[i] is mon:
                del active[i]
                break
        if not active:
            _fingerprints.clear()
