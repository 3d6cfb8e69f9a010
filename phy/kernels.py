"""numba kernels behind plain numpy signatures.

Each kernel processes a whole batch in one call, is compiled with ``cache=True`` for exactly the
dtypes documented here (callers convert first, so there is one signature per kernel), and has a
straightforward twin in ``tests/phy/naive.py`` that the tests compare it with.

* :func:`prbs` — Fibonacci LFSR ``s[i] = s[i-a] xor s[i-m]`` (randomizer, pilot sequence).
* :func:`viterbi_k7` — soft-decision Viterbi for the K=7 (171,133) rate-1/2 code, zero-terminated.
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


@njit(cache=True, nogil=True)
def demap_maxlog(z: np.ndarray, w: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                 nearest: np.ndarray, inv_cell: float, dest: np.ndarray,
                 out: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """Exact max-log LLRs for Gray square QAM by cell lookup, scattered to ``out[dest[p]]``.

    Per axis value ``u`` the cell ``clip(floor(u * inv_cell) + nc/2, 0, nc-1)`` (cells are 2A
    wide, bounded by the midpoints of the PAM levels) fixes, for every bit, the nearest level
    with the bit 0 (``L0``) and with the bit 1 (``L1``), so
    ``LLR = w ((u-L1)^2 - (u-L0)^2) = w (alpha u + beta)`` with ``alpha = 2 (L0 - L1)`` and
    ``beta = L1^2 - L0^2`` tabulated per (cell, bit); ``nearest`` gives the hard decision.

    ``z`` complex64, ``w`` float32 (1/s2 per symbol); tables from ``phy.qam.demap_tables``.
    The first m bits of a symbol ride on I, the next m on Q; positive LLR means bit 0.
    The LLR of demapped bit ``p`` (symbol ``p // 2m``) is written to ``out[dest[p]]``
    (float32) and dropped where ``dest[p] < 0``: with ``dest = arange`` this is plain
    demapping; the modem passes a map that folds the deinterleaver and the depuncturer into
    this one pass, so the LLRs land directly in the decoder's input buffer.
    Returns ``err`` float32 [len(z)], the squared distance to the nearest point (for EVM).
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
    for i in range(n):
        wi = w[i]
        e = np.float32(0.0)
        for ax in range(2):
            u = z[i].real if ax == 0 else z[i].imag
            c = int(np.floor(u * inv_cell)) + half
            if c < 0:
                c = 0
            elif c >= nc:
                c = nc - 1
            base = i * 2 * m + ax * m
            for b in range(m):
                d = dest[base + b]
                if d >= 0:
                    out[d] = wi * (alpha[c, b] * u + beta[c, b])
            d = u - nearest[c]
            e += d * d
        err[i] = e
    return err


@njit(cache=True, nogil=True)
def equalize(Y: np.ndarray, H: np.ndarray, dpos: np.ndarray, cpe: np.ndarray, slope: np.ndarray,
             fidx: np.ndarray, inv_sigma2: float):  # pragma: no cover - numba
    """Phase-correct and zero-force the data subcarriers of a block of symbols.

    ``Y`` (n_sym, n_used) complex64; ``H`` (n_used,) complex64; ``dpos`` (n_sym, n_data) int64
    data positions; ``cpe``, ``slope`` (n_sym,) float64 phase model ``cpe + slope * fidx``;
    ``fidx`` (n_used,) float64 subcarrier frequency index. Returns ``z`` complex64 and LLR
    weights ``w = |H|^2 / sigma^2`` float32, both flattened (n_sym * n_data) in symbol order.
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
        h2 = h.real * h.real + h.imag * h.imag
        if h2 < 1e-30:
            h2 = 1e-30
        gr[k] = h.real / h2
        gi[k] = -h.imag / h2
        wk[k] = h2 * inv_sigma2
    for l in range(n_sym):
        # exp(-j ph_k) along the used band by recurrence (one cos/sin per symbol, not per bin)
        ph0 = cpe[l] + slope[l] * fidx[0]
        cr, ci = np.cos(ph0), np.sin(ph0)
        sr, si = np.cos(slope[l]), np.sin(slope[l])
        rc[0], rs[0] = cr, ci
        for k in range(1, n_used):
            steps = int(fidx[k] - fidx[k - 1])
            for _ in range(steps):
                cr, ci = cr * sr - ci * si, cr * si + ci * sr
            rc[k], rs[k] = cr, ci
        for j in range(n_data):
            k = dpos[l, j]
            y = Y[l, k]
            c = rc[k]
            s = rs[k]
            # y * exp(-j ph) * conj(h) / |h|^2
            yr = y.real * c + y.imag * s
            yi = y.imag * c - y.real * s
            idx = l * n_data + j
            z[idx] = complex(yr * gr[k] - yi * gi[k], yr * gi[k] + yi * gr[k])
            w[idx] = wk[k]
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
    for l in range(n_sym):
        bl[l] = c * (ls[l] + 1.0)
        acc = 0j
        for i in range(n_p):
            acc += z[l, i] * np.exp(-1j * bl[l] * fidx[pil_pos[l, i]])
        cpe[l] = np.arctan2(acc.imag, acc.real)
    return cpe, bl


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
    for l in range(n_sym):
        x = ls[l] + 1.0
        acc = 0j
        sw = 0.0
        swk = 0.0
        for i in range(n_p):
            k = pil_pos[l, i]
            h = H[k]
            z[l, i] = Y[l, k] * np.conj(h) * pil_val[l, i]
            zr[i] = z[l, i] * np.exp(-1j * c * x * fidx[k]) if c != 0.0 else z[l, i]
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
    phase ramp computed by recurrence (one sin/cos pair per call, not per subcarrier)."""
    r, m = U.shape
    vr = np.empty(m)
    vi = np.empty(m)
    cr = np.empty(m)
    ci = np.empty(m)
    sr, si = np.cos(dphi), -np.sin(dphi)
    ar, ai = np.cos(dphi * k0), -np.sin(dphi * k0)
    for j in range(m):
        cr[j] = ar
        ci[j] = ai
        x = v[j]
        vr[j] = x.real * ar + x.imag * ai  # v * conj(ramp)
        vi[j] = x.imag * ar - x.real * ai
        ar, ai = ar * sr - ai * si, ar * si + ai * sr
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


@njit(cache=True, nogil=True)
def diff_corr(Yfull: np.ndarray, bins: np.ndarray, c: np.ndarray,
              shifts: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """Differential correlation metric for the integer-CFO search.

    ``metric[g] = |sum_k Y[b_k + s_g] conj(Y[b_{k+1} + s_g]) c_k|`` (bins modulo NFFT) with
    ``Yfull`` complex64 (NFFT,), ``bins`` int64 used bins, ``c`` complex64 (len(bins)-1,)
    = ``conj(X_k) X_{k+1}``, ``shifts`` int64. Returns float64 (len(shifts),).
    """
    nfft = Yfull.size
    n = bins.size
    out = np.empty(shifts.size)
    for g in range(shifts.size):
        # bins are wrapped once per shift, outside the product loop (a Python-semantics modulo
        # per element was most of this kernel's time)
        sh = shifts[g] % nfft
        acc = 0j
        b = bins[0] + sh
        prev = Yfull[b - nfft if b >= nfft else b]
        for k in range(n - 1):
            b = bins[k + 1] + sh
            cur = Yfull[b - nfft if b >= nfft else b]
            acc += prev * np.conj(cur) * c[k]
            prev = cur
        out[g] = abs(acc)
    return out


@njit(cache=True, nogil=True)
def gather_windows(r: np.ndarray, s0: int, n_sym: int, stride: int, nfft: int,
                   w_step: float):  # pragma: no cover - numba
    """FFT windows ``r[s0 + l*stride + n]`` (n < nfft) of n_sym symbols, each sample rotated by
    ``exp(-j w_step (s0 + l*stride + n))`` (CFO removal; phase referenced to sample 0 of the
    buffer). ``r`` complex64; returns (n_sym, nfft) complex64. The phase is computed exactly at
    the start of every window and advanced by recurrence inside it."""
    out = np.empty((n_sym, nfft), dtype=np.complex64)
    sr, si = np.cos(w_step), -np.sin(w_step)
    for l in range(n_sym):
        base = s0 + l * stride
        ph = -w_step * base
        cr, ci = np.cos(ph), np.sin(ph)
        for n in range(nfft):
            x = r[base + n]
            out[l, n] = complex(x.real * cr - x.imag * ci, x.real * ci + x.imag * cr)
            cr, ci = cr * sr - ci * si, cr * si + ci * sr
    return out


@njit(cache=True, nogil=True)
def sc_blocks(r: np.ndarray, lag: int,
              block: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
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
    src = bodies.reshape(-1).view(np.float32)  # interleaved re, im
    # pass 1: the windowed burst, interleaved, with 2c zero values on each side for the FIR
    # (slices everywhere: an index that is a sum of variables gets a negative-index check per
    # element, which keeps LLVM from vectorising the loop)
    xp = np.zeros(2 * n + 4 * c, dtype=np.float32)
    for l in range(n_sym):
        body = src[2 * l * nfft: 2 * (l + 1) * nfft]
        sym = xp[2 * c + 2 * l * ns: 2 * c + 2 * (l + 1) * ns]
        sym[: 2 * cp] = body[2 * (nfft - cp):]
        sym[2 * cp:] = body
        if w > 0:
            for i in range(w):
                u = up[i]
                sym[2 * i] *= u
                sym[2 * i + 1] *= u
            if l > 0:
                prev = src[2 * (l - 1) * nfft: 2 * (l - 1) * nfft + 2 * w]
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


@njit(cache=True, nogil=True)
def gather_windows_ramp(r: np.ndarray, s0: int, n_sym: int, stride: int, nfft: int,
                        w_step: float, dw: np.ndarray):  # pragma: no cover - numba
    """:func:`gather_windows` with window ``l``'s samples further rotated by ``exp(-j dw[l]
    (n - (nfft - 1) / 2))``: a phase ramp of slope ``dw[l]`` rad/sample, zero at the window's
    centre (a symbol's phase-noise drift removed without moving its common phase)."""
    out = np.empty((n_sym, nfft), dtype=np.complex64)
    half = 0.5 * (nfft - 1)
    for l in range(n_sym):
        base = s0 + l * stride
        step = w_step + dw[l]
        ph = -w_step * base + dw[l] * half
        sr, si = np.cos(step), -np.sin(step)
        cr, ci = np.cos(ph), np.sin(ph)
        row = r[base: base + nfft]
        for n in range(nfft):
            x = row[n]
            out[l, n] = complex(x.real * cr - x.imag * ci, x.real * ci + x.imag * cr)
            cr, ci = cr * sr - ci * si, cr * si + ci * sr
    return out
