"""AES-128-CCM on AES-NI / VAES in numba: 8 items in lockstep (multi-buffer CBC-MAC + CTR).

**Never call anything here unless ``stack.crypto.ccm.engine_status()`` says the engine of the
layout runs here** (``numba-aesni`` for ``"aesni"``, ``numba-vaes256`` / ``numba-vaes512`` for the
VAES layouts). The intrinsics below emit ``llvm.x86.aesni.*``; compiling them for a CPU without
the instructions (or with ``NUMBA_CPU_NAME=generic``) makes LLVM abort the whole interpreter, not
raise. Importing this module is safe (numba compiles lazily, on the first call, one
specialization per layout: see :data:`LAYOUTS`).

Why lockstep: one CCM item is a CBC-MAC chain — each block's AES waits for the previous one, so a
single item runs at AES *latency* (~2.5 cycles/byte). Eight items side by side give the core 16
independent AES streams per step (8 CBC-MAC + 8 CTR), which it runs at AES *throughput*.

Schedule of one lane holding an item with ``nb = ceil(l/16)`` payload blocks (RFC 3610 symbols)::

    step 0:        MAC in = B_0                 CTR in = A_1   (A_0 if nb == 0)
    after step k:  if k < nb: block k+1: S = out_ctr;  C = P ^ S (seal) / P = C ^ S (open)
                              MAC in = X_{k+1} ^ P,    CTR in = A_{k+2}  (A_0 after the last)
                   if k == nb: T = X_{nb+1},  S_0 = out_ctr,  tag = T ^ S_0; lane idle

When all lanes are idle the next 8 items, in order of length, are loaded. The VAES layouts
run the same schedule; only the fused whole-block loop packs 2 or 4 lanes into each AES
instruction (:mod:`._aes_ir`). The fused call also runs the lanes' last block (1..16 bytes:
byte-masked on VAES-512, a window ending at the item's end elsewhere) and the tag step when
every lane of the group has exactly one block left (:data:`FINISH_WIDTH`); otherwise those two
steps run through the scratch arrays below.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from stack.crypto.ccm import _aes_ir
from stack.crypto.ccm._pyobj import u8ptr
from stack.crypto.ccm._split import on_threads, split_by_bytes

AES_IR_SHA256 = "68eceeb4e598332d1b6678fe3f5fe5cb3a25aacdb9a3b808710ed59118e5e4a6"
"""SHA-256 of ``_aes_ir.py``, the IR this module's kernels are compiled from. numba's cache keys
on the hash of *this* file only, so an edit there alone would leave stale machine code in the
cache; ``tests/crypto/test_ccm_vaes.py`` fails until this pin is updated (which changes this
file, and so the cache key)."""

FINISH_WIDTH = 4
"""Layout item size (AES blocks per instruction) whose finishing step (:func:`_run_full`
``finish``) reads and writes the lanes' last blocks with AVX-512BW byte masks, so items of any
length finish there: VAES-512. The other layouts use a 16-byte window ending at the item's end
and finish only groups of items of at least 16 bytes."""
NLANES = 8
"""Items in lockstep, for every layout (8 lanes x (MAC, CTR) = 16 AES blocks per step)."""
LAYOUTS = {
    "aesni": np.empty(0, np.uint8),
    "vaes256": np.empty(0, np.uint16),
    "vaes512": np.empty(0, np.uint32),
}
"""Lane layouts of the lockstep kernel, carried as the dtype of an empty array: its item size is
the number of AES blocks per instruction (1: AES-NI on xmm, 2: VAES on ymm, 4: VAES on zmm).
Being part of the argument types, the layout makes numba compile one specialization per layout,
so VAES code is only ever compiled when a VAES layout is called."""


def _width(layout: types.Array) -> int:
    """AES blocks per instruction of a layout's numba type."""
    return layout.dtype.bitwidth // 8


_V2 = ir.VectorType(ir.IntType(64), 2)
_V4 = ir.VectorType(ir.IntType(32), 4)
_I8 = ir.IntType(8)
_I64 = ir.IntType(64)
_RCON = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)


# ------------------------------------------------------------------ LLVM helpers


def _ptr(context, builder, arrty, arr):
    return context.make_array(arrty)(context, builder, arr).data


def _at(builder, base, off):
    """Pointer to 16 bytes at ``base + off`` (byte offset), typed for an unaligned vector access."""
    return builder.bitcast(builder.gep(base, [off]), _V2.as_pointer())


