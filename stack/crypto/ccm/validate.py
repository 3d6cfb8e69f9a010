"""Argument checks shared by every CCM entry point, so engines may assume well-formed input.

Each check raises :class:`~stack.errors.KeyLengthError` for a wrong key, nonce or tag size and
:class:`~stack.errors.MalformedError` for anything else, before anything is written. Messages
name the argument and the item, never key bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import NamedTuple

import numpy as np

from stack.crypto.ccm.params import (
    CCM_KEY_LEN,
    CCM_MAX_PAYLOAD,
    CCM_NONCE_LEN,
    KEY_LENS,
    NONCE_LENS,
    TAG_LENS,
)
from stack.errors import KeyLengthError, MalformedError, require_bytes

# ------------------------------------------------------------------ single message


def check_key(key: object) -> bytes:
    """A 16-, 24- or 32-byte AES key as ``bytes``."""
    if type(key) is bytes and len(key) in KEY_LENS:  # the usual case, first
        return key
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise KeyLengthError(f"CCM key must be bytes, got {type(key).__name__}")
    if len(key) not in KEY_LENS:
        raise KeyLengthError(f"CCM key must be 16, 24 or 32 bytes, got {len(key)}")
    return bytes(key)


def check_tag_len(tag_len: object) -> int:
    """A CCM tag length (even, 4..16) as ``int``."""
    if isinstance(tag_len, bool) or tag_len not in TAG_LENS:
        raise KeyLengthError(f"CCM tag length must be one of {TAG_LENS}, got {tag_len!r}")
    return int(tag_len)  # type: ignore[call-overload]


def check_nonce(nonce: object) -> bytes:
    """A 7..13-byte CCM nonce as ``bytes``."""
    if type(nonce) is bytes and len(nonce) in NONCE_LENS:  # the usual case, first
        return nonce
    if not isinstance(nonce, (bytes, bytearray, memoryview)):
        raise KeyLengthError(f"CCM nonce must be bytes, got {type(nonce).__name__}")
    if len(nonce) not in NONCE_LENS:
        raise KeyLengthError(f"CCM nonce must be 7..13 bytes, got {len(nonce)}")
    return bytes(nonce)


def check_message(nonce: bytes, data: object, aad: object, tag_len: int, *,
                  sealed: bool) -> tuple[bytes, bytes | None]:
    """``(data, aad or None)`` as ``bytes``: the payload (or ciphertext ‖ tag when ``sealed``)
    fits the length field of a ``len(nonce)``-byte nonce, and a sealed input holds its tag."""
    if type(data) is not bytes:
        data = require_bytes(data, "CCM input" if sealed else "CCM payload")
    aad_b = b"" if aad is None or aad == b"" else require_bytes(aad, "CCM AAD")
    payload = len(data)
    if sealed:
        if payload < tag_len:
            raise MalformedError(
                f"CCM input shorter than its {tag_len}-byte tag: {len(data)} bytes"
            )
        payload -= tag_len
    if payload >= 1 << (8 * (15 - len(nonce))):
        what = "input" if sealed else "payload"
        raise MalformedError(
            f"CCM {what} of {len(data)} bytes too long for a {len(nonce)}-byte nonce"
        )
    return data, aad_b or None


# ------------------------------------------------------------------ lists of bytes


def check_threads(threads: object) -> None:
    """``threads`` is an integer >= 1."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise MalformedError(f"threads must be an integer >= 1, got {threads!r}")


def key_array(key: object) -> np.ndarray:
    """One AES-128 key as the (1, 16) uint8 key table of the batch engines."""
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise KeyLengthError(f"CCM key must be bytes, got {type(key).__name__}")
    if len(key) != CCM_KEY_LEN:
        raise KeyLengthError(f"CCM key must be 16 bytes (AES-128), got {len(key)}")
    return np.frombuffer(bytes(key), dtype=np.uint8).reshape(1, CCM_KEY_LEN)


def nonce_array(nonces: Sequence[bytes], n: int) -> np.ndarray:
    """``n`` 13-byte nonces as an (n, 13) uint8 array."""
    if len(nonces) != n:
        raise MalformedError(f"got {len(nonces)} nonces for {n} items")
    if n == 0:
        return np.zeros((0, CCM_NONCE_LEN), dtype=np.uint8)
    try:
        joined = b"".join(nonces)
    except TypeError:
        raise KeyLengthError("nonces must be bytes-like objects of 13 bytes") from None
    if len(joined) != CCM_NONCE_LEN * n or set(map(len, nonces)) != {CCM_NONCE_LEN}:
        bad = next(i for i, nc in enumerate(nonces) if len(nc) != CCM_NONCE_LEN)
        raise KeyLengthError(f"nonce {bad} must be 13 bytes, got {len(nonces[bad])}")
    return np.frombuffer(joined, dtype=np.uint8).reshape(n, CCM_NONCE_LEN)


# ------------------------------------------------------------------ numpy batches


def _as_index(a: object, name: str, n: int | None) -> np.ndarray:
    if (type(a) is np.ndarray and a.dtype == np.int64 and a.ndim == 1  # the usual case, fast
            and a.flags.c_contiguous and (n is None or a.shape[0] == n)):
        return a
    if not isinstance(a, np.ndarray):
        raise MalformedError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.ndim != 1:
        raise MalformedError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise MalformedError(f"{name} must have an integer dtype, got {a.dtype}")
    if n is not None and a.shape[0] != n:
        raise MalformedError(f"{name} must have {n} entries (one per item), got {a.shape[0]}")
    if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise MalformedError(f"{name} has values beyond int64")
    return np.ascontiguousarray(a, dtype=np.int64)


