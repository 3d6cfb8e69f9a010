"""Batch AES-128-CCM over numpy buffers, behind one API with interchangeable engines.

The 802.16m data path seals every MPDU of a PHY burst with the TEK of its SA: AES-128-CCM with a
13-byte nonce (L = 2), an 8-byte ICV (M = 8) and no additional authenticated data. Calling
``cryptography``'s ``AESCCM`` once per MPDU costs a Python round trip per MPDU; this module seals or
opens *all* MPDUs of a burst in one call, in place in the burst's numpy buffer.

Engines (see :func:`available_engines`):

``"reference"``
    One ``cryptography`` ``AESCCM`` call per item. Always available; the yardstick for the others.
``"numba-aesni"``
    numba kernel on AES-NI (LLVM intrinsics), 8 items in lockstep so the CBC-MAC chains of several
    items hide each other's AES latency. Only offered when the CPU numba compiles for has AES-NI:
    compiling it elsewhere makes LLVM abort the interpreter, so the check comes first.
``"numba-table"``
    numba kernel on a table-lookup AES: slower, but compiles for any CPU.

``engine=None`` / ``"auto"`` picks ``numba-aesni`` when safe, else ``numba-table``. Setting the
environment variable ``RELAYSEC_CCM_ENGINE`` overrides the automatic choice, and
``RELAYSEC_CCM_NO_AESNI=1`` declares AES-NI absent (for tests and for CPUs that misreport it).

Layout of one item ``i`` in ``buf`` (offsets and lengths in bytes)::

    buf[o_i : o_i + l_i]            plaintext (seal input / open output)
    buf[o_i + l_i : o_i + l_i + t]  tag, t = tag_len (8 for 802.16m)

CCM per RFC 3610 / NIST SP 800-38C: ``B_0 = flags | N | l(m)``, ``X_1 = E(K, B_0)``,
``X_{i+1} = E(K, X_i ^ B_i)``, ``A_i = 0x01 | N | i``, ``S_i = E(K, A_i)``,
``C = P ^ S_1 S_2 ...``, ``U = T ^ first-M-bytes(S_0)``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import NamedTuple

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM as _PycaAESCCM

from stack.errors import IntegrityError, KeyLengthError, MalformedError

__all__ = [
    "AESCCM",
    "CCM_KEY_LEN",
    "CCM_MAX_PAYLOAD",
    "CCM_NONCE_LEN",
    "CCM_TAG_LEN",
    "ENGINES",
    "available_engines",
    "default_engine",
    "engine_status",
    "open_batch",
    "open_many",
    "seal_batch",
    "seal_many",
    "warm_up",
]

CCM_KEY_LEN = 16
"""AES-128 key length in bytes (TEKs are 128-bit)."""
CCM_NONCE_LEN = 13
"""Nonce length of the batch API (802.16m: L = 2)."""
CCM_TAG_LEN = 8
"""Default tag (ICV) length (802.16m: M = 8)."""
CCM_MAX_PAYLOAD = 0xFFFF
"""Largest payload with L = 2 (the length field of B_0 is two bytes)."""
_TAG_LENS = (4, 6, 8, 10, 12, 14, 16)

ENGINES = ("numba-aesni", "numba-table", "reference")
"""Every engine name, fastest first. :func:`available_engines` says which run here."""


# --------------------------------------------------------------------------------------------
# Input validation (shared by every engine, so engines may assume well-formed arrays)
# --------------------------------------------------------------------------------------------


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


def _check_threads(threads: object) -> None:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise MalformedError(f"threads must be an integer >= 1, got {threads!r}")


def _as_buffer(a: object, name: str, *, writeable: bool) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 1:
        raise MalformedError(f"{name} must be a 1-D uint8 numpy array")
    if not a.flags.c_contiguous:
        raise MalformedError(f"{name} must be C-contiguous")
    if writeable and not a.flags.writeable:
        raise MalformedError(f"{name} must be writeable (it is written in place)")
    return a


class _Batch(NamedTuple):
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
    """:mod:`stack.crypto._check` (imports numba), loaded on first use, not with stack.crypto."""
    global _check_mod
    if _check_mod is None:
        from stack.crypto import _check

        _check_mod = _check
    return _check_mod


def _validate(
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
) -> _Batch:
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
    _check_threads(threads)
    if isinstance(tag_len, bool) or tag_len not in _TAG_LENS:
        raise KeyLengthError(f"tag length must be one of {_TAG_LENS}, got {tag_len!r}")
    kidx = _as_index(key_index, "key_index", n)
    offs = _as_index(offsets, "offsets", n)
    lens = _as_index(lengths, "lengths", n)
    oofs = offs if out_offsets is None else _as_index(out_offsets, "out_offsets", n)
    if n:
        _check = _checker()
        tag = int(tag_len)
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
    return _Batch(np.ascontiguousarray(keys), kidx, np.ascontiguousarray(nonces), src, offs, lens,
                  dst, oofs)


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------

Kernel = Callable[..., None]
"""Engine entry point: ``(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok,
threads)``. Item i is read from ``buf[offs[i]:]`` and written to ``out[oofs[i]:]``; ``out`` is
``buf`` (and ``oofs`` is ``offs``) for in-place calls."""


def _reference_kernel(
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
    """One ``cryptography`` AESCCM call per item (``threads`` is ignored)."""
    ciphers: dict[int, _PycaAESCCM] = {}
    for i in range(nonces.shape[0]):
        k = int(kidx[i])
        c = ciphers.get(k)
        if c is None:
            c = ciphers[k] = _PycaAESCCM(keys[k].tobytes(), tag_length=tag_len)
        o, q, ln = int(offs[i]), int(oofs[i]), int(lens[i])
        nonce = nonces[i].tobytes()
        if decrypt:
            try:
                pt = c.decrypt(nonce, buf[o : o + ln + tag_len].tobytes(), None)
            except InvalidTag:
                out[q : q + ln] = 0
                ok[i] = False
            else:
                out[q : q + ln] = np.frombuffer(pt, dtype=np.uint8)
                ok[i] = True
        else:
            ct = c.encrypt(nonce, buf[o : o + ln].tobytes(), None)
            out[q : q + ln + tag_len] = np.frombuffer(ct, dtype=np.uint8)


_lock = threading.Lock()
_status: dict[str, str] = {}  # engine -> "" if usable, else the reason it is not (filled once)
_kernels: dict[str, Kernel] = {}
_fastest_name: str | None = None


def _aesni_safe() -> tuple[bool, str]:
    """Whether numba will compile for a CPU with AES-NI (checked *without* compiling anything)."""
    if os.environ.get("RELAYSEC_CCM_NO_AESNI", "").strip() not in ("", "0"):
        return False, "disabled by RELAYSEC_CCM_NO_AESNI"
    try:
        import llvmlite.binding as llvm
        from numba.core import config
    except ImportError as exc:  # pragma: no cover - numba is a dependency
        return False, f"numba unavailable ({exc})"
    cpu_name = (config.CPU_NAME or "").strip()
    cpu_features = (config.CPU_FEATURES or "").strip()
    feats = {f.strip() for f in cpu_features.split(",") if f.strip()}
    if "-aes" in feats or "-sse2" in feats:
        return False, "NUMBA_CPU_FEATURES disables aes"
    if cpu_name and cpu_name != "host":
        # numba compiles for a named CPU: only trust an explicit +aes in NUMBA_CPU_FEATURES.
        if "+aes" in feats:
            return True, ""
        return False, f"NUMBA_CPU_NAME={cpu_name} (not the host CPU) without +aes"
    if feats and "+aes" not in feats:
        return False, "NUMBA_CPU_FEATURES set without +aes"
    try:
        host = llvm.get_host_cpu_features()
    except Exception as exc:  # pragma: no cover - llvmlite without host detection
        return False, f"cannot read host CPU features ({exc})"
    if not host.get("aes", False) or not host.get("sse2", False):
        return False, "host CPU has no AES-NI"
    return True, ""


def _engine_status() -> dict[str, str]:
    """The status table, computed on first use (the per-call path reads it without a copy)."""
    if not _status:
        with _lock:
            if not _status:
                st = {"reference": ""}
                try:
                    import numba  # noqa: F401
                except ImportError as exc:  # pragma: no cover - numba is a dependency
                    st["numba-table"] = f"numba unavailable ({exc})"
                else:
                    st["numba-table"] = ""
                safe, why = _aesni_safe()
                st["numba-aesni"] = "" if safe else why
                _status.update(st)
    return _status


def engine_status() -> dict[str, str]:
    """Every engine name mapped to ``""`` if it can run here, else the reason it cannot."""
    return dict(_engine_status())


def available_engines() -> list[str]:
    """Engines that can run on this machine, fastest first (``"reference"`` is always there)."""
    st = _engine_status()
    return [e for e in ENGINES if st[e] == ""]


def _fastest() -> str:
    """First available engine (cached: availability does not change within a process)."""
    global _fastest_name
    if _fastest_name is None:
        _fastest_name = available_engines()[0]
    return _fastest_name


def default_engine() -> str:
    """The engine ``None``/``"auto"`` means: ``$RELAYSEC_CCM_ENGINE`` if set, else the fastest."""
    forced = os.environ.get("RELAYSEC_CCM_ENGINE", "").strip()
    if forced and forced != "auto":
        return _check_engine(forced)
    return available_engines()[0]


def _check_engine(name: str) -> str:
    if name not in ENGINES:
        raise MalformedError(f"unknown CCM engine {name!r}; known: {', '.join(ENGINES)}")
    why = _engine_status()[name]
    if why:
        raise MalformedError(f"CCM engine {name!r} is not available here: {why}")
    return name


def _resolve(engine: str | None) -> str:
    if engine is None or engine == "auto":
        if not os.environ.get("RELAYSEC_CCM_ENGINE"):  # per-call path: no list, no strip
            return _fastest()
        return default_engine()
    if not isinstance(engine, str):
        raise MalformedError(f"engine must be a string, got {type(engine).__name__}")
    return _check_engine(engine)


def _kernel(name: str) -> Kernel:
    """Entry point of engine ``name``; a numba engine's module is imported on its first use."""
    k = _kernels.get(name)
    if k is None:
        if name == "numba-aesni":
            from stack.crypto import _aesni

            k = _aesni.run
        elif name == "numba-table":
            from stack.crypto import _aes_table

            k = _aes_table.run
        else:
            k = _reference_kernel
        _kernels[name] = k
    return k


