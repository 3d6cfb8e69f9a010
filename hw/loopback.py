"""A simulated air interface shared by any number of radios (the loopback backend).

One :class:`Medium` holds a timeline in *medium samples* (the nominal sample period ``1/fs``).
Each :class:`LoopbackRadio` has its own sample clock: local sample ``k`` of radio ``q`` happens at
medium time ``d_q + k / (1 + sfo_q)``, where ``d_q`` is the radio's random start delay and
``sfo_q`` its sampling-clock offset (ppm * 1e-6). ``transmit`` places a burst on the timeline;
``receive(n)`` renders the radio's next ``n`` local samples: the sum of every burst overlapping the
window, each passed through its link (gain, tap-delay line with fractional delays, carrier offset),
plus receiver noise, then the receiver's gain, IQ imbalance, DC offset and 12-bit ADC.

Determinism: everything random is drawn from counter-based streams keyed by
``(seed, purpose, names...)``: receiver noise by (receiver, local sample index) -- SplitMix64 and
Box-Muller in a compiled kernel, :mod:`hw._medium` --, fading by (link, per-transmitter burst
number), start delays and link phases by name (Philox). So the same seed and the same calls give
the same samples, noise does not depend on how a window is split into ``receive`` calls, and
adding a radio or a link leaves every other link's samples unchanged.

Speed: a receiver renders only the windows it is asked for (``skip`` costs nothing), and in each
window only the span a burst reaches; the resampling between two radios' clocks, the carrier
rotation and the receiver noise run in compiled kernels (:mod:`hw._medium`), one pass each.

Clock modes (see docs/radios.md): ``clock="sim"`` (default) — each radio's clock advances only by
``receive``/``skip``; the caller steps radios in lockstep, transmitters before receivers in each
TDD zone. ``clock="wall"`` (or any object with ``now()``/``sleep_until()`` in medium samples) —
``transmit`` places bursts at the clock's *now*, ``receive`` waits until its window lies in the
past, and a reader that falls behind by more than ``rx_backlog`` samples loses samples (counted
as overflows), like a real radio. All methods are thread-safe.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.signal

from hw.channels import (
    INTERP_HALF,
    TapProfile,
    _kernel_table,
    channel_profile,
    fractional_fir,
)
from hw.errors import RadioClosedError, RadioConfigError
from hw.radio import ClosingContext, RadioCaps, RadioStats, as_iq, check_count

log = logging.getLogger(__name__)

#: Burst-tap callback: ``tap(source_name, start, iq) -> replacement iq or None`` (keep).
Tap = Callable[[str, float, np.ndarray], "np.ndarray | None"]

_FADING = ("block", "static", "none")


# --------------------------------------------------------------------------------------------
# clocks


class Clock(Protocol):
    """External time source for :class:`Medium` in medium samples (float)."""

    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class WallClock:
    """Medium time that follows ``time.monotonic()`` at ``sample_rate * speed`` samples/s.

    Time 0 is the moment of construction (or ``t0``, a ``time.monotonic()`` value).
    """

    def __init__(self, sample_rate: float, *, speed: float = 1.0, t0: float | None = None) -> None:
        if not sample_rate > 0 or not speed > 0:
            raise RadioConfigError("WallClock needs a positive sample_rate and speed")
        self.rate = float(sample_rate) * float(speed)
        self.t0 = time.monotonic() if t0 is None else float(t0)

    def now(self) -> float:
        """Current medium time in samples."""
        return (time.monotonic() - self.t0) * self.rate

    def sleep_until(self, t: float) -> None:
        """Block until :meth:`now` >= ``t``."""
        while True:
            dt = (t - self.now()) / self.rate
            if dt <= 0:
                return
            time.sleep(min(dt, 0.5))


class ManualClock:
    """A clock that only moves when told to: ``advance(n)``/``set(t)``, or by ``sleep_until``
    (which jumps straight to the requested time). Deterministic wall-mode tests use it."""

    def __init__(self, t: float = 0.0) -> None:
        self._t = float(t)
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current medium time in samples."""
        with self._lock:
            return self._t

    def advance(self, n: float) -> None:
        """Move time forward by ``n`` samples."""
        with self._lock:
            self._t += float(n)

    def set(self, t: float) -> None:
        """Jump to time ``t`` (never backwards)."""
        with self._lock:
            self._t = max(self._t, float(t))

    def sleep_until(self, t: float) -> None:
        """Jump forward to ``t`` immediately."""
        self.set(t)


