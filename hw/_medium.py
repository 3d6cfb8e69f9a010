"""Compiled inner loops of the loopback medium (numba, cached on disk).

Imported lazily by :mod:`hw.loopback` on the first rendered window, so that importing ``hw``
(``relaysec doctor``, the Pluto backend) does not pay for numba.

:func:`resample_rotate_add` is the medium's hot loop: every burst a receiver hears when the two
radios' sample clocks differ (they always do on a simulated cell: each crystal has its own ppm)
is evaluated at the receiver's sample instants with the band-limited interpolator of
:mod:`hw.channels`, turned by the carrier offset and added to the receiver's window -- one pass
over the window instead of numpy's gather, einsum, ``exp`` and add (four passes, four
temporaries, ~200 ns a sample before).
"""

from __future__ import annotations

import cmath
import math

import numba
import numpy as np

#: Samples between exact evaluations of the carrier phasor (the rotation is advanced by a
#: complex multiply in between: drift ~1e-15 rad, far below the 12-bit ADC's grid).
ANCHOR = 32


@numba.njit(cache=True, inline="always")
def _one_sample(y: np.ndarray, z: np.ndarray, p: float, j: int, table: np.ndarray,
                scale: complex) -> None:  # pragma: no cover - compiled
    """``y[j] += scale * z(p)``, ``z(p)`` as :func:`resample_rotate_add` defines it, tap by tap
    (the edges of *z*, and the few blocks :func:`resample_rotate_add` cannot filter whole)."""
    n_ph = table.shape[0] - 1
    taps = table.shape[1]
    half = taps // 2
    nz = z.shape[0]
    fi = math.floor(p)
    ph = (p - fi) * n_ph
    row = int(ph)
    if row >= n_ph:
        row = n_ph - 1
    elif row < 0:      # only for a non-finite position: never index before the table
        row = 0
    a = np.float32(ph - row)
    b = np.float32(1.0) - a
    first = int(fi) - half + 1
    if first + taps <= 0 or first >= nz:
        return
    acc = np.complex64(0)
    for o in range(max(0, -first), min(taps, nz - first)):
        acc += (table[row, o] * b + table[row + 1, o] * a) * z[first + o]
    y[j] += np.complex64(acc * scale)


@numba.njit(cache=True, nogil=True)
def resample_rotate_add(y: np.ndarray, z: np.ndarray, p0: float, step: float, j_lo: int,
                        j_hi: int, table: np.ndarray, gain: complex, th0: float,
                        dth: float) -> None:  # pragma: no cover - compiled
    """``y[j] += gain * exp(1j (th0 + j dth)) * z(p0 + j step)`` for ``j`` in ``[j_lo, j_hi)``.

    ``z(p)`` is the band-limited signal with samples *z* (zero outside them) at fractional
    position *p*, by the tabulated windowed sinc *table* (rows: fractional phases ``r / R``,
    ``R = rows - 1``; columns: sample offsets ``-half+1 .. half``), linearly interpolated
    between rows -- the same kernel as :func:`hw.channels.sample_at`.

    Blocks of :data:`ANCHOR` outputs. Between two clocks a few ppm apart each output reads one
    input sample further and the table row changes every ~50 outputs (at 20 ppm), so a block
    reads two or three rows: one real FIR over *z* per row (loops over the block that LLVM
    vectorises), mixed per output as ``(1 - a) F_r + a F_r+1`` with the output's own row
    ``r`` and fraction ``a`` -- the sum of weighting each tap first, in another order (float32
    rounding apart). A block that skips or repeats an input sample (once per 1/ppm outputs),
    changes row more than once, or reaches past an end of *z*, goes tap by tap."""
    n_ph = table.shape[0] - 1
    taps = table.shape[1]
    half = taps // 2
    nz = z.shape[0]
    zf = z.view(np.float32)
    stp = cmath.exp(1j * dth)
    fir = np.empty((3, 2 * ANCHOR), np.float32)
    j = j_lo
    while j < j_hi:
        jb = min(j + ANCHOR, j_hi)
        nb = jb - j
        rot = cmath.exp(1j * (th0 + j * dth))
        p_a = p0 + j * step
        p_b = p0 + (jb - 1) * step
        fa = math.floor(p_a)
        fb = math.floor(p_b)
        row_a = int((p_a - fa) * n_ph)
        row_b = int((p_b - fb) * n_ph)
        rl = min(row_a, row_b)
        nr = 2 + abs(row_b - row_a)  # rows of the table the block reads: 2, or 3 across a change
        first = int(fa) - half + 1
        if not (fb - fa == nb - 1 and nr <= 3 and rl >= 0 and rl + nr - 1 <= n_ph
                and first >= 0 and first + nb - 1 + taps <= nz):
            for jj in range(j, jb):
                _one_sample(y, z, p0 + jj * step, jj, table, gain * rot)
                rot *= stp
            j = jb
            continue
        f0 = fir[0]
        f1 = fir[1]
        f2 = fir[2]
        for m in range(2 * nb):
            f0[m] = 0.0
            f1[m] = 0.0
            f2[m] = 0.0
        for o in range(taps):
            # a slice, so the loops' index is provably >= 0: numba's negative-index wrap on
            # zf[base + m] turned the loads into scalar gathers (5x slower)
            zs = zf[2 * (first + o): 2 * (first + o + nb)]
            c0 = table[rl, o]
            c1 = table[rl + 1, o]
            if nr == 2:
                for m in range(2 * nb):
                    v = zs[m]
                    f0[m] += c0 * v
                    f1[m] += c1 * v
            else:
                c2 = table[rl + 2, o]
                for m in range(2 * nb):
                    v = zs[m]
                    f0[m] += c0 * v
                    f1[m] += c1 * v
                    f2[m] += c2 * v
        for k in range(nb):
            p = p0 + (j + k) * step
            ph = (p - math.floor(p)) * n_ph
            r = min(max(int(ph) - rl, 0), nr - 2)
            a = np.float32(ph - (rl + r))
            b = np.float32(1.0) - a
            acc = complex(b * fir[r, 2 * k] + a * fir[r + 1, 2 * k],
                          b * fir[r, 2 * k + 1] + a * fir[r + 1, 2 * k + 1])
            y[j + k] += np.complex64(acc * gain * rot)
            rot *= stp
        j = jb


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = 1.0 / 9007199254740992.0


