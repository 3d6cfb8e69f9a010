"""numba kernels behind plain numpy signatures.

Each kernel processes a whole batch in one call, is compiled with ``cache=True`` for exactly the
dtypes documented here (callers convert first, so there is one signature per kernel), and has a
straightforward twin in ``tests/phy/naive.py`` that the tests compare it with.

* :func:`prbs` — Fibonacci LFSR ``s[i] = s[i-a] xor s[i-m]`` (randomizer, pilot sequence).
* :func:`conv_encode_k7` — the zero-tailed rate-1/2 K=7 convolutional encoder.
* :func:`demap_maxlog` — exact max-log LLRs for Gray square QAM (cell tables).
* :func:`tx_burst` — the transmit burst from the IFFT outputs: CP, window ramps, low-pass,
  scaling and limiter in two passes.
* :func:`robust_combine` — QPSK LLRs of a repeated code word, descrambled and summed per
  code-word position (header, A-MAP).

The K=7 Viterbi decoders live in :mod:`phy.viterbi_float` (:func:`viterbi_k7`, float32
metrics), :mod:`phy.viterbi_kernels` (:func:`viterbi_k7_simd`, int16) and
:mod:`phy.viterbi_lanes` (its 128-bit-lane layout); the receiver's other kernels live by job in
:mod:`phy.sync_kernels` (burst detection, carrier offset, timing), :mod:`phy.channel_kernels`
(FFT windows, channel estimation, equalisation) and :mod:`phy.track_kernels` (pilot phase
tracking). The names that lived here before that split are re-exported here; kernels added
since are imported from their own module.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from phy.channel_kernels import (  # noqa: F401 - re-exported: they lived here before
    _phasors,
    equalize,
    gather_windows,
    gather_windows_ramp,
    lmmse_band,
    pdp_window,
    place_conj,
    preamble_estimate,
    shrink_project,
    shrink_project_ramp,
    smooth_channel,
)
from phy.sync_kernels import (  # noqa: F401 - re-exported: they lived here before
    _cdot,
    cp_corr,
    diff_corr,
    first_path,
    sc_blocks,
    sc_metric,
    sum_iq,
)
from phy.track_kernels import (  # noqa: F401 - re-exported: they lived here before
    _cis_ramp,
    _cpe_given_slope,
    phase_trend,
    track_phase,
    track_phase_prior,
    track_phase_wls,
)
from phy.viterbi_float import (  # noqa: F401 - re-exported: they lived here before
    _F32,
    _I32,
    _I64,
    _J,
    _V32,
    _V64,
    BFLY_SX,
    BFLY_SY,
    G1,
    G2,
    _lanes,
    _parity,
    _viterbi_forward,
    viterbi_k7,
)
from phy.viterbi_kernels import (  # noqa: F401 - re-exported: they lived here before
    _I16,
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
    _W16,
    V16_Q_MAX,
    V16_Q_MEAN,
    V16_SPLIT_MIN,
    V16_TB_SPLIT_MIN,
    _v16_acs1,
    _v16_acs2,
    _v16_acs4,
    _v16_bfly_index,
    _v16_make_acs,
    _v16_same_relative,
    _v16_state_lane,
    _v16_store8,
    _v16_trace_four,
    acs_i16,
    v16_branch_table,
    v16_forward,
    v16_llr_scale,
    v16_traceback,
    viterbi_k7_i16,
    viterbi_k7_simd,
)
from phy.viterbi_lanes import (  # noqa: F401 - re-exported: they lived here before
    V16L_SPREAD,
    _v16l_acs,
    acs_i16_lanes,
    v16_forward_lanes,
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
        out[2 * i] = _parity7(h & m1)
        out[2 * i + 1] = _parity7(h & m2)
    return out


@njit(cache=True, nogil=True, inline="always")
def _parity7(x: int) -> int:  # pragma: no cover - numba
    """Parity of the 7-bit history bits a generator mask keeps (the code bit it emits)."""
    x ^= x >> 4
    x ^= x >> 2
    x ^= x >> 1
    return x & 1


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


@njit(cache=True, nogil=True)
def tx_encode_map(data: np.ndarray, n_info: int, seq: np.ndarray, m1: int, m2: int,
                  sent: np.ndarray, pad: np.ndarray, g: np.ndarray, x: np.ndarray, bps: int,
                  points: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - numba
    """A coded block from bytes to constellation points, in one pass (the transmit chain of
    :func:`phy.modem._encode_payload`, the padding, interleaving gather and
    :func:`phy.qam.modulate`, which took a dozen numpy calls and Python steps a block):

    info bit ``i < n_info`` is bit ``i`` of ``data`` (MSB first) XOR ``seq[i]`` (``seq``
    empty: nothing XORed); the K=7 mother code (generator masks ``m1``/``m2``, zero start and
    tail) keeps the bits at ``sent`` (puncturing), then come the ``pad`` bits: the stream
    ``b``; transmitted bit ``j`` is ``b[g[j]]`` XOR ``x[j]`` (``x`` empty: nothing); each
    ``bps`` of them, first bit the MSB, pick a point of ``points``, written to ``out``
    (``g.size // bps`` values). Raises ValueError for an index past its array."""
    n = n_info + 6
    if data.size * 8 < n_info or (seq.size and seq.size < n_info) \
            or (x.size and x.size < g.size) or out.size < g.size // bps:
        raise ValueError("tx_encode_map: an array is shorter than its count")
    mother = np.empty(2 * n, dtype=np.uint8)
    h = 0
    for i in range(n):
        b = 0
        if i < n_info:
            b = (data[i >> 3] >> (7 - (i & 7))) & 1
            if seq.size:
                b ^= seq[i] & 1
        h = ((h << 1) | b) & 0x7F
        mother[2 * i] = _parity7(h & m1)
        mother[2 * i + 1] = _parity7(h & m2)
    nc = sent.size
    stream = np.empty(nc + pad.size, dtype=np.uint8)
    for k in range(nc):
        j = sent[k]
        if j < 0 or j >= 2 * n:
            raise ValueError("tx_encode_map: a puncturing index is past the mother code")
        stream[k] = mother[j]
    for k in range(pad.size):
        stream[nc + k] = pad[k] & 1
    ns = stream.size
    for s in range(g.size // bps):
        lab = 0
        for q in range(bps):
            j = s * bps + q
            k = g[j]
            if k < 0 or k >= ns:
                raise ValueError("tx_encode_map: a gather index is past the coded bits")
            bit = stream[k]
            if x.size:
                bit ^= x[j] & 1
            lab = (lab << 1) | bit
        out[s] = points[lab]


@njit(cache=True, nogil=True)
def qam_map(bits: np.ndarray, bps: int, points: np.ndarray) -> np.ndarray:  # pragma: no cover
    """uint8 0/1 ``bits`` (a multiple of ``bps``) -> ``points[label]`` per group of ``bps``
    bits, the group's first bit the label's MSB: :func:`phy.qam.modulate` in one pass (numpy's
    integer matrix product for the labels and a gather cost ~2x as much)."""
    n = bits.size // bps
    out = np.empty(n, dtype=np.complex64)
    for i in range(n):
        lab = 0
        for b in range(bps):
            lab = (lab << 1) | (bits[i * bps + b] & 1)
        out[i] = points[lab]
    return out


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
    # pass 2: FIR (pairs of symmetric taps), scale -- block by block, the block in cache.
    # Four tap pairs a pass over the block: each value still adds its taps one by one in
    # order m = 1, 2, .. (the same float32 sums), with a quarter of the accumulator's loads
    # and stores (load/store-bound: 46 -> 33 us for a 7200-sample burst, 33 taps)
    out = np.empty(n, dtype=np.complex64)
    of = out.view(np.float32)
    blk = 2048
    acc = np.empty(blk, dtype=np.float32)
    hc = h[c]
    sc = np.float32(scale)
    for b0 in range(0, 2 * n, blk):
        nb = min(blk, 2 * n - b0)
        base = b0 + 2 * c
        mid = xp[base: base + nb]
        for i in range(nb):
            acc[i] = mid[i] * hc
        m = 1
        while m + 3 <= c:
            h1, h2, h3, h4 = h[c + m], h[c + m + 1], h[c + m + 2], h[c + m + 3]
            l1 = xp[base - 2 * m: base - 2 * m + nb]
            u1 = xp[base + 2 * m: base + 2 * m + nb]
            l2 = xp[base - 2 * m - 2: base - 2 * m - 2 + nb]
            u2 = xp[base + 2 * m + 2: base + 2 * m + 2 + nb]
            l3 = xp[base - 2 * m - 4: base - 2 * m - 4 + nb]
            u3 = xp[base + 2 * m + 4: base + 2 * m + 4 + nb]
            l4 = xp[base - 2 * m - 6: base - 2 * m - 6 + nb]
            u4 = xp[base + 2 * m + 6: base + 2 * m + 6 + nb]
            for i in range(nb):
                a = acc[i]
                a += (l1[i] + u1[i]) * h1
                a += (l2[i] + u2[i]) * h2
                a += (l3[i] + u3[i]) * h3
                a += (l4[i] + u4[i]) * h4
                acc[i] = a
            m += 4
        while m <= c:
            hm = h[c + m]
            lo = xp[base - 2 * m: base - 2 * m + nb]
            hi = xp[base + 2 * m: base + 2 * m + nb]
            for i in range(nb):
                acc[i] += (lo[i] + hi[i]) * hm
            m += 1
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
