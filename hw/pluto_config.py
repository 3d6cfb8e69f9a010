"""A Pluto's configuration and how to reach it: the AD9363's ranges and the backend's defaults,
:class:`PlutoConfig` (validated before any device is touched), the driver's RX gain table, the
``serial:`` URI lookup and opening the device over pyadi-iio (``import iio`` / ``import adi``
happen only here, lazily).

Kept apart from :mod:`hw.pluto`, which drives one open radio, because settings and limits are
read without a radio (config checks, ``relaysec doctor``, the emulator's gain table) and change
for different reasons than the device work. Every name is importable from :mod:`hw.pluto` too.
This module must not import :mod:`hw.pluto` or :mod:`hw.pluto_streaming` (they import it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hw.errors import RadioConfigError, RadioUnavailableError
from hw.radio import RadioConfig

#: The radio's logger: these lines are the Pluto's own (filtered and configured as ``hw.pluto``).
log = logging.getLogger("hw.pluto")

#: Default sample rate: the PHY's P2.5 profile; USB 2.0 sustains it continuously with margin.
DEFAULT_SAMPLE_RATE = 2.8e6
#: Above this rate continuous streaming over USB 2.0 drops samples (pluto-iio.md section 11).
USB2_SAFE_RATE = 6.0e6
DEFAULT_URI = "ip:192.168.2.1"
#: ``serial:S`` names a USB Pluto by its serial (or the serial's last digits): unlike
#: ``usb:B.D.I`` it survives re-plugging; resolved by a USB scan each time the radio opens.
SERIAL_PREFIX = "serial:"

LO_RANGE = (325e6, 3.8e9)  # AD9363, guaranteed
LO_RANGE_EXTENDED = (70e6, 6.0e9)  # with the AD9364 firmware setting, not guaranteed
RATE_RANGE = (521e3, 61.44e6)  # pyadi refuses < 521e3; FIR below 2.083 MS/s is loaded by pyadi
BW_RANGE = (200e3, 40e6)  # TX side limit (RX allows 56 MHz); one value sets both
RX_GAIN_RANGE = (-3.0, 71.0)  # the driver's hardwaregain_available at 2.4 GHz
#: The AD9363A's RF bandwidth: the driver clamps to this silently (``*_available`` says more).
AD9363A_BW_CLAMP = (200e3, 20e6)
#: RX gain table of the AD9361 driver by LO band: (highest LO in the band, min dB, max dB).
RX_GAIN_BANDS = ((1.3e9, -1.0, 73.0), (4.0e9, -3.0, 71.0), (6.0e9, -10.0, 62.0))
TX_GAIN_RANGE = (-89.75, 0.0)

#: Shortest RX buffer, in seconds of samples, that Python reads continuously without drops: at
#: most ~100 transfers a second through USB, iiod and pyadi (32 k samples at 2.8 MS/s is 11.7 ms;
#: users lose samples with ~5 k at 1.92 MS/s, pluto-iio.md "Bench realities").
MIN_RX_BUFFER_S = 0.010

PLUTO_INSTALL_HINT = (
    "install the libiio C library (Debian/Ubuntu: sudo apt install libiio0 libiio-utils) and "
    "the Python bindings on the same 0.x line (pip install 'pylibiio==0.25' pyadi-iio); "
    "`relaysec doctor` checks all of it"
)


@dataclass(frozen=True)
class PlutoConfig(RadioConfig):
    """Settings of one Pluto (validated here, before the device is touched).

    ``uri``: ``ip:HOST`` or ``usb:BUS.DEV.IF``. ``rx_buffer_size``: samples per RX transfer.
    ``kernel_buffers``: libiio kernel blocks (more survives USB hiccups but holds older data).
    ``timeout_ms``: libiio I/O timeout (set before buffers exist). ``extended_range``: allow the
    AD9364 LO range (70 MHz-6 GHz, not guaranteed on an AD9363). ``tx_block_size`` and
    ``tx_kernel_buffers``: the streaming timeline's TX push size (samples) and the TX device's
    kernel block count (:meth:`hw.pluto.PlutoRadio.start_stream`); together they set how far
    ahead of the air a burst must be handed over (about ``(tx_kernel_buffers + 1) *
    tx_block_size``). ``rx_worker``: while streaming, read RX in a process of its own
    (:class:`hw.pluto_stream._RxWorker`; only for ``ip:`` URIs, which several processes can open
    at once). ``stream_nice``: the nice value that worker's TX thread asks for (-20..19; below
    the node's own only where the system allows it, :func:`hw.pluto_stream.raise_priority`).
    """

    uri: str = DEFAULT_URI
    sample_rate: float = DEFAULT_SAMPLE_RATE
    rx_buffer_size: int = 32768
    kernel_buffers: int = 4
    timeout_ms: int = 5000
    extended_range: bool = False
    tx_block_size: int = 11200
    tx_kernel_buffers: int = 4
    rx_worker: bool = True
    stream_nice: int = -10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.uri, str) or not self.uri.startswith(
            ("ip:", "usb:", "local:", SERIAL_PREFIX)
        ):
            raise RadioConfigError(
                f"uri must look like 'ip:192.168.2.1', 'usb:1.2.5' or 'serial:<serial or its "
                f"last digits>', got {self.uri!r}"
            )
        if self.uri.startswith(SERIAL_PREFIX) and not self.uri[len(SERIAL_PREFIX):].isalnum():
            raise RadioConfigError(f"{self.uri!r}: give the Pluto's serial (hex digits) after "
                                   "'serial:'")
        if self.uri.startswith("ip:localhost"):
            raise RadioConfigError(
                "use 'ip:127.0.0.1', not 'ip:localhost': libiio only tries the first address"
            )
        _in_range("sample_rate", self.sample_rate, RATE_RANGE, "S/s")
        lo_range = LO_RANGE_EXTENDED if self.extended_range else LO_RANGE
        for name in ("effective_tx_lo_hz", "effective_rx_lo_hz"):
            hint = "" if self.extended_range else " (extended_range=True allows 70 MHz-6 GHz)"
            _in_range(name.replace("effective_", ""), getattr(self, name), lo_range, "Hz", hint)
        _in_range("rf_bandwidth_hz", self.effective_rf_bandwidth_hz, BW_RANGE, "Hz")
        if self.gain_mode == "manual":
            gain_lo, gain_hi = rx_gain_range(self.effective_rx_lo_hz)
            floor = min(RX_GAIN_RANGE[0], gain_lo)  # below the table the driver clamps
            if not floor <= self.rx_gain_db <= gain_hi:
                raise RadioConfigError(
                    f"rx_gain_db = {self.rx_gain_db:g} dB is above the {gain_hi:g} dB the "
                    f"driver's gain table allows at RX LO {self.effective_rx_lo_hz / 1e6:g} MHz "
                    f"(range {gain_lo:g}..{gain_hi:g} dB)"
                    if self.rx_gain_db > gain_hi else
                    f"rx_gain_db = {self.rx_gain_db:g} dB is outside [{floor:g}, "
                    f"{gain_hi:g}] dB"
                )
        _in_range("tx_gain_db", self.tx_gain_db, TX_GAIN_RANGE, "dB")
        for name, lo, hi in (
            ("rx_buffer_size", 64, 1 << 24),
            ("kernel_buffers", 1, 64),
            ("timeout_ms", 0, 3_600_000),
            ("tx_block_size", 256, 1 << 22),
            ("tx_kernel_buffers", 1, 64),
            ("stream_nice", -20, 19),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise RadioConfigError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
        if not isinstance(self.rx_worker, bool):
            raise RadioConfigError(f"rx_worker must be true or false, got {self.rx_worker!r}")
        if self.rx_buffer_size < self.sample_rate * MIN_RX_BUFFER_S:
            log.warning(
                "rx_buffer_size %d holds %.1f ms at %.3g S/s: below ~%.0f ms per transfer Python "
                "drops samples; use %d (safe_rx_buffer_size)",
                self.rx_buffer_size, self.rx_buffer_size / self.sample_rate * 1e3,
                self.sample_rate, MIN_RX_BUFFER_S * 1e3, safe_rx_buffer_size(self.sample_rate),
            )
        if self.sample_rate > USB2_SAFE_RATE:
            log.warning(
                "sample_rate %.3g S/s is above what USB 2.0 streams without loss (~%.0f MS/s); "
                "expect overflows unless bursts are short",
                self.sample_rate,
                USB2_SAFE_RATE / 1e6,
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PlutoConfig:
        """Build from a config table (e.g. a node's ``[radio]`` TOML table); unknown keys are an
        error that lists the accepted ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RadioConfigError(
                f"unknown Pluto setting(s) {', '.join(unknown)}; "
                f"accepted: {', '.join(sorted(names))}"
            )
        return cls(**dict(data))


def safe_rx_buffer_size(sample_rate: float) -> int:
    """The RX buffer (samples) to use at ``sample_rate``: the power of two holding at least
    :data:`MIN_RX_BUFFER_S` of samples, at least 32 k (the range known to work from Python)."""
    need = max(32768, int(np.ceil(sample_rate * MIN_RX_BUFFER_S)))
    return 1 << (need - 1).bit_length()


def available_bounds(text: str) -> tuple[float, float] | None:
    """An IIO ``*_available`` range ``"[min step max]"`` as (min, max); None for anything else
    (a list of choices, empty text)."""
    t = text.strip()
    parts = t.strip("[]").split()
    if not t.startswith("[") or len(parts) != 3:
        return None
    try:
        return float(parts[0]), float(parts[2])
    except ValueError:
        return None


def rx_gain_range(lo_hz: float) -> tuple[float, float]:
    """The driver's manual RX gain range at ``lo_hz`` (its gain table depends on the LO band:
    <= 1.3 GHz -1..73 dB, <= 4 GHz -3..71 dB, above -10..62 dB). Below the minimum the driver
    clamps silently; above the maximum it refuses (EINVAL)."""
    for top, lo, hi in RX_GAIN_BANDS:
        if lo_hz <= top:
            return lo, hi
    return RX_GAIN_BANDS[-1][1], RX_GAIN_BANDS[-1][2]


def _in_range(
    name: str, value: float, bounds: tuple[float, float], unit: str, hint: str = ""
) -> None:
    lo, hi = bounds
    if not lo <= float(value) <= hi:
        raise RadioConfigError(
            f"{name} = {value:g} {unit} is outside [{lo:g}, {hi:g}] {unit}{hint}"
        )


def resolve_serial_uri(uri: str, scan: Callable[[], Mapping[str, str]] | None = None) -> str:
    """``serial:S`` -> the ``usb:B.D.I`` URI of the one Pluto on USB whose serial is ``S`` or ends
    with it (libiio lists ``serial=...`` in each USB context's description); any other URI is
    returned unchanged. ``scan`` defaults to libiio's USB-only scan (works without avahi)."""
    if not uri.startswith(SERIAL_PREFIX):
        return uri
    want = uri[len(SERIAL_PREFIX):].lower()
    if scan is None:
        from hw.doctor import probe_scan

        def scan() -> Mapping[str, str]:
            return probe_scan("usb")

    try:
        found = dict(scan())
    except Exception as exc:
        raise RadioUnavailableError(f"could not scan USB for the Pluto {uri!r} ({exc}); "
                                    "run `relaysec doctor`", reason="no_device") from exc
    serials = {}
    for usb_uri, desc in found.items():
        for word in desc.replace(",", " ").split():
            if word.startswith("serial="):
                serials[usb_uri] = word[len("serial="):].strip(")").lower()
    hits = sorted(u for u, ser in serials.items() if ser.endswith(want))
    if len(hits) > 1:
        raise RadioConfigError(f"{uri!r} matches {len(hits)} Plutos ({', '.join(hits)}): give "
                               "more digits of the serial")
    if not hits:
        listed = ", ".join(sorted(serials.values())) or "none"
        raise RadioUnavailableError(f"no Pluto with serial ending {want!r} on USB (serials "
                                    f"found: {listed}); check the cable, `iio_info -S usb`",
                                    reason="no_device")
    return hits[0]


def _open_pyadi(uri: str) -> Any:
    """Import the libiio stack and connect to the Pluto at ``uri``.

    Raises :class:`RadioUnavailableError` with a one-line fix when something is missing."""
    try:
        import iio  # pylibiio; loads the libiio C library through ctypes
    except ImportError as exc:
        raise RadioUnavailableError(
            f"pylibiio is not installed ({exc}); {PLUTO_INSTALL_HINT}", reason="no_pylibiio"
        ) from exc
    except (OSError, AttributeError) as exc:
        raise RadioUnavailableError(
            f"the libiio C library could not be loaded ({exc}); {PLUTO_INSTALL_HINT}",
            reason="no_libiio",
        ) from exc
    lib_major = getattr(iio, "version", (0,))[0]
    try:
        from importlib.metadata import version as _dist_version

        py_major = int(_dist_version("pylibiio").split(".")[0])
    except Exception:  # distribution metadata missing: cannot tell, do not block
        py_major = lib_major
    if py_major != lib_major:
        raise RadioUnavailableError(
            f"pylibiio {py_major}.x does not work with the libiio {lib_major}.x C library; "
            + ("pip install 'pylibiio==0.25' (a bare `pip install pyadi-iio` pulls pylibiio 1.0, "
               "which needs a libiio 1.x C library that Debian/Ubuntu do not ship)"
               if lib_major == 0 else "pip install 'pylibiio>=1,<2'"),
            reason="libiio_mismatch",
        )
    try:
        import adi
    except ImportError as exc:
        raise RadioUnavailableError(
            f"pyadi-iio is not installed ({exc}); pip install pyadi-iio 'pylibiio==0.25'",
            reason="no_pyadi",
        ) from exc
    uri = resolve_serial_uri(uri)
    try:
        return adi.Pluto(uri)
    except Exception as exc:
        raise RadioUnavailableError(
            f"no ADALM-Pluto answered at {uri!r} ({exc}); check the USB cable or the IP address "
            "(`iio_info -s` lists what libiio sees), udev permissions, or run `relaysec doctor`",
            reason="no_device",
        ) from exc


__all__ = [
    "AD9363A_BW_CLAMP",
    "BW_RANGE",
    "DEFAULT_SAMPLE_RATE",
    "DEFAULT_URI",
    "LO_RANGE",
    "LO_RANGE_EXTENDED",
    "MIN_RX_BUFFER_S",
    "PLUTO_INSTALL_HINT",
    "RATE_RANGE",
    "RX_GAIN_BANDS",
    "RX_GAIN_RANGE",
    "SERIAL_PREFIX",
    "TX_GAIN_RANGE",
    "USB2_SAFE_RATE",
    "PlutoConfig",
    "available_bounds",
    "resolve_serial_uri",
    "rx_gain_range",
    "safe_rx_buffer_size",
]
