"""SIMD Viterbi for the K=7 (171,133) code: 16-bit saturating path metrics, 64 states as lanes.

The float decoder (:func:`phy.kernels.viterbi_k7`) carries its 64 float32 path metrics in four
512-bit registers and its add-compare-select is bound by the latency of that chain. This
decoder quantises the LLRs to int16 and keeps the metrics as two ``<32 x i16>`` vectors (even
and odd states), so one step is a handful of single-register operations: saturating add and
subtract (``vpaddsw``/``vpsubsw``), compare and max (``vpcmpgtw``/``vpmaxsw``), and two
two-source permutes that reorder the new metrics into even/odd states for the next step.
Survivor decisions are packed 64 per step into one uint64, as in the float decoder.

Instruction selection: the kernel is plain LLVM vector IR (``llvm.sadd.sat``/``llvm.ssub.sat``,
``icmp``/``select``, ``shufflevector``), compiled by numba for the host CPU, so LLVM picks
AVX-512BW, AVX2 or SSE2 forms from the features of the machine it runs on -- never an illegal
instruction. :func:`default_decoder` prefers this decoder where the CPU has AVX2 or AVX-512BW
(measured faster there, ``benchmarks/viterbi.py``) and the float decoder otherwise;
``RELAYSEC_VITERBI=float|int16`` forces either.

Equivalence: on integer LLRs the float32 and int16 sums are exact, and the decisions depend
only on metric differences, so as long as nothing saturates the two decoders take identical
decisions (tested). Renormalisation subtracts state 0's metric of two steps earlier every
second step, folded into the branch metrics so it is off the metric chain.

Quantisation (:func:`quantise_llrs`): scale = max(Q_MAX / max|llr|, Q_MEAN / mean|llr|),
round, clip to +-Q_MAX. Without outliers the largest LLR maps to Q_MAX; with outliers the mean
LLR maps to Q_MEAN and the few LLRs above Q_MAX (more than 16x the mean: near-certain bits)
are clipped. With |llr| <= Q_MAX the metrics stay within about 30 Q_MAX < 32767 (spread of a
K=7 trellis <= 6 steps x 4 Q_MAX, plus two steps of growth between renormalisations).
"""

from __future__ import annotations

import os

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from phy.kernels import BFLY_SX, BFLY_SY, viterbi_k7

Q_MAX = 800
Q_MEAN = 50
NEG = -32768  # metric of the states not yet reachable from state 0 (saturates there)


_I16 = ir.IntType(16)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_W = ir.VectorType(_I16, 32)


def _lanes(idx: range | list[int]) -> ir.Constant:
    """A shufflevector mask."""
    idx = list(idx)
    return ir.Constant(ir.VectorType(_I32, len(idx)), idx)


def _bfly_index() -> np.ndarray:
    """Per butterfly j, which of (s, d, -s, -d) (s = lx + ly, d = lx - ly) is the branch
    ``sx[j] lx + sy[j] ly`` of the (2j, u=0) transition."""
    same = BFLY_SX == BFLY_SY
    pos = BFLY_SX > 0
    return np.where(same, np.where(pos, 0, 2), np.where(pos, 1, 3)).astype(np.int32)


_BIDX = _bfly_index()


