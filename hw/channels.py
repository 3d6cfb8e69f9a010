"""Channel models for the loopback medium: ITU-R M.1225 tap-delay lines and fractional delays.

The tap tables live in ``hw/data/itu_m1225.json`` (source named in the file). Also: a
same-length tap-delay-line filter (:func:`apply_taps`) and an oscillator phase-noise model
(:func:`phase_noise`) for the PHY's PER benchmark. Tap powers are
normalised so that their average powers sum to 1: a faded channel keeps the mean received power.

Fractional delays (multipath taps, start offsets, sampling-clock drift) all use one windowed-sinc
interpolator (Kaiser window, beta 5.5, ``2*half`` = 24 taps). It is exact for integer delays; for
fractional delays the error is about -60 dB for signals occupying up to 86 % of the sample-rate band
(the OFDM profiles of the PHY) — below the 12-bit quantisation floor of a -15 dBFS signal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hw.errors import RadioConfigError

_DATA = Path(__file__).with_name("data") / "itu_m1225.json"
#: Half-length of the interpolation kernel (kernel has ``2*INTERP_HALF`` taps).
INTERP_HALF = 12
_KAISER_BETA = 5.5

_ALIASES = {
    "awgn": "awgn",
    "none": "awgn",
    "flat": "awgn",
    "peda": "pedA",
    "pedb": "pedB",
    "veha": "vehA",
    "vehb": "vehB",
}


@dataclass(frozen=True)
class TapProfile:
    """A tap-delay line: delays in seconds and average tap powers (linear, summing to 1)."""

    name: str
    delays_s: tuple[float, ...]
    powers: tuple[float, ...]

    @property
    def n_taps(self) -> int:
        """Number of taps."""
        return len(self.delays_s)

    @property
    def max_delay_s(self) -> float:
        """Delay of the last tap in seconds."""
        return max(self.delays_s)

    def delays_samples(self, sample_rate: float) -> np.ndarray:
        """Tap delays in (fractional) samples at ``sample_rate``."""
        return np.asarray(self.delays_s, dtype=np.float64) * float(sample_rate)

    def draw(self, rng: np.random.Generator | None, *, fading: bool = True) -> np.ndarray:
        """Complex tap gains: Rayleigh (``CN(0, p_l)`` per tap) when ``fading``, else ``sqrt(p_l)``.

        With ``fading`` the *expected* total power is 1; each draw varies (block fading).
        """
        p = np.asarray(self.powers, dtype=np.float64)
        if not fading or (self.n_taps == 1 and self.name == "awgn"):
            return np.sqrt(p).astype(np.complex128)
        if rng is None:
            raise RadioConfigError("a fading channel draw needs an np.random.Generator")
        g = rng.standard_normal((2, p.size))
        return np.sqrt(p / 2.0) * (g[0] + 1j * g[1])


@lru_cache(maxsize=1)
def _tables() -> dict[str, dict]:
    with _DATA.open(encoding="utf-8") as fh:
        return json.load(fh)["models"]


def available_channels() -> list[str]:
    """Names accepted by :func:`channel_profile` (canonical spelling)."""
    return ["awgn", *sorted(_tables())]


def make_profile(name: str, delays_ns: list[float], powers_db: list[float]) -> TapProfile:
    """A custom tap-delay line from delays (ns) and average powers (dB); normalised to sum 1."""
    d = np.asarray(delays_ns, dtype=np.float64)
    p_db = np.asarray(powers_db, dtype=np.float64)
    if d.ndim != 1 or d.size == 0 or d.shape != p_db.shape:
        raise RadioConfigError("delays_ns and powers_db must be equal-length, non-empty lists")
    if not (np.isfinite(d).all() and np.isfinite(p_db).all()) or (d < 0).any():
        raise RadioConfigError("tap delays must be finite and >= 0 ns; powers finite dB")
    p = 10.0 ** (p_db / 10.0)
    p /= p.sum()
    return TapProfile(name, tuple(float(x) * 1e-9 for x in d), tuple(float(x) for x in p))


def channel_profile(name: str) -> TapProfile:
    """The named profile: ``awgn`` or ITU ``pedA``, ``pedB``, ``vehA``, ``vehB`` (case and dashes
    ignored, e.g. ``"Ped-B"``)."""
    if not isinstance(name, str):
        raise RadioConfigError(f"channel must be a name string, got {name!r}")
    key = _ALIASES.get(name.replace("-", "").replace("_", "").replace(" ", "").lower())
    if key is None:
        raise RadioConfigError(
            f"unknown channel {name!r}; choose one of {', '.join(available_channels())}"
        )
    if key == "awgn":
        return TapProfile("awgn", (0.0,), (1.0,))
    row = _tables()[key]
    prof = make_profile(key, row["delays_ns"], row["powers_db"])
    return prof


def interp_kernel(t: np.ndarray, half: int = INTERP_HALF) -> np.ndarray:
    """Kaiser-windowed sinc evaluated at offsets ``t`` (samples); zero for ``|t| >= half``."""
    t = np.asarray(t, dtype=np.float64)
    inside = np.abs(t) < half
    arg = np.clip(1.0 - (t / half) ** 2, 0.0, None)
    w = np.i0(_KAISER_BETA * np.sqrt(arg)) / np.i0(_KAISER_BETA)
    return np.where(inside, np.sinc(t) * w, 0.0)


def fractional_fir(
    delays: np.ndarray, gains: np.ndarray, half: int = INTERP_HALF
) -> tuple[np.ndarray, int]:
    """FIR implementing ``y(t) = sum_l gains[l] * x(t - delays[l])`` on the sample grid.

    ``delays`` are in samples (any real values). Returns ``(h, first)``: ``y[n] = sum_m h[m] *
    x[n - first - m]``. Integer delays give exact single taps.
    """
    delays = np.asarray(delays, dtype=np.float64)
    gains = np.asarray(gains, dtype=np.complex128)
    integral = np.abs(delays - np.rint(delays)) < 1e-9
    if integral.all():
        idx = np.rint(delays).astype(np.int64)
        first = int(idx.min())
        h = np.zeros(int(idx.max()) - first + 1, dtype=np.complex128)
        np.add.at(h, idx - first, gains)
        return h, first
    # Kernel weights come from the tabulated kernel (linear interpolation between 1024 phases,
    # ~1e-7 from the exact kernel): evaluating np.i0 for every burst cost more than the rest of
    # the medium when radios have sampling-clock offsets (every delay is then fractional).
    table = _kernel_table64(half)
    base = np.floor(delays)
    ph = (delays - base) * _TABLE_PHASES
    row = np.minimum(ph.astype(np.int64), _TABLE_PHASES - 1)
    a = (ph - row)[:, None]
    w = table[row] * (1.0 - a) + table[row + 1] * a        # (taps, 2*half) at m = base + o
    first = int(base.min()) - half + 1
    h = np.zeros(int(base.max()) - first + 2 * half, dtype=np.complex128)
    for b, wl, g in zip(base.astype(np.int64).tolist(), w, gains, strict=True):
        s = b - half + 1 - first
        h[s : s + 2 * half] += wl * g
    return h, first


_TABLE_PHASES = 1024


@lru_cache(maxsize=4)
def _kernel_table64(half: int) -> np.ndarray:
    """Kernel weights for fractional phases ``p / _TABLE_PHASES``, p = 0.._TABLE_PHASES (rows),
    at tap offsets ``-half+1 .. half`` (columns): row f, column o holds ``k(o - f)``, the weight
    of sample ``floor(t) + o`` for a point at ``t = floor(t) + f``. Linear interpolation between
    rows is accurate to ~1e-6, far below the kernel's own error. Read-only."""
    offs = np.arange(-half + 1, half + 1, dtype=np.float64)
    frac = np.arange(_TABLE_PHASES + 1, dtype=np.float64) / _TABLE_PHASES
    table = interp_kernel(frac[:, None] - offs[None, :], half)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=4)
