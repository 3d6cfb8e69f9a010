"""The burst modem's own decoding: a :class:`phy.BurstModem` burst's header and data, from the
equalised subcarriers that :class:`phy.modem_rx.ReceiverCore` yields, into a :class:`Burst`.

:class:`BurstReceiver` (mixed into :class:`phy.BurstModem`, which holds the state and sizes it
names) decodes the header and the data, through :func:`_rx_scatter_map` (where each demapped bit
goes in the decoder's input) and :func:`_decode_payload` (demap, deinterleave, depuncture,
Viterbi, CRC; also used by :mod:`phy.zone_rx`, as zone allocations are coded the same way). Apart
from :mod:`phy.modem_rx` because that module holds the receive steps every burst format shares
(search, sync, estimation, tracking, equalisation), while this one changes with the
BurstModem's burst format only. :mod:`phy.modem` and :mod:`phy.modem_rx` re-export its names.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from phy import qam
from phy.crc import crc16, crc32
from phy.interleaver import inverse_permutation
from phy.kernels import gather_windows_ramp
from phy.modem_format import _MCS_LIST, HEADER_BYTES, HEADER_VERSION, Mcs, _fec, _n_info
from phy.modem_rx import ReceiverCore, _Timing
from phy.randomizer import xor_sequence

_HEADER_LS = np.zeros(1, np.int64)
"""The header's symbol number (l = 0) as the kernels take it; never written (a read-only array
would be another numba type)."""

log = logging.getLogger("phy.modem")  # the modem's logger, as before the receiver split off


@dataclass(frozen=True)
class Burst:
    """One received burst.

    ``payload`` is the decoded payload; trust it only when ``crc_ok`` (it is returned on CRC
    failure for diagnostics only). ``snr_db``: Es/N0 per used subcarrier from the preamble;
    ``cfo_hz``: estimated carrier offset (rx - tx); ``evm_db``: decision-directed EVM of the data
    subcarriers; ``start``: sample index of the burst's first sample in the buffer; ``sfo_ppm``:
    sampling-clock offset estimated from the pilot slopes (0 when the burst is too short to tell);
    ``symbols``: the equalised data-subcarrier symbols (complex64, transmit order, unit average
    power), for constellation plots and diagnostics. The repr leaves the payload and symbols out
    (the payload can carry key-management messages); equality ignores the symbols.
    """

    payload: bytes = field(repr=False)  # may carry key-management messages: never in reprs
    crc_ok: bool
    snr_db: float
    cfo_hz: float
    evm_db: float
    src: int
    dst: int
    start: int
    mcs: str
    n_samples: int
    sfo_ppm: float = 0.0
    symbols: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def payload_len(self) -> int:
        return len(self.payload)


class BurstReceiver(ReceiverCore):
    """The receive side of :class:`phy.BurstModem` (mixed into it; it holds the state and the
    sizes named below): find every burst in a buffer, decode its header, then its data."""

    max_payload: int
    # provided by BurstModem (its sizes)
    data_symbols: Callable[..., int]
    _ncbps: Callable[[Mcs], int]

    # ---- RX ------------------------------------------------------------------------------
    def demodulate(self, iq: np.ndarray) -> list[Burst]:
        """Find and decode every burst in ``iq`` (1-D complex array; bursts may start anywhere,
        with noise or silence between them). The buffer mean (receiver DC offset) is removed
        first. A burst that is not wholly inside the buffer, or
        whose header fails its CRC, is skipped. Raises :class:`PhyInputError` for a non-array,
        non-complex dtype, wrong shape or non-finite samples."""
        return self._scan(iq, self._decode_at)

    def _decode_at(self, r: np.ndarray, coarse: int,
                   timing: _Timing | None = None) -> Burst | None:
        ns = self._sym_len
        s = self._sync(r, coarse, timing)
        if s is None:
            return None
        hdr = self._decode_header(s.Y[2:3], s.H, s.sigma2)
        if hdr is None:
            return None
        mcs, length, src, dst = hdr
        start, cfo = s.start, s.cfo
        n_sym = self.data_symbols(length, mcs.name)
        total = (3 + n_sym) * ns
        if start + total > r.size:
            log.debug("burst at %d truncated (%d of %d samples)", start, r.size - start, total)
            return None
        # header and data: the preamble's transform holds the header and the first data
        # symbols (same start, same offset); the rest, if any, in a transform of their own
        have = min(s.Y.shape[0] - 3, n_sym)
        Yall = (s.Y[2:3 + n_sym] if have == n_sym else
                self._windows(r, start + (3 + have) * ns, n_sym - have, cfo,
                              head=s.Y[2:3 + have]))
        Yd = Yall[1:]
        ls = np.arange(n_sym + 1)
        cpe, bl, slope = self._track(Yall, s.H, ls, s.sigma2)
        # residual CFO from the phase trend over the whole burst: the S&C symbol (l = -2), the
        # long symbol (l = -1, the reference: phase 0), header and data
        fine = self._refine_cfo(cfo, np.concatenate([[s.sc_phase, 0.0], cpe]),
                                self._trend_x(n_sym + 1))
        if self._ici_matters(fine - cfo, s.snr_db):
            # the preamble's estimate was off by enough to matter (phase noise moves the S&C
            # halves' phase): take the header and data windows again at the refined offset
            Yall = self._windows(r, start + 2 * ns, n_sym + 1, fine)
            Yd = Yall[1:]
            cpe, bl, slope = self._track(Yall, s.H, ls, s.sigma2)
        cfo = fine
        dw = self._phase_drift(r, start + 2 * ns, n_sym + 1, cfo, s.snr_db, s.echo)
        if dw is not None:
            # phase noise drifting inside the symbols: take the windows again with each one's
            # drift removed (inter-carrier interference roughly halved), and track again
            g = self.grid
            fs = self.profile.sample_rate
            Yall = self._demodulate(gather_windows_ramp(
                r, start + 2 * ns + g.cp - self.backoff, n_sym + 1, ns, g.nfft,
                2 * np.pi * cfo / fs, dw))
            Yd = Yall[1:]
            cpe, bl, slope = self._track(Yall, s.H, ls, s.sigma2)
        z, wgt = self._equalise(Yd, s.H, s.sigma2, ls[1:], cpe[1:], bl[1:])
        dest = _rx_scatter_map(self._ncbps(mcs), mcs.bits_per_symbol, mcs.code_rate,
                               _n_info(length))
        payload, ok, evm_db = _decode_payload(z, wgt, mcs, length, src, dst, dest)
        sfo_ppm = self._sfo_ppm(slope) if n_sym >= 8 else 0.0
        return Burst(payload, ok, round(s.snr_db, 2), float(cfo), round(evm_db, 2), src, dst,
                     int(start), mcs.name, int(total), float(sfo_ppm),
                     np.asarray(z, dtype=np.complex64))

    def _decode_header(self, Yh: np.ndarray, H: np.ndarray, sigma2: float
                       ) -> tuple[Mcs, int, int, int] | None:
        bits = self._robust_decode(Yh, H, sigma2, _HEADER_LS, HEADER_BYTES * 8)[0]
        raw = np.packbits(bits).tobytes()
        if crc16(raw[:7]) != struct.unpack(">H", raw[7:9])[0]:
            return None
        vm, length, src, dst = struct.unpack(">BHHH", raw[:7])
        if vm >> 4 != HEADER_VERSION or (vm & 15) >= len(_MCS_LIST) or length > self.max_payload:
            return None
        return _MCS_LIST[vm & 15], length, src, dst


def _decode_payload(z: np.ndarray, wgt: np.ndarray, mcs: Mcs, length: int, src: int, dst: int,
                    dest: np.ndarray) -> tuple[bytes, bool, float]:
    """Inverse of :func:`_encode_payload` from equalised symbols ``z`` (weights ``wgt``):
    demap, deinterleave and depuncture in one pass through the scatter map ``dest`` (see
    :func:`_rx_scatter_map`), Viterbi, derandomize, CRC-32. Returns (payload, crc ok, EVM dB)."""
    bps = mcs.bits_per_symbol
    fec = _fec(mcs.code_rate)
    n_info = _n_info(length)
    n_buf = fec.input_size(n_info)
    zz, ww = qam.checked_scatter(z, wgt, bps, dest, n_buf)
    alpha, beta, nearest, inv_cell = qam.demap_tables(bps // 2)
    # demap, deinterleave and depuncture straight into the decoder's input, the EVM sums,
    # Viterbi and derandomising in one compiled call (phy.payload_kernels)
    bits, e_num, e_den = _payload_kernel(fec.decoder)(
        zz, ww, alpha, beta, nearest, inv_cell, dest, n_buf, n_info,
        _read_only(xor_sequence(src, dst, n_info)))
    # EVM against the nearest points, weighted by |H|^2 (unit-energy constellations)
    evm_db = 10 * math.log10(max(e_num / max(e_den, 1e-30), 1e-12))
    data = np.packbits(bits).tobytes()
    payload, tail = data[:length], data[length:]
    ok = struct.unpack(">I", tail)[0] == crc32(payload)
    return payload, ok, evm_db


@lru_cache(maxsize=2)
def _payload_kernel(decoder: str) -> Callable[..., tuple]:
    """The payload kernel for a code's Viterbi ``decoder`` in this CPU's layout (imported on
    the first payload: compiling only that decoder's kernel)."""
    from phy.payload_kernels import decoder_kernel
    from phy.viterbi import simd_layout

    return decoder_kernel(decoder, simd_layout())


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only view (the randomizer's sequences are slices of its read-only table,
    or generated for long bursts: one numba type for both)."""
    if a.flags.writeable:
        a = a.view()
        a.setflags(write=False)
    return a


@lru_cache(maxsize=128)
def _rx_scatter_map(ncbps: int, bps: int, rate: str, n_info: int) -> np.ndarray:
    """Where each demapped bit of a burst's data symbols goes in the FEC input buffer.

    Demapped bit ``q`` of data symbol ``l`` is coded bit ``l * ncbps + inv[q]`` after the
    per-symbol deinterleaver (``inv`` the inverse of the interleaver permutation), which the
    code places at ``input_positions[...]`` (depuncturing); padding bits map to -1 (dropped).
    Composing the two index maps once per (MCS, length) replaces two full passes over the LLRs
    per burst. int64, read-only."""
    fec = _fec(rate)
    pos = fec.input_positions(n_info)
    n_sym = -(-pos.size // ncbps)
    inv = inverse_permutation(ncbps, bps)
    coded = (np.arange(n_sym, dtype=np.int64)[:, None] * ncbps + inv[None, :]).ravel()
    dest = np.full(coded.size, -1, np.int64)
    ok = coded < pos.size
    dest[ok] = pos[coded[ok]]
    dest.setflags(write=False)
    return dest
