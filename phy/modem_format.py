"""The burst format both sides of :class:`phy.BurstModem` agree on: the MCS ladder, the header's
version nibble and size, the convolutional code of each rate, a payload's information bits and
the PRBS bits that pad the data symbols and scramble the robust blocks.

Apart from :mod:`phy.modem` (the transmit side) because :mod:`phy.modem_rx` and
:mod:`phy.modem_decode` (the receive side, which phy.modem's classes inherit) need them too
and cannot import phy.modem; phy.modem re-exports the public names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from phy import qam
from phy.errors import UnknownMcsError
from phy.fec import FEC, ConvCode
from phy.kernels import prbs

HEADER_VERSION = 0xA
HEADER_BYTES = 9


@dataclass(frozen=True)
class Mcs:
    """One modulation and coding scheme of the 8-entry ladder (digest §4.8)."""

    index: int
    name: str
    modulation: str
    bits_per_symbol: int
    code_rate: str


_MCS_LIST = [
    Mcs(i, f"{mod}-{rate}", mod, qam.BITS[mod], rate)
    for i, (mod, rate) in enumerate([
        ("QPSK", "1/2"), ("QPSK", "3/4"), ("16QAM", "1/2"), ("16QAM", "3/4"),
        ("64QAM", "1/2"), ("64QAM", "2/3"), ("64QAM", "3/4"), ("64QAM", "5/6"),
    ])
]
_MCS = {m.name: m for m in _MCS_LIST}


def mcs_table() -> list[str]:
    """MCS names in index order: ``"QPSK-1/2"`` ... ``"64QAM-5/6"`` (16e CTC ladder, digest §4.8,
    here with the K=7 convolutional code)."""
    return [m.name for m in _MCS_LIST]


def get_mcs(name: str | int) -> Mcs:
    """MCS by name or index."""
    if isinstance(name, int) and not isinstance(name, bool) and 0 <= name < len(_MCS_LIST):
        return _MCS_LIST[name]
    if isinstance(name, str) and name in _MCS:
        return _MCS[name]
    raise UnknownMcsError(f"unknown MCS {name!r}; known: {', '.join(_MCS)}")


@lru_cache(maxsize=16)
def _fec(rate: str) -> FEC:
    return ConvCode(rate)


def _n_info(n_bytes: int) -> int:
    """Information bits of a payload of ``n_bytes``: the payload and its CRC-32."""
    return 8 * (n_bytes + 4)


@lru_cache(maxsize=4)
def _pad_source() -> np.ndarray:
    out = prbs(np.array([1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1], np.uint8), 14, 1 << 16)
    out.setflags(write=False)
    return out


def _pad_bits(n: int) -> np.ndarray:
    """The first ``n`` padding bits (the PRBS, repeated past its length): a read-only view
    while ``n`` fits in one period (every zone burst pads several times: np.resize copied)."""
    src = _pad_source()
    return src[:n] if n <= src.size else np.resize(src, n)
