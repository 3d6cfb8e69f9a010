"""Per-OFDM-symbol bit interleaver (16e CC interleaver, digest §4.3).

``m_k = (Ncbps/d) (k mod d) + floor(k/d)``, ``j_k = s floor(m_k/s) + (m_k + Ncbps - floor(d m_k /
Ncbps)) mod s`` with ``s = ceil(Ncpc/2)``; input bit k goes to output position j_k.

Depth: the formula is a permutation only when ``d`` divides Ncbps and ``s`` divides Ncbps/d.
The digest's (16e OFDMA) ``d = 16`` satisfies both for every MCS of the 16m profiles (5/10/20 MHz:
Ncbps = 408/816/1632 x Ncpc), so they use it. The half-width Pluto profile P2.5 has 204 data
subcarriers: 408 (QPSK) and 1224 (64QAM) are not multiples of 16 and 816/16 = 51 (16QAM) is odd,
so P2.5 uses ``d = 12`` (Ncbps = 17 n_pru Ncpc always fits: Ncbps/12 = 34, 68, 102 for P2.5).
Adjacent coded bits land Ncbps/d positions apart: 51/102/204 subcarriers for QPSK at 5/10/20 MHz.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from phy.errors import PhyInputError

DEPTH = 16  # digest §4.3 (16e OFDMA)
FALLBACK_DEPTH = 12  # P2.5, where the formula is no permutation with 16


def depth(ncbps: int, ncpc: int) -> int:
    """Interleaver depth for blocks of ``ncbps`` bits of ``ncpc``-bit symbols: 16 (digest) when
    the 16e formula is a permutation with it, else 12 (see the module doc)."""
    if ncbps <= 0:
        raise PhyInputError(f"Ncbps must be positive, got {ncbps}")
    s = max(1, (ncpc + 1) // 2)
    for d in (DEPTH, FALLBACK_DEPTH):
        if ncbps % d == 0 and (ncbps // d) % s == 0:
            return d
    raise PhyInputError(f"Ncbps = {ncbps} fits neither depth 16 nor 12 for {ncpc}-bit symbols")


@lru_cache(maxsize=64)
def permutation(ncbps: int, ncpc: int) -> np.ndarray:
    """``j`` such that ``out[j[k]] = in[k]`` (int64, read-only)."""
    d = depth(ncbps, ncpc)
    s = max(1, (ncpc + 1) // 2)
    k = np.arange(ncbps)
    m = (ncbps // d) * (k % d) + k // d
    j = s * (m // s) + (m + ncbps - (d * m) // ncbps) % s
    seen = np.zeros(ncbps, dtype=bool)   # a permutation: every index once (a sort: 10x slower)
    seen[j] = True
    assert seen.all()
    j.setflags(write=False)
    return j


def invert(perm: np.ndarray) -> np.ndarray:
    """The inverse of the permutation *perm* (``inv[perm[k]] = k``): with ``perm`` a scatter
    ``out[perm] = in``, ``out = in[inv]`` is the same reordering as a gather (a fifth of the
    scatter's cost on long blocks). int64, read-only."""
    inv = np.empty(perm.size, np.int64)
    inv[perm] = np.arange(perm.size)
    inv.setflags(write=False)
    return inv


@lru_cache(maxsize=64)
def inverse_permutation(ncbps: int, ncpc: int) -> np.ndarray:
    """:func:`invert` of :func:`permutation`: ``out = in[inv]`` interleaves one symbol
    (int64, read-only)."""
    return invert(permutation(ncbps, ncpc))


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
