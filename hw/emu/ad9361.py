"""The emulated Pluto's attribute model: the project's device model plus the AD9361 driver's rules.

Devices, channels, attributes and initial values come from :mod:`hw.emu.pluto_model` (written for
this project from the spec digest's description of the driver). On top, :class:`PlutoContext`
enforces what the Linux ``ad9361`` driver enforces on writes, so that range errors surface in
pyadi-iio as ``OSError(EINVAL)`` exactly as with hardware:

- numeric attributes with a ``<name>_available`` of the form ``[min step max]`` are range checked
  (LO frequencies, RF bandwidths, gains, xo correction), list-valued ``_available`` attributes
  (gain control mode, ENSM mode, ports) are membership checked;
- integer attributes (frequencies, bandwidths, rates) reject non-integer text, as ``kstrtoll`` does;
- the **sample rate** must lie in ``[floor, 61.44 MS/s]`` where ``floor = 25 MHz / 12 / d`` and
  ``d`` is the decimation of the *enabled* FIR (1 without FIR, so ≈2.083 MS/s; ≈520.8 kS/s with
  the FIR decimating by 4), and a clock chain must exist (ADC clock 25…640 MHz, BBPLL 715…1430 MHz,
  half-band dividers 12/8/6/4/3/2/1); with the FIR enabled its tap count must fit the chain
  (``ntaps <= 16 * (ADC/2)/rate`` on RX and ``16 * DAC/rate`` on TX, 64 when not interpolating);
- a new rate propagates to every ``sampling_frequency`` (phy and both data devices) and rebuilds
  ``rx_path_rates``/``tx_path_rates`` in the driver's ``KEY:VALUE`` form (pyadi parses it);
- ``filter_fir_config`` is parsed (``RX n GAIN g DEC d`` / ``TX n GAIN g INT i`` and ``a,b`` tap
  lines; taps a multiple of 16, at most 128) and reads back as ``FIR Rx: n,d Tx: n,i``; enabling a
  FIR without a loaded one, or with RX decimation != TX interpolation, is ``EINVAL``;
- the RX gain table follows the RX LO's band (``hw.pluto_config.rx_gain_range``: <= 1.3 GHz
  -1..73 dB, <= 4 GHz -3..71, above -10..62): below it a write clamps silently, above it is
  ``EINVAL``;
- ``hardwaregain`` reads as ``%f dB``; RX gain (1 dB steps) is writable only in ``manual`` gain
  control mode (``EINVAL`` otherwise, pyadi never tries); TX attenuation is rounded to 0.25 dB;
- read-only attributes (``*_available``, ``rssi``, path rates, sensors) answer writes with
  ``EACCES`` like a read-only sysfs file.

- an AD9363A (``ad9361-phy,model``) clamps the RF bandwidth to 200 kHz-20 MHz silently, although
  ``rf_bandwidth_available`` reports 56/40 MHz (the driver's ``ad9361_validate_rf_bw``);

Simplifications (documented in docs/emulator.md): the clock-chain search is a model of the driver's,
not a copy (it gives the usual 30.72 MS/s chain and the published floors); AGC modes do not change
the reported gain.
"""

from __future__ import annotations

import errno
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from hw.emu.context import (
    KIND_ATTR,
    KIND_BUFFER,
    KIND_DEBUG,
    Attribute,
    Channel,
    Device,
    IioContext,
)
from hw.emu.errors import IioError, einval
from hw.emu.pluto_model import pluto_builder
from hw.emu.registers import CoreRegisters
from hw.pluto import rx_gain_range

PHY = "ad9361-phy"
RX_DEV = "cf-ad9361-lpc"
TX_DEV = "cf-ad9361-dds-core-lpc"

MAX_RATE = 61_440_000
MIN_ADC_CLK = 25_000_000
MAX_ADC_CLK = 640_000_000
MAX_DAC_CLK = 320_000_000
MIN_BBPLL = 715_000_000
MAX_BBPLL = 1_430_000_000
#: (total, HB3, HB2, HB1) decimation of the RX half-band chain, largest first.
HB_DIVIDERS = ((12, 3, 2, 2), (8, 2, 2, 2), (6, 3, 1, 2), (4, 2, 2, 1), (3, 3, 1, 1),
               (2, 2, 1, 1), (1, 1, 1, 1))