def _make_acs(k: int) -> object:
    """The add-compare-select recursion for ``k`` independent chains interleaved in one loop.

    ``_acs(tab, dec, pm, starts, nsteps)``: ``tab`` int16 [4n], per step (s, d, -s, -d) with
    s = lx + ly, d = lx - ly (:func:`branch_table`); ``dec`` uint64 [n] out (bit s = the
    decision of new state s: 1 = the odd predecessor); ``pm`` int16 [64 k] in/out, chain c's
    metrics in state order at ``pm[64c:64c+64]``; chain c runs steps ``starts[c] ..
    starts[c] + nsteps - 1``. Per chain the 64 metrics are two ``<32 x i16>`` values (even
    and odd states) carried across steps; butterfly j: old states 2j (even lane j) and 2j+1
    (odd lane j) -> new states j and j+32, then two permutes reorder the new metrics into
    even/odd. ``m_odd > m_even`` picks the survivor, as in the float kernel (same ties).
    Four steps per iteration; the fourth subtracts state 0's metric of the iteration's start
    (renormalisation, folded into the branch metrics so it is off the metric chain). One
    chain is bound by the latency of that chain (add, max, permute); two chains fill the
    idle issue slots, which is why :func:`_forward` splits a block in two.
    """

    @intrinsic
    def _acs(typingctx, tab, dec, pm, starts, nsteps):  # pragma: no cover - numba
        ok = (isinstance(tab, types.Array) and tab.dtype == types.int16 and tab.layout == "C"
              and isinstance(dec, types.Array) and dec.dtype == types.uint64
              and dec.layout == "C" and isinstance(pm, types.Array)
              and pm.dtype == types.int16 and pm.layout == "C"
              and isinstance(starts, types.Array) and starts.dtype == types.int64
              and starts.layout == "C")
        if not ok:
            return None
        sig = types.void(tab, dec, pm, starts, nsteps)

        def codegen(context, builder, signature, args):
            a = signature.args
            mod = builder.module

            def data(i: int) -> ir.Value:
                return context.make_array(a[i])(context, builder, args[i]).data

            def fn(name: str) -> ir.Function:
                fty = ir.FunctionType(_W, [_W, _W])
                return mod.globals.get(name) or ir.Function(mod, fty, name)

            sadd, ssub = fn("llvm.sadd.sat.v32i16"), fn("llvm.ssub.sat.v32i16")
            tabp, decp, pmp, stp = data(0), data(1), data(2), data(3)
            n_ = args[4]
            v4 = ir.VectorType(_I16, 4)
            w64 = ir.VectorType(_I16, 64)
            undef = ir.Constant(_W, ir.Undefined)
            one, four = ir.Constant(_I64, 1), ir.Constant(_I64, 4)
            bidx = _lanes([int(x) for x in _BIDX])
            base = [builder.load(builder.gep(stp, [ir.Constant(_I64, c)])) for c in range(k)]

            def branch(t: ir.Value) -> ir.Value:
                ptr = builder.bitcast(builder.gep(tabp, [builder.mul(t, four)]), v4.as_pointer())
                quad = builder.load(ptr, align=2)
                return builder.shuffle_vector(quad, ir.Constant(v4, ir.Undefined), bidx)

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
                word = builder.or_(
                    builder.zext(builder.bitcast(c0, _I32), _I64),
                    builder.shl(builder.zext(builder.bitcast(c1, _I32), _I64),
                                ir.Constant(_I64, 32)),
                )
                builder.store(word, builder.gep(decp, [t]))
                return (builder.shuffle_vector(lo, hi, _lanes(range(0, 64, 2))),
                        builder.shuffle_vector(lo, hi, _lanes(range(1, 64, 2))))

            def pm_ptr(c: int) -> ir.Value:
                return builder.bitcast(builder.gep(pmp, [ir.Constant(_I64, 64 * c)]),
                                       w64.as_pointer())

            init = []
            for c in range(k):
                w = builder.load(pm_ptr(c), align=2)
                init.append((builder.shuffle_vector(w, w, _lanes(range(0, 64, 2))),
                             builder.shuffle_vector(w, w, _lanes(range(1, 64, 2)))))
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
                e, o = builder.phi(_W), builder.phi(_W)
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
                e, o = builder.phi(_W), builder.phi(_W)
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
                                           _lanes([i // 2 + 32 * (i % 2) for i in range(64)]))
                builder.store(w, pm_ptr(c), align=2)
            return context.get_dummy_value()

        return sig, codegen

    return _acs


_acs1 = _make_acs(1)
_acs2 = _make_acs(2)
_acs4 = _make_acs(4)

SPLIT_MIN = 1024  # blocks shorter than this run as one chain (4 chains from 4x this)
_CHUNK = 16  # steps between checks of the second half's convergence
_SNAPS = 12  # checks before a continuation decodes the whole segment itself (192 steps)


@njit(cache=True, nogil=True)
def _trace_two(dec: np.ndarray, out: np.ndarray, h: int) -> int:  # pragma: no cover - numba
    """Both traceback chains of :func:`_traceback` for the first h steps of each (one loop,
    two independent dependency chains); returns the exact chain's state after step
    ``n - 1 - h``. Unsigned indices and state: no negative-index wraparound code in the
    loop (with it the two chains ran no faster than one: the loop is bound by its
    instruction count, not by the chain's latency)."""
    one = np.uint64(1)
    low = np.uint64(31)
    five = np.uint64(5)
    s = np.uint64(0)
    g = np.uint64(0)
    t = np.uint64(dec.size)
    t2 = np.uint64(h)
    while t2 > 0:
        t -= one
        t2 -= one
        out[t] = np.uint8(s >> five)
        s = ((s & low) << one) | ((dec[t] >> s) & one)
        out[t2] = np.uint8(g >> five)
        g = ((g & low) << one) | ((dec[t2] >> g) & one)
    return np.int64(s)


@njit(cache=True, nogil=True)
def _traceback(dec: np.ndarray, split_min: int = 256) -> np.ndarray:  # pragma: no cover
    """Bits from packed survivor decisions, ending (and starting) in state 0.

    Blocks of at least ``split_min`` steps (0 = never) run two traceback chains
    interleaved: the exact one from the end down to the middle h, and one from h down to 0
    starting from a guessed state (0). When the exact chain reaches h with a different
    state, the first half is traced again from h with the exact state until it meets the
    guessed path (same state at the same step: from there on the paths are one), so the
    output is exactly that of one chain."""
    n = dec.size
    out = np.empty(n, dtype=np.uint8)
    h = n // 2 if split_min > 0 and n >= max(split_min, 2) else 0
    s = _trace_two(dec, out, h) if h > 0 else np.int64(0)
    t = n - 1 - h
    while t >= h:
        out[t] = s >> 5
        s = 2 * (s & 31) + int((dec[t] >> np.uint64(s)) & np.uint64(1))
        t -= 1
    if h == 0 or s == 0:
        return out
    for t in range(h - 1, -1, -1):  # s: the exact state after step t
        if t >= 5:
            spec = 0  # the guessed path's state after step t, from its bits
            for k in range(6):
                spec |= int(out[t - k]) << (5 - k)
            if spec == s:
                break
        out[t] = s >> 5
        s = 2 * (s & 31) + int((dec[t] >> np.uint64(s)) & np.uint64(1))
    return out


@njit(cache=True, nogil=True)
def _same_relative(a: np.ndarray, b: np.ndarray) -> bool:  # pragma: no cover - numba
    """Whether two metric vectors differ by one constant (then every later decision agrees)."""
    d = np.int32(a[0]) - np.int32(b[0])
    for i in range(1, 64):  # noqa: SIM110 - a loop numba compiles
        if np.int32(a[i]) - np.int32(b[i]) != d:
            return False
    return True


@njit(cache=True, nogil=True)
def _forward(tab: np.ndarray, split_min: int = SPLIT_MIN) -> np.ndarray:  # pragma: no cover
    """Packed decisions of the whole block, identical to one chain from state 0.

    Split (blocks of at least ``split_min`` steps into 2 segments, of 4 ``split_min`` into
    4; 0 = never): chain 0 decodes the first segment from state 0 while chain c decodes
    segment c from all-equal metrics, all interleaved (several chains in flight). Then, at
    each boundary in turn, the exact metrics reaching it continue over the next segment,
    ``_CHUNK`` steps at a time, until they differ from that segment's chain at the same step
    by one constant: from there on every comparison, hence every decision, is the same in
    both, so the segment's remaining decisions stand; the continuation rewrites the ones
    before. (Without that within ``_SNAPS`` checks, the continuation decodes the whole
    segment itself: slower, never different.)
    """
    n = tab.size // 4
    dec = np.empty(n, dtype=np.uint64)
    if split_min <= 0 or n < max(split_min, 2):
        pm = np.full(64, NEG, dtype=np.int16)
        pm[0] = 0
        _acs1(tab, dec, pm, np.zeros(1, np.int64), n)
        return dec
    k = 4 if n >= 4 * split_min else 2
    seg = n // k
    pm = np.zeros(64 * k, dtype=np.int16)
    pm[:64] = NEG
    pm[0] = 0
    starts = np.arange(k).astype(np.int64) * seg
    nsnap = min(_SNAPS, seg // _CHUNK)
    snaps = np.empty((k, nsnap, 64), dtype=np.int16)
    for j in range(nsnap):
        if k == 4:
            _acs4(tab, dec, pm, starts, _CHUNK)
        else:
            _acs2(tab, dec, pm, starts, _CHUNK)
        for c in range(k):
            snaps[c, j] = pm[64 * c:64 * c + 64]
        starts += _CHUNK
    rest = seg - nsnap * _CHUNK
    if rest > 0:
        if k == 4:
            _acs4(tab, dec, pm, starts, rest)
        else:
            _acs2(tab, dec, pm, starts, rest)
    one = np.zeros(1, np.int64)
    if n > k * seg:  # the last n % k steps: the last chain alone
        last = pm[64 * (k - 1):].copy()
        one[0] = k * seg
        _acs1(tab, dec, last, one, n - k * seg)
        pm[64 * (k - 1):] = last
    incoming = pm[:64].copy()  # exact metrics (up to a constant) at the end of segment 0
    for c in range(1, k):
        end = n if c == k - 1 else (c + 1) * seg
        t = c * seg
        converged = False
        for j in range(nsnap):
            one[0] = t
            _acs1(tab, dec, incoming, one, _CHUNK)
            t += _CHUNK
            if _same_relative(incoming, snaps[c, j]):
                converged = True
                break
        if converged:
            incoming = pm[64 * c:64 * c + 64].copy()
        else:
            one[0] = t
            _acs1(tab, dec, incoming, one, end - t)
    return dec


@njit(cache=True, nogil=True)
def branch_table(llr: np.ndarray, scale: float, lim: float) -> np.ndarray:  # pragma: no cover
    """LLRs [2n] -> the decoder's per-step table [4n]: (s, d, -s, -d), s = lx + ly,
    d = lx - ly, with ``lx = rint(clip(llr * scale, -lim, lim))`` (NaN -> 0)."""
    n = llr.size // 2
    tab = np.empty(4 * n, dtype=np.int16)
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
        tab[4 * t] = lx + ly
        tab[4 * t + 1] = lx - ly
        tab[4 * t + 2] = -(lx + ly)
        tab[4 * t + 3] = ly - lx
    return tab


@njit(cache=True, nogil=True)
def acs_i16(llr: np.ndarray, scale: float = 1.0,
            split_min: int = SPLIT_MIN) -> np.ndarray:  # pragma: no cover - numba
    """Forward recursion only: LLRs [2n], quantised as ``rint(clip(llr * scale, -Q_MAX,
    Q_MAX))``, -> the n packed decision words (uint64). Exposed so tests can compare
    decisions word for word with the float recursion, and the split (``split_min``, see
    :func:`_forward`) with one chain."""
    return _forward(branch_table(llr, scale, Q_MAX), split_min)


@njit(cache=True, nogil=True)
def viterbi_k7_i16(llr: np.ndarray, scale: float = 1.0,
                   split_min: int = SPLIT_MIN) -> np.ndarray:  # pragma: no cover - numba
    """Soft Viterbi with int16 metrics on ``rint(clip(llr * scale, -Q_MAX, Q_MAX))``: n uint8
    bits, with the trellis, tail and output convention of :func:`phy.kernels.viterbi_k7`.
    On integer LLRs with |llr| <= Q_MAX and scale 1 no metric saturates. ``split_min``:
    the block length from which the forward and traceback passes run two chains."""
    return _traceback(acs_i16(llr, scale, split_min), split_min)


_STRIDE = 31  # LLRs sampled for the scale: coprime with the interleave (2), puncturing (10)


@njit(cache=True, nogil=True)
def llr_scale(llr: np.ndarray, q_max: float, q_mean: float) -> float:  # pragma: no cover
    """The quantisation scale max(q_max / max|llr|, q_mean / mean|llr|) over the non-zero,
    finite LLRs of every ``_STRIDE``-th position (a sample: a full pass cost as much as a
    third of the decoder, a 1-in-7 one still 10 %; an LLR the sample missed above q_max is
    clipped, like outliers); 1.0 when the sample has none."""
    mx = 0.0
    sm = 0.0
    nz = 0
    for i in range(0, llr.size, _STRIDE):
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
    :func:`llr_scale` picks (NaN LLRs count as 0, +-inf as +-Q_MAX)."""
    return viterbi_k7_i16(llr, llr_scale(llr, Q_MAX, Q_MEAN))


def cpu_has_simd16() -> bool:
    """Whether the host CPU has 16-bit integer SIMD at least as wide as AVX2 (x86 avx2 or
    avx512bw, per LLVM's host feature string) -- where the int16 decoder was measured faster."""
    try:
        import llvmlite.binding as ll

        feats = ll.get_host_cpu_features()
    except Exception:  # no feature query: take the float decoder
        return False
    return bool(feats.get("avx2", False) or feats.get("avx512bw", False))


def default_decoder() -> str:
    """``"int16"`` or ``"float"``: ``RELAYSEC_VITERBI`` if set, else int16 where the CPU has
    AVX2/AVX-512BW (:func:`cpu_has_simd16`)."""
    forced = os.environ.get("RELAYSEC_VITERBI", "").strip().lower()
    if forced in ("float", "int16"):
        return forced
    return "int16" if cpu_has_simd16() else "float"


def decode(llr: np.ndarray, decoder: str | None = None) -> np.ndarray:
    """Viterbi-decode a depunctured float32 mother stream with ``decoder`` (default: the
    selected one); returns the n uint8 bits including the 6-bit tail."""
    if (decoder or default_decoder()) == "int16":
        return viterbi_k7_simd(np.ascontiguousarray(llr, dtype=np.float32))
    return viterbi_k7(llr, BFLY_SX, BFLY_SY)
