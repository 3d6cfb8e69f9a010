"""Data randomizer (digest §4.4): the 16e PRBS ``1 + x^14 + x^15`` XORed onto the info bits before
FEC, seeded per burst from the 16e initial vector mixed with the source and destination station ids
(so that two stations' bursts do not look alike; the 16m STID-seeded 23-bit PRBS text was not
available)."""

from __future__ import annotations

from functools import lru_cache

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
    return bits ^ xor_sequence(src, dst, bits.size)


def xor_sequence(src: int, dst: int, n: int) -> np.ndarray:
    """The ``n`` PRBS bits :func:`randomize` XORs onto a burst from ``src`` to ``dst`` (uint8;
    a read-only slice of the m-sequence table when it holds them)."""
    if n <= _SPAN:
        t = _offset(int(src), int(dst))
        if t >= 0:
            return _msequence()[0][t + 15: t + 15 + n]
    return sequence(seed_for(src, dst), n)


@lru_cache(maxsize=1024)
def _offset(src: int, dst: int) -> int:
    """Where the sequence of ``seed_for(src, dst)`` starts in the m-sequence table (-1: the
    all-zero register), once per station pair rather than per burst."""
    seed = seed_for(src, dst)
    return int(_msequence()[1][int(np.dot(seed.astype(np.int64),
                                          1 << np.arange(15, dtype=np.int64)))])


_PERIOD = (1 << 15) - 1
_SPAN = 8 * (8192 + 4)
"""Bits every seed's sequence is served for from the table (a default-size burst's info bits);
longer ones are generated."""


@lru_cache(maxsize=1)
def _msequence() -> tuple[np.ndarray, np.ndarray]:
    """The m-sequence of ``1 + x^14 + x^15`` (period 2^15 - 1) long enough to start anywhere
    in one period and run ``_SPAN`` bits, and the index of every register state in it
    (``state[v] = t``: the 15 bits from ``t`` on, LSB first, are the seed value ``v``)."""
    first = np.zeros(15, np.uint8)
    first[0] = 1
    seq = np.concatenate([first, prbs(first, 14, _PERIOD + _SPAN)])
    windows = np.lib.stride_tricks.sliding_window_view(seq[:_PERIOD + 14], 15)
    values = windows.astype(np.int64) @ (1 << np.arange(15, dtype=np.int64))
    state = np.full(1 << 15, -1, np.int64)
    state[values] = np.arange(_PERIOD)
    seq.setflags(write=False)
    state.setflags(write=False)
    return seq, state


def sequence(seed: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` PRBS bits after the 15-bit register ``seed`` (uint8, LSB first), as
    :func:`phy.kernels.prbs` gives them: every non-zero seed starts the same m-sequence at its
    own place, so up to ``_SPAN`` bits are a slice of one table."""
    if n > _SPAN:
        return prbs(seed, 14, n)
    seq, state = _msequence()
    t = int(state[int(np.dot(seed.astype(np.int64), 1 << np.arange(15, dtype=np.int64)))])
    if t < 0:  # the all-zero register (never a seed_for value)
        return prbs(seed, 14, n)
    return seq[t + 15: t + 15 + n]
