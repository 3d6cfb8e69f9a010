"""Emulated Plutos on one simulated air: buffers fed from and into ``hw.loopback.Medium``.

Each emulated radio is a :class:`hw.loopback.LoopbackRadio` on a shared :class:`Medium`, wrapped in
a :class:`MediumPath` (the :class:`~hw.emu.datapath.DataPath` of its :class:`PlutoServer`):

- ``OPEN`` of the RX buffer moves the radio's receive cursor to *now* (capture starts there);
  ``READBUF`` of ``n`` samples is ``radio.receive(n)``: the next ``n`` samples of the summed,
  impaired air. With a wall clock (``Medium(clock="wall")`` or a sped-up
  ``WallClock(fs, speed=k)``) the medium makes the reader wait until that window is in the past,
  so the emulated air advances at the sample rate like hardware. A reader lagging more than
  ``buffers_count`` buffers behind now loses samples like a Pluto whose kernel buffers fill up:
  it still gets the queued (old) blocks, then a gap (``radio.stats.overflows``/``dropped``).
  One wait is bounded by the client's timeout: a buffer that cannot be filled in time is
  completed with receiver noise (counted in :attr:`MediumPath.late_samples`, logged) instead
  of stalling libiio into ``EPIPE``.
- ``WRITEBUF`` is ``radio.transmit(iq)``: on the air at the clock's *now*, or right after the
  previous block if that one is still playing (a DAC FIFO). When more than ``tx_buffers_count``
  blocks (the TX device's own count) are queued ahead of now, the push waits (bounded) like the
  kernel's buffer queue does; if the queue still holds more than twice that after the wait the
  client's timeout allows, the push fails with ``ETIMEDOUT`` (hardware would block past the
  timeout) instead of piling air up. On the sim clock, where only readers drain it, more than
  :data:`TX_QUEUE_MAX_SAMPLES` queued is ``ENOBUFS``.
- A **cyclic** buffer is repeated on the air until the buffer is closed: before any radio on the
  medium renders a window, :class:`Air` schedules every cyclic transmitter through that window's
  end (plus a short look-ahead, so a cyclic tone may outlive ``CLOSE`` by that much). Air more
  than :data:`CYCLIC_LOOKBACK_S` before the window that nobody read is skipped, phase kept, so
  a tone left running while nobody reads costs nothing when the next reader comes.
- Settings follow the attribute model: LOs (separate TX/RX), and gains relative to a reference
  (``rx_gain_ref_db``/``tx_gain_ref_db``, by default the project's RadioConfig defaults 30 dB /
  -10 dB): at the reference gains a link has exactly the SNR the medium was configured with; in an
  AGC mode the RX gain sits at the reference. The sample rate must equal the medium's: a buffer
  opened at another rate is refused with ``EINVAL`` and a log message saying why.
"""

from __future__ import annotations

import errno
import logging
import math
import threading
import time

import numpy as np

from hw.emu.ad9361 import Settings
from hw.emu.buffers import is_shared_zeros
from hw.emu.errors import IioError
from hw.emu.registers import RX_OVERFLOW, TX_UNDERFLOW, CoreRegisters
from hw.loopback import LoopbackRadio, Medium
from hw.loopback_radio import _kernels
from hw.sigmf import SigMFRecorder

log = logging.getLogger(__name__)

#: The bits of a complex64 sample other than its two sign bits (silent: all of them 0).
_MAGNITUDE = np.uint64(0x7FFF_FFFF_7FFF_FFFF)


def _sounding(iq: np.ndarray) -> tuple[int, int] | None:
    """``[a, b)``: from the first to the last sample of complex64 *iq* that is not silent
    (a component other than +-0), or None when all are. A sample is silent when its 8 bytes,
    masked of the two sign bits, are zero; a compiled scan in from both ends
    (:func:`hw._medium.nonzero_span`) stops at the burst (numpy's mask and two ``argmax``
    went over the whole block: ~100 us a 16800-sample push)."""
    if is_shared_zeros(iq):  # an all-zero push: WRITEBUF found it silent already
        return None
    a, b = _kernels().nonzero_span(iq.view(np.uint64), _MAGNITUDE)
    return None if a == b else (int(a), int(b))

#: Samples the medium renders after a window's end before it may render it (interpolation).
try:
    from hw.channels import INTERP_HALF as _INTERP_HALF
except ImportError:  # pragma: no cover
    _INTERP_HALF = 12
