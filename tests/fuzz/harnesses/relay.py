"""Relay encapsulation (digest §6.4): :func:`stack.mac.decapsulate_relay`.

Input: a relay-MPDU payload. Invariants: rejections are :class:`stack.errors.SecurityError`; what
decapsulates is a non-empty list of ``(STID, inner MPDU)`` items with 12-bit STIDs and well-framed
inner MPDUs (AGMH Length = size), which ``encapsulate_relay`` turns back into exactly the input
(when it fits one protected MPDU) and ``pack_relay`` regroups without loss.
"""

from __future__ import annotations

from stack.errors import SecurityError
from stack.mac import decapsulate_relay, encapsulate_relay, pack_relay
from stack.mpdu import MAX_PROTECTED_PAYLOAD
from tests.fuzz._core import check

ALLOWED = (SecurityError,)


def one_input(data: bytes) -> None:
    """Decapsulate ``data`` and check the items."""
    items = decapsulate_relay(data)
    check(items, "empty_item_list", "")
    for stid, inner in items:
        check(0 <= stid <= 0xFFF, "bad_stid", str(stid))
        check(len(inner) >= 2 and int.from_bytes(inner[:2], "big") & 0x7FF == len(inner),
              "inner_not_framed", f"{len(inner)} bytes")
    check(sum(2 + len(i) for _s, i in items) == len(data), "bytes_lost", "")
    if len(data) <= MAX_PROTECTED_PAYLOAD:
        check(encapsulate_relay(items) == data, "not_canonical", "")
        packed = pack_relay(items)
        again = [it for p in packed for it in decapsulate_relay(p)]
        check(again == items, "pack_relay_differs", "")
