"""A stand-in for ``adi.Pluto`` (pyadi-iio 0.0.21) for testing the Pluto backend without libiio.

It mirrors the behaviour the backend depends on (pluto-iio.md sections 4, 7, 10):
- attribute setters with the driver's range checks (``OSError(22)`` when out of range);
- ``rx_hardwaregain_chan0`` is silently ignored unless ``gain_control_mode_chan0 == "manual"``;
- ``tx()`` casts to int16 without scaling (values beyond int16 wrap, as numpy's cast does), sizes
  the TX buffer on first use, refuses a different length, refuses a second push when cyclic;
- ``rx()`` returns ``rx_buffer_size`` raw 12-bit codes (complex128); the RX buffer is created on
  the first ``rx()`` and keeps ``kernel_buffers`` blocks captured at creation time (stale data);
- the AD9361 digital loopback: RX = TX codes / 16, clipped to 12 bits;
- the HDL cores' status register 0x80000088 (``reg_read``/``reg_write``, write one to clear):
  tests set ``overflow_on_rx``/``underflow_on_tx`` to raise the flags during transfers;
- an AD9363A's silent RF-bandwidth clamp to 200 kHz-20 MHz (no error, reads back clamped).
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

import numpy as np

XFLOW_REG = 0x80000088


class _Core:
    """An HDL core's register file: sticky status flags at 0x80000088, write one to clear."""

    def __init__(self) -> None:
        self.regs: dict[int, int] = {}
        self.unreadable = False  # no direct_reg_access (e.g. a non-ADI context)
        self.reads = 0

    def reg_read(self, reg: int) -> int:
        if self.unreadable:
            raise OSError(2, "No such file or directory")
        self.reads += 1
        return self.regs.get(reg, 0)

    def reg_write(self, reg: int, value: int) -> None:
        if self.unreadable:
            raise OSError(2, "No such file or directory")
        if reg == XFLOW_REG:
            self.regs[reg] = self.regs.get(reg, 0) & ~value
        else:
            self.regs[reg] = value

    def raise_flags(self, bits: int) -> None:
        self.regs[XFLOW_REG] = self.regs.get(XFLOW_REG, 0) | bits


class _RxAdc(_Core):
    def __init__(self, owner: FakePluto) -> None:
        super().__init__()
        self.owner = owner

    def set_kernel_buffers_count(self, n: int) -> None:
        if self.owner._rxbuf is not None:
            raise OSError(16, "Device or resource busy")
        self.owner.kernel_buffers = n
        self.owner.calls.append(("kernel_buffers", n))


class _Ctx:
    def __init__(self, owner: FakePluto) -> None:
        self.owner = owner
        self.attrs = {"ad9361-phy,model": "ad9363a", "fw_version": "v0.38"}

    def set_timeout(self, ms: int) -> None:
        self.owner.calls.append(("timeout", ms))


def _check(cond: bool) -> None:
    if not cond:
        raise OSError(22, "Invalid argument")


