"""One radio on the loopback medium: transmit, receive and render its receive window.

:class:`LoopbackRadio` implements :class:`hw.radio.Radio` over a :class:`~hw.loopback.Medium`
(create one with :meth:`Medium.add_radio`): ``transmit`` puts a burst on the medium's timeline,
``receive(n)`` renders the radio's next ``n`` local samples from the bursts its links reach, plus
its noise and receive impairments. The medium model, its clocks and determinism are described in
:mod:`hw.loopback`; the signal helpers both use (seeded streams, IQ imbalance, filtering, the
compiled kernels of :mod:`hw._medium`) live here, beside the rendering that uses most of them.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from hw.channels import INTERP_HALF, _kernel_table, fractional_fir
from hw.errors import RadioClosedError, RadioConfigError
from hw.radio import ClosingContext, RadioCaps, RadioStats, as_iq, check_count

if TYPE_CHECKING:  # hw.loopback imports this module at runtime (Medium.add_radio)
    from hw.loopback import Burst, LinkConfig, Medium


# --------------------------------------------------------------------------------------------
# helpers: seeded streams, checks, IQ imbalance, filtering (hw.loopback uses some too)


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
        import scipy.signal  # ~1 s to import: only for long channels

        c = scipy.signal.fftconvolve(xs, h.astype(np.complex64))
    else:
        c = np.convolve(xs, h.astype(np.complex64))
    return c[h.size - 1 : h.size - 1 + (hi - lo)].astype(np.complex64)


def _add_one_tap(y: np.ndarray, x: np.ndarray, first: int, gain: complex, lo: int, j_lo: int,
                 j_hi: int) -> None:
    """``y[j_lo:j_hi] += _filtered(x, h, first, lo, lo + j_hi - j_lo)`` for the one-tap filter
    ``h = [gain]`` that :func:`~hw.channels.fractional_fir` makes of one whole-sample delay,
    element for element the same sums (samples outside *x* add ``0 * gain``, as the zeros
    ``_filtered`` pads with did), without building the filter, the padded copy and the
    segment: ~60 us less per burst a receiver hears, four receivers per burst in the
    emulator."""
    c = np.complex64(0j + gain)  # h[0]: a tap added onto zeros, as fractional_fir builds it
    start, stop = lo - first, lo + (j_hi - j_lo) - first
    a, b = max(start, 0), min(stop, x.size)
    # what a padding zero became, 0 * c: exact zeros whose signs follow IEEE's rules, the same
    # in Python's doubles as in numpy's complex64 multiply (2 us less than asking numpy)
    cr, ci = float(c.real), float(c.imag)
    zero = complex(0.0 * cr - 0.0 * ci, 0.0 * ci + 0.0 * cr)
    if a >= b:
        y[j_lo:j_hi] += zero
        return
    o = j_lo + a - start
    y[o:o + (b - a)] += x[a:b] * c
    if o > j_lo:
        y[j_lo:o] += zero
    if o + (b - a) < j_hi:
        y[o + (b - a):j_hi] += zero


_MEDIUM: Any = None


def _kernels() -> Any:
    """:mod:`hw._medium` (numba), imported on first use: importing ``hw`` stays light. Kept
    once imported: an import statement per call cost ~5 us, several times per emulated
    request."""
    global _MEDIUM
    if _MEDIUM is None:
        from hw import _medium

        _MEDIUM = _medium
    return _MEDIUM


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
        #: source -> (its link's fixed taps, amplitude, their product), see _snapshot
        self._scaled_taps: dict[str, tuple[np.ndarray, float, np.ndarray]] = {}
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
        """Bursts overlapping the window with their link, amplitude and taps (lock held).

        A source's link and reach are looked up once per window, and a link's fixed taps
        (:meth:`Medium._taps_for` hands the same read-only array for every burst) times the
        amplitude are kept between windows while both stay the same (a numpy multiply per
        burst and receiver before)."""
        m = self.medium
        t_lo = self._global(k0)
        t_hi = self._global(k0 + n)
        jobs = []
        links: dict[str, tuple[LinkConfig | None, float]] = {}
        scaled = self._scaled_taps
        for b in m._candidates(t_lo, t_hi):
            src = b.source
            entry = links.get(src)
            if entry is None:
                lk = m._links.get((src, self.name))
                reach = 0.0 if lk is None else \
                    (lk.delay_s + lk.profile.max_delay_s) * m.sample_rate
                entry = links[src] = (lk, reach)
            link, reach = entry
            if link is None:
                continue
            if b.start - INTERP_HALF - 1 > t_hi or b.end + reach + INTERP_HALF + 1 < t_lo:
                continue
            amp = m._link_amplitude(link, self)
            g = m._taps_for(link, b)
            kept = scaled.get(src)
            if kept is not None and kept[0] is g and kept[1] == amp:
                taps = kept[2]
            else:
                taps = g * amp
                if not g.flags.writeable:  # fixed for the link: keep the product too
                    taps.setflags(write=False)
                    scaled[src] = (g, amp, taps)
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
            path = link.profile.delays_s
            delays: np.ndarray | None = None
            if len(path) == 1:
                # one path (AWGN): the same double arithmetic as the array below, as a float
                # (numpy's array, min and max cost ~10 us a burst for one number)
                d_min = d_max = (link.delay_s + path[0]) * fs * b.rate
            else:
                delays = (link.delay_s + np.asarray(path)) * fs * b.rate
                d_min, d_max = delays.min(), delays.max()
            # position of local sample k0 + j in transmitter samples: u_j = u0 + j * ratio
            ratio = b.rate / rq
            u0 = (self._global(k0) - b.start) * b.rate
            lo_u = -INTERP_HALF - 1 + d_min
            hi_u = b.iq.size + INTERP_HALF + 1 + d_max
            j_lo = max(0, math.ceil((lo_u - u0) / ratio))
            j_hi = min(n, math.floor((hi_u - u0) / ratio) + 1)
            if j_lo >= j_hi:
                continue
            if b.rate != rq:
                # the clocks differ: evaluate the channel's output at our sample instants
                # and turn it by the carrier offset, in one compiled pass into y
                th0 = 2 * math.pi * (dfreq / fs) * self._global(k0)
                dth = 2 * math.pi * (dfreq / fs) / rq
                if delays is None:
                    # one path: the burst itself, scaled, read at the path's delay (the
                    # resampler interpolates anyway; a fractional delay filtered first was
                    # a second interpolation and a convolution per burst, ~30 % of an
                    # emulator's CPU over an AWGN air)
                    d = float(d_min)
                    if abs(d - round(d)) < 1e-9:
                        d = float(round(d))
                    z, p0, gain = b.iq, u0 - d, complex(taps[0])
                elif (hf := fractional_fir(delays, taps))[0].size == 1:
                    z, p0, gain = b.iq, u0 - hf[1], complex(hf[0][0])
                else:
                    h, first = hf
                    u_a, u_b = u0 + j_lo * ratio, u0 + (j_hi - 1) * ratio
                    z_lo = math.floor(u_a) - INTERP_HALF - 1
                    z_hi = math.ceil(u_b) + INTERP_HALF + 2
                    z, p0, gain = _filtered(b.iq, h, first, z_lo, z_hi), u0 - z_lo, 1 + 0j
                _kernels().resample_rotate_add(y, z, p0, ratio, j_lo, j_hi,
                                               _kernel_table(INTERP_HALF), gain, th0, dth)
                continue
            i0 = math.floor(u0)
            frac = u0 - i0
            if delays is None:
                dd = d_min - frac
                if dfreq == 0.0 and abs(dd - round(dd)) < 1e-9:
                    # one path landing on whole samples (the emulator's air: equal rates,
                    # sample-aligned radios): the burst scaled, added in place
                    _add_one_tap(y, b.iq, round(dd), complex(taps[0]), i0 + j_lo,
                                 j_lo, j_hi)
                    continue
                delays = np.array([d_min])
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
            pool = self.medium.noise_pool_samples()
            if pool is None:
                _kernels().gaussian_noise(out, self._noise_key, k0, sigma / math.sqrt(2.0))
            else:
                _kernels().pooled_noise(out, pool, self._noise_key, k0, sigma / math.sqrt(2.0))
        return out


__all__ = ["LoopbackRadio"]
