"""Measurements of a transmitted signal: PSD at the Nyquist edge, PAPR CCDF, clipping, TX EVM.

Used by ``benchmarks/modem.py --spectrum`` and the PHY tests; each takes plain sample arrays and
the :class:`phy.ResourceGrid` they follow.
"""

from __future__ import annotations

import numpy as np

from phy.grid import ResourceGrid


def psd_edge_db(x: np.ndarray, grid: ResourceGrid) -> float:
    """PSD at the Nyquist edge relative to the used band (dB): Welch (Hann, ``4 NFFT`` per
    segment, two-sided); the edge is the mean over the last subcarrier spacing below
    ``fs/2`` on both sides, the band the mean over 95 % of the used band."""
    from scipy.signal import welch  # scipy.signal costs ~1 s to import: only here

    f, p = welch(np.asarray(x, np.complex64), fs=1.0, window="hann", nperseg=4 * grid.nfft,
                 return_onesided=False)
    top = float(np.abs(grid.freq_index).max()) / grid.nfft
    inband = float(np.mean(p[np.abs(f) < 0.95 * top]))
    edge = float(np.mean(p[np.abs(f) >= 0.5 - 1.0 / grid.nfft]))
    return 10 * float(np.log10(max(edge, 1e-30) / inband))


def symbol_papr_db(x: np.ndarray, grid: ResourceGrid) -> np.ndarray:
    """Per-symbol PAPR (dB) of a burst of whole symbols: each symbol's peak power over the
    burst's mean power."""
    s = np.asarray(x, np.complex64).reshape(-1, grid.symbol_samples)
    p = s.real**2 + s.imag**2
    return 10 * np.log10(p.max(axis=1) / float(np.mean(p)))


def ccdf(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Fraction of ``values`` above each of ``levels``."""
    v = np.sort(np.asarray(values, np.float64))
    return 1.0 - np.searchsorted(v, np.asarray(levels, np.float64), side="right") / v.size


def clip_fraction(x: np.ndarray, level: float = 1.0) -> float:
    """Fraction of samples whose magnitude exceeds ``level`` (full scale 1.0)."""
    a = np.asarray(x, np.complex64)
    return float(np.count_nonzero(a.real**2 + a.imag**2 > level * level)) / max(a.size, 1)


def tx_evm_db(shaped: np.ndarray, bare: np.ndarray, grid: ResourceGrid, backoff: int) -> float:
    """What shaping costs the receiver: the error (dB) of the used subcarriers in every FFT
    window (placed as the receiver places them, ``backoff`` samples early) of a shaped burst
    against the same burst unshaped, after the best one-tap-per-subcarrier gain (which any
    channel estimate absorbs)."""
    ns, n = grid.symbol_samples, grid.nfft
    s0 = grid.cp - backoff
    a = grid.ofdm_demodulate(np.asarray(shaped, np.complex64).reshape(-1, ns)[:, s0: s0 + n])
    b = grid.ofdm_demodulate(np.asarray(bare, np.complex64).reshape(-1, ns)[:, s0: s0 + n])
    g = np.sum(a * np.conj(b), axis=0) / np.maximum(np.sum(np.abs(b) ** 2, axis=0), 1e-30)
    err = float(np.mean(np.abs(a - g * b) ** 2)) / float(np.mean(np.abs(b) ** 2))
    return 10 * float(np.log10(max(err, 1e-30)))
