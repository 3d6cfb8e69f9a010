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
:mod:`hw.pluto_flags`.

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


class PlutoRadio(PlutoStreaming, ClosingContext):
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

    # -- device settings -------------------------------------------------------------------

    def _set(self, attr: str, value: Any) -> None:
        try:
            setattr(self.device, attr, value)
        except Exception as exc:
            raise RadioIOError(f"the Pluto rejected {attr} = {value!r} ({exc})") from exc

    def _configure(self, cfg: PlutoConfig, *, first: bool, old: PlutoConfig | None = None) -> None:
        dev = self.device
        if first:
            setter = getattr(dev._rxadc, "set_kernel_buffers_count", None)
            if setter is None:  # pylibiio 1.x: the block count is not settable from Python
                log.warning("%s: pylibiio 1.x cannot set the kernel block count; libiio's default "
                            "applies (kernel_buffers=%d ignored)", cfg.uri, cfg.kernel_buffers)
            else:
                try:
                    setter(cfg.kernel_buffers)
                except Exception as exc:
                    raise RadioIOError(f"could not set the kernel buffer count ({exc})") from exc
            ctx = getattr(dev, "ctx", None)
            if ctx is not None and hasattr(ctx, "set_timeout"):
                try:
                    ctx.set_timeout(cfg.timeout_ms)
                except Exception as exc:
                    raise RadioIOError(f"could not set the libiio timeout ({exc})") from exc
            self._set("rx_enabled_channels", [0])
            self._set("tx_enabled_channels", [0])
            self._set("tx_cyclic_buffer", False)

        def changed(name: str) -> bool:
            return first or old is None or getattr(old, name) != getattr(cfg, name)

        if changed("sample_rate"):
            self._set("sample_rate", round(float(cfg.sample_rate)))
        if changed("effective_rf_bandwidth_hz"):
            bw = round(float(cfg.effective_rf_bandwidth_hz))
            self._set("rx_rf_bandwidth", bw)
            self._set("tx_rf_bandwidth", bw)
        if changed("effective_rx_lo_hz"):
            self._set("rx_lo", round(float(cfg.effective_rx_lo_hz)))
        if changed("effective_tx_lo_hz"):
            self._set("tx_lo", round(float(cfg.effective_tx_lo_hz)))
        if changed("gain_mode"):
            self._set("gain_control_mode_chan0", cfg.gain_mode)
        if cfg.gain_mode == "manual" and (changed("rx_gain_db") or changed("gain_mode")):
            self._set("rx_hardwaregain_chan0", float(cfg.rx_gain_db))
        if changed("tx_gain_db"):
            self._set("tx_hardwaregain_chan0", float(cfg.tx_gain_db))
        if changed("rx_buffer_size"):
            self._set("rx_buffer_size", int(cfg.rx_buffer_size))

    #: (readback name, pyadi attribute, config property, tolerance): what is read back.
    _READBACK = (
        ("sample_rate", "sample_rate", "sample_rate", 1.0),
        ("rx_lo_hz", "rx_lo", "effective_rx_lo_hz", 1.0),
        ("tx_lo_hz", "tx_lo", "effective_tx_lo_hz", 1.0),
        ("rx_rf_bandwidth_hz", "rx_rf_bandwidth", "effective_rf_bandwidth_hz", 1.0),
        ("tx_rf_bandwidth_hz", "tx_rf_bandwidth", "effective_rf_bandwidth_hz", 1.0),
        ("tx_gain_db", "tx_hardwaregain_chan0", "tx_gain_db", 0.25),
    )

    def _read_back(self, cfg: PlutoConfig) -> None:
        """Read every setting back; a value the device holds differently from what was asked
        (the AD9363A clamps the RF bandwidth silently, RX gain clamps below its table) is kept
        in :attr:`clamped` and logged. Unreadable values are skipped."""
        dev = self.device
        got: dict[str, float | str] = {}
        clamped: dict[str, tuple[float, float]] = {}
        rows = list(self._READBACK)
        if cfg.gain_mode == "manual":
            rows.append(("rx_gain_db", "rx_hardwaregain_chan0", "rx_gain_db", 0.5))
        for name, attr, prop, tol in rows:
            try:
                actual = float(getattr(dev, attr))
            except Exception as exc:
                log.debug("%s: could not read back %s: %s", cfg.uri, attr, exc)
                continue
            got[name] = actual
            asked = float(getattr(cfg, prop))
            if abs(actual - asked) > tol:
                clamped[name] = (asked, actual)
                log.warning("%s: asked %s = %g, the device holds %g", cfg.uri, name, asked,
                            actual)
        with contextlib.suppress(Exception):
            got["gain_mode"] = str(dev.gain_control_mode_chan0)
        self.readback, self.clamped = got, clamped

    def _read_ranges(self) -> None:
        """Read the LO and TX attenuation ranges and the chip the device reports."""
        dev = self.device
        ranges: dict[str, Any] = {}
        for key, chan, attr in (("lo", "altvoltage0", "frequency_available"),
                                ("tx_gain", "voltage0", "hardwaregain_available")):
            try:
                bounds = available_bounds(str(dev._get_iio_attr_str(chan, attr, True)))
            except Exception as exc:
                log.debug("%s: cannot read %s %s: %s", self.config.uri, chan, attr, exc)
                continue
            if bounds is not None:
                ranges[key] = bounds
        with contextlib.suppress(Exception):
            ranges["chip"] = str(dev.ctx.attrs.get("ad9361-phy,model", ""))
        self.ranges = ranges

    def _check_device_ranges(self, cfg: PlutoConfig) -> None:
        """Refuse LOs outside what this device reports (an AD9363A without the extended-range
        firmware setting reports 325-3800 MHz) with the reason, before writing anything."""
        lo = self.ranges.get("lo")
        if lo is None:
            return
        for name in ("rx_lo_hz", "tx_lo_hz"):
            value = getattr(cfg, "effective_" + name)
            if not lo[0] <= value <= lo[1]:
                chip = self.ranges.get("chip") or "unknown"
                hint = ("; the extended range needs the AD9364 firmware setting (`relaysec "
                        "doctor` prints the command for this firmware)" if chip == "ad9363a"
                        else "")
                raise RadioConfigError(
                    f"{name} = {value / 1e6:g} MHz is outside the {lo[0] / 1e6:g}-"
                    f"{lo[1] / 1e6:g} MHz this Pluto reports (frequency_available, chip "
                    f"{chip}){hint}"
                )

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

    def skip(self, n: int) -> None:
        """Let ``n`` samples pass: received and discarded (the stream must be read anyway)."""
        self.receive(n)

    def receive(self, n: int) -> np.ndarray:
        """The next ``n`` samples, scaled so ADC full scale is 1.0 (complex64)."""
        self._check_open()
        n = check_count(n)
        parts = [self._pending]
        have = self._pending.size
        while have < n:
            try:
                block = self._rx_block()
            except Exception as exc:
                self.stats.overflows += 1
                self.stats.dropped += have
                self._pending = np.zeros(0, np.complex64)
                if self.timeline is not None:
                    self.timeline.rx_broken()
                with contextlib.suppress(Exception):
                    self.device.rx_destroy_buffer()
                raise RadioIOError(
                    f"RX transfer from {self.config.uri!r} failed ({exc}); the RX buffer was "
                    "recreated and pending samples dropped"
                ) from exc
            # streaming: the TX thread reads both cores' flags (one thread on the control
            # connection), and reports an RX overflow to the timeline itself
            overflow = self.timeline is None \
                and self._flag_raised(self.device._rxadc, RX_OVERFLOW_BIT)
            if overflow:
                self.stats.overflows += 1
            if self.timeline is not None:
                if overflow:
                    self.timeline.rx_broken()
                self.timeline.on_rx(block, self._rx_abs)
            self._rx_abs += block.size
            comp = block.view(np.float32)
            self.stats.clipped += int(np.count_nonzero((comp >= 2047 / RX_SCALE) | (comp <= -1.0)))
            parts.append(block)
            have += block.size
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        out, self._pending = data[:n], data[n:]
        self.stats.rx_calls += 1
        self.stats.rx_samples += n
        return out

    def _rx_block(self) -> np.ndarray:
        """One RX buffer from the device, scaled to full scale 1.0 (complex64): through
        libiio's C calls directly once pyadi has created the buffer (:class:`_DirectBuffer`),
        else through pyadi's ``rx()``."""
        if self._rx_worker is not None:
            block, lost = self._rx_worker.read()
            if lost:  # the node fell more than the host ring behind: samples gone, exactly
                self.stats.overflows += 1
                self.stats.dropped += lost
                if self.timeline is not None:
                    self.timeline.rx_lost(lost)
                log.warning("%s: the node fell %.2f s behind its RX worker; %d samples lost",
                            self.config.uri, self._rx_worker.ring / self.sample_rate, lost)
            return block
        dev = self.device
        buf = getattr(dev, "_rxbuf", None)
        if buf is None:  # destroyed (flush, retune): pyadi creates the next one
            self._rx_direct = self._rx_plain = None
        direct = self._rx_direct
        if buf is not None and (direct is None or direct.buf is not buf) \
                and id(buf) != self._rx_plain:
            direct = self._rx_direct = _DirectBuffer.wrap(buf, dev._rxadc, output=False)
            if direct is None:
                self._rx_plain = id(buf)  # not a layout the direct path handles: pyadi's
        if buf is not None and direct is not None and direct.buf is buf:
            try:
                return direct.read()
            except Exception:
                # as pyadi does on a failed refill: drop the buffer now, while its device
                # lives (a libiio 0.x buffer destroyed at gc time after its context crashes)
                dev._rxbuf = None
                self._rx_direct = None
                raise
        raw = np.asarray(dev.rx())
        if raw.ndim != 1 or raw.size == 0:
            raise RadioIOError(f"the Pluto returned an unexpected RX block of shape {raw.shape}")
        return (raw / RX_SCALE).astype(np.complex64)

    def flush(self) -> None:
        """Drop pending RX samples and destroy the RX buffer (the next receive starts fresh)."""
        self._check_open()
        self.stats.dropped += self._pending.size
        self._pending = np.zeros(0, np.complex64)
        if self.timeline is not None:
            self.timeline.rx_broken()   # a new RX buffer: the RX count restarts elsewhere
        if self._rx_worker is not None:
            self._rx_worker.drop()      # the worker's stream goes on: skip what it holds
            return
        try:
            self.device.rx_destroy_buffer()
        except Exception as exc:
            raise RadioIOError(f"could not destroy the RX buffer ({exc})") from exc

    def tune(
        self,
        *,
        lo_hz: float | None = None,
        sample_rate: float | None = None,
        rx_gain_db: float | None = None,
        tx_gain_db: float | None = None,
        **more: Any,
    ) -> None:
        """Change settings (any :class:`PlutoConfig` field except ``uri`` and ``kernel_buffers``,
        e.g. ``tx_lo_hz``, ``rx_lo_hz``, ``rf_bandwidth_hz``, ``gain_mode``). The new config is
        validated first; then only changed settings are written, and RX is flushed."""
        self._check_open()
        fixed = {"uri", "kernel_buffers", "timeout_ms"} & set(more)
        if fixed:
            raise RadioConfigError(f"{', '.join(sorted(fixed))} cannot change on an open radio")
        changes = dict(more)
        if lo_hz is not None:
            changes["lo_hz"] = lo_hz
            changes.setdefault("tx_lo_hz", None)  # lo_hz sets both LOs unless one is given
            changes.setdefault("rx_lo_hz", None)
        if sample_rate is not None:
            changes["sample_rate"] = sample_rate
        if rx_gain_db is not None:
            changes["rx_gain_db"] = rx_gain_db
        if tx_gain_db is not None:
            changes["tx_gain_db"] = tx_gain_db
        names = {f.name for f in dataclasses.fields(PlutoConfig)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise RadioConfigError(f"unknown Pluto setting(s) {', '.join(unknown)}")
        new = dataclasses.replace(self.config, **changes)
        if rx_gain_db is not None and new.gain_mode != "manual":
            raise RadioConfigError(
                f"rx_gain_db applies only in manual gain mode (mode is {new.gain_mode!r}); "
                "pass gain_mode='manual' too"
            )
        if new.rx_buffer_size != self.config.rx_buffer_size:
            # pyadi sizes the buffer when it is created
            with contextlib.suppress(Exception):
                self.device.rx_destroy_buffer()
        old = self.config
        self._check_device_ranges(new)
        self._configure(new, first=False, old=old)
        self._read_back(new)
        self.config = new
        self.sample_rate = float(new.sample_rate)
        self.flush()

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
