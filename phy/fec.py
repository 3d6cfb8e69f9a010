"""Forward error correction behind one small interface (digest §4.2).

:class:`FEC` is what the modem calls; :class:`ConvCode` implements it with the 16e K=7 (171,133)
convolutional code, zero-terminated (6 tail bits; the digest's tail-biting is a permitted
simplification — a burst is long enough that 6 bits cost < 1 %), punctured to 2/3, 3/4 or 5/6 with
the 16e/802.11 patterns. A CTC can later implement the same interface without touching the modem.

Decoding uses the int16 SIMD Viterbi (:mod:`phy.viterbi`) where the CPU has AVX2/AVX-512BW and
the float32 decoder (:func:`phy.viterbi_kernels.viterbi_k7`) otherwise;
``ConvCode(rate, decoder=...)`` or ``RELAYSEC_VITERBI=float|int16`` chooses explicitly.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Protocol, runtime_checkable

import numpy as np

from phy.errors import PhyInputError
from phy.kernels import conv_encode_k7
from phy.viterbi import default_decoder, viterbi_k7_simd
from phy.viterbi_float import BFLY_SX, BFLY_SY, viterbi_k7

K = 7
TAIL = K - 1
_TAPS1 = [i for i in range(K) if (0o171 >> (K - 1 - i)) & 1]  # powers of D used by G1
_TAPS2 = [i for i in range(K) if (0o133 >> (K - 1 - i)) & 1]

# Puncturing masks over the interleaved mother stream (X1 Y1 X2 Y2 ...), 1 = sent.
PUNCTURE: dict[str, np.ndarray] = {
    "1/2": np.array([1, 1], dtype=bool),
    "2/3": np.array([1, 1, 0, 1], dtype=bool),  # X:10 Y:11 -> X1 Y1 Y2
    "3/4": np.array([1, 1, 0, 1, 1, 0], dtype=bool),  # X:101 Y:110 -> X1 Y1 Y2 X3
    "5/6": np.array([1, 1, 0, 1, 1, 0, 0, 1, 1, 0], dtype=bool),  # X1 Y1 Y2 X3 Y4 X5
}


@runtime_checkable
class FEC(Protocol):
    """A forward error-correcting code as the modem uses it.

    ``encode`` takes uint8 0/1 info bits and returns uint8 coded bits; ``decode`` takes float32
    LLRs (positive means 0) of exactly ``coded_length(n_info)`` bits and returns n_info uint8 bits.

    The receiver's fast path skips the intermediate coded-LLR array: coded bit ``i`` belongs at
    ``input_positions(n_info)[i]`` of a zeroed float32 buffer of ``input_size(n_info)`` LLRs
    (for the convolutional code: the depunctured mother stream), which the demapper fills
    directly and ``decode_buffer`` decodes. ``decode`` is exactly that with the LLRs placed by
    numpy, so a code without depuncturing can return ``arange(coded_length)``.
    """

    name: str
    rate: Fraction

    def coded_length(self, n_info: int) -> int: ...

    def encode(self, bits: np.ndarray) -> np.ndarray: ...

    def decode(self, llr: np.ndarray, n_info: int) -> np.ndarray: ...

    def input_size(self, n_info: int) -> int: ...

    def input_positions(self, n_info: int) -> np.ndarray: ...

    def decode_buffer(self, buf: np.ndarray, n_info: int) -> np.ndarray: ...


_MASK1 = sum(1 << d for d in _TAPS1)
_MASK2 = sum(1 << d for d in _TAPS2)


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Mother-code encoder: n info bits -> 2(n+6) bits X0 Y0 X1 Y1 ... (zero start and tail),
    in one compiled pass (:func:`phy.kernels.conv_encode_k7`)."""
    return conv_encode_k7(np.ascontiguousarray(bits, dtype=np.uint8), _MASK1, _MASK2)


MASK_CACHE = 512
"""Block sizes whose puncturing indices a code keeps (a few KiB each at most)."""