class FakePluto:
    def __init__(self, uri: str = "ip:192.168.2.1") -> None:
        self.uri = uri
        self.calls: list[tuple] = []
        self._rxadc = _RxAdc(self)
        self._txdac = _Core()
        self.overflow_on_rx: set[int] = set()  # rx() call numbers (from 1) that overflow
        self.underflow_on_tx: set[int] = set()  # tx() call numbers (from 1) that underflow
        self.rx_count = 0
        self.tx_count = 0
        self.ctx = _Ctx(self)
        self.kernel_buffers = 4
        self._sample_rate = 30720000
        self._rx_lo = 2400000000
        self._tx_lo = 2450000000
        self._rx_bw = 18000000
        self._tx_bw = 18000000
        self._mode = "slow_attack"
        self._rx_gain = 71.0
        self._tx_gain = -10.0
        self.rx_buffer_size = 1024
        self.tx_cyclic_buffer = False
        self.rx_enabled_channels = [0, 1]
        self.tx_enabled_channels = [0, 1]
        self.dds_on = True
        self._txbuf_len: int | None = None
        self._rxbuf: deque | None = None
        self.tx_log: list[np.ndarray] = []
        self.air: deque[np.ndarray] = deque()  # TX codes waiting to loop back
        self.rx_fail = 0  # next rx() calls raise BrokenPipeError
        self.destroyed = {"tx": 0, "rx": 0}
        self.tag_lo = False

    # settings with driver range checks ------------------------------------------------
    def _setter(name, lo, hi, cast=int):
        def get(self):
            return getattr(self, "_" + name)

        def set_(self, value):
            _check(lo <= float(value) <= hi)
            setattr(self, "_" + name, cast(value))
            self.calls.append((name, cast(value)))

        return property(get, set_)

    sample_rate = _setter("sample_rate", 521e3, 61.44e6)
    rx_lo = _setter("rx_lo", 325e6, 3.8e9)
    tx_lo = _setter("tx_lo", 325e6, 3.8e9)
    rx_rf_bandwidth = _setter("rx_bw", 200e3, 56e6, lambda v: int(min(float(v), 20e6)))
    tx_rf_bandwidth = _setter("tx_bw", 200e3, 40e6, lambda v: int(min(float(v), 20e6)))
    tx_hardwaregain_chan0 = _setter("tx_gain", -89.75, 0.0, float)

    @property
    def gain_control_mode_chan0(self) -> str:
        return self._mode

    @gain_control_mode_chan0.setter
    def gain_control_mode_chan0(self, value: str) -> None:
        _check(value in ("manual", "fast_attack", "slow_attack", "hybrid"))
        self._mode = value
        self.calls.append(("gain_mode", value))

    @property
    def rx_hardwaregain_chan0(self) -> float:
        return self._rx_gain

    @rx_hardwaregain_chan0.setter
    def rx_hardwaregain_chan0(self, value: float) -> None:
        if self._mode == "manual":  # pyadi silently ignores it otherwise
            _check(-3 <= value <= 71)
            self._rx_gain = float(value)
            self.calls.append(("rx_gain", float(value)))

    #: the phy's *_available strings by (channel, attribute, output), as an AD9363A reports
    available: ClassVar[dict[tuple[str, str, bool], str]] = {
        ("altvoltage0", "frequency_available", True): "[325000000 1 3800000000]",
        ("voltage0", "hardwaregain_available", True): "[-89.750000 0.250000 0.000000]",
    }

    def _get_iio_attr_str(self, chan: str, attr: str, output: bool) -> str:
        try:
            return self.available[(chan, attr, output)]
        except KeyError:
            raise OSError(2, "No such file or directory") from None

    # data path ------------------------------------------------------------------------
    def disable_dds(self) -> None:
        self.dds_on = False
        self.calls.append(("disable_dds",))

    def tx(self, data) -> None:
        if self._txbuf_len is not None and self.tx_cyclic_buffer:
            raise Exception("TX buffer has been submitted in cyclic mode.")
        d = np.asarray(data)
        i = np.real(d).astype(np.int16)
        q = np.imag(d).astype(np.int16)
        if self._txbuf_len is None:
            self.disable_dds()
            self._txbuf_len = d.size
        if d.size != self._txbuf_len:
            raise Exception(
                "Buffer length different than data length. Cannot change buffer length on the fly"
            )
        codes = i.astype(np.float64) + 1j * q.astype(np.float64)
        self.tx_count += 1
        if self.tx_count in self.underflow_on_tx:
            self._txdac.raise_flags(1)
        self.tx_log.append(codes)
        self.air.append(codes)

    def tx_destroy_buffer(self) -> None:
        self._txbuf_len = None
        self.destroyed["tx"] += 1

    def _capture(self) -> np.ndarray:
        n = self.rx_buffer_size
        out = np.zeros(n, complex)
        pos = 0
        while self.air and pos < n:
            blk = self.air[0]
            k = min(n - pos, blk.size)
            out[pos : pos + k] = blk[:k]
            pos += k
            if k == blk.size:
                self.air.popleft()
            else:
                self.air[0] = blk[k:]
        # digital loopback into the 12-bit ADC
        re = np.clip(np.rint(out.real / 16), -2048, 2047)
        im = np.clip(np.rint(out.imag / 16), -2048, 2047)
        return re + 1j * im

    def rx(self):
        if self.rx_fail:
            self.rx_fail -= 1
            raise BrokenPipeError(32, "Broken pipe")
        self.rx_count += 1
        if self.rx_count in self.overflow_on_rx:
            self._rxadc.raise_flags(4)
        if self._rxbuf is None:
            # buffer creation: kernel blocks fill with samples tagged by the current LO
            self._rxbuf = deque()
            self._rxbuf_lo = self._rx_lo
            self.calls.append(("rx_buffer", self.rx_buffer_size))
        if self.tag_lo:
            # every sample carries the LO (in MHz, mod 2000) the buffer was created at: data
            # captured before a retune is recognisable
            return np.full(self.rx_buffer_size, float((self._rxbuf_lo // 10**6) % 2000), complex)
        return self._capture()

    def rx_destroy_buffer(self) -> None:
        self._rxbuf = None
        self.destroyed["rx"] += 1
