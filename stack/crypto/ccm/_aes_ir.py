"""LLVM IR of the lockstep CCM loops, with AES rounds on 1, 2 or 4 blocks per instruction.

Plain Python that builds IR; the intrinsics of :mod:`._aesni` call it from their codegen.
``w`` is the number of 128-bit blocks per AES instruction: 1 is AES-NI on ``xmm``
(``llvm.x86.aesni.aesenc``), 2 and 4 are VAES on ``ymm`` / ``zmm`` (``...aesenc.256`` /
``.512``), which run one AES round on each block with its own round key. Lanes are grouped
``w`` at a time:

    group g = lanes g*w .. g*w+w-1:   MAC state   [X_a | X_b | ...]   (one block per lane)
                                      CTR state   [A_a | A_b | ...]
                                      round key r [rk_a[r] | rk_b[r] | ...]

The round keys come from the lane key table ``lrk``, laid out round-major (round r of lane j
at byte ``16 * (r * nlanes + j)``), so a group's round key is one ``16*w``-byte load. All chains
(2 per group: MAC and CTR) are emitted round by round so their latencies overlap. The per-lane
work between rounds (load a payload block, XOR its keystream block, store, fold the plaintext
into the MAC state) is 128-bit; blocks move between the two forms by shuffles. Counters advance
for all lanes of a group at once: ``A = bswap(bswap(A) + [0, 1, 0, 1, ...])`` adds 1 to the
big-endian counter in bytes 14-15 of each block (at most 4097 for L = 2: never a carry into the
nonce).

The loop can end with the lanes' last blocks and the tag step (``finish``,
:func:`_emit_finish`): for ``w`` = 4 the last block of 1..16 bytes is read and written with
byte-masked vector loads and stores (AVX-512BW), for ``w`` < 4 through a 16-byte window ending
at the item's end; nothing outside an item is touched either way.

Compiling ``w`` = 2 for a CPU without VAES, or 4 without AVX-512F, makes LLVM abort the
interpreter: :mod:`.engines` checks the CPU first. After editing this file, update
``AES_IR_SHA256`` in :mod:`._aesni` (numba's cache only hashes that file; a test checks the pin).
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils

_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V2 = ir.VectorType(_I64, 2)


def _c64(v: int) -> ir.Constant:
    return ir.Constant(_I64, v)


def _round_fns(builder: ir.IRBuilder, w: int) -> tuple[ir.Function, ir.Function]:
    """``aesenc`` and ``aesenclast`` on ``w`` blocks."""
    vt = ir.VectorType(_I64, 2 * w)
    fnty = ir.FunctionType(vt, [vt, vt])
    suffix = "" if w == 1 else f".{128 * w}"
    return tuple(  # type: ignore[return-value]
        cgutils.get_or_insert_function(builder.module, fnty, f"llvm.x86.aesni.{n}{suffix}")
        for n in ("aesenc", "aesenclast")
    )


def _bswap_fn(builder: ir.IRBuilder, w: int) -> ir.Function:
    vt = ir.VectorType(_I64, 2 * w)
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt]),
                                          f"llvm.bswap.v{2 * w}i64")


def concat(builder: ir.IRBuilder, parts: list[ir.Value]) -> ir.Value:
    """``w`` 128-bit blocks (``<2 x i64>``) as one ``<2w x i64>`` vector, block 0 lowest."""
    while len(parts) > 1:
        n = parts[0].type.count
        mask = ir.Constant(ir.VectorType(_I32, 2 * n), list(range(2 * n)))
        parts = [builder.shuffle_vector(parts[i], parts[i + 1], mask)
                 for i in range(0, len(parts), 2)]
    return parts[0]


def block(builder: ir.IRBuilder, v: ir.Value, i: int) -> ir.Value:
    """Block ``i`` (128 bits) of a vector of blocks."""
    if v.type.count == 2:
        return v
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, 2), [2 * i, 2 * i + 1]))


def _load(builder: ir.IRBuilder, base: ir.Value, off: ir.Value, w: int = 1) -> ir.Value:
    ty = ir.VectorType(_I64, 2 * w).as_pointer()
    return builder.load(builder.bitcast(builder.gep(base, [off]), ty), align=1)


def _store(builder: ir.IRBuilder, val: ir.Value, base: ir.Value, off: ir.Value) -> None:
    builder.store(val, builder.bitcast(builder.gep(base, [off]), val.type.as_pointer()), align=1)


class _Rounds:
    """AES-128 of every group's MAC and CTR vectors, round by round, keys from ``lrk``."""

    def __init__(self, builder: ir.IRBuilder, lrk: ir.Value, w: int, nlanes: int, *,
                 private: bool = False) -> None:
        self.b, self.lrk, self.w, self.nl = builder, lrk, w, nlanes
        self.enc, self.last = _round_fns(builder, w)
        self.slots: dict[tuple[int, int], ir.Value] = {}
        if private:
            # Copies on the stack, which nothing else can write: LLVM then need not reload them
            # after every payload store (it cannot tell ``lrk`` from ``out``), which measured
            # 1.5x slower in the fused loop.
            vw = ir.VectorType(_I64, 2 * w)
            for g in range(nlanes // w):
                for r in range(11):
                    slot = cgutils.alloca_once(builder, vw)
                    builder.store(self._table(g, r), slot)
                    self.slots[(g, r)] = slot

    def _table(self, g: int, r: int) -> ir.Value:
        return _load(self.b, self.lrk, _c64(16 * (r * self.nl + g * self.w)), self.w)

    def key(self, g: int, r: int) -> ir.Value:
        slot = self.slots.get((g, r))
        return self._table(g, r) if slot is None else self.b.load(slot)

    def __call__(self, m: list[ir.Value], c: list[ir.Value]) -> tuple[list, list]:
        b = self.b
        m, c = list(m), list(c)
        for g in range(len(m)):
            k0 = self.key(g, 0)
            m[g] = b.xor(m[g], k0)
            c[g] = b.xor(c[g], k0)
        for r in range(1, 11):
            fn = self.enc if r < 10 else self.last
            for g in range(len(m)):
                k = self.key(g, r)
                m[g] = b.call(fn, [m[g], k])
                c[g] = b.call(fn, [c[g], k])
        return m, c


def emit_step(builder: ir.IRBuilder, ptrs: dict[str, ir.Value], w: int, nlanes: int) -> None:
    """One step for every lane: ``mout = E(min)``, ``cout = E(cin)`` (16 bytes per lane)."""
    mi, ci, mo, co = ptrs["min"], ptrs["cin"], ptrs["mout"], ptrs["cout"]
    groups = range(nlanes // w)
    m = [_load(builder, mi, _c64(16 * w * g), w) for g in groups]
    c = [_load(builder, ci, _c64(16 * w * g), w) for g in groups]
    m, c = _Rounds(builder, ptrs["lrk"], w, nlanes)(m, c)
    for g in groups:
        _store(builder, m[g], mo, _c64(16 * w * g))
        _store(builder, c[g], co, _c64(16 * w * g))


LONG_RUN = 16
"""Fused runs of at least this many steps first copy the round keys to the stack (see
:class:`_Rounds`); shorter ones (short PDUs) read them from the lane key table, as the copy
would cost more than it saves."""


def emit_run_full(
    builder: ir.IRBuilder,
    ptrs: dict[str, ir.Value],
    nsteps: ir.Value,
    dec: ir.Value,
    finish: ir.Value,
    w: int,
    nlanes: int,
) -> None:
    """The fused whole-block loop of :func:`stack.crypto.ccm._aesni._run_full`. ``ptrs``:
    pointers ``buf, lane_p, out, lane_q, lane_live, min, cin, lrk, mout, cout`` (meaning as
    there); ``dec`` and ``finish`` ``i1``. Emitted twice, for long and for short runs
    (:data:`LONG_RUN`). ``finish`` (see :func:`_emit_finish`) ends every lane's item after the
    loop."""
    # the finishing steps (two more AES steps) count too: 256 B items finish after 15 steps
    total = builder.add(nsteps, builder.select(finish, _c64(2), _c64(0)))
    long_run = builder.icmp_signed(">=", total, _c64(LONG_RUN))
    with builder.if_else(long_run) as (then, otherwise):
        with then:
            _emit_loop(builder, ptrs, nsteps, dec, finish, w, nlanes, private=True)
        with otherwise:
            _emit_loop(builder, ptrs, nsteps, dec, finish, w, nlanes, private=False)


def _emit_loop(
    builder: ir.IRBuilder,
    ptrs: dict[str, ir.Value],
    nsteps: ir.Value,
    dec: ir.Value,
    finish: ir.Value,
    w: int,
    nlanes: int,
    *,
    private: bool,
) -> None:
    vw = ir.VectorType(_I64, 2 * w)
    groups = range(nlanes // w)
    bp, pp, op, qp = ptrs["buf"], ptrs["lane_p"], ptrs["out"], ptrs["lane_q"]
    livep, mi, ci = ptrs["lane_live"], ptrs["min"], ptrs["cin"]
    rounds = _Rounds(builder, ptrs["lrk"], w, nlanes, private=private)
    bswap = _bswap_fn(builder, w)
    mst, cst = [], []
    for g in groups:  # MAC and CTR states live in registers (allocas that LLVM promotes)
        ms = cgutils.alloca_once(builder, vw)
        cs = cgutils.alloca_once(builder, vw)
        builder.store(_load(builder, mi, _c64(16 * w * g), w), ms)
        builder.store(_load(builder, ci, _c64(16 * w * g), w), cs)
        mst.append(ms)
        cst.append(cs)
    # Per-lane payload pointers, fixed for the loop: step s of lane j is at base + (16 s & mask),
    # so nothing per lane is updated per step. An idle lane (mask 0) reads and writes a stack
    # slot instead of the buffers.
    i8p = _I8.as_pointer()
    pbase, qbase, masks = [], [], []
    for j in range(nlanes):
        scratch = cgutils.alloca_once(builder, _V2)
        builder.store(ir.Constant(_V2, None), scratch)
        live = builder.icmp_unsigned("!=", builder.load(builder.gep(livep, [_c64(j)])), _c64(0))
        dummy = builder.bitcast(scratch, i8p)
        pj = builder.gep(bp, [builder.load(builder.gep(pp, [_c64(j)]))])
        qj = builder.gep(op, [builder.load(builder.gep(qp, [_c64(j)]))])
        pbase.append(builder.select(live, pj, dummy))
        qbase.append(builder.select(live, qj, dummy))
        masks.append(builder.select(live, _c64(-1), _c64(0)))
    inc = ir.Constant(vw, [0, 1] * w)
    with cgutils.for_range(builder, nsteps) as loop:
        off = builder.shl(loop.index, _c64(4))
        cnt = [builder.load(x) for x in cst]
        m, c = rounds([builder.load(x) for x in mst], list(cnt))
        for g in groups:
            ins = []
            for i in range(w):
                j = g * w + i
                o = builder.and_(off, masks[j])
                p = builder.gep(pbase[j], [o])
                q = builder.gep(qbase[j], [o])
                b = builder.load(builder.bitcast(p, _V2.as_pointer()), align=1)
                res = builder.xor(b, block(builder, c[g], i))
                builder.store(res, builder.bitcast(q, _V2.as_pointer()), align=1)
                ins.append(b)
            # The plaintext folded into the MAC, in the wide form: the input blocks are gathered
            # as soon as they are loaded (off the MAC chain); opening XORs the keystream in
            # there too, so after the AES only XORs remain, not per-block shuffles.
            wide_in = concat(builder, ins)
            plain = builder.select(dec, builder.xor(wide_in, c[g]), wide_in)
            builder.store(builder.xor(m[g], plain), mst[g])
            nxt = builder.add(builder.call(bswap, [cnt[g]]), inc)
            builder.store(builder.call(bswap, [nxt]), cst[g])
    with builder.if_else(finish) as (then, otherwise):
        with then:
            _emit_finish(builder, ptrs, rounds, mst, cst, pbase, qbase, masks,
                         builder.shl(nsteps, _c64(4)), dec, w, nlanes)
        with otherwise:
            for g in groups:
                _store(builder, builder.load(mst[g]), mi, _c64(16 * w * g))
                _store(builder, builder.load(cst[g]), ci, _c64(16 * w * g))


def _last_masked(b: ir.IRBuilder, p: ir.Value, q: ir.Value, r: ir.Value, ks: ir.Value,
                 dec: ir.Value) -> ir.Value:
    """A lane's last block of ``r`` bytes (0..16) at ``p`` -> ``q`` with byte-masked loads and
    stores (AVX-512BW ``vmovdqu8``: nothing outside the ``r`` bytes is touched, a masked-off
    byte never faults); returns the plaintext block padded with zeros, for the MAC."""
    v16 = ir.VectorType(_I8, 16)
    m16 = ir.VectorType(ir.IntType(1), 16)
    ptr16 = v16.as_pointer()
    mload = cgutils.get_or_insert_function(
        b.module, ir.FunctionType(v16, [ptr16, _I32, m16, v16]), "llvm.masked.load.v16i8.p0")
    mstore = cgutils.get_or_insert_function(
        b.module, ir.FunctionType(ir.VoidType(), [v16, ptr16, _I32, m16]),
        "llvm.masked.store.v16i8.p0")
    zero16 = ir.Constant(v16, None)
    bits = b.trunc(b.sub(b.shl(_c64(1), r), _c64(1)), ir.IntType(16))  # r = 16: 0xFFFF
    mask = b.bitcast(bits, m16)
    x = b.call(mload, [b.bitcast(p, ptr16), ir.Constant(_I32, 1), mask, zero16])
    res = b.xor(x, b.bitcast(ks, v16))
    b.call(mstore, [res, b.bitcast(q, ptr16), ir.Constant(_I32, 1), mask])
    return b.bitcast(b.select(dec, b.select(mask, res, zero16), x), _V2)


def _last_window(b: ir.IRBuilder, p: ir.Value, q: ir.Value, r: ir.Value, ks: ir.Value,
                 dec: ir.Value) -> ir.Value:
    """A lane's last block of ``r`` bytes (1..16; 0 = an idle lane, taken as 16 on its stack
    slot) at ``p`` -> ``q`` without byte masks (AES-NI, AVX2): the 16 bytes *ending* at the
    item's end are loaded from the input and from the output, whose first ``16 - r`` bytes are
    the previous block's output, already written; the keystream, shifted up by ``16 - r``
    bytes, is XORed into the input's window and the output's first ``16 - r`` bytes are stored
    back unchanged. Needs items of at least 16 bytes (the caller checks); the window never leaves
    the item. Shifts and masks are ``i128`` operations (no SSSE3 byte shuffles). Returns the
    plaintext block padded with zeros, for the MAC."""
    i128 = ir.IntType(128)
    r = b.select(b.icmp_unsigned("==", r, _c64(0)), _c64(16), r)
    back = b.sub(r, _c64(16))  # -(16 - r): the window starts 16 - r bytes before the block
    sh = b.zext(b.shl(b.sub(_c64(16), r), _c64(3)), i128)  # 8 * (16 - r) bits
    pv = b.bitcast(b.gep(p, [back]), _V2.as_pointer())
    qv = b.bitcast(b.gep(q, [back]), _V2.as_pointer())
    x = b.bitcast(b.load(pv, align=1), i128)
    y = b.bitcast(b.load(qv, align=1), i128)
    keep = b.shl(ir.Constant(i128, (1 << 128) - 1), sh)  # the window's last r bytes
    res = b.xor(x, b.shl(b.bitcast(ks, i128), sh))
    out = b.or_(b.and_(y, b.not_(keep)), b.and_(res, keep))
    b.store(b.bitcast(out, _V2), qv, align=1)
    return b.bitcast(b.lshr(b.select(dec, res, x), sh), _V2)


def _emit_finish(
    builder: ir.IRBuilder,
    ptrs: dict[str, ir.Value],
    rounds: _Rounds,
    mst: list[ir.Value],
    cst: list[ir.Value],
    pbase: list[ir.Value],
    qbase: list[ir.Value],
    masks: list[ir.Value],
    off: ir.Value,
    dec: ir.Value,
    w: int,
    nlanes: int,
) -> None:
    """The last two steps of every lane, after the whole-block loop: its last payload block of
    ``r = lane_live[j]`` bytes (1..16; 0 for an idle lane) at byte ``off`` of the lane, then
    ``T = E(X)`` and ``S_0 = E(A_0)``, stored to ``mout``/``cout`` for the tag.

    The last block is read and written with byte-masked loads and stores on VAES-512
    (:func:`_last_masked`), through a 16-byte window ending at the item's end elsewhere
    (:func:`_last_window`, items of at least 16 bytes); the MAC takes the block padded with
    zeros. Without this, a last block shorter than 16 bytes cost a separate scalar step per group
    of lanes (and the tag another).
    """
    b = builder
    groups = range(nlanes // w)
    vw = ir.VectorType(_I64, 2 * w)
    livep = ptrs["lane_live"]
    cnt = [b.load(x) for x in cst]
    m, c = rounds([b.load(x) for x in mst], list(cnt))
    last = _last_masked if w == 4 else _last_window
    nxt_m = []
    for g in groups:
        ins = []
        for i in range(w):
            j = g * w + i
            r = b.load(b.gep(livep, [_c64(j)]))
            o = b.and_(off, masks[j])
            ins.append(last(b, b.gep(pbase[j], [o]), b.gep(qbase[j], [o]), r,
                            block(b, c[g], i), dec))
        nxt_m.append(b.xor(m[g], concat(b, ins)))
    # A_0: the counter field (bytes 14-15 of each block, the top 16 bits of its high word) = 0
    a0 = ir.Constant(vw, [-1, 0x0000FFFFFFFFFFFF] * w)
    t, s0 = rounds(nxt_m, [b.and_(x, a0) for x in cnt])
    for g in groups:
        _store(b, t[g], ptrs["mout"], _c64(16 * w * g))
        _store(b, s0[g], ptrs["cout"], _c64(16 * w * g))
