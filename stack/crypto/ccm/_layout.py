"""Where CPython keeps a ``bytes`` object's data and a ``list``'s items, probed at import.

The list API (:mod:`.lists`) reads the callers' ``bytes`` and fills fresh result ``bytes``
where they lie, instead of joining inputs and slicing outputs. That needs three facts about the
interpreter's object layout, each *probed* here on live objects rather than assumed; where any
probe disagrees the fact is ``None`` and the list API takes its portable path.
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np


def _bytes_data_offset() -> int | None:
    """How far a ``bytes`` object's data lies from its ``id`` in this interpreter, or ``None``.

    CPython stores a ``bytes`` object's data inline after a fixed header, and ``id`` is the
    object's address.
    """
    if sys.implementation.name != "cpython":
        return None
    off = bytes.__basicsize__ - 1  # the header; the 1 is the trailing NUL counted in it
    for probe in (bytes(range(48)), bytes(5000), b"x" * 70000):
        if np.frombuffer(probe, dtype=np.uint8).ctypes.data != id(probe) + off:
            return None
    return off


BYTES_DATA = _bytes_data_offset()
"""Offset of a ``bytes`` object's data from its address, or ``None`` (no address path)."""


def _bytes_header_words() -> tuple[int, int] | None:
    """Which 8-byte words of a ``bytes`` object's header hold its type and its size (CPython's
    ``PyVarObject``: refcount, type, size), or ``None``."""
    if BYTES_DATA is None or BYTES_DATA < 24:
        return None
    for probe in (bytes(range(48)), bytes(5000), b"y" * 13):
        words = [ctypes.c_int64.from_address(id(probe) + 8 * w).value for w in range(3)]
        if words[1] != id(bytes) or words[2] != len(probe):
            return None
    return 1, 2


BYTES_WORDS = _bytes_header_words()
"""(type word, size word) of a ``bytes`` header, or ``None`` (no compiled probe of items)."""


def _list_words() -> tuple[int, int] | None:
    """Which 8-byte words of a ``list`` object's header hold its length and the pointer to its
    item array (CPython's ``PyListObject``: refcount, type, size, items), or ``None``."""
    if BYTES_WORDS is None:
        return None
    for probe in ([b"a", b"bc", bytes(300)], [bytes(5000)] * 40, [None]):
        words = [ctypes.c_int64.from_address(id(probe) + 8 * w).value for w in range(4)]
        if words[1] != id(list) or words[2] != len(probe):
            return None
        for i, x in enumerate(probe):
            if ctypes.c_int64.from_address(words[3] + 8 * i).value != id(x):
                return None
    return 2, 3


LIST_WORDS = _list_words()
"""(size word, items word) of a ``list`` header, or ``None`` (addresses via ``map(id)``)."""


def addresses(objs: list[object]) -> np.ndarray:
    """``[id(x) for x in objs]`` as int64, for a list no other code holds (the caller's
    snapshot): read from the list's item array when its layout was probed, else ``map(id)``."""
    n = len(objs)
    if LIST_WORDS is not None:
        from stack.crypto.ccm import _pyobj

        at = _pyobj.list_addresses(id(objs), n, LIST_WORDS[0], LIST_WORDS[1])
        if at.shape[0] == n:
            return at
    return np.fromiter(map(id, objs), dtype=np.int64, count=n)


def new_bytes(sizes: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """``len(sizes)`` new ``bytes`` objects of those sizes, their contents **not initialized**,
    and their addresses: for results a kernel fills completely before anyone else sees them.
    Only where :data:`BYTES_DATA` is known (CPython). Raises :class:`MemoryError`."""
    from stack.crypto.ccm import _pyobj

    at = np.empty(sizes.shape[0], np.int64)
    lst = _pyobj.new_bytes_list(sizes, at)
    if lst == 0:
        raise MemoryError(f"cannot allocate {sizes.shape[0]} results")
    objs = ctypes.cast(lst, ctypes.py_object).value  # a second reference ...
    ctypes.pythonapi.Py_DecRef(ctypes.c_void_p(lst))  # ... and the compiled one handed back
    return objs, at