@numba.njit(cache=True, inline="always")
def _splitmix(x: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mix."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _ziggurat_tables(layers: int = 128, r: float = 3.442619855899,
                     v: float = 9.91256303526217e-3) -> tuple[np.ndarray, np.ndarray]:
    """Layer edges ``x[0..layers]`` (``x[0] = v / f(r)``, ``x[1] = r``, ``x[layers] = 0``) and
    the ratios ``x[i+1] / x[i]`` of the 128-layer ziggurat for the standard normal (Marsaglia &
    Tsang 2000, in Doornik's 2005 form: each layer has area ``v``)."""
    x = np.zeros(layers + 1)
    f = math.exp(-0.5 * r * r)
    x[0], x[1] = v / f, r
    for i in range(2, layers):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    return x, x[1:] / x[:-1]


_ZX, _ZR = _ziggurat_tables()
_DRAWS = 30   # random words one normal may use (an exhausted budget: p < 1e-50)


@numba.njit(cache=True, inline="always")
def _uniform(h: np.uint64) -> float:  # pragma: no cover - compiled
    """[0, 1) from the top 53 bits of *h*."""
    return float(h >> np.uint64(11)) * _TWO53


@numba.njit(cache=True, inline="always")
def _normal(key: np.uint64, ctr: np.uint64) -> float:  # pragma: no cover - compiled
    """Standard normal number *ctr* of stream *key* by the ziggurat: its random words are
    SplitMix64 outputs ``32 ctr + 1, 32 ctr + 2, ...`` of the stream (one in 99 % of cases)."""
    base = ctr << np.uint64(5)
    d = np.uint64(1)
    x = 0.0
    while d < np.uint64(_DRAWS):
        h = _splitmix(key + (base + d) * _GOLDEN)
        d += np.uint64(1)
        i = int(h & np.uint64(127))            # layer: the low 7 bits; u: the top 53
        u = 2.0 * _uniform(h) - 1.0
        if abs(u) < _ZR[i]:
            return u * _ZX[i]                  # inside the layer's rectangle
        if i == 0:                             # the tail beyond x[1] (Marsaglia 1964)
            r = _ZX[1]
            while d < np.uint64(_DRAWS):
                a = _uniform(_splitmix(key + (base + d) * _GOLDEN))
                b = _uniform(_splitmix(key + (base + d + np.uint64(1)) * _GOLDEN))
                d += np.uint64(2)
                xt = -math.log(1.0 - a) / r
                if -2.0 * math.log(1.0 - b) >= xt * xt:
                    return -(r + xt) if u < 0 else r + xt
            return -r if u < 0 else r
        x = u * _ZX[i]
        f0 = math.exp(-0.5 * (_ZX[i] * _ZX[i] - x * x))
        f1 = math.exp(-0.5 * (_ZX[i + 1] * _ZX[i + 1] - x * x))
        w = _uniform(_splitmix(key + (base + d) * _GOLDEN))
        d += np.uint64(1)
        if f1 + w * (f0 - f1) < 1.0:
            return x                           # under the density in the wedge
    return x