def _load(builder, base, off):
    return builder.load(_at(builder, base, off), align=1)


def _store(builder, val, base, off):
    builder.store(val, _at(builder, base, off), align=1)


def _aes_fn(builder, name: str, extra=None):
    args = [_V2, extra if extra is not None else _V2]
    fnty = ir.FunctionType(_V2, args)
    return cgutils.get_or_insert_function(builder.module, fnty, f"llvm.x86.aesni.{name}")


def _c64(v: int) -> ir.Constant:
    return ir.Constant(_I64, v)


# ------------------------------------------------------------------ intrinsics


@intrinsic
def _expand_key(typingctx, keys, kofs, rk, rkofs):
    """AES-128 key schedule of ``keys[kofs:kofs+16]`` into ``rk[rkofs:rkofs+176]`` (11 round keys).

    ``aeskeygenassist`` needs its round constant as an immediate, so the ten rounds are unrolled.
    """
    sig = types.void(keys, kofs, rk, rkofs)

    def codegen(context, builder, signature, args):
        kp = _ptr(context, builder, signature.args[0], args[0])
        rp = _ptr(context, builder, signature.args[2], args[2])
        roff = args[3]
        k = _load(builder, kp, args[1])
        _store(builder, k, rp, roff)
        assist = _aes_fn(builder, "aeskeygenassist", _I8)
        zero = ir.Constant(_V4, None)
        shl = ir.Constant(ir.VectorType(ir.IntType(32), 4), [0, 4, 5, 6])
        bcast3 = ir.Constant(ir.VectorType(ir.IntType(32), 4), [3, 3, 3, 3])
        for i, rc in enumerate(_RCON):
            t = builder.call(assist, [k, ir.Constant(_I8, rc)])
            t4 = builder.bitcast(t, _V4)
            t4 = builder.shuffle_vector(t4, t4, bcast3)
            k4 = builder.bitcast(k, _V4)
            for _ in range(3):  # k ^= k << 32 (pslldq 4), three times
                k4 = builder.xor(k4, builder.shuffle_vector(zero, k4, shl))
            k4 = builder.xor(k4, t4)
            k = builder.bitcast(k4, _V2)
            _store(builder, k, rp, builder.add(roff, _c64(16 * (i + 1))))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _aes_lanes(typingctx, min_, cin, mout, cout, lrk, layout):
    """Encrypt every lane's MAC block and counter block (lane j: 16 bytes at ``16*j``) in lockstep.

    Lane j's round keys are in the lane key table ``lrk`` (see :func:`_ccm_range`). All AES run
    interleaved round by round, so their latencies overlap.
    """
    sig = types.void(min_, cin, mout, cout, lrk, layout)

    def codegen(context, builder, signature, args):
        a = signature.args
        ptrs = {k: _ptr(context, builder, a[i], args[i])
                for i, k in enumerate(("min", "cin", "mout", "cout", "lrk"))}
        _aes_ir.emit_step(builder, ptrs, _width(a[5]), NLANES)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _ld8(typingctx, arr, off):
    """The 8 bytes at ``arr[off:]`` as a little-endian int64 (an unaligned load)."""
    sig = types.int64(arr, off)

    def codegen(context, builder, signature, args):
        p = builder.gep(_ptr(context, builder, signature.args[0], args[0]), [args[1]])
        return builder.load(builder.bitcast(p, _I64.as_pointer()), align=1)

    return sig, codegen


