"""Node runtime: a station = a sans-I/O role + its zone MAC + zone-burst modem + radio.

The role (``stack.roles``) owns every key and seals/opens MPDUs through ``stack.mac`` itself; the
runtime only moves bytes and samples (see docs/roles.md §3):

* transmit opportunity (its zone): the station's MAC (:mod:`relaysec.zonemac`) shares the zone
  among the neighbours the role has frames for, pulls each neighbour's frame sized to its
  allocation (``role.frames_to_send(now, max_bytes, dst=...)``) and sends them all as one zone
  burst (:class:`phy.ZoneModem`: an A-MAP, then the allocations), with the UL grants of its AMSs;
  an AMS sends in the slot its serving station granted it (or in a contention slot);
* receive: demodulate the zone's samples; an allocation failing its CRC is counted against the
  link (transmitter → this station) and dropped; allocations for other stations are not even
  decoded (their MAP entries do not check under our address); a good allocation goes to
  ``role.receive(src, payload, now)``, where security checks happen — the role counts rejections
  by reason and never delivers them. Only ``DataReceived`` events reach the application.

Two ways to drive nodes:

* :class:`relaysec.simnet.SimNetwork` — all nodes in one process over :mod:`hw.loopback`, stepped
  in lockstep zone by zone on a simulated clock (fast and deterministic from the seed); the zone
  lengths of each frame follow demand (:class:`relaysec.schedule.ZonePlanner`);
* :class:`relaysec.ota.OtaNetwork` — wall clock, one or more nodes each with a real (or
  emulated) Pluto. The ABS is the timing master; the others lock to its DL bursts.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from relaysec.chart import chart_entry, describe_frame
from relaysec.report import MscEntry, Trace
from relaysec.schedule import DL_ACCESS, UL_RELAY
from relaysec.zonemac import BROADCAST, MacConfig, ZoneMac, stid_address
from stack.errors import SecurityError
from stack.roles.framing import frame_bounds

if TYPE_CHECKING:
    from hw.radio import Radio
    from hw.sigmf import RecordingRadio
    from phy.zone import ZoneModem, ZoneRx
    from relaysec.aaa import RadiusLink

log = logging.getLogger(__name__)

#: ``tap(tx_name, dst_name, frame) -> frames actually transmitted`` (fault injection in tests).
FrameTap = Callable[[str, str, bytes], list[bytes]]


def _largest_mpdu(payload: bytes) -> int:
    """The largest MPDU of an allocation (its own length if it does not parse as MPDUs): the
    unit a granting station sizes UL slots in -- not the allocation, which may also carry a
    small MPDU beside it (an ARQ feedback) and so overstate the unit by that much."""
    try:
        bounds = frame_bounds(bytes(payload))
    except SecurityError:
        return len(payload)
    return max((b - a for a, b in pairwise(bounds)), default=0)


#: Size arithmetic of :class:`phy.ZoneModem` that the MAC, the zone planner and the simulator
#: ask thousands of times a second with a few hundred distinct arguments.
_SIZE_METHODS = ("ru_capacity", "rus_for", "overhead_symbols", "data_symbols", "zone_samples")
_SIZE_MEMOS: dict[tuple[Any, ...], dict[str, Any]] = {}


def memoize_sizes(modem: ZoneModem) -> ZoneModem:
    """Give *modem* memoised copies of its pure size functions (``ru_capacity``, ``rus_for``,
    ``overhead_symbols``, ``data_symbols``, ``zone_samples``) and return it.

    Why: each answer walks the punctured code's length (``phy.fec``), and the MAC and planner
    ask per zone and per candidate size (16 000 calls in the default trial, a fifth of its
    run time). The functions depend only on their integer/MCS arguments and the modem's fixed
    numerology, so the memo changes no result; errors are not cached (they raise every time).
    Modems of the same numerology (every station of a cell) share one memo."""
    sig = (type(modem), modem.profile.name, modem.max_payload, modem.max_data_symbols,
           modem.max_entries, modem.ru_per_symbol)
    shared = _SIZE_MEMOS.setdefault(sig, {})
    for name in _SIZE_METHODS:
        fn = getattr(modem, name, None)
        if fn is None or hasattr(fn, "cache_info"):
            continue
        if name not in shared:
            shared[name] = functools.lru_cache(maxsize=8192)(fn)
        setattr(modem, name, shared[name])
    return modem


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
    measured: int = 0           # CRC-good bursts whose SNR/EVM/CFO are in the sums below
    snr_db_sum: float = 0.0     # running sums, not per-burst lists: a 600 s soak receives
    evm_db_sum: float = 0.0     # 100 000s of bursts
    cfo_hz_sum: float = 0.0
    rejected: Counter[str] = field(default_factory=Counter)
    mcs: Counter[str] = field(default_factory=Counter)   # allocations sent per MCS
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
        def mean(total: float) -> float:
            return total / self.measured if self.measured else float("nan")

        return {
            "bursts_tx": self.bursts_tx,
            "bursts_rx": self.bursts_rx,
            "crc_fail": self.crc_fail,
            "per": self.per,
            "snr_db": mean(self.snr_db_sum),
            "evm_db": mean(self.evm_db_sum),
            "cfo_hz": mean(self.cfo_hz_sum),
            "goodput_bps": (8.0 * self.bytes_rx / duration_s) if duration_s > 0 else float("nan"),
            "app_bytes": self.app_bytes,
            "control_bursts": self.control_bursts,
            "rejected": sum(self.rejected.values()),
            "mcs": dict(self.mcs),
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

    def backlog(self) -> Mapping[int, Any]: ...

    def expected_arrivals(self) -> int: ...

    def expected_stids(self) -> list[int]: ...

    def take_arrivals(self) -> list[int]: ...

    def frames_to_send(self, now: float, max_bytes: int | None = None, *,
                       dst: int | None = None) -> list[tuple[int, bytes]]: ...

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
    """One station: *role* behind its zone MAC, *modem* and *radio*, counted in *links*.

    *infrastructure*: station ids of the ABS and the ARSs (every other station heard in a UL
    burst is an AMS this station may grant slots to). *msc* (optional) collects the security
    message sequence chart from the role's events (:mod:`relaysec.chart`); *trace* per-burst SNR
    and constellations; *recorder* is the SigMF-recording wrapper of *radio* when the run
    records (bursts are annotated in it).
    """

    def __init__(
        self,
        name: str,
        station_id: int,
        role: Role,
        modem: ZoneModem,
        radio: Radio,
        *,
        addressing: Addressing,
        links: LinkTable,
        abs_id: int,
        infrastructure: Iterable[int] = (),
        mac: MacConfig | None = None,
        seed: int = 0,
        tx_scale: float = 1.0,
        trace: Trace | None = None,
        msc: list[MscEntry] | None = None,
        recorder: RecordingRadio | None = None,
        aaa: RadiusLink | None = None,
    ) -> None:
        self.name = name
        self.station_id = station_id
        self.role = role
        self.modem = modem
        self.radio = radio
        self.addressing = addressing
        self.links = links
        self.abs_id = abs_id
        self.infrastructure = frozenset(infrastructure) | {abs_id}
        self.tx_scale = tx_scale
        self.trace = trace
        self.msc = msc
        self.recorder = recorder
        self.aaa = aaa        # the ABS's RADIUS link (relaysec.aaa), serviced on every poll
        self.addr = addressing.addr_of(station_id)
        self.mac = ZoneMac(station_id, modem, role, mac or MacConfig(), addressing.addr_of,
                           addressing.station_of, abs_id, modem.profile.name, seed=seed)
        self.sym = modem.grid.symbol_samples
        self.last_data_mcs: str | None = None   # MCS of the last burst's data, if it had data
        self.events: list[NodeEvent] = []
        self.cpu: Counter[str] = Counter()          # seconds spent per layer
        self._seen_rejections: Counter[tuple[int, str]] = Counter()
        self._window_start: int | None = None
        self._last_rx_len = 0
        self._empty_bursts: dict[int, np.ndarray] = {}   # queue report -> empty zone burst

    # ------------------------------------------------------------------ helpers

    def _name_of(self, station_id: int | None) -> str:
        return self.addressing.name_of(station_id)

    def _stack(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.cpu["stack"] += time.perf_counter() - t0

    @property
    def is_ams(self) -> bool:
        return self.station_id not in self.infrastructure

    def wants(self, owner: int) -> bool:
        """Whether this station has frames waiting for *owner* (an AMS before a contention
        slot; used by the simulator to decide who listens to a DL burst carrying one)."""
        return owner in self.role.backlog()

    # ------------------------------------------------------------------ role side

    def poll(self, now: float) -> None:
        """Run due role timers and collect events and rejections (call once per zone or so)."""
        if self.aaa is not None and self._stack(self.aaa.service, now):
            self._stack(self.role.timer, now)   # the AAA server answered: the role polls
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

    def _peers(self, kind: str) -> Callable[[int], bool]:
        """Which neighbours a zone of *kind* reaches: a UL-relay zone the ABS only, an ARS's
        DL-access zone its AMSs only, the ABS's DL zone everyone."""
        if kind == UL_RELAY:
            return lambda d: d == self.abs_id
        if kind == DL_ACCESS:
            return lambda d: d != self.abs_id
        return lambda d: True

    def build_zone(
        self, now: float, zone_samples: int, *, frame: int, kind: str, lead: int = 0,
        ul_symbols: int | None = None, tap: FrameTap | None = None, force: bool = False,
    ) -> tuple[np.ndarray | None, set[int]]:
        """IQ of this station's zone burst (``None`` if nothing to send, unless *force*: the
        ABS's frame reference) and the station ids addressed in it (:data:`BROADCAST` when it
        opens a contention slot). *ul_symbols*: length of this station's UL-access zone of the
        frame the grants are for (None: it owns none). *lead*: silent samples before the burst,
        so that a receiver whose clock runs a little behind still sees the whole burst inside
        its window. *tap* (simulation/test only) sees each frame before modulation and returns
        the frames that actually go on the air: an attacker that alters or replays them."""
        from phy.zone import Allocation

        n_symbols = (zone_samples - lead) // self.sym
        grants = []
        if ul_symbols is not None:
            grants = self.mac.ul_grants(frame + self.mac.config.grant_delay, ul_symbols)
        t0 = time.perf_counter()
        wire_tap = None if tap is None else (lambda d, f: tap(self.name, self._name_of(d), f))
        allocs = self.mac.allocations(now, n_symbols, peers=self._peers(kind), grants=grants,
                                      tap=wire_tap)
        self.cpu["stack"] += time.perf_counter() - t0
        if not allocs and not grants and not force:
            return None, set()
        audience = {d for d, _, _ in allocs}
        for g in grants:
            sid = self.addressing.station_of(g.dst) if g.dst != BROADCAST else BROADCAST
            if sid is not None:
                audience.add(sid)
        iq = self._modulate([Allocation(self.addressing.addr_of(d), f, m) for d, f, m in allocs],
                            grants, lead, allocs)
        return iq, audience

    def build_slot(self, now: float, *, frame: int, owner: int, lead: int = 0,
                   tap: FrameTap | None = None) -> np.ndarray | None:
        """IQ of this AMS's burst in *owner*'s UL-access zone of *frame*, placed at its slot
        (``None``: no slot for it in that zone)."""
        from phy.zone import Allocation

        g = self.mac.slot(frame, owner)
        if g is None:
            return None
        blocks, n_ru = self.slot_layout(g.length, g.mcs)
        wire_tap = None if tap is None else (lambda d, f: tap(self.name, self._name_of(d), f))
        frames = [] if self.mac.request_only else self._stack(
            self.mac.pull, now, owner, self.modem.ru_capacity(n_ru, g.mcs), g.mcs,
            room_ru=n_ru, tap=wire_tap, max_blocks=blocks)
        # a slot too small for the first MPDU (a poll) answers with the queue report only
        allocs = [(owner, f, g.mcs) for f in frames] or [(owner, b"", g.mcs)]
        waiting = self.role.backlog().get(owner)
        iq = self._modulate([Allocation(self.addressing.addr_of(owner), f, m)
                             for _, f, m in allocs], [], lead + g.start * self.sym,
                            [a for a in allocs if a[1]],
                            queue_report=0 if waiting is None else waiting.nbytes)
        return iq

    def slot_layout(self, length: int, mcs: str) -> tuple[int, int]:
        """``(blocks, data RUs)`` of a UL slot burst of *length* symbols at *mcs*: the MAP size
        whose blocks and data symbols together carry the most bytes (the fewest entries on a
        tie). Each allocation holds at most ``block_bytes`` (one FEC block), so a MAP of one
        symbol (two entries) capped a slot at two blocks: a 20-symbol slot at 64QAM-3/4 has
        room for 1716 bytes and carried 1077 (six 180-byte MPDUs) before this choice."""
        zm = self.modem
        block = self.mac.config.block_bytes
        best, blocks, n_ru = -1, 1, max(0, length - zm.overhead_symbols(1)) * zm.ru_per_symbol
        b = 1
        while b <= zm.max_entries:
            over = zm.overhead_symbols(b)
            if over >= length:
                break
            while b < zm.max_entries and zm.overhead_symbols(b + 1) == over:
                b += 1            # the most entries this MAP size holds
            ru = (length - over) * zm.ru_per_symbol
            cap = min(b * block, zm.ru_capacity(ru, mcs))
            if cap > best:
                best, blocks, n_ru = cap, b, ru
            if cap < b * block:
                break             # the data symbols, not the blocks, limit it: a larger MAP
                                  # only takes symbols away
            b += 1
        return blocks, n_ru

    def _modulate(self, allocations: list[Any], grants: list[Any], lead: int,
                  sent: list[tuple[int, bytes, str]], *,
                  queue_report: int | None = None) -> np.ndarray:
        """One zone burst; *queue_report*: bytes left for the receiver of a UL slot (default:
        everything this station still has queued)."""
        t0 = time.perf_counter()
        report = min(self.mac.queue_report() if queue_report is None else queue_report,
                     0xFFFF * 16)
        if allocations or grants:
            iq = self.modem.modulate(allocations, src=self.addr, grants=grants,
                                     queue_report=report)
        else:
            # a zone burst with an empty MAP (the ABS's frame reference when it has nothing to
            # send): the same samples every time for the same queue report -- modulate once
            iq = self._empty_bursts.get(report)
            if iq is None:
                iq = self.modem.modulate([], src=self.addr, grants=[], queue_report=report)
                if len(self._empty_bursts) < 64:
                    self._empty_bursts[report] = iq
        self.cpu["modem"] += time.perf_counter() - t0
        n_sym = len(iq) // self.sym
        kinds = [{k for k, _ in describe_frame(f)} for _, f, _ in sent]   # each frame once
        self.last_data_mcs = next((m for (_, _, m), ks in zip(sent, kinds, strict=True)
                                   if ks - {"control"}), None)
        st = self.mac.stats
        st.bursts += 1
        st.symbols += n_sym
        if sent:
            st.data_bursts += 1
            st.allocations += len(sent)
            st.payload_bytes += sum(len(f) for _, f, _ in sent)
            m = sent[0][2]
            st.capacity_bits += self.modem.ru_capacity(n_sym * self.modem.ru_per_symbol, m) * 8
        for (d, f, m), ks in zip(sent, kinds, strict=True):
            link = self.links.get(self.name, self._name_of(d))
            link.bursts_tx += 1
            link.bytes_tx += len(f)
            link.mcs[m] += 1
            if "control" in ks:
                link.control_bursts += 1
        # the burst scaled to the TX level after *lead* silent samples, in one new buffer
        # (the modem's own may be the cached empty burst: never scaled in place)
        pad = max(0, lead)
        out = np.empty(pad + len(iq), np.complex64)
        out[:pad] = 0
        np.multiply(iq, np.float32(self.tx_scale), out=out[pad:])
        return out

    def transmit(self, iq: np.ndarray, **kw: Any) -> object:
        """Hand a burst to the radio; returns what the radio returned (a streaming radio:
        whether the burst was placed)."""
        t0 = time.perf_counter()
        try:
            return self.radio.transmit(iq, **kw)
        finally:
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

    def _addresses(self) -> tuple[int, ...]:
        """The burst addresses we accept MAP entries for: ours, broadcast and, for an AMS with
        an STID, :func:`relaysec.zonemac.stid_address` (a handover target's slots for it)."""
        stid = getattr(self.role, "stid", None) if self.is_ams else None
        if isinstance(stid, int) and 0 < stid < 1 << 12:
            return self.addr, BROADCAST, stid_address(stid)
        return self.addr, BROADCAST

    def handle_samples(self, iq: np.ndarray, now: float, *,
                       frame: int | Callable[[int], int | None] | None = None,
                       expect_src: str | Callable[[int], str | None] | None = None,
                       accept: Callable[[Any], bool] | None = None,
                       behind: int = 0,
                       known: Sequence[tuple[int, int]] = (),
                       starts: Sequence[tuple[int, int]] | None = None) -> list[ZoneRx]:
        """Demodulate *iq*, account every allocation addressed here, feed good ones to the role.

        *behind*: samples between the end of *iq* and the end of what was received last (a
        part of a buffer, over the air), so a recording's annotations land where they belong.

        *frame*: the frame the samples belong to, or a function of a burst's start sample giving
        it (grants found are for its UL zones; None: not known yet, grants ignored).
        *expect_src* (the zone's transmitter, or a function of a burst's start sample giving it)
        attributes CRC failures of bursts whose transmitter is unknown. *accept* filters zone
        bursts first (over the air: drop ones already seen in the
        overlap of the previous chunk); *known*: ``(start, end)`` samples of *iq* where bursts
        were had before, not decoded again; *starts*: ``(lo, hi)`` samples of *iq* where its
        bursts may start, None: anywhere (both ``phy.ZoneModem.demodulate``). Returns the
        accepted zone bursts (timing recovery)."""
        t0 = time.perf_counter()
        bursts = self.modem.demodulate(iq, me=self._addresses(), known=known, starts=starts)
        self.cpu["modem"] += time.perf_counter() - t0
        if accept is not None:
            bursts = [b for b in bursts if accept(b)]
        if self.recorder is not None and self._window_start is not None:
            base = self._window_start - (len(iq) + behind - self._last_rx_len)
            for zb in bursts:
                self.recorder.annotate(
                    max(0, base + int(zb.start)), int(zb.n_samples), label="zone burst",
                    crc_ok=all(a.crc_ok for a in zb.allocations), snr_db=float(zb.snr_db),
                    cfo_hz=float(zb.cfo_hz), evm_db=float(zb.evm_db), src=int(zb.src),
                    allocations=len(zb.allocations))
        return self.handle_bursts(bursts, now, frame=frame)

    def handle_bursts(self, bursts: list[ZoneRx], now: float, *,
                      frame: int | Callable[[int], int | None] | None = None,
                      accept: Callable[[Any], bool] | None = None) -> list[ZoneRx]:
        """The zone bursts demodulated elsewhere (:meth:`handle_samples` after its
        demodulation, or a :class:`relaysec.demod_worker.DemodWorker`): accounted, and the good
        allocations fed to the role; *frame* and *accept* as :meth:`handle_samples`. Returns
        the accepted ones."""
        if accept is not None:
            bursts = [b for b in bursts if accept(b)]
        for zb in bursts:
            src_id = self.addressing.station_of(zb.src)
            if src_id is None or src_id == self.station_id:
                continue   # an unknown transmitter, or our own burst heard back (over the air)
            self.mac.observe(src_id, float(zb.snr_db))
            k = frame(int(zb.start)) if callable(frame) else frame
            if k is not None and zb.grants:
                self.mac.note_grants(k, src_id, zb.grants)
            if k is not None and zb.allocations and src_id not in self.infrastructure:
                sizes = [_largest_mpdu(a.payload) for a in zb.allocations if a.crc_ok]
                self.mac.heard(k, src_id, int(zb.queue_report), subscriber=True,
                               data=any(sizes), largest=max(sizes, default=0))
            self._deliver(zb, src_id, now)
        self._collect(now)
        return bursts

    def _deliver(self, zb: ZoneRx, src_id: int, now: float) -> None:
        link = self.links.get(self._name_of(src_id), self.name)
        for b in zb.allocations:
            if b.dst != self.addr or (b.crc_ok and not b.payload):
                continue      # broadcast allocations (none are sent); a poll's empty answer
            link.bursts_rx += 1
            if self.trace is not None:
                self.trace.add_burst(link.name, now, float(zb.snr_db), bool(b.crc_ok))
            if not b.crc_ok:
                link.crc_fail += 1
                continue
            link.bytes_rx += len(b.payload)
            link.measured += 1
            link.snr_db_sum += float(zb.snr_db)
            link.evm_db_sum += float(b.evm_db)
            link.cfo_hz_sum += float(zb.cfo_hz)
            if self.trace is not None and b.symbols is not None:
                self.trace.add_symbols(link.name, b.symbols[:512])
            if b.payload:     # an empty allocation answers a poll: nothing for the role
                self._stack(self.role.receive, src_id, bytes(b.payload), now)
