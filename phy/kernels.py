"""numba kernels behind plain numpy signatures.

Each kernel processes a whole batch in one call, is compiled with ``cache=True`` for exactly the
dtypes documented here (callers convert first, so there is one signature per kernel), and has a
straightforward twin in ``tests/phy/naive.py`` that the tests compare it with.

* :func:`prbs` — Fibonacci LFSR ``s[i] = s[i-a] xor s[i-m]`` (randomizer, pilot sequence).
* :func:`viterbi_k7` — soft-decision Viterbi for the K=7 (171,133) rate-1/2 code, zero-terminated.
* :func:`viterbi_k7_simd` — the same code with int16 SIMD path metrics (see ``phy/viterbi.py``);
  :func:`viterbi_k7_i16` on pre-scaled LLRs.
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
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

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


_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V32 = ir.VectorType(_F32, 32)
_V64 = ir.VectorType(_F32, 64)


def _lanes(idx: range | list[int]) -> ir.Constant:
    """A shufflevector mask."""
    idx = list(idx)
    return ir.Constant(ir.VectorType(_I32, len(idx)), idx)


@intrinsic
def _viterbi_forward(typingctx, llr, sx, sy, pm, dec, n):  # pragma: no cover - numba
    """The add-compare-select recursion of :func:`viterbi_k7` as one loop on LLVM vectors.

    The 64 path metrics live in one ``<64 x float>`` value carried from step to step (a phi),
    never stored to memory in between: a scalar loop over the 32 butterflies was bound by the
    latency of storing the metrics and loading them back each step. Step t reads
    ``llr[2t], llr[2t+1]``; the butterfly of states (2j, 2j+1) -> (j, j+32) splits the metrics
    into even and odd states with two shuffles; survivor decisions go to ``dec[t]`` (bit s =
    decision of new state s). Every second step subtracts new state 0's metric first, exactly
    as the scalar form did, so the float32 arithmetic -- and every decision -- is the same.
    Plain vector IR (fadd/fsub/fcmp/select/shuffle): legal on every target LLVM supports.
    ``pm`` (64 float32) holds the initial metrics.
    """
    f32 = [x for x in (llr, sx, sy, pm) if isinstance(x, types.Array) and x.dtype == types.float32
           and x.layout == "C"]
    if len(f32) != 4 or not (isinstance(dec, types.Array) and dec.dtype == types.uint64):
        return None  # numba reports "no implementation" for other dtypes/layouts
    sig = types.void(llr, sx, sy, pm, dec, n)

    def codegen(context, builder, signature, args):
        a = signature.args

        def data(i: int) -> ir.Value:
            return context.make_array(a[i])(context, builder, args[i]).data

        llrp, decp, n_ = data(0), data(4), args[5]
        sxv = builder.load(builder.bitcast(data(1), _V32.as_pointer()), align=4)
        syv = builder.load(builder.bitcast(data(2), _V32.as_pointer()), align=4)
        undef32 = ir.Constant(_V32, ir.Undefined)
        undef64 = ir.Constant(_V64, ir.Undefined)
        one, two = ir.Constant(_I64, 1), ir.Constant(_I64, 2)

        def splat(x: ir.Value) -> ir.Value:
            v = builder.insert_element(undef32, x, ir.Constant(_I32, 0))
            return builder.shuffle_vector(v, undef32, _lanes([0] * 32))

        def step(p: ir.Value, t: ir.Value, ref: ir.Value | None) -> ir.Value:
            lx = builder.load(builder.gep(llrp, [builder.mul(t, two)]))
            ly = builder.load(builder.gep(llrp, [builder.add(builder.mul(t, two), one)]))
            a0 = builder.shuffle_vector(p, undef64, _lanes(range(0, 64, 2)))
            a1 = builder.shuffle_vector(p, undef64, _lanes(range(1, 64, 2)))
            if ref is not None:
                r = splat(ref)
                a0, a1 = builder.fsub(a0, r), builder.fsub(a1, r)
            b = builder.fadd(builder.fmul(sxv, splat(lx)), builder.fmul(syv, splat(ly)))
            m00, m01 = builder.fadd(a0, b), builder.fsub(a1, b)
            m10, m11 = builder.fsub(a0, b), builder.fadd(a1, b)
            c0 = builder.fcmp_ordered(">", m01, m00)
            c1 = builder.fcmp_ordered(">", m11, m10)
            lo, hi = builder.select(c0, m01, m00), builder.select(c1, m11, m10)
            word = builder.or_(
                builder.zext(builder.bitcast(c0, _I32), _I64),
                builder.shl(builder.zext(builder.bitcast(c1, _I32), _I64), ir.Constant(_I64, 32)),
            )
            builder.store(word, builder.gep(decp, [t]))
            return builder.shuffle_vector(lo, hi, _lanes(range(64)))

        pmp = builder.bitcast(data(3), _V64.as_pointer())
        pm0 = builder.load(pmp, align=4)
        entry = builder.basic_block
        head = builder.append_basic_block("vit.head")
        body = builder.append_basic_block("vit.body")
        tail = builder.append_basic_block("vit.tail")
        last = builder.append_basic_block("vit.last")
        done = builder.append_basic_block("vit.done")
        builder.branch(head)
        builder.position_at_end(head)
        t = builder.phi(_I64)
        p = builder.phi(_V64)
        t.add_incoming(ir.Constant(_I64, 0), entry)
        p.add_incoming(pm0, entry)
        builder.cbranch(builder.icmp_signed("<", builder.add(t, one), n_), body, tail)
        builder.position_at_end(body)
        nm = step(p, t, None)  # (x - 0.0 == x: the scalar form's first step subtracted 0)
        p2 = step(nm, builder.add(t, one), builder.extract_element(nm, ir.Constant(_I32, 0)))
        t.add_incoming(builder.add(t, two), builder.basic_block)
        p.add_incoming(p2, builder.basic_block)
        builder.branch(head)
        builder.position_at_end(tail)
        builder.cbranch(builder.icmp_signed("<", t, n_), last, done)
        builder.position_at_end(last)
        step(p, t, None)
        builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def viterbi_k7(llr: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Soft Viterbi decoder for the K=7 (171,133) code.

    ``llr``: float32, length 2*n, interleaved (X0, Y0, X1, Y1, ...), positive means bit 0,
    zero for punctured positions. The trellis starts and ends in state 0 (the last 6 of the n
    steps are the zero tail). Returns n uint8 decisions (tail included).
    State = the last 6 input bits, newest in bit 5; next = (u << 5) | (s >> 1).

    Speed: the forward recursion is one loop on LLVM vectors (:func:`_viterbi_forward`, 1.65x
    the scalar loop it replaced, same decisions); every second step subtracts new state 0's
    metric to keep the float32 metrics bounded. Survivor decisions are packed 64 per word
    (8 bytes/step instead of 64: fewer cache misses on long bursts).
    """
    if sx.size != 32 or sy.size != 32:
        raise ValueError("sx and sy must hold the 32 butterfly signs (BFLY_SX, BFLY_SY)")
    n = llr.size // 2
    pm = np.full(64, -1.0e9, dtype=np.float32)
    pm[0] = 0.0
    dec = np.empty(n, dtype=np.uint64)
    _viterbi_forward(np.ascontiguousarray(llr), np.ascontiguousarray(sx),
                     np.ascontiguousarray(sy), pm, dec, n)
    out = np.empty(n, dtype=np.uint8)
    s = 0
    for t in range(n - 1, -1, -1):
        out[t] = s >> 5
        s = 2 * (s & 31) + int((dec[t] >> np.uint64(s)) & np.uint64(1))
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