@numba.njit(cache=True, nogil=True)
def gaussian_noise(out: np.ndarray, key: np.uint64, k0: int, scale: float
                   ) -> None:  # pragma: no cover - compiled
    """``out[j]`` = complex Gaussian noise of sample ``k0 + j`` of the stream *key*, each of its
    real and imaginary parts of standard deviation *scale*.

    Counter-based: sample ``k`` depends only on ``(key, k)`` -- its parts are the standard
    normals ``2k`` and ``2k + 1`` of the stream (:func:`_normal`, a ziggurat on SplitMix64) --
    so a window's noise does not depend on how the receiver split its windows, and nothing is
    drawn for samples never rendered (a block generator drew whole 8192-sample blocks for every
    4000-sample window). ~10 ns a sample (Philox + numpy's ziggurat: ~20)."""
    for j in range(out.shape[0]):
        c = np.uint64(2 * (k0 + j))
        out[j] = complex(scale * _normal(key, c), scale * _normal(key, c + np.uint64(1)))


#: Pooled noise (:func:`pooled_noise`): a stream is read from the pool in blocks of
#: ``2**POOL_BLOCK_BITS`` samples, each from its own position and in its own orientation.
POOL_BLOCK_BITS = 12


@numba.njit(cache=True, inline="always")
def _rotate_run(dst: np.ndarray, src: np.ndarray, cr: float, ci: float, a: float, c: float,
                run: int) -> None:  # pragma: no cover - compiled
    """``dst[2t], dst[2t+1] = re cr + im a, re ci + im c`` (in doubles, stored as float32) for
    the *run* complex samples ``re, im = src[2t], src[2t+1]``: :func:`pooled_noise`'s turn."""
    for t in range(run):
        re = np.float64(src[2 * t])
        im = np.float64(src[2 * t + 1])
        dst[2 * t] = np.float32(re * cr + im * a)
        dst[2 * t + 1] = np.float32(re * ci + im * c)


@numba.njit(cache=True, nogil=True)
def pooled_noise(out: np.ndarray, pool: np.ndarray, key: np.uint64, k0: int, scale: float
                 ) -> None:  # pragma: no cover - compiled
    """``out[j]`` = receiver noise of sample ``k0 + j`` of the stream *key*, read from *pool*
    (complex Gaussian samples of unit variance per part, a power-of-two count) times *scale*.

    Block ``b = k >> POOL_BLOCK_BITS`` of the stream reads the pool from position ``h mod P`` on,
    turned by a quarter turn ``0..3`` and conjugated or not (the eight symmetries of a circular
    complex Gaussian), all three from ``h = SplitMix64(key, b)``. Sample ``k`` still depends
    only on ``(key, k)`` (window splits do not matter, as for :func:`gaussian_noise`), and a
    sample costs a load and a multiply instead of two ziggurat draws (~1-2 ns instead of ~12):
    the emulator renders noise for every sample of four 2.8 MS/s streams."""
    mask = pool.shape[0] - 1
    size = pool.shape[0]
    n = out.shape[0]
    of = out.view(np.float32)
    pf = pool.view(np.float32)
    j = 0
    while j < n:
        k = k0 + j
        b = k >> POOL_BLOCK_BITS
        h = _splitmix(key + np.uint64(b + 1) * _GOLDEN)
        off = int(h & np.uint64(mask))
        turn = int((h >> np.uint64(60)) & np.uint64(3))
        conj = -1.0 if (h >> np.uint64(63)) else 1.0
        cr = scale if turn == 0 else (-scale if turn == 2 else 0.0)
        ci = scale if turn == 1 else (-scale if turn == 3 else 0.0)
        end = min(n, ((b + 1) << POOL_BLOCK_BITS) - k0)
        base = off + k0 - (b << POOL_BLOCK_BITS)  # pool index of out[i]: base + i
        # (re + i conj im)(cr + i ci), the conjugation folded into the coefficients (a
        # product with +-1 is exact, x - y is x + -y: the same doubles, signed zeros too),
        # over runs contiguous in the pool: a loop LLVM vectorises (~2.5 -> 1.2 ns a sample)
        a = -(conj * ci)
        c = conj * cr
        i = j
        while i < end:
            p = (base + i) & mask
            run = min(end - i, size - p)
            _rotate_run(of[2 * i:2 * (i + run)], pf[2 * p:2 * (p + run)], cr, ci, a, c, run)
            i += run
        j = end


