"""The zone-burst format both sides of :class:`phy.zone.ZoneModem` use: the zone header's and the
A-MAP's constants, :class:`Grant` (sent by the transmitter, returned by the receiver) and the
allocation interleaver (:func:`_ru_gather`: the transmitter's gather, the receiver's scatter map).

The format itself is described in :mod:`phy.zone`. Apart from it so that the receive side
(:mod:`phy.zone_rx`) imports these without importing :mod:`phy.zone`, which imports the receive
side; :mod:`phy.zone` re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from phy.interleaver import DEPTH, invert, permutation

ZONE_VERSION = 0x5
ZONE_HEADER_BYTES = 10
ENTRY_BYTES = 9
MAP_CRC_BYTES = 2
MAX_MAP_SYMBOLS = 15
MAX_ENTRIES = 255
BROADCAST = 0xFFFF
QUEUE_UNIT = 16
"""The queue report counts bytes in units of 16 (rounded up), saturating at 0xFFFF units."""
_KIND_DL = 0
_KIND_UL = 1


@dataclass(frozen=True)
class Grant:
    """One UL grant to announce (or, on receive, announced to us): ``start`` and ``length`` are
    small integers (0..65535) the runtime interprets (symbol offsets in the UL zone that follows);
    a grant occupies no RUs. ``backoff`` (0..65535, 0 = none) is the contention backoff window a
    grant to the broadcast address announces: the owner's estimate of how many contenders share
    its contention slots (as 16m stations announce their ranging backoff windows)."""

    dst: int
    start: int
    length: int
    mcs: str
    backoff: int = 0


def _ru_block(n_bits: int, bps: int) -> int:
    """Bits of an allocation of ``n_bits`` coded bits (17 * RUs * bps) that the interleaver
    permutes: the largest multiple of ``16 s`` (``s = bps / 2``), for which the 16e formula of
    :mod:`phy.interleaver` at its depth 16 is a permutation; the last ``< 16 s`` bits (under 8
    QAM symbols, the code tail and padding) stay in place."""
    return n_bits - n_bits % (DEPTH * (bps // 2))


def _ru_permutation(n_bits: int, bps: int) -> np.ndarray:
    """``j`` with ``out[j[k]] = in[k]`` for an allocation of ``n_bits`` coded bits."""
    head = _ru_block(n_bits, bps)
    return np.concatenate([permutation(head, bps), np.arange(head, n_bits)])


@lru_cache(maxsize=256)
def _ru_gather(n_bits: int, bps: int) -> np.ndarray:
    """``inv`` with ``out = in[inv]`` the interleaving of an allocation of ``n_bits`` coded
    bits (the inverse of :func:`_ru_permutation`: a gather costs a fifth of its scatter).
    int64, read-only."""
    return invert(_ru_permutation(n_bits, bps))
