"""TDD frame schedule of the relay cell: DL and UL subframes with relay and access zones.

The 802.16m relay frame splits the DL and the UL subframes into *access* zones (station ↔
mobile) and *relay* zones (ABS ↔ ARS). All our radios share one carrier and there is no spatial
reuse, so each zone has one owner, and the frame is::

    | DL: ABS | DL-access: ARS-1 | ... | UL-access: ABS | UL-access: ARS-1 | UL-relay: ARS-1 | ..
    |<-zone->|g|<--- zone ----->|g| ...                                                   idle|

with a guard ``g`` after every zone (the TTG/RTG of 16m: time for the radio to turn around and,
over the air, for USB latency). In a DL zone (the ABS's, carrying both its relay traffic to the
ARSs and its access traffic to its own AMSs; an ARS's DL-access zone) the owner sends **one zone
burst** (:class:`phy.ZoneModem`: an A-MAP, then the allocations of every receiver), so sync
overhead is paid once per zone; its MAP also carries the **UL grants** of its AMSs for its
UL-access zone of the same frame. A UL-access zone is shared by the AMSs of its owner in
time-divided slots, each a short zone burst of its own (an AMS is not time-aligned with another
beyond the frame start), plus a *contention* slot for AMSs without a grant (initial ranging),
opened every few frames. In a UL-relay zone an ARS sends one zone burst to the ABS. Downlink
comes first, so a packet from the ABS reaches an AMS through an ARS within one frame, and uplink
in the same order back. The ABS's DL zone is also the frame reference over the air (see
:class:`OtaTiming`).

Zone lengths: :func:`build_schedule` gives the static layout (lengths shared by weight, the ABS's
DL zone ``abs_weight`` shares); :class:`ZonePlanner` re-divides each frame by demand (queue
reports), as the ABS configures the relay-zone split of a 16m frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

#: Zone kinds.
DL, DL_ACCESS, UL_ACCESS, UL_RELAY = "DL", "DL-access", "UL-access", "UL-relay"


@dataclass(frozen=True)
class Zone:
    """One zone of the frame; times in samples from frame start. *tx* sends (for a UL-access
    zone: its *owner*, the station whose AMSs send in granted slots and which receives them)."""

    name: str       # kind: "DL", "DL-access", "UL-access", "UL-relay"
    tx: str         # transmitting station (UL-access: the owner)
    start: int      # first sample of the zone
    length: int     # samples available to the transmitter(s)
    guard: int      # idle samples after the zone

    @property
    def end(self) -> int:
        """First sample after the zone's guard."""
        return self.start + self.length + self.guard

    @property
    def kind(self) -> str:
        return self.name

    @property
    def shared(self) -> bool:
        """A UL-access zone: several transmitters (the owner's AMSs) in granted slots."""
        return self.name == UL_ACCESS


@dataclass(frozen=True)
class FrameSchedule:
    """Zones of one TDD frame at *sample_rate*; ``frame_len`` samples in all (idle tail too)."""

    sample_rate: float
    frame_len: int
    zones: tuple[Zone, ...]

    @property
    def frame_s(self) -> float:
        return self.frame_len / self.sample_rate

    def zone_of(self, tx: str) -> list[Zone]:
        """The zones in which *tx* transmits (or, for UL-access, which it owns)."""
        return [z for z in self.zones if z.tx == tx]

    def heard_by(self, name: str, role: str) -> tuple[int, ...]:
        """Indices of the zones station *name* (role "abs"/"ars"/"ams") receives in: what it
        gets data in, and the ABS's DL zone (the frame reference). Over the air a node
        demodulates only these, and its own zones (:meth:`sent_by`) now and then
        (:class:`relaysec.ota.OtaNetwork`); the rest carry nothing for it: another ARS's zones
        concern that ARS's AMSs and the ABS, and an AMS never receives an uplink. An AMS keeps
        every DL-access zone (its handover targets' MAPs and replies)."""
        out = []
        for i, z in enumerate(self.zones):
            if role == "ams":
                need = z.name in (DL, DL_ACCESS)
            elif role == "abs":
                need = z.name == UL_RELAY or (z.name == UL_ACCESS and z.tx == name)
            else:   # an ARS: the ABS's DL zone and the uplink of its own AMSs
                need = z.name == DL or (z.name == UL_ACCESS and z.tx == name)
            if need:
                out.append(i)
        return tuple(out)

    def sent_by(self, name: str, role: str) -> tuple[int, ...]:
        """Indices of the zones station *name* transmits in (an AMS: every UL-access zone, in
        whichever it is granted a slot); over the air a node hears its own bursts back to keep
        its TX timing."""
        if role == "ams":
            return tuple(i for i, z in enumerate(self.zones) if z.name == UL_ACCESS)
        return tuple(i for i, z in enumerate(self.zones) if z.tx == name and z.name != UL_ACCESS)

    def describe(self) -> str:
        """One line per zone, for logs and docs."""
        us = 1e6 / self.sample_rate
        rows = [f"frame {self.frame_len} samples = {self.frame_s * 1e3:.3f} ms"]
        rows += [
            f"  {z.name:<10} {z.tx:<8} start {z.start * us:9.1f} us  "
            f"length {z.length * us:8.1f} us  guard {z.guard * us:6.1f} us"
            for z in self.zones
        ]
        return "\n".join(rows)