# --- int16 SIMD Viterbi (issue 15; design and API notes in phy/viterbi.py, which re-exports
# these under shorter names). Kept in this module because numba compiles these functions from
# their bytecode: the fuzz workers leave phy.kernels uninstrumented for that reason.

V16_Q_MAX = 800
V16_Q_MEAN = 50
_V16_NEG = -32768  # metric of the states not yet reachable from state 0 (saturates there)


_I16 = ir.IntType(16)
_W16 = ir.VectorType(_I16, 32)


def _v16_bfly_index() -> np.ndarray:
    """Per butterfly j, which of (s, d, -s, -d) (s = lx + ly, d = lx - ly) is the branch
    ``sx[j] lx + sy[j] ly`` of the (2j, u=0) transition."""
    same = BFLY_SX == BFLY_SY
    pos = BFLY_SX > 0
    return np.where(same, np.where(pos, 0, 2), np.where(pos, 1, 3)).astype(np.int32)


_V16_BIDX = _v16_bfly_index()
# The lane layout of the add-compare-select: lane L carries butterfly _V16_PI[L]. Butterfly j's
# branch is +-s where j0 == j4 and +-d where they differ (the generators' difference 171o ^ 133o
# taps D^1 and D^5), so with j = L ^ L4 every even lane carries +-s and every odd lane +-d: one
# broadcast (s, d) word gives all 32 branches up to sign. Where the sign is negative
# (_V16_FLIP), the lane's two outputs simply trade places (its "lo" output is state j + 32).
_V16_PI = [L ^ ((L >> 4) & 1) for L in range(32)]
_V16_FLIP = [bool(_V16_BIDX[_V16_PI[L]] >= 2) for L in range(32)]
# decision-word repair, in general registers: bit L of the low half belongs to state
# _V16_PI[L] (+32 where flipped), so swap the flipped lanes' bits between the halves, then
# the adjacent bit pairs of each half's upper 16 lanes (_V16_PI swaps those butterflies)
_V16_MFLIP = sum(1 << L for L in range(32) if _V16_FLIP[L])
_V16_MPAIR = 0x5555_0000_5555_0000


