"""Burst preamble and synchronisation (digest §2.2, §2.3).

The preamble is two OFDM symbols with normal CP:

1. **S&C symbol** — QPSK PN on the used subcarriers with even ``freq_index`` (odd ones null),
   scaled by sqrt(2): in time two identical halves of ``L = NFFT/2``. Used for detection
   (Schmidl-Cox metric), coarse timing, fractional CFO (range +-df) and the noise estimate (the
   null odd subcarriers).
2. **Long symbol** — a PN-QPSK sequence (PRBS ``1 + x^14 + x^15``) on all used subcarriers
   (constant modulus, so LS noise is uniform). Not Zadoff-Chu: a ZC sequence's adjacent-subcarrier
   product is a pure linear phase, which makes the differential integer-CFO metric below blind to
   the shift. Uses: integer CFO (differential correlation over shifts of 2 bins; default
   search +-12 bins = +-131 kHz), fine timing (matched filter, first path), LS channel estimate.

Detection metric: ``M(d) = |P(d)|^2 / (E1(d) E2(d))`` with ``P`` the lag-L autocorrelation and
``E1``, ``E2`` the energies of the two halves (Cauchy-Schwarz bounded by 1; the symmetric
normalisation keeps burst edges from looking like preambles). It is evaluated on a grid of
``B = Ng/4`` samples from block sums computed by one numba pass
(:func:`phy.sync_kernels.sc_blocks`).
"""

from __future__ import annotations

import cmath
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft as sp_fft

from phy.grid import _C64, ResourceGrid, fft_rows
from phy.kernels import cp_corr, diff_corr, first_path, prbs, sc_metric
from phy.sync_kernels import sc_plateaus

DETECT_THRESHOLD = 0.3
INT_CFO_MAX_BINS = 12
FIRST_PATH_DB = -10.0
"""Fine timing takes the earliest path this far (dB) below the correlation's peak, or stronger."""