# --------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class Burst:
    """One transmission on the medium's timeline (IQ after the transmitter's impairments)."""

    source: str
    index: int  # per-source burst number (keys the fading draw)
    start: float  # medium time of sample 0
    rate: float  # transmitter's sample-clock factor 1 + sfo
    tx_freq_hz: float  # actual transmit carrier (LO with ppm error)
    iq: np.ndarray

    @property
    def end(self) -> float:
        """Medium time of the last sample."""
        return self.start + (self.iq.size - 1) / self.rate


@dataclass(frozen=True)
class LinkConfig:
    """Propagation from ``tx`` to ``rx``.

    Exactly one of ``snr_db`` (SNR at the receiver for a transmission at the medium's
    ``ref_tx_dbfs``, against the receiver's noise floor at 0 dB RX gain) and ``path_loss_db``
    (plain attenuation) is set. ``fading``: ``"block"`` draws new Rayleigh taps for every burst,
    ``"static"`` draws once per link, ``"none"`` uses the tap amplitudes without fading.
    """

    tx: str
    rx: str
    profile: TapProfile
    snr_db: float | None = None
    path_loss_db: float | None = None
    fading: str = "block"
    delay_s: float = 0.0
    phase: float = 0.0
    key: int = field(default=0, repr=False)


def _key(seed: int, *parts: object) -> int:
    """128-bit Philox key for an independent stream named by ``parts``."""
    text = "|".join([str(seed), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "little")


def _stream(key: int, counter: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=key, counter=[0, 0, 0, counter]))


def _iq_coeffs(gain_db: float, phase_deg: float) -> tuple[complex, complex]:
    """(mu, nu) of the IQ-imbalance model y = mu x + nu conj(x)."""
    g = 10.0 ** (gain_db / 20.0)
    phi = math.radians(phase_deg)
    mu = (1.0 + g * complex(math.cos(-phi), math.sin(-phi))) / 2.0
    nu = (1.0 - g * complex(math.cos(phi), math.sin(phi))) / 2.0
    return mu, nu


def _apply_iq(x: np.ndarray, iq: tuple[float, float]) -> np.ndarray:
    if iq == (0.0, 0.0):
        return x
    mu, nu = _iq_coeffs(*iq)
    return (np.complex64(mu) * x + np.complex64(nu) * np.conj(x)).astype(np.complex64)


def _check_iq_param(value: object, what: str) -> tuple[float, float]:
    try:
        g, p = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise RadioConfigError(f"{what} must be (gain_db, phase_deg), got {value!r}") from None
    if not (math.isfinite(g) and math.isfinite(p)):
        raise RadioConfigError(f"{what} must be finite, got {value!r}")
    return g, p


