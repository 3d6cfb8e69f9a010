"""The batch API: seal or open every MPDU of a burst in one call, in its numpy buffer.

The 802.16m data path seals every MPDU of a PHY burst with the TEK of its SA. Calling
``cryptography``'s ``AESCCM`` once per MPDU costs a Python round trip per MPDU; these calls take
all MPDUs of a burst at once, validate them once (:mod:`.validate`) and hand them to one engine
(:mod:`.engines`).

Layout of one item ``i`` in ``buf`` (offsets and lengths in bytes)::

    buf[o_i : o_i + l_i]            plaintext (seal input / open output)
    buf[o_i + l_i : o_i + l_i + t]  tag, t = tag_len (8 for 802.16m)
"""

from __future__ import annotations

import time

import numpy as np

from stack.crypto.ccm.engines import kernel, resolve
from stack.crypto.ccm.params import CCM_KEY_LEN, CCM_NONCE_LEN, CCM_TAG_LEN
from stack.crypto.ccm.validate import check_batch, check_threads

__all__ = ["open_batch", "run_in_place_trusted", "seal_batch", "warm_up"]


def _run(
    keys: object,
    key_index: object,
    nonces: object,
    buf: object,
    offsets: object,
    lengths: object,
    out: object,
    out_offsets: object,
    threads: int,
    engine: str | None,
    tag_len: int,
    decrypt: bool,
) -> np.ndarray:
    """Validate, pick the engine, run it; the (n,) ok array (all True for a seal)."""
    b = check_batch(keys, key_index, nonces, buf, offsets, lengths, out, out_offsets, threads,
                    tag_len, decrypt)
    name = resolve(engine)
    n = b.nonces.shape[0]
    ok = np.zeros(n, dtype=np.bool_)  # open sets every entry; seal ignores it
    if n:
        kernel(name)(*b, int(tag_len), decrypt, ok, int(threads))
    return ok


def run_in_place_trusted(
    keys: np.ndarray,
    key_index: np.ndarray,
    nonces: np.ndarray,
    buf: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    *,
    decrypt: bool,
    threads: int = 1,
    engine: str | None = None,
) -> np.ndarray:
    """:func:`seal_batch` / :func:`open_batch` in place, 8-byte tags, **without** validation.

    For :mod:`stack.mac` only, which lays the batch out itself (contiguous int64 index arrays,
    items in buffer order inside ``buf``, lengths within an MPDU): on a short burst the checks
    cost more than the crypto. Anything else must use the public calls.
    """
    check_threads(threads)
    ok = np.zeros(nonces.shape[0], dtype=np.bool_)
    if nonces.shape[0]:
        kernel(resolve(engine))(keys, key_index, nonces, buf, offsets, lengths, buf, offsets,
                                CCM_TAG_LEN, decrypt, ok, int(threads))
    return ok


def seal_batch(
    keys: np.ndarray,
    key_index: np.ndarray,
    nonces: np.ndarray,
    buf: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    *,
    out: np.ndarray | None = None,
    out_offsets: np.ndarray | None = None,
    threads: int = 1,
    engine: str | None = None,
    tag_len: int = CCM_TAG_LEN,
) -> None:
    """Seal ``n`` items: ``buf[o:o+l]`` becomes ciphertext, the tag goes to ``buf[o+l:]``.

    ``keys`` (K, 16) uint8 AES-128 keys; ``key_index`` (n,) which key each item uses; ``nonces``
    (n, 13) uint8; ``buf`` 1-D uint8; ``offsets``/``lengths`` (n,) integers, the plaintext of
    item i is ``buf[offsets[i] : offsets[i] + lengths[i]]``. No AAD.

    In place (``out=None``, the MAC layer's burst path): ``tag_len`` bytes after each payload must
    be free for the tag. Into a caller-provided buffer: ``out`` (1-D uint8, writeable, not sharing
    memory with ``buf``) receives ciphertext ‖ tag of item i at ``out_offsets[i]`` (default:
    ``offsets``); ``buf`` is only read (it may be read-only) and needs no room for tags.

    ``threads`` > 1 spreads items over numba threads (numba engines only). Raises
    :class:`MalformedError` / :class:`KeyLengthError` on bad input, before writing anything.
    """
    _run(keys, key_index, nonces, buf, offsets, lengths, out, out_offsets, threads, engine,
         tag_len, False)


def open_batch(
    keys: np.ndarray,
    key_index: np.ndarray,
    nonces: np.ndarray,
    buf: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    *,
    out: np.ndarray | None = None,
    out_offsets: np.ndarray | None = None,
    threads: int = 1,
    engine: str | None = None,
    tag_len: int = CCM_TAG_LEN,
) -> np.ndarray:
    """Open ``n`` sealed items; return an (n,) bool array, True where the tag verified.

    ``lengths`` are plaintext lengths (the tag follows at ``o + l``). In place (``out=None``):
    where the tag verifies the ciphertext is replaced by plaintext; where it does not, the item's
    ``l`` payload bytes are zeroed, so unauthenticated plaintext never escapes; tag bytes are left
    as they were. With ``out`` (see :func:`seal_batch`): the plaintext of item i goes to
    ``out[out_offsets[i] :][: l]`` (zeroes where the tag fails) and ``buf`` is not written.
    """
    return _run(keys, key_index, nonces, buf, offsets, lengths, out, out_offsets, threads,
                engine, tag_len, True)


def warm_up(engine: str | None = None, *, threads: int = 1) -> float:
    """Compile (or load from numba's cache) the kernels of ``engine``; return the seconds it took.

    Call it at start-up so the first burst does not pay the JIT. Each direction is run once on a
    tiny batch; ``threads`` > 1 also compiles the multi-threaded driver.
    """
    name = resolve(engine)
    t0 = time.perf_counter()
    n = 32  # enough items for the multi-threaded driver to engage
    keys = np.zeros((1, CCM_KEY_LEN), np.uint8)
    nonces = np.zeros((n, CCM_NONCE_LEN), np.uint8)
    lens = np.full(n, 40, np.int64)
    offs = np.arange(n, dtype=np.int64) * 48
    buf = np.zeros(48 * n, np.uint8)
    kidx = np.zeros(n, np.int64)
    for th in sorted({1, int(threads)}):
        seal_batch(keys, kidx, nonces, buf, offs, lens, engine=name, threads=th)
        open_batch(keys, kidx, nonces, buf, offs, lens, engine=name, threads=th)
    return time.perf_counter() - t0
