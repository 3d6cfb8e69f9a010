"""Over-the-air operation: nodes on real (or emulated) Plutos, driven by the wall clock.

There is no shared clock between Plutos, so the timing is **ABS-master**:

* the ABS counts samples of its own RX stream; frame ``k`` starts at sample ``k * frame_len``
  (``schedule.ota_frame_ms``, 20 ms by default). It opens every frame with its DL zone burst
  (sent even when empty: the *beacon*);
* every other node demodulates its RX stream continuously; a zone burst from the ABS found at RX
  sample ``s`` tells it the frame started at ``s - lead`` in its own sample count
  (:class:`relaysec.schedule.OtaTiming`), and it transmits in its own zones of that frame (an
  AMS: in the slot of its serving station's UL-access zone that station granted it
  ``schedule.ota_grant_delay`` frames before). A node that has not heard the ABS for a few
  frames stays silent;
* every radio is read continuously by its own thread (a radio not read in time loses samples).

How a burst reaches its zone depends on the radio (``radio.caps``):

* **streaming** (a Pluto, ``caps.stream``; :mod:`hw.timeline`): TX and RX stream continuously
  and the radio knows its TX->RX offset, so a burst is placed at the zone's exact RX-axis
  sample. Each zone burst is built once its start is within ``build_ahead`` of the radio's TX
  horizon (the earliest sample still placeable), as late as possible so it carries the latest
  grants and data. Own bursts heard back are compared with their placement (the radio
  re-measures its offset when they disagree); RX samples a radio lost are taken out of the
  frame grid (``take_rx_slip``). Guards (``schedule.ota_guard_ms``, 0.2 ms) only cover burst
  detection, multipath and clock drift;
* **timed** (the wall-clock loopback medium, ``caps.timed_tx``): placed at a sample directly;
* otherwise (a radio that transmits "now"): handed over early, led by zeros, using a latency
  learnt from hearing its own bursts (``schedule.ota_tx_latency_ms`` is the first guess).

(That hand-over is :class:`relaysec.ota_tx.OtaTransmit`, in ``relaysec/ota_tx.py``, and the
reports :class:`relaysec.ota_status.OtaStatus`, in ``relaysec/ota_status.py``; this module
reads, demodulates -- in the loop, or with ``schedule.ota_demod_workers`` in each node's
:class:`relaysec.demod_worker.DemodWorker` -- and follows the ABS's frame.)

RX is processed in chunks (6 ms; several at once when a node has fallen behind) with an overlap
of one maximum burst, so a burst that straddles a chunk boundary is decoded whole; a burst had
from the last pass is not decoded again in the overlap (``known`` spans of
``phy.ZoneModem.demodulate``), and duplicates are dropped by their absolute start sample.

:class:`OtaNetwork` has the same stepping interface as :class:`relaysec.node.SimNetwork`
(``step_frame``, ``now``, ``frame``, ``events``, ``cpu``), so the same trial phases run over the
air; it also drives a single node (``relaysec node``). With a wall-clock loopback medium
(``hw.loopback.Medium(clock="wall")``) it runs without hardware, which the tests use.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from hw.radio import StreamingRadio
from relaysec.demod_worker import DemodError, DemodWorker
from relaysec.node import Node, NodeEvent
from relaysec.ota_status import OtaStatus
from relaysec.ota_tx import OtaTransmit
from relaysec.schedule import FrameSchedule, OtaTiming

log = logging.getLogger(__name__)

#: Samples (at least) each side of a zone a node demodulates once it keeps the frame timing
#: (:meth:`OtaNetwork._ranges`): burst detection needs a little air before a burst, and the
#: timing follows the ABS's bursts to a few samples. 0.4 ms at 2.8 MS/s.
WINDOW_MARGIN = 1120

#: A node in step hears its own zones back (to keep its TX timing) in one frame of this many;
#: they carry nothing for it (160 ms at 20 ms frames: the TX->RX offset drifts far slower).
TRACK_EVERY = 8

#: Most RX chunks a node demodulates in one pass when it has fallen behind (see
#: :meth:`OtaNetwork._batch`): 24 ms of air at the default 6 ms chunk.
MAX_BATCH_CHUNKS = 4

#: Demodulation passes whose durations :meth:`OtaNetwork.loop_status` keeps (the last ones).
PASS_HISTORY = 4096

#: Seconds a node's demodulation worker may leave its full ring unanswered before the run
#: fails (it is stuck; a loaded host answers within milliseconds).
DEMOD_STALL_S = 10.0


@dataclass
class _NodeState:
    node: Node
    is_master: bool
    timing: OtaTiming
    rx_index: int = 0                     # samples consumed from the radio
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.complex64))
    seen: list[tuple[int, int]] = field(default_factory=list)  # RX-index spans of bursts had
    next_frame: dict[int, int] = field(default_factory=dict)  # zone idx -> next frame number
    beacons: int = 0
    d0: float | None = None               # smallest recent (wall-clock samples - read_index)
    read_index: int = 0                   # samples read from the radio (reader thread)
    latency: float = 0.0                  # TX call -> on air, in samples (learnt, Pluto only)
    latency_n: int = 0
    pushes: list[int] = field(default_factory=list)   # estimated air position of recent TX calls
    push_len: int = 0
    queue: queue.Queue = field(default_factory=queue.Queue)
    missed: int = 0                       # TX zones skipped because we were late
    placed: list[int] = field(default_factory=list)   # RX index of recent own bursts (stream)
    first_lock: int | None = None         # RX index of the first beacon heard (non-master)
    relocks: int = 0                      # timing re-anchored after RX samples were lost
    heard: tuple[tuple[int, int, int, int], ...] | None = None  # (start, end, first start,
    #                                       last start) in the frame of the zones it receives in
    #                                       (OtaNetwork._windows), once locked; None: all of it
    own: tuple[tuple[int, int, int, int], ...] = ()  # ... of its own zones (every
    #                                       TRACK_EVERY-th frame)
    scanned: int = 0                      # samples demodulated (overlap re-scans included)
    skipped: int = 0                      # samples of zones it needs nothing from, not scanned
    tx_zones: list[tuple[int, Any]] | None = None  # (index, zone) it may transmit in (kept)
    worker: DemodWorker | None = None     # its demodulation process (ota_demod_workers)
    last_scans: list[tuple[int, int]] = field(default_factory=list)  # RX-index spans scanned
    #                                       in the last pass (the next skips what they hold)
    tx_gate: float = 0.0                  # clock before which no zone of its can come due ...
    tx_gate_fs: int | None = None         # ... while its frame start stays this (_maybe_transmit)
    tx_last_h: int | None = None          # the TX horizon at the last check, its clock ...
    tx_last_t: float = 0.0
    tx_h_step: int = 0                    # ... and the largest step it moved by between two
    tx_seen: tuple[int, int | None] | None = None  # (horizon, frame start) of the last full check
    open_slots: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # (frame,
    #                                       owner, zone start, lead, frame start then) of UL
    #                                       slots passed with no grant yet, still placeable: a
    #                                       grant heard late fills one


def _run_queue_wait_s() -> float | None:
    """Time the calling thread has spent runnable but waiting for a core (the second field
    of Linux's ``/proc/thread-self/schedstat``), or None where that is not available."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1]) * 1e-9
    except (OSError, IndexError, ValueError):
        return None


class OtaNetwork(OtaTransmit, OtaStatus):
    """Nodes with their own radios, on the wall clock; *master* names the ABS if it is local."""

    def __init__(
        self,
        nodes: Iterable[Node],
        schedule: FrameSchedule,
        *,
        master: str | None,
        abs_addr: int,
        max_burst_bytes: int = 1200,
        chunk_s: float = 6e-3,
        tx_latency_s: float = 0.005,
        build_ahead_s: float = 0.010,
        abs_build_ahead_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        roles: Mapping[str, str] | None = None,
        demod_workers: bool = False,
    ) -> None:
        self.schedule = schedule
        self.abs_addr = abs_addr
        self.chunk = max(1024, round(chunk_s * schedule.sample_rate))
        self.tx_advance = round(tx_latency_s * schedule.sample_rate)
        self.slack = round(1e-3 * schedule.sample_rate)
        # A Pluto burst may be handed over up to `early` samples before its time, led by zeros:
        # the main loop then has a window of early + guard/2 per zone instead of slack + guard/2,
        # which a busy host (demodulation, GIL, other processes) needs.
        self.early = max(schedule.zones[0].guard, 2 * self.chunk)
        # A streaming radio: how far beyond its TX horizon zone bursts are built (the main loop
        # must come round to every node within this, demodulation of a chunk included).
        self.build_ahead = round(build_ahead_s * schedule.sample_rate)
        # ... and the ABS's (the master's): its zone burst is every other node's frame
        # reference, so one built too late is a beacon lost at all of them
        self.abs_build_ahead = self.build_ahead if abs_build_ahead_s is None \
            else round(abs_build_ahead_s * schedule.sample_rate)
        nodes = list(nodes)
        # each node's demodulation process imports the PHY and loads its kernels (seconds,
        # while the radios already stream): until it says it is ready, the loop demodulates
        # that node's windows itself
        workers = {n.name: DemodWorker(n.modem.profile.name) for n in nodes} \
            if demod_workers else {}
        self.clock = clock
        self.t0 = clock()
        self.frame = 0
        self.states: dict[str, _NodeState] = {}
        lead = schedule.zones[0].guard // 2
        for n in nodes:
            master_here = n.name == master
            st = _NodeState(n, master_here, OtaTiming(schedule.frame_len, dl_offset=lead),
                            latency=float(self.tx_advance))
            if master_here:
                st.timing.frame_start = 0
            role = (roles or {}).get(n.name)
            if role is not None:
                st.heard = self._windows(schedule.heard_by(n.name, role))
                st.own = self._windows(schedule.sent_by(n.name, role))
            self.states[n.name] = st
        self.nodes = {n: s.node for n, s in self.states.items()}
        #: Each UL-access zone by its owner (a station sizes its zone bursts' grants by it).
        self._owned_ul = {z.tx: z for z in schedule.zones if z.shared}
        # A burst that straddles two chunks is decoded from the overlap: the longest burst.
        node0 = next(iter(self.nodes.values()))
        longest = max(z.length for z in schedule.zones)
        self._overlap = min(longest, node0.modem.max_data_symbols * node0.sym) + 64 \
            + node0.modem.overhead_symbols(node0.mac.config.max_allocs) * node0.sym
        self.max_burst_bytes = max_burst_bytes
        # the main loop's own account (host time): wall spent in step_frame, idle in it, and
        # the durations of the last demodulation passes (loop_status)
        self._loop_wall = 0.0
        self._loop_idle = 0.0
        self._loop_cpu = 0.0  # the loop thread's own CPU time over _loop_wall
        self._loop_queued = 0.0  # its time runnable but waiting for a core (Linux schedstat)
        self._passes: deque[float] = deque(maxlen=PASS_HISTORY)
        self._pass_count = 0
        for name, w in workers.items():
            self.states[name].worker = w
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _windows(self, zones: Iterable[int]) -> tuple[tuple[int, int, int, int], ...]:
        """Per zone of *zones*, within the frame: its start and end, and the first and last
        sample its bursts may start at, each widened by a margin that covers burst detection
        and timing error (:meth:`_ranges` merges what overlaps). A zone's burst starts at its
        start, or half a guard in (the ABS's, a timed radio's); a UL-access zone's slots start
        anywhere in it."""
        out = []
        for i in zones:
            z = self.schedule.zones[i]
            margin = max(z.guard, WINDOW_MARGIN)
            last = z.end if z.shared else z.start + z.guard // 2
            out.append((z.start - margin, z.end + margin, z.start - margin, last + margin))
        return tuple(out)

    def _ranges(self, st: _NodeState, start: int, n: int
                ) -> tuple[list[tuple[int, int]], list[tuple[int, int]] | None]:
        """Parts ``[a, b)`` of a buffer of *n* samples starting at RX index *start* to
        demodulate: all of it until the node keeps the frame timing, afterwards only the
        windows of the zones it receives in (:meth:`relaysec.schedule.FrameSchedule.heard_by`),
        and of its own zones in one frame of :data:`TRACK_EVERY`; and where (buffer samples)
        those zones' bursts may start (None while all of it is scanned)."""
        fs = st.timing.frame_start
        if st.heard is None or fs is None or not (st.is_master or st.timing.locked(start + n)):
            return [(0, n)], None
        flen = self.schedule.frame_len
        parts: list[tuple[int, int]] = []
        starts: list[tuple[int, int]] = []
        k = (start - fs) // flen - 1
        while fs + k * flen < start + n:
            base = fs + k * flen - start
            for a, b, s0, s1 in st.heard + (st.own if k % TRACK_EVERY == 0 else ()):
                lo, hi = max(0, base + a), min(n, base + b)
                if hi > lo:
                    parts.append((lo, hi))
                    if base + s1 >= 0 and base + s0 < n:
                        starts.append((base + s0, base + s1))
            k += 1
        out: list[tuple[int, int]] = []
        for lo, hi in sorted(parts):
            if out and lo <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], hi))
            else:
                out.append((lo, hi))
        return out, starts

    @staticmethod
    def _unscanned(ranges: list[tuple[int, int]], start: int,
                   scanned: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The parts ``[a, b)`` of a buffer starting at RX index *start* that do not lie
        wholly inside one RX-index span of *scanned* (the last pass's): a window the last pass
        scanned whole, to the same end, holds no burst it did not find then."""
        return [(a, b) for a, b in ranges
                if not any(pa <= start + a and start + b <= pb for pa, pb in scanned)]

    @property
    def now(self) -> float:
        """Seconds since the network started (the roles' clock)."""
        return self.clock() - self.t0

    def _reader(self, st: _NodeState) -> None:
        """Read one radio continuously (its own thread: a radio that is not read in time loses
        samples, on a Pluto and on the emulator alike) and note the smallest RX delay."""
        fs = self.schedule.sample_rate
        # Smallest delay over the last second: the RX pipeline delay varies with buffer fill, and
        # a gap in the stream (samples lost upstream) raises it for good, so forget old minima.
        window: deque[float] = deque(maxlen=max(50, round(fs / self.chunk)))
        while not self._stop.is_set():
            try:
                iq = st.node.receive_samples(self.chunk)
            except Exception as exc:  # closed radio or I/O error: hand it to the main loop
                st.queue.put(exc)
                return
            st.read_index += iq.size
            window.append((self.clock() - self.t0) * fs - st.read_index)
            st.d0 = min(window)
            st.queue.put(iq)

    def _start(self) -> None:
        if self._threads:
            return
        for st in self.states.values():
            if st.node.radio.caps.stream:
                # what each stream piled up while the others and the nodes were set up: not
                # read, not lost (nothing is on the RX axis yet)
                cast(StreamingRadio, st.node.radio).catch_up()
        for st in self.states.values():
            t = threading.Thread(target=self._reader, args=(st,), daemon=True,
                                 name=f"rx-{st.node.name}")
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        """Stop the RX reader threads (call before closing the radios)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2.0)
        self._threads = []
        for st in self.states.values():
            if st.worker is not None:
                st.worker.close()

    def step_frame(self) -> None:
        """Run for one frame period of wall time, servicing every node's radio in turn."""
        self._start()
        end = self.t0 + (self.frame + 1) * self.schedule.frame_s
        began, cpu0, queued0 = time.perf_counter(), time.thread_time(), _run_queue_wait_s()
        while self.clock() < end:
            busy = False
            for st in self.states.values():
                if st.worker is not None and st.worker.pending and self._apply(st):
                    busy = True
                t0 = time.perf_counter()
                if self._service(st):
                    self._passes.append(time.perf_counter() - t0)
                    self._pass_count += 1
                    busy = True
                    # a demodulation pass takes milliseconds: give every other node's zone
                    # bursts their turn before the next one, or they miss their horizon
                    for other in self.states.values():
                        if other is not st:
                            self._maybe_transmit(other)
            if not busy:
                t0 = time.perf_counter()
                time.sleep(0.0005)
                self._loop_idle += time.perf_counter() - t0
        self._loop_wall += time.perf_counter() - began
        self._loop_cpu += time.thread_time() - cpu0
        if queued0 is not None:
            self._loop_queued += (_run_queue_wait_s() or queued0) - queued0
        self.frame += 1
        for st in self.states.values():
            st.node.poll(self.now)

    def _service(self, st: _NodeState) -> bool:
        node = st.node
        if node.radio.caps.stream:
            self._follow_slips(st)
        self._maybe_transmit(st)
        try:
            iq = st.queue.get_nowait()
        except queue.Empty:
            return False
        if isinstance(iq, Exception):
            raise iq
        parts = self._batch(st, iq)
        n_new = sum(p.size for p in parts)
        start_index = st.rx_index - st.tail.size
        # the kept overlap and every chunk taken in one copy (joining the chunks first, then
        # the overlap to them, copied the batch twice)
        if st.tail.size:
            parts.insert(0, st.tail)
        buf = parts[0] if len(parts) == 1 else np.concatenate(parts)
        st.rx_index += n_new
        overlap = self._overlap
        # a view: nothing writes a received buffer (the demodulator copies what it changes)
        st.tail = buf[-overlap:] if buf.size > overlap else buf
        now = self.now
        node.poll(now)
        found = []
        ranges, starts = self._ranges(st, start_index, buf.size)
        # a window wholly inside one the previous pass scanned (the overlap it keeps so that a
        # burst straddling two passes is found whole) holds only bursts found then: every one
        # was decoded in full before the duplicate check dropped it (a node in step re-scanned
        # up to half of what it demodulated)
        prev, st.last_scans = st.last_scans, [(start_index + a, start_index + b)
                                              for a, b in ranges]
        ranges = self._unscanned(ranges, start_index, prev)
        st.skipped += buf.size - sum(b - a for a, b in ranges)
        if st.worker is not None and node.recorder is None and st.worker.ready():
            # its own process demodulates; the results are applied as they come (_apply)
            st.scanned += sum(b - a for a, b in ranges)
            if ranges:
                self._submit(st, buf, ranges, start_index)
            self._maybe_transmit(st)
            return True
        for a, b in ranges:
            base = start_index + a
            st.scanned += b - a
            found += [(base, zb) for zb in node.handle_samples(
                buf[a:b], now, accept=lambda zb, base=base: self._new(st, base + zb.start,
                                                                      zb.n_samples),
                frame=lambda k, base=base: self._frame_at(st, base + k),
                expect_src=lambda k, base=base: self._zone_tx(st, base + k),
                behind=buf.size - b, known=self._known(st, base, b - a),
                starts=None if starts is None else [
                    (s0 - a, s1 - a) for s0, s1 in starts if s0 < b and s1 >= a])]
            # a batch spans several zone windows, each a demodulation of milliseconds: let
            # every node hand its due zone bursts over between them, or they pass the horizon
            for other in self.states.values():
                self._maybe_transmit(other)
        self._maybe_transmit(st)
        self._found(st, found)
        return True

    def _submit(self, st: _NodeState, buf: np.ndarray, ranges: list[tuple[int, int]],
                start_index: int, stall_s: float = DEMOD_STALL_S) -> int:
        """Hand a pass (*buf* starting at RX index *start_index*) to *st*'s demodulation
        worker; while its ring is full (the worker is that far behind) apply its answers as
        they come. A worker that answers nothing for *stall_s* is a
        :class:`relaysec.demod_worker.DemodError`, not a hang."""
        worker = cast(DemodWorker, st.worker)
        me = frozenset(st.node._addresses())
        seq = worker.submit(buf, ranges, me, start_index)
        waited = 0.0
        while seq is None:
            t0 = time.perf_counter()
            if self._apply(st, wait_s=0.05):
                waited = 0.0
            else:
                waited += time.perf_counter() - t0
                if waited >= stall_s:
                    raise DemodError(f"{st.node.name}: the demodulation worker answered "
                                     f"nothing for {stall_s:g} s with its ring full")
            seq = worker.submit(buf, ranges, me, start_index)
        return seq

    def _apply(self, st: _NodeState, wait_s: float = 0.0) -> bool:
        """The answers *st*'s demodulation worker has sent, applied in order as a pass of
        :meth:`_service` applies its own (duplicates dropped, frame attribution, MAC and role,
        then the timing); True when there were any."""
        answers = cast(DemodWorker, st.worker).results(wait_s)
        node = st.node
        for start_index, outs in answers:   # in order; the tag is the pass's RX index
            now = self.now
            found = []
            for a, bursts in outs:
                base = start_index + a
                found += [(base, zb) for zb in node.handle_bursts(
                    bursts, now, accept=lambda zb, base=base: self._new(st, base + zb.start,
                                                                        zb.n_samples),
                    frame=lambda k, base=base: self._frame_at(st, base + k))]
            self._found(st, found)
        return bool(answers)

    def _found(self, st: _NodeState, found: list[tuple[int, Any]]) -> None:
        """The zone bursts a pass found at RX index base + start: its own (TX timing) and the
        ABS's (the frame reference)."""
        node = st.node
        for base, zb in found:
            at = base + int(zb.start)
            if zb.src == node.addr:
                if node.radio.caps.stream:
                    self._track(st, at)
                else:
                    self._learn_latency(st, at)
            if zb.src == self.abs_addr:
                st.beacons += 1
                if not st.is_master:
                    if st.first_lock is None:
                        st.first_lock = at
                    st.timing.on_abs_burst(at)

    def _batch(self, st: _NodeState, first: np.ndarray) -> list[np.ndarray]:
        """*first* and the chunks queued behind it, up to :data:`MAX_BATCH_CHUNKS` in all.

        Every demodulation pass scans the previous pass's last ``overlap`` samples again (a
        burst straddling two passes is found whole), and the overlap (one longest burst,
        5.6 ms at P2.5) is about a chunk (6 ms): a node that keeps up scans each sample
        ~1.9 times (2.9 with the 3 ms chunks of before). A node that has fallen behind takes
        what has queued in one pass, so the overlap is paid once per batch (4 chunks: ~1.2
        times) and it catches up instead of falling further behind; one that keeps up finds
        one chunk queued and reacts as soon."""
        parts = [first]
        while len(parts) < MAX_BATCH_CHUNKS:
            try:
                nxt = st.queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(nxt, Exception):  # hand it over on the next call, after this batch
                st.queue.put(nxt)
                break
            parts.append(nxt)
        return parts

    def _follow_slips(self, st: _NodeState) -> None:
        """The radio lost RX samples (an overflow): positions on the RX axis computed before
        move by the measured loss; when it could not be measured, a non-master re-anchors on
        the next beacon (the master keeps its grid; the others follow it)."""
        radio = cast(StreamingRadio, st.node.radio)
        slip = radio.take_rx_slip()
        if slip == 0:
            return
        st.relocks += 1
        if slip is None:
            if not st.is_master:
                st.timing.lose_anchor()
            return
        if st.timing.frame_start is not None:
            st.timing.frame_start -= slip
        if st.timing.last_heard is not None:
            st.timing.last_heard -= slip
        st.seen = [(a - slip, b - slip) for a, b in st.seen]
        st.placed = [p - slip for p in st.placed]

    def _track(self, st: _NodeState, heard: int) -> None:
        """An own burst heard back: compare with where it was placed (the radio keeps its
        TX->RX offset, or measures it again when they disagree by more than a few samples)."""
        if not st.placed:
            return
        placed = min(st.placed, key=lambda p: abs(heard - p))
        if abs(heard - placed) >= self.schedule.frame_len // 2:
            return
        st.placed.remove(placed)
        cast(StreamingRadio, st.node.radio).track(placed, heard)

    def _frame_at(self, st: _NodeState, abs_start: int) -> int | None:
        """The frame number a burst starting at *abs_start* belongs to (this node's timing)."""
        if st.timing.frame_start is None:
            return None
        return (abs_start - st.timing.frame_start) // self.schedule.frame_len

    def _zone_tx(self, st: _NodeState, abs_start: int) -> str | None:
        """Which station's zone a burst starting at *abs_start* falls in (this node's frame
        timing), to attribute a burst whose header failed its CRC."""
        if st.timing.frame_start is None:
            return None
        pos = (abs_start - st.timing.frame_start) % self.schedule.frame_len
        for z in self.schedule.zones:
            if z.start - z.guard // 2 <= pos < z.end - z.guard // 2:
                return z.tx
        return None

    @staticmethod
    def _new(st: _NodeState, abs_start: int, n_samples: int) -> bool:
        """Whether the burst at RX index *abs_start* is new (remembered then)."""
        for s, _ in st.seen:
            if abs(s - abs_start) < 32:
                return False
        st.seen.append((abs_start, abs_start + int(n_samples)))
        if len(st.seen) > 64:
            del st.seen[:32]
        return True

    @staticmethod
    def _known(st: _NodeState, base: int, n: int) -> list[tuple[int, int]]:
        """Bursts had before in the *n* samples at RX index *base*: not decoded again when a
        pass re-scans the overlap of the last one (docs/radios.md, "Session 17")."""
        return [(s - base, e - base) for s, e in st.seen if s < base + n and e > base]

    def events(self) -> list[NodeEvent]:
        out: list[NodeEvent] = []
        for st in self.states.values():
            out.extend(st.node.drain_events())
        out.sort(key=lambda e: e.t)
        return out

    def cpu(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for st in self.states.values():
            total.update(st.node.cpu)
        return total
