"""ADALM-Pluto backend over pyadi-iio: :class:`PlutoRadio` drives one device. Its settings,
ranges and the opening of the device (``import adi``, lazily) are :mod:`hw.pluto_config`
(re-exported here).

Scaling (see docs/radios.md): the project's full scale 1.0 per component is the AD9363's 12-bit
range.

- **TX:** pyadi casts to int16 without scaling and the DAC uses the 12 most significant bits, so
  ``x`` becomes ``round(x * 32752)`` (= 2047 * 16: full scale with no int16 wrap; values beyond
  full scale are clipped first and counted).
- **RX:** pyadi returns raw 12-bit codes (+-2048), so ``y = code / 2048``. Through the AD9361
  digital loopback (TX / 16), ``x`` comes back as ``x``.

Streaming (:meth:`PlutoRadio.start_stream`, :mod:`hw.timeline`; what the OTA runtime uses):
TX and RX stream continuously, zeros between bursts, and ``transmit(iq, at=k)`` places a burst
at RX-axis sample ``k`` exactly (docs/radios.md, "Streaming timeline").
The streaming methods are :class:`hw.pluto_streaming.PlutoStreaming`, mixed into
:class:`PlutoRadio`; the stream worker process, its shared rings and the direct libiio path are
in :mod:`hw.pluto_stream` (re-exported here). The cores' sticky flag register is
:mod:`hw.pluto_flags`. Applying settings (write, read-back, device ranges), ``tune`` and
``receive``/``skip``/``flush`` are :class:`hw.pluto_rx.PlutoReceiver`, mixed in too; here
remain opening, burst TX and its playout, the flags and closing.

Burst mode (before ``start_stream``):

- The TX buffer is non-cyclic. A burst of a new length recreates it, because pyadi cannot change a
  buffer's length.
- ``receive(n)`` concatenates RX buffers of ``rx_buffer_size`` samples and keeps the rest for the
  next call.
- Any ``tune`` flushes RX. The RX buffer is destroyed (its kernel blocks, filled before the retune,
  go with it) and pending samples are dropped, so the next ``receive`` returns only fresh samples.
- ``close`` destroys both buffers, zeroes the DDS and attenuates TX fully, so the Pluto does not
  keep transmitting after the process exits (pyadi-iio #151).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hw.errors import (
    RadioClosedError,
    RadioConfigError,
    RadioIOError,
)
from hw.pluto_config import (  # noqa: F401 - re-exported: they lived here before
    AD9363A_BW_CLAMP,
    BW_RANGE,
    DEFAULT_SAMPLE_RATE,
    DEFAULT_URI,
    LO_RANGE,
    LO_RANGE_EXTENDED,
    MIN_RX_BUFFER_S,
    PLUTO_INSTALL_HINT,
    RATE_RANGE,
    RX_GAIN_BANDS,
    RX_GAIN_RANGE,
    SERIAL_PREFIX,
    TX_GAIN_RANGE,
    USB2_SAFE_RATE,
    PlutoConfig,
    _in_range,
    _open_pyadi,
    available_bounds,
    resolve_serial_uri,
    rx_gain_range,
    safe_rx_buffer_size,
)
from hw.pluto_flags import RX_OVERFLOW_BIT, TX_UNDERFLOW_BIT, XFLOW_REG
from hw.pluto_rx import PlutoReceiver
from hw.pluto_stream import (  # noqa: F401 - re-exported: they lived here before
    _H_ERR,
    _H_GAP_MAX_NS,
    _H_PUSH_MAX_NS,
    _H_RUNNING,
    _H_RX_WRITTEN,
    _H_STOP,
    _H_TX_BLOCKS,
    _H_TX_CLAIM,
    _HDR,
    _LEAN_STEP,
    _PROJECT_ROOT,
    RX_RING_S,
    RX_SCALE,
    TX_RING_S,
    TX_SCALE,
    _DirectBuffer,
    _rx_worker_main,
    _RxWorker,
    _SharedTxRing,
)
from hw.pluto_streaming import (  # noqa: F401 - re-exported: it lived here before
    STREAM_FLAG_PERIOD_S,
    PlutoStreaming,
)
from hw.radio import ClosingContext, RadioCaps, RadioStats, as_iq, check_count
from hw.timeline import StreamTimeline

log = logging.getLogger(__name__)

#: Longest a close or a buffer re-creation waits for a burst still playing (seconds).
MAX_PLAYOUT_WAIT_S = 2.0
#: Samples of the timed start-up push that measures the first TX latency (a zone-sized push:
#: ~98 k samples take ~20 ms at the 17-20 MB/s host->Pluto rate of plutosdr-fw #61).
LATENCY_PROBE_S = 0.035


class PlutoRadio(PlutoStreaming, PlutoReceiver, ClosingContext):
    """A Pluto as a :class:`hw.radio.Radio`. ``PlutoRadio(uri, **settings)``: settings are the
    :class:`PlutoConfig` fields; ``config=`` passes a whole config instead. ``factory(uri)`` returns
    the pyadi-like device (default: ``adi.Pluto``; tests pass a fake). A burst leaves when the
    USB transfer and kernel buffers let it (no timed TX); ``skip`` receives and discards."""

    def __init__(
        self,
        uri: str | None = None,
        *,
        config: PlutoConfig | None = None,
        factory: Callable[[str], Any] | None = None,
        **settings: Any,
    ) -> None:
        if config is not None and settings:
            raise RadioConfigError("give either config= or individual settings, not both")
        if config is None:
            data = dict(settings)
            if uri is not None:
                data["uri"] = uri
            config = PlutoConfig.from_mapping(data)
        elif uri is not None:
            config = dataclasses.replace(config, uri=uri)
        self.config = config
        self.stats = RadioStats()
        self.closed = False
        self._pending = np.zeros(0, np.complex64)
        self._tx_len: int | None = None
        self._tx_busy_until = 0.0  # monotonic time when the last pushed burst has played out
        #: The hardware overflow/underflow flags are readable (else only failed transfers count).
        self.xflow_flags = True
        #: Settings as the device reports them after the last configure: name -> value.
        self.readback: dict[str, float | str] = {}
        #: Settings the device holds at another value than asked: name -> (asked, actual).
        self.clamped: dict[str, tuple[float, float]] = {}
        #: What the device reports: ``lo``/``tx_gain`` (min, max) from its ``*_available``,
        #: ``chip`` from ``ad9361-phy,model`` (read at open).
        self.ranges: dict[str, Any] = {}
        #: First-push TX latency (seconds) measured by :meth:`measure_tx_latency`, or None.
        self.tx_latency_s: float | None = None
        #: The streaming timeline once :meth:`start_stream` ran (else None: burst mode).
        self.timeline: StreamTimeline | None = None
        self.caps = RadioCaps(timed_tx=False, skip=False)
        self._rx_abs = 0       # samples taken from the device's RX stream so far
        self._flags_seen = False
        self._rx_base = 0      # absolute RX index of public index 0 (set by start_stream)
        self._rx_direct: _DirectBuffer | None = None  # libiio path for pyadi's RX buffer
        self._rx_plain: int | None = None  # id of an RX buffer the direct path cannot drive
        self._rx_worker: _RxWorker | None = None  # streaming RX in a process of its own
        self.device: Any = (factory or _open_pyadi)(config.uri)
        try:
            self._read_ranges()
            self._check_device_ranges(config)
            self._configure(config, first=True)
            self._read_back(config)
            self._clear_flags()
        except BaseException:
            self._release()
            raise
        self.sample_rate = float(config.sample_rate)

    # -- overflow/underflow flags ----------------------------------------------------------

    def _clear_flags(self) -> None:
        """Clear both cores' sticky flags, so only what happens from now on is counted."""
        for core, bit in self._flag_cores():
            if not self.xflow_flags:
                return
            try:
                core.reg_write(XFLOW_REG, bit)
            except Exception as exc:
                self._flags_unreadable(exc)

    def _flag_cores(self) -> list[tuple[Any, int]]:
        dev = self.device
        return [(dev._rxadc, RX_OVERFLOW_BIT), (dev._txdac, TX_UNDERFLOW_BIT)]

    def _flags_unreadable(self, exc: Exception) -> None:
        self.xflow_flags = False
        log.warning("%s: the overflow/underflow register (0x%08X, direct_reg_access) is not "
                    "readable (%s); only failed transfers are counted", self.config.uri,
                    XFLOW_REG, exc)

    def _flag_raised(self, core: Any, bit: int) -> bool:
        """Read :data:`XFLOW_REG` of ``core``; when ``bit`` is set, clear it and return True."""
        if not self.xflow_flags:
            return False
        try:
            value = int(core.reg_read(XFLOW_REG))
            if value & bit:
                core.reg_write(XFLOW_REG, bit)
                return True
        except Exception as exc:
            self._flags_unreadable(exc)
        return False

    def measure_tx_latency(self, n: int | None = None) -> float:
        """Time one push of ``n`` zero samples (default: :data:`LATENCY_PROBE_S` of them) and
        return it in seconds: a TX block starts only once it has fully crossed USB, so this is
        the first burst's latency from ``transmit`` to the air (zeros radiate nothing).
        Stored in :attr:`tx_latency_s`."""
        self._check_open()
        n = check_count(round(LATENCY_PROBE_S * self.sample_rate) if n is None else n)
        if n == 0:
            raise RadioConfigError("the latency probe needs at least one sample")
        t0 = time.monotonic()
        self._push(np.zeros(n, np.complex128))
        self.tx_latency_s = time.monotonic() - t0
        # Drop the probe's buffer (cutting only zeros), so that the first burst gets a buffer of
        # its own length instead of being padded to the probe's; and the flag it may leave.
        try:
            self.device.tx_destroy_buffer()
        except Exception as exc:
            raise RadioIOError(f"could not destroy the probe's TX buffer ({exc})") from exc
        self._tx_len = None
        self._tx_busy_until = time.monotonic()
        self._clear_flags()
        log.info("%s: first TX push of %d samples took %.1f ms", self.config.uri, n,
                 self.tx_latency_s * 1e3)
        return self.tx_latency_s

    def _wait_playout(self) -> None:
        """Wait until the last pushed burst has left the DAC: destroying a TX buffer aborts the
        DMA and cuts a burst still playing. Bounded by :data:`MAX_PLAYOUT_WAIT_S`."""
        wait = min(self._tx_busy_until - time.monotonic(), MAX_PLAYOUT_WAIT_S)
        if wait > 0:
            _sleep(wait)

    # -- Radio API -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise RadioClosedError(f"Pluto radio {self.config.uri!r} is closed")

    def transmit(self, iq: np.ndarray, *, at: float | None = None) -> bool:
        """Send one burst. Components beyond full scale are clipped and counted.

        Streaming (:meth:`start_stream`): the burst starts at RX-axis index ``at`` exactly;
        returns False (and sends nothing) when that sample has already been pushed or the
        offset is being measured. Burst mode: ``at`` must be None, the burst is pushed now
        (non-cyclic) and reaches the air after USB and kernel latency; returns True."""
        self._check_open()
        x = as_iq(iq)
        if self.timeline is not None:
            if at is None:
                raise RadioConfigError("a streaming Pluto places bursts at a sample: give at=")
            comp = x.view(np.float32)
            over = np.abs(comp) > 1.0
            if over.any():
                self.stats.clipped += int(np.count_nonzero(over))
                x = np.clip(comp, -1.0, 1.0).view(np.complex64)
            placed = self.timeline.place(x, round(at) + self._rx_base)
            if placed:
                self.stats.tx_bursts += 1
                self.stats.tx_samples += x.size
            return placed
        if at is not None:
            raise RadioConfigError("a Pluto in burst mode transmits as soon as it can: timed TX "
                                   "(at=) needs start_stream() (RadioCaps.timed_tx is False)")
        if x.size == 0:
            return True
        comp = x.view(np.float32)
        over = np.abs(comp) > 1.0
        if over.any():
            self.stats.clipped += int(np.count_nonzero(over))
            comp = np.clip(comp, -1.0, 1.0)
        codes = np.rint(comp.astype(np.float64) * TX_SCALE).view(np.complex128)
        pushed = self._push(codes)
        self.stats.tx_bursts += 1
        self.stats.tx_samples += pushed
        return True

    def _push(self, codes: np.ndarray) -> int:
        """Hand DAC codes to pyadi; returns the samples pushed (padding included).

        A shorter burst is padded with zeros (what the DAC sends when idle anyway) instead of
        re-creating the buffer; a longer one waits for the playout first: destroying a TX buffer
        aborts the DMA and would cut the burst still playing."""
        if self._tx_len is not None and codes.size < self._tx_len:
            codes = np.concatenate([codes, np.zeros(self._tx_len - codes.size, np.complex128)])
        dev = self.device
        try:
            if self._tx_len is not None and self._tx_len != codes.size:
                self._wait_playout()
                dev.tx_destroy_buffer()
                self._tx_len = None
            dev.tx(codes)
            self._tx_len = codes.size
        except Exception as exc:
            self.stats.underflows += 1
            with contextlib.suppress(Exception):
                dev.tx_destroy_buffer()
            self._tx_len = None
            raise RadioIOError(f"TX transfer to {self.config.uri!r} failed ({exc})") from exc
        now = time.monotonic()
        self._tx_busy_until = max(now, self._tx_busy_until) + codes.size / self.sample_rate
        if self._flag_raised(dev._txdac, TX_UNDERFLOW_BIT):
            self.stats.underflows += 1
        return int(codes.size)

    def close(self) -> None:
        """Destroy buffers, silence TX and release the device (idempotent, never raises)."""
        if self.closed:
            return
        self.closed = True
        if self.timeline is not None:
            self.timeline.stop()
        if self._rx_worker is not None:
            self._rx_worker.stop()
            self._rx_worker = None
        self._release()

    def _release(self) -> None:
        dev = self.device
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("wait for the last burst", self._wait_playout),
            ("tx_destroy_buffer", lambda: dev.tx_destroy_buffer()),
            ("disable_dds", lambda: dev.disable_dds()),
            ("tx attenuation", lambda: setattr(dev, "tx_hardwaregain_chan0", TX_GAIN_RANGE[0])),
            ("rx_destroy_buffer", lambda: dev.rx_destroy_buffer()),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # a dying device must not make close() raise
                log.warning("closing Pluto %s: %s failed: %s", self.config.uri, what, exc)
        self._pending = np.zeros(0, np.complex64)
        self._tx_len = None
        self._rx_direct = self._rx_plain = None
        self.device = None

    def __repr__(self) -> str:
        c = self.config
        state = "closed" if self.closed else "open"
        return (
            f"PlutoRadio({c.uri!r}, {state}, fs={c.sample_rate:g}, "
            f"lo={c.effective_rx_lo_hz:g}/{c.effective_tx_lo_hz:g})"
        )


def _sleep(seconds: float) -> None:
    """``time.sleep`` (tests replace it to watch the waits)."""
    time.sleep(seconds)


__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "PLUTO_INSTALL_HINT",
    "RX_SCALE",
    "TX_SCALE",
    "PlutoConfig",
    "PlutoRadio",
    "available_bounds",
    "resolve_serial_uri",
    "rx_gain_range",
    "safe_rx_buffer_size",
]
