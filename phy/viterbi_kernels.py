"""numba kernels of the K=7 (171,133) Viterbi decoder with int16 SIMD path metrics (issue 15).

Apart from :mod:`phy.kernels` (the OFDM receive and transmit kernels) because decoding the
convolutional code is a job of its own, with its own LLVM intrinsics, lane layouts and
constants; the float32 reference decoder, the butterfly signs and the IR helpers this one
builds on are :mod:`phy.viterbi_float` (re-exported here). Like :mod:`phy.kernels` these are
compiled by numba from their bytecode, so the fuzz workers leave this module uninstrumented too
(``tests/fuzz/_core.py``, ``NUMBA_MODULES``). :mod:`phy.kernels` re-exports every name defined
here.

* :func:`viterbi_k7_simd` — the K=7 code with int16 SIMD path metrics (see ``phy/viterbi.py``);
  :func:`viterbi_k7_i16` on pre-scaled LLRs; :func:`viterbi_k7_simd_lanes` with the forward
  pass in the 128-bit-lane layout.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

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

# --- int16 SIMD Viterbi (issue 15; design and API notes in phy/viterbi.py, which re-exports
# these under shorter names).

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


def _grouped_loop(builder: ir.IRBuilder, n: ir.Value, init: list[ir.Value],
                  group: Callable[[list[ir.Value], ir.Value], list[ir.Value]],
                  single: Callable[[list[ir.Value], ir.Value], list[ir.Value]],
                  tag: str) -> list[ir.Value]:
    """Emit the ACS loops' shape: ``state = group(state, t)`` for t = 0, 4, 8, .. while
    t + 3 < n (four steps, the fourth renormalised), then ``state = single(state, t)`` for the
    last n % 4 steps; ``state`` is the list of vectors carried from step to step (one phi
    each), ``init`` its values on entry. Leaves the builder after the loops and returns the
    final values."""
    i64 = ir.IntType(64)
    entry = builder.basic_block
    head, body, tail, last, done = (builder.append_basic_block(f"{tag}.{name}") for name in
                                    ("head", "body", "tail", "last", "done"))
    builder.branch(head)
    builder.position_at_end(head)
    t = builder.phi(i64)
    t.add_incoming(ir.Constant(i64, 0), entry)
    st = []
    for v in init:
        ph = builder.phi(v.type)
        ph.add_incoming(v, entry)
        st.append(ph)
    builder.cbranch(builder.icmp_signed("<", builder.add(t, ir.Constant(i64, 3)), n), body, tail)
    builder.position_at_end(body)
    cur = group(list(st), t)
    t.add_incoming(builder.add(t, ir.Constant(i64, 4)), builder.basic_block)
    for ph, v in zip(st, cur, strict=True):
        ph.add_incoming(v, builder.basic_block)
    builder.branch(head)
    builder.position_at_end(tail)
    t2 = builder.phi(i64)
    t2.add_incoming(t, head)
    st2 = []
    for v in st:
        ph = builder.phi(v.type)
        ph.add_incoming(v, head)
        st2.append(ph)
    builder.cbranch(builder.icmp_signed("<", t2, n), last, done)
    builder.position_at_end(last)
    nxt = single(list(st2), t2)
    for ph, v in zip(st2, nxt, strict=True):
        ph.add_incoming(v, builder.basic_block)
    t2.add_incoming(builder.add(t2, ir.Constant(i64, 1)), builder.basic_block)
    builder.branch(tail)
    builder.position_at_end(done)
    return st2


def _butterflies(builder: ir.IRBuilder, sadd: ir.Function, ssub: ir.Function, even: ir.Value,
                 odd: ir.Value, bm: ir.Value, ref: ir.Value | None
                 ) -> tuple[ir.Value, ir.Value, ir.Value, ir.Value]:
    """One vector of butterflies, lane for lane: old metrics *even* and *odd* (its two
    predecessors), branch *bm*; with *ref*, every new metric minus ref (the renormalisation,
    folded into the branches). Returns the two new metrics (``max(even + b, odd - b)`` and
    ``max(even - b, odd + b)``, saturating) and their decisions (``odd`` won strictly)."""
    p = q = bm
    if ref is not None:
        p, q = builder.sub(bm, ref), builder.add(bm, ref)
    m00, m11 = builder.call(sadd, [even, p]), builder.call(sadd, [odd, p])
    m10, m01 = builder.call(ssub, [even, q]), builder.call(ssub, [odd, q])
    c0 = builder.icmp_signed(">", m01, m00)
    c1 = builder.icmp_signed(">", m11, m10)
    return builder.select(c0, m01, m00), builder.select(c1, m11, m10), c0, c1


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
            one = ir.Constant(_I64, 1)
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
                lo, hi, c0, c1 = _butterflies(builder, sadd, ssub, ev, od, branch(t), r)
                word = builder.or_(builder.zext(builder.bitcast(c0, _I32), _I64),
                                   builder.shl(builder.zext(builder.bitcast(c1, _I32), _I64),
                                               c32))
                builder.store(repair(word), builder.gep(decp, [t]))
                return (builder.shuffle_vector(lo, hi, idx_e),
                        builder.shuffle_vector(lo, hi, idx_o))

            def pm_ptr(c: int, base: ir.Value = pmp) -> ir.Value:
                return builder.bitcast(builder.gep(base, [ir.Constant(_I64, 64 * c)]),
                                       w64.as_pointer())

            init = []   # chain c's even and odd metrics at 2c and 2c + 1
            for c in range(k):
                w = builder.load(pm_ptr(c), align=2)
                init += [builder.shuffle_vector(w, w, _lanes([2 * j for j in _V16_PI])),
                         builder.shuffle_vector(w, w, _lanes([2 * j + 1 for j in _V16_PI]))]

            def group(st: list[ir.Value], t: ir.Value) -> list[ir.Value]:
                refs = []
                for c in range(k):
                    v = builder.insert_element(undef, builder.extract_element(st[2 * c],
                                               ir.Constant(_I32, 0)), ir.Constant(_I32, 0))
                    refs.append(builder.shuffle_vector(v, undef, _lanes([0] * 32)))
                for j in range(4):  # the chains' steps interleaved, step by step
                    for c in range(k):
                        tc = builder.add(builder.add(base[c], t), ir.Constant(_I64, j))
                        st[2 * c], st[2 * c + 1] = step(st[2 * c], st[2 * c + 1], tc,
                                                        refs[c] if j == 3 else None)
                return st

            def single(st: list[ir.Value], t: ir.Value) -> list[ir.Value]:
                # the last nsteps % 4 steps (at most 3: no renormalisation needed)
                for c in range(k):
                    st[2 * c], st[2 * c + 1] = step(st[2 * c], st[2 * c + 1],
                                                    builder.add(base[c], t), None)
                return st

            st2 = _grouped_loop(builder, n_, init, group, single, "vit16")
            for c in range(k):  # metrics back in state order
                w = builder.shuffle_vector(st2[2 * c], st2[2 * c + 1],
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
