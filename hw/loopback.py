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

Where things live: this module holds the medium (radios, links, taps, bursts); the radio itself
and the rendering of its receive window are in :mod:`hw.loopback_radio`, the clocks in
:mod:`hw.clocks`. All of them are importable from here.
"""

from __future__ import annotations

import bisect
import logging
import math
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hw.channels import INTERP_HALF, TapProfile, channel_profile
from hw.clocks import Clock, ManualClock, WallClock
from hw.errors import RadioConfigError
from hw.loopback_radio import (
    LoopbackRadio,
    _apply_iq,
    _finite,
    _kernels,
    _key,
    _stream,
)
from hw.radio import as_iq

log = logging.getLogger(__name__)

#: Burst-tap callback: ``tap(source_name, start, iq) -> replacement iq or None`` (keep).
Tap = Callable[[str, float, np.ndarray], "np.ndarray | None"]

_FADING = ("block", "static", "none")

#: Sort key of the medium's bursts (their start): :meth:`Medium._place` keeps them in this order
#: and the readers find a window's bursts by bisection on it.
_START = operator.attrgetter("start")


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


def _check_iq_param(value: object, what: str) -> tuple[float, float]:
    try:
        g, p = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise RadioConfigError(f"{what} must be (gain_db, phase_deg), got {value!r}") from None
    if not (math.isfinite(g) and math.isfinite(p)):
        raise RadioConfigError(f"{what} must be finite, got {value!r}")
    return g, p


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
    ``sample_aligned``: every radio's local sample 0 falls on a whole medium sample (its start
    delay is rounded down), so between radios of equal rate (no ``ppm`` between them) a burst
    placed at a whole sample arrives at a whole sample: added as it is, not interpolated
    through a 24-tap fractional-delay filter at every receiver (the emulator's choice).
    ``noise_pool``: 0 (default) draws every receiver-noise sample by the ziggurat (~12 ns);
    a power of two reads it from a pool of that many Gaussian samples in blocks of 4096, each
    block from a position and in an orientation of its own (``hw._medium.pooled_noise``,
    ~2 ns; still a function of the radio's seed and the sample index only): the emulator,
    which renders noise for every sample of every stream in real time.
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
        sample_aligned: bool = False,
        noise_pool: int = 0,
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
        self.sample_aligned = bool(sample_aligned)
        if isinstance(noise_pool, bool) or not isinstance(noise_pool, int) or noise_pool < 0 \
                or noise_pool & (noise_pool - 1):
            raise RadioConfigError(f"noise_pool must be 0 or a power of two, got {noise_pool!r}")
        self.noise_pool = noise_pool
        self._pool: np.ndarray | None = None
        self.radios: dict[str, LoopbackRadio] = {}
        self._links: dict[tuple[str, str], LinkConfig] = {}
        self._max_delay: float | None = None   # _max_delay_samples() until a link changes
        #: (tx, rx) -> (link, taps) of links whose taps do not change from burst to burst
        self._fixed_taps: dict[tuple[str, str], tuple[LinkConfig, np.ndarray]] = {}
        self._bursts: list[Burst] = []  # sorted by start (stable: equal starts in placing order)
        self._max_span = 0.0  # longest end - start of any burst placed since the last close()
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
            if self.sample_aligned:
                delay = float(math.floor(delay))
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

    def noise_pool_samples(self) -> np.ndarray | None:
        """The pool receiver noise is read from (unit variance per part), None without one."""
        if not self.noise_pool:
            return None
        if self._pool is None:
            pool = np.empty(self.noise_pool, np.complex64)
            key = np.uint64(_key(self.seed, "noise-pool") & (2**64 - 1))
            _kernels().gaussian_noise(pool, key, 0, 1.0)
            self._pool = pool
        return self._pool

    def now(self) -> float:
        """Medium time: the external clock's now, or (sim mode) the latest receive cursor."""
        clock = self.clock
        if clock is not None:  # a clock of its own: thread-safe, no lock needed
            return float(clock.now())
        with self._lock:
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
            self._max_span = 0.0

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
        # after every burst of an equal or earlier start: the order a stable sort gave
        bisect.insort_right(self._bursts, burst, key=_START)
        self._max_span = max(self._max_span, burst.end - burst.start)
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
        # A burst that starts after horizon - margin (+1 for rounding) ends after it too: only
        # the bursts before that are judged one by one (the whole list was, ~70 bursts per
        # READBUF of an emulated 4-radio air, 130 us).
        k = bisect.bisect_left(self._bursts, horizon - margin + 1.0, key=_START)
        if k:
            old = self._bursts[:k]
            kept = [b for b in old if b.end + margin >= horizon]
            if len(kept) < k:
                self._bursts[:k] = kept

    def _candidates(self, t_lo: float, t_hi: float) -> list[Burst]:
        """Bursts that may reach medium times ``[t_lo, t_hi]`` (lock held): every burst of the
        timeline the reader's own test (:meth:`LoopbackRadio._snapshot`) could keep, in timeline
        order, and few others. By bisection on the starts: a burst starting more than the longest
        burst, the longest link reach and the interpolator (plus a sample for rounding) before
        ``t_lo`` ends before it; one starting more than the interpolator after ``t_hi`` is not
        heard in it either."""
        bursts = self._bursts
        reach = self._max_span + self._max_delay_samples() + INTERP_HALF + 3.0
        lo = bisect.bisect_left(bursts, t_lo - reach, key=_START)
        hi = bisect.bisect_right(bursts, t_hi + INTERP_HALF + 2.0, key=_START, lo=lo)
        return bursts[lo:hi]

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
        if fading == "block" and not (prof.name == "awgn" and prof.n_taps == 1):
            return prof.draw(_stream(link.key, burst.index)) * np.exp(1j * link.phase)
        # the same for every burst: computed once per link (~10 us of numpy per burst and
        # receiver before), read-only since it is shared
        fixed = self._fixed_taps.get((link.tx, link.rx))
        if fixed is not None and fixed[0] is link:
            return fixed[1]
        if fading == "none" or (prof.name == "awgn" and prof.n_taps == 1):
            g = np.sqrt(np.asarray(prof.powers)).astype(np.complex128)
        else:  # static: one draw per link
            g = prof.draw(_stream(link.key, 1 << 61))
        g = g * np.exp(1j * link.phase)
        g.setflags(write=False)
        self._fixed_taps[(link.tx, link.rx)] = (link, g)
        return g


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