@numba.njit(cache=True, nogil=True)
def quantise_12bit_inplace(y: np.ndarray) -> int:  # pragma: no cover - compiled
    """:func:`hw.radio.quantise_12bit` in place on complex64 *y* (one pass instead of numpy's
    five): each component rounded half-to-even to the grid ``k / 2048``, ``k`` clipped to
    [-2048, 2047]; returns the number of components that were beyond full scale."""
    f = y.view(np.float32)
    clipped = 0
    scale = np.float32(2048.0)
    lsb = np.float32(1.0 / 2048.0)
    for i in range(f.shape[0]):
        c = np.rint(f[i] * scale)
        if c > np.float32(2047.0):
            c = np.float32(2047.0)
            clipped += 1
        elif c < np.float32(-2048.0):
            c = np.float32(-2048.0)
            clipped += 1
        f[i] = c * lsb
    return clipped


@numba.njit(cache=True, nogil=True)
def to_codes_12bit(f: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[i] = clip(rint(f[i] * 2048), -2048, 2047)`` as int16 (float32 *f*, one pass): the
    emulator's samples as the AD9361's 12-bit codes on the wire, what ``READBUF`` sends
    (numpy took four passes: multiply, rint, clip, cast)."""
    scale = np.float32(2048.0)
    for i in range(f.shape[0]):
        c = np.rint(f[i] * scale)
        if c > np.float32(2047.0):
            c = np.float32(2047.0)
        elif c < np.float32(-2048.0):
            c = np.float32(-2048.0)
        out[i] = np.int16(c)


#: Words :func:`nonzero_span` ORs together before looking at them one by one.
_SPAN_BLOCK = 64


@numba.njit(cache=True, nogil=True)
def nonzero_span(words: np.ndarray, mask: np.integer) -> tuple[int, int]:  # pragma: no cover
    """``(a, b)``: from the first to one past the last of *words* (unsigned ints) with a bit of
    *mask* set, ``(0, 0)`` when none has. Scans in from both ends and stops at the first hit:
    a streaming client's TX block is mostly zeros around one burst, so the emulator finds the
    burst without a pass over the whole block (numpy's mask + two ``argmax``: ~100 us a
    16800-sample push; this, ~5 us for an all-zero one, less with a burst)."""
    n = words.shape[0]
    a = 0
    while a + _SPAN_BLOCK <= n:  # whole silent blocks: an OR over each (vectorised)
        acc = mask ^ mask
        for i in range(a, a + _SPAN_BLOCK):
            acc |= words[i]
        if acc & mask:
            break
        a += _SPAN_BLOCK
    while a < n and (words[a] & mask) == 0:
        a += 1
    if a == n:
        return 0, 0
    b = n
    while b - _SPAN_BLOCK > a:
        acc = mask ^ mask
        for i in range(b - _SPAN_BLOCK, b):
            acc |= words[i]
        if acc & mask:
            break
        b -= _SPAN_BLOCK
    while (words[b - 1] & mask) == 0:
        b -= 1
    return a, b


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels with the argument types the medium
    uses."""
    table = np.zeros((3, 4), np.float32)
    table.setflags(write=False)  # as the medium's cached kernel table (readonly is a numba type)
    y = np.zeros(4, np.complex64)
    resample_rotate_add(y, np.ones(4, np.complex64), 0.5, 1.0, 0, 4, table, 1 + 0j, 0.0, 0.0)
    gaussian_noise(y, np.uint64(1), 0, 1.0)
    pooled_noise(y, np.ones(8, np.complex64), np.uint64(1), 0, 1.0)
    quantise_12bit_inplace(y)
    to_codes_12bit(y.view(np.float32), np.zeros(8, np.int16))
    # the emulator's types: a pushed block's complex64 as uint64 (writable, or the shared
    # read-only zeros of an all-zero push) and its int16 wire words as uint32
    frozen = np.zeros(4, np.uint64)
    frozen.setflags(write=False)
    for words in (y.view(np.uint64), frozen):
        nonzero_span(words, np.uint64(0x7FFF_FFFF_7FFF_FFFF))
    nonzero_span(np.zeros(4, np.uint32), np.uint32(0xFFFF_FFFF))


__all__ = ["ANCHOR", "POOL_BLOCK_BITS", "gaussian_noise", "nonzero_span", "pooled_noise",
           "quantise_12bit_inplace", "resample_rotate_add", "to_codes_12bit", "warm_up"]
