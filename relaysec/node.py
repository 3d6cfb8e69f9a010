"""Node runtime: a station = a sans-I/O role + its MAC/security data path + burst modem + radio.

The role (``stack.roles``) owns every key and seals/opens MPDUs through ``stack.mac`` itself; the
runtime only moves bytes and samples (see docs/roles.md §3):

* transmit opportunity (its TDD zone): take ``(neighbour, frame)`` pairs from
  ``role.frames_to_send(now, max_bytes)``, modulate each frame as one burst addressed to the
  neighbour, place the bursts back to back in the zone and hand the IQ to the radio;
* receive: demodulate the zone's samples; a burst failing its CRC is counted against the link
  (transmitter → this station) and dropped; a burst for another station is ignored; a good burst
  goes to ``role.receive(src, payload, now)``, where security checks happen — the role counts
  rejections by reason and never delivers them. Only ``DataReceived`` events reach the
  application.

Two ways to drive nodes:

* :class:`SimNetwork` — all nodes in one process over :mod:`hw.loopback`, stepped in lockstep zone
  by zone on a simulated clock (fast and deterministic from the seed);
* :class:`OtaRunner` — wall clock, one or more nodes each with a real (or emulated) Pluto. The ABS
  is the timing master; the others lock to its DL bursts (:class:`relaysec.schedule.OtaTiming`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from relaysec.chart import chart_entry, clear_control_only, describe_frame
from relaysec.report import MscEntry, Trace
from relaysec.schedule import FrameSchedule, Zone, zone_capacity

if TYPE_CHECKING:
    from hw.radio import Radio
    from hw.sigmf import RecordingRadio
    from phy import BurstModem

log = logging.getLogger(__name__)

#: Samples of silence between two bursts a transmitter sends in one zone.
INTER_BURST_GAP = 64

#: ``tap(tx_name, dst_name, frame) -> frames actually transmitted`` (fault injection in tests).
FrameTap = Callable[[str, str, bytes], list[bytes]]


@dataclass
class LinkStats:
    """Counters of one directed link (transmitter → receiver)."""

    src: str
    dst: str
    bursts_tx: int = 0
    bytes_tx: int = 0
    bursts_rx: int = 0          # bursts detected at the receiver, addressed to it
    crc_fail: int = 0
    bytes_rx: int = 0           # payload bytes of CRC-good bursts
    snr_db: list[float] = field(default_factory=list)
    evm_db: list[float] = field(default_factory=list)
    cfo_hz: list[float] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    app_bytes: int = 0          # application bytes delivered over this hop (end-to-end flows)
    control_bursts: int = 0     # bursts that carried a control message in the clear

    @property
    def name(self) -> str:
        return f"{self.src}->{self.dst}"

    @property
    def per(self) -> float:
        """Burst error rate: 1 − (CRC-good bursts received) / (bursts sent); NaN if none sent."""
        if self.bursts_tx:
            good = self.bursts_rx - self.crc_fail
            return max(0.0, 1.0 - good / self.bursts_tx)
        if self.bursts_rx:
            return self.crc_fail / self.bursts_rx
        return float("nan")

    def summary(self, duration_s: float) -> dict[str, Any]:
        """JSON-ready per-link figures; goodput = CRC-good burst payload bits per second of air."""
        def mean(xs: list[float]) -> float:
            return float(np.mean(xs)) if xs else float("nan")

        return {
            "bursts_tx": self.bursts_tx,
            "bursts_rx": self.bursts_rx,
            "crc_fail": self.crc_fail,
            "per": self.per,
            "snr_db": mean(self.snr_db),
            "evm_db": mean(self.evm_db),
            "cfo_hz": mean(self.cfo_hz),
            "goodput_bps": (8.0 * self.bytes_rx / duration_s) if duration_s > 0 else float("nan"),
            "app_bytes": self.app_bytes,
            "control_bursts": self.control_bursts,
            "rejected": sum(self.rejected.values()),
            "rejections": dict(self.rejected),
        }


class LinkTable:
    """All links seen in a run, keyed by ``"SRC->DST"``; created on first use."""

    def __init__(self) -> None:
        self.links: dict[str, LinkStats] = {}

    def get(self, src: str, dst: str) -> LinkStats:
        key = f"{src}->{dst}"
        if key not in self.links:
            self.links[key] = LinkStats(src, dst)
        return self.links[key]

    def summary(self, duration_s: float) -> dict[str, dict[str, Any]]:
        return {k: v.summary(duration_s) for k, v in sorted(self.links.items())
                if v.bursts_tx or v.bursts_rx}


@dataclass(frozen=True)
class NodeEvent:
    """A role event stamped with the station that produced it and the time."""

    t: float
    station: str
    event: Any


class Role(Protocol):
    """What the runtime needs of a sans-I/O role (``stack.roles``; tests use small fakes)."""

    rejections_by_link: Mapping[tuple[int, str], int]

    def frames_to_send(self, now: float, max_bytes: int | None = None
                       ) -> list[tuple[int, bytes]]: ...

    def receive(self, src: int, frame: bytes, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def timer(self, now: float) -> None: ...

    def events(self) -> list[Any]: ...


@dataclass(frozen=True)
class Addressing:
    """Station ids, names and 16-bit modem burst addresses of one cell.

    ``names``: station id -> name (links and reports); ``addrs``: station id -> burst address
    (None: the station id itself, for tests with small ids)."""

    names: Mapping[int, str]
    addrs: Mapping[int, int] | None = None

    def __post_init__(self) -> None:
        back = {} if self.addrs is None else {a: sid for sid, a in self.addrs.items()}
        object.__setattr__(self, "_station_of", back)

    def name_of(self, station_id: int | None) -> str:
        if station_id is None:
            return "?"
        return self.names.get(station_id, f"0x{station_id:x}")

    def addr_of(self, station_id: int) -> int:
        return station_id if self.addrs is None else self.addrs[station_id]

    def station_of(self, addr: int) -> int | None:
        if self.addrs is None:
            return addr
        return self._station_of.get(addr)  # type: ignore[attr-defined, no-any-return]


class Node:
    """One station: *role* behind *modem* and *radio*, counted in *links*.

    *msc* (optional) collects the security message sequence chart from the role's events
    (:mod:`relaysec.chart`); *trace* per-burst SNR and constellations; *recorder* is the
    SigMF-recording wrapper of *radio* when the run records (bursts are annotated in it).
    """

    def __init__(
        self,
        name: str,
        station_id: int,
        role: Role,
        modem: BurstModem,
        radio: Radio,
        *,
        addressing: Addressing,
        links: LinkTable,
        tx_scale: float = 1.0,
        trace: Trace | None = None,
        msc: list[MscEntry] | None = None,
        recorder: RecordingRadio | None = None,
        max_bursts_per_zone: int = 4,
    ) -> None:
        self.name = name
        self.station_id = station_id
        self.role = role
        self.modem = modem
        self.radio = radio
        self.addressing = addressing
        self.links = links
        self.tx_scale = tx_scale
        self.trace = trace
        self.msc = msc
        self.recorder = recorder
        self.max_bursts_per_zone = max_bursts_per_zone
        self.max_burst_bytes = int(modem.max_payload)
        self.backlog: deque[tuple[int, bytes]] = deque()
        self.events: list[NodeEvent] = []
        self.cpu: Counter[str] = Counter()          # seconds spent per layer
        self._seen_rejections: Counter[tuple[int, str]] = Counter()
        self._capacity_cache: dict[int, int] = {}
        self._window_start: int | None = None
        self._last_rx_len = 0

    # ------------------------------------------------------------------ helpers

    def _name_of(self, station_id: int | None) -> str:
        return self.addressing.name_of(station_id)

    def capacity(self, samples: int) -> int:
        """Largest burst payload (bytes) whose burst fits in *samples*."""
        if samples not in self._capacity_cache:
            self._capacity_cache[samples] = zone_capacity(
                self.modem.burst_samples, self.max_burst_bytes, samples
            )
        return self._capacity_cache[samples]

    def _stack(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.cpu["stack"] += time.perf_counter() - t0

    # ------------------------------------------------------------------ role side

    def poll(self, now: float) -> None:
        """Run due role timers and collect events and rejections (call once per zone or so)."""
        deadline = self.role.next_deadline()
        if deadline is not None and deadline <= now:
            self._stack(self.role.timer, now)
        self._collect(now)

    def _collect(self, now: float) -> None:
        for ev in self.role.events():
            self.events.append(NodeEvent(now, self.name, ev))
            if self.msc is not None:
                entry = chart_entry(now, self.name, ev, self._name_of)
                if entry is not None:
                    self.msc.append(entry)
        for (peer, reason), count in self.role.rejections_by_link.items():
            new = count - self._seen_rejections[(peer, reason)]
            if new > 0:
                self.links.get(self._name_of(peer), self.name).rejected[reason] += new
                self._seen_rejections[(peer, reason)] = count

    def drain_events(self) -> list[NodeEvent]:
        out, self.events = self.events, []
        return out

    # ------------------------------------------------------------------ transmit

    def build_zone(
        self, now: float, zone_samples: int, *, tap: FrameTap | None = None, lead: int = 0
    ) -> tuple[np.ndarray | None, list[tuple[int, int]]]:
        """IQ for this node's zone (``None`` if nothing to send) and the ``(dst_id, n_bytes)`` of
        each burst in it. Frames that do not fit stay in the backlog for the next zone.

        *tap* (simulation/test only) sees each frame before modulation and returns the frames
        that actually go on the air: an attacker on the medium that alters or replays bursts.
        *lead*: silent samples before the first burst, so that a receiver whose clock runs a
        little behind the transmitter's still sees the whole burst inside its zone window."""
        zone_samples -= lead
        cap = self.capacity(zone_samples)
        if cap <= 0:
            return None, []
        if not self.backlog:
            # take everything the role has queued (each frame at most one zone's capacity);
            # frames of clear control messages only (PKMv3, ranging: no PN, so reordering them
            # cannot trip a replay window) go before data, so that a saturating data load does
            # not starve key management (TEK refresh requests timing out behind data)
            frames: list[tuple[int, bytes]] = []
            while more := self._stack(self.role.frames_to_send, now, cap):
                frames.extend(more)
            frames.sort(key=lambda f: not clear_control_only(f[1]))
            self.backlog.extend(frames)
        pieces: list[np.ndarray] = []
        sent: list[tuple[int, int]] = []
        used = 0
        while self.backlog and len(sent) < self.max_bursts_per_zone:
            dst, frame = self.backlog[0]
            if len(frame) > cap:
                # A role must honour max_bytes; a longer frame can never be sent. Drop it loudly.
                log.error("%s: frame of %d bytes exceeds zone capacity %d; dropped",
                          self.name, len(frame), cap)
                self.backlog.popleft()
                continue
            n = self.modem.burst_samples(len(frame))
            extra = n + (INTER_BURST_GAP if pieces else 0)
            if used + extra > zone_samples:
                break
            self.backlog.popleft()
            if any(k == "control" for k, _ in describe_frame(frame)):
                self.links.get(self.name, self._name_of(dst)).control_bursts += 1
            on_air = [frame] if tap is None else tap(self.name, self._name_of(dst), frame)
            for air in on_air:
                t0 = time.perf_counter()
                iq = self.modem.modulate(air, src=self.addressing.addr_of(self.station_id),
                                         dst=self.addressing.addr_of(dst))
                self.cpu["modem"] += time.perf_counter() - t0
                if pieces:
                    pieces.append(np.zeros(INTER_BURST_GAP, np.complex64))
                pieces.append(np.asarray(iq, dtype=np.complex64) * np.float32(self.tx_scale))
                sent.append((dst, len(air)))
                link = self.links.get(self.name, self._name_of(dst))
                link.bursts_tx += 1
                link.bytes_tx += len(air)
            used += extra
        if not pieces:
            return None, []
        if lead > 0:
            pieces.insert(0, np.zeros(lead, np.complex64))
        return np.concatenate(pieces), sent

    def modulate_raw(self, payload: bytes, dst_addr: int) -> np.ndarray:
        """One burst from this node to a raw modem address (the OTA beacon), scaled for TX."""
        t0 = time.perf_counter()
        iq = self.modem.modulate(payload, src=self.addressing.addr_of(self.station_id),
                                 dst=dst_addr)
        self.cpu["modem"] += time.perf_counter() - t0
        return np.asarray(iq, dtype=np.complex64) * np.float32(self.tx_scale)

    def transmit(self, iq: np.ndarray, **kw: Any) -> None:
        t0 = time.perf_counter()
        self.radio.transmit(iq, **kw)
        self.cpu["radio"] += time.perf_counter() - t0

    # ------------------------------------------------------------------ receive

    def receive_samples(self, n: int) -> np.ndarray:
        t0 = time.perf_counter()
        if self.recorder is not None:
            self._window_start = self.recorder.rx_index
        iq = self.radio.receive(n)
        self._last_rx_len = len(iq)
        self.cpu["radio"] += time.perf_counter() - t0
        return iq

    def skip_samples(self, n: int) -> None:
        """Let *n* samples pass (unrendered where the radio can skip)."""
        t0 = time.perf_counter()
        self.radio.skip(n)
        self.cpu["radio"] += time.perf_counter() - t0

    def handle_samples(self, iq: np.ndarray, now: float, *,
                       expect_src: str | Callable[[int], str | None] | None = None,
                       accept: Callable[[Any], bool] | None = None) -> list[Any]:
        """Demodulate *iq*, account every burst addressed here, feed good ones to the role.

        *expect_src* (the zone's transmitter, or a function of a burst's start sample giving it)
        attributes CRC failures, whose header cannot be trusted.
        *accept* filters bursts first (over the air: drop ones already seen in the overlap of
        the previous chunk). Returns the accepted bursts (for timing recovery over the air)."""
        t0 = time.perf_counter()
        bursts = self.modem.demodulate(iq)
        self.cpu["modem"] += time.perf_counter() - t0
        if accept is not None:
            bursts = [b for b in bursts if accept(b)]
        if self.recorder is not None and self._window_start is not None:
            base = self._window_start - (len(iq) - self._last_rx_len)
            for b in bursts:
                self.recorder.annotate(
                    max(0, base + int(b.start)), int(getattr(b, "n_samples", 0)),
                    label="burst" if b.crc_ok else "burst (CRC fail)", crc_ok=bool(b.crc_ok),
                    snr_db=float(b.snr_db), cfo_hz=float(b.cfo_hz), evm_db=float(b.evm_db),
                    src=int(b.src), dst=int(b.dst), mcs=str(getattr(b, "mcs", "")))
        my_addr = self.addressing.addr_of(self.station_id)
        for b in bursts:
            if b.crc_ok and b.dst != my_addr:
                continue  # someone else's burst: not ours to count or deliver
            src_id = self.addressing.station_of(b.src) if b.crc_ok else None
            if src_id is not None:
                src_name = self._name_of(src_id)
            elif callable(expect_src):
                src_name = expect_src(int(b.start)) or "?"
            else:
                src_name = expect_src or "?"
            link = self.links.get(src_name, self.name)
            link.bursts_rx += 1
            if self.trace is not None:
                self.trace.add_burst(link.name, now, float(b.snr_db), bool(b.crc_ok))
            if not b.crc_ok:
                link.crc_fail += 1
                continue
            link.bytes_rx += len(b.payload)
            link.snr_db.append(float(b.snr_db))
            if getattr(b, "evm_db", None) is not None:
                link.evm_db.append(float(b.evm_db))
            if getattr(b, "cfo_hz", None) is not None:
                link.cfo_hz.append(float(b.cfo_hz))
            symbols = getattr(b, "symbols", None)   # equalised data symbols (phy.Burst)
            if self.trace is not None and symbols is not None:
                self.trace.add_symbols(link.name, symbols[:512])
            if src_id is None:
                continue
            self._stack(self.role.receive, src_id, bytes(b.payload), now)
        self._collect(now)
        return bursts


