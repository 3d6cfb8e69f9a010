"""SIMD Viterbi for the K=7 (171,133) code: 16-bit saturating path metrics, 64 states as lanes.

The float decoder (:func:`phy.viterbi_float.viterbi_k7`) carries its 64 float32 path metrics
in four 512-bit registers. This decoder quantises the LLRs to int16 and keeps a chain's metrics
as two ``<32 x i16>`` vectors (even and odd states), so one step is a handful of single-register
operations: one broadcast load of the step's (s, d) branch pair (the lane layout puts every +-s
branch on an even lane and every +-d one on an odd lane), saturating add and subtract
(``vpaddsw``/``vpsubsw``), compare and max (``vpcmpgtw``/``vpmaxsw``), and two two-source
permutes that reorder the new metrics into even/odd states for the next step. Survivor decisions
are packed 64 per step into one uint64, as in the float decoder. One chain is latency-bound, so
a block is split into 2 or 4 segments decoded as interleaved chains, made exact at each boundary
(:func:`phy.viterbi_kernels.v16_forward`); the traceback runs four chains the same way, three
operations a step (:func:`phy.viterbi_kernels.v16_traceback`).

The kernels live in :mod:`phy.viterbi_kernels` (the wide layout, branch table, scale and
traceback), :mod:`phy.viterbi_lanes` (the 128-bit-lane layout) and :mod:`phy.viterbi_float`
(the float decoder); numba compiles them from their bytecode, and the fuzz workers leave those
modules uninstrumented for it (``tests/fuzz/_core.NUMBA_MODULES``). This module re-exports them
under the names below and chooses the decoder.

Instruction selection: the kernel is plain LLVM vector IR (``llvm.sadd.sat``/``llvm.ssub.sat``,
``icmp``/``select``, ``shufflevector``), compiled by numba for the host CPU, so LLVM picks
AVX-512BW, AVX2 or SSE2 forms from the features of the machine it runs on -- never an illegal
instruction. :func:`default_decoder` prefers this decoder where the CPU has AVX2 or AVX-512BW
(measured faster there, ``benchmarks/viterbi.py``) and the float decoder otherwise;
``RELAYSEC_VITERBI=float|int16`` forces either.

Equivalence: on integer LLRs the float32 and int16 sums are exact, and the decisions depend
only on metric differences, so as long as nothing saturates the two decoders take identical
decisions (tested). Renormalisation subtracts state 0's metric of four steps earlier every
fourth step, folded into the branch metrics so it is off the metric chain.

Quantisation (:func:`llr_scale`, :func:`branch_table`): scale = max(Q_MAX / max|llr|,
Q_MEAN / mean|llr|) over a 1-in-31 sample, round, clip to +-Q_MAX. Without outliers the
largest LLR maps to Q_MAX; with outliers the mean LLR maps to Q_MEAN and the few LLRs above
Q_MAX (more than 16x the mean: near-certain bits) are clipped. With |llr| <= Q_MAX the metrics
stay within about 34 Q_MAX < 32767 (spread of a K=7 trellis <= 6 steps x 4 Q_MAX, plus the
growth over the four steps between renormalisations).
"""

from __future__ import annotations

import os

import numpy as np

from phy.viterbi_float import BFLY_SX, BFLY_SY, viterbi_k7
from phy.viterbi_kernels import _V16_NEG as NEG
from phy.viterbi_kernels import V16_Q_MAX as Q_MAX
from phy.viterbi_kernels import V16_Q_MEAN as Q_MEAN
from phy.viterbi_kernels import V16_SPLIT_MIN as SPLIT_MIN
from phy.viterbi_kernels import acs_i16, viterbi_k7_i16
from phy.viterbi_kernels import v16_branch_table as branch_table
from phy.viterbi_kernels import v16_llr_scale as llr_scale
from phy.viterbi_kernels import viterbi_k7_simd as viterbi_k7_simd_wide
from phy.viterbi_lanes import acs_i16_lanes, viterbi_k7_simd_lanes

__all__ = ["NEG", "Q_MAX", "Q_MEAN", "SPLIT_MIN", "acs_i16", "acs_i16_lanes", "branch_table",
           "cpu_has_simd16", "decode", "default_decoder", "llr_scale", "simd_layout",
           "viterbi_k7_i16", "viterbi_k7_simd", "viterbi_k7_simd_lanes", "viterbi_k7_simd_wide"]


def cpu_has_simd16() -> bool:
    """Whether the host CPU has 16-bit integer SIMD at least as wide as AVX2 (x86 avx2 or
    avx512bw, per LLVM's host feature string) -- where the int16 decoder was measured faster."""
    try:
        import llvmlite.binding as ll

        feats = ll.get_host_cpu_features()
    except Exception:  # no feature query: take the float decoder
        return False
    return bool(feats.get("avx2", False) or feats.get("avx512bw", False))


def simd_layout() -> str:
    """The int16 decoder's lane layout: ``"wide"`` (64 states as two ``<32 x i16>`` values,
    reordered each step by two-source word permutes: one instruction each with AVX-512BW) where
    the CPU has AVX-512BW, else ``"lanes"`` (eight 128-bit registers, shuffles that never cross
    128 bits: 1.7x faster than "wide" on an AVX2-only Zen 1, ``benchmarks/viterbi.py``).
    ``RELAYSEC_VITERBI_LAYOUT=wide|lanes`` forces either. Both take identical decisions."""
    forced = os.environ.get("RELAYSEC_VITERBI_LAYOUT", "").strip().lower()
    if forced in ("wide", "lanes"):
        return forced
    try:
        import llvmlite.binding as ll

        wide = bool(ll.get_host_cpu_features().get("avx512bw", False))
    except Exception:
        wide = False
    return "wide" if wide else "lanes"


viterbi_k7_simd = viterbi_k7_simd_wide if simd_layout() == "wide" else viterbi_k7_simd_lanes
"""The int16 decoder in this CPU's layout (:func:`simd_layout`, chosen at import)."""


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