def zone_order(stations: Sequence[tuple[str, str]],
               access_owners: Iterable[str] | None = None) -> list[tuple[str, str, float]]:
    """``(kind, station, weight)`` of every zone, in frame order (weights 1; the ABS's DL zone
    is weighted by the caller). *access_owners*: stations with a UL-access zone (default: the
    ABS and every ARS)."""
    abs_ = [n for n, r in stations if r == "abs"]
    arss = [n for n, r in stations if r == "ars"]
    if len(abs_) != 1:
        raise ValueError("a schedule needs exactly one ABS")
    owners = set(abs_ + arss if access_owners is None else access_owners)
    order: list[tuple[str, str, float]] = [(DL, abs_[0], 1.0)]
    order += [(DL_ACCESS, n, 1.0) for n in arss]
    order += [(UL_ACCESS, n, 1.0) for n in abs_ + arss if n in owners]
    order += [(UL_RELAY, n, 1.0) for n in arss]
    return order


def build_schedule(
    stations: Sequence[tuple[str, str]],
    *,
    sample_rate: float,
    frame_s: float,
    guard_s: float,
    abs_weight: float = 2.0,
    access_owners: Iterable[str] | None = None,
) -> FrameSchedule:
    """The static frame for ``stations`` = ``[(name, role), ...]`` (role "abs"/"ars"/"ams"):
    zone lengths shared by weight (the ABS's DL zone ``abs_weight``, every other zone 1).

    Raises ``ValueError`` when the guards leave no room for the zones.
    """
    order = zone_order(stations, access_owners)
    order[0] = (order[0][0], order[0][1], abs_weight)
    frame_len = round(frame_s * sample_rate)
    guard = max(1, round(guard_s * sample_rate))
    usable = frame_len - guard * len(order)
    if usable <= 0:
        raise ValueError(
            f"frame of {frame_s * 1e3:.3f} ms cannot hold {len(order)} zones with "
            f"{guard_s * 1e6:.0f} us guards"
        )
    total_w = sum(w for _, _, w in order)
    zones = []
    t = 0
    for name, tx, w in order:
        length = int(usable * w / total_w)
        zones.append(Zone(name, tx, t, length, guard))
        t += length + guard
    return FrameSchedule(sample_rate, frame_len, tuple(zones))


