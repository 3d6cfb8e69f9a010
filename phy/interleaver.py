"""Per-OFDM-symbol bit interleaver (16e CC interleaver, digest §4.3).

``m_k = (Ncbps/d) (k mod d) + floor(k/d)``, ``j_k = s floor(m_k/s) + (m_k + Ncbps - floor(d m_k /
Ncbps)) mod s`` with ``s = ceil(Ncpc/2)``; input bit k goes to output position j_k. The digest's
d = 16 does not divide Ncbps for P2.5 (204 data subcarriers), so d = 12 is used for every profile
(Ncbps = 17 * n_pru * Ncpc is always a multiple of 12): adjacent coded bits land 34/68/136
subcarriers apart for QPSK at 5/10/20 MHz.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

DEPTH = 12


@lru_cache(maxsize=64)
def permutation(ncbps: int, ncpc: int) -> np.ndarray:
    """``j`` such that ``out[j[k]] = in[k]`` (int64, read-only)."""
    if ncbps % DEPTH:
        raise ValueError("Ncbps must be a multiple of the interleaver depth")
    s = max(1, (ncpc + 1) // 2)
    k = np.arange(ncbps)
    m = (ncbps // DEPTH) * (k % DEPTH) + k // DEPTH
    j = s * (m // s) + (m + ncbps - (DEPTH * m) // ncbps) % s
    assert np.array_equal(np.sort(j), k)
    j.setflags(write=False)
    return j


def interleave(bits: np.ndarray, ncbps: int, ncpc: int) -> np.ndarray:
    """Interleave a whole number of symbols: ``bits`` is (n_sym * ncbps,) or (n_sym, ncbps)."""
    b = bits.reshape(-1, ncbps)
    out = np.empty_like(b)
    out[:, permutation(ncbps, ncpc)] = b
    return out.reshape(bits.shape)


def deinterleave(llr: np.ndarray, ncbps: int, ncpc: int) -> np.ndarray:
    """Inverse of :func:`interleave` (works on LLRs)."""
    b = llr.reshape(-1, ncbps)
    return b[:, permutation(ncbps, ncpc)].reshape(llr.shape)
