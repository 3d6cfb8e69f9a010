"""numba kernels of the int16 SIMD Viterbi decoder in the 128-bit-lane layout: the forward pass
for CPUs without AVX-512BW (issue 15), which :func:`phy.viterbi.default_decoder` picks there.

Apart from :mod:`phy.viterbi_kernels` (the wide layout, the branch table, the scale and the
traceback, which this one shares) because it is a layout of its own: its own relabelling of the
states, register map and decision spreading. Same decisions, word for word, as the wide layout
(``tests/phy/test_viterbi_simd.py``). Compiled by numba from its bytecode, so the fuzz workers
leave it uninstrumented (``tests/fuzz/_core.py``, ``NUMBA_MODULES``).

* :func:`viterbi_k7_simd_lanes` — :func:`phy.viterbi_kernels.viterbi_k7_simd` with the forward
  pass in this layout.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from phy.viterbi_float import _I32, _I64, _lanes
from phy.viterbi_kernels import (
    _I16,
    _V16_BIDX,
    _V16_NEG,
    V16_Q_MAX,
    V16_Q_MEAN,
    V16_TB_SPLIT_MIN,
    _butterflies,
    _grouped_loop,
    v16_branch_table,
    v16_llr_scale,
    v16_traceback,
)

# ---- the 128-bit-lane layout (CPUs without AVX-512BW) ---------------------------------------
# The layout above needs two-source 16-bit permutes across a whole <32 x i16> value, one
# instruction with AVX-512BW (vpermt2w) but a dozen byte shuffles and lane crossings with AVX2
# alone. This one keeps every shuffle inside 128 bits: the states are relabelled s' = rev6(s)
# (bit-reversed), which turns the trellis into s' -> 2s' + u mod 64, so register q (<8 x i16>)
# holds states s' = 8q .. 8q+7 in order, registers r and r + 4 hold a butterfly's two old
# states lane for lane, and the new metrics of butterfly lanes are the interleave of its two
# outputs (punpcklwd/punpckhwd) -- the new states in order again. One chain is bound by
# throughput here (32 butterflies a step), not by latency, so the block is never split (two
# or four chains only spill registers).


def _rev(x: int, bits: int) -> int:
    return int(format(x, f"0{bits}b")[::-1], 2)


_W8 = ir.VectorType(_I16, 8)
_V16L_REV6 = [_rev(s, 6) for s in range(64)]
# branch of A-register r, lane l: butterfly j = rev5(8r + l), its type _V16_BIDX[j] (0..3: +s,
# +d, -s, -d), which is also its element of the step's [s, d, -s, -d] (the pshufb index)
_V16L_BT = [[int(_V16_BIDX[_rev(8 * r + l, 5)]) for l in range(8)] for r in range(4)]


def _v16l_spread() -> np.ndarray:
    """A byte of decisions of lanes l = 0..7 -> uint64 with bit l at 4 rev3(l): the
    decision of relabelled state 16r + 2l + u is that of state s = 32u + 4 rev3(l) + rev2(r),
    so each (r, u) byte is spread with this table and shifted by 32u + rev2(r)."""
    t = np.zeros(256, np.uint64)
    for v in range(256):
        t[v] = sum(1 << (4 * _rev(lane, 3)) for lane in range(8) if (v >> lane) & 1)
    t.setflags(write=False)
    return t


V16L_SPREAD = _v16l_spread()


@intrinsic
def _v16l_acs(typingctx, tab, dec, pm, nsteps, spread):  # pragma: no cover - numba
    """The add-compare-select recursion in the 128-bit-lane layout, one chain over steps
    0 .. nsteps-1 of ``tab`` (:func:`v16_branch_table`) from the metrics ``pm`` (int16 [64],
    state order, updated in place), writing ``dec`` exactly as :func:`_v16_make_acs` does
    (bit s = the decision of state s, 1 = the odd predecessor) through ``spread``
    (:data:`V16L_SPREAD`). Same tie rule and renormalisation (state 0's metric of the
    four-step group's start, folded into the fourth step's branches), so the decisions and
    final metrics are identical to the other layout's for every table the decoder builds
    (|LLR| <= V16_Q_MAX). A negative branch is negated here before the saturating add or
    subtract, where the other layout swaps the lane's outputs instead; the two differ only
    when a metric reaches the int16 range in the middle of the trellis, which branches up to
    tens of thousands can do and 2 V16_Q_MAX cannot."""
    ok = (isinstance(tab, types.Array) and tab.dtype == types.int32 and tab.layout == "C"
          and isinstance(dec, types.Array) and dec.dtype == types.uint64 and dec.layout == "C"
          and isinstance(pm, types.Array) and pm.dtype == types.int16 and pm.layout == "C"
          and isinstance(spread, types.Array) and spread.dtype == types.uint64
          and spread.layout == "C")
    if not ok:
        return None
    sig = types.void(tab, dec, pm, nsteps, spread)

    def codegen(context, builder, signature, args):
        a = signature.args

        def data(i: int) -> ir.Value:
            return context.make_array(a[i])(context, builder, args[i]).data

        def fn(name: str) -> ir.Function:
            fty = ir.FunctionType(_W8, [_W8, _W8])
            return builder.module.globals.get(name) or ir.Function(builder.module, fty, name)

        sadd, ssub = fn("llvm.sadd.sat.v8i16"), fn("llvm.ssub.sat.v8i16")
        tabp, decp, pmp, spp = data(0), data(1), data(2), data(4)
        n_ = args[3]
        v4i = ir.VectorType(_I32, 4)
        w64 = ir.VectorType(_I16, 64)
        zero8 = ir.Constant(_W8, [0] * 8)
        undef8 = ir.Constant(_W8, ir.Undefined)
        c255 = ir.Constant(_I32, 255)

        def branches(t: ir.Value) -> list[ir.Value]:
            # x = [s, d, -s, -d] (twice) from the step's (s, d) word: one broadcast load, a
            # negation and an unpack; each register's eight branches are then one pshufb of
            # x. (Blends of the broadcast word, its half-swap and their negations, before:
            # twice the vector operations and two general-to-vector moves a step, 4 % slower.
            # Quantising the LLRs inside the loop instead of reading the table: slower, the
            # extra vectors spill.)
            w = builder.load(builder.gep(tabp, [t]), align=4)
            v = builder.bitcast(builder.insert_element(ir.Constant(v4i, [0] * 4), w,
                                                       ir.Constant(_I32, 0)), _W8)
            x = builder.shuffle_vector(v, builder.sub(zero8, v), _lanes([0, 1, 8, 9] * 2))
            return [builder.shuffle_vector(x, undef8, _lanes(_V16L_BT[r])) for r in range(4)]

        def step(regs: list[ir.Value], t: ir.Value, ref: ir.Value | None) -> list[ir.Value]:
            bms = branches(t)
            new: list[ir.Value] = [undef8] * 8
            acc = ir.Constant(_I64, 0)
            for r in range(4):
                e, o, d_e, d_o = _butterflies(builder, sadd, ssub, regs[r], regs[r + 4], bms[r],
                                              ref)
                new[2 * r] = builder.shuffle_vector(e, o, _lanes([0, 8, 1, 9, 2, 10, 3, 11]))
                new[2 * r + 1] = builder.shuffle_vector(e, o,
                                                        _lanes([4, 12, 5, 13, 6, 14, 7, 15]))
                both = builder.zext(builder.bitcast(builder.shuffle_vector(
                    d_e, d_o, _lanes(range(16))), _I16), _I32)
                for u in range(2):  # general-register work, off the vector pipes
                    byte = builder.and_(builder.lshr(both, ir.Constant(_I32, 8 * u)), c255)
                    sp = builder.load(builder.gep(spp, [builder.zext(byte, _I64)]))
                    acc = builder.or_(acc, builder.shl(sp, ir.Constant(_I64,
                                                                       32 * u + _rev(r, 2))))
            builder.store(acc, builder.gep(decp, [t]))
            return new

        pm_vec = builder.bitcast(pmp, w64.as_pointer())
        w = builder.load(pm_vec, align=2)
        init = [builder.shuffle_vector(w, w, _lanes([_V16L_REV6[8 * q + i] for i in range(8)]))
                for q in range(8)]
        def group(st: list[ir.Value], t: ir.Value) -> list[ir.Value]:
            ref = builder.shuffle_vector(st[0], undef8, _lanes([0] * 8))  # state 0 (s' = 0)
            for j in range(4):
                st = step(st, builder.add(t, ir.Constant(_I64, j)), ref if j == 3 else None)
            return st

        # the last nsteps % 4 steps: no renormalisation, as the other layout
        st2 = _grouped_loop(builder, n_, init, group, lambda st, t: step(st, t, None), "v16l")
        v16 = [builder.shuffle_vector(st2[2 * i], st2[2 * i + 1], _lanes(range(16)))
               for i in range(4)]
        v32 = [builder.shuffle_vector(v16[2 * i], v16[2 * i + 1], _lanes(range(32)))
               for i in range(2)]
        v64 = builder.shuffle_vector(v32[0], v32[1], _lanes(range(64)))
        # back to state order: state s sits at relabelled index rev6(s)
        builder.store(builder.shuffle_vector(v64, v64, _lanes(_V16L_REV6)), pm_vec, align=2)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def v16_forward_lanes(tab: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """Packed decisions of the whole block from state 0 in the 128-bit-lane layout: the same
    words as :func:`v16_forward`."""
    n = tab.size
    dec = np.empty(n, dtype=np.uint64)
    pm = np.full(64, _V16_NEG, dtype=np.int16)
    pm[0] = 0
    _v16l_acs(tab, dec, pm, n, V16L_SPREAD)
    return dec


@njit(cache=True, nogil=True)
def acs_i16_lanes(llr: np.ndarray, scale: float = 1.0) -> np.ndarray:  # pragma: no cover
    """:func:`acs_i16` in the 128-bit-lane layout (never split): the same words."""
    return v16_forward_lanes(v16_branch_table(llr, scale, V16_Q_MAX))


@njit(cache=True, nogil=True)
def viterbi_k7_simd_lanes(llr: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """:func:`viterbi_k7_simd` with the forward pass in the 128-bit-lane layout: the same
    bits, faster where the CPU lacks AVX-512BW's two-source word permutes."""
    scale = v16_llr_scale(llr, V16_Q_MAX, V16_Q_MEAN)
    dec = v16_forward_lanes(v16_branch_table(llr, scale, V16_Q_MAX))
    return v16_traceback(dec, V16_TB_SPLIT_MIN)