class SimNetwork:
    """Nodes sharing one loopback medium, stepped zone by zone on a simulated clock.

    Per zone: the zone's transmitter builds and transmits its bursts (at the zone start in its own
    sample clock, after a lead-in of half a guard: radio clocks differ by their random start
    delays, as unsynchronised Plutos do); then every radio receives the zone plus its guard; each
    receiver demodulates. A receiver skips demodulation when no burst of
    the zone is addressed to it — a simulation shortcut for speed (over the air every node
    demodulates everything); it changes no result because unaddressed bursts are discarded anyway.
    """

    def __init__(self, nodes: Iterable[Node], schedule: FrameSchedule,
                 *, tap: FrameTap | None = None) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.schedule = schedule
        self.frame = 0
        self.tap = tap

    @property
    def now(self) -> float:
        return self.frame * self.schedule.frame_s

    def step_frame(self) -> None:
        """Run one TDD frame."""
        fs = self.schedule.sample_rate
        base = self.frame * self.schedule.frame_len
        for zone in self.schedule.zones:
            self._run_zone(zone, (base + zone.start) / fs, (base + zone.end) / fs)
        tail = self.schedule.frame_len - (self.schedule.zones[-1].end if self.schedule.zones else 0)
        if tail > 0:
            for node in self.nodes.values():
                node.skip_samples(tail)
        self.frame += 1
        end = self.frame * self.schedule.frame_s
        for node in self.nodes.values():
            node.poll(end)

    def _run_zone(self, zone: Zone, t_start: float, t_end: float) -> None:
        tx = self.nodes[zone.tx]
        tx.poll(t_start)
        iq, sent = tx.build_zone(t_start, zone.length, tap=self.tap, lead=zone.guard // 2)
        if iq is not None:
            tx.transmit(iq)
        audience = {d for d, _ in sent}
        n = zone.length + zone.guard
        for node in self.nodes.values():
            if node is tx or node.station_id not in audience:
                node.skip_samples(n)
                continue
            rx = node.receive_samples(n)
            node.handle_samples(rx, t_end, expect_src=zone.tx)

    def close(self) -> None:
        """Nothing to stop in simulation (same interface as the OTA network)."""

    def events(self) -> list[NodeEvent]:
        out: list[NodeEvent] = []
        for node in self.nodes.values():
            out.extend(node.drain_events())
        out.sort(key=lambda e: e.t)
        return out

    def cpu(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for node in self.nodes.values():
            total.update(node.cpu)
        return total