@intrinsic
def _st8(typingctx, arr, off, val):
    """Store int64 ``val`` little-endian at ``arr[off:off+8]`` (an unaligned store)."""
    sig = types.void(arr, off, val)

    def codegen(context, builder, signature, args):
        p = builder.gep(_ptr(context, builder, signature.args[0], args[0]), [args[1]])
        builder.store(args[2], builder.bitcast(p, _I64.as_pointer()), align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _full_block(typingctx, buf, p, out, q, mout, cout, min_, j16, decrypt):
    """One whole payload block of one lane: ``out[q:q+16] = buf[p:p+16] ^ S``, next MAC input.

    Seal: ``C = P ^ S``, MAC in = ``X ^ P``. Open: ``P = C ^ S``, MAC in = ``X ^ P``. ``out`` may
    be ``buf`` with ``q == p`` (in place): the input block is loaded before the store.
    """
    sig = types.void(buf, p, out, q, mout, cout, min_, j16, decrypt)

    def codegen(context, builder, signature, args):
        a = signature.args
        bp = _ptr(context, builder, a[0], args[0])
        op = _ptr(context, builder, a[2], args[2])
        mo = _ptr(context, builder, a[4], args[4])
        co = _ptr(context, builder, a[5], args[5])
        mi = _ptr(context, builder, a[6], args[6])
        p, q, j16, dec = args[1], args[3], args[7], args[8]
        if dec.type != ir.IntType(1):
            dec = builder.icmp_unsigned("!=", dec, ir.Constant(dec.type, 0))
        b = _load(builder, bp, p)
        s = _load(builder, co, j16)
        x = _load(builder, mo, j16)
        res = builder.xor(b, s)
        plain = builder.select(dec, res, b)
        _store(builder, res, op, q)
        _store(builder, builder.xor(x, plain), mi, j16)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _run_full(typingctx, buf, lane_p, out, lane_q, lane_live, nsteps, min_, cin, lrk, decrypt,
              finish, mout, cout, layout):
    """The hot loop: ``nsteps`` lockstep steps in which every lane handles a whole payload block.

    Equivalent to ``nsteps`` times (:func:`_aes_lanes`, then :func:`_full_block` on each lane and
    counter + 1) but with the AES states and counters kept in registers instead of in numpy
    scratch arrays (:func:`stack.crypto.ccm._aes_ir.emit_run_full`). Lane j's block of step s is
    read from ``buf[lane_p[j] + 16*s :][:16]`` and written to ``out[lane_q[j] + 16*s :][:16]``.
    A lane with ``lane_live[j] == 0`` holds no item: it still runs its AES (in lockstep it costs
    nothing extra) but reads and writes a 16-byte stack slot instead of the buffers. On return
    ``min_``/``cin`` hold the MAC and counter inputs of the next step.

    With ``finish`` the loop is followed by every lane's last payload block, of
    ``lane_live[j]`` = 1..16 bytes, and the tag step: on return ``mout``/``cout`` hold ``T`` and
    ``S_0`` of every lane (``min_``/``cin`` are not updated). Outside VAES-512
    (:data:`FINISH_WIDTH`) every item must then be at least 16 bytes long.
    """
    sig = types.void(buf, lane_p, out, lane_q, lane_live, nsteps, min_, cin, lrk, decrypt,
                     finish, mout, cout, layout)

    def codegen(context, builder, signature, args):
        a = signature.args
        names = ("buf", "lane_p", "out", "lane_q", "lane_live", None, "min", "cin", "lrk", None,
                 None, "mout", "cout")
        ptrs = {k: _ptr(context, builder, a[i], args[i]) for i, k in enumerate(names) if k}
        flags = []
        for v in (args[9], args[10]):
            if v.type != ir.IntType(1):
                v = builder.icmp_unsigned("!=", v, ir.Constant(v.type, 0))
            flags.append(v)
        _aes_ir.emit_run_full(builder, ptrs, args[5], flags[0], flags[1], _width(a[13]), NLANES)
        return context.get_dummy_value()

    return sig, codegen


# ------------------------------------------------------------------ kernels


@njit(cache=True, nogil=True)
def _load_lane(j, it, nonces, lens, tag_len, min_, cin):
    """Put item ``it`` into lane ``j``: MAC in = B_0, CTR in = A_1 (A_0 if the payload is empty).

    ``nonces`` is the flat (n * 13) nonce array. ``B_0 = flags | N | l(m)`` and
    ``A_1 = 0x01 | N | 0x0001`` are assembled as two little-endian words each: the nonce is read
    as two overlapping 8-byte words (bytes 0-7 and 5-12, never past its end).
    """
    j16 = 16 * j
    ln = lens[it]
    q0 = _ld8(nonces, 13 * it)  # N_0 .. N_7
    q1 = _ld8(nonces, 13 * it + 5)  # N_5 .. N_12
    lo = q0 << 8  # block bytes 1..7 = N_0 .. N_6
    hi = (q1 >> 16) & 0xFFFFFFFFFFFF  # block bytes 8..13 = N_7 .. N_12
    flags = ((tag_len - 2) // 2) * 8 + 1  # Adata = 0, M' = (M-2)/2, L' = L-1 = 1
    _st8(min_, j16, lo | flags)
    _st8(min_, j16 + 8, hi | ((ln >> 8) & 0xFF) << 48 | (ln & 0xFF) << 56)
    _st8(cin, j16, lo | 1)  # L' = 1
    _st8(cin, j16 + 8, hi | (1 if ln > 0 else 0) << 56)


@njit(cache=True, nogil=True)
def _tail_block(buf, p, out, q, rem, mout, cout, min_, j16, decrypt):
    """A last payload block of ``rem`` = 8..15 bytes, in words: the block's bytes 0-7 and
    ``rem-8 .. rem-1`` as two overlapping words (nothing read or written outside the block; both
    are loaded before either is stored, so in place works). MAC in = X ^ (P padded with zeros).
    """
    a = _ld8(buf, p)
    b = _ld8(buf, p + rem - 8)
    ra = a ^ _ld8(cout, j16)
    rb = b ^ _ld8(cout, j16 + rem - 8)
    _st8(out, q + rem - 8, rb)
    _st8(out, q, ra)
    pa, pb = (ra, rb) if decrypt else (a, b)
    hi = 0
    if rem > 8:  # bytes 8 .. rem-1 of the block are the top rem-8 bytes of pb
        sh = 8 * (16 - rem)
        hi = (pb >> sh) & ((1 << (64 - sh)) - 1)
    _st8(min_, j16, _ld8(mout, j16) ^ pa)
    _st8(min_, j16 + 8, _ld8(mout, j16 + 8) ^ hi)


@njit(cache=True, nogil=True)
def _ccm_range(rk, rk_of, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, order,
               lo, hi, layout):
    """Seal/open items ``order[lo..hi-1]``, 8 at a time in lockstep lanes.

    Item ``it`` is read from ``buf[offs[it]:]`` and written to ``out[oofs[it]:]`` (``out`` may be
    ``buf`` with ``oofs`` = ``offs``: in place). ``order`` only changes the schedule (items are
    independent): sorted by length, the 8 items of a group end within a step or two of each
    other, so almost every step runs in the fused whole-block loop (:func:`_run_full`).
    """
    nl = NLANES
    nflat = nonces.reshape(nonces.shape[0] * 13)
    min_ = np.zeros(16 * nl, np.uint8)
    cin = np.zeros(16 * nl, np.uint8)
    mout = np.zeros(16 * nl, np.uint8)
    cout = np.zeros(16 * nl, np.uint8)
    # Lane key table: round r of lane j's key schedule at 16 * (r * nl + j), so the round keys
    # of lanes sharing an AES instruction are adjacent; rewritten only when a lane's key changes.
    lrk = np.zeros(11 * 16 * nl, np.uint8)
    lane_key = np.full(nl, -1, np.int64)
    lane_item = np.full(nl, -1, np.int64)
    lane_step = np.zeros(nl, np.int64)
    lane_p = np.zeros(nl, np.int64)
    lane_q = np.zeros(nl, np.int64)
    lane_live = np.zeros(nl, np.int64)
    nxt = lo
    active = 0
    while True:
        if active == 0:
            # Load the next group of up to nl items. Lanes refill together, not one by one: with
            # the items sorted by length a group finishes within a step or two, so the lanes stay
            # in lockstep and nearly every step runs in the fused loop below.
            if nxt >= hi:
                break
            for j in range(nl):
                if nxt < hi:
                    it = order[nxt]
                    _load_lane(j, it, nflat, lens, tag_len, min_, cin)
                    src = rk_of[kidx[it]]
                    if lane_key[j] != src:
                        lane_key[j] = src
                        for r in range(11):   # element loop: a slice assignment compiles
                            d0 = 16 * (r * nl + j)  # numba's shape-mismatch error path (~2 s)
                            s0 = src + 16 * r
                            for b in range(16):
                                lrk[d0 + b] = rk[s0 + b]
                    lane_item[j] = it
                    lane_step[j] = 0
                    nxt += 1
                    active += 1
                else:
                    lane_item[j] = -1
        # Fast path: every live lane has m >= 1 whole blocks ahead of it -> m fused steps.
        # When after those every live lane has exactly one block (1..16 bytes) left, the same
        # call also runs that block and the tag step (``finish``); the lanes then only need
        # their tags (the per-lane loop below, with k = nb).
        m = 1 << 30
        for j in range(nl):
            it = lane_item[j]
            if it < 0:
                lane_live[j] = 0
                continue
            lane_live[j] = 1
            k = lane_step[j]
            f = (lens[it] >> 4) - k
            if k >= (lens[it] + 15) >> 4:
                f = 0
            m = min(m, f)
            lane_p[j] = offs[it] + 16 * k
            lane_q[j] = oofs[it] + 16 * k
        finish = m < (1 << 30)
        masked = layout.itemsize == FINISH_WIDTH
        if finish:
            # Bytes left per lane after m steps: all in 1..16 -> finish after m steps; all 0
            # (whole blocks, ended together) -> after m - 1 steps, the last block a whole one.
            # Without byte masks the last block is done through a 16-byte window ending at the
            # item's end: items of at least 16 bytes only.
            ended = 0
            for j in range(nl):
                it = lane_item[j]
                if it >= 0:
                    last = lens[it] - 16 * (lane_step[j] + m)
                    if last < 0 or last > 16 or (not masked and (last == 0 or lens[it] < 16)):
                        finish = False
                        break
                    ended += last == 0
                    lane_live[j] = last
            if finish and ended:  # (byte masks only: without, measured no faster than before)
                if ended < active or m == 0:
                    finish = False
                else:
                    m -= 1
                    for j in range(nl):
                        if lane_item[j] >= 0:
                            lane_live[j] = 16
        if finish:
            _run_full(buf, lane_p, out, lane_q, lane_live, m, min_, cin, lrk, decrypt, True,
                      mout, cout, layout)
            for j in range(nl):
                it = lane_item[j]
                if it >= 0:
                    lane_step[j] = (lens[it] + 15) >> 4
        elif m > 0:
            for j in range(nl):
                lane_live[j] = 1 if lane_item[j] >= 0 else 0
            _run_full(buf, lane_p, out, lane_q, lane_live, m, min_, cin, lrk, decrypt, False,
                      mout, cout, layout)
            for j in range(nl):
                it = lane_item[j]
                if it < 0:
                    continue
                k = lane_step[j] + m
                lane_step[j] = k
                ctr = k + 1 if k < (lens[it] + 15) >> 4 else 0
                cin[16 * j + 14] = (ctr >> 8) & 0xFF
                cin[16 * j + 15] = ctr & 0xFF
            continue
        else:
            _aes_lanes(min_, cin, mout, cout, lrk, layout)
        for j in range(nl):
            it = lane_item[j]
            if it < 0:
                continue
            j16 = 16 * j
            k = lane_step[j]
            ln = lens[it]
            nb = (ln + 15) >> 4
            if k < nb:
                p = offs[it] + 16 * k
                q = oofs[it] + 16 * k
                rem = ln - 16 * k
                if rem >= 16:
                    _full_block(buf, p, out, q, mout, cout, min_, j16, decrypt)
                elif rem >= 8:
                    _tail_block(buf, p, out, q, rem, mout, cout, min_, j16, decrypt)
                else:
                    for t in range(rem):
                        b = buf[p + t]
                        o = b ^ cout[j16 + t]
                        out[q + t] = o
                        min_[j16 + t] = mout[j16 + t] ^ (o if decrypt else b)
                    for t in range(rem, 16):
                        min_[j16 + t] = mout[j16 + t]
                k += 1
                lane_step[j] = k
                ctr = k + 1 if k < nb else 0
                cin[j16 + 14] = (ctr >> 8) & 0xFF
                cin[j16 + 15] = ctr & 0xFF
            else:
                if decrypt:
                    e = offs[it] + ln  # the received tag follows the ciphertext in the input
                    diff = 0
                    if tag_len == 8:
                        diff = _ld8(buf, e) ^ _ld8(mout, j16) ^ _ld8(cout, j16)
                    else:
                        for t in range(tag_len):
                            diff |= buf[e + t] ^ mout[j16 + t] ^ cout[j16 + t]
                    if diff == 0:
                        ok[it] = True
                    else:
                        ok[it] = False
                        q0 = oofs[it]
                        for t in range(ln):
                            out[q0 + t] = 0
                elif tag_len == 8:
                    _st8(out, oofs[it] + ln, _ld8(mout, j16) ^ _ld8(cout, j16))
                else:
                    e = oofs[it] + ln
                    for t in range(tag_len):
                        out[e + t] = mout[j16 + t] ^ cout[j16 + t]
                lane_item[j] = -1
                active -= 1


@njit(cache=True, nogil=True)
def _schedule(keys):
    nk = keys.shape[0]
    flat = keys.reshape(nk * 16)
    rk = np.empty(nk * 176, np.uint8)
    rk_of = np.empty(nk, np.int64)
    for i in range(nk):
        _expand_key(flat, 16 * i, rk, 176 * i)
        rk_of[i] = 176 * i
    return rk, rk_of


@njit(cache=True, nogil=True)
def schedule_order(lens):
    """Processing order of the items: by number of blocks, so each group of 8 lanes holds items
    of about equal size and they finish together (a lane that finishes early idles until its
    group is done; in arrival order with mixed lengths that would waste most of the AES slots,
    and refilling lanes one by one instead puts a scalar tail/tag step for all 8 lanes every few
    steps). A counting sort on the block count: O(n + longest item / 16), stable. Results do not
    depend on the order: items are independent.
    """
    n = lens.shape[0]
    in_order = True
    top = 0
    for i in range(n):
        nb = (lens[i] + 15) >> 4
        top = max(top, nb)
        if i and nb < (lens[i - 1] + 15) >> 4:
            in_order = False
    if in_order:
        return np.arange(n)
    start = np.zeros(top + 2, np.int64)
    for i in range(n):
        start[((lens[i] + 15) >> 4) + 1] += 1
    for b in range(1, top + 2):
        start[b] += start[b - 1]
    order = np.empty(n, np.int64)
    for i in range(n):
        nb = (lens[i] + 15) >> 4
        order[start[nb]] = i
        start[nb] += 1
    return order


@njit(cache=True, nogil=True)
def _run_serial(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, layout):
    rk, rk_of = _schedule(keys)
    order = schedule_order(lens)
    _ccm_range(rk, rk_of, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, order,
               0, nonces.shape[0], layout)


@njit(cache=True, nogil=True, parallel=True)
def _run_parallel(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, order,
                  bounds, layout):
    rk, rk_of = _schedule(keys)
    for c in prange(bounds.shape[0] - 1):
        _ccm_range(rk, rk_of, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok,
                   order, bounds[c], bounds[c + 1], layout)


@njit(cache=True, nogil=True)
def _run_addr(keys, nonces, base, span, offs, lens, oofs, tag_len, decrypt, ok, layout):
    mem = numba.carray(u8ptr(base), span)
    n = nonces.shape[0]
    kidx = np.zeros(n, np.int64)
    rk, rk_of = _schedule(keys)
    order = schedule_order(lens)
    _ccm_range(rk, rk_of, kidx, nonces, mem, offs, lens, mem, oofs, tag_len, decrypt, ok, order,
               0, n, layout)


def run_addr(
    key: np.ndarray,
    nonces: np.ndarray,
    base: int,
    span: int,
    offs: np.ndarray,
    lens: np.ndarray,
    oofs: np.ndarray,
    tag_len: int,
    decrypt: bool,
    ok: np.ndarray,
    layout: str = "aesni",
) -> None:
    """Seal/open items at raw addresses, one thread, one key (``key`` (1, 16)).

    Item i is read from address ``base + offs[i]`` and written to ``base + oofs[i]``; every
    address lies in ``[base, base + span)``. This lets the list API read the callers' ``bytes``
    and write the result ``bytes`` where they are, with no join and no copy out. The caller
    guarantees the memory is live, writeable where written, and that no written region overlaps
    another item's; nothing is checked here.
    """
    _run_addr(key, nonces, base, span, offs, lens, oofs, tag_len, decrypt, ok, LAYOUTS[layout])


def run(
    keys: np.ndarray,
    kidx: np.ndarray,
    nonces: np.ndarray,
    buf: np.ndarray,
    offs: np.ndarray,
    lens: np.ndarray,
    out: np.ndarray,
    oofs: np.ndarray,
    tag_len: int,
    decrypt: bool,
    ok: np.ndarray,
    threads: int,
    layout: str = "aesni",
) -> None:
    """Engine entry (inputs already validated by :mod:`stack.crypto.ccm`); ``layout`` is a key
    of :data:`LAYOUTS` the caller checked the CPU for."""
    n = nonces.shape[0]
    nonces = np.ascontiguousarray(nonces)  # the kernel reads them as one flat array
    lay = LAYOUTS[layout]
    threads = min(int(threads), numba.config.NUMBA_NUM_THREADS)
    if threads <= 1 or n < 2 * NLANES:
        _run_serial(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, lay)
        return
    order = schedule_order(lens)
    on_threads(threads, _run_parallel, keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len,
               decrypt, ok, order, split_by_bytes(lens[order], threads), lay)
