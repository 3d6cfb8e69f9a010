"""Compiled reads of Python object headers for the list API (:mod:`.lists`).

Plain scalar code (no AES), so it compiles for any CPU. The callers pass header layouts probed by
:mod:`._layout` and addresses of objects they keep alive; nothing here checks them.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


def _address_as(elem: types.Type, llvm_elem: ir.Type) -> object:
    """An intrinsic turning an integer address into an ``elem*`` (for :func:`numba.carray`)."""

    def cast(typingctx, addr):
        sig = types.CPointer(elem)(types.int64)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], llvm_elem.as_pointer())

        return sig, codegen

    return intrinsic(cast)


u8ptr = _address_as(types.uint8, ir.IntType(8))
i64ptr = _address_as(types.int64, ir.IntType(64))


@njit(cache=True, nogil=True)
def list_addresses(list_addr, n, size_word, items_word):  # pragma: no cover - numba
    """Addresses of the ``n`` objects of the Python list at ``list_addr`` (what ``id`` gives for
    each), read from its item array: word ``items_word`` of the list's header points to it and
    word ``size_word`` holds its length (the caller probed the layout). One compiled pass
    instead of ``map(id, ...)``, which allocates a Python int per item. Returns an empty array
    if the list's length is not ``n``."""
    head = numba.carray(i64ptr(list_addr), items_word + 1)
    if head[size_word] != n:
        return np.empty(0, np.int64)
    src = numba.carray(i64ptr(head[items_word]), n)
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = src[i]
    return out


@njit(cache=True, nogil=True)
def probe_bytes(ids, nonce_ids, bytes_type, type_word, size_word, data_off, nonce_len, nonces):
    """Lengths of the ``bytes`` objects at addresses ``ids``, and the nonces at ``nonce_ids``
    copied into ``nonces`` -- one compiled pass instead of a Python pass each for the types,
    the lengths and the nonces.

    Word ``type_word`` / ``size_word`` of an object header (8-byte words from its address) is
    its type / size; the caller probed that layout. Returns ``(lens, code, i)``: code 0, or 1 when
    item ``i`` is not an exact ``bytes``, 2 when nonce ``i`` is not an exact ``bytes`` of
    ``nonce_len`` bytes (the caller then takes its general path, which says what is wrong).
    A size is read only once the type is known to be ``bytes``.
    """
    n = ids.shape[0]
    lens = np.empty(n, np.int64)
    for i in range(n):
        h = numba.carray(i64ptr(ids[i]), size_word + 1)
        if h[type_word] != bytes_type:
            return lens, 1, i
        lens[i] = h[size_word]
    for i in range(n):
        h = numba.carray(i64ptr(nonce_ids[i]), size_word + 1)
        if h[type_word] != bytes_type or h[size_word] != nonce_len:
            return lens, 2, i
        d = numba.carray(u8ptr(nonce_ids[i] + data_off), nonce_len)
        for j in range(nonce_len):
            nonces[i, j] = d[j]
    return lens, 0, -1


# CPython C API, called from compiled code by symbol name (the interpreter exports them). Only
# from functions that hold the GIL (no ``nogil``). Pointers travel as intp.
_bytes_new = types.ExternalFunction("PyBytes_FromStringAndSize", types.intp(types.intp, types.intp))
_list_new = types.ExternalFunction("PyList_New", types.intp(types.intp))
_list_set = types.ExternalFunction("PyList_SetItem", types.intc(types.intp, types.intp, types.intp))
_decref = types.ExternalFunction("Py_DecRef", types.void(types.intp))
_err_clear = types.ExternalFunction("PyErr_Clear", types.void())


@njit(cache=True)
def new_bytes_list(sizes, obj_at):  # pragma: no cover - numba
    """A new list of ``len(sizes)`` new, *uninitialized* ``bytes`` objects of those sizes; the
    address of each goes to ``obj_at``.

    Returns the list's address, holding the one reference to it (the caller takes it over), or
    0 when memory ran out (nothing is left allocated and no Python error is left set). One
    compiled pass instead of ``[bytes(m) for m in sizes]``, which costs a Python call and a
    zeroing ``calloc`` per item. Holds the GIL: it calls the C API. Sizes of 0 give the shared
    empty ``bytes``: the caller never writes a 0-byte result.
    """
    n = sizes.shape[0]
    lst = _list_new(n)
    if lst == 0:
        _err_clear()
        return 0
    for i in range(n):
        b = _bytes_new(0, sizes[i])
        if b == 0:
            _err_clear()
            _decref(lst)  # frees the items made so far
            return 0
        _list_set(lst, i, b)  # steals the reference to b
        obj_at[i] = b
    return lst