def _v16_state_lane(n: int) -> int:
    """Where new state n lands in the step's outputs: lane (0..31) of "lo", or 32 + lane of
    "hi" (the two-source shuffle index)."""
    j = n & 31
    lane = _V16_PI[j]  # (_V16_PI is its own inverse)
    return lane if (n < 32) != _V16_FLIP[lane] else 32 + lane


def _v16_make_acs(k: int) -> object:
    """The add-compare-select recursion for ``k`` independent chains interleaved in one loop.

    ``_acs(tab, dec, pm, pm_out, starts, nsteps)``: ``tab`` int32 [n], per step the int16
    pair (s, d), s = lx + ly, d = lx - ly (:func:`v16_branch_table`); ``dec`` uint64 [n]
    out (bit s = the decision of new state s: 1 = the odd predecessor); ``pm`` int16 [64 k]
    in, ``pm_out`` (may be ``pm``) out, chain c's metrics in state order at
    ``pm[64c:64c+64]``; chain c runs steps ``starts[c] .. starts[c] + nsteps - 1``.

    Per chain the 64 metrics are two ``<32 x i16>`` values (even and odd states) carried
    across steps; lane L holds butterfly j = _V16_PI[L]: old states 2j (even) and 2j+1 (odd)
    -> new states j and j+32, then two permutes reorder the new metrics into even/odd. The
    step's 32 branch metrics are one broadcast 32-bit (s, d) load (the lane layout puts the
    s-type butterflies on even lanes; a negative sign swaps the lane's two outputs, which the
    permutes and the decision-word repair undo), so no shuffle feeds the branches.
    ``m_odd > m_even`` picks the survivor, as in the float kernel (same ties). Four steps per
    iteration; the fourth subtracts state 0's metric of the iteration's start
    (renormalisation, folded into the branch metrics so it is off the metric chain). One
    chain is bound by the latency of that chain (add, max, permute); more chains fill the
    idle issue slots, which is why :func:`v16_forward` splits a block.
    """

    @intrinsic
    def _acs(typingctx, tab, dec, pm, pm_out, starts, nsteps):  # pragma: no cover - numba
        ok = (isinstance(tab, types.Array) and tab.dtype == types.int32 and tab.layout == "C"
              and isinstance(dec, types.Array) and dec.dtype == types.uint64
              and dec.layout == "C" and isinstance(pm, types.Array)
              and pm.dtype == types.int16 and pm.layout == "C" and pm_out == pm
              and isinstance(starts, types.Array) and starts.dtype == types.int64
              and starts.layout == "C")
        if not ok:
            return None
        sig = types.void(tab, dec, pm, pm_out, starts, nsteps)

        def codegen(context, builder, signature, args):
            a = signature.args
            mod = builder.module

            def data(i: int) -> ir.Value:
                return context.make_array(a[i])(context, builder, args[i]).data

            def fn(name: str) -> ir.Function:
                fty = ir.FunctionType(_W16, [_W16, _W16])
                return mod.globals.get(name) or ir.Function(mod, fty, name)

            sadd, ssub = fn("llvm.sadd.sat.v32i16"), fn("llvm.ssub.sat.v32i16")
            tabp, decp, pmp, outp, stp = data(0), data(1), data(2), data(3), data(4)
            n_ = args[5]
            v16i = ir.VectorType(_I32, 16)
            w64 = ir.VectorType(_I16, 64)
            undef = ir.Constant(_W16, ir.Undefined)
            one, four = ir.Constant(_I64, 1), ir.Constant(_I64, 4)
            c32 = ir.Constant(_I64, 32)
            base = [builder.load(builder.gep(stp, [ir.Constant(_I64, c)])) for c in range(k)]
            tab32 = tabp  # i32: one (s, d) pair a step
            idx_e = _lanes([_v16_state_lane(2 * _V16_PI[L]) for L in range(32)])
            idx_o = _lanes([_v16_state_lane(2 * _V16_PI[L] + 1) for L in range(32)])

            def branch(t: ir.Value) -> ir.Value:
                w = builder.load(builder.gep(tab32, [t]), align=4)
                v = builder.insert_element(ir.Constant(v16i, ir.Undefined), w,
                                           ir.Constant(_I32, 0))
                v = builder.shuffle_vector(v, ir.Constant(v16i, ir.Undefined), _lanes([0] * 16))
                return builder.bitcast(v, _W16)

            def repair(word: ir.Value) -> ir.Value:
                # lane bits -> state bits (see _V16_MFLIP); general-register work, off the
                # vector pipes that bound the loop
                x = builder.and_(builder.xor(word, builder.lshr(word, c32)),
                                 ir.Constant(_I64, _V16_MFLIP))
                word = builder.xor(word, builder.or_(x, builder.shl(x, c32)))
                x = builder.and_(builder.xor(word, builder.lshr(word, one)),
                                 ir.Constant(_I64, _V16_MPAIR))
                return builder.xor(word, builder.or_(x, builder.shl(x, one)))

            def step(ev: ir.Value, od: ir.Value, t: ir.Value,
                     r: ir.Value | None) -> tuple[ir.Value, ir.Value]:
                b = branch(t)
                p, q = b, b
                if r is not None:  # renormalise: subtract r from every metric, via the branches
                    p, q = builder.sub(b, r), builder.add(b, r)
                m00, m11 = builder.call(sadd, [ev, p]), builder.call(sadd, [od, p])
                m10, m01 = builder.call(ssub, [ev, q]), builder.call(ssub, [od, q])
                c0 = builder.icmp_signed(">", m01, m00)
                c1 = builder.icmp_signed(">", m11, m10)
                lo, hi = builder.select(c0, m01, m00), builder.select(c1, m11, m10)
                word = builder.or_(builder.zext(builder.bitcast(c0, _I32), _I64),
                                   builder.shl(builder.zext(builder.bitcast(c1, _I32), _I64),
                                               c32))
                builder.store(repair(word), builder.gep(decp, [t]))
                return (builder.shuffle_vector(lo, hi, idx_e),
                        builder.shuffle_vector(lo, hi, idx_o))

            def pm_ptr(c: int, base: ir.Value = pmp) -> ir.Value:
                return builder.bitcast(builder.gep(base, [ir.Constant(_I64, 64 * c)]),
                                       w64.as_pointer())

            init = []
            for c in range(k):
                w = builder.load(pm_ptr(c), align=2)
                init.append((builder.shuffle_vector(w, w, _lanes([2 * j for j in _V16_PI])),
                             builder.shuffle_vector(w, w, _lanes([2 * j + 1 for j in _V16_PI]))))
            entry = builder.basic_block
            head = builder.append_basic_block("vit16.head")
            body = builder.append_basic_block("vit16.body")
            tail = builder.append_basic_block("vit16.tail")
            last = builder.append_basic_block("vit16.last")
            done = builder.append_basic_block("vit16.done")
            builder.branch(head)
            builder.position_at_end(head)
            t = builder.phi(_I64)
            t.add_incoming(ir.Constant(_I64, 0), entry)
            st = []
            for c in range(k):
                e, o = builder.phi(_W16), builder.phi(_W16)
                e.add_incoming(init[c][0], entry)
                o.add_incoming(init[c][1], entry)
                st.append((e, o))
            builder.cbranch(builder.icmp_signed("<", builder.add(t, ir.Constant(_I64, 3)), n_),
                            body, tail)
            builder.position_at_end(body)
            refs = []
            for c in range(k):
                v = builder.insert_element(undef, builder.extract_element(st[c][0],
                                           ir.Constant(_I32, 0)), ir.Constant(_I32, 0))
                refs.append(builder.shuffle_vector(v, undef, _lanes([0] * 32)))
            cur = list(st)
            for j in range(4):  # the chains' steps interleaved, step by step
                for c in range(k):
                    tc = builder.add(builder.add(base[c], t), ir.Constant(_I64, j))
                    cur[c] = step(cur[c][0], cur[c][1], tc, refs[c] if j == 3 else None)
            t.add_incoming(builder.add(t, four), builder.basic_block)
            for c in range(k):
                st[c][0].add_incoming(cur[c][0], builder.basic_block)
                st[c][1].add_incoming(cur[c][1], builder.basic_block)
            builder.branch(head)
            # the last nsteps % 4 steps, one per pass (at most 3: no renormalisation needed)
            builder.position_at_end(tail)
            t2 = builder.phi(_I64)
            t2.add_incoming(t, head)
            st2 = []
            for c in range(k):
                e, o = builder.phi(_W16), builder.phi(_W16)
                e.add_incoming(st[c][0], head)
                o.add_incoming(st[c][1], head)
                st2.append((e, o))
            builder.cbranch(builder.icmp_signed("<", t2, n_), last, done)
            builder.position_at_end(last)
            for c in range(k):
                e, o = step(st2[c][0], st2[c][1], builder.add(base[c], t2), None)
                st2[c][0].add_incoming(e, last)
                st2[c][1].add_incoming(o, last)
            t2.add_incoming(builder.add(t2, one), last)
            builder.branch(tail)
            builder.position_at_end(done)
            for c in range(k):  # metrics back in state order
                w = builder.shuffle_vector(st2[c][0], st2[c][1],
                                           _lanes([_V16_PI[i // 2] + 32 * (i % 2)
                                                   for i in range(64)]))
                builder.store(w, pm_ptr(c, outp), align=2)
            return context.get_dummy_value()

        return sig, codegen

    return _acs


_v16_acs1 = _v16_make_acs(1)
_v16_acs2 = _v16_make_acs(2)
_v16_acs4 = _v16_make_acs(4)

V16_SPLIT_MIN = 640  # forward: shorter blocks run as one chain (4 chains from 4x this)
V16_TB_SPLIT_MIN = 256  # traceback: shorter blocks run as one chain (else 4)
_V16_CHUNK = 16  # steps between checks of the second half's convergence
_V16_SNAPS = 12  # checks before a continuation decodes the whole segment itself (192 steps)


@intrinsic
def _v16_store8(typingctx, buf, pos, val):  # pragma: no cover - numba
    """``buf[pos:pos + 8] = val`` (uint64, little-endian) as one unaligned store; no bounds
    check: the callers keep ``pos + 8 <= buf.size``."""
    if not (isinstance(buf, types.Array) and buf.dtype == types.uint8 and buf.layout == "C"):
        return None
    sig = types.void(buf, pos, val)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), _I64.as_pointer())
        builder.store(args[2], ptr, align=1)
        return context.get_dummy_value()

    return sig, codegen