_HB = {t[0]: t for t in HB_DIVIDERS}
#: TX interpolation total -> (HB3, HB2, HB1); at 30.72 MS/s the driver runs
#: DAC 122.88 -> T2 122.88 -> T1 61.44 -> TF 30.72 MHz, i.e. (1, 2, 2) for a total of 4.
_HB_TX = {1: (1, 1, 1), 2: (1, 1, 2), 3: (3, 1, 1), 4: (1, 2, 2), 6: (3, 1, 2), 8: (2, 2, 2),
          12: (3, 2, 2)}

#: RF bandwidth an AD9363A really has: the driver clamps to it without an error.
AD9363A_BW = (200_000, 20_000_000)

_READ_ONLY_NAMES = {"rssi", "rx_path_rates", "tx_path_rates", "input", "data_available",
                    "length_align_bytes", "rssi_gain_step_error", "samples_pps", "offset"}
_INTEGER_NAMES = {"frequency", "rf_bandwidth", "sampling_frequency", "xo_correction"}


@dataclass(frozen=True)
class Fir:
    """A loaded FIR: taps per channel, RX decimation / TX interpolation, gains in dB."""

    rx_taps: int = 0
    rx_dec: int = 1
    rx_gain: int = 0
    tx_taps: int = 0
    tx_int: int = 1
    tx_gain: int = 0

    @property
    def loaded(self) -> bool:
        return self.rx_taps > 0 and self.tx_taps > 0


@dataclass(frozen=True)
class Settings:
    """The RF settings the data path needs, as currently configured on one emulated Pluto."""

    sample_rate: int
    rx_lo: int
    tx_lo: int
    rx_bandwidth: int
    tx_bandwidth: int
    rx_gain_db: float
    tx_gain_db: float
    gain_control_mode: str
    loopback: int  # ad9361 debug loopback: 0 off, 1 digital (TX->RX inside the chip), 2 RF


@dataclass(frozen=True)
class ClockChain:
    """A solved AD9361 clock chain for one sample rate."""

    bbpll: int
    adc: int
    dac: int
    rx: tuple[int, int, int, int]  # R2, R1, RF, RXSAMP
    tx: tuple[int, int, int, int]  # T2, T1, TF, TXSAMP

    def rx_path_rates(self) -> str:
        r2, r1, rf, rs = self.rx
        return f"BBPLL:{self.bbpll} ADC:{self.adc} R2:{r2} R1:{r1} RF:{rf} RXSAMP:{rs}"

    def tx_path_rates(self) -> str:
        t2, t1, tf, ts = self.tx
        return f"BBPLL:{self.bbpll} DAC:{self.dac} T2:{t2} T1:{t1} TF:{tf} TXSAMP:{ts}"


def rate_floor(decimation: int) -> int:
    """Lowest sample rate with the given FIR decimation (1 = no FIR): 25 MHz / 12 / d."""
    return int(MIN_ADC_CLK / 12 / decimation)


