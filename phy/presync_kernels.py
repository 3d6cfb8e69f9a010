"""numba kernel of the receiver's front end: every preamble candidate of a buffer from its
coarse start to its timing, carrier offset, preamble windows, LS channel, noise and delay window,
in one call (:meth:`phy.modem_rx.ReceiverCore._presync`).

That path was some thirty Python-level steps per candidate between a dozen compiled ones (the
S&C phase, a window's gather and transform, the integer-CFO search, the fine-timing
correlation, the preamble's windows, the LS estimate, the delay profile), and the steps between
cost more than the kernels (docs/phy.md, "Session 17"). Here the same kernels run back to back
in compiled code, with the transforms done by rocket-fft, which makes ``numpy.fft`` callable
from numba on the pocketfft that ``scipy.fft`` runs.

The transforms are taken one candidate at a time (a window's single row, the candidate's
preamble rows, its delay profile): per candidate, never across candidates, so a candidate's
values do not depend on the others in its buffer. At 256 points (profile P2.5) they equal
``scipy.fft``'s bit for bit; at 512 points and more rocket-fft's build differs from scipy's in
the last bits of some rows (tests/phy/test_presync_kernel.py pins both).

numba caches a kernel by the hash of its own file only, and this one links in kernels of
:mod:`phy.sync_kernels` and :mod:`phy.channel_kernels`: :data:`DEPS_SHA256` pins those files,
and a test fails until the pin is updated, which changes this file and so its cache key.
"""

from __future__ import annotations

import numpy as np
import rocket_fft  # noqa: F401 - registers numpy.fft for numba (the transforms below)
from numba import njit

from phy.channel_kernels import gather_windows, pdp_window, place_conj, preamble_estimate
from phy.sync_kernels import cp_corr, diff_corr, first_path

DEPS_SHA256 = {
    "channel_kernels.py": "5915eb7348ed6e3bb4e039c90b4c56398eeb62eb1b9e208e78965d5eb21ae8ce",
    "sync_kernels.py": "e0d9530974a0d5099d7857dae06492627b148178f05e6b2138f20174b25d18b7",
}
"""SHA-256 of the files whose kernels this module's kernel links in (see the module doc)."""

SKIPPED, TIMED, WINDOWED, ESTIMATED = 0, 1, 2, 3
"""How far :func:`presync` got with a candidate: too close to the buffer's end (left out);
timing and carrier offset only (the preamble's windows leave the buffer); windows but no
usable estimate (non-finite or zero power); everything."""