# a byte of history bits -> 8 bytes of 0/1 (bit k -> byte k): copy the byte into all eight,
# keep bit k of byte k, then move it to the byte's bit 0 (adding 0x7f carries into bit 7
# exactly when the kept bit is set; no byte overflows)
_V16_ONES = np.uint64(0x0101_0101_0101_0101)
_V16_DIAG = np.uint64(0x8040_2010_0804_0201)
_V16_SEVENS = np.uint64(0x7F7F_7F7F_7F7F_7F7F)


@njit(cache=True, nogil=True)
def _v16_trace_four(dec: np.ndarray, buf: np.ndarray, q: int) -> np.ndarray:  # pragma: no cover
    """The four interleaved chains of :func:`v16_traceback`, q steps each (q a multiple of
    8): chain c < 3 from step (c + 1) q - 1 down to c q starting in state 0 (a guess), chain
    3 (exact) from step n - 1 down to n - q; every 8 steps a chain stores its 8 new decision
    bits as 0/1 bytes at ``buf[t + 2 .. t + 9]`` (t the group's lowest step) in one 8-byte
    store. Returns the histories of chains 0 .. 3. (Its own function: inside the caller the
    loop ran 10 % slower, short of registers.)"""
    one = np.uint64(1)
    m = np.uint64(63)
    ff = np.uint64(255)
    two = np.uint64(2)
    uq = np.uint64(q)
    ta = np.uint64(dec.size)
    tb = np.uint64(3) * uq
    tc = np.uint64(2) * uq
    td = uq
    a = np.uint64(0)
    b = np.uint64(0)
    c = np.uint64(0)
    d = np.uint64(0)
    for _ in range(q // 8):
        for _ in range(8):
            ta -= one
            tb -= one
            tc -= one
            td -= one
            a = a + a + ((dec[ta] >> (a & m)) & one)
            b = b + b + ((dec[tb] >> (b & m)) & one)
            c = c + c + ((dec[tc] >> (c & m)) & one)
            d = d + d + ((dec[td] >> (d & m)) & one)
        y = ((a & ff) * _V16_ONES) & _V16_DIAG
        _v16_store8(buf, ta + two, ((y + _V16_SEVENS) >> np.uint64(7)) & _V16_ONES)
        y = ((b & ff) * _V16_ONES) & _V16_DIAG
        _v16_store8(buf, tb + two, ((y + _V16_SEVENS) >> np.uint64(7)) & _V16_ONES)
        y = ((c & ff) * _V16_ONES) & _V16_DIAG
        _v16_store8(buf, tc + two, ((y + _V16_SEVENS) >> np.uint64(7)) & _V16_ONES)
        y = ((d & ff) * _V16_ONES) & _V16_DIAG
        _v16_store8(buf, td + two, ((y + _V16_SEVENS) >> np.uint64(7)) & _V16_ONES)
    out = np.empty(4, dtype=np.uint64)
    out[0] = d
    out[1] = c
    out[2] = b
    out[3] = a
    return out


@njit(cache=True, nogil=True)
def v16_traceback(dec: np.ndarray, split_min: int = 256) -> np.ndarray:  # pragma: no cover
    """Bits from packed survivor decisions, ending (and starting) in state 0.

    A chain keeps its history H = 2 H + decision, the state being H's low 6 bits (the shift
    takes only those): three single-cycle operations a step. The decision read at step t is
    input bit t - 6, so it goes straight to ``out[t - 6]`` (``out`` is ``buf[8:8 + n]``; the
    last 6 outputs are the tail's zeros). Blocks of at least ``split_min`` steps (0 = never;
    at least 64) run four chains interleaved over a quarter q (a multiple of 8) each
    (:func:`_v16_trace_four`): the exact one from the end, three from a guessed state (0).
    Then, boundary by boundary from the top, where the exact state differs from the guess
    the quarter below is traced again from the exact state until it meets the guessed path
    (same state at the same step: from there on the paths are one), so the output is
    exactly that of one chain."""
    n = dec.size
    buf = np.empty(n + 16, dtype=np.uint8)
    for i in range(n + 2, n + 16):
        buf[i] = 0
    q = (n // 4) & ~7 if split_min > 0 and n >= max(split_min, 64) else 0
    one = np.uint64(1)
    m = np.uint64(63)
    a = np.uint64(0)  # chain 3's history (or the only chain's)
    ta = np.uint64(n)
    bottom = np.uint64(0)
    if q > 0:
        ends = _v16_trace_four(dec, buf, q)
        a = ends[3]
        ta = np.uint64(n - q)
        bottom = np.uint64(3 * q)
    # one chain step by step: the whole block, or chain 3's last n - 4q (< 36) steps
    while ta > bottom:
        ta -= one
        bit = (dec[ta] >> (a & m)) & one
        buf[ta + np.uint64(2)] = np.uint8(bit)
        a = a + a + bit
    if q == 0:
        return buf[8:8 + n]
    s = np.int64(a & m)
    for w in range(2, -1, -1):
        hi = (w + 1) * q  # quarter w: steps w q .. hi - 1, traced from state 0 after hi - 1
        own = np.int64(ends[w] & m)
        if s == 0:
            s = own
            continue
        t = hi - 1
        met = False
        while t >= w * q:  # s: the exact state after step t
            if t <= hi - 7:
                spec = 0  # the guessed path's state after step t, from its bits
                for i in range(6):
                    spec |= int(buf[t + 8 - i]) << (5 - i)
                if spec == s:
                    met = True
                    break
            buf[t + 8] = s >> 5
            s = 2 * (s & 31) + int((dec[t] >> np.uint64(s)) & np.uint64(1))
            t -= 1
        if met:
            s = own
        else:  # the bits below the quarter, out[w q - 6 .. w q - 1], are the exact state's
            for i in range(6):
                buf[w * q + 7 - i] = (s >> (5 - i)) & 1
    return buf[8:8 + n]


@njit(cache=True, nogil=True)
def _v16_same_relative(a: np.ndarray, b: np.ndarray, off: int) -> bool:  # pragma: no cover
    """Whether a[:64] and b[off:off + 64] differ by one constant (then every later decision
    agrees)."""
    d = np.int32(a[0]) - np.int32(b[off])
    for i in range(1, 64):  # noqa: SIM110 - a loop numba compiles
        if np.int32(a[i]) - np.int32(b[off + i]) != d:
            return False
    return True


@njit(cache=True, nogil=True)
def v16_forward(tab: np.ndarray, split_min: int = V16_SPLIT_MIN) -> np.ndarray:  # pragma: no cover
    """Packed decisions of the whole block, identical to one chain from state 0.

    Split (blocks of at least ``split_min`` steps into 2 segments, of 4 ``split_min`` into
    4; 0 = never): chain 0 decodes the first segment from state 0 while chain c decodes
    segment c from all-equal metrics, all interleaved (several chains in flight). Then, at
    each boundary in turn, the exact metrics reaching it continue over the next segment,
    ``_V16_CHUNK`` steps at a time, until they differ from that segment's chain at the same step
    by one constant: from there on every comparison, hence every decision, is the same in
    both, so the segment's remaining decisions stand; the continuation rewrites the ones
    before. (Without that within ``_V16_SNAPS`` checks, the continuation decodes the whole
    segment itself: slower, never different.)
    """
    n = tab.size
    dec = np.empty(n, dtype=np.uint64)
    if split_min <= 0 or n < max(split_min, 2):
        pm = np.full(64, _V16_NEG, dtype=np.int16)
        pm[0] = 0
        _v16_acs1(tab, dec, pm, pm, np.zeros(1, np.int64), n)
        return dec
    k = 4 if n >= 4 * split_min else 2
    seg = n // k
    nsnap = min(_V16_SNAPS, seg // _V16_CHUNK)
    # snaps[j]: every chain's metrics after j chunks; each chunk's kernel call reads one row
    # and writes the next (no copies); the last row then runs on to the segments' ends
    snaps = np.zeros((nsnap + 1, 64 * k), dtype=np.int16)
    for i in range(1, 64):
        snaps[0, i] = _V16_NEG
    starts = np.arange(k).astype(np.int64) * seg
    for j in range(nsnap):
        if k == 4:
            _v16_acs4(tab, dec, snaps[j], snaps[j + 1], starts, _V16_CHUNK)
        else:
            _v16_acs2(tab, dec, snaps[j], snaps[j + 1], starts, _V16_CHUNK)
        starts += _V16_CHUNK
    pm = snaps[nsnap]
    rest = seg - nsnap * _V16_CHUNK
    if rest > 0:
        if k == 4:
            _v16_acs4(tab, dec, pm, pm, starts, rest)
        else:
            _v16_acs2(tab, dec, pm, pm, starts, rest)
    one = np.zeros(1, np.int64)
    if n > k * seg:  # the last n % k steps: the last chain alone
        last = pm[64 * (k - 1):]
        one[0] = k * seg
        _v16_acs1(tab, dec, last, last, one, n - k * seg)
    incoming = pm[:64].copy()  # exact metrics (up to a constant) at the end of segment 0
    for c in range(1, k):
        end = n if c == k - 1 else (c + 1) * seg
        t = c * seg
        converged = False
        for j in range(nsnap):
            one[0] = t
            _v16_acs1(tab, dec, incoming, incoming, one, _V16_CHUNK)
            t += _V16_CHUNK
            if _v16_same_relative(incoming, snaps[j + 1], 64 * c):
                converged = True
                break
        if converged:
            incoming = pm[64 * c:64 * c + 64].copy()
        else:
            one[0] = t
            _v16_acs1(tab, dec, incoming, incoming, one, end - t)
    return dec


@njit(cache=True, nogil=True)
def v16_branch_table(llr: np.ndarray, scale: float, lim: float) -> np.ndarray:  # pragma: no cover
    """LLRs [2n] -> the decoder's per-step table: int32 [n], step t's word holding
    s = lx + ly in its low 16 bits and d = lx - ly in its high 16 bits (both int16), with
    ``lx = rint(clip(llr * scale, -lim, lim))`` (NaN -> 0)."""
    n = llr.size // 2
    # one 32-bit word a step (10-15 % faster than two 16-bit stores), which the kernel
    # broadcasts as it is
    tab = np.empty(n, dtype=np.int32)
    sc = np.float32(scale)
    hi = np.float32(lim)
    lo = np.float32(-lim)
    for t in range(n):
        x = llr[2 * t] * sc
        y = llr[2 * t + 1] * sc
        x = x if x == x else np.float32(0.0)  # NaN -> 0
        y = y if y == y else np.float32(0.0)
        lx = np.int32(np.rint(min(max(x, lo), hi)))
        ly = np.int32(np.rint(min(max(y, lo), hi)))
        tab[t] = ((lx + ly) & 0xFFFF) | ((lx - ly) << 16)
    return tab


@njit(cache=True, nogil=True)
def acs_i16(llr: np.ndarray, scale: float = 1.0,
            split_min: int = V16_SPLIT_MIN) -> np.ndarray:  # pragma: no cover - numba
    """Forward recursion only: LLRs [2n], quantised as ``rint(clip(llr * scale, -V16_Q_MAX,
    V16_Q_MAX))``, -> the n packed decision words (uint64). Exposed so tests can compare
    decisions word for word with the float recursion, and the split (``split_min``, see
    :func:`v16_forward`) with one chain."""
    return v16_forward(v16_branch_table(llr, scale, V16_Q_MAX), split_min)


@njit(cache=True, nogil=True)
def viterbi_k7_i16(llr: np.ndarray, scale: float = 1.0,
                   split_min: int = V16_SPLIT_MIN) -> np.ndarray:  # pragma: no cover - numba
    """Soft Viterbi with int16 metrics on ``rint(clip(llr * scale, -V16_Q_MAX, V16_Q_MAX))``:
    n uint8 bits, with the trellis, tail and output convention of :func:`viterbi_k7`.
    On integer LLRs with |llr| <= V16_Q_MAX and scale 1 no metric saturates. ``split_min``:
    the block length from which the forward and traceback passes run two chains."""
    return v16_traceback(acs_i16(llr, scale, split_min), split_min)


_V16_STRIDE = 31  # LLRs sampled for the scale: coprime with the interleave (2), puncturing (10)


@njit(cache=True, nogil=True)
def v16_llr_scale(llr: np.ndarray, q_max: float, q_mean: float) -> float:  # pragma: no cover
    """The quantisation scale max(q_max / max|llr|, q_mean / mean|llr|) over the non-zero,
    finite LLRs of every ``_V16_STRIDE``-th position (a sample: a full pass cost as much as a
    third of the decoder, a 1-in-7 one still 10 %; an LLR the sample missed above q_max is
    clipped, like outliers); 1.0 when the sample has none."""
    mx = 0.0
    sm = 0.0
    nz = 0
    for i in range(0, llr.size, _V16_STRIDE):
        v = abs(np.float64(llr[i]))
        if v > 0.0 and v < np.inf:
            mx = max(mx, v)
            sm += v
            nz += 1
    if nz == 0:
        return 1.0
    return max(q_max / mx, q_mean * nz / sm)


@njit(cache=True, nogil=True)
def viterbi_k7_simd(llr: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """Drop-in for :func:`phy.kernels.viterbi_k7` on float32 LLRs: int16 decode at the scale
    :func:`v16_llr_scale` picks (NaN LLRs count as 0, +-inf as +-V16_Q_MAX)."""
    # every argument explicit: an omitted default is a distinct numba type, and passing it on
    # compiled the whole call tree a second time (3 s on an empty cache). The leaves are
    # called directly (what viterbi_k7_i16 -> acs_i16 do): each njit level links its
    # callees' code in and optimises it again, so the two wrappers cost ~3 s of a cold start
    scale = v16_llr_scale(llr, V16_Q_MAX, V16_Q_MEAN)
    dec = v16_forward(v16_branch_table(llr, scale, V16_Q_MAX), V16_SPLIT_MIN)
    return v16_traceback(dec, V16_TB_SPLIT_MIN)
