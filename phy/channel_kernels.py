"""numba kernels of the channel: FFT windows, channel estimation and equalisation.

Apart from :mod:`phy.kernels` (the transmit and bit-level kernels) because turning a found
burst's samples into equalised subcarriers is a job of its own: the CFO-derotated FFT windows,
the preamble's LS estimate and noise variance, its smoothing or LMMSE projection (with the
delay window that sizes it), and the one-tap equaliser. The conventions are those of
:mod:`phy.kernels`: one call per batch, ``cache=True``, one signature per kernel, a naive twin
in ``tests/phy/naive.py``. The windows, the LMMSE projection and the equaliser share one phasor
table generator (:func:`_phasors`), and numba caches a kernel by the hash of its own file only,
so they stay in the file that defines it. Compiled from bytecode, so the fuzz workers leave
this module uninstrumented (``tests/fuzz/_core.py``, ``NUMBA_MODULES``). :mod:`phy.kernels`
re-exports every name defined here.

* :func:`gather_windows` — CFO-derotated FFT windows of a burst.
* :func:`gather_windows_ramp` — :func:`gather_windows` with an extra phase ramp per window.
* :func:`preamble_estimate` — the LS channel estimate, the S&C symbol's common phase, the mean
  channel power and the noise variance from the two preamble symbols, in one pass.
* :func:`smooth_channel` — LS channel smoothing along frequency.
* :func:`place_conj` — a conjugated, weighted vector placed into an FFT grid (delay profile).
* :func:`pdp_window` — the delay window a power-delay profile shows above its thresholds.
* :func:`shrink_project`, :func:`shrink_project_ramp` — LMMSE projection in an eigenbasis.
* :func:`lmmse_band` — the LMMSE channel projection over the used band (DC hole filled).
* :func:`lmmse_gain_band` — :func:`lmmse_band` with the shrinkage gains and the basis cut
  computed in the same call.
* :func:`equalize` — pilot phase correction + one-tap equalisation + LLR weights.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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


@njit(cache=True, nogil=True, error_model="numpy")
def lmmse_gain_band(U: np.ndarray, lam: np.ndarray, power: float, sigma2: float, H: np.ndarray,
                    pos: np.ndarray, holes: np.ndarray, k0: float,
                    dphi: float) -> np.ndarray:  # pragma: no cover - numba
    """:func:`lmmse_band` with the LMMSE gains ``g = lam power / (lam power + sigma2)`` of the
    eigenvalues ``lam`` (float64) and the basis cut to its first ``r`` vectors, ``r`` the
    number of gains >= 1e-4 (the eigenvalues fall, so the rest are ~0): the numpy steps of
    :func:`phy.estimation.lmmse_estimate`, in the same IEEE operations (no contraction;
    numpy's error model, so a 0/0 of hostile input gives NaN gains, none kept)."""
    g = np.empty(lam.size)
    r = 0
    for i in range(lam.size):
        g[i] = lam[i] * power / (lam[i] * power + sigma2)
        if g[i] >= 1e-4:
            r += 1
    return lmmse_band(U[:r], H, pos, holes, g[:r], k0, dphi)


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
