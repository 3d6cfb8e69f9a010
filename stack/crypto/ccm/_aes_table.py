"""AES-128-CCM in numba on a table-lookup AES: the portable fallback engine.

Compiles for any CPU numba targets (no AES-NI, ``NUMBA_CPU_NAME=generic``), so it is what
``engine="auto"`` picks where the AES-NI engine would be unsafe to compile. It processes one item
at a time (one CBC-MAC chain) with 32-bit T-tables — roughly ten times slower than the AES-NI
engine, and it is *not* constant-time (table lookups indexed by key-dependent bytes leak through
the cache): a correctness fallback, not a fast or hardened path.

AES per FIPS-197, T-table formulation: ``Te0[x] = (2·S[x], S[x], S[x], 3·S[x])`` as a big-endian
word, ``Te1..Te3`` its byte rotations.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from stack.crypto.ccm._split import on_threads, split_by_bytes


def _make_tables() -> tuple[np.ndarray, np.ndarray]:
    """S-box (multiplicative inverse in GF(2^8) + affine map) and Te0..Te3, built at import."""

    def mul(a: int, b: int) -> int:
        r = 0
        while b:
            if b & 1:
                r ^= a
            a = ((a << 1) ^ 0x11B) if a & 0x80 else (a << 1)
            b >>= 1
        return r

    inv = [0] * 256
    for x in range(1, 256):
        for y in range(1, 256):
            if mul(x, y) == 1:
                inv[x] = y
                break
    sbox = np.zeros(256, np.uint32)
    for x in range(256):
        b = inv[x]
        s = b
        for i in range(1, 5):
            s ^= ((b << i) | (b >> (8 - i))) & 0xFF
        sbox[x] = s ^ 0x63
    te = np.zeros((4, 256), np.uint32)
    for x in range(256):
        s = int(sbox[x])
        w = (mul(s, 2) << 24) | (s << 16) | (s << 8) | mul(s, 3)
        for r in range(4):
            te[r, x] = ((w >> (8 * r)) | (w << (32 - 8 * r))) & 0xFFFFFFFF
    return sbox, te


SBOX, TE = _make_tables()


@njit(cache=True, nogil=True)
def _expand(key, sbox, rk):
    """AES-128 key schedule: 44 big-endian round-key words into ``rk``."""
    for i in range(4):
        rk[i] = (
            (np.uint32(key[4 * i]) << 24)
            | (np.uint32(key[4 * i + 1]) << 16)
            | (np.uint32(key[4 * i + 2]) << 8)
            | np.uint32(key[4 * i + 3])
        )
    rcon = np.uint32(1)
    for i in range(4, 44):
        t = rk[i - 1]
        if i % 4 == 0:
            t = (
                (sbox[(t >> 16) & 0xFF] << 24)
                | (sbox[(t >> 8) & 0xFF] << 16)
                | (sbox[t & 0xFF] << 8)
                | sbox[t >> 24]
            ) ^ (rcon << 24)
            rcon = np.uint32(((rcon << 1) ^ 0x1B) & 0xFF) if rcon & 0x80 else np.uint32(rcon << 1)
        rk[i] = rk[i - 4] ^ t


@njit(cache=True, nogil=True, inline="always")
def _enc(rk, te, sbox, s):
    """Encrypt the 4-word block ``s`` in place."""
    s0 = s[0] ^ rk[0]
    s1 = s[1] ^ rk[1]
    s2 = s[2] ^ rk[2]
    s3 = s[3] ^ rk[3]
    t0, t1, t2, t3 = te[0], te[1], te[2], te[3]
    for r in range(1, 10):
        k = 4 * r
        u0 = t0[s0 >> 24] ^ t1[(s1 >> 16) & 0xFF] ^ t2[(s2 >> 8) & 0xFF] ^ t3[s3 & 0xFF] ^ rk[k]
        u1 = t0[s1 >> 24] ^ t1[(s2 >> 16) & 0xFF] ^ t2[(s3 >> 8) & 0xFF] ^ t3[s0 & 0xFF] ^ rk[k + 1]
        u2 = t0[s2 >> 24] ^ t1[(s3 >> 16) & 0xFF] ^ t2[(s0 >> 8) & 0xFF] ^ t3[s1 & 0xFF] ^ rk[k + 2]
        u3 = t0[s3 >> 24] ^ t1[(s0 >> 16) & 0xFF] ^ t2[(s1 >> 8) & 0xFF] ^ t3[s2 & 0xFF] ^ rk[k + 3]
        s0, s1, s2, s3 = u0, u1, u2, u3
    s[0] = _last(sbox, s0, s1, s2, s3) ^ rk[40]
    s[1] = _last(sbox, s1, s2, s3, s0) ^ rk[41]
    s[2] = _last(sbox, s2, s3, s0, s1) ^ rk[42]
    s[3] = _last(sbox, s3, s0, s1, s2) ^ rk[43]


@njit(cache=True, nogil=True, inline="always")
def _last(sbox, a, b, c, d):
    return (
        (sbox[a >> 24] << 24)
        | (sbox[(b >> 16) & 0xFF] << 16)
        | (sbox[(c >> 8) & 0xFF] << 8)
        | sbox[d & 0xFF]
    )


@njit(cache=True, nogil=True)
def _get(buf, p, n):
    """Up to 16 bytes at ``buf[p:p+n]`` as 4 big-endian words, zero padded."""
    w = np.zeros(4, np.uint32)
    for t in range(n):
        w[t >> 2] |= np.uint32(buf[p + t]) << (24 - 8 * (t & 3))
    return w


@njit(cache=True, nogil=True)
def _ccm_items(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, lo, hi, te,
               sbox):
    """Items ``lo..hi-1`` in turn: read at ``buf[offs[it]:]``, write at ``out[oofs[it]:]``."""
    rk = np.zeros(44, np.uint32)
    cur = -1
    x = np.zeros(4, np.uint32)
    a = np.zeros(4, np.uint32)
    s = np.zeros(4, np.uint32)
    blk = np.zeros(16, np.uint8)
    for it in range(lo, hi):
        if kidx[it] != cur:
            cur = kidx[it]
            _expand(keys[cur], sbox, rk)
        ln = lens[it]
        o = offs[it]
        oq = oofs[it]
        # B_0 = flags | N | l(m);  X_1 = E(K, B_0)
        blk[0] = ((tag_len - 2) // 2) * 8 + 1
        for t in range(13):
            blk[1 + t] = nonces[it, t]
        blk[14] = (ln >> 8) & 0xFF
        blk[15] = ln & 0xFF
        x[:] = _get(blk, 0, 16)
        _enc(rk, te, sbox, x)
        # A_i = 0x01 | N | i
        blk[0] = 1
        nb = (ln + 15) >> 4
        for i in range(1, nb + 1):
            blk[14] = (i >> 8) & 0xFF
            blk[15] = i & 0xFF
            s[:] = _get(blk, 0, 16)
            _enc(rk, te, sbox, s)
            p = o + 16 * (i - 1)
            q = oq + 16 * (i - 1)
            n = min(16, ln - 16 * (i - 1))
            if not decrypt:
                x ^= _get(buf, p, n)
            for t in range(n):
                out[q + t] = buf[p + t] ^ np.uint8((s[t >> 2] >> (24 - 8 * (t & 3))) & 0xFF)
            if decrypt:
                x ^= _get(out, q, n)
            _enc(rk, te, sbox, x)
        blk[14] = 0
        blk[15] = 0
        a[:] = _get(blk, 0, 16)
        _enc(rk, te, sbox, a)  # S_0
        diff = 0
        for t in range(tag_len):
            tb = np.uint8(((x[t >> 2] ^ a[t >> 2]) >> (24 - 8 * (t & 3))) & 0xFF)
            if decrypt:
                diff |= buf[o + ln + t] ^ tb  # received tag, after the ciphertext in the input
            else:
                out[oq + ln + t] = tb
        if decrypt:
            ok[it] = diff == 0
            if diff != 0:
                for t in range(ln):
                    out[oq + t] = 0


@njit(cache=True, nogil=True)
def _run_serial(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, te, sbox):
    _ccm_items(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, 0,
               nonces.shape[0], te, sbox)


@njit(cache=True, nogil=True, parallel=True)
def _run_parallel(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, te, sbox,
                  bounds):
    for c in prange(bounds.shape[0] - 1):
        _ccm_items(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok,
                   bounds[c], bounds[c + 1], te, sbox)


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
) -> None:
    """Engine entry (inputs already validated by :mod:`stack.crypto.ccm`)."""
    threads = min(int(threads), numba.config.NUMBA_NUM_THREADS)
    if threads <= 1 or nonces.shape[0] < 2:
        _run_serial(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok, TE,
                    SBOX)
        return
    on_threads(threads, _run_parallel, keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len,
               decrypt, ok, TE, SBOX, split_by_bytes(lens, threads))
