"""CRCs (digest §4.5).

* header: CRC-16-CCITT ``x^16 + x^12 + x^5 + 1``, init 0, MSB first, no final XOR (the 16m burst /
  A-MAP CRC polynomial); ``binascii.crc_hqx`` computes exactly this.
* payload: CRC-32 (IEEE 802.3, the 16e MAC PDU CRC) — a deliberate deviation from the 16m 16-bit
  burst CRC: bursts here carry up to several KB, where 16 bits would let ~1.5e-5 of the corrupted
  bursts through. Appended big-endian.
"""

from __future__ import annotations

import binascii
import zlib


def crc16(data: bytes) -> int:
    """CRC-16-CCITT, init 0 (XMODEM variant)."""
    return binascii.crc_hqx(data, 0)


def crc32(data: bytes) -> int:
    """IEEE 802.3 CRC-32 (as ``zlib.crc32``)."""
    return zlib.crc32(data) & 0xFFFFFFFF