def solve_clock_chain(rate: int, decimation: int = 1, governor: str = "nominal") -> ClockChain:
    """The clock chain for ``rate`` with the FIR decimating by ``decimation``; EINVAL if none.

    Tries the half-band totals from 8 down (``nominal``) or from 12 (``highest_osr``) and falls
    back to 12, taking the first whose ADC clock lies in [25, 640] MHz.
    """
    if not rate_floor(decimation) <= rate <= MAX_RATE:
        raise einval(f"sample rate {rate} outside [{rate_floor(decimation)}, {MAX_RATE}]")
    order = [8, 6, 4, 3, 2, 1, 12] if governor == "nominal" else [12, 8, 6, 4, 3, 2, 1]
    for total in order:
        adc = rate * decimation * total
        if MIN_ADC_CLK * (1 - 1e-6) <= adc <= MAX_ADC_CLK:
            break
    else:
        raise einval(f"no AD9361 clock chain for {rate} S/s with FIR decimation {decimation}")
    k = 1
    while adc * 2**k < MIN_BBPLL:
        k += 1
    bbpll = adc * 2**k
    if total % 2 == 0:
        dac, tx_total = adc // 2, total // 2
    else:
        dac, tx_total = adc, total
    if dac > MAX_DAC_CLK:
        raise einval(f"DAC clock {dac} above {MAX_DAC_CLK}")
    _, h3, h2, h1 = _HB[total]
    r2 = adc // h3
    r1 = r2 // h2
    rf = r1 // h1
    t3, t2_, t1_ = _HB_TX[tx_total]
    t2 = dac // t3
    t1 = t2 // t2_
    tf = t1 // t1_
    return ClockChain(bbpll, adc, dac, (r2, r1, rf, rf // decimation),
                      (t2, t1, tf, tf // decimation))


def parse_fir_config(text: str) -> Fir:
    """Parse an ad9361 FIR configuration (the text pyadi writes to ``filter_fir_config``)."""
    rx: dict[str, int] = {}
    tx: dict[str, int] = {}
    taps: list[tuple[int, int]] = []
    for raw_line in text.replace("\r", "").split("\n"):
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.replace(",", " , ").split()
        head = words[0].upper()
        if head in ("RX", "TX", "RTX"):
            fields = {words[i].upper(): words[i + 1] for i in range(2, len(words) - 1, 2)}
            try:
                entry = {"gain": int(fields.get("GAIN", "0")),
                         "rate": int(fields.get("DEC", fields.get("INT", "1")))}
            except ValueError:
                raise einval(f"FIR config: bad header line {line!r}") from None
            if head in ("RX", "RTX"):
                rx = entry
            if head in ("TX", "RTX"):
                tx = entry
            continue
        if head.startswith("BW"):
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            values = [int(p) for p in parts if p]
        except ValueError:
            raise einval(f"FIR config: bad tap line {line!r}") from None
        if len(values) == 1:
            values *= 2
        if len(values) != 2 or not all(-32768 <= v <= 32767 for v in values):
            raise einval(f"FIR config: bad tap line {line!r}")
        taps.append((values[0], values[1]))
    n = len(taps)
    if not rx or not tx:
        raise einval("FIR config: missing RX or TX header line")
    if n == 0 or n % 16 or n > 128:
        raise einval(f"FIR config: {n} taps (need a multiple of 16, at most 128)")
    if rx["rate"] not in (1, 2, 4) or tx["rate"] not in (1, 2, 4):
        raise einval("FIR config: decimation/interpolation must be 1, 2 or 4")
    if rx["gain"] not in (-12, -6, 0, 6) or tx["gain"] not in (-6, 0):
        raise einval("FIR config: RX gain must be -12/-6/0/6 dB and TX gain -6/0 dB")
    return Fir(n, rx["rate"], rx["gain"], n, tx["rate"], tx["gain"])


#: The attributes :meth:`PlutoContext.settings` reads: (name, channel, output, kind).
_SETTINGS_ATTRS = (
    ("frequency", "altvoltage0", True, KIND_ATTR), ("frequency", "altvoltage1", True, KIND_ATTR),
    ("rf_bandwidth", "voltage0", False, KIND_ATTR), ("rf_bandwidth", "voltage0", True, KIND_ATTR),
    ("hardwaregain", "voltage0", False, KIND_ATTR), ("hardwaregain", "voltage0", True, KIND_ATTR),
    ("gain_control_mode", "voltage0", False, KIND_ATTR), ("loopback", None, False, KIND_DEBUG),
)

_RANGE_RE = re.compile(r"^\[\s*(\S+)\s+(\S+)\s+(\S+)\s*\]$")


def _number(value: str, integer: bool) -> float:
    text = value.strip()
    if text.endswith("dB"):
        text = text[:-2].strip()
    try:
        return float(int(text, 10)) if integer else float(text)
    except ValueError:
        raise einval(f"{value!r} is not a{'n integer' if integer else ' number'}") from None


class PlutoContext(IioContext):
    """The emulated Pluto: the project's device model with the AD9361 driver's write rules.

    ``listeners`` are called (outside no lock guarantees beyond the context lock) with the new
    :class:`Settings` after every successful write that changed them; the data path uses this
    to retune.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fir = Fir()
        self.rx_fir_en = False
        self.tx_fir_en = False
        self.governor = "nominal"
        self.buffers_count = 4  #: RX device's kernel blocks
        self.tx_buffers_count = 4  #: TX device's kernel blocks
        #: The data devices' HDL core registers (``direct_reg_access``), by device name.
        self.registers = {RX_DEV: CoreRegisters(), TX_DEV: CoreRegisters()}
        self.listeners: list[Callable[[Settings], None]] = []
        self._settings_keys: tuple[tuple[str, ...], ...] | None = None
        self._rate = int(self.get(PHY, "sampling_frequency", chan="voltage0"))
        self._apply_rate(self._rate, self._decimation(self.rx_fir_en, self.tx_fir_en, self.fir))

    @classmethod
    def default(cls, *, description: str | None = None) -> PlutoContext:
        """A fresh emulated Pluto (power-on state of :mod:`hw.emu.pluto_model`)."""
        builder = pluto_builder() if description is None else pluto_builder(description)
        return builder.build(cls)

    @property
    def chip(self) -> str:
        """The transceiver the context reports (``ad9361-phy,model``: ``ad9363a``, ``ad9364``)."""
        return dict(self.context_attrs).get("ad9361-phy,model", "")

    # ------------------------------------------------------------------ settings
    def settings(self) -> Settings:
        """The current RF settings (what the data path needs)."""
        keys = self._settings_keys
        if keys is None:  # the attribute table is fixed once built: look the keys up once
            keys = self._settings_keys = tuple(
                self.find(self.device(PHY), kind, attr,
                          self.device(PHY).channel(chan, out) if chan else None).key
                for attr, chan, out, kind in _SETTINGS_ATTRS)
        with self.lock:
            v = [self.values[k] for k in keys]
            return Settings(
                sample_rate=self._rate, rx_lo=int(v[0]), tx_lo=int(v[1]),
                rx_bandwidth=int(v[2]), tx_bandwidth=int(v[3]),
                rx_gain_db=_number(v[4], False), tx_gain_db=_number(v[5], False),
                gain_control_mode=v[6], loopback=int(v[7] or 0),
            )

    def preset(self, *, sample_rate: int | None = None, lo_hz: int | None = None) -> None:
        """Power-on state for an emulated radio on a medium: rate (loading and enabling a
        128-tap decimate-by-4 FIR when the rate needs it, as pyadi would) and both LOs."""
        with self.lock:
            before = self.settings()
            if sample_rate is not None:
                rate = int(sample_rate)
                if rate < rate_floor(1):
                    self._set_fir(True, True, Fir(128, 4, -6, 128, 4, 0))
                self._apply_rate(rate, self._decimation(self.rx_fir_en, self.tx_fir_en,
                                                        self.fir))
            if lo_hz is not None:
                for chan in ("altvoltage0", "altvoltage1"):
                    dev = self.device(PHY)
                    ch = dev.channel(chan, True)
                    self.values[ch.attrs["frequency"].key] = str(
                        int(self._check_generic(dev, ch, ch.attrs["frequency"], str(int(lo_hz)))))
                self._rx_gain_table()
            after = self.settings()
        if after != before:
            for listener in list(self.listeners):
                listener(after)

    # ------------------------------------------------------------------ rules
    @staticmethod
    def _decimation(rx_en: bool, tx_en: bool, fir: Fir) -> int:
        if rx_en and tx_en and fir.rx_dec != fir.tx_int:
            raise einval(f"FIR RX decimation {fir.rx_dec} != TX interpolation {fir.tx_int}")
        if rx_en:
            return fir.rx_dec
        if tx_en:
            return fir.tx_int
        return 1

    def _check_taps(self, chain: ClockChain, rate: int, rx_en: bool, tx_en: bool,
                    fir: Fir) -> None:
        if rx_en:
            limit = min(128, 16 * ((chain.adc // 2) // rate))
            if fir.rx_taps > limit:
                raise einval(f"RX FIR of {fir.rx_taps} taps exceeds {limit} at {rate} S/s")
        if tx_en:
            limit = min(128, 16 * (chain.dac // rate))
            if fir.tx_int == 1:
                limit = min(limit, 64)
            if fir.tx_taps > limit:
                raise einval(f"TX FIR of {fir.tx_taps} taps exceeds {limit} at {rate} S/s")

    def _apply_rate(self, rate: int, decimation: int) -> None:
        """Solve the chain for ``rate`` and propagate it (raises EINVAL, changing nothing)."""
        chain = solve_clock_chain(rate, decimation, self.governor)
        self._check_taps(chain, rate, self.rx_fir_en, self.tx_fir_en, self.fir)
        self._rate = rate
        avail = f"[{rate_floor(decimation)} 1 {MAX_RATE}]"
        for out in (False, True):
            self.set(PHY, "sampling_frequency", str(rate), chan="voltage0", output=out)
            self.set(PHY, "sampling_frequency_available", avail, chan="voltage0", output=out)
        self.set(PHY, "rx_path_rates", chain.rx_path_rates())
        self.set(PHY, "tx_path_rates", chain.tx_path_rates())
        for name in (RX_DEV, TX_DEV):
            dev = self.device(name)
            for ch in dev.channels:
                if "sampling_frequency" in ch.attrs:
                    self.values[ch.attrs["sampling_frequency"].key] = str(rate)
                if "sampling_frequency_available" in ch.attrs:
                    self.values[ch.attrs["sampling_frequency_available"].key] = (
                        f"{rate} {rate // 8} ")
        self._sync_fir()

    def _sync_fir(self) -> None:
        f = self.fir
        self.set(PHY, "filter_fir_config",
                 f"FIR Rx: {f.rx_taps},{f.rx_dec if f.loaded else 0} "
                 f"Tx: {f.tx_taps},{f.tx_int if f.loaded else 0}")
        self.set(PHY, "filter_fir_en", str(int(self.rx_fir_en)), chan="voltage0")
        self.set(PHY, "filter_fir_en", str(int(self.tx_fir_en)), chan="voltage0", output=True)
        self.set(PHY, "voltage_filter_fir_en", str(int(self.rx_fir_en and self.tx_fir_en)),
                 chan="out")

    def _set_fir(self, rx_en: bool, tx_en: bool, fir: Fir) -> None:
        """Enable/disable/replace the FIR atomically; EINVAL leaves everything unchanged."""
        if (rx_en or tx_en) and not fir.loaded:
            raise einval("no FIR loaded (write filter_fir_config first)")
        old = (self.rx_fir_en, self.tx_fir_en, self.fir)
        dec = self._decimation(rx_en, tx_en, fir)
        self.rx_fir_en, self.tx_fir_en, self.fir = rx_en, tx_en, fir
        try:
            self._apply_rate(self._rate, dec)
        except IioError:
            self.rx_fir_en, self.tx_fir_en, self.fir = old
            raise

    @staticmethod
    def _sibling_available(dev: Device, chan: Channel | None, name: str) -> Attribute | None:
        table = chan.attrs if chan is not None else dev.attrs
        return table.get(name + "_available")

    def _read_only(self, dev: Device, kind: str, attr: Attribute) -> bool:
        if kind == KIND_BUFFER:
            return attr.name != "watermark"
        if dev.name == "xadc":
            return True
        return attr.name.endswith("_available") or attr.name in _READ_ONLY_NAMES

    def check_write(self, dev: Device, kind: str, attr: Attribute, chan: Channel | None,
                    value: str) -> str | None:
        value = value.strip()
        name = attr.name
        if self._read_only(dev, kind, attr):
            raise IioError(errno.EACCES, f"{dev.id}: {name} is read-only")
        if kind == KIND_DEBUG and name == "direct_reg_access" and dev.name in self.registers:
            # an HDL core's register file: no RF setting depends on it, so the settings are
            # not compared before and after (twice ~9 us; every flag poll of a streaming
            # client is such a write)
            self.registers[dev.name].write(value)
            return None
        before = self.settings()
        stored = self._check(dev, kind, attr, chan, value)
        if stored is not None:
            self.values[attr.key] = stored
        if dev.name == PHY and chan is not None and chan.id == "altvoltage0" \
                and name == "frequency":
            self._rx_gain_table()
        after = self.settings()
        if after != before:
            for listener in list(self.listeners):
                listener(after)
        return None

    def render(self, dev: Device, kind: str, attr: Attribute, chan: Channel | None,
               stored: str) -> str:
        if kind == KIND_DEBUG and attr.name == "direct_reg_access" and dev.name in self.registers:
            return self.registers[dev.name].read()
        return stored

    def _check(self, dev: Device, kind: str, attr: Attribute, chan: Channel | None,
               value: str) -> str | None:
        name = attr.name
        if kind == KIND_DEBUG and name == "direct_reg_access" and dev.name in self.registers:
            self.registers[dev.name].write(value)
            return None
        if dev.name == PHY:
            if kind == KIND_DEBUG and name == "loopback":
                if value not in ("0", "1", "2"):
                    raise einval(f"loopback must be 0, 1 or 2, got {value!r}")
                return value
            if kind == KIND_ATTR and chan is None and name == "filter_fir_config":
                self._set_fir(self.rx_fir_en, self.tx_fir_en, parse_fir_config(value))
                return None
            if chan is not None and name in ("filter_fir_en", "voltage_filter_fir_en"):
                on = _number(value, True) != 0
                if chan.id == "out":
                    self._set_fir(on, on, self.fir)
                elif chan.output:
                    self._set_fir(self.rx_fir_en, on, self.fir)
                else:
                    self._set_fir(on, self.tx_fir_en, self.fir)
                return None
            if chan is not None and name == "sampling_frequency":
                rate = int(_number(value, True))
                dec = self._decimation(self.rx_fir_en, self.tx_fir_en, self.fir)
                self._apply_rate(rate, dec)
                return None
            if chan is not None and name == "hardwaregain":
                return self._gain(chan, value)
            if chan is not None and name == "rf_bandwidth" and self.chip == "ad9363a":
                # the driver clamps an AD9363A's bandwidth silently (its *_available says more)
                bw = int(_number(value, True))
                return str(min(max(bw, AD9363A_BW[0]), AD9363A_BW[1]))
            if chan is None and name == "trx_rate_governor":
                self._check_generic(dev, chan, attr, value)
                old = self.governor
                self.governor = value
                try:
                    self._apply_rate(self._rate, self._decimation(
                        self.rx_fir_en, self.tx_fir_en, self.fir))
                except IioError:
                    self.governor = old
                    raise
                return value
        return self._check_generic(dev, chan, attr, value)

    def _rx_gain_table(self) -> None:
        """The RX gain table follows the RX LO's band (``hardwaregain_available`` changes; a
        gain now above the table's top is lowered to it, as the driver re-applies the table)."""
        lo_hz = float(self.get(PHY, "frequency", chan="altvoltage0", output=True))
        low, high = rx_gain_range(lo_hz)
        self.set(PHY, "hardwaregain_available", f"[{low:g} 1 {high:g}]", chan="voltage0")
        gain = _number(self.get(PHY, "hardwaregain", chan="voltage0"), False)
        if not low <= gain <= high:
            self.set(PHY, "hardwaregain", f"{min(max(gain, low), high):.6f} dB", chan="voltage0")

    def _gain(self, chan: Channel, value: str) -> str:
        avail = self.values[chan.attrs["hardwaregain_available"].key]
        lo, step, hi = (float(x) for x in _RANGE_RE.match(avail).groups())  # type: ignore[union-attr]
        gain = _number(value, False)
        if not chan.output and math.isfinite(gain) and gain < lo:
            gain = lo  # below the gain table the driver clamps silently; above it refuses
        if not math.isfinite(gain) or not lo - 1e-9 <= gain <= hi + 1e-9:
            raise einval(f"hardwaregain {gain} outside [{lo}, {hi}]")
        if not chan.output:
            mode = self.values[chan.attrs["gain_control_mode"].key]
            if mode != "manual":
                raise einval(f"RX gain is set by the AGC in {mode!r} mode (select manual first)")
        gain = lo + round((gain - lo) / step) * step
        return f"{gain:.6f} dB"

    def _check_generic(self, dev: Device, chan: Channel | None, attr: Attribute,
                       value: str) -> str:
        avail_attr = self._sibling_available(dev, chan, attr.name)
        if avail_attr is None:
            if attr.name in _INTEGER_NAMES:
                _number(value, True)
            return value
        avail = self.values.get(avail_attr.key, "")
        m = _RANGE_RE.match(avail.strip())
        if m:
            lo, _step, hi = (float(x) for x in m.groups())
            number = _number(value, attr.name in _INTEGER_NAMES)
            if not math.isfinite(number) or not lo <= number <= hi:
                raise einval(f"{attr.name} {value} outside [{m.group(1)}, {m.group(3)}]")
            return value
        choices = avail.split()
        if value not in choices:
            raise einval(f"{attr.name} {value!r} not one of {' '.join(choices)}")
        return value
