"""Test and benchmark channel helpers: AWGN, CFO, SFO, ITU tapped delay lines (digest §5.4).

These are simulation utilities for the PHY's own tests and PER benchmark (block fading, one
realisation per call). The full multi-radio medium simulator lives in ``hw.loopback``; nothing in
the modem imports this module. Every stochastic function takes a ``np.random.Generator``.

SNR convention: ``snr_db`` is Es/N0 per used subcarrier — the average power of a data subcarrier
at the output of the modem (``modem.scale**2``) over the complex noise variance per FFT bin, which
with ``x = sqrt(NFFT) ifft(X)`` equals the time-domain noise variance.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np


def _load_tdl() -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    raw = json.loads(resources.files("phy.data").joinpath("itu_m1225.json").read_text("utf-8"))
    return {k: (tuple(v["delays_ns"]), tuple(v["powers_db"])) for k, v in raw["models"].items()}


#: ITU-R M.1225 tapped delay lines: name -> (delays ns, powers dB), from phy/data/itu_m1225.json
#: [digest §5.4, S27]. Veh-B exceeds the 1/8 CP at 5.6 MS/s (expect an error floor).
TDL: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = _load_tdl()


def noise_variance_for(snr_db: float, scale: float = 1.0) -> float:
    """Complex time-domain noise variance for Es/N0 ``snr_db`` at TX scale ``scale``."""
    return scale**2 / 10 ** (snr_db / 10)


def awgn(x: np.ndarray, noise_var: float, rng: np.random.Generator) -> np.ndarray:
    """Add circular complex Gaussian noise of variance ``noise_var`` (complex64 out)."""
    n = rng.standard_normal((x.size, 2), dtype=np.float32) * np.float32(np.sqrt(noise_var / 2))
    return (x + n.view(np.complex64).ravel()).astype(np.complex64)


def cfo(x: np.ndarray, offset_hz: float, sample_rate: float, phase: float = 0.0) -> np.ndarray:
    """Rotate by a carrier offset (receiver LO lower than the transmitter's by ``offset_hz``)."""
    n = np.arange(x.size)
    return (x * np.exp(1j * (2 * np.pi * offset_hz / sample_rate * n + phase))).astype(np.complex64)


def sfo(x: np.ndarray, ppm: float, taps: int = 32) -> np.ndarray:
    """Resample as seen by a receiver whose sample clock is ``ppm`` fast: output sample ``m`` is
    the input at time ``m * (1 - ppm*1e-6)`` (windowed-sinc interpolation, ``taps`` taps)."""
    ratio = 1.0 - ppm * 1e-6
    n_out = int(np.floor((x.size - 1) / ratio)) + 1
    t = np.arange(n_out) * ratio
    i0 = np.floor(t).astype(np.int64)
    frac = t - i0
    half = taps // 2
    out = np.zeros(n_out, dtype=np.complex128)
    xp = np.concatenate([np.zeros(half, x.dtype), x, np.zeros(half + 1, x.dtype)])
    for k in range(-half + 1, half + 1):
        d = k - frac
        w = np.sinc(d) * (0.5 + 0.5 * np.cos(np.pi * d / (half + 1)))
        out += w * xp[i0 + k + half]
    return out.astype(np.complex64)


def tdl_impulse_response(model: str, sample_rate: float, rng: np.random.Generator,
                         taps_per_side: int = 8) -> np.ndarray:
    """One Rayleigh block-fading realisation of an ITU TDL as a sampled FIR (complex64), with
    fractional delays by windowed sinc; average total power 1 (tap powers normalised)."""
    delays_ns, powers_db = TDL[model]
    p = 10 ** (np.asarray(powers_db) / 10)
    p = p / p.sum()
    g = (rng.standard_normal(p.size) + 1j * rng.standard_normal(p.size)) * np.sqrt(p / 2)
    d = np.asarray(delays_ns) * 1e-9 * sample_rate
    n = int(np.ceil(d.max())) + 2 * taps_per_side + 1
    t = np.arange(n) - taps_per_side
    h = np.zeros(n, np.complex128)
    for gi, di in zip(g, d, strict=True):
        u = t - di
        win = np.where(np.abs(u) <= taps_per_side,
                       0.5 + 0.5 * np.cos(np.pi * u / (taps_per_side + 1)), 0.0)
        h += gi * np.sinc(u) * win
    return h.astype(np.complex64)


def multipath(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Convolve with an FIR channel (output as long as the input plus the channel tail)."""
    return np.convolve(x, h).astype(np.complex64)
