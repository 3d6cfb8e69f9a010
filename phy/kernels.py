"""numba kernels behind plain numpy signatures.

Each kernel processes a whole batch in one call, is compiled with ``cache=True`` for exactly the
dtypes documented here (callers convert first, so there is one signature per kernel), and has a
straightforward twin in ``tests/phy/naive.py`` that the tests compare it with.

* :func:`prbs` — Fibonacci LFSR ``s[i] = s[i-a] xor s[i-m]`` (randomizer, pilot sequence).
* :func:`viterbi_k7` — soft-decision Viterbi for the K=7 (171,133) rate-1/2 code, zero-terminated.
* :func:`demap_maxlog` — exact max-log LLRs for Gray square QAM.
* :func:`sc_blocks` — block sums of the Schmidl-Cox products and energies over a stream.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Butterfly signs of the K=7 code: for state pair (2j, 2j+1) -> (j, j+32), the branch
# (s=2j, u=0) emits (x, y) = parity(2j & 171o), parity(2j & 133o); the other three branches
# emit it or its complement (both generators tap D^0 and D^6).
_J = np.arange(32)


def _parity(v: np.ndarray) -> np.ndarray:
    v = v.copy()
    out = np.zeros_like(v)
    while np.any(v):
        out ^= v & 1
        v >>= 1
    return out


G1 = 0o171
G2 = 0o133
BFLY_SX = (1.0 - 2.0 * _parity((2 * _J) & G1)).astype(np.float32)
BFLY_SY = (1.0 - 2.0 * _parity((2 * _J) & G2)).astype(np.float32)


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
def viterbi_k7(llr: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Soft Viterbi decoder for the K=7 (171,133) code.

    ``llr``: float32, length 2*n, interleaved (X0, Y0, X1, Y1, ...), positive means bit 0,
    zero for punctured positions. The trellis starts and ends in state 0 (the last 6 of the n
    steps are the zero tail). Returns n uint8 decisions (tail included).
    State = the last 6 input bits, newest in bit 5; next = (u << 5) | (s >> 1).
    """
    n = llr.size // 2
    pm = np.full(64, -1.0e9, dtype=np.float32)
    pm[0] = 0.0
    nm = np.empty(64, dtype=np.float32)
    dec = np.empty((n, 64), dtype=np.uint8)
    for t in range(n):
        lx = llr[2 * t]
        ly = llr[2 * t + 1]
        for j in range(32):
            b = sx[j] * lx + sy[j] * ly
            a0 = pm[2 * j]
            a1 = pm[2 * j + 1]
            m00 = a0 + b
            m01 = a1 - b
            m10 = a0 - b
            m11 = a1 + b
            c0 = m01 > m00
            c1 = m11 > m10
            nm[j] = m01 if c0 else m00
            nm[j + 32] = m11 if c1 else m10
            dec[t, j] = c0
            dec[t, j + 32] = c1
        ref = nm[0]
        for s in range(64):
            pm[s] = nm[s] - ref
    out = np.empty(n, dtype=np.uint8)
    s = 0
    for t in range(n - 1, -1, -1):
        out[t] = s >> 5
        s = 2 * (s & 31) + dec[t, s]
    return out


@njit(cache=True, nogil=True)
def demap_maxlog(z: np.ndarray, w: np.ndarray, levels: np.ndarray,
                 m: int) -> np.ndarray:  # pragma: no cover - numba
    """Exact max-log LLRs for square QAM built from one PAM axis.

    ``z``: complex64 equalised symbols; ``w``: float32 per-symbol weight ``1/s2`` (s2 = complex
    noise variance after equalisation); ``levels``: float32 PAM level of each m-bit axis label
    (label MSB = first bit); the first m bits of a symbol ride on I, the next m on Q.
    Returns float32 LLRs, ``len(z) * 2m``, ``LLR = ln P(b=0)/P(b=1)`` (positive means 0).
    """
    n = z.size
    nl = levels.size
    out = np.empty(n * 2 * m, dtype=np.float32)
    d = np.empty(nl, dtype=np.float32)
    for i in range(n):
        for ax in range(2):
            u = z[i].real if ax == 0 else z[i].imag
            for lab in range(nl):
                e = u - levels[lab]
                d[lab] = e * e
            for b in range(m):
                d0 = np.float32(3.0e38)
                d1 = np.float32(3.0e38)
                sh = m - 1 - b
                for lab in range(nl):
                    if (lab >> sh) & 1:
                        if d[lab] < d1:
                            d1 = d[lab]
                    elif d[lab] < d0:
                        d0 = d[lab]
                out[i * 2 * m + ax * m + b] = w[i] * (d1 - d0)
    return out


@njit(cache=True, nogil=True)
def sc_blocks(r: np.ndarray, lag: int, block: int):  # pragma: no cover - numba
    """Block sums over a complex64 stream for the Schmidl-Cox metric.

    Returns ``(p, e)``: ``p[i] = sum_{m in [iB, iB+B)} conj(r[m]) r[m+lag]`` for the
    ``(len(r) - lag) // B`` complete blocks and ``e[i] = sum_{m in [iB, iB+B)} |r[m]|^2`` for the
    ``len(r) // B`` complete blocks (complex128 / float64 accumulators).
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
        for m in range(base, base + block):
            x = r[m]
            acc_e += x.real * x.real + x.imag * x.imag
            if i < nbp:
                y = r[m + lag]
                acc_pr += x.real * y.real + x.imag * y.imag
                acc_pi += x.real * y.imag - x.imag * y.real
        e[i] = acc_e
        if i < nbp:
            p[i] = complex(acc_pr, acc_pi)
    return p, e
