"""The list API: seal or open a ``list`` of ``bytes`` through the batch engines.

A convenience for callers whose PDUs are Python ``bytes``; with one key, 13-byte nonces, 8-byte
tags and no AAD. Python objects in and out cost as much as the AES here, so two paths:

* the **address path** (a numba engine, one thread, exact ``bytes`` items, CPython's layout
  probed by :mod:`._layout`): the kernel reads each input where it lies and writes each result
  into a fresh ``bytes`` object of the right size — no join, no scratch buffer, no slicing;
* the **chunked path** (anything else): chunks of about :data:`LIST_CHUNK` bytes are joined,
  sealed or opened out of place into a reused scratch buffer and split into ``bytes``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stack.crypto.ccm import _layout
from stack.crypto.ccm.engines import LAYOUT as _ADDRESS_LAYOUT
from stack.crypto.ccm.engines import kernel, resolve
from stack.crypto.ccm.params import CCM_MAX_PAYLOAD, CCM_NONCE_LEN, CCM_TAG_LEN
from stack.crypto.ccm.validate import check_threads, key_array, nonce_array
from stack.errors import MalformedError

__all__ = ["open_many", "seal_many"]

LIST_CHUNK = 1 << 17
"""About this many bytes of input per engine call on the chunked path; more makes glibc serve
the per-chunk buffers with fresh mmaps (page faults: 190 per 3 MB call at 512 KB, 1100 at 2 MB,
against 18 at 128 KB) ..."""
LIST_MIN_ITEMS = 32
"""... but at least this many items, so the fixed cost of a call spreads over enough items."""



ADDRESS_ENGINES = frozenset(_ADDRESS_LAYOUT)
"""Engines with an entry point on raw addresses (``run_addr``), i.e. the address path."""


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


def _many_addr(
    name: str,
    k: np.ndarray,
    nc: np.ndarray,
    items: Sequence[bytes],
    lens: np.ndarray,
    decrypt: bool,
    ok: np.ndarray,
    in_ids: np.ndarray | None = None,
) -> list[bytes]:
    """The address path: the kernel reads each input ``bytes`` and writes each result ``bytes``
    where they lie.

    The results are new ``bytes`` objects of the right size made here, uninitialized
    (:func:`._layout.new_bytes`: ``PyBytes_FromStringAndSize(NULL, m)``, a fresh object for every
    m >= 1) and filled completely by the kernel through their addresses, as a C extension fills
    a new ``bytes`` before handing it out: no one else holds them until this returns and their
    hash is not computed yet (a failed open zeroes its payload, so nothing uninitialized
    escapes). ``items`` is the caller's private snapshot (see
    :func:`_many`): the kernel releases the GIL, and another thread changing the user's list
    must not free an input, or swap in one of another length, while it is read. Objects of
    length 0 or 1 can be interpreter-wide singletons, so the caller never sends a 1-byte result
    here, and a 0-byte one is never written. The inputs (exact ``bytes``) are only read.
    """
    from stack.crypto.ccm import _aesni

    data = _layout.BYTES_DATA
    assert data is not None
    out_lens = lens if decrypt else lens + CCM_TAG_LEN
    outs, out_at = _layout.new_bytes(out_lens)  # fresh objects (m >= 1), not initialized
    in_at = _layout.addresses(items) if in_ids is None else in_ids  # in_ids: ours to change
    base = min(int(in_at.min()), int(out_at.min()))
    top = max(int(in_at.max()), int(out_at.max())) + data + CCM_MAX_PAYLOAD + CCM_TAG_LEN
    off = data - base
    in_at += off
    out_at += off
    _aesni.run_addr(k, nc, base, top - base, in_at, lens, out_at, CCM_TAG_LEN, decrypt, ok,
                    _ADDRESS_LAYOUT[name])
    return outs


def _probe(
    items: list[bytes], nonces: list[bytes]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(lengths, nonce array, addresses of items)`` from one compiled pass over the object
    headers (:func:`stack.crypto.ccm._pyobj.probe_bytes`) when every item is an exact ``bytes``
    and every nonce an exact 13-byte ``bytes``; else ``None`` (the general path checks, with its
    error messages). Both lists are the caller's private snapshots, so every object stays alive
    meanwhile."""
    from stack.crypto.ccm import _pyobj

    words, data = _layout.BYTES_WORDS, _layout.BYTES_DATA
    assert words is not None and data is not None
    n = len(items)
    ids = _layout.addresses(items)
    nonce_ids = _layout.addresses(nonces)
    nc = np.empty((n, CCM_NONCE_LEN), dtype=np.uint8)
    lens, code, _ = _pyobj.probe_bytes(ids, nonce_ids, id(bytes), words[0], words[1], data,
                                       CCM_NONCE_LEN, nc)
    return None if code else (lens, nc, ids)