def _kernel_table(half: int) -> np.ndarray:
    """:func:`_kernel_table64` in float32 (for :func:`sample_at`)."""
    table = _kernel_table64(half).astype(np.float32)
    table.setflags(write=False)
    return table


def sample_at(
    z: np.ndarray, positions: np.ndarray, half: int = INTERP_HALF, *, chunk: int = 1 << 13
) -> np.ndarray:
    """Evaluate the band-limited signal with samples ``z`` at fractional ``positions``.

    Positions outside ``[-half, len(z) + half)`` give 0 (the signal is zero outside its samples).
    Returns complex64. Uses a tabulated kernel (linear interpolation between 1024 phases).
    """
    z = np.asarray(z, dtype=np.complex64)
    pos = np.asarray(positions, dtype=np.float64)
    out = np.zeros(pos.shape, dtype=np.complex64)
    if z.size == 0 or pos.size == 0:
        return out
    table = _kernel_table(half)
    zp = np.concatenate([np.zeros(2 * half, np.complex64), z, np.zeros(2 * half + 1, np.complex64)])
    offs = np.arange(-half + 1, half + 1, dtype=np.int64)
    for s in range(0, pos.size, chunk):
        p = pos[s : s + chunk]
        i0 = np.floor(p)
        ph = (p - i0) * _TABLE_PHASES
        row = ph.astype(np.int64)
        a = (ph - row).astype(np.float32)[:, None]
        w = table[row] * (1.0 - a) + table[row + 1] * a
        idx = np.clip(i0.astype(np.int64) + 2 * half, half - 1, zp.size - half - 1)
        win = zp[idx[:, None] + offs[None, :]]
        out[s : s + chunk] = np.einsum("ij,ij->i", win, w.astype(np.complex64))
    return out


