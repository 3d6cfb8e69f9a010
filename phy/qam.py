"""Gray square QAM (digest §4.6) and max-log demapping (§4.7).

Convention (round-trip tested): a symbol's bits are (b0..b_{2m-1}); the first m ride on I, the next
m on Q. Per axis the label's first bit is the sign (0 -> +), and the magnitude is Gray-coded:
QPSK 1 level; 16QAM amplitude bit 0 -> 3, 1 -> 1; 64QAM (b1 b2) 00 -> 7, 01 -> 5, 11 -> 3,
10 -> 1. Normalised to unit average symbol energy (1/sqrt(2), 1/sqrt(10), 1/sqrt(42)).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from phy.errors import PhyInputError
from phy.kernels import demap_maxlog, qam_map

BITS: dict[str, int] = {"QPSK": 2, "16QAM": 4, "64QAM": 6}
_MAG = {1: [1], 2: [3, 1], 3: [7, 5, 1, 3]}  # magnitude by (Gray) magnitude-label index
_NORM = {1: 1 / np.sqrt(2), 2: 1 / np.sqrt(10), 3: 1 / np.sqrt(42)}


@lru_cache(maxsize=8)
def axis_levels(m: int) -> np.ndarray:
    """float32 PAM level for each m-bit axis label (label MSB = sign bit)."""
    mags = _MAG[m]
    half = len(mags)
    lv = np.empty(2 * half, dtype=np.float64)
    for lab in range(2 * half):
        sign = -1.0 if (lab >> (m - 1)) & 1 else 1.0
        lv[lab] = sign * mags[lab & (half - 1)]
    out = (lv * _NORM[m]).astype(np.float32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=8)
def constellation(bps: int) -> np.ndarray:
    """complex64 point for each bps-bit label (first bit = MSB of the label)."""
    m = bps // 2
    lv = axis_levels(m)
    labels = np.arange(1 << bps)
    pts = (lv[labels >> m] + 1j * lv[labels & ((1 << m) - 1)]).astype(np.complex64)
    pts.setflags(write=False)
    return pts


def modulate(bits: np.ndarray, bps: int) -> np.ndarray:
    """0/1 bits (length multiple of bps) -> complex64 unit-energy symbols."""
    b = np.asarray(bits, np.uint8).reshape(-1)
    if b.size % bps:
        raise ValueError(f"{b.size} bits are not whole {bps}-bit symbols")
    return qam_map(np.ascontiguousarray(b), bps, constellation(bps))


@lru_cache(maxsize=8)
def demap_tables(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Cell tables for :func:`phy.kernels.demap_maxlog` (m bits per axis).

    Cells are 2A wide with edges at the even multiples of the level spacing A (the midpoints
    of the PAM levels), two outer cells extend to infinity. Within a cell the nearest level
    with bit b = 0 / 1 is fixed; it is found here by brute force at the cell centre, which is
    exact because every Voronoi edge of each bit's level subset is such a midpoint."""
    lv = axis_levels(m).astype(np.float64)
    a = float(np.min(np.abs(lv)))
    nc = lv.size
    centres = (np.arange(nc) - nc // 2 + 0.5) * 2 * a
    alpha = np.empty((nc, m), np.float32)
    beta = np.empty((nc, m), np.float32)
    nearest = np.empty(nc, np.float32)
    labels = np.arange(nc)
    for c, u in enumerate(centres):
        d = (u - lv) ** 2
        nearest[c] = lv[np.argmin(d)]
        for b in range(m):
            bit = (labels >> (m - 1 - b)) & 1
            l0 = lv[bit == 0][np.argmin(d[bit == 0])]
            l1 = lv[bit == 1][np.argmin(d[bit == 1])]
            alpha[c, b] = 2 * (l0 - l1)
            beta[c, b] = l1 * l1 - l0 * l0
    return alpha, beta, nearest, 1.0 / (2 * a)


def demodulate_with_error(z: np.ndarray, w: np.ndarray, bps: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Max-log LLRs (float32, positive means 0) for equalised symbols ``z`` with weights ``w``
    = 1/s2 per symbol (s2 = complex noise variance after equalisation), plus the squared
    distance of each symbol to its nearest constellation point."""
    zz = np.ascontiguousarray(z, dtype=np.complex64).ravel()
    llr = np.empty(zz.size * bps, dtype=np.float32)
    err = demodulate_into(zz, w, bps, _identity(llr.size), llr)
    return llr, err


@lru_cache(maxsize=32)
def _identity(n: int) -> np.ndarray:
    """``arange(n)`` as a read-only int64 map (plain demapping; its bound is checked once)."""
    out = np.arange(n, dtype=np.int64)
    out.setflags(write=False)
    return out


def demodulate_into(z: np.ndarray, w: np.ndarray, bps: int, dest: np.ndarray,
                    out: np.ndarray) -> np.ndarray:
    """Max-log demapping that writes the LLR of demapped bit ``p`` to ``out[dest[p]]`` (skipped
    where ``dest[p] < 0``); ``dest`` int64 of length ``len(z) * bps``, ``out`` float32.
    Returns the squared distance of each symbol to its nearest point (float32)."""
    if out.dtype != np.float32 or out.ndim != 1 or not out.flags.c_contiguous:
        raise PhyInputError("out must be a contiguous 1-D float32 array")
    zz, ww = checked_scatter(z, w, bps, dest, out.size)
    alpha, beta, nearest, inv_cell = demap_tables(bps // 2)
    return demap_maxlog(zz, ww, alpha, beta, nearest, inv_cell, dest, out)


def checked_scatter(z: np.ndarray, w: np.ndarray, bps: int, dest: np.ndarray,
                    n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``z`` and ``w`` as contiguous complex64 / float32 vectors once the scatter map ``dest``
    is proved to fit them and an ``n_out``-value output (the demapping kernels do not
    bounds-check), else :class:`PhyInputError`."""
    zz = np.ascontiguousarray(z, dtype=np.complex64).ravel()
    ww = np.ascontiguousarray(w, dtype=np.float32).ravel()
    if ww.size != zz.size:
        raise PhyInputError(f"w has {ww.size} weights for {zz.size} symbols")
    if dest.shape != (zz.size * bps,) or dest.dtype != np.int64:
        raise PhyInputError("dest must be int64 of length len(z) * bps")
    if dest.size and _max_index(dest) >= n_out:
        raise PhyInputError("dest points past the end of out")
    return zz, ww


_MAX_CACHE: dict[int, tuple[np.ndarray, int]] = {}


def _max_index(dest: np.ndarray) -> int:
    """``dest.max()``, remembered for read-only maps (the modem's cached scatter maps: a pass
    over ~50 k indices per burst otherwise). The cache holds a reference, so an id is never
    reused while its entry lives."""
    if dest.flags.writeable:
        return int(dest.max())
    hit = _MAX_CACHE.get(id(dest))
    if hit is not None and hit[0] is dest:
        return hit[1]
    if len(_MAX_CACHE) >= 64:  # bounded: each entry keeps its map alive
        _MAX_CACHE.clear()
    m = int(dest.max())
    _MAX_CACHE[id(dest)] = (dest, m)
    return m


def demodulate(z: np.ndarray, w: np.ndarray, bps: int) -> np.ndarray:
    """Max-log LLRs only (see :func:`demodulate_with_error`)."""
    return demodulate_with_error(z, w, bps)[0]


def hard_decision(z: np.ndarray, bps: int) -> np.ndarray:
    """Nearest constellation point per symbol (complex64), per axis."""
    m = bps // 2
    lv = np.sort(axis_levels(m))

    def axis(u: np.ndarray) -> np.ndarray:
        idx = np.clip(np.searchsorted((lv[1:] + lv[:-1]) / 2, u), 0, lv.size - 1)
        return lv[idx]

    return (axis(z.real) + 1j * axis(z.imag)).astype(np.complex64)
