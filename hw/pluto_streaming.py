"""A Pluto's streaming timeline side: switching a radio from burst mode to the streaming
timeline (:mod:`hw.timeline`), handing its streams to a worker process (:mod:`hw.pluto_stream`),
and what the OTA runtime asks of the timeline after that (the TX horizon, tracking own bursts,
the start-up catch-up, RX slips, the report).

A mixin of :class:`hw.pluto.PlutoRadio`, which holds the state named below and does the device
work with its other mixin :class:`hw.pluto_rx.PlutoReceiver`: opening, closing, the sticky
overflow/underflow flags and burst-mode transmit there; settings and their read-back, device
ranges, tuning and receive in the latter. ``transmit``, ``receive``, ``flush`` and ``close``
stay there: each serves both modes in one body. Kept apart because the
timeline changes for different reasons than how the radio is configured; the worker process
and its rings are :mod:`hw.pluto_stream`. This module must not import :mod:`hw.pluto` at run
time (it is imported by it).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from hw.errors import RadioIOError
from hw.pluto_flags import RX_OVERFLOW_BIT, TX_UNDERFLOW_BIT
from hw.pluto_stream import TX_SCALE, _DirectBuffer, _RxWorker
from hw.radio import RadioCaps, RadioStats
from hw.timeline import StreamTimeline

if TYPE_CHECKING:
    from hw.pluto import PlutoConfig

#: The radio's logger: these lines are the Pluto's own (filtered and configured as ``hw.pluto``).
log = logging.getLogger("hw.pluto")

#: Streaming: the cores' sticky overflow/underflow flags are read every this many seconds by
#: one monitor thread (a flag raised in between is still seen, a little later).
STREAM_FLAG_PERIOD_S = 0.05


class PlutoStreaming:
    """The streaming timeline of a Pluto (mixed into PlutoRadio): :meth:`start_stream`, the
    stream worker, and the timeline's horizon, tracking, catch-up, slips and report."""

    config: PlutoConfig
    device: Any
    stats: RadioStats
    caps: RadioCaps
    sample_rate: float
    xflow_flags: bool
    timeline: StreamTimeline | None
    _tx_len: int | None
    _pending: np.ndarray
    _rx_abs: int
    _rx_base: int
    _flags_seen: bool
    _rx_direct: _DirectBuffer | None
    _rx_plain: int | None
    _rx_worker: _RxWorker | None
    _worker_nice: int | None = None  # the stream worker's TX thread priority, once it ran
    # provided by PlutoRadio
    _check_open: Callable[[], None]
    _wait_playout: Callable[[], None]
    _clear_flags: Callable[[], None]
    _flag_raised: Callable[[Any, int], bool]
    receive: Callable[[int], np.ndarray]

    def start_stream(self, *, calibrate_s: float = 2.0) -> StreamTimeline:
        """Switch to the streaming timeline (:mod:`hw.timeline`): a thread pushes
        ``tx_block_size``-sample blocks back to back (zeros between bursts) into
        ``tx_kernel_buffers`` kernel blocks, so TX sample ``u`` reaches the air a constant
        time after the stream starts; a probe heard in the own RX stream measures the TX->RX
        offset. Reads RX until the offset is known (at most *calibrate_s* seconds; raises
        :class:`RadioIOError` if the probe is never heard: no TX->RX leakage, or gain too low).
        From then on RX index 0 is the first sample :meth:`receive` returns."""
        self._check_open()
        if self.timeline is not None:
            return self.timeline
        cfg = self.config
        dev = self.device
        if self._tx_len is not None:
            self._wait_playout()
            with contextlib.suppress(Exception):
                dev.tx_destroy_buffer()
            self._tx_len = None
        setter = getattr(dev._txdac, "set_kernel_buffers_count", None)
        if setter is not None:
            try:
                setter(cfg.tx_kernel_buffers)
            except Exception as exc:
                log.warning("%s: could not set the TX kernel block count (%s); libiio's default "
                            "(4) applies", cfg.uri, exc)
        zero_codes = np.zeros(cfg.tx_block_size, np.complex128)
        direct: list[_DirectBuffer | None] = []  # found after pyadi created the buffer

        def push(block: np.ndarray) -> None:
            zero = not block.any()
            comp = None if zero else np.rint(block.view(np.float32).astype(np.float64)
                                             * TX_SCALE)
            try:
                if direct and direct[0] is not None and dev._txbuf is direct[0].buf:
                    direct[0].push(comp)  # one C call, the GIL released while it blocks
                    return
                dev.tx(zero_codes if comp is None else comp.view(np.complex128))
                if not direct:
                    direct.append(_DirectBuffer.wrap(dev._txbuf, dev._txdac, output=True))
            except Exception as exc:
                self.stats.underflows += 1
                raise RadioIOError(f"TX stream push to {cfg.uri!r} failed ({exc})") from exc

        def flags() -> tuple[bool, bool]:
            under = self._flag_raised(dev._txdac, TX_UNDERFLOW_BIT)
            over = self._flag_raised(dev._rxadc, RX_OVERFLOW_BIT)
            self.stats.underflows += under and tl.stats.blocks > 1 and self._flags_seen
            self.stats.overflows += over
            self._flags_seen = True
            return under, over

        worker = self._start_worker()
        tl = StreamTimeline(None if worker is not None else push, sample_rate=self.sample_rate,
                            block=cfg.tx_block_size,
                            flags=flags if self.xflow_flags else None,
                            flag_period_s=STREAM_FLAG_PERIOD_S,
                            ring=worker.tx if worker is not None else None)
        self._clear_flags()
        self.timeline = tl
        self.caps = RadioCaps(timed_tx=True, skip=False, stream=True)
        tl.start()
        deadline = time.monotonic() + calibrate_s
        while not tl.ready:
            if tl.error is not None:
                raise RadioIOError(f"{cfg.uri}: the TX stream stopped: {tl.error}")
            if time.monotonic() > deadline:
                raise RadioIOError(
                    f"{cfg.uri}: the radio did not hear its own probe within {calibrate_s:g} s: "
                    "raise tx_gain_db or rx_gain_db, check that an antenna (or a cable and "
                    "attenuator) is on each port, or run `relaysec doctor --latency`")
            self.receive(self.config.rx_buffer_size)
        self._rx_base = self._rx_abs - self._pending.size
        log.info("%s: streaming; TX->RX offset %d samples (%.2f ms)", cfg.uri, tl.offset,
                 (tl.offset or 0) / self.sample_rate * 1e3)
        return tl

    def _start_worker(self) -> _RxWorker | None:
        """Hand the TX and RX streams to a process of its own (:class:`_RxWorker`) when the
        config asks for it (``rx_worker``) and the device allows it: a pyadi Pluto on an
        ``ip:`` URI (libiio's network backend serves several contexts at once; a USB Pluto is
        claimed by one process). Returns the worker, or None (the streams stay here)."""
        cfg, dev = self.config, self.device
        uri = str(getattr(dev, "uri", "") or cfg.uri)
        if not cfg.rx_worker or not uri.startswith("ip:"):
            return None
        try:
            import iio

            if not isinstance(getattr(dev, "_rxadc", None), iio.Device):
                return None
        except Exception:
            return None
        with contextlib.suppress(Exception):
            dev.rx_destroy_buffer()  # the worker opens both buffers on its own context
        with contextlib.suppress(Exception):
            dev.disable_dds()        # what pyadi does before its first TX buffer
        self._rx_direct = self._rx_plain = None
        self.stats.dropped += self._pending.size
        self._pending = np.zeros(0, np.complex64)
        worker = _RxWorker(uri, cfg.rx_buffer_size, cfg.kernel_buffers, cfg.timeout_ms,
                           self.sample_rate, tx_block=cfg.tx_block_size,
                           tx_kernel_buffers=cfg.tx_kernel_buffers, nice=cfg.stream_nice)
        try:
            worker.wait_running(max(10.0, cfg.timeout_ms / 1000))
        except BaseException:
            worker.stop()
            raise
        self._rx_worker = worker
        self._worker_nice = worker.nice  # kept for the report after the worker has ended
        if worker.nice is not None and worker.nice > cfg.stream_nice:
            log.info("%s: the stream worker's TX thread runs at nice %d, not %d (not "
                     "permitted: root, CAP_SYS_NICE or an RLIMIT_NICE allows it; "
                     "docs/radios.md)", cfg.uri, worker.nice, cfg.stream_nice)
        log.info("%s: TX and RX stream in worker process %d (%.1f s RX ring, %.1f s TX "
                 "ring)", cfg.uri, worker.proc.pid, worker.ring / self.sample_rate,
                 worker.tx_size / self.sample_rate)
        return worker

    def tx_horizon(self) -> int | None:
        """Earliest RX index (public axis) a burst can still be placed at; None while the
        offset is measured or in burst mode."""
        if self.timeline is None:
            return None
        h = self.timeline.horizon()
        return None if h is None else h - self._rx_base

    def track(self, placed: int, heard: int) -> None:
        """An own burst placed at RX index *placed* was heard back at *heard* (public axis)."""
        if self.timeline is not None:
            self.timeline.track(placed, heard)

    def catch_up(self) -> int:
        """Skip, unread, the RX samples the stream worker holds: what piled up while this host
        set up the other radios and the node (each Pluto's stream starts when its own setup
        ends, seconds before the first is read; past the worker's ring that read as lost
        samples and an RX break on every radio but the last). Nothing was waiting for them:
        the timeline's offset moves by the count, no break, no slip to follow. Returns the
        samples skipped (0 without a worker, or in burst mode)."""
        if self._rx_worker is None or self.timeline is None:
            return 0
        n = self._rx_worker.catch_up()
        if n:
            self.timeline.rx_skipped(n)
            log.info("%s: skipped %d RX samples (%.2f s) that piled up before the node read",
                     self.config.uri, n, n / self.sample_rate)
        return n

    def take_rx_slip(self) -> int | None:
        """RX samples lost since the last call (:meth:`hw.timeline.StreamTimeline.take_rx_slip`);
        0 in burst mode."""
        return 0 if self.timeline is None else self.timeline.take_rx_slip()

    def timeline_report(self) -> dict[str, float | int | None]:
        """The streaming timeline's offset and counters ({} in burst mode)."""
        if self.timeline is None:
            return {}
        out = self.timeline.report()
        if self._worker_nice is not None:  # the stream ran in a worker process
            out["worker_nice"] = self._worker_nice
        return out


__all__ = ["STREAM_FLAG_PERIOD_S", "PlutoStreaming"]