def _finite(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise RadioConfigError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise RadioConfigError(f"{what} must be finite, got {value!r}")
    return float(value)


def _filtered(x: np.ndarray, h: np.ndarray, first: int, lo: int, hi: int) -> np.ndarray:
    """``w[lo:hi]`` of ``w[n] = sum_m h[m] x[n - first - m]`` (x zero outside its samples)."""
    start = lo - first - (h.size - 1)
    stop = hi - first
    xs = np.zeros(stop - start, dtype=np.complex64)
    a, b = max(start, 0), min(stop, x.size)
    if a < b:
        xs[a - start : b - start] = x[a:b]
    if h.size == 1:
        return (xs * np.complex64(h[0])).astype(np.complex64)
    if h.size > 64:
        c = scipy.signal.fftconvolve(xs, h.astype(np.complex64))
    else:
        c = np.convolve(xs, h.astype(np.complex64))
    return c[h.size - 1 : h.size - 1 + (hi - lo)].astype(np.complex64)


def _kernels() -> Any:
    """:mod:`hw._medium` (numba), imported on first use: importing ``hw`` stays light."""
    from hw import _medium

    return _medium


# --------------------------------------------------------------------------------------------
# medium


class Medium:
    """The shared simulated air.

    ``sample_rate``: nominal rate of every radio on it (Hz). ``seed``: root of all randomness.
    ``clock``: ``"sim"`` (default), ``"wall"`` (a :class:`WallClock` at ``sample_rate``) or a
    :class:`Clock`. ``start_delay_max``: radios get a start delay uniform in [0, this) medium
    samples unless given one. ``noise_dbfs``: default receiver noise power (complex, dB relative
    to full-scale power 1.0). ``ref_tx_dbfs``: the transmit power at which a link's ``snr_db``
    holds (-15 dBFS: the PHY's recommended RMS level). ``rx_backlog``: in wall mode, how far (in
    samples) a reader may lag before samples are dropped (default 1 s). ``retention``: bursts
    older than the newest radio time minus this many samples are forgotten (default 4 s).
    """

    def __init__(
        self,
        sample_rate: float,
        *,
        seed: int = 0,
        clock: str | Clock = "sim",
        start_delay_max: float = 256.0,
        noise_dbfs: float = -60.0,
        ref_tx_dbfs: float = -15.0,
        rx_backlog: float | None = None,
        retention: float | None = None,
    ) -> None:
        self.sample_rate = _finite(sample_rate, "sample_rate")
        if self.sample_rate <= 0:
            raise RadioConfigError(f"sample_rate must be > 0 Hz, got {sample_rate!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise RadioConfigError(f"seed must be an int, got {seed!r}")
        self.seed = int(seed)
        if clock == "sim":
            self.clock: Clock | None = None
        elif clock == "wall":
            self.clock = WallClock(self.sample_rate)
        elif hasattr(clock, "now") and hasattr(clock, "sleep_until"):
            self.clock = clock  # type: ignore[assignment]
        else:
            raise RadioConfigError(
                f"clock must be 'sim', 'wall' or an object with now()/sleep_until(), got {clock!r}"
            )
        self.start_delay_max = _finite(start_delay_max, "start_delay_max")
        if self.start_delay_max < 0:
            raise RadioConfigError("start_delay_max must be >= 0 samples")
        self.noise_dbfs = _finite(noise_dbfs, "noise_dbfs")
        self.ref_tx_dbfs = _finite(ref_tx_dbfs, "ref_tx_dbfs")
        self.rx_backlog = float(rx_backlog) if rx_backlog is not None else self.sample_rate
        self.retention = float(retention) if retention is not None else 4.0 * self.sample_rate
        self.radios: dict[str, LoopbackRadio] = {}
        self._links: dict[tuple[str, str], LinkConfig] = {}
        self._max_delay: float | None = None   # _max_delay_samples() until a link changes
        self._bursts: list[Burst] = []
        self._taps: list[Tap] = []
        self._lock = threading.RLock()

    # -- configuration ---------------------------------------------------------------------

    @property
    def wall(self) -> bool:
        """True when an external clock drives the medium."""
        return self.clock is not None

    def add_radio(
        self,
        name: str,
        *,
        lo_hz: float = 2.4e9,
        tx_lo_hz: float | None = None,
        rx_lo_hz: float | None = None,
        ppm: float = 0.0,
        sfo_ppm: float | None = None,
        noise_dbfs: float | None = None,
        start_delay: float | None = None,
        tx_iq: tuple[float, float] = (0.0, 0.0),
        rx_iq: tuple[float, float] = (0.0, 0.0),
        tx_dc: complex = 0j,
        rx_dc: complex = 0j,
        rx_gain_db: float = 0.0,
        tx_gain_db: float = 0.0,
        quantise: bool = True,
    ) -> LoopbackRadio:
        """Attach a new radio and return it.

        ``ppm``: error of the radio's crystal; it shifts the carrier (LO * ppm) and, unless
        ``sfo_ppm`` is given, the sample clock by the same ppm (one XO drives both on a Pluto).
        ``noise_dbfs``: receiver noise floor (default: the medium's). ``start_delay``: medium
        time of the radio's local sample 0 (default: uniform in [0, start_delay_max), seeded; in
        wall mode added to the clock's now). ``tx_iq``/``rx_iq``: IQ imbalance (gain dB, phase
        degrees). ``tx_dc``/``rx_dc``: DC offset (full-scale units). ``quantise``: 12-bit ADC/DAC.
        """
        if not isinstance(name, str) or not name:
            raise RadioConfigError(f"radio name must be a non-empty string, got {name!r}")
        with self._lock:
            if name in self.radios:
                raise RadioConfigError(f"a radio named {name!r} is already on this medium")
            if start_delay is None:
                u = _stream(_key(self.seed, "start", name)).random()
                delay = u * self.start_delay_max
            else:
                delay = _finite(start_delay, "start_delay")
                if delay < 0:
                    raise RadioConfigError("start_delay must be >= 0 samples")
            if self.clock is not None:
                delay += self.clock.now()
            radio = LoopbackRadio(
                self,
                name,
                lo_hz=lo_hz,
                tx_lo_hz=tx_lo_hz,
                rx_lo_hz=rx_lo_hz,
                ppm=_finite(ppm, "ppm"),
                sfo_ppm=_finite(ppm if sfo_ppm is None else sfo_ppm, "sfo_ppm"),
                noise_dbfs=(
                    self.noise_dbfs if noise_dbfs is None else _finite(noise_dbfs, "noise_dbfs")
                ),
                start_delay=delay,
                tx_iq=_check_iq_param(tx_iq, "tx_iq"),
                rx_iq=_check_iq_param(rx_iq, "rx_iq"),
                tx_dc=complex(tx_dc),
                rx_dc=complex(rx_dc),
                rx_gain_db=_finite(rx_gain_db, "rx_gain_db"),
                tx_gain_db=_finite(tx_gain_db, "tx_gain_db"),
                quantise=bool(quantise),
            )
            self.radios[name] = radio
            return radio

    def set_link(
        self,
        a: str,
        b: str,
        *,
        snr_db: float | None = None,
        path_loss_db: float | None = None,
        channel: str | TapProfile = "awgn",
        fading: str = "block",
        delay_s: float = 0.0,
        both_ways: bool = True,
    ) -> None:
        """Let ``b`` hear ``a`` (and ``a`` hear ``b`` if ``both_ways``); ``a == b`` is a self-link.

        Give ``snr_db`` (SNR at the receiver for a burst sent at ``ref_tx_dbfs``, so a burst sent
        at that power arrives at exactly this SNR on average) or ``path_loss_db`` (attenuation);
        ``snr_db`` defaults to 30 dB when neither is given. ``channel``: ``awgn``, ``pedA``,
        ``pedB``, ``vehA``, ``vehB`` or a :class:`TapProfile`. ``fading``: ``block`` (new
        Rayleigh taps per burst), ``static`` (one draw per link) or ``none``. ``delay_s``: extra
        propagation delay. Each direction gets its own random phase and fading stream.
        """
        if snr_db is not None and path_loss_db is not None:
            raise RadioConfigError("give snr_db or path_loss_db, not both")
        if snr_db is None and path_loss_db is None:
            snr_db = 30.0
        snr = None if snr_db is None else _finite(snr_db, "snr_db")
        loss = None if path_loss_db is None else _finite(path_loss_db, "path_loss_db")
        profile = channel if isinstance(channel, TapProfile) else channel_profile(channel)
        if fading not in _FADING:
            raise RadioConfigError(f"fading must be one of {', '.join(_FADING)}, got {fading!r}")
        delay = _finite(delay_s, "delay_s")
        if delay < 0:
            raise RadioConfigError("delay_s must be >= 0")
        with self._lock:
            for n in (a, b):
                if n not in self.radios:
                    raise RadioConfigError(f"no radio named {n!r} on this medium")
            pairs = [(a, b)] if (a == b or not both_ways) else [(a, b), (b, a)]
            for tx, rx in pairs:
                key = _key(self.seed, "link", tx, rx)
                phase = float(_stream(key, 1 << 62).random() * 2 * math.pi)
                self._max_delay = None
                self._links[(tx, rx)] = LinkConfig(
                    tx, rx, profile, snr, loss, fading, delay, phase, key
                )

    def remove_link(self, a: str, b: str, *, both_ways: bool = True) -> None:
        """Stop ``b`` hearing ``a`` (and the reverse when ``both_ways``)."""
        with self._lock:
            self._max_delay = None
            self._links.pop((a, b), None)
            if both_ways:
                self._links.pop((b, a), None)

    def link(self, tx: str, rx: str) -> LinkConfig | None:
        """The link from ``tx`` to ``rx``, or None."""
        with self._lock:
            return self._links.get((tx, rx))

    def add_tap(self, tap: Tap) -> Callable[[], None]:
        """Install a burst tap; returns a function that removes it.

        Every transmitted burst (after validation, before the transmitter's impairments) is passed
        as ``tap(source_name, start_medium_time, iq)``; a returned array replaces the burst (an
        empty one drops it), ``None`` keeps it. For tests and fault injection; see also
        :meth:`inject` for replays.
        """
        with self._lock:
            self._taps.append(tap)

        def remove() -> None:
            with self._lock:
                if tap in self._taps:
                    self._taps.remove(tap)

        return remove

    def inject(self, source: str, iq: np.ndarray, *, start: float) -> None:
        """Put ``iq`` on the air as if ``source`` sent it at medium time ``start`` (replays and
        interference in tests). The source's transmit impairments apply; taps are not called."""
        x = as_iq(iq)
        with self._lock:
            radio = self._radio(source)
            self._place(radio, x, float(start))

    def now(self) -> float:
        """Medium time: the external clock's now, or (sim mode) the latest receive cursor."""
        with self._lock:
            if self.clock is not None:
                return float(self.clock.now())
            times = [r._global(r._t) for r in self.radios.values()]
            return max(times, default=0.0)

    def bursts(self) -> list[Burst]:
        """Bursts still on the timeline (oldest first)."""
        with self._lock:
            return list(self._bursts)

    def close(self) -> None:
        """Close every radio and forget all bursts."""
        for radio in list(self.radios.values()):
            radio.close()
        with self._lock:
            self._bursts.clear()

    # -- internals (called by LoopbackRadio under self._lock) -------------------------------

    def _radio(self, name: str) -> LoopbackRadio:
        radio = self.radios.get(name)
        if radio is None:
            raise RadioConfigError(f"no radio named {name!r} on this medium")
        return radio

    def _place(self, radio: LoopbackRadio, x: np.ndarray, start: float) -> Burst | None:
        """Apply TX impairments and append the burst (lock held)."""
        if x.size == 0:
            return None
        y = x
        if radio.tx_gain_db != 0.0:
            y = (y * np.float32(10.0 ** (radio.tx_gain_db / 20.0))).astype(np.complex64)
        y = _apply_iq(y, radio.tx_iq)
        if radio.tx_dc:
            y = (y + np.complex64(radio.tx_dc)).astype(np.complex64)
        if radio.quantise:   # quantise_12bit's grid, in one compiled pass over a copy
            y = np.array(y, dtype=np.complex64, copy=True)
            clipped = int(_kernels().quantise_12bit_inplace(y))
        else:
            y = y.astype(np.complex64, copy=True)
            clipped = 0
        radio.stats.clipped += clipped
        burst = Burst(radio.name, radio._tx_count, start, radio._rate, radio._tx_freq, y)
        radio._tx_count += 1
        radio.stats.tx_bursts += 1
        radio.stats.tx_samples += y.size
        radio._tx_end = max(radio._tx_end, burst.end + 1.0 / radio._rate)
        self._bursts.append(burst)
        self._bursts.sort(key=lambda b: b.start)
        return burst

    def _prune(self) -> None:
        if not self._bursts:
            return
        if self.clock is not None:
            horizon = self.clock.now() - self.rx_backlog - self.retention
        else:
            active = [r._global(r._t) for r in self.radios.values() if r.stats.rx_calls]
            newest = max((r._global(r._t) for r in self.radios.values()), default=0.0)
            horizon = newest - self.retention
            if active and len(active) == len(self.radios):
                horizon = max(horizon, min(active))
        margin = 4 * INTERP_HALF + 2 + self._max_delay_samples()
        self._bursts = [b for b in self._bursts if b.end + margin >= horizon]

    def _max_delay_samples(self) -> float:
        """Longest reach of any link (propagation delay + last tap) in samples; cached until a
        link changes (every receive asks: a 19-radio cell has 342 links)."""
        if self._max_delay is None:
            m = 0.0
            for link in self._links.values():
                m = max(m, (link.delay_s + link.profile.max_delay_s) * self.sample_rate)
            self._max_delay = m
        return self._max_delay

    def _link_amplitude(self, link: LinkConfig, rx: LoopbackRadio) -> float:
        if link.snr_db is not None:
            gain_db = rx.noise_dbfs + link.snr_db - self.ref_tx_dbfs
        else:
            gain_db = -float(link.path_loss_db or 0.0)
        return 10.0 ** (gain_db / 20.0)

    def _taps_for(self, link: LinkConfig, burst: Burst) -> np.ndarray:
        fading = link.fading
        prof = link.profile
        if fading == "none" or (prof.name == "awgn" and prof.n_taps == 1):
            g = np.sqrt(np.asarray(prof.powers)).astype(np.complex128)
        elif fading == "static":
            g = prof.draw(_stream(link.key, 1 << 61))
        else:
            g = prof.draw(_stream(link.key, burst.index))
        return g * np.exp(1j * link.phase)


# --------------------------------------------------------------------------------------------
# radio


class LoopbackRadio(ClosingContext):
    """A radio on a :class:`Medium` (create with :meth:`Medium.add_radio`). Implements
    :class:`hw.radio.Radio` with both optional capabilities (timed ``transmit(iq, at=...)``,
    ``skip(n)`` without rendering); extra: ``time``, ``tune(tx_lo_hz=..., rx_lo_hz=...)``."""

    caps = RadioCaps(timed_tx=True, skip=True, retime=True)

    def __init__(
        self,
        medium: Medium,
        name: str,
        *,
        lo_hz: float,
        tx_lo_hz: float | None,
        rx_lo_hz: float | None,
        ppm: float,
        sfo_ppm: float,
        noise_dbfs: float,
        start_delay: float,
        tx_iq: tuple[float, float],
        rx_iq: tuple[float, float],
        tx_dc: complex,
        rx_dc: complex,
        rx_gain_db: float,
        tx_gain_db: float,
        quantise: bool,
    ) -> None:
        self.medium = medium
        self.name = name
        self.stats = RadioStats()
        lo = _finite(lo_hz, "lo_hz")
        self.tx_lo_hz = _finite(tx_lo_hz, "tx_lo_hz") if tx_lo_hz is not None else lo
        self.rx_lo_hz = _finite(rx_lo_hz, "rx_lo_hz") if rx_lo_hz is not None else lo
        if self.tx_lo_hz <= 0 or self.rx_lo_hz <= 0:
            raise RadioConfigError("LO frequencies must be > 0 Hz")
        self.ppm = ppm
        self.sfo_ppm = sfo_ppm
        self.noise_dbfs = noise_dbfs
        self.start_delay = start_delay
        self.tx_iq = tx_iq
        self.rx_iq = rx_iq
        self.tx_dc = tx_dc
        self.rx_dc = rx_dc
        self.rx_gain_db = rx_gain_db
        if tx_gain_db > 0:
            raise RadioConfigError(f"tx_gain_db is an attenuation (<= 0 dB), got {tx_gain_db}")
        self.tx_gain_db = tx_gain_db
        self.quantise = quantise
        self._rate = 1.0 + sfo_ppm * 1e-6
        self._t = 0  # local receive cursor (samples)
        self._tx_end = -math.inf  # medium time just after the last queued TX sample
        self._tx_count = 0
        self._noise_key = np.uint64(_key(medium.seed, "noise", name) & (2**64 - 1))
        self.closed = False

    # -- clock helpers ---------------------------------------------------------------------

    @property
    def sample_rate(self) -> float:
        """Nominal sample rate (the medium's)."""
        return self.medium.sample_rate

    @property
    def time(self) -> int:
        """Local sample index of the next sample ``receive`` returns."""
        return self._t

    def _global(self, k: float) -> float:
        return self.start_delay + k / self._rate

    def _local(self, t: float) -> float:
        return (t - self.start_delay) * self._rate

    @property
    def _tx_freq(self) -> float:
        return self.tx_lo_hz * (1.0 + self.ppm * 1e-6)

    @property
    def _rx_freq(self) -> float:
        return self.rx_lo_hz * (1.0 + self.ppm * 1e-6)

    def _check_open(self) -> None:
        if self.closed:
            raise RadioClosedError(f"loopback radio {self.name!r} is closed")

    # -- Radio API -------------------------------------------------------------------------

    def transmit(self, iq: np.ndarray, *, at: float | None = None) -> float:
        """Put a burst on the air; returns its start as a local sample index (float).

        Without ``at`` the burst starts at the radio's current time (sim mode: the receive
        cursor; wall mode: the clock's now), or right after the previous burst if that one is
        still playing (bursts queue like a DAC FIFO). ``at`` is a local sample index.
        """
        x = as_iq(iq)
        m = self.medium
        with m._lock:
            self._check_open()
            if at is not None:
                start = self._global(_finite(at, "at"))
            elif m.clock is not None:
                start = max(m.clock.now(), self._tx_end)
            else:
                start = max(self._global(self._t), self._tx_end)
            for tap in list(m._taps):
                out = tap(self.name, start, x)
                if out is not None:
                    x = as_iq(out, what="tap output")
            m._place(self, x, start)
            return self._local(start)

    def receive(self, n: int) -> np.ndarray:
        """The next ``n`` samples (complex64, 12-bit grid, clipped at full scale)."""
        n = check_count(n)
        m = self.medium
        margin = INTERP_HALF + 2.0
        while True:
            with m._lock:
                self._check_open()
                if m.clock is not None:
                    now = m.clock.now()
                    lag = now - self._global(self._t)
                    if lag > m.rx_backlog:
                        new_t = max(self._t, math.floor(self._local(now)) - n)
                        self.stats.overflows += 1
                        self.stats.dropped += new_t - self._t
                        self._t = new_t
                    need = self._global(self._t + n) + margin
                    wait = need if now < need else None
                else:
                    wait = None
                if wait is None:
                    k0 = self._t
                    self._t += n
                    self.stats.rx_calls += 1
                    self.stats.rx_samples += n
                    jobs = self._snapshot(k0, n)
                    params = (
                        self.noise_dbfs,
                        self.rx_gain_db,
                        self.rx_iq,
                        self.rx_dc,
                        self._rx_freq,
                    )
                    m._prune()
                    break
            m.clock.sleep_until(wait)  # type: ignore[union-attr]
        y, clipped = self._render(k0, n, jobs, params)
        if clipped:
            with m._lock:
                self.stats.clipped += clipped
        return y

    def retime(self, delta: float) -> None:
        """Move this radio's timing by *delta* medium samples (later when positive): every
        later local sample happens that much later on the medium. A simulated station keeps its
        frame aligned to its serving station's with it, as a receiver re-timing its frame from
        the preamble drops or repeats a few samples of its stream; ``|delta|`` is at most 64."""
        d = _finite(delta, "delta")
        if abs(d) > 64:
            raise RadioConfigError("retime: at most 64 samples at a time")
        with self.medium._lock:
            self._check_open()
            self.start_delay += d

    def skip(self, n: int) -> None:
        """Advance the receive cursor by ``n`` samples without rendering them."""
        n = check_count(n)
        with self.medium._lock:
            self._check_open()
            self._t += n

    def tune(
        self,
        *,
        lo_hz: float | None = None,
        sample_rate: float | None = None,
        rx_gain_db: float | None = None,
        tx_gain_db: float | None = None,
        tx_lo_hz: float | None = None,
        rx_lo_hz: float | None = None,
    ) -> None:
        """Retune. The medium has one sample rate: ``sample_rate`` must equal it. LO changes take
        effect for bursts sent / windows received afterwards; a burst heard with a carrier offset
        beyond +-fs/2 is out of band and not heard at all."""
        with self.medium._lock:
            self._check_open()
            if sample_rate is not None and float(sample_rate) != self.medium.sample_rate:
                raise RadioConfigError(
                    f"loopback radios run at the medium's rate {self.medium.sample_rate:g} S/s; "
                    f"create a Medium at {float(sample_rate):g} S/s instead"
                )
            new_tx = self.tx_lo_hz if tx_lo_hz is None else _finite(tx_lo_hz, "tx_lo_hz")
            new_rx = self.rx_lo_hz if rx_lo_hz is None else _finite(rx_lo_hz, "rx_lo_hz")
            if lo_hz is not None:
                new_tx = new_rx = _finite(lo_hz, "lo_hz")
            if new_tx <= 0 or new_rx <= 0:
                raise RadioConfigError("LO frequencies must be > 0 Hz")
            if tx_gain_db is not None and _finite(tx_gain_db, "tx_gain_db") > 0:
                raise RadioConfigError(f"tx_gain_db is an attenuation (<= 0 dB), got {tx_gain_db}")
            self.tx_lo_hz, self.rx_lo_hz = new_tx, new_rx
            if rx_gain_db is not None:
                self.rx_gain_db = _finite(rx_gain_db, "rx_gain_db")
            if tx_gain_db is not None:
                self.tx_gain_db = float(tx_gain_db)

    def close(self) -> None:
        """Detach from the medium (idempotent). Its links are removed; queued bursts stay."""
        m = self.medium
        with m._lock:
            if self.closed:
                return
            self.closed = True
            m.radios.pop(self.name, None)
            for key in [k for k in m._links if self.name in k]:
                del m._links[key]
            m._max_delay = None

    def __repr__(self) -> str:
        return (
            f"LoopbackRadio({self.name!r}, t={self._t}, ppm={self.ppm:g}, "
            f"start_delay={self.start_delay:.3f})"
        )

    # -- rendering -------------------------------------------------------------------------

    def _snapshot(self, k0: int, n: int) -> list[tuple[Burst, LinkConfig, float, np.ndarray]]:
        """Bursts overlapping the window with their link, amplitude and taps (lock held)."""
        m = self.medium
        t_lo = self._global(k0)
        t_hi = self._global(k0 + n)
        jobs = []
        for b in m._bursts:
            link = m._links.get((b.source, self.name))
            if link is None:
                continue
            reach = (link.delay_s + link.profile.max_delay_s) * m.sample_rate
            if b.start - INTERP_HALF - 1 > t_hi or b.end + reach + INTERP_HALF + 1 < t_lo:
                continue
            amp = m._link_amplitude(link, self)
            taps = m._taps_for(link, b) * amp
            jobs.append((b, link, amp, taps))
        return jobs

    def _render(
        self,
        k0: int,
        n: int,
        jobs: list[tuple[Burst, LinkConfig, float, np.ndarray]],
        params: tuple[float, float, tuple[float, float], complex, float],
    ) -> tuple[np.ndarray, int]:
        noise_dbfs, rx_gain_db, rx_iq, rx_dc, rx_freq = params
        fs = self.medium.sample_rate
        y = self._noise(k0, n, 10.0 ** (noise_dbfs / 20.0))
        rq = self._rate
        for b, link, _amp, taps in jobs:
            dfreq = b.tx_freq_hz - rx_freq
            if abs(dfreq) >= fs / 2:
                continue
            # delays of the taps in transmitter samples
            delays = (link.delay_s + np.asarray(link.profile.delays_s)) * fs * b.rate
            # position of local sample k0 + j in transmitter samples: u_j = u0 + j * ratio
            ratio = b.rate / rq
            u0 = (self._global(k0) - b.start) * b.rate
            lo_u = -INTERP_HALF - 1 + delays.min()
            hi_u = b.iq.size + INTERP_HALF + 1 + delays.max()
            j_lo = max(0, math.ceil((lo_u - u0) / ratio))
            j_hi = min(n, math.floor((hi_u - u0) / ratio) + 1)
            if j_lo >= j_hi:
                continue
            if b.rate != rq:
                # the clocks differ: evaluate the channel's output at our sample instants
                # and turn it by the carrier offset, in one compiled pass into y
                h, first = fractional_fir(delays, taps)
                th0 = 2 * math.pi * (dfreq / fs) * self._global(k0)
                dth = 2 * math.pi * (dfreq / fs) / rq
                if h.size == 1:     # one tap: the burst itself, scaled
                    z, p0, gain = b.iq, u0 - first, complex(h[0])
                else:
                    u_a, u_b = u0 + j_lo * ratio, u0 + (j_hi - 1) * ratio
                    z_lo = math.floor(u_a) - INTERP_HALF - 1
                    z_hi = math.ceil(u_b) + INTERP_HALF + 2
                    z, p0, gain = _filtered(b.iq, h, first, z_lo, z_hi), u0 - z_lo, 1 + 0j
                _kernels().resample_rotate_add(y, z, p0, ratio, j_lo, j_hi,
                                               _kernel_table(INTERP_HALF), gain, th0, dth)
                continue
            i0 = math.floor(u0)
            frac = u0 - i0
            h, first = fractional_fir(delays - frac, taps)
            seg = _filtered(b.iq, h, first, i0 + j_lo, i0 + j_hi)
            if dfreq != 0.0:
                tg = self._global(k0 + np.arange(j_lo, j_hi, dtype=np.float64))
                seg = seg * np.exp(2j * np.pi * (dfreq / fs) * tg).astype(np.complex64)
            y[j_lo:j_hi] += seg
        if rx_gain_db != 0.0:
            y *= np.float32(10.0 ** (rx_gain_db / 20.0))
        y = _apply_iq(y, rx_iq)
        if rx_dc:
            y += np.complex64(rx_dc)
        if self.quantise:
            y = np.ascontiguousarray(y, dtype=np.complex64)
            return y, int(_kernels().quantise_12bit_inplace(y))
        return y.astype(np.complex64, copy=False), 0

    def _noise(self, k0: int, n: int, sigma: float) -> np.ndarray:
        """Receiver noise for local samples [k0, k0+n), independent of how windows are split
        (sample k is a function of this radio's noise key and k only: :mod:`hw._medium`)."""
        out = np.empty(n, dtype=np.complex64)
        if n:
            _kernels().gaussian_noise(out, self._noise_key, k0, sigma / math.sqrt(2.0))
        return out


__all__ = [
    "Burst",
    "Clock",
    "LinkConfig",
    "LoopbackRadio",
    "ManualClock",
    "Medium",
    "Tap",
    "WallClock",
]