# --------------------------------------------------------------------------------------------
# Public batch API
# --------------------------------------------------------------------------------------------


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
    b = _validate(keys, key_index, nonces, buf, offsets, lengths, out, out_offsets, threads,
                  tag_len, decrypt)
    name = _resolve(engine)
    n = b.nonces.shape[0]
    ok = np.zeros(n, dtype=np.bool_)  # open sets every entry; seal ignores it
    if n:
        _kernel(name)(*b, int(tag_len), decrypt, ok, int(threads))
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
    of :func:`_validate` cost more than the crypto. Anything else must use the public calls.
    """
    _check_threads(threads)
    ok = np.zeros(nonces.shape[0], dtype=np.bool_)
    if nonces.shape[0]:
        _kernel(_resolve(engine))(keys, key_index, nonces, buf, offsets, lengths, buf, offsets,
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


# --------------------------------------------------------------------------------------------
# Convenience: lists of bytes
# --------------------------------------------------------------------------------------------


def _key_array(key: bytes) -> np.ndarray:
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise KeyLengthError(f"CCM key must be bytes, got {type(key).__name__}")
    if len(key) != CCM_KEY_LEN:
        raise KeyLengthError(f"CCM key must be 16 bytes (AES-128), got {len(key)}")
    return np.frombuffer(bytes(key), dtype=np.uint8).reshape(1, CCM_KEY_LEN)


def _nonce_array(nonces: Sequence[bytes], n: int) -> np.ndarray:
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


_LIST_CHUNK = 1 << 17
"""About this many bytes of input per engine call in the list API (see :func:`_many`); more
makes glibc serve the per-chunk buffers with fresh mmaps (page faults: 190 per 3 MB call at
512 KB, 1100 at 2 MB, against 18 at 128 KB) ..."""
_LIST_MIN_ITEMS = 32
"""... but at least this many items, so the fixed cost of a call spreads over enough items."""


def _split(buf: np.ndarray, offs: np.ndarray, ends: np.ndarray) -> list[bytes]:
    """``[bytes(buf[o:e]) ...]`` with the fewest copies.

    Small items: one ``tobytes`` of the whole buffer, then ``bytes`` slices of it (a slice of a
    ``bytes`` is the cheapest per-item object Python makes). Big items: copy each straight out of
    a memoryview instead of copying the whole buffer twice.
    """
    ol, el = offs.tolist(), ends.tolist()
    if ends.shape[0] and int(ends[-1]) > 1024 * ends.shape[0]:
        mv = memoryview(buf)
        return [mv[o:e].tobytes() for o, e in zip(ol, el, strict=True)]
    whole = buf.tobytes()
    return [whole[o:e] for o, e in zip(ol, el, strict=True)]


def _bytes_data_offset() -> int | None:
    """How far a ``bytes`` object's data lies from its ``id`` in this interpreter, or ``None``.

    CPython stores a ``bytes`` object's data inline after a fixed header, and ``id`` is the
    object's address; checked on probes here rather than assumed, so any other layout (or
    interpreter) just turns the address path of the list API off.
    """
    if sys.implementation.name != "cpython":
        return None
    off = bytes.__basicsize__ - 1  # the header; the 1 is the trailing NUL counted in it
    for probe in (bytes(range(48)), bytes(5000), b"x" * 70000):
        if np.frombuffer(probe, dtype=np.uint8).ctypes.data != id(probe) + off:
            return None
    return off


_BYTES_DATA = _bytes_data_offset()


def _bytes_header_words() -> tuple[int, int] | None:
    """Which 8-byte words of a ``bytes`` object's header hold its type and its size, or
    ``None``: read from probes (CPython's ``PyVarObject``: refcount, type, size), so another
    layout turns the compiled probe of the list API off. Only asked where the address path is
    on (:data:`_BYTES_DATA`)."""
    if _BYTES_DATA is None or _BYTES_DATA < 24:
        return None
    import ctypes

    for probe in (bytes(range(48)), bytes(5000), b"y" * 13):
        words = [ctypes.c_int64.from_address(id(probe) + 8 * w).value for w in range(3)]
        if words[1] != id(bytes) or words[2] != len(probe):
            return None
    return 1, 2


_BYTES_WORDS = _bytes_header_words()


def _list_words() -> tuple[int, int] | None:
    """Which 8-byte words of a ``list`` object's header hold its length and the pointer to its
    item array (CPython's ``PyListObject``: refcount, type, size, items), or ``None`` if probes
    disagree: :func:`stack.crypto._aesni.list_addresses` then stays unused."""
    if _BYTES_WORDS is None:
        return None
    import ctypes

    for probe in ([b"a", b"bc", bytes(300)], [bytes(5000)] * 40, [None]):
        words = [ctypes.c_int64.from_address(id(probe) + 8 * w).value for w in range(4)]
        if words[1] != id(list) or words[2] != len(probe):
            return None
        for i, x in enumerate(probe):
            if ctypes.c_int64.from_address(words[3] + 8 * i).value != id(x):
                return None
    return 2, 3


_LIST_WORDS = _list_words()


def _addresses(objs: list[object]) -> np.ndarray:
    """``[id(x) for x in objs]`` as int64, for a list no other code holds (the caller's
    snapshot): read from the list's item array when its layout was probed, else ``map(id)``."""
    from stack.crypto import _aesni

    n = len(objs)
    if _LIST_WORDS is not None:
        at = _aesni.list_addresses(id(objs), n, _LIST_WORDS[0], _LIST_WORDS[1])
        if at.shape[0] == n:
            return at
    return np.fromiter(map(id, objs), dtype=np.int64, count=n)

def _many_addr(
    k: np.ndarray,
    nc: np.ndarray,
    items: Sequence[bytes],
    lens: np.ndarray,
    decrypt: bool,
    ok: np.ndarray,
    in_ids: np.ndarray | None = None,
) -> list[bytes]:
    """The list API on AES-NI with no intermediate buffer: the kernel reads each input ``bytes``
    and writes each result ``bytes`` where they lie.

    The results are new ``bytes`` objects of the right size made here (``bytes(m)``: a fresh
    object for every m >= 2) and filled by the kernel through their addresses, as a C extension
    fills a new ``bytes`` before handing it out: no one else holds them until this returns and their
    hash is not computed yet. ``items`` is the caller's private snapshot (see :func:`_many`):
    the kernel releases the GIL, and another thread changing the user's list must not free an
    input, or swap in one of another length, while it is read. Objects of length 0 or 1 can be
    interpreter-wide singletons, so the caller never sends a 1-byte result here, and a 0-byte
    one is never written. The inputs (exact ``bytes``) are only read. Against the join path
    this saves joining the inputs, a scratch buffer and one copy per result. One engine call
    for the whole list: with no scratch buffer to keep in the cache, chunking only added
    per-call overhead here.
    """
    from stack.crypto import _aesni

    assert _BYTES_DATA is not None
    out_lens = lens if decrypt else lens + CCM_TAG_LEN
    outs = [bytes(m) for m in out_lens.tolist()]  # fresh (calloc'd) objects for m >= 2
    # the items' addresses (``in_ids``, from the probe, is the caller's to give away)
    in_at = _addresses(items) if in_ids is None else in_ids
    out_at = _addresses(outs)  # type: ignore[arg-type]
    base = min(int(in_at.min()), int(out_at.min()))
    top = max(int(in_at.max()), int(out_at.max())) + _BYTES_DATA + CCM_MAX_PAYLOAD + CCM_TAG_LEN
    off = _BYTES_DATA - base
    in_at += off
    out_at += off
    _aesni.run_addr(k, nc, base, top - base, in_at, lens, out_at, CCM_TAG_LEN, decrypt, ok)
    return outs


def _probe(
    items: list[bytes], nonces: list[bytes]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(lengths, nonce array, addresses of items)`` from one compiled pass over the object
    headers (:func:`stack.crypto._aesni.probe_bytes`) when every item is an exact ``bytes`` and
    every nonce an exact 13-byte ``bytes``; else ``None`` (the general path checks, with its
    error messages). Saves three Python passes over the items and two over the nonces. Both
    lists are the caller's private snapshots, so every object stays alive meanwhile."""
    from stack.crypto import _aesni

    assert _BYTES_WORDS is not None and _BYTES_DATA is not None
    n = len(items)
    ids = _addresses(items)
    nonce_ids = _addresses(nonces)
    nc = np.empty((n, CCM_NONCE_LEN), dtype=np.uint8)
    lens, code, _ = _aesni.probe_bytes(ids, nonce_ids, id(bytes), _BYTES_WORDS[0],
                                       _BYTES_WORDS[1], _BYTES_DATA, CCM_NONCE_LEN, nc)
    return None if code else (lens, nc, ids)


def _many(
    key: bytes,
    nonces: Sequence[bytes],
    items: Sequence[bytes],
    engine: str | None,
    threads: int,
    decrypt: bool,
) -> tuple[list[bytes], np.ndarray]:
    """The list API: seal (or open) ``items`` through the batch engine; ``(results, ok)``.

    Python ``bytes`` in and out dominate the cost, so the items go through in chunks of about
    :data:`_LIST_CHUNK` bytes: each chunk is joined into one buffer (one ``b"".join``), sealed
    or opened out of place into a scratch buffer reused by every chunk, and sliced into
    ``bytes``. Working in chunks keeps both buffers in the CPU cache and never allocates a fresh
    multi-MB buffer, whose page faults cost more than the AES (measured at 1500 B: joining and
    sealing 3 MB in one piece tripled the time per item). Inputs are checked once, up front, so
    the chunks go straight to the engine. Lists of large exact ``bytes`` on AES-NI skip all of
    this: see :func:`_many_addr`.
    """
    k = _key_array(key)
    # A private snapshot of the lists: lengths, types and (on the address path) the addresses
    # the GIL-free kernels read all come from these very objects, whatever other threads do.
    items = list(items)
    nonces = list(nonces)
    n = len(items)
    if len(nonces) != n:
        raise MalformedError(f"got {len(nonces)} nonces for {n} items")
    name = _resolve(engine)
    _check_threads(threads)
    ok = np.ones(n, dtype=np.bool_)
    if n == 0:
        return [], ok
    probed = None
    if name == "numba-aesni" and threads == 1 and _BYTES_WORDS is not None:
        probed = _probe(items, nonces)
    if probed is None:
        nc = _nonce_array(nonces, n)
        in_ids = None
        try:
            lens_all = np.fromiter(map(len, items), dtype=np.int64, count=n)
        except TypeError:
            raise MalformedError("items must be bytes-like objects") from None
        exact = False
    else:
        lens_all, nc, in_ids = probed
        exact = True
    tag = CCM_TAG_LEN
    if decrypt:
        if int(lens_all.min()) < tag:
            bad = int(np.argmin(lens_all))
            raise MalformedError(f"sealed item {bad} is shorter than its {tag}-byte tag")
        lens_all -= tag
    if int(lens_all.max()) > CCM_MAX_PAYLOAD:
        bad = int(np.argmax(lens_all))
        raise MalformedError(f"item {bad} is longer than {CCM_MAX_PAYLOAD} bytes (CCM, L = 2)")
    if (name == "numba-aesni" and threads == 1 and _BYTES_DATA is not None
            and not (decrypt and bool((lens_all == 1).any()))
            and (exact or set(map(type, items)) == {bytes})):
        return _many_addr(k, nc, items, lens_all, decrypt, ok, in_ids), ok
    kernel = _kernel(name)
    in_lens, out_lens = (lens_all + tag, lens_all) if decrypt else (lens_all, lens_all + tag)
    in_at = np.zeros(n + 1, dtype=np.int64)  # where item i starts in the joined input ...
    np.cumsum(in_lens, out=in_at[1:])
    out_at = np.zeros(n + 1, dtype=np.int64)  # ... and in the output (as if all in one piece)
    np.cumsum(out_lens, out=out_at[1:])
    per = max(_LIST_MIN_ITEMS, _LIST_CHUNK * n // max(1, int(in_at[n])))
    cuts = [*range(0, n, per), n]
    in_at_l, out_at_l = in_at[cuts].tolist(), out_at[cuts].tolist()
    kidx = np.zeros(min(n, per), dtype=np.int64)
    scratch = np.empty(0, dtype=np.uint8)
    out_list: list[bytes] = []
    for c in range(len(cuts) - 1):
        a, b = cuts[c], cuts[c + 1]
        try:
            joined = b"".join(items[a:b])
        except TypeError:
            raise MalformedError("items must be bytes-like objects") from None
        if len(joined) != in_at_l[c + 1] - in_at_l[c]:
            raise MalformedError("items must be bytes-like objects of bytes (itemsize 1)")
        size = out_at_l[c + 1] - out_at_l[c]
        if scratch.shape[0] < size:
            scratch = np.empty(max(size, 2 * _LIST_CHUNK), dtype=np.uint8)
        out = scratch[:size]
        offs = in_at[a:b] - in_at_l[c]
        oofs = out_at[a:b] - out_at_l[c]
        kernel(k, kidx[: b - a], nc[a:b], np.frombuffer(joined, dtype=np.uint8), offs,
               lens_all[a:b], out, oofs, tag, decrypt, ok[a:b], threads)
        out_list += _split(out, oofs, out_at[a + 1 : b + 1] - out_at_l[c])
    return out_list, ok


def seal_many(
    key: bytes,
    nonces: Sequence[bytes],
    payloads: Sequence[bytes],
    *,
    engine: str | None = None,
    threads: int = 1,
) -> list[bytes]:
    """Seal each payload under ``key`` with its 13-byte nonce: ``[ciphertext ‖ 8-byte tag]``.

    A convenience over :func:`seal_batch` for ``bytes`` in and out (no AAD); raises
    :class:`KeyLengthError` for a bad key or nonce size, :class:`MalformedError` for anything
    else that is wrong with the input.
    """
    return _many(key, nonces, payloads, engine, threads, False)[0]


def open_many(
    key: bytes,
    nonces: Sequence[bytes],
    sealed: Sequence[bytes],
    *,
    engine: str | None = None,
    threads: int = 1,
) -> list[bytes | None]:
    """Open each ``ciphertext ‖ 8-byte tag``; the plaintext, or ``None`` where the tag fails."""
    plain, ok = _many(key, nonces, sealed, engine, threads, True)
    res: list[bytes | None] = list(plain)
    if not ok.all():
        for i in np.flatnonzero(~ok).tolist():
            res[i] = None
    return res


# --------------------------------------------------------------------------------------------
# pyca-shaped single-message class
# --------------------------------------------------------------------------------------------


class AESCCM:
    """AES-CCM in the shape of pyca's ``AESCCM``, with batch methods on the selected engine.

    ``encrypt(nonce, data, associated_data)`` / ``decrypt(...)`` handle one message with any CCM
    parameters (16/24/32-byte key, 7–13-byte nonce, tag 4–16, AAD) on the reference engine;
    a failed tag raises :class:`IntegrityError`. ``encrypt_many`` / ``decrypt_many`` take lists
    (AES-128, 13-byte nonces, no AAD) and go through the batch engine.
    """

    __slots__ = ("_key", "_pyca", "_tag_length", "engine", "threads")

    def __init__(
        self,
        key: bytes,
        tag_length: int = CCM_TAG_LEN,
        *,
        engine: str | None = None,
        threads: int = 1,
    ) -> None:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise KeyLengthError(f"CCM key must be bytes, got {type(key).__name__}")
        if len(key) not in (16, 24, 32):
            raise KeyLengthError(f"CCM key must be 16, 24 or 32 bytes, got {len(key)}")
        if isinstance(tag_length, bool) or tag_length not in _TAG_LENS:
            raise KeyLengthError(f"tag length must be one of {_TAG_LENS}, got {tag_length!r}")
        self._key = bytes(key)
        self._tag_length = int(tag_length)
        self._pyca = _PycaAESCCM(self._key, tag_length=self._tag_length)
        self.engine = _resolve(engine)
        self.threads = threads

    def __repr__(self) -> str:
        return f"AESCCM(<{len(self._key) * 8}-bit key>, tag_length={self._tag_length})"

    @staticmethod
    def _nonce(nonce: bytes) -> bytes:
        if not isinstance(nonce, (bytes, bytearray, memoryview)):
            raise KeyLengthError(f"nonce must be bytes, got {type(nonce).__name__}")
        if not 7 <= len(nonce) <= 13:
            raise KeyLengthError(f"CCM nonce must be 7..13 bytes, got {len(nonce)}")
        return bytes(nonce)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None = None) -> bytes:
        """Return ciphertext ‖ tag of ``data`` (``associated_data`` authenticated, not sent)."""
        nonce = self._nonce(nonce)
        if len(data) >= 1 << (8 * (15 - len(nonce))):
            raise MalformedError(
                f"payload of {len(data)} bytes too long for a {len(nonce)}-byte nonce"
            )
        return self._pyca.encrypt(nonce, bytes(data), bytes(associated_data or b"") or None)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None = None) -> bytes:
        """Return the plaintext of ciphertext ‖ tag; raise :class:`IntegrityError` on a bad tag."""
        nonce = self._nonce(nonce)
        if len(data) < self._tag_length:
            raise MalformedError(
                f"CCM input shorter than its {self._tag_length}-byte tag: {len(data)} bytes"
            )
        try:
            return self._pyca.decrypt(nonce, bytes(data), bytes(associated_data or b"") or None)
        except InvalidTag:
            raise IntegrityError("AES-CCM tag check failed", reason="bad_icv") from None

    def _check_batchable(self) -> None:
        if len(self._key) != CCM_KEY_LEN or self._tag_length != CCM_TAG_LEN:
            raise MalformedError("encrypt_many/decrypt_many need a 16-byte key and 8-byte tags")

    def encrypt_many(self, nonces: Sequence[bytes], payloads: Sequence[bytes]) -> list[bytes]:
        """:func:`seal_many` with this key and engine."""
        self._check_batchable()
        return seal_many(self._key, nonces, payloads, engine=self.engine, threads=self.threads)

    def decrypt_many(self, nonces: Sequence[bytes], sealed: Sequence[bytes]) -> list[bytes | None]:
        """:func:`open_many` with this key and engine (``None`` where a tag fails)."""
        self._check_batchable()
        return open_many(self._key, nonces, sealed, engine=self.engine, threads=self.threads)


def warm_up(engine: str | None = None, *, threads: int = 1) -> float:
    """Compile (or load from numba's cache) the kernels of ``engine``; return the seconds it took.

    Call it at start-up so the first burst does not pay the JIT. Each direction is run once on a
    tiny batch; ``threads`` > 1 also compiles the multi-threaded driver.
    """
    import time

    name = _resolve(engine)
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
