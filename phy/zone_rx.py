"""The zone modem's receive side: find every zone burst in a buffer, decode its header and A-MAP,
then demodulate and decode only the allocations addressed to the receiver.

:class:`ZoneReceiver` is mixed into :class:`phy.zone.ZoneModem` (which holds the state and sizes
it names) on top of the receive steps every burst format shares
(:class:`phy.modem_rx.ReceiverCore`); :class:`ZoneRx` is what it returns. Apart from
:mod:`phy.zone` (the format, its sizes and the transmitter) because receiving changes for
different reasons (estimation, speed) than the format and its transmission, as
:mod:`phy.modem_decode` is apart from :mod:`phy.modem`. :mod:`phy.zone` re-exports its names.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from phy.crc import crc16
from phy.errors import PhyInputError
from phy.kernels import gather_windows_ramp
from phy.modem import PREAMBLE_SYMBOLS, _check_address
from phy.modem_decode import Burst, _decode_payload
from phy.modem_format import Mcs, _fec, _n_info, get_mcs
from phy.modem_rx import ReceiverCore, _Sync, _Timing
from phy.zone_format import (
    _KIND_DL,
    _KIND_UL,
    BROADCAST,
    ENTRY_BYTES,
    MAP_CRC_BYTES,
    QUEUE_UNIT,
    ZONE_HEADER_BYTES,
    ZONE_VERSION,
    Grant,
    _ru_gather,
)

log = logging.getLogger("phy.zone")  # the zone modem's logger, as before the receiver split off

_HEADER_LS = np.zeros(1, np.int64)
"""The zone header's symbol number (l = 0) as the kernels take it; never written (a read-only
array would be another numba type)."""


@dataclass(frozen=True)
class ZoneRx:
    """One zone burst found in a buffer.

    ``start``/``n_samples``: where the burst lies in the buffer; ``snr_db``, ``cfo_hz`` as for a
    :class:`phy.Burst`; ``evm_db``: decision-directed EVM of the header and MAP symbols;
    ``queue_report``: bytes the transmitter still has queued (a multiple of 16, the upper end of
    its 16-byte unit; 0xFFFF * 16 means at least that many); ``n_entries``: MAP entries for all
    receivers; ``map_ok``: False when the MAP failed its CRC (then ``allocations`` and ``grants``
    are empty); ``allocations``: the decoded allocations addressed to the receiver's addresses or
    to broadcast, in MAP order (``Burst.dst`` is the address the entry matched, ``start`` and
    ``n_samples`` those of the zone burst, ``crc_ok`` per allocation); ``grants``: UL grants
    addressed to the receiver (``Grant.dst`` likewise)."""

    src: int
    start: int
    n_samples: int
    snr_db: float
    cfo_hz: float
    evm_db: float
    queue_report: int
    n_entries: int
    allocations: list[Burst]
    grants: list[Grant]
    map_ok: bool = True


class _DlEntry(NamedTuple):
    """A DL allocation entry as the MAP carries it (and the address it is for). A named
    tuple: built per entry per burst, where a frozen dataclass's construction costs ~3 us."""

    dst: int
    mcs: Mcs
    first_ru: int
    n_ru: int
    length: int