_MARGIN = _INTERP_HALF + 2.0
#: How far ahead of a reader's window cyclic transmissions are scheduled (seconds).
CYCLIC_LOOKAHEAD_S = 0.02
#: How far behind a reader's window a cyclic transmission is still put on the air (seconds):
#: air no reader asked for before that is skipped (phase kept), so a cyclic buffer left running
#: while nobody reads never makes the next reader render the whole pause at once.
CYCLIC_LOOKBACK_S = 1.0
#: Bytes one complex sample takes over USB (int16 I and Q).
USB_BYTES_PER_SAMPLE = 4
#: Host<->Pluto USB 2.0 throughput (bytes/s): 17-20 MB/s measured host->Pluto (plutosdr-fw #61),
#: consistent with the ~5 MS/s (20 MB/s) people sustain (PySDR's Pluto chapter).
USB_BYTES_PER_S = 18e6
#: Fixed cost of one USB transfer (ms): a transfer waits for the next 125 us USB 2.0
#: microframe and an iiod round trip; a quarter millisecond is the project's estimate.
USB_OVERHEAD_MS = 0.25
#: Mean extra delay per transfer (ms, exponential): host scheduling. Users stream 1.92 MS/s
#: with buffers of 5000 samples (2.6 ms) and no loss (srsran/zynq_timestamping #35), so the
#: host-side delay a transfer sees rarely exceeds a couple of ms; a mean of 0.3 ms puts 1 in
#: 1000 transfers beyond 2 ms.
USB_JITTER_MS = 0.3

#: A push whose WRITEBUF line arrives within this many seconds of the previous reply is taken
#: as waiting on it (a streaming client), and the emulator's own delay of that reply is given
#: back to it (:meth:`MediumPath._tx_start`).
TX_CREDIT_WINDOW_S = 0.02

#: Most samples a radio's TX queue may hold ahead of the air (its DAC FIFO, 128 MB of
#: complex64): beyond it a push waits on the wall clock, and on the sim clock (where nothing
#: drains the queue but readers) it is refused with ENOBUFS.
TX_QUEUE_MAX_SAMPLES = 1 << 24


#: Least air (seconds) the wall-clock medium keeps behind *now* for late readers, whatever the
#: kernel queues: it bounds how far a reader may lag before the medium's own guard drops samples.
MIN_BACKLOG_S = 0.5


class Air:
    """Coordinates the emulated radios of one medium (cyclic transmitters, how much past air
    the medium keeps)."""

    def __init__(self, medium: Medium) -> None:
        self.medium = medium
        self.paths: list[MediumPath] = []
        self._lock = threading.Lock()
        self.update_backlog()

    def update_backlog(self) -> None:
        """Keep on a wall-clock medium only the past air a reader can still ask for.

        A reader lags at most its kernel queue (``buffers_count`` blocks of its buffer, see
        :meth:`MediumPath._kernel_queue`) plus the block it is reading; the medium's own overflow
        guard (``rx_backlog``) is set to twice the deepest queue of any radio (at least
        :data:`MIN_BACKLOG_S`), so it never pre-empts the kernel-queue model, and the medium
        forgets bursts older than that. Every read scans the medium's bursts (under its lock),
        so seconds of streamed air kept for nobody made every read slower.
        """
        m = self.medium
        if not m.wall:
            return
        with self._lock:
            deepest = max(((p.buffers_count + 1) * p.rx_block for p in self.paths), default=0)
        m.rx_backlog = max(2.0 * deepest, MIN_BACKLOG_S * m.sample_rate)
        m.retention = 0.0

    def attach(self, path: MediumPath) -> None:
        with self._lock:
            self.paths.append(path)
        self.update_backlog()

    def detach(self, path: MediumPath) -> None:
        with self._lock:
            if path in self.paths:
                self.paths.remove(path)

    def schedule_cyclic(self, until: float, since: float | None = None) -> None:
        """Put every cyclic transmission on the air through medium time ``until``; air before
        ``since`` that no reader asked for is skipped (the repetition keeps its phase)."""
        with self._lock:
            paths = list(self.paths)
        for p in paths:
            p._extend_cyclic(until, since)


