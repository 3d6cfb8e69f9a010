"""TDD frame schedule of the relay network: DL relay/access zones and UL access/relay zones.

The 802.16m relay frame splits the DL and the UL subframes into *access* zones (station ↔ mobile)
and *relay* zones (ABS ↔ ARS). All our radios share one carrier and there is no spatial reuse, so
each zone has exactly one transmitter, and the frame is::

    | DL-relay: ABS | DL-access: ARS-1 | DL-access: ARS-2 | UL-access: AMS | UL-relay: ARS-1 | ...
    |<--- zone --->|g|<--- zone ----->|g| ...                                                  idle|

with a guard ``g`` after every zone (the TTG/RTG of 16m: time for the radio to turn around and, over
the air, for USB latency). Downlink comes first, so a packet from the ABS reaches the AMS through an
ARS within one frame, and uplink in the same order back. The ABS's DL zone is also the frame
reference: it always carries at least a short burst, so stations that have no shared clock (over
the air) can find the frame start from it (see :class:`OtaTiming`).

Zone length is shared equally among zones, except the ABS DL zone which gets ``abs_weight`` shares
(it feeds every relay). The schedule knows only station names and roles, not the PHY; the runtime
asks the modem how many payload bytes fit a zone (:func:`zone_capacity`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Zone:
    """One transmit opportunity: *tx* sends, everyone else listens; times in samples from frame
    start."""

    name: str       # e.g. "DL-relay", "DL-access", "UL-access", "UL-relay"
    tx: str         # transmitting station
    start: int      # first sample of the zone
    length: int     # samples available to the transmitter
    guard: int      # idle samples after the zone

    @property
    def end(self) -> int:
        """First sample after the zone's guard."""
        return self.start + self.length + self.guard


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
        """The zones in which *tx* transmits."""
        return [z for z in self.zones if z.tx == tx]

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


def build_schedule(
    stations: Sequence[tuple[str, str]],
    *,
    sample_rate: float,
    frame_s: float,
    guard_s: float,
    abs_weight: float = 2.0,
) -> FrameSchedule:
    """Build the frame for ``stations`` = ``[(name, role), ...]`` (role "abs"/"ars"/"ams").

    Raises ``ValueError`` when the guards leave no room for the zones.
    """
    abs_ = [n for n, r in stations if r == "abs"]
    arss = [n for n, r in stations if r == "ars"]
    amss = [n for n, r in stations if r == "ams"]
    if len(abs_) != 1:
        raise ValueError("a schedule needs exactly one ABS")
    order: list[tuple[str, str, float]] = [("DL-relay", abs_[0], abs_weight)]
    order += [("DL-access", n, 1.0) for n in arss]
    order += [("UL-access", n, 1.0) for n in amss]
    order += [("UL-relay", n, 1.0) for n in arss]
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

    def on_abs_burst(self, rx_index: int) -> None:
        """The ABS's DL burst began at *rx_index* (samples of this node's RX stream)."""
        start = rx_index - self.dl_offset
        if self.frame_start is None:
            self.frame_start = start
        else:
            # Keep the anchor (frame numbers stay absolute); follow slow drift (sampling-clock
            # offset, TX jitter) by moving the phase half way towards each new observation.
            k = round((start - self.frame_start) / self.frame_len)
            predicted = self.frame_start + k * self.frame_len
            self.frame_start += (start - predicted) // 2
        self.last_heard = rx_index

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
