"""numba kernels of burst acquisition: detection, carrier offset and timing.

Apart from :mod:`phy.kernels` (the transmit and bit-level kernels) because finding a burst in
the sample stream is a job of its own, run before any symbol is demodulated (``phy/sync.py``,
and the receiver's front end in ``phy/modem_rx.py``). The conventions are those of
:mod:`phy.kernels`: one call per batch, ``cache=True``, one signature per kernel, a naive twin
in ``tests/phy/naive.py``. numba caches a kernel by the hash of its own file only, so each
kernel's ``@njit`` callees (here :func:`_cdot`) live in the same file. Compiled from bytecode,
so the fuzz workers leave this module uninstrumented (``tests/fuzz/_core.py``,
``NUMBA_MODULES``). :mod:`phy.kernels` re-exports every name defined here.

* :func:`sum_iq` — the float64 sum of a complex64 buffer (DC estimate and finiteness check).
* :func:`sc_blocks` — block sums of the Schmidl-Cox products and energies over a stream.
* :func:`sc_metric` — the Schmidl-Cox detection metric on the block grid.
* :func:`sc_plateaus` — the burst starts a metric's runs above the threshold give (what
  :func:`phy.sync.detect` returns; imported from here, not re-exported by :mod:`phy.kernels`).
* :func:`cp_corr` — per symbol, the CP samples correlated with the body's tail (the phase
  advance over one FFT length inside each symbol: fractional CFO, phase noise).
* :func:`cp_phase` — the phases of :func:`cp_corr`, less an expected advance, wrapped.
* :func:`diff_corr` — integer-CFO differential correlation over candidate shifts.
* :func:`first_path` — the earliest significant tap of a correlation (fine timing).
"""

from __future__ import annotations

import numpy as np
from numba import njit


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


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def sc_blocks(r: np.ndarray, lag: int,
              block: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Block sums over a complex64 stream for the Schmidl-Cox metric.

    Returns ``(p, e)``: ``p[i] = sum_{m in [iB, iB+B)} conj(r[m]) r[m+lag]`` for the
    ``(len(r) - lag) // B`` complete blocks and ``e[i] = sum_{m in [iB, iB+B)} |r[m]|^2`` for the
    ``len(r) // B`` complete blocks (complex128 / float64 accumulators, reassociated within a
    block so the sums run in vector registers).

    The samples are read as float32 pairs by index, not through a complex slice per block
    (two views a block cost a third of the kernel: 115 -> 75 us for 28 000 samples, the same
    sums bit for bit; the detector runs it over every zone window a node scans).
    """
    n = r.size
    nbp = (n - lag) // block if n > lag else 0
    nbe = n // block
    p = np.zeros(nbp, dtype=np.complex128)
    e = np.zeros(nbe, dtype=np.float64)
    f = r.view(np.float32)
    for i in range(nbe):
        base = i * block
        acc_e = 0.0
        acc_pr = 0.0
        acc_pi = 0.0
        if i < nbp:
            for m in range(base, base + block):
                xr = np.float64(f[2 * m])
                xi = np.float64(f[2 * m + 1])
                yr = f[2 * (m + lag)]
                yi = f[2 * (m + lag) + 1]
                acc_e += xr * xr + xi * xi
                acc_pr += xr * yr + xi * yi
                acc_pi += xr * yi - xi * yr
            p[i] = complex(acc_pr, acc_pi)
        else:
            for m in range(base, base + block):
                xr = np.float64(f[2 * m])
                xi = np.float64(f[2 * m + 1])
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


@njit(cache=True, nogil=True)
def cp_phase(r: np.ndarray, first: int, n_sym: int, stride: int, nfft: int, a: int, b: int,
             advance: float) -> np.ndarray:  # pragma: no cover - numba
    """The angle of each symbol's :func:`cp_corr` less ``advance`` (the carrier's expected
    phase advance over ``nfft`` samples), wrapped to [-pi, pi) as numpy's ``(d + pi) % 2pi -
    pi`` (Python's float modulo, which numba and numpy compute alike): the phase drift inside
    each symbol, in one call. float64 (n_sym,)."""
    c = cp_corr(r, first, n_sym, stride, nfft, a, b)
    d = np.empty(n_sym)
    for l in range(n_sym):
        x = np.arctan2(c[l].imag, c[l].real) - advance
        x += np.pi
        d[l] = x % (2 * np.pi) - np.pi
    return d


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
def sc_plateaus(M: np.ndarray, threshold: float, block: int,
                ng: int) -> np.ndarray:  # pragma: no cover - numba
    """Coarse burst starts from a Schmidl-Cox metric ``M`` on the grid of ``block`` samples
    (:func:`sc_metric`): per run of values above ``threshold``, the middle of its plateau
    (the first and last value at least 0.8 of the run's peak) in samples, minus ``ng / 2``,
    rounded half to even as Python's ``round``. int64 out, one per run, in order
    (:func:`phy.sync.detect`'s rule in one pass instead of a dozen numpy calls)."""
    out = np.empty(M.size, dtype=np.int64)
    n_out = 0
    i = 0
    while i < M.size:
        if not threshold < M[i]:
            i += 1
            continue
        s = i
        peak = M[i]
        while i < M.size and threshold < M[i]:
            if M[i] > peak:
                peak = M[i]
            i += 1
        thr = 0.8 * peak
        first = -1
        last = -1
        for j in range(s, i):
            if M[j] >= thr:
                if first < 0:
                    first = j
                last = j
        centre = (s + ((first - s) + (last - s)) / 2.0) * block
        out[n_out] = np.int64(np.rint(centre - ng / 2))
        n_out += 1
    return out[:n_out]
