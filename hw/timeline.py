"""A streaming radio timeline: TX and RX run continuously, bursts sit at exact stream samples.

Why: a radio that pushes each burst on its own (a Pluto through pyadi-iio) puts it on the air
"now + USB and kernel latency", a latency that varies by milliseconds, so a TDD frame needs
guards of that size. A DMA stream that never stops is different: the kernel queues TX blocks and
the DAC plays them back to back (``industrialio-buffer-dma``: blocks move from the incoming queue
to the DMA and back), so TX sample ``u`` of the stream reaches the antenna a *constant* time after
TX sample 0, and RX sample ``j`` was captured a constant time after RX sample 0. Hence
``rx = u + offset`` for one constant that the radio measures once by hearing itself (a probe
sequence sent at a known ``u`` and found in its own RX stream at ``j``), then tracks from its own
bursts heard back. Bursts are then placed at RX-axis sample indexes, exactly.

What breaks the constant, and what this does about it (docs/radios.md, "Streaming timeline"):

* a TX refill missed (the host did not push in time): the DAC ran dry (the HDL outputs zeros) and
  the next block starts whenever it arrives, so every later TX sample moves; the core's
  underflow flag says so. The timeline drops what it had queued, counts the underflow and
  measures the offset again;
* an RX overflow (the host did not read in time): samples were lost, the RX count no longer
  tracks air time; same remedy (the caller reports it with :meth:`StreamTimeline.rx_broken`).

The class is device-agnostic: *push* hands one block (complex64, full scale 1.0) to the device
and blocks while the device queue is full (``iio_buffer_push`` in blocking mode does); a thread
keeps pushing, zeros between bursts. Tests drive it with a fake device.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import scipy.fft as _sfft

log = logging.getLogger(__name__)

#: Length of the self-hearing probe (samples): 511 QPSK chips, 0.18 ms at 2.8 MS/s; its
#: normalised correlation with noise or an OFDM burst stays near 1/sqrt(511) ~ 0.04.
PROBE_LEN = 511
#: Probe amplitude (full scale 1.0 per component is the DAC's limit).
PROBE_AMPLITUDE = 0.35
#: Normalised correlation above which the probe counts as heard.
PROBE_THRESHOLD = 0.5
#: A block is correlated only if some probe-long window holds this many times the energy of
#: its quietest tenth (a probe heard 10 dB over the noise does; noise alone does not).
PROBE_GATE = 4.0
#: FFT size of the overlap-save correlation.
_CORR_FFT = 4096
#: A probe not heard within this many seconds of air is sent again.
PROBE_TIMEOUT_S = 0.5
#: An own burst heard further than this from where it was placed means the timeline broke
#: (samples lost somewhere): measure again instead of nudging the offset.
TRACK_BREAK_S = 0.5e-3


def probe_sequence(seed: int | tuple[int, ...] = 0x16) -> np.ndarray:
    """The probe of *seed* (an int or a tuple of them): a QPSK pseudo-noise sequence
    (complex64, constant envelope)."""
    rng = np.random.default_rng(seed)
    chips = rng.integers(0, 4, PROBE_LEN)
    return (PROBE_AMPLITUDE * np.exp(1j * (np.pi / 2 * chips + np.pi / 4))).astype(np.complex64)


@dataclass
class TimelineStats:
    """What the timeline did (JSON-ready through :meth:`as_dict`)."""

    blocks: int = 0            # blocks pushed
    bursts: int = 0            # bursts placed
    late: int = 0              # bursts refused: their sample had already been pushed
    underflows: int = 0        # TX refills missed (DAC ran dry): offset measured again
    rx_breaks: int = 0         # RX overflows reported by the caller: offset measured again
    rx_skipped: int = 0        # RX samples skipped unread before first use (rx_skipped)
    probes: int = 0            # probes sent
    calibrations: int = 0      # offsets measured from a probe
    track_samples: int = 0     # own bursts heard back and compared with their placement
    track_max_err: int = 0     # largest |heard - placed| among them (samples)
    push_max_s: float = 0.0    # longest single push call (seconds, the device's back-pressure)
    gap_max_s: float = 0.0     # longest time between a push returning and the next push (the
                               # host's own stall: above the queue depth the DAC runs dry)
    flag_reads: int = 0        # reads of the device's sticky flags (monitor thread)

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class TxRing(Protocol):
    """A TX stream pushed by another process (:mod:`hw.pluto_stream`'s worker) from a shared ring
    indexed by TX sample: the timeline writes bursts into it instead of building blocks."""

    def claimed(self) -> int:
        """First TX sample the pusher has not taken yet (it takes a block at a time)."""

    def write(self, u: int, iq: np.ndarray) -> bool:
        """Add *iq* at TX sample *u*; False when the pusher took any of it meanwhile or it
        lies beyond the ring."""

    def clear(self) -> None:
        """Forget every sample written and not yet taken (the offset changed)."""

    def sync(self, stats: TimelineStats) -> None:
        """Copy the pusher's counters (blocks, push_max_s, gap_max_s) into *stats*."""

    def error(self) -> str | None:
        """Why the pusher stopped, if it did."""


class StreamTimeline:
    """Continuous TX stream of *block*-sample pushes plus the TX->RX offset (see module doc).

    *push(block)* sends one block and blocks while the device queue is full; *flags()* reads
    (and clears) the device's sticky flags and returns ``(tx_underflow, rx_overflow)``; a
    monitor thread calls it every *flag_period_s* (the only thread on the control connection,
    and off the TX thread: each read is a round trip, which a loaded host pays in scheduler
    latency, and a TX thread waiting on round trips lets the DAC run dry). RX indexes are
    counted by the caller, who passes every received block to :meth:`on_rx` with its index.
    """

    def __init__(self, push: Callable[[np.ndarray], None] | None, *, sample_rate: float,
                 block: int, flags: Callable[[], tuple[bool, bool]] | None = None,
                 flag_period_s: float = 0.05,
                 clock: Callable[[], float] = time.monotonic,
                 ring: TxRing | None = None, probe_key: int | None = None) -> None:
        if block < 64:
            raise ValueError(f"a TX block of {block} samples is too short to stream")
        if (push is None) == (ring is None):
            raise ValueError("give either push (a TX thread here) or ring (pushed elsewhere)")
        self._push = push
        #: With a ring another process pushes (no TX thread here): bursts go into the ring,
        #: and one block of margin beyond what it took keeps a write off the block it reads.
        self._ring = ring
        self._flags = flags
        self.flag_period_s = float(flag_period_s)
        self._monitor: threading.Thread | None = None
        self.sample_rate = float(sample_rate)
        self.block = int(block)
        self.clock = clock
        self.stats = TimelineStats()
        #: This timeline's own probes are ``probe_sequence((probe_key, k))`` for request k: a
        #: random key by default, so no other radio on the air sends the same sequence (every
        #: radio once sent the same few; a node that heard a neighbour's probe before its own
        #: took the neighbour's start time for its offset and heard nothing for seconds --
        #: three nodes started together did, on a loaded CI host)
        self._probe_key = secrets.randbits(63) if probe_key is None else int(probe_key)
        self._probe_k = 0  # which request the outstanding probe belongs to
        self.probe = probe_sequence((self._probe_key, self._probe_k))
        self._probe_energy = float(np.sum(np.abs(self.probe) ** 2))  # the same for every seed
        self._probe_spec: np.ndarray | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[int, np.ndarray]] = []  # (tx index, samples), sorted
        self._next_u = 0            # first TX sample of the next block to build
        self._offset: int | None = None  # rx index = tx index + offset
        self._probe_u: int | None = None  # where the outstanding probe was placed
        self._probe_pushed = False
        self._probe_sent_at = 0.0
        self._rx_tail = np.zeros(0, np.complex64)
        self._rx_tail_index = 0
        # RX slip bookkeeping: an RX overflow loses L samples, so the offset drops by L; when
        # only RX broke (the TX stream stayed continuous) the new offset tells L exactly
        self._slip_from: int | None = None   # offset before an RX break, while re-measuring
        self._slip_mixed = False             # TX also broke meanwhile: L cannot be known
        self._slip = 0                       # samples lost on RX, not yet taken
        self._slip_unknown = False
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._zeros = np.zeros(self.block, np.complex64)

    # ------------------------------------------------------------------ TX thread
    def start(self) -> None:
        """Start pushing (zeros, and a probe to measure the offset)."""
        if self._thread is not None:
            return
        self.request_probe()
        if self._ring is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="tx-stream")
            self._thread.start()
        if self._flags is not None:
            self._monitor = threading.Thread(target=self._watch, daemon=True,
                                             name="stream-flags")
            self._monitor.start()

    def stop(self) -> None:
        """Stop the TX thread (the device's queue then plays out and the DAC idles at zero)."""
        self._stop.set()
        for t in (self._thread, self._monitor):
            if t is not None:
                t.join(timeout=5.0)
        self._thread = self._monitor = None

    @property
    def running(self) -> bool:
        """The TX thread (or the ring's pusher) is pushing."""
        if self._ring is not None:
            return self.error is None
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the TX thread (or the ring's pusher), if one did."""
        if self._error is None and self._ring is not None:
            why = self._ring.error()
            if why is not None:
                self._error = RuntimeError(f"the TX stream stopped: {why}")
        return self._error

    def _tx_next(self) -> int:
        """First TX sample a burst may still be written at (lock held)."""
        if self._ring is None:
            return self._next_u
        return self._ring.claimed() + self.block

    def _run(self) -> None:
        try:
            done = None
            while not self._stop.is_set():
                block = self._build()
                t0 = self.clock()
                if done is not None:   # the host's own delay between two pushes
                    self.stats.gap_max_s = max(self.stats.gap_max_s, t0 - done)
                self._push(block)
                done = self.clock()
                with self._lock:
                    self.stats.blocks += 1
                    self.stats.push_max_s = max(self.stats.push_max_s, done - t0)
        except BaseException as exc:  # handed to the caller, who raises it
            self._error = exc
            log.error("TX stream stopped: %s", exc)

    def _watch(self) -> None:
        """Read the device's sticky flags every :attr:`flag_period_s` (monitor thread)."""
        assert self._flags is not None
        started = False
        while not self._stop.wait(self.flag_period_s):
            if self._ring is not None:
                self._ring.sync(self.stats)
            blocks = self.stats.blocks
            try:
                under, over = self._flags()
            except Exception as exc:
                log.warning("stream flags unreadable, monitor stops: %s", exc)
                return
            self.stats.flag_reads += 1
            if not started:
                # the DAC idled before the first block arrived: that flag (read before or just
                # after the first push) is not an underflow of the stream
                started, under = blocks >= 1, False
            if under:
                self._broken("underflow")
            if over:
                self._broken("overflow")

    def _build(self) -> np.ndarray:
        """The next block: zeros with every pending burst (or part of one) that falls in it."""
        with self._lock:
            u0 = self._next_u
            u1 = u0 + self.block
            self._next_u = u1
            if self._probe_u is not None and self._probe_u < u1:
                self._probe_pushed = True
            if not self._pending or self._pending[0][0] >= u1:
                return self._zeros
            out = np.zeros(self.block, np.complex64)
            keep: list[tuple[int, np.ndarray]] = []
            for u, iq in self._pending:
                if u >= u1:
                    keep.append((u, iq))
                    continue
                a, b = max(u, u0), min(u + iq.size, u1)
                if b > a:
                    out[a - u0:b - u0] += iq[a - u:b - u]
                if u + iq.size > u1:
                    keep.append((u, iq))
            self._pending = keep
            return out

    # ------------------------------------------------------------------ placing bursts
    @property
    def ready(self) -> bool:
        """The offset is known: bursts can be placed."""
        return self._offset is not None and self.error is None

    @property
    def offset(self) -> int | None:
        """RX index minus TX index of the same air instant (None while measuring)."""
        return self._offset

    def horizon(self) -> int | None:
        """The earliest RX-axis index a burst can still be placed at (None while measuring)."""
        with self._lock:
            if self._offset is None:
                return None
            return self._tx_next() + self._offset

    def place(self, iq: np.ndarray, at: int) -> bool:
        """Queue *iq* to start at RX-axis index *at*; False (counted ``late``) when that sample
        has already been pushed or the offset is being measured."""
        if self.error is not None:
            raise self.error
        with self._lock:
            if self._offset is None:
                self.stats.late += 1
                return False
            u = int(at) - self._offset
            if u < self._tx_next():
                self.stats.late += 1
                return False
            if self._probe_u is not None and u < self._probe_u + self.probe.size \
                    and u + iq.size > self._probe_u:
                self.stats.late += 1     # never over the probe
                return False
            if self._ring is not None:
                if not self._ring.write(u, np.asarray(iq, np.complex64)):
                    self.stats.late += 1  # taken while being written, or beyond the ring
                    return False
            else:
                self._insert(u, iq)
            self.stats.bursts += 1
            return True

    def _insert(self, u: int, iq: np.ndarray) -> None:
        self._pending.append((u, np.asarray(iq, np.complex64)))
        self._pending.sort(key=lambda p: p[0])

    # ------------------------------------------------------------------ measuring the offset
    def request_probe(self) -> None:
        """Forget the offset and send a probe in the next block to measure it again.

        Each request sends a sequence of its own (``(probe_key, k)``; any two cross-correlate
        like noise, ~0.04): a probe of an earlier request may still be queued or in flight
        (a timeout re-sends before the first was heard; the device queue cannot be recalled),
        and heard now it would be taken for this one, giving an offset wrong by the distance
        between the two (seen at full speed: a constant 4 blocks off, never re-measured). The
        key keeps other radios' probes apart the same way."""
        with self._lock:
            self._offset = None
            self._pending.clear()
            self._probe_k += 1
            self.probe = probe_sequence((self._probe_key, self._probe_k))
            self._probe_spec = None
            self._probe_u = self._tx_next() + self.block // 4
            self._probe_pushed = False
            self._probe_sent_at = self.clock()
            if self._ring is not None:
                self._ring.clear()   # bursts placed for the old offset must not go out
                self._ring.write(self._probe_u, self.probe)  # a miss: re-sent on timeout
            else:
                self._insert(self._probe_u, self.probe)
            self.stats.probes += 1

    def _broken(self, why: str) -> None:
        with self._lock:
            if why == "underflow":
                self.stats.underflows += 1
                if self._slip_from is not None or self._offset is None:
                    self._slip_mixed = True
            else:
                self.stats.rx_breaks += 1
                if self._offset is not None and self._slip_from is None:
                    self._slip_from = self._offset
                else:
                    self._slip_mixed = True
        log.info("stream timeline broken (%s): measuring the TX->RX offset again", why)
        self.request_probe()

    def rx_broken(self) -> None:
        """The caller lost RX samples (overflow): the offset no longer holds."""
        self._broken("overflow")

    def rx_lost(self, n: int) -> None:
        """The caller knows exactly how many RX samples it lost (*n*, dropped on the host
        while the device's stream went on): the offset moves by -*n* and the loss is a
        measured slip (:meth:`take_rx_slip`), no re-measurement. While the offset is being
        measured the loss cannot be placed, so that counts as a break."""
        if n <= 0:
            return
        with self._lock:
            if self._offset is not None and self._probe_u is None:
                self._offset -= int(n)
                self._slip += int(n)
                self.stats.rx_breaks += 1
                self._rx_tail = np.zeros(0, np.complex64)  # not contiguous across the loss
                return
        self._broken("overflow")

    def rx_skipped(self, n: int) -> None:
        """The caller skipped *n* RX samples unread on purpose, before it used any RX index
        (the backlog a radio piled up while the host set up the others): the offset moves by
        -*n* as for a loss, but it is neither a break nor a slip the runtime must follow.
        While the offset is being measured (a TX underflow during the setup broke it) the
        skip cannot be placed and the probe may have been in it: measure again, a break."""
        if n <= 0:
            return
        with self._lock:
            measuring = self._offset is None or self._probe_u is not None
            self.stats.rx_skipped += int(n)
            self._rx_tail = np.zeros(0, np.complex64)  # not contiguous across the skip
            if not measuring:
                self._offset -= int(n)
                return
        self._broken("overflow")

    def on_rx(self, iq: np.ndarray, index: int) -> None:
        """Every received block, at its absolute RX index: looks for an outstanding probe."""
        with self._lock:
            probe_u, pushed = self._probe_u, self._probe_pushed
            if not pushed and probe_u is not None and self._ring is not None \
                    and self._ring.claimed() > probe_u:
                pushed = self._probe_pushed = True
        if probe_u is None:
            return
        if not pushed:
            self._rx_tail = np.zeros(0, np.complex64)
            return
        if self._rx_tail.size and self._rx_tail_index + self._rx_tail.size == index:
            buf = np.concatenate([self._rx_tail, iq])
            start = self._rx_tail_index
        else:
            buf, start = np.asarray(iq, np.complex64), index
        keep = min(buf.size, self.probe.size - 1)
        self._rx_tail, self._rx_tail_index = buf[buf.size - keep:].copy(), start + buf.size - keep
        found = self._find_probe(buf)
        if found is None:
            if self.clock() - self._probe_sent_at > PROBE_TIMEOUT_S:
                log.info("probe not heard within %.1f s: sending another", PROBE_TIMEOUT_S)
                self.request_probe()
            return
        j = start + found
        with self._lock:
            if self._probe_u != probe_u:
                return
            self._offset = j - probe_u
            self._probe_u = None
            self.stats.calibrations += 1
            if self._slip_from is not None:
                if self._slip_mixed:
                    self._slip_unknown = True
                else:
                    self._slip += self._slip_from - self._offset
            self._slip_from, self._slip_mixed = None, False
        log.info("TX->RX offset measured: %d samples (%.3f ms)", j - probe_u,
                 (j - probe_u) / self.sample_rate * 1e3)

    def _find_probe(self, buf: np.ndarray) -> int | None:
        """Start of the probe in *buf* (normalised correlation above the threshold), or None.

        Only windows that hold :data:`PROBE_GATE` times the energy of the block's quietest
        tenth are candidates (a probe heard 10 dB over the noise is; noise alone is not), and
        only the stretches of the block that hold a candidate are correlated: while a station
        measures, the other stations' bursts fill part of each block, and correlating all of it
        (~3 ms per 32 k-sample block) was a quarter of a core per radio on a loaded host, the
        load that broke the stream again (a storm of re-measurements at full speed)."""
        n = self.probe.size
        if buf.size < n:
            return None
        x = np.ascontiguousarray(buf, np.complex64)
        f = x.view(np.float32)
        energy = f[0::2] * f[0::2] + f[1::2] * f[1::2]
        power = np.empty(x.size + 1, np.float64)
        power[0] = 0.0
        np.cumsum(energy, dtype=np.float64, out=power[1:])
        window = power[n:] - power[:-n]          # energy of every n-sample window
        some = window[::8]  # the quietest tenth, estimated from every 8th window (cheaper)
        floor = float(np.partition(some, some.size // 10)[some.size // 10])
        cand = window >= PROBE_GATE * max(floor, 1e-20)
        if not cand.any():
            return None
        corr = self._correlate(x, cand)
        norm = np.where(cand, corr / np.sqrt(np.maximum(window, 1e-20) * self._probe_energy),
                        0.0)
        # the earliest crossing, not the strongest: a copy of the probe (an echo, or an
        # outsider's replay, louder) can only come after the probe itself
        above = np.flatnonzero(norm > PROBE_THRESHOLD)
        return int(above[0]) if above.size else None

    def _correlate(self, x: np.ndarray, want: np.ndarray | None = None) -> np.ndarray:
        """|sum_i x[k+i] conj(probe[i])| for every k of *x* (overlap-save, FFT of 4096, single
        precision, all segments in one transform); with *want* (a mask over k), only the
        segments that hold a wanted k are computed, the rest left 0."""
        n, size = self.probe.size, _CORR_FFT
        spec = self._probe_spec  # (a new request may swap the probe meanwhile)
        if spec is None:
            spec = self._probe_spec = np.conj(np.fft.fft(self.probe, size)).astype(np.complex64)
        step = size - n + 1
        m = x.size - n + 1
        out = np.zeros(m, np.float32)
        starts = np.arange(0, m, step)
        if want is not None:
            hit = np.logical_or.reduceat(want, starts)
            starts = starts[hit]
            if not starts.size:
                return out
        segs = np.zeros((starts.size, size), np.complex64)
        for i, a in enumerate(starts):
            seg = x[a:a + size]
            segs[i, :seg.size] = seg
        full = np.abs(_sfft.ifft(_sfft.fft(segs, axis=1, overwrite_x=True) * spec, axis=1,
                                 overwrite_x=True))
        for i, a in enumerate(starts):
            k = min(step, m - a)
            out[a:a + k] = full[i, :k]
        return out

    def take_rx_slip(self) -> int | None:
        """RX samples lost (overflows) since the last call, measured by the re-calibration: 0
        when none, None when the loss could not be measured (TX broke at the same time). An
        RX-axis position computed before the loss moves by minus this amount."""
        with self._lock:
            if self._slip_unknown:
                self._slip_unknown, self._slip = False, 0
                return None
            slip, self._slip = self._slip, 0
            return slip

    # ------------------------------------------------------------------ tracking
    def track(self, placed: int, heard: int) -> None:
        """An own burst placed at RX index *placed* was heard at *heard*: keep the offset (a
        difference of a few samples is the detector's; more than :data:`TRACK_BREAK_S` means
        samples were lost, so measure again)."""
        err = int(heard) - int(placed)
        with self._lock:
            if self._offset is None:
                return
            self.stats.track_samples += 1
            self.stats.track_max_err = max(self.stats.track_max_err, abs(err))
        if abs(err) > TRACK_BREAK_S * self.sample_rate:
            self._broken("overflow")

    def report(self) -> dict[str, float | int | None]:
        """Offset, lead and counters, for reports."""
        if self._ring is not None:
            self._ring.sync(self.stats)
        out: dict[str, float | int | None] = dict(self.stats.as_dict())
        out["offset"] = self._offset
        out["block"] = self.block
        return out


__all__ = ["PROBE_LEN", "StreamTimeline", "TimelineStats", "TxRing",
           "probe_sequence"]
