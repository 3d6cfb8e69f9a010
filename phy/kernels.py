"""numba kernels behind plain numpy signatures.

Each kernel processes a whole batch in one call, is compiled with ``cache=True`` for exactly the
dtypes documented here (callers convert first, so there is one signature per kernel), and has a
straightforward twin in ``tests/phy/naive.py`` that the tests compare it with.

* :func:`prbs` — Fibonacci LFSR ``s[i] = s[i-a] xor s[i-m]`` (randomizer, pilot sequence).
* :func:`demap_maxlog` — exact max-log LLRs for Gray square QAM (cell tables).
* :func:`smooth_channel` — LS channel smoothing along frequency.
* :func:`track_phase` — pilot CPE / SFO-slope model per symbol.
* :func:`track_phase_prior` — the same model with the drift shrunk towards 0 by a prior (the
  first few symbols of a burst: zone header and A-MAP).
* :func:`equalize` — pilot phase correction + one-tap equalisation + LLR weights.
* :func:`diff_corr` — integer-CFO differential correlation over candidate shifts.
* :func:`gather_windows` — CFO-derotated FFT windows of a burst.
* :func:`sc_blocks` — block sums of the Schmidl-Cox products and energies over a stream.
* :func:`sc_metric` — the Schmidl-Cox detection metric on the block grid.
* :func:`tx_burst` — the transmit burst from the IFFT outputs: CP, window ramps, low-pass,
  scaling and limiter in two passes.
* :func:`pdp_window` — the delay window a power-delay profile shows above its thresholds.
* :func:`lmmse_band` — the LMMSE channel projection over the used band (DC hole filled).
* :func:`cp_corr` — per symbol, the CP samples correlated with the body's tail (the phase
  advance over one FFT length inside each symbol: phase noise).
* :func:`gather_windows_ramp` — :func:`gather_windows` with an extra phase ramp per window.
* :func:`sum_iq` — the float64 sum of a complex64 buffer (DC estimate and finiteness check).
* :func:`first_path` — the earliest significant tap of a correlation (fine timing).
* :func:`place_conj` — a conjugated, weighted vector placed into an FFT grid (delay profile).
* :func:`robust_combine` — QPSK LLRs of a repeated code word, descrambled and summed per
  code-word position (header, A-MAP).
* :func:`preamble_estimate` — the LS channel estimate, the S&C symbol's common phase, the mean
  channel power and the noise variance from the two preamble symbols, in one pass.

The K=7 Viterbi decoders (:func:`viterbi_k7`, :func:`viterbi_k7_simd` and their helpers) live
in :mod:`phy.viterbi_kernels`; every name defined there is re-exported here, where they were.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from phy.viterbi_kernels import (  # noqa: F401 - re-exported: they lived here before
    _F32,
    _I16,
    _I32,
    _I64,
    _J,
    _V16_BIDX,
    _V16_CHUNK,
    _V16_DIAG,
    _V16_FLIP,
    _V16_MFLIP,
    _V16_MPAIR,
    _V16_NEG,
    _V16_ONES,
    _V16_PI,
    _V16_SEVENS,
    _V16_SNAPS,
    _V16_STRIDE,
    _V32,
    _V64,
    _W16,
    BFLY_SX,
    BFLY_SY,
    G1,
    G2,
    V16_Q_MAX,
    V16_Q_MEAN,
    V16_SPLIT_MIN,
    V16_TB_SPLIT_MIN,
    V16L_SPREAD,
    _lanes,
    _parity,
    _v16_acs1,
    _v16_acs2,
    _v16_acs4,
    _v16_bfly_index,
    _v16_make_acs,
    _v16_same_relative,
    _v16_state_lane,
    _v16_store8,
    _v16_trace_four,
    _v16l_acs,
    _viterbi_forward,
    acs_i16,
    acs_i16_lanes,
    v16_branch_table,
    v16_forward,
    v16_forward_lanes,
    v16_llr_scale,
    v16_traceback,
    viterbi_k7,
    viterbi_k7_i16,
    viterbi_k7_simd,
    viterbi_k7_simd_lanes,
)


@njit(cache=True, nogil=True)
def prbs(seed: np.ndarray, a: int, n: int) -> np.ndarray:  # pragma: no cover - numba
    """LFSR bits: ``s[0:m] = seed`` (uint8 0/1, m = len(seed)); ``s[i] = s[i-a] ^ s[i-m]``;
    returns the ``n`` bits after the seed as uint8."""
    m = seed.size
    s = np.empty(m + n, dtype=np.uint8)
    for i in range(m):
        s[i] = seed[i]
    for i in range(m, m + n):
        s[i] = s[i - a] ^ s[i - m]
    return s[m:].copy()


@njit(cache=True, nogil=True)
def conv_encode_k7(bits: np.ndarray, m1: int, m2: int) -> np.ndarray:  # pragma: no cover
    """Zero-started, zero-tailed rate-1/2 K=7 encoder: n uint8 bits -> 2(n+6) bits X0 Y0 X1
    Y1 ...; ``m1``/``m2``: the generators as masks over the delays (bit d set: the input d
    steps back is summed). One pass with a 7-bit history (phy.fec.conv_encode_reference is
    the numpy twin)."""
    n = bits.size + 6
    out = np.empty(2 * n, dtype=np.uint8)
    h = 0
    for i in range(n):
        b = bits[i] & 1 if i < bits.size else 0
        h = ((h << 1) | b) & 0x7F
        x = h & m1
        y = h & m2
        x ^= x >> 4
        x ^= x >> 2
        x ^= x >> 1
        y ^= y >> 4
        y ^= y >> 2
        y ^= y >> 1
        out[2 * i] = x & 1
        out[2 * i + 1] = y & 1
    return out


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _llr_pam8(x: float, wi: float, l1: float, l3: float, l5: float,
              l7: float) -> tuple[float, float, float, float]:  # pragma: no cover - numba
    """Max-log LLRs of the three bits of one 64QAM axis value ``x`` (Gray labels: sign,
    then magnitude 00 -> 7, 01 -> 5, 11 -> 3, 10 -> 1; levels ``l1 .. l7`` > 0) times ``wi``,
    and the squared distance to the nearest level. Each LLR is the difference of the two
    subsets' smallest squared distances, taken on ``|x|`` (the subsets are symmetric, and the
    nearest level of the other sign is ``-l1``)."""
    a = abs(x)
    d1 = (a - l1) * (a - l1)
    d3 = (a - l3) * (a - l3)
    d5 = (a - l5) * (a - l5)
    d7 = (a - l7) * (a - l7)
    m13 = min(d1, d3)
    m57 = min(d5, d7)
    near = min(m13, m57)
    s0 = wi * ((a + l1) * (a + l1) - near)
    return (s0 if x >= 0 else -s0), wi * (m13 - m57), wi * (min(d3, d5) - min(d1, d7)), near


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _llr_pam4(x: float, wi: float, l1: float,
              l3: float) -> tuple[float, float, float]:  # pragma: no cover - numba
    """:func:`_llr_pam8` for a 16QAM axis (sign, then magnitude 0 -> 3, 1 -> 1)."""
    a = abs(x)
    d1 = (a - l1) * (a - l1)
    d3 = (a - l3) * (a - l3)
    near = min(d1, d3)
    s0 = wi * ((a + l1) * (a + l1) - near)
    return (s0 if x >= 0 else -s0), wi * (d1 - d3), near


@njit(cache=True, nogil=True, fastmath={"contract"})
def demap_maxlog(z: np.ndarray, w: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                 nearest: np.ndarray, inv_cell: float, dest: np.ndarray,
                 out: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """Exact max-log LLRs for Gray square QAM, scattered to ``out[dest[p]]``.

    ``z`` complex64, ``w`` float32 (1/s2 per symbol); tables from ``phy.qam.demap_tables``.
    The first m bits of a symbol ride on I, the next m on Q; positive LLR means bit 0.
    The LLR of demapped bit ``p`` (symbol ``p // 2m``) is written to ``out[dest[p]]``
    (float32) and dropped where ``dest[p] < 0``: with ``dest = arange`` this is plain
    demapping; the modem passes a map that folds the deinterleaver and the depuncturer into
    this one pass, so the LLRs land directly in the decoder's input buffer.
    Returns ``err`` float32 [len(z)], the squared distance to the nearest point (for EVM).

    16QAM and 64QAM: per axis the smallest squared distance to each bit's level subsets
    (:func:`_llr_pam8`, :func:`_llr_pam4`; the levels are ``nearest``'s positive half),
    branch-free, so the loop runs in vector registers; then the scatter. This equals the
    cell tables (per axis value the cell ``clip(floor(u * inv_cell) + nc/2, 0, nc-1)`` fixes
    each bit's nearest 0- and 1-level, ``LLR = w (alpha u + beta)``; the kernel's former
    path, now the tests' reference) within float32 rounding. QPSK: one bit per axis,
    ``w (alpha u + beta)`` from the tables. Other sizes raise ValueError.
    """
    n = z.size
    nc = alpha.shape[0]
    m = alpha.shape[1]
    half = nc // 2
    err = np.empty(n, dtype=np.float32)
    if m == 1:
        # QPSK: one bit per axis, the same (alpha, beta) in both cells, nearest = sign * A
        a0 = alpha[0, 0]
        b0 = beta[0, 0]
        for i in range(n):
            wi = w[i]
            u = z[i].real
            v = z[i].imag
            d = dest[2 * i]
            if d >= 0:
                out[d] = wi * (a0 * u + b0)
            d = dest[2 * i + 1]
            if d >= 0:
                out[d] = wi * (a0 * v + b0)
            du = u - (nearest[1] if u >= 0 else nearest[0])
            dv = v - (nearest[1] if v >= 0 else nearest[0])
            err[i] = du * du + dv * dv
        return err
    if m == 2 or m == 3:
        t = np.empty(n * 2 * m, dtype=np.float32)
        if m == 3:
            l1, l3, l5, l7 = nearest[half], nearest[half + 1], nearest[half + 2], nearest[half + 3]
            for i in range(n):
                wi = w[i]
                a0, a1, a2, eu = _llr_pam8(z[i].real, wi, l1, l3, l5, l7)
                b0, b1, b2, ev = _llr_pam8(z[i].imag, wi, l1, l3, l5, l7)
                t[6 * i] = a0
                t[6 * i + 1] = a1
                t[6 * i + 2] = a2
                t[6 * i + 3] = b0
                t[6 * i + 4] = b1
                t[6 * i + 5] = b2
                err[i] = eu + ev
        else:
            l1, l3 = nearest[half], nearest[half + 1]
            for i in range(n):
                wi = w[i]
                a0, a1, eu = _llr_pam4(z[i].real, wi, l1, l3)
                b0, b1, ev = _llr_pam4(z[i].imag, wi, l1, l3)
                t[4 * i] = a0
                t[4 * i + 1] = a1
                t[4 * i + 2] = b0
                t[4 * i + 3] = b1
                err[i] = eu + ev
        for p in range(t.size):
            d = dest[p]
            if d >= 0:
                out[d] = t[p]
        return err
    # the ladder has 1, 2 and 3 bits per axis (QPSK, 16QAM, 64QAM); no generic path to compile
    raise ValueError("demap_maxlog: 1, 2 or 3 bits per axis")


@njit(cache=True, nogil=True, fastmath={"contract"})
def _phasors(n: int, ph0: float, step: float, pr: np.ndarray,
             pi: np.ndarray) -> None:  # pragma: no cover - numba
    """``exp(j (ph0 + step m))`` for ``m < n`` into ``pr`` (real) and ``pi`` (imaginary),
    float64: the first 8 exactly, then 8 interleaved recurrences ``p[m] = p[m-8] exp(j 8
    step)``. Each block of 8 is independent of the others in it, so the loop runs in vector
    registers (one recurrence through every sample was a latency-bound chain: 2.5 ns per
    sample against ~0.5 for the whole window now)."""
    for m in range(min(8, n)):
        pr[m] = np.cos(ph0 + step * m)
        pi[m] = np.sin(ph0 + step * m)
    s8r, s8i = np.cos(8 * step), np.sin(8 * step)
    nb = n // 8
    for b in range(1, nb):  # whole blocks: a fixed 8-lane body
        o = 8 * b
        for t in range(8):
            a = pr[o + t - 8]
            c = pi[o + t - 8]
            pr[o + t] = a * s8r - c * s8i
            pi[o + t] = a * s8i + c * s8r
    for m in range(max(8, 8 * nb), n):
        a = pr[m - 8]
        c = pi[m - 8]
        pr[m] = a * s8r - c * s8i
        pi[m] = a * s8i + c * s8r


@njit(cache=True, nogil=True, fastmath={"contract"})
def equalize(Y: np.ndarray, H: np.ndarray, dpos: np.ndarray, cpe: np.ndarray, slope: np.ndarray,
             fidx: np.ndarray, inv_sigma2: float):  # pragma: no cover - numba
    """Phase-correct and zero-force the data subcarriers of a block of symbols.

    ``Y`` (n_sym, n_used) complex64; ``H`` (n_used,) complex64; ``dpos`` (n_sym, n_data) int64
    data positions; ``cpe``, ``slope`` (n_sym,) float64 phase model ``cpe + slope * fidx``;
    ``fidx`` (n_used,) float64 subcarrier frequency index. Returns ``z`` complex64 and LLR
    weights ``w = |H|^2 / sigma^2`` float32, both flattened (n_sym * n_data) in symbol order.

    Per symbol: ``exp(-j ph_k)`` along each run of adjacent subcarriers (below and above DC)
    as one :func:`_phasors` table, every used subcarrier corrected in one pass (vector
    registers), then the data positions gathered.
    """
    n_sym, n_data = dpos.shape
    n_used = fidx.size
    z = np.empty(n_sym * n_data, dtype=np.complex64)
    w = np.empty(n_sym * n_data, dtype=np.float32)
    rc = np.empty(n_used, dtype=np.float64)
    rs = np.empty(n_used, dtype=np.float64)
    # per subcarrier once per block: conj(h) / |h|^2 and the LLR weight |h|^2 / sigma^2
    gr = np.empty(n_used, dtype=np.float64)
    gi = np.empty(n_used, dtype=np.float64)
    wk = np.empty(n_used, dtype=np.float32)
    for k in range(n_used):
        h = H[k]
        h2 = max(h.real * h.real + h.imag * h.imag, 1e-30)
        gr[k] = h.real / h2
        gi[k] = -h.imag / h2
        wk[k] = h2 * inv_sigma2
    # runs of adjacent frequencies: starts[q] .. starts[q+1]-1
    starts = np.empty(n_used + 1, np.int64)
    nr = 1
    starts[0] = 0
    for k in range(1, n_used):
        if fidx[k] != fidx[k - 1] + 1.0:
            starts[nr] = k
            nr += 1
    starts[nr] = n_used
    zr = np.empty(n_used, dtype=np.complex64)
    for l in range(n_sym):
        for q in range(nr):
            k0, k1 = starts[q], starts[q + 1]
            _phasors(k1 - k0, -(cpe[l] + slope[l] * fidx[k0]), -slope[l], rc[k0:k1],
                     rs[k0:k1])
        yrow = Y[l]
        for k in range(n_used):
            # y * exp(-j ph) * conj(h) / |h|^2
            y = yrow[k]
            c = rc[k]
            s = -rs[k]
            yr = y.real * c + y.imag * s
            yi = y.imag * c - y.real * s
            zr[k] = complex(yr * gr[k] - yi * gi[k], yr * gi[k] + yi * gr[k])
        o = l * n_data
        for j in range(n_data):
            k = dpos[l, j]
            z[o + j] = zr[k]
            w[o + j] = wk[k]
    return z, w


@njit(cache=True, nogil=True)
def smooth_channel(H: np.ndarray, fidx: np.ndarray, width: int) -> np.ndarray:  # pragma: no cover
    """Moving-average smoothing of an LS channel estimate along frequency.

    ``H`` complex64 (n_used,), ``fidx`` float64 subcarrier frequency indices, odd ``width``.
    The mean phase slope (timing back-off, mean delay) measured over adjacent subcarriers is
    removed first and restored afterwards; the average is centred and edge-normalised (fewer
    terms at the band edges). Returns complex64.
    """
    n = H.size
    sr = 0.0
    si = 0.0
    for i in range(1, n):
        if fidx[i] - fidx[i - 1] == 1.0:
            a = H[i]
            b = H[i - 1]
            sr += a.real * b.real + a.imag * b.imag
            si += a.imag * b.real - a.real * b.imag
    slope = np.arctan2(si, sr)
    hr = np.empty(n, dtype=np.complex128)
    ramp = np.empty(n, dtype=np.complex128)
    for i in range(n):
        ramp[i] = np.exp(1j * slope * fidx[i])
        hr[i] = H[i] * np.conj(ramp[i])
    half = width // 2
    out = np.empty(n, dtype=np.complex64)
    for i in range(n):
        lo = max(0, i - half)
        hi = min(n, i + half + 1)
        acc = 0j
        for j in range(lo, hi):
            acc += hr[j]
        out[i] = acc / (hi - lo) * ramp[i]
    return out


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
        for i in range(n_p):
            k = pil_pos[l, i]
            z[l, i] = Y[l, k] * np.conj(H[k]) * pil_val[l, i]
        s = 0j
        for i in range(1, n_p):
            s += z[l, i] * np.conj(z[l, i - 1])
        span = fidx[pil_pos[l, n_p - 1]] - fidx[pil_pos[l, 0]]
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
        for i in range(n_p):
            k = pil_pos[l, i]
            z[l, i] = Y[l, k] * np.conj(H[k]) * pil_val[l, i]
        s = 0j
        for i in range(1, n_p):
            s += z[l, i] * np.conj(z[l, i - 1])
        span = fidx[pil_pos[l, n_p - 1]] - fidx[pil_pos[l, 0]]
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
def shrink_project(U: np.ndarray, v: np.ndarray, g: np.ndarray) -> np.ndarray:  # pragma: no cover
    """``U^T (g * (U v))``: project ``v`` (m,) complex128 onto the orthonormal rows of ``U``
    (r, m) float64, scale coefficient ``i`` by ``g[i]`` and map back (LMMSE in an eigenbasis).
    A plain loop: at these sizes a BLAS call costs more in thread start-up than in arithmetic
    (and on a loaded machine its threads wait for cores)."""
    r, m = U.shape
    out = np.zeros(m, dtype=np.complex128)
    for i in range(r):
        ar = 0.0
        ai = 0.0
        for j in range(m):
            u = U[i, j]
            ar += u * v[j].real
            ai += u * v[j].imag
        ar *= g[i]
        ai *= g[i]
        for j in range(m):
            u = U[i, j]
            out[j] += complex(u * ar, u * ai)
    return out


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def shrink_project_ramp(U: np.ndarray, v: np.ndarray, g: np.ndarray, k0: float,
                        dphi: float) -> np.ndarray:  # pragma: no cover - numba
    """``R U^T (g * (U R^* v))`` with ``R = diag(exp(-j dphi (k0 + j)))``: :func:`shrink_project`
    in the frame of a delay ``dphi nfft / 2 pi`` (the centre of the channel's delay window), the
    phase ramp one :func:`_phasors` table (8 interleaved recurrences: a few sin/cos pairs per
    call, not per subcarrier, and no serial chain through the band)."""
    r, m = U.shape
    vr = np.empty(m)
    vi = np.empty(m)
    cr = np.empty(m)
    ci = np.empty(m)
    _phasors(m, -dphi * k0, -dphi, cr, ci)
    for j in range(m):
        x = v[j]
        vr[j] = x.real * cr[j] + x.imag * ci[j]  # v * conj(ramp)
        vi[j] = x.imag * cr[j] - x.real * ci[j]
    outr = np.zeros(m)
    outi = np.zeros(m)
    for i in range(r):
        pr = 0.0
        pi_ = 0.0
        for j in range(m):
            pr += U[i, j] * vr[j]
            pi_ += U[i, j] * vi[j]
        pr *= g[i]
        pi_ *= g[i]
        for j in range(m):
            outr[j] += U[i, j] * pr
            outi[j] += U[i, j] * pi_
    out = np.empty(m, dtype=np.complex128)
    for j in range(m):
        out[j] = complex(outr[j] * cr[j] - outi[j] * ci[j], outr[j] * ci[j] + outi[j] * cr[j])
    return out


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


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"}, inline="always")
def _cdot(ar: np.ndarray, ai: np.ndarray, br: np.ndarray,
          bi: np.ndarray) -> tuple[float, float]:  # pragma: no cover - numba
    """``sum a b`` of two complex vectors given as real and imaginary parts (float64;
    reassociated, so it runs in vector registers)."""
    sr = 0.0
    si = 0.0
    for j in range(ar.size):
        sr += ar[j] * br[j] - ai[j] * bi[j]
        si += ar[j] * bi[j] + ai[j] * br[j]
    return sr, si


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def diff_corr(Yfull: np.ndarray, bins: np.ndarray, c: np.ndarray,
              shifts: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """Differential correlation metric for the integer-CFO search.

    ``metric[g] = |sum_k Y[b_k + s_g] conj(Y[b_{k+1} + s_g]) c_k|`` (bins modulo NFFT) with
    ``Yfull`` complex64 (NFFT,), ``bins`` int64 used bins, ``c`` complex64 (len(bins)-1,)
    = ``conj(X_k) X_{k+1}``, ``shifts`` int64 (|shift| < NFFT). Returns float64
    (len(shifts),).

    The adjacent-bin products ``R[f] = Y[f] conj(Y[f+1])`` are formed once over the spectrum
    laid out by frequency (twice over, so a shifted index never wraps); a shift is then one
    reassociated dot product of a slice of ``R`` with ``c`` per run of frequency-adjacent
    used bins (two: below and above DC) plus the product across each gap (the DC hole). Was
    one triple product per pair and shift, latency-bound on the complex accumulator.
    """
    nfft = Yfull.size
    n = bins.size
    half = nfft // 2
    m = 2 * nfft + 1
    er = np.empty(m)
    ei = np.empty(m)
    b = half
    for i in range(m):  # er[i] + j ei[i] = Y at frequency i - half (mod nfft; nfft is even)
        er[i] = Yfull[b].real
        ei[i] = Yfull[b].imag
        b += 1
        if b == nfft:
            b = 0
    rr = np.empty(m - 1)
    ri = np.empty(m - 1)
    for i in range(m - 1):
        rr[i] = er[i] * er[i + 1] + ei[i] * ei[i + 1]
        ri[i] = ei[i] * er[i + 1] - er[i] * ei[i + 1]
    cr = np.empty(max(n - 1, 0))
    ci = np.empty(max(n - 1, 0))
    for k in range(n - 1):
        cr[k] = c[k].real
        ci[k] = c[k].imag
    f = np.empty(n, np.int64)  # index of each used bin in er/ei (first copy)
    for k in range(n):
        v = bins[k] + half
        f[k] = v - nfft if v >= nfft else v
    # runs of pairs whose bins are adjacent: pairs rs[q] .. re[q]-1, then the gap pair re[q]
    rs = np.empty(n + 1, np.int64)
    re = np.empty(n + 1, np.int64)
    nr = 0
    k = 0
    while k < n - 1:
        e = k
        while e < n - 1 and f[e + 1] == f[e] + 1:
            e += 1
        rs[nr] = k
        re[nr] = e
        nr += 1
        k = e + 1 if e < n - 1 else e
    out = np.empty(shifts.size)
    for g in range(shifts.size):
        s = shifts[g]
        if s < 0:
            s += nfft
        accr = 0.0
        acci = 0.0
        for q in range(nr):
            k = rs[q]
            e = re[q]
            o = f[k] + s
            sr, si = _cdot(rr[o: o + e - k], ri[o: o + e - k], cr[k: e], ci[k: e])
            accr += sr
            acci += si
            if e < n - 1:
                p0 = f[e] + s
                p1 = f[e + 1] + s
                pr = er[p0] * er[p1] + ei[p0] * ei[p1]
                pim = ei[p0] * er[p1] - er[p0] * ei[p1]
                accr += pr * cr[e] - pim * ci[e]
                acci += pr * ci[e] + pim * cr[e]
        out[g] = np.sqrt(accr * accr + acci * acci)
    return out


@njit(cache=True, nogil=True, fastmath={"contract"})
def gather_windows(r: np.ndarray, s0: int, n_sym: int, stride: int, nfft: int,
                   w_step: float):  # pragma: no cover - numba
    """FFT windows ``r[s0 + l*stride + n]`` (n < nfft) of n_sym symbols, each sample rotated by
    ``exp(-j w_step (s0 + l*stride + n))`` (CFO removal; phase referenced to sample 0 of the
    buffer). ``r`` complex64; returns (n_sym, nfft) complex64. The phase is exact at the start
    of every window; inside it a table of ``exp(-j w_step n)`` (:func:`_phasors`, once per
    call) times the window's start phasor, in float64."""
    out = np.empty((n_sym, nfft), dtype=np.complex64)
    tr = np.empty(nfft)
    ti = np.empty(nfft)
    _phasors(nfft, 0.0, -w_step, tr, ti)
    for l in range(n_sym):
        base = s0 + l * stride
        ph = -w_step * base
        cr, ci = np.cos(ph), np.sin(ph)
        row = r[base: base + nfft]
        orow = out[l]
        for n in range(nfft):
            pr = cr * tr[n] - ci * ti[n]
            pi = cr * ti[n] + ci * tr[n]
            x = row[n]
            orow[n] = complex(x.real * pr - x.imag * pi, x.real * pi + x.imag * pr)
    return out


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def sc_blocks(r: np.ndarray, lag: int,
              block: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Block sums over a complex64 stream for the Schmidl-Cox metric.

    Returns ``(p, e)``: ``p[i] = sum_{m in [iB, iB+B)} conj(r[m]) r[m+lag]`` for the
    ``(len(r) - lag) // B`` complete blocks and ``e[i] = sum_{m in [iB, iB+B)} |r[m]|^2`` for the
    ``len(r) // B`` complete blocks (complex128 / float64 accumulators, reassociated within a
    block so the sums run in vector registers).
    """
    n = r.size
    nbp = (n - lag) // block if n > lag else 0
    nbe = n // block
    p = np.zeros(nbp, dtype=np.complex128)
    e = np.zeros(nbe, dtype=np.float64)
    for i in range(nbe):
        acc_e = 0.0
        acc_pr = 0.0
        acc_pi = 0.0
        base = i * block
        x = r[base: base + block]
        if i < nbp:
            y = r[base + lag: base + lag + block]
            for m in range(block):
                xr = np.float64(x[m].real)
                xi = np.float64(x[m].imag)
                acc_e += xr * xr + xi * xi
                acc_pr += xr * y[m].real + xi * y[m].imag
                acc_pi += xr * y[m].imag - xi * y[m].real
            p[i] = complex(acc_pr, acc_pi)
        else:
            for m in range(block):
                xr = np.float64(x[m].real)
                xi = np.float64(x[m].imag)
                acc_e += xr * xr + xi * xi
        e[i] = acc_e
    return p, e


@njit(cache=True, nogil=True)
def sc_metric(r: np.ndarray, lag: int, block: int) -> np.ndarray:  # pragma: no cover - numba
    """Schmidl-Cox metric ``M(d) = |P(d)|^2 / (E1(d) E2(d))`` at ``d = i * block``.

    ``P(d) = sum_{m<lag} conj(r[d+m]) r[d+m+lag]``, ``E1``/``E2`` the energies of the two
    halves, all from the block sums of :func:`sc_blocks` (``lag`` a multiple of ``block``).
    ``M`` is 0 where ``E1 E2`` is below ``1e-30 + 1e-12 max(E1 E2)`` (silence). float64 out.
    """
    p, e = sc_blocks(r, lag, block)
    nb = lag // block
    n_i = min(p.size - nb + 1, e.size - 2 * nb + 1)
    if n_i <= 0:
        return np.zeros(0)
    P = np.empty(n_i, dtype=np.complex128)
    den = np.empty(n_i)
    accp = 0j
    for j in range(nb):
        accp += p[j]
    e1 = 0.0
    e2 = 0.0
    for j in range(nb):
        e1 += e[j]
        e2 += e[nb + j]
    dmax = 0.0
    for i in range(n_i):
        if i > 0:
            accp += p[i + nb - 1] - p[i - 1]
            e1 += e[i + nb - 1] - e[i - 1]
            e2 += e[i + 2 * nb - 1] - e[i + nb - 1]
        P[i] = accp
        d = e1 * e2
        den[i] = d
        if d > dmax:
            dmax = d
    floor = 1e-30 + 1e-12 * dmax
    M = np.empty(n_i)
    for i in range(n_i):
        if den[i] > floor:
            M[i] = (P[i].real ** 2 + P[i].imag ** 2) / den[i]
        else:
            M[i] = 0.0
    return M


@njit(cache=True, nogil=True)
def tx_burst(bodies: np.ndarray, cp: int, up: np.ndarray, down: np.ndarray, h: np.ndarray,
             scale: float, limit: bool) -> np.ndarray:  # pragma: no cover - numba
    """The transmit burst from the symbols' IFFT outputs ``bodies`` (n_sym, NFFT) complex64.

    Each symbol is its CP (the body's last ``cp`` samples) and its body. With ramps (``w =
    len(up)`` > 0) its first ``w`` samples are multiplied by the rising ramp ``up`` and, from the
    second symbol on, the previous body's first ``w`` samples times the falling ramp
    ``up[w-1-i]`` are added there (windowed overlap-add); the burst's last ``len(down)`` samples
    are multiplied by ``down`` (falling). Then the symmetric odd-length real FIR ``h`` is applied
    centred (same length, zero outside), every value is multiplied by ``scale``, and with
    ``limit`` a sample whose magnitude exceeds 1 is scaled back to magnitude 1. All arithmetic
    in float32 on the interleaved (re, im) values in the order ``phy.shaping``'s numpy
    description gives, so the result equals it; the FIR runs over blocks that stay in cache.
    Returns complex64 (n_sym * (NFFT + cp),)."""
    n_sym, nfft = bodies.shape
    ns = nfft + cp
    n = n_sym * ns
    c = h.size // 2
    w = up.size
    b = down.size
    # interleaved re, im per symbol (a view; no reshape, whose error path alone took ~2 s
    # of the cold compile)
    src = bodies.view(np.float32)
    # pass 1: the windowed burst, interleaved, with 2c zero values on each side for the FIR
    # (slices everywhere: an index that is a sum of variables gets a negative-index check per
    # element, which keeps LLVM from vectorising the loop)
    xp = np.zeros(2 * n + 4 * c, dtype=np.float32)
    for l in range(n_sym):
        body = src[l]
        sym = xp[2 * c + 2 * l * ns: 2 * c + 2 * (l + 1) * ns]
        # element loops, not slice assignments: an array-to-slice assignment compiles numba's
        # shape-mismatch error formatting (~2 s of the cold start)
        tail = body[2 * (nfft - cp):]
        for i in range(2 * cp):
            sym[i] = tail[i]
        dst = sym[2 * cp:]
        for i in range(2 * nfft):
            dst[i] = body[i]
        if w > 0:
            for i in range(w):
                u = up[i]
                sym[2 * i] *= u
                sym[2 * i + 1] *= u
            if l > 0:
                prev = src[l - 1, : 2 * w]
                for i in range(w):
                    v = up[w - 1 - i]
                    sym[2 * i] += prev[2 * i] * v
                    sym[2 * i + 1] += prev[2 * i + 1] * v
    last = xp[2 * c + 2 * (n - b): 2 * c + 2 * n]
    for i in range(b):
        last[2 * i] *= down[i]
        last[2 * i + 1] *= down[i]
    # pass 2: FIR (pairs of symmetric taps), scale -- block by block, the block in cache
    out = np.empty(n, dtype=np.complex64)
    of = out.view(np.float32)
    blk = 2048
    acc = np.empty(blk, dtype=np.float32)
    hc = h[c]
    sc = np.float32(scale)
    for b0 in range(0, 2 * n, blk):
        nb = min(blk, 2 * n - b0)
        mid = xp[b0 + 2 * c: b0 + 2 * c + nb]
        for i in range(nb):
            acc[i] = mid[i] * hc
        for m in range(1, c + 1):
            hm = h[c + m]
            lo = xp[b0 + 2 * c - 2 * m: b0 + 2 * c - 2 * m + nb]
            hi = xp[b0 + 2 * c + 2 * m: b0 + 2 * c + 2 * m + nb]
            for i in range(nb):
                acc[i] += (lo[i] + hi[i]) * hm
        dst = of[b0: b0 + nb]
        for i in range(nb):
            dst[i] = acc[i] * sc
        if limit:
            over = 0
            for i in range(nb // 2):
                p = dst[2 * i] * dst[2 * i] + dst[2 * i + 1] * dst[2 * i + 1]
                over += p > 1.0
            if over:
                for i in range(nb // 2):
                    re = np.float64(dst[2 * i])
                    im = np.float64(dst[2 * i + 1])
                    mag = np.sqrt(re * re + im * im)
                    if mag > 1.0:
                        dst[2 * i] = np.float32(re / mag)
                        dst[2 * i + 1] = np.float32(im / mag)
    return out


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def sum_iq(r: np.ndarray) -> complex:  # pragma: no cover - numba
    """Sum of the complex64 samples ``r`` in float64 (reassociated: vector lanes). Not finite
    exactly when some sample is not (a float64 sum of float32 values cannot overflow)."""
    f = r.view(np.float32)
    sr = 0.0
    si = 0.0
    for i in range(r.size):
        sr += np.float64(f[2 * i])
        si += np.float64(f[2 * i + 1])
    return complex(sr, si)


@njit(cache=True, nogil=True)
def preamble_estimate(y_sc: np.ndarray, y_long: np.ndarray, long_inv: np.ndarray,
                      sc_inv: np.ndarray, even: np.ndarray,
                      odd: np.ndarray):  # pragma: no cover - numba
    """:func:`phy.estimation.preamble_ls` and :func:`phy.estimation.noise_variance` in one
    pass (complex64 in, float64 sums): the LS channel estimate ``h`` (n_used,) complex64 from
    the long symbol ``y_long`` and the S&C symbol ``y_sc`` (its subcarriers ``even``, rotated
    by the common phase between the two symbols' estimates, combined with weights 1 : 2),
    that common phase as ``rot = sum conj(h_long) h_sc`` (complex128), the mean ``|h|^2``
    and the mean ``|y_sc|^2`` over the null subcarriers ``odd`` (the noise variance before
    its floor). ``long_inv``: ``1 / X_long``; ``sc_inv``: ``1 / X_sc`` on ``even``."""
    n = y_long.size
    h = np.empty(n, dtype=np.complex64)
    for k in range(n):
        h[k] = y_long[k] * long_inv[k]
    rr = 0.0
    ri = 0.0
    for i in range(even.size):
        k = even[i]
        he = y_sc[k] * sc_inv[i]
        hl = h[k]
        rr += np.float64(hl.real) * he.real + np.float64(hl.imag) * he.imag
        ri += np.float64(hl.real) * he.imag - np.float64(hl.imag) * he.real
    mag = np.sqrt(rr * rr + ri * ri)
    if mag > 0.0:
        cr = np.float32(rr / mag)
        ci = np.float32(-ri / mag)
    else:
        cr = np.float32(1.0)
        ci = np.float32(0.0)
    c = complex(cr, ci)
    third = np.float32(1.0 / 3.0)
    two = np.float32(2.0)
    for i in range(even.size):
        k = even[i]
        he = y_sc[k] * sc_inv[i] * np.complex64(c)
        h[k] = (h[k] + two * he) * third
    total = 0.0
    for k in range(n):
        total += np.float64(h[k].real) ** 2 + np.float64(h[k].imag) ** 2
    noise = 0.0
    for i in range(odd.size):
        v = y_sc[odd[i]]
        noise += np.float64(v.real) ** 2 + np.float64(v.imag) ** 2
    return h, complex(rr, ri), total / max(n, 1), noise / max(odd.size, 1)


@njit(cache=True, nogil=True, fastmath={"contract"})
def robust_combine(z: np.ndarray, w: np.ndarray, dest: np.ndarray, sign: np.ndarray, nco: int,
                   alpha: np.ndarray, beta: np.ndarray,
                   nearest: np.ndarray):  # pragma: no cover - numba
    """A repeated QPSK code word's LLRs combined: the max-log LLR of each demapped bit ``p``
    (``z`` complex64 symbols, ``w`` float32 weights; the QPSK row of ``phy.qam.demap_tables``,
    the same float32 arithmetic as :func:`demap_maxlog`) times ``sign[p]`` (float32, +-1:
    undoes the scrambling) summed into code-word position ``dest[p]`` of ``nco``, in float64
    and in order of ``p`` (as ``np.bincount`` with weights), returned as float32; and each
    symbol's squared distance to the nearest QPSK point (float32), for the EVM."""
    n = z.size
    acc = np.zeros(nco)
    err = np.empty(n, dtype=np.float32)
    a0 = alpha[0, 0]
    b0 = beta[0, 0]
    for i in range(n):
        wi = w[i]
        u = z[i].real
        v = z[i].imag
        lu = wi * (a0 * u + b0)
        lv = wi * (a0 * v + b0)
        acc[dest[2 * i]] += np.float64(lu * sign[2 * i])
        acc[dest[2 * i + 1]] += np.float64(lv * sign[2 * i + 1])
        du = u - (nearest[1] if u >= 0 else nearest[0])
        dv = v - (nearest[1] if v >= 0 else nearest[0])
        err[i] = du * du + dv * dv
    out = np.empty(nco, dtype=np.float32)
    for j in range(nco):
        out[j] = acc[j]
    return out, err


@njit(cache=True, nogil=True)
def first_path(c: np.ndarray, taps: np.ndarray, back: int,
               rel: float) -> int:  # pragma: no cover - numba
    """Index ``i`` into ``taps`` of the earliest significant path of a correlation ``c``
    (complex64, read at ``c[taps[i]]``): the peak of ``|c|^2`` over the taps, then the
    earliest tap at most ``back`` before it whose power is at least ``rel`` times the peak's
    (:func:`phy.sync.fine_timing`'s rule, in one pass instead of five numpy calls)."""
    nt = taps.size
    p = np.empty(nt)
    pk = 0
    for i in range(nt):
        x = c[taps[i]]
        p[i] = np.float64(x.real) ** 2 + np.float64(x.imag) ** 2
        if p[i] > p[pk]:
            pk = i
    thr = p[pk] * rel
    for i in range(max(0, pk - back), pk + 1):
        if p[i] >= thr:
            return i
    return pk


@njit(cache=True, nogil=True)
def place_conj(x: np.ndarray, bins: np.ndarray, w: np.ndarray,
               nfft: int) -> np.ndarray:  # pragma: no cover - numba
    """``conj(x[k]) w[k]`` at FFT bin ``bins[k]`` of an ``nfft``-point spectrum, zero
    elsewhere (complex64): the tapered, conjugated LS estimate whose forward FFT is the delay
    profile (:func:`phy.estimation.delay_window`), in one pass."""
    out = np.zeros(nfft, dtype=np.complex64)
    for k in range(bins.size):
        v = x[k]
        out[bins[k]] = complex(v.real * w[k], -v.imag * w[k])
    return out


@njit(cache=True, nogil=True)
def pdp_window(h: np.ndarray, lo: int, hi: int, rel: float,
               floor: float) -> tuple[int, int]:  # pragma: no cover - numba
    """First and last delay ``d`` in ``lo .. hi`` whose tap power ``|h[d mod len(h)]|^2``
    exceeds both ``rel`` times the window's peak power and ``floor``; the peak's delay for both
    when none does. ``h`` complex64 (the channel's delay profile)."""
    n = h.size
    nd = hi - lo + 1
    p = np.empty(nd)
    best = 0
    for i in range(nd):
        x = h[(lo + i) % n]
        p[i] = np.float64(x.real) ** 2 + np.float64(x.imag) ** 2
        if p[i] > p[best]:
            best = i
    thr = max(p[best] * rel, floor)
    first = -1
    last = -1
    for i in range(nd):
        if p[i] > thr:
            if first < 0:
                first = i
            last = i
    if first < 0:
        first = best
        last = best
    return lo + first, lo + last


@njit(cache=True, nogil=True)
def lmmse_band(U: np.ndarray, H: np.ndarray, pos: np.ndarray, holes: np.ndarray, g: np.ndarray,
               k0: float, dphi: float) -> np.ndarray:  # pragma: no cover - numba
    """The LS estimate ``H`` (n,) complex64 placed at ``pos`` in a contiguous band of ``m =
    U.shape[1]`` subcarriers, each hole (``holes``: DC) filled with the mean of its neighbours,
    projected by :func:`shrink_project_ramp` and read back at ``pos``: complex64 (n,)."""
    m = U.shape[1]
    v = np.empty(m, dtype=np.complex128)
    for j in range(pos.size):
        v[pos[j]] = H[j]
    for i in holes:
        v[i] = 0.5 * (v[max(i - 1, 0)] + v[min(i + 1, m - 1)])
    est = shrink_project_ramp(U, v, g, k0, dphi)
    out = np.empty(pos.size, dtype=np.complex64)
    for j in range(pos.size):
        out[j] = est[pos[j]]
    return out


@njit(cache=True, nogil=True)
def cp_corr(r: np.ndarray, first: int, n_sym: int, stride: int, nfft: int, a: int,
            b: int) -> np.ndarray:  # pragma: no cover - numba
    """``sum_{n=a}^{b-1} conj(r[p + n]) r[p + n + nfft]`` with ``p = first + l * stride`` for
    each of ``n_sym`` symbols: a symbol's CP samples ``a .. b-1`` against the body samples they
    copy, whose phase is the carrier's advance over ``nfft`` samples there. complex128 out."""
    out = np.empty(n_sym, dtype=np.complex128)
    for l in range(n_sym):
        p = first + l * stride
        x = r[p + a: p + b]
        y = r[p + a + nfft: p + b + nfft]
        acr = 0.0
        aci = 0.0
        for i in range(b - a):
            acr += np.float64(x[i].real) * y[i].real + np.float64(x[i].imag) * y[i].imag
            aci += np.float64(x[i].real) * y[i].imag - np.float64(x[i].imag) * y[i].real
        out[l] = complex(acr, aci)
    return out


@njit(cache=True, nogil=True, fastmath={"contract"})
def gather_windows_ramp(r: np.ndarray, s0: int, n_sym: int, stride: int, nfft: int,
                        w_step: float, dw: np.ndarray):  # pragma: no cover - numba
    """:func:`gather_windows` with window ``l``'s samples further rotated by ``exp(-j dw[l]
    (n - (nfft - 1) / 2))``: a phase ramp of slope ``dw[l]`` rad/sample, zero at the window's
    centre (a symbol's phase-noise drift removed without moving its common phase). The
    rotation of each window is one :func:`_phasors` table."""
    out = np.empty((n_sym, nfft), dtype=np.complex64)
    half = 0.5 * (nfft - 1)
    pr = np.empty(nfft)
    pi = np.empty(nfft)
    for l in range(n_sym):
        base = s0 + l * stride
        _phasors(nfft, -w_step * base + dw[l] * half, -(w_step + dw[l]), pr, pi)
        row = r[base: base + nfft]
        orow = out[l]
        for n in range(nfft):
            x = row[n]
            orow[n] = complex(x.real * pr[n] - x.imag * pi[n], x.real * pi[n] + x.imag * pr[n])
    return out
