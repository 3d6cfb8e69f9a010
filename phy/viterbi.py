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


@intrinsic
def _acs_i16(typingctx, llr, scale, lim, pm, dec, n):  # pragma: no cover - numba
    """The add-compare-select recursion on ``<32 x i16>`` vectors (even and odd states).

    ``llr`` float32 [2n] (X0 Y0 X1 Y1 ...), quantised in the loop (off the metric chain):
    ``lx = rint(clip(llr * scale, -lim, lim))`` (NaN -> 0), then the step's four branch
    metrics (s, d, -s, -d), s = lx + ly, d = lx - ly, spread to the 32 butterflies by one
    permute; ``pm`` int16 [64] initial metrics in state order; ``dec`` uint64
    [n] out (bit s = the decision of new state s: 1 = the odd predecessor). Butterfly j: old
    states 2j (even lane j) and 2j+1 (odd lane j) -> new states j (low half) and j+32 (high
    half). The comparison ``m_odd > m_even`` and the kept maximum are those of the float
    kernel, so ties break the same way. Four steps per iteration; the fourth subtracts state
    0's metric at the start of the iteration (renormalisation, folded into the branches).
    """
    if not (isinstance(llr, types.Array) and llr.dtype == types.float32 and llr.layout == "C"
            and isinstance(pm, types.Array) and pm.dtype == types.int16 and pm.layout == "C"
            and isinstance(dec, types.Array) and dec.dtype == types.uint64
            and scale == types.float32 and lim == types.float32):
        return None
    sig = types.void(llr, scale, lim, pm, dec, n)

    def codegen(context, builder, signature, args):
        a = signature.args
        mod = builder.module

        def data(i: int) -> ir.Value:
            return context.make_array(a[i])(context, builder, args[i]).data

        def fn(name: str) -> ir.Function:
            fty = ir.FunctionType(_W, [_W, _W])
            return mod.globals.get(name) or ir.Function(mod, fty, name)

        sadd, ssub = fn("llvm.sadd.sat.v32i16"), fn("llvm.ssub.sat.v32i16")
        llrp, decp, n_ = data(0), data(4), args[5]
        f2 = ir.VectorType(ir.FloatType(), 2)
        v2 = ir.VectorType(_I16, 2)
        v4 = ir.VectorType(_I16, 4)
        rint = mod.globals.get("llvm.rint.v2f32") or ir.Function(
            mod, ir.FunctionType(f2, [f2]), "llvm.rint.v2f32")
        undef = ir.Constant(_W, ir.Undefined)
        one, two, four = ir.Constant(_I64, 1), ir.Constant(_I64, 2), ir.Constant(_I64, 4)
        bidx = _lanes([int(x) for x in _BIDX])
        undef2 = ir.Constant(f2, ir.Undefined)

        def splat2(x: ir.Value) -> ir.Value:
            v = builder.insert_element(undef2, x, ir.Constant(_I32, 0))
            return builder.shuffle_vector(v, undef2, _lanes([0, 0]))

        sc, hi_, lo_ = splat2(args[1]), splat2(args[2]), splat2(builder.fneg(args[2]))
        fzero = ir.Constant(f2, [0.0, 0.0])

        def branch(t: ir.Value) -> ir.Value:
            ptr = builder.bitcast(builder.gep(llrp, [builder.mul(t, two)]), f2.as_pointer())
            x = builder.fmul(builder.load(ptr, align=4), sc)
            x = builder.select(builder.fcmp_ordered("==", x, x), x, fzero)  # NaN -> 0
            x = builder.select(builder.fcmp_ordered(">", x, hi_), hi_, x)
            x = builder.select(builder.fcmp_ordered("<", x, lo_), lo_, x)
            q = builder.trunc(builder.fptosi(builder.call(rint, [x]), ir.VectorType(_I32, 2)), v2)
            nq = builder.sub(ir.Constant(v2, [0, 0]), q)
            # (x, y, -x, -y) -> a = (x, x, -x, -x), b = (y, -y, -y, y): a + b = (s, d, -s, -d)
            aa = builder.shuffle_vector(q, nq, _lanes([0, 0, 2, 2]))
            bb = builder.shuffle_vector(q, nq, _lanes([1, 3, 3, 1]))
            quad = builder.add(aa, bb)
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
                builder.shl(builder.zext(builder.bitcast(c1, _I32), _I64), ir.Constant(_I64, 32)),
            )
            builder.store(word, builder.gep(decp, [t]))
            return (builder.shuffle_vector(lo, hi, _lanes(range(0, 64, 2))),
                    builder.shuffle_vector(lo, hi, _lanes(range(1, 64, 2))))

        pmw = builder.load(builder.bitcast(data(3), ir.VectorType(_I16, 64).as_pointer()), align=2)
        ev0 = builder.shuffle_vector(pmw, pmw, _lanes(range(0, 64, 2)))
        od0 = builder.shuffle_vector(pmw, pmw, _lanes(range(1, 64, 2)))
        entry = builder.basic_block
        head = builder.append_basic_block("vit16.head")
        body = builder.append_basic_block("vit16.body")
        tail = builder.append_basic_block("vit16.tail")
        last = builder.append_basic_block("vit16.last")
        done = builder.append_basic_block("vit16.done")
        builder.branch(head)
        builder.position_at_end(head)
        t = builder.phi(_I64)
        ev = builder.phi(_W)
        od = builder.phi(_W)
        t.add_incoming(ir.Constant(_I64, 0), entry)
        ev.add_incoming(ev0, entry)
        od.add_incoming(od0, entry)
        builder.cbranch(builder.icmp_signed("<", builder.add(t, ir.Constant(_I64, 3)), n_),
                        body, tail)
        builder.position_at_end(body)
        v = builder.insert_element(undef, builder.extract_element(ev, ir.Constant(_I32, 0)),
                                   ir.Constant(_I32, 0))
        ref = builder.shuffle_vector(v, undef, _lanes([0] * 32))  # state 0, four steps back
        e, o = ev, od
        for k in range(4):
            e, o = step(e, o, builder.add(t, ir.Constant(_I64, k)), ref if k == 3 else None)
        t.add_incoming(builder.add(t, four), builder.basic_block)
        ev.add_incoming(e, builder.basic_block)
        od.add_incoming(o, builder.basic_block)
        builder.branch(head)
        # the last n % 4 steps, one per pass (at most 3 steps: no renormalisation needed)
        builder.position_at_end(tail)
        t2 = builder.phi(_I64)
        e2 = builder.phi(_W)
        o2 = builder.phi(_W)
        t2.add_incoming(t, head)
        e2.add_incoming(ev, head)
        o2.add_incoming(od, head)
        builder.cbranch(builder.icmp_signed("<", t2, n_), last, done)
        builder.position_at_end(last)
        e3, o3 = step(e2, o2, t2, None)
        t2.add_incoming(builder.add(t2, one), last)
        e2.add_incoming(e3, last)
        o2.add_incoming(o3, last)
        builder.branch(tail)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _traceback(dec: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """Bits from packed survivor decisions, ending (and starting) in state 0."""
    n = dec.size
    out = np.empty(n, dtype=np.uint8)
    s = 0
    for t in range(n - 1, -1, -1):
        out[t] = s >> 5
        s = 2 * (s & 31) + int((dec[t] >> np.uint64(s)) & np.uint64(1))
    return out


@njit(cache=True, nogil=True)
def acs_i16(llr: np.ndarray, scale: float, lim: float) -> np.ndarray:  # pragma: no cover
    """Forward recursion only: float32 LLRs [2n], quantised as
    ``rint(clip(llr * scale, -lim, lim))``, -> the n packed decision words (uint64).

    Exposed so tests can compare decisions word for word with the float recursion."""
    n = llr.size // 2
    pm = np.full(64, NEG, dtype=np.int16)
    pm[0] = 0
    dec = np.empty(n, dtype=np.uint64)
    _acs_i16(np.ascontiguousarray(llr), np.float32(scale), np.float32(lim), pm, dec, n)
    return dec


@njit(cache=True, nogil=True)
def viterbi_k7_i16(llr: np.ndarray, scale: float = 1.0) -> np.ndarray:  # pragma: no cover
    """Soft Viterbi with int16 metrics on ``rint(clip(llr * scale, -Q_MAX, Q_MAX))``: n uint8
    bits, with the trellis, tail and output convention of :func:`phy.kernels.viterbi_k7`.
    On integer LLRs with |llr| <= Q_MAX and scale 1 no metric saturates."""
    return _traceback(acs_i16(llr, scale, Q_MAX))


@njit(cache=True, nogil=True, fastmath=True)
def _abs_stats(llr: np.ndarray) -> tuple[float, float, int]:  # pragma: no cover - numba
    """max |llr|, sum |llr| and the count of non-zero LLRs (vectorised: fastmath)."""
    mx = np.float32(0.0)
    sm = np.float32(0.0)
    nz = 0
    for i in range(llr.size):
        v = abs(llr[i])
        mx = max(mx, v)
        sm += v
        nz += v > 0
    return float(mx), float(sm), nz


@njit(cache=True, nogil=True)
def llr_scale(llr: np.ndarray, q_max: float, q_mean: float) -> float:  # pragma: no cover
    """The quantisation scale max(q_max / max|llr|, q_mean / mean|llr|) over the non-zero
    LLRs (1.0 for an all-zero or non-finite input)."""
    mx, sm, nz = _abs_stats(llr)
    if nz == 0 or not (np.isfinite(mx) and np.isfinite(sm)) or not mx > 0.0:
        return 1.0
    return max(q_max / mx, q_mean * nz / sm)


@njit(cache=True, nogil=True)
def viterbi_k7_simd(llr: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """Drop-in for :func:`phy.kernels.viterbi_k7` on float32 LLRs: int16 decode at the scale
    :func:`llr_scale` picks."""
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
