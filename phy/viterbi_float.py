"""numba kernel of the K=7 (171,133) Viterbi decoder with float32 path metrics: the reference
decoder, and the butterfly signs and LLVM IR helpers the int16 SIMD decoder
(:mod:`phy.viterbi_kernels`) builds on.

Its own module because it is a job of its own: the decoder the modem used before the int16
one, kept beside it as the reference (tests compare decisions with it, ``benchmarks/viterbi.py``
times the int16 decoder against it) and as the fallback (``ConvCode(decoder="float")``).
Compiled by numba from its bytecode, so the fuzz workers leave it uninstrumented
(``tests/fuzz/_core.py``, ``NUMBA_MODULES``).

* :func:`viterbi_k7` — soft-decision Viterbi for the K=7 (171,133) rate-1/2 code, zero-terminated.
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
