"""AES-128-CCM on AES-NI in numba: 8 items in lockstep (multi-buffer CBC-MAC + CTR).

**Never call anything here unless ``stack.crypto.ccm.engine_status()["numba-aesni"] == ""``.**
The intrinsics below emit ``llvm.x86.aesni.*``; compiling them for a CPU without AES-NI (or with
``NUMBA_CPU_NAME=generic``) makes LLVM abort the whole interpreter, not raise. Importing this module
is safe (numba compiles lazily, on the first call).

Why lockstep: one CCM item is a CBC-MAC chain — each block's AES waits for the previous one, so a
single item runs at AES *latency* (~2.5 cycles/byte). Eight items side by side give the core 16
independent AES streams per step (8 CBC-MAC + 8 CTR), which it runs at AES *throughput*.

Schedule of one lane holding an item with ``nb = ceil(l/16)`` payload blocks (RFC 3610 symbols)::

    step 0:        MAC in = B_0                 CTR in = A_1   (A_0 if nb == 0)
    after step k:  if k < nb: block k+1: S = out_ctr;  C = P ^ S (seal) / P = C ^ S (open)
                              MAC in = X_{k+1} ^ P,    CTR in = A_{k+2}  (A_0 after the last)
                   if k == nb: T = X_{nb+1},  S_0 = out_ctr,  tag = T ^ S_0; load next item
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from stack.crypto._split import split_by_bytes

NLANES = 8
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
def _aes_lanes(typingctx, min_, cin, mout, cout, rk, lane_rk):
    """Encrypt 8 MAC blocks and 8 counter blocks (lane j: 16 bytes at ``16*j``) in lockstep.

    ``lane_rk[j]`` is the byte offset in ``rk`` of lane j's round keys. All 16 AES run interleaved
    round by round, so their latencies overlap.
    """
    sig = types.void(min_, cin, mout, cout, rk, lane_rk)

    def codegen(context, builder, signature, args):
        a = signature.args
        mi, ci, mo, co, rp = (_ptr(context, builder, a[i], args[i]) for i in range(5))
        lp = _ptr(context, builder, a[5], args[5])
        enc = _aes_fn(builder, "aesenc")
        last = _aes_fn(builder, "aesenclast")
        kb = [builder.load(builder.gep(lp, [_c64(j)])) for j in range(NLANES)]
        m, c = [], []
        for j in range(NLANES):
            k0 = _load(builder, rp, kb[j])
            m.append(builder.xor(_load(builder, mi, _c64(16 * j)), k0))
            c.append(builder.xor(_load(builder, ci, _c64(16 * j)), k0))
        for r in range(1, 11):
            fn = enc if r < 10 else last
            for j in range(NLANES):
                kr = _load(builder, rp, builder.add(kb[j], _c64(16 * r)))
                m[j] = builder.call(fn, [m[j], kr])
                c[j] = builder.call(fn, [c[j], kr])
        for j in range(NLANES):
            _store(builder, m[j], mo, _c64(16 * j))
            _store(builder, c[j], co, _c64(16 * j))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _full_block(typingctx, buf, p, mout, cout, min_, j16, decrypt):
    """One whole payload block of one lane: CTR-xor ``buf[p:p+16]`` in place, next MAC input.

    Seal: ``C = P ^ S``, MAC in = ``X ^ P``. Open: ``P = C ^ S``, MAC in = ``X ^ P``.
    """
    sig = types.void(buf, p, mout, cout, min_, j16, decrypt)

    def codegen(context, builder, signature, args):
        a = signature.args
        bp = _ptr(context, builder, a[0], args[0])
        mo = _ptr(context, builder, a[2], args[2])
        co = _ptr(context, builder, a[3], args[3])
        mi = _ptr(context, builder, a[4], args[4])
        p, j16, dec = args[1], args[5], args[6]
        if dec.type != ir.IntType(1):
            dec = builder.icmp_unsigned("!=", dec, ir.Constant(dec.type, 0))
        b = _load(builder, bp, p)
        s = _load(builder, co, j16)
        x = _load(builder, mo, j16)
        out = builder.xor(b, s)
        plain = builder.select(dec, out, b)
        _store(builder, out, bp, p)
        _store(builder, builder.xor(x, plain), mi, j16)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _run_full(typingctx, buf, lane_p, nsteps, min_, cin, rk, lane_rk, decrypt):
    """The hot loop: ``nsteps`` lockstep steps in which every lane handles a whole payload block.

    Equivalent to ``nsteps`` times (:func:`_aes_lanes`, then :func:`_full_block` on each lane and
    counter + 1) but with the 16 AES states, the counters and the round keys kept in registers or
    on the stack instead of in numpy scratch arrays. Lane j's block of step s is
    ``buf[lane_p[j] + 16*s :][:16]``. On return ``min_``/``cin`` hold the MAC and counter inputs
    of the next step.
    """
    sig = types.void(buf, lane_p, nsteps, min_, cin, rk, lane_rk, decrypt)

    def codegen(context, builder, signature, args):
        a = signature.args
        bp = _ptr(context, builder, a[0], args[0])
        pp = _ptr(context, builder, a[1], args[1])
        mi = _ptr(context, builder, a[3], args[3])
        ci = _ptr(context, builder, a[4], args[4])
        rp = _ptr(context, builder, a[5], args[5])
        lp = _ptr(context, builder, a[6], args[6])
        dec = args[7]
        if dec.type != ir.IntType(1):
            dec = builder.icmp_unsigned("!=", dec, ir.Constant(dec.type, 0))
        enc = _aes_fn(builder, "aesenc")
        last = _aes_fn(builder, "aesenclast")
        # Round keys and lane base pointers copied to the stack: no aliasing with buf, so LLVM
        # may keep them in registers across iterations.
        rks = []
        for j in range(NLANES):
            kb = builder.load(builder.gep(lp, [_c64(j)]))
            row = []
            for r in range(11):
                slot = cgutils.alloca_once(builder, _V2)
                builder.store(_load(builder, rp, builder.add(kb, _c64(16 * r))), slot)
                row.append(slot)
            rks.append(row)
        mst, cst, pst = [], [], []
        for j in range(NLANES):
            ms = cgutils.alloca_once(builder, _V2)
            cs = cgutils.alloca_once(builder, _V2)
            ps = cgutils.alloca_once(builder, _I64)
            builder.store(_load(builder, mi, _c64(16 * j)), ms)
            builder.store(_load(builder, ci, _c64(16 * j)), cs)
            builder.store(builder.load(builder.gep(pp, [_c64(j)])), ps)
            mst.append(ms)
            cst.append(cs)
            pst.append(ps)
        one_hi = ir.Constant(_I64, 1)
        idx1 = ir.Constant(ir.IntType(32), 1)
        with cgutils.for_range(builder, args[2]):
            m = [builder.load(x) for x in mst]
            c = [builder.load(x) for x in cst]
            for j in range(NLANES):
                k0 = builder.load(rks[j][0])
                m[j] = builder.xor(m[j], k0)
                c[j] = builder.xor(c[j], k0)
            for r in range(1, 11):
                fn = enc if r < 10 else last
                for j in range(NLANES):
                    kr = builder.load(rks[j][r])
                    m[j] = builder.call(fn, [m[j], kr])
                    c[j] = builder.call(fn, [c[j], kr])
            for j in range(NLANES):
                p = builder.load(pst[j])
                b = _load(builder, bp, p)
                out = builder.xor(b, c[j])
                _store(builder, out, bp, p)
                plain = builder.select(dec, out, b)
                builder.store(builder.xor(m[j], plain), mst[j])
                builder.store(builder.add(p, _c64(16)), pst[j])
                # counter = big-endian last two bytes = top 16 bits of element 1 (little-endian)
                cv = builder.load(cst[j])
                hi = builder.extract_element(cv, idx1)
                hi = builder.bswap(builder.add(builder.bswap(hi), one_hi))
                builder.store(builder.insert_element(cv, hi, idx1), cst[j])
        for j in range(NLANES):
            _store(builder, builder.load(mst[j]), mi, _c64(16 * j))
            _store(builder, builder.load(cst[j]), ci, _c64(16 * j))
        return context.get_dummy_value()

    return sig, codegen


# ------------------------------------------------------------------ kernels


@njit(cache=True, nogil=True)
def _load_lane(j, it, rk_of, kidx, nonces, lens, tag_len, min_, cin, lane_rk):
    """Put item ``it`` into lane ``j``: MAC in = B_0, CTR in = A_1 (A_0 if the payload is empty)."""
    j16 = 16 * j
    ln = lens[it]
    min_[j16] = ((tag_len - 2) // 2) * 8 + 1  # Adata = 0, M' = (M-2)/2, L' = L-1 = 1
    cin[j16] = 1  # L' = 1
    for t in range(13):
        v = nonces[it, t]
        min_[j16 + 1 + t] = v
        cin[j16 + 1 + t] = v
    min_[j16 + 14] = (ln >> 8) & 0xFF
    min_[j16 + 15] = ln & 0xFF
    cin[j16 + 14] = 0
    cin[j16 + 15] = 1 if ln > 0 else 0
    lane_rk[j] = rk_of[kidx[it]]


@njit(cache=True, nogil=True)
def _ccm_range(rk, rk_of, kidx, nonces, buf, offs, lens, tag_len, decrypt, ok, lo, hi):
    """Seal/open items ``lo..hi-1`` with 8 lanes in lockstep; lanes refill as items finish."""
    min_ = np.zeros(16 * NLANES, np.uint8)
    cin = np.zeros(16 * NLANES, np.uint8)
    mout = np.zeros(16 * NLANES, np.uint8)
    cout = np.zeros(16 * NLANES, np.uint8)
    lane_rk = np.zeros(NLANES, np.int64)
    lane_item = np.full(NLANES, -1, np.int64)
    lane_step = np.zeros(NLANES, np.int64)
    lane_rk[:] = rk_of[kidx[lo]] if hi > lo else 0
    nxt = lo
    active = 0
    for j in range(NLANES):
        if nxt < hi:
            _load_lane(j, nxt, rk_of, kidx, nonces, lens, tag_len, min_, cin, lane_rk)
            lane_item[j] = nxt
            lane_step[j] = 0
            nxt += 1
            active += 1
    lane_p = np.zeros(NLANES, np.int64)
    while active > 0:
        if active == NLANES:
            # Fast path: every lane has m >= 1 whole blocks ahead of it -> m fused steps.
            m = 1 << 30
            for j in range(NLANES):
                it = lane_item[j]
                k = lane_step[j]
                f = (lens[it] >> 4) - k
                if k >= (lens[it] + 15) >> 4:
                    f = 0
                m = min(m, f)
                lane_p[j] = offs[it] + 16 * k
            if m > 0:
                _run_full(buf, lane_p, m, min_, cin, rk, lane_rk, decrypt)
                for j in range(NLANES):
                    it = lane_item[j]
                    k = lane_step[j] + m
                    lane_step[j] = k
                    ctr = k + 1 if k < (lens[it] + 15) >> 4 else 0
                    cin[16 * j + 14] = (ctr >> 8) & 0xFF
                    cin[16 * j + 15] = ctr & 0xFF
                continue
        _aes_lanes(min_, cin, mout, cout, rk, lane_rk)
        for j in range(NLANES):
            it = lane_item[j]
            if it < 0:
                continue
            j16 = 16 * j
            k = lane_step[j]
            ln = lens[it]
            nb = (ln + 15) >> 4
            if k < nb:
                p = offs[it] + 16 * k
                rem = ln - 16 * k
                if rem >= 16:
                    _full_block(buf, p, mout, cout, min_, j16, decrypt)
                else:
                    for t in range(rem):
                        b = buf[p + t]
                        o = b ^ cout[j16 + t]
                        buf[p + t] = o
                        min_[j16 + t] = mout[j16 + t] ^ (o if decrypt else b)
                    for t in range(rem, 16):
                        min_[j16 + t] = mout[j16 + t]
                k += 1
                lane_step[j] = k
                ctr = k + 1 if k < nb else 0
                cin[j16 + 14] = (ctr >> 8) & 0xFF
                cin[j16 + 15] = ctr & 0xFF
            else:
                e = offs[it] + ln
                if decrypt:
                    diff = 0
                    for t in range(tag_len):
                        diff |= buf[e + t] ^ mout[j16 + t] ^ cout[j16 + t]
                    if diff == 0:
                        ok[it] = True
                    else:
                        ok[it] = False
                        o0 = offs[it]
                        for t in range(ln):
                            buf[o0 + t] = 0
                else:
                    for t in range(tag_len):
                        buf[e + t] = mout[j16 + t] ^ cout[j16 + t]
                if nxt < hi:
                    _load_lane(j, nxt, rk_of, kidx, nonces, lens, tag_len, min_, cin, lane_rk)
                    lane_item[j] = nxt
                    lane_step[j] = 0
                    nxt += 1
                else:
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
def _run_serial(keys, kidx, nonces, buf, offs, lens, tag_len, decrypt, ok):
    rk, rk_of = _schedule(keys)
    _ccm_range(rk, rk_of, kidx, nonces, buf, offs, lens, tag_len, decrypt, ok, 0, nonces.shape[0])


@njit(cache=True, nogil=True, parallel=True)
def _run_parallel(keys, kidx, nonces, buf, offs, lens, tag_len, decrypt, ok, bounds):
    rk, rk_of = _schedule(keys)
    for c in prange(bounds.shape[0] - 1):
        _ccm_range(rk, rk_of, kidx, nonces, buf, offs, lens, tag_len, decrypt, ok,
                   bounds[c], bounds[c + 1])


def run(
    keys: np.ndarray,
    kidx: np.ndarray,
    nonces: np.ndarray,
    buf: np.ndarray,
    offs: np.ndarray,
    lens: np.ndarray,
    tag_len: int,
    decrypt: bool,
    ok: np.ndarray,
    threads: int,
) -> None:
    """Engine entry (inputs already validated by :mod:`stack.crypto.ccm`)."""
    n = nonces.shape[0]
    threads = min(int(threads), numba.config.NUMBA_NUM_THREADS)
    if threads <= 1 or n < 2 * NLANES:
        _run_serial(keys, kidx, nonces, buf, offs, lens, tag_len, decrypt, ok)
        return
    bounds = split_by_bytes(lens, threads)
    prev = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        _run_parallel(keys, kidx, nonces, buf, offs, lens, tag_len, decrypt, ok, bounds)
    finally:
        numba.set_num_threads(prev)