class ZoneReceiver(ReceiverCore):
    """The receive side of :class:`phy.zone.ZoneModem` (mixed into it; it holds the state and
    the sizes named below): find every zone burst in a buffer, decode its header and MAP, then
    the allocations addressed to the receiver."""

    # provided by ZoneModem (its limits and sizes)
    max_payload: int
    max_entries: int
    max_data_symbols: int
    ru_per_symbol: int
    ru_subcarriers: int
    _map_symbols: Callable[[int], int]
    rus_for: Callable[[int, str], int]

    # ---- RX ------------------------------------------------------------------------------
    def demodulate(self, iq: np.ndarray, *, me: Collection[int],
                   known: Sequence[tuple[int, int]] = (),
                   starts: Sequence[tuple[int, int]] | None = None) -> list[ZoneRx]:
        """Find every zone burst in ``iq`` (1-D complex array, buffer mean removed first) and
        decode its header and MAP; demodulate and decode only the allocations addressed to one
        of the addresses ``me`` or to broadcast. A burst not wholly inside the buffer, or whose
        header fails its CRC, is skipped; a MAP that fails its CRC gives ``map_ok=False``.
        ``known``: ``(start, end)`` samples (in ``iq``) of bursts the caller decoded already
        from an overlapping buffer: they are not decoded again, nor returned. ``starts``:
        ``(lo, hi)`` samples (inclusive) where a burst may start, when the caller knows (a
        receiver locked to the frame: its zones' starts, give or take its timing error): the
        preamble search runs there only; None searches all of ``iq``. Raises
        :class:`PhyInputError` for a malformed array, ``me``, ``known`` or ``starts``."""
        mine = _addresses(me)
        return self._scan(iq, lambda r, coarse, timing: self._decode_at(r, coarse, mine, timing),
                          known, starts)

    def _decode_header(self, s: _Sync) -> tuple[tuple[int, int, int, int, int], float, float
                                                 ] | None:
        bits, e_num, e_den, _ = self._robust_decode(s.Y[2:3], s.H, s.sigma2, _HEADER_LS,
                                                    ZONE_HEADER_BYTES * 8)
        raw = np.packbits(bits).tobytes()
        if crc16(raw[:8]) != struct.unpack(">H", raw[8:10])[0]:
            return None
        vm, src, n_data, n_entries, queue = struct.unpack(">BHHBH", raw[:8])
        n_map = vm & 15
        if (vm >> 4 != ZONE_VERSION or n_entries > self.max_entries
                or n_map != self._map_symbols(n_entries) or n_data > self.max_data_symbols
                or (n_data and not n_entries)):
            return None
        return (src, n_map, n_data, n_entries, queue), e_num, e_den

    def _decode_at(self, r: np.ndarray, coarse: int, mine: frozenset[int],
                   timing: _Timing | None = None) -> ZoneRx | None:
        ns = self._sym_len
        s = self._sync(r, coarse, timing)
        if s is None:
            return None
        hdr = self._decode_header(s)
        if hdr is None:
            return None
        (src, n_map, n_data, n_entries, queue), e_num, e_den = hdr
        total = (PREAMBLE_SYMBOLS + 1 + n_map + n_data) * ns
        if s.start + total > r.size:
            log.debug("zone burst at %d truncated (%d of %d samples)", s.start,
                      r.size - s.start, total)
            return None
        cfo = s.cfo
        Yh = s.Y[2:3]
        ls_h = np.arange(1 + n_map)
        dl: list[_DlEntry] = []
        grants: list[Grant] = []
        map_ok = True
        if n_map:
            # the preamble's transform holds the MAP symbols when the buffer did (any it did
            # not reach: a transform of their own)
            have = s.Y.shape[0] - 3
            Yh = (s.Y[2:3 + n_map] if n_map <= have else
                  self._windows(r, s.start + (3 + have) * ns, n_map - have, cfo,
                                head=s.Y[2:3 + have]))
            n_bits = 8 * (ENTRY_BYTES * n_entries + MAP_CRC_BYTES)
            # the header is tracked with the MAP (its CPE is a point of the trend) and left out
            bits, num, den, cpe = self._robust_decode(Yh, s.H, s.sigma2, ls_h, n_bits, skip=1)
            if ls_h.size >= 3:  # the CPE trend refines the carrier offset
                cfo = self._refine_cfo(cfo, cpe, ls_h)
            e_num += num
            e_den += den
            raw = np.packbits(bits).tobytes()
            map_ok = crc16(raw[:-MAP_CRC_BYTES]) == struct.unpack(">H", raw[-MAP_CRC_BYTES:])[0]
            if map_ok:
                dl, grants = self._entries_for(raw, n_entries, n_data, mine)
            else:
                log.debug("zone burst at %d from %d: MAP CRC failed", s.start, src)
        evm_db = 10 * math.log10(max(e_num / max(e_den, 1e-30), 1e-12))
        allocations: list[Burst] = []
        if dl:
            allocations, cfo = self._decode_allocations(r, s, Yh, n_map, src, dl, total)
        return ZoneRx(src, s.start, int(total), round(s.snr_db, 2), float(cfo), round(evm_db, 2),
                      queue * QUEUE_UNIT, n_entries, allocations, grants, map_ok)

    def _entries_for(self, raw: bytes, n_entries: int, n_data: int, mine: frozenset[int]
                     ) -> tuple[list[_DlEntry], list[Grant]]:
        """The MAP entries whose masked CRC checks under one of ``mine`` (well-formed ones)."""
        dl: list[_DlEntry] = []
        grants: list[Grant] = []
        n_rus = n_data * self.ru_per_symbol
        for i in range(n_entries):
            e = raw[i * ENTRY_BYTES: (i + 1) * ENTRY_BYTES]
            addr = crc16(e[:7]) ^ int.from_bytes(e[7:9], "big")
            if addr not in mine:
                continue
            kind, mcs_i, low = e[0] >> 7, (e[0] >> 4) & 7, e[0] & 15
            a, b, c = struct.unpack(">HHH", e[1:7])
            mcs = get_mcs(mcs_i)
            if low:
                log.debug("MAP entry %d: reserved bits set", i)
            elif kind == _KIND_UL:
                grants.append(Grant(addr, a, b, mcs.name, c))
            elif (kind == _KIND_DL and c <= self.max_payload and b > 0 and a + b <= n_rus
                  and b >= self.rus_for(c, mcs.name)):
                dl.append(_DlEntry(addr, mcs, a, b, c))
            else:
                log.debug("MAP entry %d for %d is malformed", i, addr)
        return dl, grants

    def _decode_allocations(self, r: np.ndarray, s: _Sync, Yh: np.ndarray, n_map: int,
                            src: int, dl: list[_DlEntry], total: int
                            ) -> tuple[list[Burst], float]:
        """Demodulate the data symbols the allocations ``dl`` occupy (and no others), track the
        pilots over header, MAP and those symbols, and decode each allocation."""
        g = self.grid
        ns, w_ru = self._sym_len, self.ru_subcarriers
        runs = _symbol_runs([(e.first_ru * w_ru // g.n_data,
                              ((e.first_ru + e.n_ru) * w_ru - 1) // g.n_data + 1) for e in dl])
        base = s.start + (PREAMBLE_SYMBOLS + 1 + n_map) * ns
        nh = 1 + n_map
        ls = _run_symbols(nh, runs)
        # the header and MAP rows (Yh) first, then each run's windows: from the preamble's
        # transform as far as it reached (it holds data symbols 0 .. have - 1)
        have = s.Y.shape[0] - 2 - nh
        if runs[-1][0] + runs[-1][1] <= have:
            Yall = _run_rows(s.Y[2:], nh, runs)
        elif len(runs) == 1 and runs[0][0] == 0 and have > 0:
            Yall = self._windows(r, base + have * ns, runs[0][1] - have, s.cfo,
                                 head=s.Y[2:2 + nh + have])
        else:
            Yall = self._run_windows(r, base, runs, s.cfo, Yh)
        cpe, bl, slope = self._track(Yall, s.H, ls, s.sigma2)
        # the phase trend from the S&C symbol (l = -2) and the long one (l = -1, phase 0) on
        cfo = self._refine_cfo(s.cfo, _with_preamble(s.sc_phase, cpe), self._trend_points(ls))
        win_cfo = s.cfo
        if self._ici_matters(cfo - s.cfo, s.snr_db):
            # as BurstModem: the data windows again at the refined carrier offset (the header
            # and MAP keep theirs; each symbol's CPE absorbs the phase step between the two)
            win_cfo = cfo
            Yall = self._run_windows(r, base, runs, cfo, Yh)
            cpe, bl, slope = self._track(Yall, s.H, ls, s.sigma2)
        drift = [self._phase_drift(r, base + first * ns, n, win_cfo, s.snr_db, s.echo)
                 for first, n in runs]
        if any(d is not None for d in drift):
            # as BurstModem: phase noise drifting inside the symbols, each one's ramp removed
            fs = self.profile.sample_rate
            Yall = np.concatenate([Yh] + [self._demodulate(gather_windows_ramp(
                r, base + first * ns + g.cp - self.backoff, n, ns, g.nfft,
                2 * np.pi * win_cfo / fs, np.zeros(n) if d is None else d))
                for (first, n), d in zip(runs, drift, strict=True)])
            cpe, bl, slope = self._track(Yall, s.H, ls, s.sigma2)
        Yd = Yall[nh:]
        sfo_ppm = self._sfo_ppm(slope) if int(ls[-1]) >= 8 else 0.0
        z, wgt = self._equalise(Yd, s.H, s.sigma2, ls[nh:], cpe[nh:], bl[nh:])
        out = []
        for e in dl:
            first_sym = e.first_ru * w_ru // g.n_data
            k = _row_of(runs, first_sym) * g.n_data + e.first_ru * w_ru - first_sym * g.n_data
            sl = slice(k, k + e.n_ru * w_ru)
            bps = e.mcs.bits_per_symbol
            dest = _ru_scatter_map(e.n_ru * w_ru * bps, bps, e.mcs.code_rate, _n_info(e.length))
            payload, ok, evm_db = _decode_payload(z[sl], wgt[sl], e.mcs, e.length, src, e.dst,
                                                  dest)
            out.append(Burst(payload, ok, round(s.snr_db, 2), float(cfo), round(evm_db, 2), src,
                             e.dst, s.start, e.mcs.name, int(total), float(sfo_ppm),
                             np.asarray(z[sl], dtype=np.complex64)))
        return out, cfo

    def _run_windows(self, r: np.ndarray, base: int, runs: list[tuple[int, int]], cfo: float,
                     head: np.ndarray) -> np.ndarray:
        """The rows ``head`` and then the FFT windows of the data symbols ``runs`` (first
        symbol, count; the data region starts at sample ``base``) at carrier offset ``cfo``."""
        ns = self._sym_len
        if len(runs) == 1:
            first, n = runs[0]
            return self._windows(r, base + first * ns, n, cfo, head=head)
        return np.concatenate([head] + [self._windows(r, base + first * ns, n, cfo)
                                        for first, n in runs])

    def _trend_points(self, ls: np.ndarray) -> np.ndarray:
        """Symbol numbers -2 (S&C), -1 (long) and ``ls`` (increasing, from 0) as float64: the
        x of the phase trend (:meth:`_refine_cfo`); the kept table when ``ls`` is 0 .. n-1."""
        if int(ls[-1]) == ls.size - 1:
            return self._trend_x(ls.size)
        out = np.empty(ls.size + 2)
        out[0] = -2.0
        out[1] = -1.0
        out[2:] = ls
        return out


def _run_rows(Yall: np.ndarray, nh: int, runs: list[tuple[int, int]]) -> np.ndarray:
    """The ``nh`` header and MAP rows of ``Yall`` and then the rows of the data symbols
    ``runs`` (data symbol ``i`` is row ``nh + i``): a view when they are the first rows."""
    if len(runs) == 1 and runs[0][0] == 0:
        return Yall[:nh + runs[0][1]]
    return np.concatenate([Yall[:nh]] + [Yall[nh + first: nh + first + n]
                                         for first, n in runs])


def _symbol_runs(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The data symbols that the symbol ranges ``spans`` (``[a, b)`` each) cover, as runs of
    consecutive symbols ``(first, count)`` in increasing order (overlapping and adjacent
    ranges merged)."""
    runs: list[tuple[int, int]] = []
    end = -1
    for a, b in sorted(spans):
        if runs and a <= end:
            if b > end:
                end = b
                runs[-1] = (runs[-1][0], end - runs[-1][0])
        else:
            runs.append((a, b - a))
            end = b
    return runs


def _run_symbols(nh: int, runs: list[tuple[int, int]]) -> np.ndarray:
    """Symbol numbers ``l`` (int64) of the ``nh`` header and MAP symbols and then of the data
    symbols ``runs`` (data symbol ``i`` is ``l = nh + i``)."""
    if len(runs) == 1 and runs[0][0] == 0:
        return np.arange(nh + runs[0][1], dtype=np.int64)
    ls = list(range(nh))
    for first, n in runs:
        ls.extend(range(nh + first, nh + first + n))
    return np.array(ls, dtype=np.int64)


def _row_of(runs: list[tuple[int, int]], sym: int) -> int:
    """Row of data symbol ``sym`` among the windows of ``runs`` (it lies in one of them)."""
    row = 0
    for first, n in runs:
        if first <= sym < first + n:
            return row + sym - first
        row += n
    raise ValueError(f"data symbol {sym} is in no run")


def _with_preamble(sc_phase: float, cpe: np.ndarray) -> np.ndarray:
    """The phase trend's points: the S&C symbol's phase, the long symbol's (0) and ``cpe``."""
    out = np.empty(cpe.size + 2)
    out[0] = sc_phase
    out[1] = 0.0
    out[2:] = cpe
    return out


@lru_cache(maxsize=256)
def _ru_scatter_map(n_bits: int, bps: int, rate: str, n_info: int) -> np.ndarray:
    """Where each demapped bit of an allocation goes in the FEC input buffer (the allocation's
    counterpart of :func:`phy.modem_decode._rx_scatter_map`: deinterleave and depuncture composed;
    padding bits map to -1). int64, read-only."""
    pos = _fec(rate).input_positions(n_info)
    inv = _ru_gather(n_bits, bps)
    dest = np.full(n_bits, -1, np.int64)
    ok = inv < pos.size
    dest[ok] = pos[inv[ok]]
    dest.setflags(write=False)
    return dest


def _addresses(me: object) -> frozenset[int]:
    """The receiver's addresses plus broadcast."""
    if isinstance(me, (str, bytes, bytearray, int)) or not isinstance(me, Iterable):
        raise PhyInputError(f"me must be a collection of 16-bit addresses, got {me!r}")
    return frozenset(_check_address("address in me", a) for a in me) | {BROADCAST}