def _many(
    key: bytes,
    nonces: Sequence[bytes],
    items: Sequence[bytes],
    engine: str | None,
    threads: int,
    decrypt: bool,
) -> tuple[list[bytes], np.ndarray]:
    """Seal (or open) ``items`` through the batch engine; ``(results, ok)``.

    Inputs are checked once, up front. On the chunked path, working in chunks keeps the joined
    input and the scratch output in the CPU cache and never allocates a fresh multi-MB buffer,
    whose page faults cost more than the AES (measured at 1500 B: joining and sealing 3 MB in
    one piece tripled the time per item).
    """
    k = key_array(key)
    # A private snapshot of the lists: lengths, types and (on the address path) the addresses
    # the GIL-free kernels read all come from these very objects, whatever other threads do.
    items = list(items)
    nonces = list(nonces)
    n = len(items)
    if len(nonces) != n:
        raise MalformedError(f"got {len(nonces)} nonces for {n} items")
    name = resolve(engine)
    check_threads(threads)
    ok = np.ones(n, dtype=np.bool_)
    if n == 0:
        return [], ok
    addr = name in ADDRESS_ENGINES and threads == 1 and _layout.BYTES_DATA is not None
    probed = None
    if addr and _layout.BYTES_WORDS is not None:
        probed = _probe(items, nonces)
    if probed is None:
        nc = nonce_array(nonces, n)
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
    if (addr and not (decrypt and bool((lens_all == 1).any()))
            and (exact or set(map(type, items)) == {bytes})):
        return _many_addr(name, k, nc, items, lens_all, decrypt, ok, in_ids), ok
    run = kernel(name)
    in_lens, out_lens = (lens_all + tag, lens_all) if decrypt else (lens_all, lens_all + tag)
    in_at = np.zeros(n + 1, dtype=np.int64)  # where item i starts in the joined input ...
    np.cumsum(in_lens, out=in_at[1:])
    out_at = np.zeros(n + 1, dtype=np.int64)  # ... and in the output (as if all in one piece)
    np.cumsum(out_lens, out=out_at[1:])
    per = max(LIST_MIN_ITEMS, LIST_CHUNK * n // max(1, int(in_at[n])))
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
            scratch = np.empty(max(size, 2 * LIST_CHUNK), dtype=np.uint8)
        out = scratch[:size]
        offs = in_at[a:b] - in_at_l[c]
        oofs = out_at[a:b] - out_at_l[c]
        run(k, kidx[: b - a], nc[a:b], np.frombuffer(joined, dtype=np.uint8), offs,
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

    A convenience over :func:`~stack.crypto.ccm.seal_batch` for ``bytes`` in and out (no AAD);
    raises :class:`KeyLengthError` for a bad key or nonce size, :class:`MalformedError` for
    anything else that is wrong with the input.
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
    res: list[bytes | None] = plain  # type: ignore[assignment]  # a new list, ours to change
    if not ok.all():
        for i in np.flatnonzero(~ok).tolist():
            res[i] = None
    return res