class ConvCode:
    """K=7 (171,133) convolutional code, zero-terminated, punctured to ``rate``.

    ``decoder``: ``"int16"`` (SIMD, quantised LLRs), ``"float"`` (float32 metrics) or
    ``None`` for :func:`phy.viterbi.default_decoder` (the CPU's features, or the
    ``RELAYSEC_VITERBI`` override), read when the code is built."""

    def __init__(self, rate: str = "1/2", decoder: str | None = None) -> None:
        if rate not in PUNCTURE:
            raise PhyInputError(f"unsupported convolutional code rate {rate!r}")
        if decoder not in (None, "int16", "float"):
            raise PhyInputError(f"unknown Viterbi decoder {decoder!r} (int16 or float)")
        self.decoder = decoder or default_decoder()
        self.rate = Fraction(rate)
        self.name = f"CC-K7-{rate}"
        self._mask = PUNCTURE[rate]
        self._mask_cache: dict[int, np.ndarray] = {}
        # sent bits per whole puncturing period, and within its first k positions
        # (Python ints: coded_length is asked per allocation, and numpy scalars cost ~5x)
        self._ones = [0, *np.cumsum(np.asarray(self._mask, dtype=bool)).tolist()]

    def _sent(self, n_info: int) -> np.ndarray:
        """Indices of the transmitted bits in the mother stream of an n_info-bit block
        (cached: the oldest of MASK_CACHE sizes is dropped when a new one comes -- clearing
        them all thrashed when a cell used more sizes than that)."""
        m = self._mask_cache.get(n_info)
        if m is None:
            # the mask's kept positions, period by period, cut at the stream's end (np.resize
            # of the mask, then flatnonzero, took ~8x as long for a 4800-bit block)
            n = 2 * (n_info + TAIL)
            period = self._mask.size
            m = (np.arange(-(-n // period))[:, None] * period
                 + np.flatnonzero(self._mask)).ravel()
            m = m[m < n]
            m.setflags(write=False)
            if len(self._mask_cache) >= MASK_CACHE:
                del self._mask_cache[next(iter(self._mask_cache))]
            self._mask_cache[n_info] = m
        return m

    def coded_length(self, n_info: int) -> int:
        """Coded bits of an n_info-bit block, by arithmetic (the sizes a MAC asks about)."""
        full, rest = divmod(2 * (n_info + TAIL), len(self._mask))
        return int(full * self._ones[-1] + self._ones[rest])

    def encode(self, bits: np.ndarray) -> np.ndarray:
        mother = conv_encode(bits)
        return mother[self._sent(len(bits))]

    def input_size(self, n_info: int) -> int:
        """Length of the depunctured mother stream: 2 (n_info + 6) LLRs."""
        return 2 * (n_info + TAIL)

    def input_positions(self, n_info: int) -> np.ndarray:
        """Mother-stream index of each transmitted coded bit (int64, read-only)."""
        return self._sent(n_info)

    def decode(self, llr: np.ndarray, n_info: int) -> np.ndarray:
        """Soft Viterbi decoding of ``coded_length(n_info)`` float32 LLRs -> n_info bits."""
        sent = self._sent(n_info)
        if llr.size != sent.size:
            raise PhyInputError("LLR length does not match the coded length")
        if sent.size == self.input_size(n_info):  # rate 1/2: nothing punctured
            return self.decode_buffer(np.ascontiguousarray(llr, dtype=np.float32), n_info)
        mother = np.zeros(self.input_size(n_info), dtype=np.float32)
        mother[sent] = llr
        return self.decode_buffer(mother, n_info)

    def decode_buffer(self, buf: np.ndarray, n_info: int) -> np.ndarray:
        """Decode a depunctured mother stream (float32, zeros at punctured positions)."""
        if buf.dtype != np.float32 or buf.shape != (self.input_size(n_info),):
            raise PhyInputError("buffer must be float32 of length input_size(n_info)")
        if self.decoder == "int16":
            return viterbi_k7_simd(buf)[:n_info]
        return viterbi_k7(buf, BFLY_SX, BFLY_SY)[:n_info]