class MediumPath:
    """The data path of one emulated Pluto on a shared medium (see the module docstring)."""

    def __init__(self, radio: LoopbackRadio, air: Air, *, seed: int = 0,
                 rx_gain_ref_db: float = 30.0, tx_gain_ref_db: float = -10.0,
                 apply_gains: bool = True, recorder: SigMFRecorder | None = None,
                 usb_bytes_per_s: float = 0.0, usb_overhead_s: float = 0.0,
                 usb_jitter_s: float = 0.0) -> None:
        self.radio = radio
        #: USB model (wall clock only; 0 = instant): a buffer of n samples takes
        #: ``n * 4 / usb_bytes_per_s + usb_overhead_s`` plus a random extra delay (exponential,
        #: mean ``usb_jitter_s``: host scheduling and USB frame timing) to cross; a TX block
        #: reaches the air only once it has fully crossed, and an RX reply is never faster.
        self.usb_bytes_per_s = float(usb_bytes_per_s)
        self.usb_overhead_s = float(usb_overhead_s)
        self.usb_jitter_s = float(usb_jitter_s)
        #: Optional SigMF recorder of every sample this radio's clients received.
        self.recorder = recorder
        self.air = air
        self.medium = radio.medium
        self.rx_gain_ref_db = float(rx_gain_ref_db)
        self.tx_gain_ref_db = float(tx_gain_ref_db)
        self.apply_gains = apply_gains
        self.buffers_count = 4  #: RX kernel blocks (what pyadi's set_kernel_buffers_count sets)
        self.tx_buffers_count = 4  #: TX kernel blocks (libiio's default unless set on the TX)
        self.late_samples = 0  #: RX samples answered with noise because the wait was too long
        self._rng = np.random.default_rng([seed, 0x5EED])
        self._lock = threading.Lock()
        self._cyclic: np.ndarray | None = None
        self._cyclic_pos = 0
        self._cyclic_next = 0.0  # local sample index where the next cyclic chunk starts
        self._rate_ok = True
        self._gap_start = 0
        self._resume: int | None = None  # local index where the stream resumes after a gap
        self._rate = self.medium.sample_rate
        self._warned: set[str] = set()
        clock = self.medium.clock  # a medium keeps the clock it was made with
        self._clock_now = clock.now if clock is not None else None
        self._clock_rate = getattr(clock, "rate", None)
        #: Samples of the last RX request (the kernel blocks' size; sets how much past air the
        #: medium keeps, :meth:`Air.update_backlog`).
        self.rx_block = 0
        air.attach(self)

    # ------------------------------------------------------------------ clock helpers
    def _global(self, k: float) -> float:
        return self.radio.start_delay + k / (1.0 + self.radio.sfo_ppm * 1e-6)

    def _local(self, t: float) -> float:
        return (t - self.radio.start_delay) * (1.0 + self.radio.sfo_ppm * 1e-6)

    def _now(self) -> float:
        # the clock's own now() when the medium has one (Medium.now() adds a call; asked ~6
        # times per request)
        now = self._clock_now
        return float(now()) if now is not None else float(self.medium.now())

    def _since(self, started: float | None) -> float:
        """Medium time of the wall-clock instant ``started`` (``time.monotonic()``: when the
        request's command line arrived), or now. The modelled USB transfer starts there, so the
        time the emulator itself spends reading and converting the payload is part of the
        transfer's modelled duration instead of being added to it."""
        now = self._now()
        rate = self._clock_rate
        if started is None or not self.medium.wall or not rate:
            return now
        return now - max(0.0, time.monotonic() - started) * float(rate)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    # ------------------------------------------------------------------ DataPath
    def configure(self, settings: Settings) -> None:
        if self.recorder is not None and float(settings.rx_lo) != self.recorder.frequency_hz:
            self.recorder.retune(float(settings.rx_lo))
        self._rate = settings.sample_rate
        self._rate_ok = float(settings.sample_rate) == float(self.medium.sample_rate)
        kwargs: dict[str, float] = {"tx_lo_hz": float(settings.tx_lo),
                                    "rx_lo_hz": float(settings.rx_lo)}
        if self.apply_gains:
            rx = settings.rx_gain_db if settings.gain_control_mode == "manual" \
                else self.rx_gain_ref_db
            kwargs["rx_gain_db"] = rx - self.rx_gain_ref_db
            kwargs["tx_gain_db"] = min(0.0, settings.tx_gain_db - self.tx_gain_ref_db)
        self.radio.tune(**kwargs)

    def set_kernel_buffers(self, count: int, *, output: bool = False) -> None:
        if output:
            self.tx_buffers_count = max(1, int(count))
        else:
            self.buffers_count = max(1, int(count))
            self.air.update_backlog()

    def attach_registers(self, rx: CoreRegisters, tx: CoreRegisters) -> None:
        self._rx_regs, self._tx_regs = rx, tx

    _rx_regs: CoreRegisters | None = None
    _tx_regs: CoreRegisters | None = None

    def _check_rate(self) -> None:
        if not self._rate_ok:
            self._warn_once("rate", "%s: a client set the sample rate to %d S/s but the "
                            "emulated air runs at %g S/s, so its buffers are refused (EINVAL); "
                            "start `relaysec emulate --sample-rate %d` for clients at that rate",
                            self.radio.name, self._rate, self.medium.sample_rate, self._rate)
            raise IioError(errno.EINVAL, f"{self.radio.name}: sample rate {self._rate} differs "
                           f"from the emulated air's {self.medium.sample_rate:g} S/s")

    def start_rx(self) -> None:
        self._resume = None
        lag = math.floor(self._local(self._now())) - self.radio.time
        if lag > 0:
            self.radio.skip(lag)

    def _usb(self, n: int, since: float, max_wait_s: float,
             latest: float | None = None) -> float | None:
        """Hold until a transfer of ``n`` samples started at medium time ``since`` has crossed
        USB (bounded by the client's timeout, and by medium time ``latest`` when given);
        nothing on the sim clock or without a model. Returns the medium time the transfer
        ended in the model (None without one): the emulator's own thread may wake later than
        that, which is not the client's doing."""
        clock = self.medium.clock
        if not self.medium.wall or clock is None or self.usb_bytes_per_s <= 0:
            return None
        fs = self.medium.sample_rate
        took = n * USB_BYTES_PER_SAMPLE / self.usb_bytes_per_s + self.usb_overhead_s
        if self.usb_jitter_s > 0:
            took += float(self._rng.exponential(self.usb_jitter_s))
        end = min(since + took * fs, self._now() + max_wait_s * fs)
        if latest is not None:
            end = min(end, max(latest, self._now()))
        clock.sleep_until(end)
        return end

    def rx(self, n: int, *, max_wait_s: float, started: float | None = None) -> np.ndarray:
        since = self._since(started)
        # a buffer too long for the client's timeout was completed with noise after waiting
        # all that allows: its transfer is not modelled on top of that wait (two waits left
        # the emulator's own work ~80 ms before a 0.4 s timeout: EPIPE on a loaded host)
        latest = since + max_wait_s * self.medium.sample_rate
        out = self._rx(n, max_wait_s=max_wait_s, since=since)
        if self.medium.wall:
            # the block crosses USB once it is complete on the device and the host has asked
            # for it: a reader that keeps up gets it one transfer after its window ends, as
            # from a Pluto (before, right at the window's end: 7.8 ms early for 32 k samples)
            since = max(since, min(self._global(self.radio.time), self._now()))
        self._usb(n, since, max_wait_s, latest)
        if self.recorder is not None:
            self.recorder.write(out)
        return out

    def _rx(self, n: int, *, max_wait_s: float, since: float | None = None) -> np.ndarray:
        self._check_rate()
        if n > self.rx_block:  # a larger block: the medium keeps more past air for it
            self.rx_block = n
            self.air.update_backlog()
        fs = self.medium.sample_rate
        if self.medium.wall:
            self._kernel_queue(n, since)
        t = self.radio.time
        if self.medium.wall:
            now = self._now()
            need = self._global(t + n) + _MARGIN
            if need - now > max_wait_s * fs:
                # Cannot fill the whole buffer within the client's timeout: deliver what the air
                # has by then and complete with receiver noise (never stall libiio into EPIPE).
                reachable = self._local(now + max_wait_s * fs - _MARGIN)
                k = int(max(0, min(n, math.floor(reachable) - t)))
                self._warn_once("late", "%s: an RX buffer of %d samples takes %.2f s at %g S/s, "
                                "longer than the client's timeout allows (%.2f s); completing "
                                "it with noise. Raise ctx.set_timeout() or use smaller "
                                "buffers.", self.radio.name, n, n / fs, fs, max_wait_s)
                self.air.schedule_cyclic(self._global(t + k) + _MARGIN + CYCLIC_LOOKAHEAD_S * fs,
                                         self._global(t) - CYCLIC_LOOKBACK_S * fs)
                head = self.radio.receive(k) if k else np.zeros(0, np.complex64)
                self.radio.skip(n - k)
                self.late_samples += n - k
                return np.concatenate([head, self._noise(n - k)])
        self.air.schedule_cyclic(self._global(t + n) + _MARGIN + CYCLIC_LOOKAHEAD_S * fs,
                                 self._global(t) - CYCLIC_LOOKBACK_S * fs)
        return self.radio.receive(n)

    def _kernel_queue(self, n: int, since: float | None = None) -> None:
        """Model the driver's queue of ``buffers_count`` DMA blocks (wall clock only).

        While the reader keeps up, blocks are contiguous. When it falls more than
        ``buffers_count`` blocks behind, the queue is full and the DMA stops: the reader still
        gets the queued (old) blocks, then the stream resumes at the moment its first refill freed
        a block; the samples in between are lost (``stats.overflows``/``dropped``).

        The queue is judged at medium time ``since``, when the request arrived (default: now):
        the kernel hands a block out when the read comes in, and the time this emulator's own
        thread then spends waiting (for the GIL, for a core on a loaded host) is not the
        reader's lateness. Judged on waking instead, a busy emulator declared overflows that a
        Pluto would not have (all four radios at once), and each one makes a streaming node
        measure its TX->RX offset again, silent meanwhile.
        """
        t = self.radio.time
        if self._resume is None:
            now = self._now()
            now_l = math.floor(self._local(now if since is None else min(since, now)))
            if now_l - t > self.buffers_count * n:
                self._gap_start = t + self.buffers_count * n
                self._resume = now_l
                self.radio.stats.overflows += 1
                self.radio.stats.dropped += now_l - self._gap_start
                if self._rx_regs is not None:
                    self._rx_regs.raise_flags(RX_OVERFLOW)
        if self._resume is not None and t >= self._gap_start:
            self.radio.skip(max(0, self._resume - t))
            self._resume = None

    def _noise(self, n: int) -> np.ndarray:
        sigma = math.sqrt(10 ** ((self.radio.noise_dbfs + self.radio.rx_gain_db) / 10) / 2)
        x = self._rng.standard_normal(2 * n).astype(np.float32) * np.float32(sigma)
        codes = np.clip(np.rint(x * 2048.0), -2048, 2047) / np.float32(2048.0)
        return codes.astype(np.float32).view(np.complex64)

    def tx(self, iq: np.ndarray, *, cyclic: bool, max_wait_s: float,
           started: float | None = None) -> None:
        self._check_rate()
        iq = np.asarray(iq, np.complex64)
        # the block must cross USB first; the crossing began when the WRITEBUF line arrived
        arrived = self._usb(iq.size, self._tx_start(self._since(started)), max_wait_s)
        # the block reached the device when its transfer ended, not when this thread woke up
        arrived_local = self._local(min(self._now(), arrived if arrived is not None
                                        else self._now()))
        if cyclic:
            with self._lock:
                now_local = self._local(self._now())
                self._cyclic = iq.copy()
                self._cyclic_pos = 0
                self._cyclic_next = max(now_local, self._cyclic_next)
            self._extend_cyclic(self._now() + CYCLIC_LOOKAHEAD_S * self.medium.sample_rate)
            return
        if self._tx_regs is not None and self._tx_end_local != -math.inf \
                and arrived_local > self._tx_end_local:
            self._tx_regs.raise_flags(TX_UNDERFLOW)  # the DAC ran dry since the last block
        if self.medium.wall and self.medium.clock is not None:
            # Back-pressure: at most `tx_buffers_count` blocks queued ahead of now (kernel queue).
            fs = self.medium.sample_rate
            ahead = self._tx_end_local - self._local(self._now())
            limit = max(iq.size, min(self.tx_buffers_count * iq.size, TX_QUEUE_MAX_SAMPLES))
            due = arrived if arrived is not None else self._now()
            if ahead > limit:
                wait_until = self._global(self._tx_end_local - limit)
                deadline = self._now() + max_wait_s * fs
                # held by a full queue until a block played out: the reply is due then
                due = max(due, min(wait_until, deadline))
                self.medium.clock.sleep_until(min(wait_until, deadline))
                ahead = self._tx_end_local - self._local(self._now())
                if ahead > 2 * limit:
                    # Still far over after waiting all the client's timeout allows: hardware
                    # would block past it (ETIMEDOUT). Queueing anyway would let a client with
                    # a tiny TIMEOUT pile up unbounded air (memory) ahead of everyone.
                    raise IioError(errno.ETIMEDOUT, f"{self.radio.name}: TX queue full: "
                                   f"{ahead / fs:.3f} s of air queued ahead, more than twice "
                                   f"{self.tx_buffers_count} kernel buffers, after waiting the "
                                   f"{max_wait_s:.3f} s the client's timeout allows")
            start = self._place(iq, arrived_local)
            now = self._now()
            # the reply is due now in the model; what this thread overslept is the emulator's
            self._tx_due, self._tx_late, self._tx_replied = due, max(0.0, now - due), now
        else:
            # Sim clock: "now" is the furthest any radio has read (Medium.now()), so every
            # radio that has not yet read past it hears the block (a DAC FIFO after that).
            at = max(self._local(self._now()), self._tx_end_local)
            if at + iq.size - self._local(self._now()) > max(iq.size, TX_QUEUE_MAX_SAMPLES):
                raise IioError(errno.ENOBUFS, f"{self.radio.name}: TX queue full: "
                               f"{at - self._local(self._now()):.0f} samples already queued "
                               "ahead of the simulated air, which only readers advance")
            start = self.radio.transmit(iq, at=at)
        self._tx_end_local = start + iq.size

    _tx_end_local = -math.inf
    _tx_due: float | None = None  # medium time the last push's reply was due in the model
    _tx_late = 0.0                # how much later than due it went out (the emulator's delay)
    _tx_replied = 0.0             # medium time it went out

    def _tx_start(self, since: float) -> float:
        """When this push's transfer starts in the model: when its WRITEBUF line arrived,
        minus the delay the emulator itself added to the previous reply, if the client was
        waiting on that reply (a streaming client pushes again as soon as it is answered).
        On a Pluto the reply leaves when the block has crossed USB; an emulator thread that
        wakes late (a loaded host, the GIL) delays it, the client's next push follows later,
        and that block would arrive late for a reason a Pluto does not have. Never before the
        previous reply was due: transfers stay one after the other at the USB rate."""
        due = self._tx_due
        if due is None or not self.medium.wall \
                or since - self._tx_replied > TX_CREDIT_WINDOW_S * self.medium.sample_rate:
            return since
        return max(due, since - self._tx_late)

    def _place(self, iq: np.ndarray, arrived_local: float) -> float:
        """Put one DMA block on the wall-clock air: right after the previous block while the
        queue has one (back to back, as the DMA plays them), else when it arrived (the DAC
        idled at zero meanwhile). Only the span between the first and last non-zero sample is
        handed to the medium: zeros radiate nothing, and a streaming client pushes mostly
        zeros. A block placed in the past is still heard by readers that have not read it."""
        # the DAC starts a block on an edge of its own sample clock: a whole local sample
        start = max(float(math.ceil(arrived_local)), self._tx_end_local)
        span = _sounding(iq)
        if span is not None:
            a, b = span
            self.radio.transmit(iq[a:b], at=start + a)
        return start

    def _extend_cyclic(self, until: float, since: float | None = None) -> None:
        """Schedule this radio's cyclic buffer through medium time ``until``, skipping air
        before ``since`` that nobody asked for (in blocks, so memory stays bounded)."""
        with self._lock:
            c = self._cyclic
            if c is None or c.size == 0:
                return
            end_local = self._local(until)
            if self._cyclic_next >= end_local:
                return
            block = max(c.size, int(CYCLIC_LOOKAHEAD_S * self.medium.sample_rate))
            if since is not None:
                gap = math.floor((self._local(since) - self._cyclic_next) / block) * block
                if gap > 0:  # keep the phase: the repetition advances as if it had played
                    self._cyclic_next += gap
                    self._cyclic_pos = int((self._cyclic_pos + gap) % c.size)
            blocks = math.ceil((end_local - self._cyclic_next) / block)
            for _ in range(blocks):
                idx = (self._cyclic_pos + np.arange(block)) % c.size
                start = self._cyclic_next
                self._cyclic_next += block
                self._cyclic_pos = int((self._cyclic_pos + block) % c.size)
                self.radio.transmit(c[idx], at=start)

    def stop_tx(self) -> None:
        with self._lock:
            self._cyclic = None
            self._cyclic_pos = 0

    def close(self) -> None:
        self.stop_tx()
        self.air.detach(self)
        self.radio.close()
        if self.recorder is not None:
            self.recorder.close()
