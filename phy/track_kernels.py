"""numba kernels of pilot phase tracking: common phase and sampling-offset drift per symbol.

Apart from :mod:`phy.kernels` (the transmit and bit-level kernels) because following the
carrier phase and the sampling-clock drift over a burst's symbols is a job of its own, with
three estimators of the same model sharing their last step; the equaliser that applies the
result is :func:`phy.channel_kernels.equalize`. The conventions are those of
:mod:`phy.kernels`: one call per batch, ``cache=True``, one signature per kernel, a naive twin
in ``tests/phy/naive.py``. numba caches a kernel by the hash of its own file only, so the
trackers' ``@njit`` helpers (:func:`_cpe_given_slope`, :func:`_cis_ramp`) live here with them.
Compiled from bytecode, so the fuzz workers leave this module uninstrumented
(``tests/fuzz/_core.py``, ``NUMBA_MODULES``). :mod:`phy.kernels` re-exports every name
defined here.

* :func:`track_phase` — pilot CPE / SFO-slope model per symbol.
* :func:`track_phase_prior` — the same model with the drift shrunk towards 0 by a prior (the
  first few symbols of a burst: zone header and A-MAP).
* :func:`track_phase_wls` — the same model by weighted least squares on the pilot phases
  (pilots in a fade count for little), with a prior on the drift.
* :func:`phase_trend` — the least-squares trend of the per-symbol common phases (residual
  carrier offset).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _cpe_given_slope(z: np.ndarray, ls: np.ndarray, pil_pos: np.ndarray, fidx: np.ndarray,
                     c: float):  # pragma: no cover - numba
    """Per symbol, the phase slope ``c * (l + 1)`` and the common phase of the pilots ``z``
    once that slope is removed: the last step of every drift tracker below."""
    n_sym, n_p = z.shape
    cpe = np.empty(n_sym)
    bl = np.empty(n_sym)
    rr = np.empty(n_p)
    ri = np.empty(n_p)
    for l in range(n_sym):
        bl[l] = c * (ls[l] + 1.0)
        _cis_ramp(fidx, pil_pos[l], bl[l], rr, ri)
        acc = 0j
        for i in range(n_p):
            acc += z[l, i] * complex(rr[i], ri[i])
        cpe[l] = np.arctan2(acc.imag, acc.real)
    return cpe, bl


@njit(cache=True, nogil=True)
def _cis_ramp(fidx: np.ndarray, pos: np.ndarray, a: float, rr: np.ndarray,
              ri: np.ndarray) -> None:  # pragma: no cover - numba
    """``exp(-j a fidx[pos[i]])`` into ``rr``, ``ri`` for increasing positions ``pos``: exact
    at the first, then each from the previous times ``exp(-j a step)``, the factor computed
    once per distinct step (pilots are evenly spaced but across DC: two or three sin/cos
    pairs per symbol instead of one per pilot)."""
    n = pos.size
    if n == 0:
        return
    f0 = fidx[pos[0]]
    pr, pi = np.cos(a * f0), -np.sin(a * f0)
    rr[0] = pr
    ri[0] = pi
    last = np.nan
    sr = 1.0
    si = 0.0
    for i in range(1, n):
        f1 = fidx[pos[i]]
        step = f1 - f0
        if step != last:
            sr, si = np.cos(a * step), -np.sin(a * step)
            last = step
        pr, pi = pr * sr - pi * si, pr * si + pi * sr
        rr[i] = pr
        ri[i] = pi
        f0 = f1


@njit(cache=True, nogil=True, inline="always")
def _pilot_products(z: np.ndarray, Y: np.ndarray, H: np.ndarray, pil_pos: np.ndarray,
                    pil_val: np.ndarray, fidx: np.ndarray,
                    l: int) -> tuple[complex, float]:  # pragma: no cover - numba
    """Symbol ``l``'s pilots de-rotated by the channel, ``z[l] = Y conj(H) p`` (written in
    place), the sum of their adjacent products ``sum z[i+1] conj(z[i])`` and the subcarrier
    span of the pilots: the slope measurement both drift fits start from."""
    n_p = pil_pos.shape[1]
    for i in range(n_p):
        k = pil_pos[l, i]
        z[l, i] = Y[l, k] * np.conj(H[k]) * pil_val[l, i]
    s = 0j
    for i in range(1, n_p):
        s += z[l, i] * np.conj(z[l, i - 1])
    return s, fidx[pil_pos[l, n_p - 1]] - fidx[pil_pos[l, 0]]


@njit(cache=True, nogil=True)
def track_phase(Y: np.ndarray, H: np.ndarray, ls: np.ndarray, pil_pos: np.ndarray,
                pil_val: np.ndarray, fidx: np.ndarray):  # pragma: no cover - numba
    """Per-symbol pilot phase model ``phase_l(k) = cpe_l + slope_l * k``.

    ``Y`` (n_sym, n_used) complex64; ``H`` (n_used,) complex64; ``ls`` (n_sym,) int64 symbol
    numbers (header 0); ``pil_pos`` (n_sym, n_pilot) int64; ``pil_val`` (n_sym, n_pilot) float32;
    ``fidx`` (n_used,) float64. With ``Z = Y conj(H) p`` on the pilots, the per-symbol slope is
    ``angle(sum Z[i+1] conj(Z[i])) / mean pilot spacing``; slopes are fitted (weights
    ``|sum|``) to the drift model ``c * (l + 1)`` (time since the long symbol); then
    ``cpe_l = angle(sum Z exp(-j slope_l k))``. Returns ``(cpe, slope, c)`` float64.
    """
    n_sym, n_p = pil_pos.shape
    z = np.empty((n_sym, n_p), dtype=np.complex128)
    b = np.empty(n_sym)
    wgt = np.empty(n_sym)
    for l in range(n_sym):
        s, span = _pilot_products(z, Y, H, pil_pos, pil_val, fidx, l)
        b[l] = np.arctan2(s.imag, s.real) / (span / (n_p - 1))
        wgt[l] = abs(s)
    num = 0.0
    den = 0.0
    for l in range(n_sym):
        x = ls[l] + 1.0
        num += wgt[l] * b[l] * x
        den += wgt[l] * x * x
    c = num / den if den > 0 else 0.0
    cpe, bl = _cpe_given_slope(z, ls, pil_pos, fidx, c)
    return cpe, bl, c


@njit(cache=True, nogil=True)
def track_phase_prior(Y: np.ndarray, H: np.ndarray, ls: np.ndarray, pil_pos: np.ndarray,
                      pil_val: np.ndarray, fidx: np.ndarray, rho: float,
                      c_var: float):  # pragma: no cover - numba
    """:func:`track_phase` with the drift ``c`` estimated by MMSE under a zero-mean prior of
    variance ``c_var`` instead of by weighted least squares.

    The per-symbol slope ``b_l`` is measured as in :func:`track_phase`; its noise variance is
    taken as ``(1/rho + (P-1)/rho^2) / span_l^2`` (``rho`` the pilot SNR, P pilots spanning
    ``span_l`` subcarriers: the signal-noise terms of the adjacent-pilot products telescope, the
    noise-noise terms do not), so ``c = sum(w b x) / (sum(w x^2) + 1/c_var)`` with ``x = l + 1``
    and ``w = 1/var(b_l)``. Same arguments (plus ``rho``, ``c_var``) and returns as
    :func:`track_phase`.
    """
    n_sym, n_p = pil_pos.shape
    z = np.empty((n_sym, n_p), dtype=np.complex128)
    num = 0.0
    den = 1.0 / c_var
    for l in range(n_sym):
        s, span = _pilot_products(z, Y, H, pil_pos, pil_val, fidx, l)
        b = np.arctan2(s.imag, s.real) / (span / (n_p - 1))
        w = rho * rho * span * span / (rho + n_p - 1)
        x = ls[l] + 1.0
        num += w * b * x
        den += w * x * x
    c = num / den
    cpe, bl = _cpe_given_slope(z, ls, pil_pos, fidx, c)
    return cpe, bl, c


@njit(cache=True, nogil=True)
def track_phase_wls(Y: np.ndarray, H: np.ndarray, ls: np.ndarray, pil_pos: np.ndarray,
                    pil_val: np.ndarray, fidx: np.ndarray, sigma2: float,
                    c_var: float):  # pragma: no cover - numba
    """Pilot phase model ``phase_l(k) = cpe_l + c (l + 1) k`` by weighted least squares on the
    pilot phases, with a zero-mean prior of variance ``c_var`` on the drift ``c``.

    With ``z = Y conj(H) p`` on the pilots, each pilot's phase has variance ``sigma2 / (2 |H|^2
    p^2)``, so its weight is ``w = 2 |H|^2 p^2 / sigma2``: pilots in a fade count for little
    (the adjacent-pilot products of :func:`track_phase` weigh them like the rest, which makes
    the slope 4x noisier on a two-path channel). Symbols are taken in order (recursive least
    squares): the phases of symbol ``l`` are taken relative to the model so far (slope
    ``c x k``, ``x = l + 1``, then the common phase), so late symbols of a long burst whose
    edge phase has drifted past pi do not wrap; the residual ``psi`` is regressed on ``k``
    minus its weighted mean and ``c = sum w x (k - kbar) (psi + c_prev x (k - kbar)) /
    (sum w x^2 (k - kbar)^2 + 1 / c_var)``. Finally ``cpe_l = angle(sum z exp(-j c x k))``.
    Same arguments as :func:`track_phase` plus ``sigma2`` (noise variance per subcarrier) and
    ``c_var``; returns ``(cpe, slope, c)`` float64.
    """
    n_sym, n_p = pil_pos.shape
    z = np.empty((n_sym, n_p), dtype=np.complex128)
    w = np.empty(n_p)
    zr = np.empty(n_p, dtype=np.complex128)
    num = 0.0
    den = 1.0 / c_var
    c = 0.0
    rr = np.empty(n_p)
    ri = np.empty(n_p)
    for l in range(n_sym):
        x = ls[l] + 1.0
        acc = 0j
        sw = 0.0
        swk = 0.0
        if c != 0.0:
            _cis_ramp(fidx, pil_pos[l], c * x, rr, ri)
        for i in range(n_p):
            k = pil_pos[l, i]
            h = H[k]
            z[l, i] = Y[l, k] * np.conj(h) * pil_val[l, i]
            zr[i] = z[l, i] * complex(rr[i], ri[i]) if c != 0.0 else z[l, i]
            acc += zr[i]
            w[i] = 2.0 * (h.real * h.real + h.imag * h.imag) * pil_val[l, i] * pil_val[l, i] \
                / sigma2
            sw += w[i]
            swk += w[i] * fidx[k]
        a = np.arctan2(acc.imag, acc.real)
        ar = np.cos(a)
        ai = -np.sin(a)
        kbar = swk / sw if sw > 0 else 0.0
        for i in range(n_p):
            v = zr[i]
            psi = np.arctan2(v.imag * ar + v.real * ai, v.real * ar - v.imag * ai)
            dk = fidx[pil_pos[l, i]] - kbar
            num += w[i] * x * dk * (psi + c * x * dk)
            den += w[i] * x * x * dk * dk
        c = num / den
    cpe, bl = _cpe_given_slope(z, ls, pil_pos, fidx, c)
    return cpe, bl, c


@njit(cache=True, nogil=True)
def phase_trend(ph: np.ndarray, x: np.ndarray) -> float:  # pragma: no cover - numba
    """Least-squares slope of the unwrapped phases ``ph`` (radians) against ``x``: the
    per-symbol common phases' trend (residual carrier offset, radians per symbol). Each step is
    unwrapped to (-pi, pi]."""
    n = ph.size
    xm = 0.0
    for i in range(n):
        xm += x[i]
    xm /= n
    u = ph[0]
    num = (x[0] - xm) * u
    den = (x[0] - xm) * (x[0] - xm)
    for i in range(1, n):
        d = ph[i] - ph[i - 1]
        d -= 2 * np.pi * np.floor(d / (2 * np.pi) + 0.5)
        u += d
        num += (x[i] - xm) * u
        den += (x[i] - xm) * (x[i] - xm)
    return num / den if den > 0 else 0.0