@njit(cache=True, nogil=True)
def presync(r: np.ndarray, cands: np.ndarray, geom: np.ndarray, consts: np.ndarray,
            used_bins: np.ndarray, cfo_shifts: np.ndarray, cfo_c: np.ndarray,
            x_shifted: np.ndarray, taps: np.ndarray, long_inv: np.ndarray, sc_inv: np.ndarray,
            even: np.ndarray, odd: np.ndarray, pdp_bins: np.ndarray,
            pdp_w: np.ndarray):  # pragma: no cover - numba
    """Pre-synchronise the (distinct) candidates ``cands`` (int64) of the DC-free complex64
    buffer ``r``.

    ``geom`` (int64): NFFT, CP, symbol length, back-off, most preamble rows, negative used
    bins, the fine-timing search's first delay and look-back, the delay search's ends;
    ``consts`` (float64): sample rate, subcarrier spacing, the first-path threshold, the
    channel power floor (of the total), the LS noise factor, the delay profile's relative
    threshold, its taper's energy and its noise margin (a factor). The tables are the
    receiver's: used bins, the integer-CFO shifts and ``conj(X_k) X_k+1``, the long symbol
    shifted by each integer CFO (rows), the fine-timing taps, ``1 / X`` of both preamble
    symbols, the S&C symbol's even and odd subcarriers, the delay profile's bins and taper.

    Returns ``(ints, reals, Y, H)``: per candidate (rows) ``ints`` (int64) the state
    (:data:`SKIPPED` .. :data:`ESTIMATED`), the integer CFO (bins), the long symbol's start,
    the first row of its preamble windows in ``Y`` and their count; ``reals`` (float64) the
    fractional CFO (Hz), the S&C phase sum (real, imaginary), the channel power, the noise
    variance (floored) and the delay window's ends (samples, margin added); ``Y`` every
    candidate's preamble windows (rows), ``H`` their LS estimates (rows). A few arrays of few
    types: each distinct allocation is compiled on its own (a cold start)."""
    n, ng, ns, backoff, max_rows = geom[0], geom[1], geom[2], geom[3], geom[4]
    n_neg, d_lo, back, p_lo, p_hi = geom[5], geom[6], geom[7], geom[8], geom[9]
    fs, df, rel_fp, floor_rel = consts[0], consts[1], consts[2], consts[3]
    ls_nf, pdp_rel, pdp_ww, pdp_db = consts[4], consts[5], consts[6], consts[7]
    k = cands.size
    lag = n // 2
    ints = np.zeros((k, 5), np.int64)  # state, ib, t_long, first row, rows
    reals = np.zeros((k, 7))  # frac, rot (re, im), power, sigma2, window (first, last)
    total_rows = 0
    v = np.empty(n, np.complex64)
    for i in range(k):
        coarse = max(cands[i], 0)
        if coarse + 3 * ns + 2 * ng > r.size:
            continue
        t0 = coarse + ns + ng - ng // 4
        p = cp_corr(r, coarse + ng // 2, 1, 0, lag, 0, lag)[0]
        f = np.arctan2(p.imag, p.real) * fs / (2 * np.pi * lag)
        w = gather_windows(r, t0, 1, 0, n, 2 * np.pi * f / fs)
        yl = np.fft.fft(w[0])
        metric = diff_corr(yl, used_bins, cfo_c, cfo_shifts)
        g = 0  # the first maximum, or the first NaN, as np.argmax
        if not np.isnan(metric[0]):
            for j in range(1, metric.size):
                if np.isnan(metric[j]):
                    g = j
                    break
                if metric[j] > metric[g]:
                    g = j
        xs = x_shifted[g]
        for j in range(n):
            v[j] = np.conj(yl[j]) * xs[j]
        c = np.fft.fft(v)
        tl = t0 + d_lo + first_path(c, taps, back, rel_fp)
        ints[i, 0] = TIMED
        ints[i, 1] = cfo_shifts[g]
        ints[i, 2] = tl
        reals[i, 0] = f
        if tl - ns - ng >= 0 and tl + 2 * ns - ng <= r.size:
            fit = (r.size - n - tl + ns + backoff) // ns + 1
            ints[i, 3] = total_rows
            ints[i, 4] = max(3, min(max_rows, fit))
            total_rows += ints[i, 4]
    n_used = long_inv.size
    Y = np.empty((total_rows, n_used), np.complex64)
    H = np.zeros((k, n_used), np.complex64)
    n_pos = n_used - n_neg
    for i in range(k):
        rows = ints[i, 4]
        if rows == 0:
            continue
        ints[i, 0] = WINDOWED
        w = gather_windows(r, ints[i, 2] - ns - backoff, rows, ns, n,
                           2 * np.pi * (reals[i, 0] + ints[i, 1] * df) / fs)
        fw = np.fft.fft(w, norm="ortho")
        yc = Y[ints[i, 3]: ints[i, 3] + rows]
        for q in range(rows):  # the used bins: the negative frequencies, then the positive
            for j in range(n_neg):
                yc[q, j] = fw[q, n - n_neg + j]
            for j in range(n_pos):
                yc[q, n_neg + j] = fw[q, 1 + j]
        h, rt, tot, noise = preamble_estimate(yc[0], yc[1], long_inv, sc_inv, even, odd)
        if not (np.isfinite(tot) and tot > 0.0):
            continue
        s2 = max(noise, tot * floor_rel)
        if not (np.isfinite(s2) and s2 > 0.0):
            continue
        prof = np.fft.fft(place_conj(h, pdp_bins, pdp_w, n))
        lo, hi = pdp_window(prof, p_lo, p_hi, pdp_rel, s2 * ls_nf * pdp_ww * pdp_db)
        ints[i, 0] = ESTIMATED
        for j in range(n_used):  # element by element: a row assignment compiles a shape check
            H[i, j] = h[j]
        reals[i, 1] = rt.real
        reals[i, 2] = rt.imag
        reals[i, 3] = tot
        reals[i, 4] = s2
        reals[i, 5] = float(lo) - 1.0
        reals[i, 6] = float(hi) + 1.0
    return ints, reals, Y, H
