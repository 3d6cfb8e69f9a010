"""Data randomizer (digest §4.4): the 16e PRBS ``1 + x^14 + x^15`` XORed onto the info bits before
FEC, seeded per burst from the 16e initial vector mixed with the source and destination station ids
(so that two stations' bursts do not look alike; the 16m STID-seeded 23-bit PRBS text was not
available)."""

from __future__ import annotations

import numpy as np

from phy.kernels import prbs

#: 16e initial vector, LSB first: 0 1 1 0 1 1 1 0 0 0 1 0 1 0 1
INIT_16E = 0b101010001110110


def seed_for(src: int, dst: int) -> np.ndarray:
    """15-bit non-zero seed (uint8 bits, register order) mixing the station ids."""
    v = (INIT_16E ^ ((src * 0x2F1 + dst * 0x1D) & 0x7FFF)) & 0x7FFF
    if v == 0:
        v = INIT_16E
    return np.array([(v >> i) & 1 for i in range(15)], dtype=np.uint8)


def randomize(bits: np.ndarray, src: int, dst: int) -> np.ndarray:
    """XOR the PRBS onto ``bits`` (uint8 0/1); applying it twice is the identity."""
    seq = prbs(seed_for(src, dst), 14, bits.size)
    return bits ^ seq