def _overlap(offs: np.ndarray, ends: np.ndarray) -> bool:
    """Whether any two regions ``[offs[i], ends[i])`` overlap (items in any order)."""
    order = np.argsort(offs, kind="stable")
    return bool((ends[order[:-1]] > offs[order[1:]]).any())


def _as_buffer(a: object, name: str, *, writeable: bool) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 1:
        raise MalformedError(f"{name} must be a 1-D uint8 numpy array")
    if not a.flags.c_contiguous:
        raise MalformedError(f"{name} must be C-contiguous")
    if writeable and not a.flags.writeable:
        raise MalformedError(f"{name} must be writeable (it is written in place)")
    return a


class Batch(NamedTuple):
    """Validated batch arrays, in the engines' argument order."""

    keys: np.ndarray
    kidx: np.ndarray
    nonces: np.ndarray
    buf: np.ndarray
    offs: np.ndarray
    lens: np.ndarray
    out: np.ndarray
    oofs: np.ndarray


_check_mod: ModuleType | None = None


def _checker() -> ModuleType:
    """:mod:`stack.crypto.ccm._check` (imports numba), loaded on first use."""
    global _check_mod
    if _check_mod is None:
        from stack.crypto.ccm import _check

        _check_mod = _check
    return _check_mod


def check_batch(
    keys: object,
    key_index: object,
    nonces: object,
    buf: object,
    offsets: object,
    lengths: object,
    out: object,
    out_offsets: object,
    threads: object,
    tag_len: object,
    decrypt: bool,
) -> Batch:
    """Check shapes, dtypes and ranges; return contiguous arrays the kernels can trust."""
    if not isinstance(keys, np.ndarray) or keys.dtype != np.uint8 or keys.ndim != 2:
        raise MalformedError("keys must be a 2-D uint8 numpy array of shape (K, 16)")
    if keys.shape[1] != CCM_KEY_LEN:
        raise KeyLengthError(f"keys must be AES-128 keys of 16 bytes, got {keys.shape[1]} bytes")
    if keys.shape[0] == 0:
        raise MalformedError("keys must hold at least one key")
    if not isinstance(nonces, np.ndarray) or nonces.dtype != np.uint8 or nonces.ndim != 2:
        raise MalformedError("nonces must be a 2-D uint8 numpy array of shape (n, 13)")
    if nonces.shape[1] != CCM_NONCE_LEN:
        raise KeyLengthError(f"nonces must be 13 bytes each, got {nonces.shape[1]}")
    n = nonces.shape[0]
    in_place = out is None
    if out_offsets is not None and in_place:
        raise MalformedError("out_offsets needs out (without out the batch is sealed in place)")
    src = _as_buffer(buf, "buf", writeable=in_place)
    dst = src if in_place else _as_buffer(out, "out", writeable=True)
    if not in_place and np.may_share_memory(src, dst):
        raise MalformedError("out must not share memory with buf (leave out=None for in place)")
    check_threads(threads)
    tag = check_tag_len(tag_len)
    kidx = _as_index(key_index, "key_index", n)
    offs = _as_index(offsets, "offsets", n)
    lens = _as_index(lengths, "lengths", n)
    oofs = offs if out_offsets is None else _as_index(out_offsets, "out_offsets", n)
    if n:
        _check = _checker()
        in_extra, out_extra = (tag, tag) if in_place else ((tag, 0) if decrypt else (0, tag))
        code, i = _check.check_items(kidx, offs, lens, oofs, keys.shape[0], CCM_MAX_PAYLOAD,
                                     in_extra, out_extra, src.shape[0], dst.shape[0], in_place)
        if code == _check.BAD_KEY_INDEX:
            raise MalformedError(f"key_index values must lie in [0, {keys.shape[0]}): item {i}")
        if code == _check.BAD_LENGTH:
            raise MalformedError(
                f"lengths must lie in [0, {CCM_MAX_PAYLOAD}] (CCM with L = 2): item {i} "
                f"has {int(lens[i])}"
            )
        if code == _check.NEGATIVE_OFFSET:
            raise MalformedError(f"offsets must be >= 0: item {i}")
        if code in (_check.PAST_END_IN, _check.PAST_END_OUT):
            what, o, size, extra = (
                ("buf", offs, src.shape[0], in_extra) if code == _check.PAST_END_IN
                else ("out", oofs, dst.shape[0], out_extra)
            )
            raise MalformedError(
                f"item {i} ends at byte {int(o[i] + lens[i]) + extra}, past the end of {what} "
                f"({size} bytes; the {tag}-byte tag counts where it is read or written)"
            )
        if code == _check.NOT_IN_ORDER and _overlap(oofs, oofs + lens + out_extra):
            where = "buf" if in_place else "out"
            raise MalformedError(f"items overlap in {where} (the regions written must be disjoint)")
    return Batch(np.ascontiguousarray(keys), kidx, np.ascontiguousarray(nonces), src, offs, lens,
                 dst, oofs)