def apply_taps(x: np.ndarray, delays: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """``y[n] = sum_l gains[l] * x(n - delays[l])`` (delays in samples, fractional allowed) for
    ``n`` over the input's samples: same length as ``x``, complex64. Precursors of the
    interpolator before sample 0 and the channel tail after the last sample are cut, so pad the
    input with silence on both sides when they matter."""
    h, first = fractional_fir(np.asarray(delays, np.float64), np.asarray(gains, np.complex128))
    x = np.asarray(x, np.complex64)
    full = np.convolve(x, h.astype(np.complex64))
    out = np.zeros(x.size, np.complex64)
    # y[n] = full[n - first]
    lo = max(0, first)
    src0 = lo - first
    n = min(x.size - lo, full.size - src0)
    if n > 0:
        out[lo: lo + n] = full[src0: src0 + n]
    return out


def phase_noise(n: int, sample_rate: float, dbc_hz: float, rng: np.random.Generator, *,
                offset_hz: float = 10e3, corner_hz: float = 0.0) -> np.ndarray:
    """A local oscillator's phase (radians, float64, ``n`` samples) whose single-sideband phase
    noise is ``dbc_hz`` dBc/Hz at ``offset_hz`` and falls 20 dB per decade above ``corner_hz``.

    ``corner_hz = 0`` is a free-running oscillator (Wiener phase: increments of variance
    ``4 pi^2 f_off^2 L(f_off) / fs`` per sample, so ``L(f) = L(f_off) (f_off / f)^2``); a corner
    models a PLL that holds the phase below its loop bandwidth (first-order, Ornstein-Uhlenbeck:
    flat below the corner). Multiply a signal by ``exp(1j * phase)`` to apply it."""
    if n <= 0:
        return np.zeros(0)
    fs = float(sample_rate)
    q = 4 * np.pi**2 * offset_hz**2 * 10 ** (dbc_hz / 10) / fs
    if corner_hz > 0:
        q *= 1 + (corner_hz / offset_hz) ** 2  # keep L(offset) for the first-order roll-off
    e = rng.standard_normal(n) * np.sqrt(q)
    if corner_hz <= 0:
        return np.cumsum(e) + rng.uniform(0, 2 * np.pi)
    from scipy.signal import lfilter  # scipy.signal costs ~1 s to import: only when needed

    a = float(np.exp(-2 * np.pi * corner_hz / fs))
    return lfilter([1.0], [1.0, -a], e)


__all__ = [
    "INTERP_HALF",
    "TapProfile",
    "apply_taps",
    "available_channels",
    "channel_profile",
    "fractional_fir",
    "interp_kernel",
    "make_profile",
    "phase_noise",
    "sample_at",
]
