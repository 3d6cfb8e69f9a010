"""A Pluto's receive and tuning side: applying a :class:`PlutoConfig` to the device (the writes,
their read-back, the ranges the device reports), retuning, and receiving (pyadi's RX buffer, the
direct libiio path, or the stream worker's ring).

A mixin of :class:`hw.pluto.PlutoRadio`, which holds the state named below, opens and closes the
device, transmits and reads the sticky overflow/underflow flags. Kept apart because what
configures the radio and brings samples in changes for other reasons than burst TX and its
playout. This module must not import :mod:`hw.pluto` at run time (it is imported by it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from hw.errors import RadioConfigError, RadioIOError
from hw.pluto_config import PlutoConfig, available_bounds
from hw.pluto_flags import RX_OVERFLOW_BIT
from hw.pluto_stream import RX_SCALE, _DirectBuffer, _RxWorker
from hw.radio import RadioStats, check_count
from hw.timeline import StreamTimeline

#: The radio's logger: these lines are the Pluto's own (filtered and configured as ``hw.pluto``).
log = logging.getLogger("hw.pluto")

#: The largest positive ADC code at full scale 1.0 (a component there or at -1.0 clipped).
_CLIP_HIGH = np.float32(2047 / RX_SCALE)


class PlutoReceiver:
    """Settings, ranges, tuning and receive of a Pluto (mixed into PlutoRadio): the device
    writes and read-back behind ``__init__`` and :meth:`tune`, and :meth:`receive`,
    :meth:`skip`, :meth:`flush` in both burst and streaming mode."""

    config: PlutoConfig
    device: Any
    stats: RadioStats
    sample_rate: float
    readback: dict[str, float | str]
    clamped: dict[str, tuple[float, float]]
    ranges: dict[str, Any]
    timeline: StreamTimeline | None
    _pending: np.ndarray
    _rx_abs: int
    _rx_direct: _DirectBuffer | None
    _rx_plain: int | None
    _rx_worker: _RxWorker | None
    # provided by PlutoRadio
    _check_open: Callable[[], None]
    _flag_raised: Callable[[Any, int], bool]

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

    # -- receive and tune ------------------------------------------------------------------

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
            # two reductions; the count (three passes and temporaries) only when one clipped
            if comp.max() >= _CLIP_HIGH or comp.min() <= -1.0:
                self.stats.clipped += int(np.count_nonzero((comp >= _CLIP_HIGH)
                                                           | (comp <= -1.0)))
            parts.append(block)
            have += block.size
        if len(parts) == 1:
            out, self._pending = parts[0][:n], parts[0][n:]
        else:
            # copy the n samples asked for; the rest of the last block stays as it is (a view:
            # joining whole blocks first copied up to three times as much)
            out = np.empty(n, np.complex64)
            pos = 0
            for part in parts[:-1]:
                out[pos:pos + part.size] = part
                pos += part.size
            last = parts[-1]
            out[pos:] = last[:n - pos]
            self._pending = last[n - pos:]
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