@lru_cache(maxsize=16)
def _preamble(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    grid = ResourceGrid(name)
    even = (grid.freq_index % 2) == 0
    bits = prbs(np.array([1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1], np.uint8), 9, 2 * grid.n_used)
    q = ((1 - 2.0 * bits[0::2]) + 1j * (1 - 2.0 * bits[1::2])) / np.sqrt(2)
    sc = np.where(even, np.sqrt(2) * q, 0).astype(np.complex64)
    lb = prbs(np.array([0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1], np.uint8), 14,
              2 * grid.n_used)
    zc = (((1 - 2.0 * lb[0::2]) + 1j * (1 - 2.0 * lb[1::2])) / np.sqrt(2)).astype(np.complex64)
    long_t = np.fft.ifft(_full(grid, zc)) * np.sqrt(grid.nfft)
    for a in (sc, zc, even):
        a.setflags(write=False)
    long_t = long_t.astype(np.complex64)
    long_t.setflags(write=False)
    return sc, zc, even, long_t


def _full(grid: ResourceGrid, x: np.ndarray) -> np.ndarray:
    f = np.zeros(grid.nfft, np.complex64)
    f[grid.used_bins] = x
    return f


@dataclass(frozen=True)
class Preamble:
    """Frequency-domain preamble values for one profile (ordered along ``grid.used_bins``)."""

    sc: np.ndarray  # S&C symbol, zero on odd freq_index
    long: np.ndarray  # PN-QPSK long symbol
    even: np.ndarray  # bool mask of the S&C's occupied subcarriers
    long_time: np.ndarray  # useful part of the long symbol in time (NFFT samples, unscaled)

    @classmethod
    def for_grid(cls, grid: ResourceGrid) -> Preamble:
        return cls(*_preamble(grid.profile.name))


def _block(grid: ResourceGrid) -> int:
    """Samples between two points of :func:`detect`'s metric: a quarter CP (at least 4), a
    divisor of half the FFT length."""
    lag = grid.nfft // 2
    blk = max(grid.cp // 4, 4)
    while lag % blk:
        blk //= 2
    return blk


def detect(r: np.ndarray, grid: ResourceGrid, threshold: float = DETECT_THRESHOLD) -> list[int]:
    """Coarse burst starts (sample index of the S&C symbol's CP) of every preamble in ``r``.

    Evaluates the Schmidl-Cox metric every ``B`` samples, groups runs above ``threshold`` and
    returns, per run, the middle of the plateau (M >= 0.8 max) minus Ng/2.
    """
    lag, blk = grid.nfft // 2, _block(grid)
    if r.size < 2 * lag + blk:
        return []
    return sc_plateaus(sc_metric(r, lag, blk), float(threshold), blk, grid.cp).tolist()


def detect_in(r: np.ndarray, grid: ResourceGrid, spans: Iterable[tuple[int, int]],
              threshold: float = DETECT_THRESHOLD) -> list[int]:
    """:func:`detect` of the preambles whose burst may start in ``spans`` (``(lo, hi)``
    samples of ``r``, inclusive): the metric only over each span widened by what a preamble's
    run above the threshold reaches (an FFT length before its start, a CP and two FFT lengths
    after), on :func:`detect`'s block grid -- so a burst starting in a span gets the candidate
    :func:`detect` gives it, for a fraction of the work when the spans are a small part of
    ``r`` (a receiver that knows where its zones' bursts can start). Widened spans that
    overlap are one; candidates in order, each once."""
    n, ng = grid.nfft, grid.cp
    lag, blk = n // 2, _block(grid)
    parts: list[list[int]] = []
    for lo, hi in sorted(spans):
        a = max(0, lo - n)
        a -= a % blk
        b = min(r.size, hi + ng + 2 * n)
        if parts and a <= parts[-1][1]:
            parts[-1][1] = max(parts[-1][1], b)
        elif b > a:
            parts.append([a, b])
    out: list[int] = []
    for a, b in parts:
        if b - a >= 2 * lag + blk:
            out += [a + c for c in sc_plateaus(sc_metric(r[a:b], lag, blk), float(threshold),
                                                blk, ng).tolist()]
    return out


def fractional_cfo(r: np.ndarray, d: int, grid: ResourceGrid) -> float:
    """Fractional CFO in Hz from the S&C halves at window start ``d`` (range +-df)."""
    lag = grid.nfft // 2
    P = complex(cp_corr(r, d, 1, 0, lag, 0, lag)[0])  # sum conj(r[d+m]) r[d+m+lag], float64
    return cmath.phase(P) * grid.profile.sample_rate / (2 * np.pi * lag)


def integer_cfo_bins(Yfull: np.ndarray, grid: ResourceGrid, pre: Preamble,
                     max_bins: int = INT_CFO_MAX_BINS) -> int:
    """Integer CFO (in bins, even) from the full-FFT long symbol after fractional correction.

    Differential correlation ``|sum_k Y(k+g) Y*(k+1+g) X*(k) X(k+1)|`` over the used pairs,
    insensitive to the linear phase ramp of a timing error."""
    shifts, c = _int_cfo_tables(pre.long, max_bins)
    if Yfull.dtype != _C64 or not Yfull.flags.c_contiguous:
        Yfull = np.ascontiguousarray(Yfull, np.complex64)
    metric = diff_corr(Yfull, grid.used_bins, c, shifts)
    return int(shifts[int(metric.argmax())])


_INT_CFO_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _int_cfo_tables(long: np.ndarray, max_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The candidate shifts and ``conj(X_k) X_{k+1}`` of a long preamble, made once per
    preamble (the cache keeps the preamble array, so its id is not reused while cached)."""
    key = (id(long), max_bins)
    hit = _INT_CFO_CACHE.get(key)
    if hit is None or hit[0] is not long:
        shifts = np.arange(-(max_bins // 2), max_bins // 2 + 1, dtype=np.int64) * 2
        c = (np.conj(long[:-1]) * long[1:]).astype(np.complex64)
        if len(_INT_CFO_CACHE) >= 32:
            _INT_CFO_CACHE.clear()
        hit = _INT_CFO_CACHE[key] = (long, shifts, c)
    return hit[1], hit[2]


_REF_CACHE: dict[tuple[int, int], np.ndarray] = {}


def _ref_spectrum(pre: Preamble, nf: int) -> np.ndarray:
    key = (id(pre.long_time), nf)
    spec = _REF_CACHE.get(key)
    if spec is None:
        spec = np.conj(sp_fft.fft(pre.long_time, nf)).astype(np.complex64)
        _REF_CACHE[key] = spec
    return spec


def fine_timing(seg: np.ndarray, pre: Preamble, first_path_db: float = FIRST_PATH_DB) -> int:
    """Offset in ``seg`` where the long symbol's useful part starts (first path).

    ``seg`` must be CFO-corrected and hold ``NFFT + 2W`` samples; the matched filter is evaluated
    at the ``2W + 1`` lags; the earliest lag within Ng/2 before the peak whose power is above
    ``first_path_db`` of the peak is returned (earliest significant path)."""
    n = pre.long_time.size
    nlag = seg.size - n + 1
    # circular correlation is exact for lags 0..nlag-1 once nf >= len(seg) (m + lag never
    # wraps), so a fast length just above the segment is enough (not 2x for linear)
    nf = sp_fft.next_fast_len(seg.size, True)
    c = sp_fft.ifft(sp_fft.fft(seg.astype(np.complex64), nf) * _ref_spectrum(pre, nf))[:nlag]
    pw = c.real**2 + c.imag**2
    pk = int(np.argmax(pw))
    lo = max(0, pk - n // 16)
    cand = np.flatnonzero(pw[lo: pk + 1] >= pw[pk] * 10 ** (first_path_db / 10))
    return lo + int(cand[0])


_TIMING_CACHE: dict[tuple[int, int, int, int, int],
                    tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _timing_tables(pre: Preamble, grid: ResourceGrid, d_lo: int, d_hi: int, shift: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``X_long`` on the full FFT grid (zero off the used bins, complex64) moved up by
    ``shift`` bins (circularly), and the FFT-output index of each delay ``d_lo .. d_hi``
    (``d mod NFFT``); made once per preamble, search range and shift (the cache keeps the
    preamble array, so its id is not reused while cached)."""
    n = grid.nfft
    key = (id(pre.long), n, d_lo, d_hi, shift)
    hit = _TIMING_CACHE.get(key)
    if hit is None or hit[0] is not pre.long:
        x_full = np.zeros(n, np.complex64)
        x_full[(grid.used_bins + shift) % n] = pre.long
        taps = np.arange(d_lo, d_hi + 1, dtype=np.int64) % n
        for a in (x_full, taps):
            a.setflags(write=False)
        if len(_TIMING_CACHE) >= 256:
            _TIMING_CACHE.clear()
        hit = _TIMING_CACHE[key] = (pre.long, x_full, taps)
    return hit[1], hit[2]


def fine_timing_spectrum(Yfull: np.ndarray, shift: int, grid: ResourceGrid, pre: Preamble,
                         d_lo: int, d_hi: int, first_path_db: float = FIRST_PATH_DB) -> int:
    """Where the long symbol's useful part starts, relative to the start of the FFT window
    whose spectrum is ``Yfull`` (NFFT bins, fractional CFO removed, the long symbol's integer
    CFO ``shift`` bins still in it): the earliest significant path of the circular
    cross-correlation with the long symbol, searched over delays ``d_lo .. d_hi`` samples.

    ``IFFT(Y(k + shift) conj(X(k)))`` over the used bins is the matched filter of
    :func:`fine_timing` evaluated circularly, from the spectrum the integer-CFO search has
    already taken (one inverse FFT instead of a forward and an inverse one of NFFT + 2 Ng
    samples). Where the window starts inside the long symbol's CP (``0 <= d <= Ng``), the
    window is a cyclic shift of the symbol and the two are the same correlation; a delay
    ``d < 0`` (window late) shows at ``NFFT + d``. First path as in :func:`fine_timing`: the
    earliest delay within NFFT/16 before the peak whose power is above ``first_path_db`` of
    the peak."""
    n = Yfull.size
    x_shifted, taps = _timing_tables(pre, grid, d_lo, d_hi, shift)
    # |IFFT(Y(k + s) conj X(k))| = |FFT(conj(Y(k)) X(k - s))| / NFFT (a circular shift of the
    # product only turns the output's phase), and only powers are compared: the forward
    # transform of conj(Y) times the shifted X (pocketfft's backward transform took half as
    # long again, and np.roll of Y a third of the rest)
    v = np.conjugate(Yfull)
    v *= x_shifted
    c = fft_rows(v, overwrite=True)
    return d_lo + first_path(c, taps, n // 16, 10 ** (first_path_db / 10))


def long_symbol_timing(Yl: np.ndarray, grid: ResourceGrid, pre: Preamble, d_lo: int, d_hi: int,
                       first_path_db: float = FIRST_PATH_DB) -> tuple[int, int]:
    """:func:`integer_cfo_bins` and :func:`fine_timing_spectrum` of one window's spectrum
    ``Yl`` (1, NFFT) complex64, the same two numbers (the integer CFO in bins and the long
    symbol's start relative to the window) by the same operations, in one call: the step the
    receiver's compiled front end (:func:`phy.presync_kernels.presync`) takes per candidate,
    and what tests check it against."""
    shifts, c = _int_cfo_tables(pre.long, INT_CFO_MAX_BINS)
    metric = diff_corr(Yl[0], grid.used_bins, c, shifts)
    ib = int(shifts[int(metric.argmax())])
    x_shifted, taps = _timing_tables(pre, grid, d_lo, d_hi, ib)
    V = np.conjugate(Yl)
    V *= x_shifted
    C = fft_rows(V, overwrite=True)
    return ib, d_lo + first_path(C[0], taps, grid.nfft // 16, 10 ** (first_path_db / 10))
