"""Per-item range checks of a CCM batch in one compiled pass (used by :mod:`stack.crypto.ccm`).

A MAC burst holds a handful of MPDUs, and a dozen small numpy reductions (min, max, compare, any)
cost more than sealing them (~1–3 µs each against ~1 µs of AES per 1500-byte MPDU). One numba
call checks every item in a single loop instead. Plain scalar code: it compiles for any CPU.
"""

from __future__ import annotations

from numba import njit

OK = 0
BAD_KEY_INDEX = 1
BAD_LENGTH = 2
NEGATIVE_OFFSET = 3
PAST_END_IN = 4
PAST_END_OUT = 5
NOT_IN_ORDER = 6
"""Written regions not in buffer order, or overlapping: the caller sorts to tell which."""


@njit(cache=True, nogil=True)
def check_items(kidx, offs, lens, oofs, nkeys, max_len, in_span_extra, out_span_extra, in_size,
                out_size, in_place):
    """Return ``(code, i)``: the first problem found and its item, or ``(OK, -1)``.

    Item i reads ``buf[offs[i] : offs[i] + lens[i] + in_span_extra]`` and writes
    ``out[oofs[i] : oofs[i] + lens[i] + out_span_extra]``; with ``in_place`` they are one region
    of ``buf``. Written regions must appear in buffer order without overlap, else
    ``NOT_IN_ORDER`` (checked last, so range errors win).
    """
    n = kidx.shape[0]
    order_bad = -1
    prev_end = 0
    for i in range(n):
        k = kidx[i]
        if k < 0 or k >= nkeys:
            return BAD_KEY_INDEX, i
        ln = lens[i]
        if ln < 0 or ln > max_len:
            return BAD_LENGTH, i
        o = offs[i]
        q = oofs[i]
        if o < 0 or q < 0:
            return NEGATIVE_OFFSET, i
        if o + ln + in_span_extra > in_size:
            return PAST_END_IN, i
        if q + ln + out_span_extra > out_size:
            return PAST_END_IN if in_place else PAST_END_OUT, i
        if q < prev_end and order_bad < 0:
            order_bad = i
        prev_end = q + ln + out_span_extra
    if order_bad >= 0:
        return NOT_IN_ORDER, order_bad
    return OK, -1