class ZonePlanner:
    """Re-divides the frame among the zones of a static schedule by demand, frame by frame.

    ``plan(demand, frame)``: *demand* maps a zone index to ``(bytes waiting, largest first
    MPDU)`` (queue reports). Zones with demand share the air by *weights* (deficit round
    robin: each busy zone is owed its weighted share of every frame and pays for the air it
    gets; the weight of a zone is e.g. the number of mobiles whose traffic it carries) and are
    served most-owed first, each as long as its bytes need (``need(index, bytes) -> samples``)
    but at most ``max_len`` and at least what its first MPDU needs, while the frame has room: a
    saturated cell thus runs a few long zones per frame in turn rather than every zone short
    every frame, since each zone pays its preamble, header and MAP once. A zone whose relay
    holds more for the next hop than the zone itself holds waits (backpressure). A zone
    without demand gets ``min_len`` only one frame in
    ``idle_every`` (a station's zones all together, so its owner can still send control
    messages, be heard and offer a contention slot), if room is left. The first zone (the ABS's
    DL zone, the frame reference) is always present.

    MPDUs are not fragmented, so a zone carries whole MPDUs: with *units* (``units(i, k, head)``
    -> samples a zone needs for *k* MPDUs of *head* bytes), a served zone is cut to the whole
    MPDUs its length holds, the room that frees admits waiting zones, and what is left grows the
    served zones an MPDU at a time, in turn; air that no whole MPDU fits is left idle rather than
    given to a zone that could not use it. Without *units*, room left over goes to the zones
    served evenly.
    """

    def __init__(self, base: FrameSchedule, *, min_len: int,
                 need: Callable[[int, int], int], idle_every: int = 4,
                 max_len: int | None = None, batch: int = 1,
                 units: Callable[[int, int, int], int] | None = None,
                 weights: Sequence[float] | None = None) -> None:
        self.base = base
        n = len(base.zones)
        self.weights = [1.0] * n if weights is None else [max(1e-3, float(w)) for w in weights]
        if len(self.weights) != n:
            raise ValueError(f"{len(self.weights)} zone weights for {n} zones")
        self._owed = [0.0] * n   # air (samples) each busy zone is owed
        self.batch = batch
        self.units = units
        self.min_len = min_len
        self.need = need
        self.idle_every = max(1, idle_every)
        self.max_len = max_len if max_len is not None else base.frame_len
        # a station's zones take their idle turn together (its DL zone carries the grants of
        # its UL-access zone, a contention slot among them)
        owners = list(dict.fromkeys(z.tx for z in base.zones))
        self._turn = [owners.index(z.tx) for z in base.zones]
        self._last = [0] * len(base.zones)
        self._station_turns = [0] * len(owners)   # zone turns each station had so far
        # a UL-access zone only works in a frame that also has its owner's DL zone (the grants)
        self._grants_from = {
            i: next(j for j, d in enumerate(base.zones)
                    if d.tx == z.tx and d.name in (DL, DL_ACCESS))
            for i, z in enumerate(base.zones) if z.shared}
        # the zones each zone feeds at a relay (backpressure): an ARS's UL-access zone its
        # UL-relay zone, the ABS's DL zone the ARSs' DL-access zones
        relay_ul = {z.tx: j for j, z in enumerate(base.zones) if z.name == UL_RELAY}
        self._feeds = {i: ([relay_ul[z.tx]] if z.shared and z.tx in relay_ul else
                           [j for j, d in enumerate(base.zones) if d.name == DL_ACCESS]
                           if z.name == DL else [])
                       for i, z in enumerate(base.zones)}

    def plan(self, demand: Mapping[int, tuple[int, int]], frame: int,
             urgent: Iterable[int] = ()) -> FrameSchedule:
        zones = self.base.zones
        guard = zones[0].guard if zones else 0
        room = self.base.frame_len
        lengths: dict[int, int] = {}

        def take(i: int, length: int) -> bool:
            nonlocal room
            if length + guard > room:
                return False
            lengths[i] = length
            room -= length + guard
            return True

        busy = [i for i in range(len(zones)) if demand.get(i, (0, 0))[0] > 0]
        want = {i: min(self.max_len, max(self.min_len, self.need(i, demand[i][0])))
                for i in busy}
        floor = {i: min(want[i], max(self.min_len, self.need(i, demand[i][1]))) for i in busy}
        # the frame reference is always there, at least short; it grows when its turn comes.
        # Short is a bare zone burst (preamble, header, a small MAP) unless it carries the
        # grants of a busy UL-access zone: a min_len zone too short for an MPDU is dead air
        grants_here = any(self._grants_from.get(i) == 0 for i in busy)
        take(0, self.min_len if grants_here else min(self.min_len, self.need(0, 0)))

        def grow(i: int, length: int) -> bool:
            nonlocal room
            add = length - lengths[i]
            if add > room:
                return False
            lengths[i] += max(0, add)
            room -= max(0, add)
            return True
        def take_with_grants(i: int, length: int) -> bool:
            j = self._grants_from.get(i)
            if j is None or j in lengths:
                return take(i, length)
            first = want.get(j, self.min_len)
            if length + first + 2 * guard > room:
                # both do not fit whole: share the room in proportion to what each wants
                # (the DL zone carrying the grants is often the busier one), each at least
                # its floor -- rather than squeezing the DL zone to one MPDU
                total = room - 2 * guard
                lo_j, lo_i = floor.get(j, self.min_len), floor.get(i, self.min_len)
                first = max(lo_j, min(first, total * first // (first + length)))
                length = max(lo_i, min(length, total - first))
                first = max(lo_j, min(first, total - length))   # the floors first
            if length + first + 2 * guard > room:
                return False
            return take(j, first) and take(i, length)

        # longest-waiting first; a zone that does not fit whole waits for the next frame
        # batching: a zone that cannot fill max_len yet waits up to `batch` frames, so that a
        # saturated cell runs few long zones (their preamble and MAP amortised over more data)
        urgent = set(urgent)   # a control message waits at the head: never batched
        # backpressure: a zone whose relay holds more for the next hop than it holds itself
        # waits (no queue then grows without bound at a relay; control is never held)
        def held(i: int) -> bool:
            ahead = sum(demand.get(j, (0, 0))[0] for j in self._feeds[i])
            return i > 0 and i not in urgent and ahead > demand[i][0]

        ready = [i for i in busy if i in urgent or (not held(i) and (
                 want[i] >= self.max_len or frame - self._last[i] >= self.batch))]
        # deficit round robin: every busy zone not held is owed its weighted share of the air
        # the busy zones get (charged below); an idle zone is owed nothing
        sharing = [i for i in busy if not held(i)]
        for i in range(len(zones)):
            if i not in busy:
                self._owed[i] = 0.0
        turn0 = False   # the frame reference had its turn (not only its bare minimum)
        # most owed first; ties: the ABS's first, then the station whose zones were served fewer
        # times so far, then frame order -- a fixed or frame-rotated order aliases with
        # batching, and one relay's zones won most ties
        def key(i: int) -> tuple[float, bool, int, int]:
            st = self._turn[i]
            return (-self._owed[i], st > 0, self._station_turns[st], i)

        for i in sorted(ready or busy, key=key):
            if i == 0:
                turn0 = grow(0, want[0]) or grow(0, floor[0])
                continue
            if i in lengths:
                continue
            if not take_with_grants(i, want[i]) and floor[i] < want[i]:
                take_with_grants(i, floor[i])
        for i in range(1, len(zones)):
            if i not in lengths and i not in busy \
                    and (frame + self._turn[i]) % self.idle_every == 0:
                take(i, self.min_len)
        served = sorted(lengths)
        for i in served:
            if i or turn0:   # the reference is always there: it waits like the others
                self._last[i] = frame
                self._station_turns[self._turn[i]] += 1
        takers = [i for i in served if i in busy] or [0]
        if self.units is not None:
            def trim(i: int) -> None:
                nonlocal room
                nbytes, head = demand.get(i, (0, 0))
                if nbytes > 0 and head > 0:
                    k, need = self._fit(i, lengths[i], head, nbytes)
                    if k and need < lengths[i]:
                        room += lengths[i] - need
                        lengths[i] = need

            # whole MPDUs only: cut the zones served, admit waiting ones with the room freed
            for i in list(lengths):
                trim(i)
            for i in sorted(ready or busy, key=key):
                if i in lengths:
                    continue
                before = set(lengths)
                if take_with_grants(i, floor[i]):
                    for j in sorted(set(lengths) - before):
                        self._last[j] = frame
                        self._station_turns[self._turn[j]] += 1
                        trim(j)
            # then grow the busy zones an MPDU at a time, in turn: up to max_len, then beyond
            # (air no zone takes is idle)
            for cap in (self.max_len, self.base.frame_len):
                grown = True
                while grown:
                    grown = self._grow_one(lengths, demand, room, cap, key)
                    room -= grown
        else:
            # the rest to the busy zones served, up to what they want, then evenly
            for i in takers:
                add = min(room, max(0, want.get(i, 0) - lengths[i]))
                lengths[i] += add
                room -= add
            if room > 0:
                for k, i in enumerate(takers):
                    lengths[i] += room // len(takers) + (1 if k < room % len(takers) else 0)
        served = sorted(lengths)
        charged = sum(lengths[i] + guard for i in served if i in busy)
        for i in served:
            if i in busy:
                self._owed[i] -= lengths[i] + guard
        total_w = sum(self.weights[i] for i in sharing)
        for i in sharing:   # what was charged is shared out by weight (at most two frames' worth
            # owed: a zone back from a long wait does not take over)
            self._owed[i] = min(self._owed[i] + charged * self.weights[i] / total_w,
                                2.0 * self.base.frame_len)
        out, t = [], 0
        for i in served:
            out.append(replace(zones[i], start=t, length=lengths[i]))
            t += lengths[i] + guard
        return FrameSchedule(self.base.sample_rate, self.base.frame_len, tuple(out))

    def _grow_one(self, lengths: dict[int, int], demand: Mapping[int, tuple[int, int]],
                  room: int, cap: int, key: Callable[[int], Any]) -> int:
        """Give one more whole MPDU to the busy zone in *lengths* still owed the most air after
        what it got this frame (*key* breaks ties), among those with one waiting that fits (at
        most *cap* samples, within *room*); the samples taken (0: none could grow)."""
        assert self.units is not None
        best: tuple[tuple[float, Any], int, int] | None = None
        for i in lengths:
            nbytes, head = demand.get(i, (0, 0))
            if nbytes <= 0 or head <= 0:
                continue
            k, _ = self._fit(i, lengths[i], head, nbytes)
            if k >= -(-nbytes // head):
                continue
            nxt = self.units(i, k + 1, head)
            if lengths[i] < nxt <= cap and nxt - lengths[i] <= room:
                rank = (lengths[i] - self._owed[i], key(i))
                if best is None or rank < best[0]:
                    best = (rank, i, nxt)
        if best is None:
            return 0
        _, i, nxt = best
        taken = nxt - lengths[i]
        lengths[i] = nxt
        return taken

    def _fit(self, i: int, length: int, head: int, nbytes: int) -> tuple[int, int]:
        """``(k, samples)``: the most whole MPDUs of *head* bytes (at most what *nbytes* holds)
        a zone of *length* samples carries, and the length they need."""
        assert self.units is not None
        most = max(1, -(-nbytes // head))
        k, need = 0, self.units(i, 0, head)
        while k < most:
            nxt = self.units(i, k + 1, head)
            if nxt > length:
                break
            k, need = k + 1, nxt
        return k, need


def zone_capacity(burst_samples: Callable[[int], int], max_payload: int, samples: int) -> int:
    """Largest payload (bytes) whose burst fits in *samples*, by bisection over *burst_samples*
    (monotone in the payload size); 0 when not even an empty burst fits."""
    if burst_samples(0) > samples:
        return 0
    lo, hi = 0, max_payload
    if burst_samples(hi) <= samples:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if burst_samples(mid) <= samples:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass
class OtaTiming:
    """Frame timing of a station without a shared clock, locked to the ABS's DL bursts.

    Over the air each node counts samples of its own RX stream. The ABS opens every frame with a
    burst at a fixed offset; a station that detects that burst at RX sample index ``s`` knows the
    frame started at ``s - dl_offset`` in its own sample count, and schedules its own zones from
    there. Until it has heard the ABS (or after ``lost_after`` frames without it) it stays silent.
    TX timing over USB is only accurate to milliseconds, which the wide OTA guards absorb.
    """

    frame_len: int
    dl_offset: int = 0
    lost_after: int = 8
    frame_start: int | None = None
    last_heard: int | None = None
    last_frame: int | None = None     # frame number of the last ABS burst heard
    stale_start: int | None = None    # the anchor before :meth:`lose_anchor` (an estimate)

    def on_abs_burst(self, rx_index: int) -> None:
        """The ABS's DL burst began at *rx_index* (samples of this node's RX stream)."""
        start = rx_index - self.dl_offset
        if self.frame_start is None:
            k = 0
            if self.last_frame is not None:
                # re-anchored after a loss of RX samples that could not be measured: the frame
                # count goes on (the node's zones, grants and peers' state are kept by frame
                # number; counting from 0 again left a node silent in its zones for as many
                # frames as it had run). The old anchor, off by the samples lost, estimates
                # the count; it never goes back.
                k = self.last_frame + 1
                if self.stale_start is not None:
                    k = max(k, round((start - self.stale_start) / self.frame_len))
            self.frame_start = start - k * self.frame_len
            self.stale_start = None
        else:
            # Keep the anchor (frame numbers stay absolute); follow slow drift (sampling-clock
            # offset, TX jitter) by moving the phase half way towards each new observation.
            k = round((start - self.frame_start) / self.frame_len)
            predicted = self.frame_start + k * self.frame_len
            self.frame_start += (start - predicted) // 2
        self.last_heard = rx_index
        self.last_frame = k if self.last_frame is None else max(self.last_frame, k)

    def lose_anchor(self) -> None:
        """This node lost RX samples and could not measure how many: its RX axis no longer
        maps to the ABS's frames. Stay silent until the next ABS burst re-anchors the timing;
        frame numbers then continue from where they were (:meth:`on_abs_burst`)."""
        if self.frame_start is not None:
            self.stale_start = self.frame_start
        self.frame_start = None
        self.last_heard = None

    def locked(self, now_index: int) -> bool:
        """Whether this station may transmit: heard the ABS recently enough."""
        return (
            self.frame_start is not None
            and self.last_heard is not None
            and now_index - self.last_heard <= self.lost_after * self.frame_len
        )

    def next_zone_start(self, zone_start: int, now_index: int) -> int:
        """RX sample index at which the next occurrence of a zone starting at *zone_start* begins
        (not before *now_index*)."""
        if self.frame_start is None:
            raise RuntimeError("not synchronised to the ABS yet")
        k = -(-(now_index - self.frame_start - zone_start) // self.frame_len)
        return self.frame_start + k * self.frame_len + zone_start
