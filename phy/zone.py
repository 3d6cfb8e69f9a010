"""Zone bursts: one transmitter, one burst per zone -- an A-MAP, then every receiver's allocation.

A :class:`phy.BurstModem` burst pays its preamble and header for each destination; 802.16m
instead sends, per zone, one burst whose A-MAP tells each receiver where its data is. Layout
(every symbol ``NFFT + Ng`` samples)::

    [ S&C preamble ][ long preamble ][ zone header l=0 ][ MAP l=1..k ][ data l=k+1 ... ]

* **zone header** (one symbol, coded exactly like the BurstModem header: K=7 rate 1/2, repeated
  over the symbol's QPSK subcarriers, scrambled, interleaved): 10 bytes = ``0x5 << 4 | k``
  (version nibble 0x5, BurstModem's is 0xA; k = MAP symbols, 0..15), ``src`` (16 bit), data
  symbols (16 bit), MAP entries (8 bit), queue report (16 bit: bytes still queued at the
  transmitter in 16-byte units, saturating at 0xFFFF), CRC-16-CCITT over those 8 bytes.
* **MAP** (k symbols, none for a beacon): the entries and a CRC-16 over all of them, coded
  jointly as one K=7 rate-1/2 block whose code word is repeated cyclically to fill the k QPSK
  symbols (so the last symbol's spare capacity buys robustness), scrambled and interleaved per
  symbol. ``k = ceil((72 n + 22) / n_data)`` for n entries. Each entry is 9 bytes: byte 0 =
  ``kind << 7 | mcs << 4`` (kind 0: DL allocation, 1: UL grant; low nibble 0), then for a DL
  allocation first RU, number of RUs, payload length in bytes (16 bit each), for a UL grant
  ``start``, ``length`` (16 bit each, opaque to the PHY) and 16 zero bits; then the CRC-16 of
  those 7 bytes XORed with the receiver's 16-bit address (STID), as 16m masks A-MAP IE CRCs. The
  address is not sent: a receiver keeps the entries whose CRC checks under one of its own
  addresses or the broadcast address 0xFFFF.
* **data**: a resource unit (RU) is the 17 data subcarriers of one PRU in one data symbol; RUs
  are numbered symbol-major (every RU of data symbol 0, then symbol 1, ...), so an allocation --
  a contiguous RU range -- is a contiguous run of the data subcarriers in transmit order. Each
  allocation is coded on its own: payload + CRC-32, randomizer seeded from (src, dst), K=7 CC
  punctured to its MCS, PRBS padding to the allocation's coded-bit capacity, the 16e
  interleaver (:mod:`phy.interleaver`, depth 16) over the allocation as one block -- its first
  ``N - N mod 16s`` coded bits, where the formula is a permutation; the last few (< 8 QAM
  symbols: code tail and padding) stay in place -- then Gray QAM. Adjacent coded bits land about
  an RU-count of subcarriers apart, and the reliable and unreliable bit positions of 16/64QAM
  alternate along the code exactly as in a BurstModem symbol, which keeps the PER of both equal
  (depth 17, the RU width, fits every size but gives each of the code's two output streams
  always the same bit position: 0.2 dB worse at 16QAM). RUs no allocation uses carry PRBS QPSK,
  so every data symbol has the same power. Pilots as in the grid (one per PRU per symbol).

Output scaling and limiter are BurstModem's. The receiver decodes the header and MAP of every
zone burst it finds, and then demodulates only the data symbols of the allocations addressed to
it (``me``): a receiver's cost is its own allocation's, plus the preamble, header and MAP.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

import numpy as np

from phy import qam
from phy.crc import crc16
from phy.errors import PayloadTooLongError, PhyInputError
from phy.interleaver import DEPTH, permutation
from phy.kernels import gather_windows_ramp
from phy.modem import (
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_TX_RMS,
    PREAMBLE_SYMBOLS,
    _BurstCore,
    _check_address,
    _check_payload,
    _coded_bits,
    _encode_payload,
)
from phy.modem_decode import Burst, _decode_payload
from phy.modem_format import Mcs, _fec, _n_info, _pad_bits, get_mcs
from phy.modem_rx import _Sync, _Timing
from phy.numerology import Profile

log = logging.getLogger(__name__)

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
_HEADER_LS = np.zeros(1, np.int64)
"""The zone header's symbol number (l = 0) as the kernels take it; never written (a read-only
array would be another numba type)."""


@dataclass(frozen=True)
class Allocation:
    """One DL allocation to send: ``payload`` for ``dst`` at ``mcs``.

    ``first_ru`` defaults to the RU after the previous allocation's last (0 for the first);
    ``n_ru`` defaults to the fewest RUs that carry the payload (:meth:`ZoneModem.rus_for`).
    Give them to place or oversize an allocation (the extra capacity is padding)."""

    dst: int
    payload: bytes = field(repr=False)  # may carry key-management messages: never in reprs
    mcs: str
    first_ru: int | None = None
    n_ru: int | None = None


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


class ZoneModem(_BurstCore):
    """Zone-burst modulator/demodulator for one profile (see the module doc for the format).

    Args:
        profile: profile name or alias (``phy.profiles()``).
        tx_rms: RMS of a data symbol at the output (full scale 1.0), or None for no scaling.
        shaping: window and low-pass the output (:mod:`phy.shaping`), as BurstModem.
        max_payload: largest payload of one allocation in bytes.

    A zone burst holds at most ``max_data_symbols`` data symbols: those of a BurstModem burst of
    ``max_payload`` bytes at QPSK-1/2 (the same SFO drift bound), or a 5 ms frame's worth if
    that is more; and at most ``max_entries`` MAP entries (15 MAP symbols, 255 entries).
    """

    def __init__(self, profile: str | Profile = "5MHz", *,
                 tx_rms: float | None = DEFAULT_TX_RMS,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, shaping: bool = True) -> None:
        super().__init__(profile, tx_rms=tx_rms, max_payload=max_payload, shaping=shaping)
        g = self.grid
        self.ru_per_symbol = g.n_pru
        self.ru_subcarriers = g.n_data // g.n_pru
        self.max_data_symbols = max(
            -(-_coded_bits(self.max_payload, get_mcs(0)) // (2 * g.n_data)),
            self.profile.symbols_per_frame)
        # rate 1/2: 2 (bits + 6) coded bits; start there and let the code have the last word
        n = min(MAX_ENTRIES, (MAX_MAP_SYMBOLS * g.n_data - 6) // (8 * ENTRY_BYTES) + 1)
        while self._map_symbols(n) > MAX_MAP_SYMBOLS:
            n -= 1
        self.max_entries = n
        self._pad_qpsk: dict[int, np.ndarray] = {}   # n_data -> the data region's padding

    def _padded_data(self, n_data: int) -> np.ndarray:
        """A fresh (n_data * n_data_subcarriers,) array of the padding QPSK symbols that fill
        the RUs no allocation uses (the allocations are written over it); the symbols depend
        on ``n_data`` only, so each length is mapped once."""
        pad = self._pad_qpsk.get(n_data)
        if pad is None:
            pad = qam.modulate(_pad_bits(2 * n_data * self.grid.n_data), 2)
            pad.setflags(write=False)
            if len(self._pad_qpsk) < 256:
                self._pad_qpsk[n_data] = pad
        return pad.copy()

    def __repr__(self) -> str:
        return f"ZoneModem(profile={self.profile.name!r})"

    # ---- sizes ---------------------------------------------------------------------------
    def _map_symbols(self, n_entries: int) -> int:
        if n_entries == 0:
            return 0
        n_bits = 8 * (ENTRY_BYTES * n_entries + MAP_CRC_BYTES)
        return -(-_fec("1/2").coded_length(n_bits) // (2 * self.grid.n_data))

    def rus_for(self, n_bytes: int, mcs: str) -> int:
        """RUs an allocation of ``n_bytes`` at ``mcs`` needs."""
        m = get_mcs(mcs)
        self._check_length(n_bytes)
        return -(-_coded_bits(n_bytes, m) // (self.ru_subcarriers * m.bits_per_symbol))

    def ru_capacity(self, n_ru: int, mcs: str) -> int:
        """Largest payload (bytes, at most ``max_payload``) that ``n_ru`` RUs carry at ``mcs``;
        -1 when they cannot carry even an empty payload (its CRC-32 and code tail)."""
        m = get_mcs(mcs)
        n_ru = _check_count("n_ru", n_ru)
        bits = n_ru * self.ru_subcarriers * m.bits_per_symbol
        rate = _fec(m.code_rate).rate
        n = min(self.max_payload, max(0, int(bits * rate) // 8 - 5))  # within a byte or two
        while n < self.max_payload and _coded_bits(n + 1, m) <= bits:
            n += 1
        while n >= 0 and _coded_bits(n, m) > bits:
            n -= 1
        return n

    def data_symbols(self, n_ru: int) -> int:
        """Data symbols that RUs ``0 .. n_ru - 1`` span."""
        return -(-_check_count("n_ru", n_ru) // self.ru_per_symbol)

    def overhead_symbols(self, n_entries: int) -> int:
        """Symbols of a zone burst before its data: preamble (2), zone header (1) and the MAP
        of ``n_entries`` entries (allocations + grants)."""
        n = _check_count("n_entries", n_entries)
        if n > self.max_entries:
            raise PhyInputError(f"{n} MAP entries; at most {self.max_entries} fit "
                                f"{MAX_MAP_SYMBOLS} MAP symbols on {self.profile.name}")
        return PREAMBLE_SYMBOLS + 1 + self._map_symbols(n)

    def zone_samples(self, n_entries: int, n_ru: int) -> int:
        """Length in samples of a zone burst with ``n_entries`` MAP entries whose allocations
        end at RU ``n_ru`` (the RUs used, counting from RU 0)."""
        n_data = self.data_symbols(n_ru)
        if n_data > self.max_data_symbols:
            raise PayloadTooLongError(f"{n_ru} RUs need {n_data} data symbols; a zone burst "
                                      f"holds at most {self.max_data_symbols}")
        return (self.overhead_symbols(n_entries) + n_data) * self._sym_len

    def zone_seconds(self, n_entries: int, n_ru: int) -> float:
        """:meth:`zone_samples` in seconds."""
        return self.zone_samples(n_entries, n_ru) / self.sample_rate

    def _check_length(self, n_bytes: object) -> int:
        n = _check_count("n_bytes", n_bytes)
        if n > self.max_payload:
            raise PayloadTooLongError(f"payload of {n} bytes; max is {self.max_payload}")
        return n

    # ---- TX ------------------------------------------------------------------------------
    def _header_bytes(self, src: int, n_map: int, n_data: int, n_entries: int,
                      queue_units: int) -> bytes:
        body = struct.pack(">BHHBH", (ZONE_VERSION << 4) | n_map, src, n_data, n_entries,
                           queue_units)
        return body + struct.pack(">H", crc16(body))

    def _map_bytes(self, entries: list[bytes]) -> bytes:
        body = b"".join(entries)
        return body + struct.pack(">H", crc16(body))

    def modulate(self, allocations: Sequence[Allocation], *, src: int,
                 grants: Sequence[Grant] = (), queue_report: int = 0) -> np.ndarray:
        """One zone burst from ``src``: the MAP of ``allocations`` and ``grants``, then the
        allocations. ``queue_report``: bytes still queued at the transmitter (sent in 16-byte
        units, rounded up, saturating). No allocations and no grants make a beacon (preamble
        and header only). Raises :class:`PhyInputError` (bad address, type, overlapping RU
        ranges, too many entries), :class:`PayloadTooLongError` (a payload over
        ``max_payload`` or over its ``n_ru``, a zone over ``max_data_symbols``) and
        :class:`UnknownMcsError`."""
        src = _check_address("src", src)
        queue_units = min(-(-_check_count("queue_report", queue_report) // QUEUE_UNIT), 0xFFFF)
        allocs = _items(allocations, Allocation, "allocations")
        grant_list = _items(grants, Grant, "grants")
        placed = self._place(allocs)
        entries = [_dl_entry(a.dst, m, first, n, len(a.payload)) for a, m, first, n in placed]
        for gr in grant_list:
            dst = _check_address("grant dst", gr.dst)
            start = _check_field("grant start", gr.start)
            length = _check_field("grant length", gr.length)
            backoff = _check_field("grant backoff", gr.backoff)
            mcs = get_mcs(gr.mcs)
            entries.append(_entry(_KIND_UL, mcs, struct.pack(">HHH", start, length, backoff),
                                  dst))
        n_map = self.overhead_symbols(len(entries)) - PREAMBLE_SYMBOLS - 1
        n_ru = max((first + n for _, _, first, n in placed), default=0)
        self.zone_samples(len(entries), n_ru)  # raises for a zone over max_data_symbols
        n_data = self.data_symbols(n_ru)
        g = self.grid
        hbytes = self._header_bytes(src, n_map, n_data, len(entries), queue_units)
        blocks = [self._robust_symbols(_bits(hbytes), 1)]
        if n_map:
            blocks.append(self._robust_symbols(_bits(self._map_bytes(entries)), n_map))
        if n_data:
            flat = self._padded_data(n_data)
            for a, m, first, n in placed:
                coded = _encode_payload(a.payload, m, src, a.dst)
                cap = n * self.ru_subcarriers * m.bits_per_symbol
                # padded to the capacity, then interleaved as one gather (_ru_gather)
                bits = np.concatenate([coded, _pad_bits(cap - coded.size)])
                bits = bits[_ru_gather(cap, m.bits_per_symbol)]
                k = first * self.ru_subcarriers
                flat[k: k + n * self.ru_subcarriers] = qam.modulate(bits, m.bits_per_symbol)
            blocks.append(flat.reshape(n_data, g.n_data))
        return self._to_air(np.concatenate(blocks))

    def _place(self, allocs: list[Allocation]) -> list[tuple[Allocation, Mcs, int, int]]:
        """Validate the allocations and give each its RU range ``(first, n)``."""
        out = []
        cursor = 0
        for i, a in enumerate(allocs):
            _check_address("allocation dst", a.dst)
            payload = _check_payload(a.payload)
            m = get_mcs(a.mcs)
            need = self.rus_for(len(payload), m.name)
            first = cursor if a.first_ru is None else _check_count("first_ru", a.first_ru)
            n = need if a.n_ru is None else _check_count("n_ru", a.n_ru)
            if n < need:
                raise PayloadTooLongError(
                    f"allocation {i}: {len(payload)} bytes at {m.name} need {need} RUs, it has "
                    f"{n} (they carry at most {self.ru_capacity(n, m.name)} bytes)")
            if first + n > 0xFFFF:
                raise PhyInputError(f"allocation {i}: RUs {first}..{first + n - 1} are past the "
                                    f"16-bit RU numbering")
            out.append((a if isinstance(a.payload, bytes) else _with_bytes(a, payload),
                        m, first, n))
            cursor = first + n
        ranges = sorted((first, first + n, i) for i, (_, _, first, n) in enumerate(out))
        for (a0, a1, i), (b0, _b1, j) in pairwise(ranges):
            if b0 < a1:
                raise PhyInputError(f"allocations {min(i, j)} and {max(i, j)} overlap "
                                    f"(RUs {a0}..{a1 - 1} and from {b0})")
        return out

    # ---- RX ------------------------------------------------------------------------------
    def demodulate(self, iq: np.ndarray, *, me: Collection[int]) -> list[ZoneRx]:
        """Find every zone burst in ``iq`` (1-D complex array, buffer mean removed first) and
        decode its header and MAP; demodulate and decode only the allocations addressed to one
        of the addresses ``me`` or to broadcast. A burst not wholly inside the buffer, or whose
        header fails its CRC, is skipped; a MAP that fails its CRC gives ``map_ok=False``.
        Raises :class:`PhyInputError` for a malformed array or ``me``."""
        mine = _addresses(me)
        return self._scan(iq, lambda r, coarse, timing: self._decode_at(r, coarse, mine, timing))

    def _decode_header(self, s: _Sync) -> tuple[tuple[int, int, int, int, int], float, float
                                                 ] | None:
        ls = _HEADER_LS
        bits, err, wgt = self._robust_block(s.Y[2:3], s.H, s.sigma2, ls, ZONE_HEADER_BYTES * 8,
                                            phase=self._track(s.Y[2:3], s.H, ls, s.sigma2)[:2])
        raw = np.packbits(bits).tobytes()
        if crc16(raw[:8]) != struct.unpack(">H", raw[8:10])[0]:
            return None
        vm, src, n_data, n_entries, queue = struct.unpack(">BHHBH", raw[:8])
        n_map = vm & 15
        if (vm >> 4 != ZONE_VERSION or n_entries > self.max_entries
                or n_map != self._map_symbols(n_entries) or n_data > self.max_data_symbols
                or (n_data and not n_entries)):
            return None
        return (src, n_map, n_data, n_entries, queue), float(np.dot(err, wgt)), float(wgt.sum())

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
            phase = self._track(Yh, s.H, ls_h, s.sigma2)[:2]
            bits, err, wgt = self._robust_block(Yh, s.H, s.sigma2, ls_h, n_bits, skip=1,
                                                phase=phase)
            if ls_h.size >= 3:  # the CPE trend refines the carrier offset
                cfo = self._refine_cfo(cfo, phase[0], ls_h)
            e_num += float(np.dot(err, wgt))
            e_den += float(wgt.sum())
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


# ---- entries, interleaver, scatter maps ----------------------------------------------------
def _entry(kind: int, mcs: Mcs, fields: bytes, dst: int) -> bytes:
    body = bytes([(kind << 7) | (mcs.index << 4)]) + fields
    return body + struct.pack(">H", crc16(body) ^ dst)


def _dl_entry(dst: int, mcs: Mcs, first: int, n: int, length: int) -> bytes:
    return _entry(_KIND_DL, mcs, struct.pack(">HHH", first, n, length), dst)


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))


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
    inv = np.empty(n_bits, np.int64)
    inv[_ru_permutation(n_bits, bps)] = np.arange(n_bits)
    inv.setflags(write=False)
    return inv


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


# ---- argument checks -------------------------------------------------------------------------
def _check_count(name: str, v: object) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
        raise PhyInputError(f"{name} must be a non-negative int, got {v!r}")
    return int(v)


def _check_field(name: str, v: object) -> int:
    n = _check_count(name, v)
    if n > 0xFFFF:
        raise PhyInputError(f"{name} must be in 0..65535, got {n}")
    return n


def _items(seq: object, cls: type, name: str) -> list:
    if isinstance(seq, (str, bytes, bytearray, memoryview, cls)) or not isinstance(seq, Iterable):
        raise PhyInputError(f"{name} must be a sequence of {cls.__name__}, got "
                            f"{type(seq).__name__}")
    out = list(seq)
    for i, x in enumerate(out):
        if not isinstance(x, cls):
            raise PhyInputError(f"{name}[{i}] must be a {cls.__name__}, got {type(x).__name__}")
    return out


def _with_bytes(a: Allocation, payload: bytes) -> Allocation:
    return Allocation(a.dst, payload, a.mcs, a.first_ru, a.n_ru)


def _addresses(me: object) -> frozenset[int]:
    """The receiver's addresses plus broadcast."""
    if isinstance(me, (str, bytes, bytearray, int)) or not isinstance(me, Iterable):
        raise PhyInputError(f"me must be a collection of 16-bit addresses, got {me!r}")
    return frozenset(_check_address("address in me", a) for a in me) | {BROADCAST}
