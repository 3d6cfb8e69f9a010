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

Where the code lives: this module holds the format's sizes and the transmitter
(:class:`ZoneModem`, :class:`Allocation`); :mod:`phy.zone_rx` the receiver (``ZoneReceiver``,
mixed into :class:`ZoneModem`, and :class:`ZoneRx`); :mod:`phy.zone_format` the constants,
:class:`Grant` and the allocation interleaver both sides use. This module re-exports their names.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from phy import qam
from phy.crc import crc16
from phy.errors import PayloadTooLongError, PhyInputError
from phy.modem import (
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_TX_RMS,
    PREAMBLE_SYMBOLS,
    _BurstCore,
    _check_address,
    _check_payload,
    _coded_bits,
    _encode_into,
)
from phy.modem_format import Mcs, _fec, _pad_bits, get_mcs
from phy.numerology import Profile
from phy.zone_format import (
    _KIND_DL,
    _KIND_UL,
    ENTRY_BYTES,
    MAP_CRC_BYTES,
    MAX_ENTRIES,
    MAX_MAP_SYMBOLS,
    QUEUE_UNIT,
    ZONE_VERSION,
    Grant,
    _ru_gather,
)
from phy.zone_format import BROADCAST as BROADCAST
from phy.zone_format import ZONE_HEADER_BYTES as ZONE_HEADER_BYTES
from phy.zone_format import _ru_block as _ru_block
from phy.zone_format import _ru_permutation as _ru_permutation
from phy.zone_rx import ZoneReceiver
from phy.zone_rx import ZoneRx as ZoneRx
from phy.zone_rx import _row_of as _row_of
from phy.zone_rx import _run_symbols as _run_symbols
from phy.zone_rx import _symbol_runs as _symbol_runs

#: A UL grant's MAP fields after the kind byte: start, length, backoff.
_GRANT_FIELDS = struct.Struct(">HHH")


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


class ZoneModem(ZoneReceiver, _BurstCore):
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
        """The (n_data * n_data_subcarriers,) padding QPSK symbols that fill the RUs no
        allocation uses (the allocations are written over a copy); the symbols depend on
        ``n_data`` only, so each length is mapped once. Read-only."""
        pad = self._pad_qpsk.get(n_data)
        if pad is None:
            pad = qam.modulate(_pad_bits(2 * n_data * self.grid.n_data), 2)
            pad.setflags(write=False)
            if len(self._pad_qpsk) < 256:
                self._pad_qpsk[n_data] = pad
        return pad

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
            fields = (gr.dst, gr.start, gr.length, gr.backoff)
            if not all(type(v) is int and 0 <= v <= 0xFFFF for v in fields):
                _check_address("grant dst", gr.dst)   # raise the one that is wrong
                _check_field("grant start", gr.start)
                _check_field("grant length", gr.length)
                _check_field("grant backoff", gr.backoff)
                fields = (int(gr.dst), int(gr.start), int(gr.length), int(gr.backoff))
            entries.append(_entry(_KIND_UL, get_mcs(gr.mcs), _GRANT_FIELDS.pack(*fields[1:]),
                                  fields[0]))
        n_map = self.overhead_symbols(len(entries)) - PREAMBLE_SYMBOLS - 1
        n_ru = max((first + n for _, _, first, n in placed), default=0)
        self.zone_samples(len(entries), n_ru)  # raises for a zone over max_data_symbols
        n_data = self.data_symbols(n_ru)
        g = self.grid
        # every symbol after the preamble, written in place: header, MAP, then the data
        q = np.empty((1 + n_map + n_data, g.n_data), np.complex64)
        hbytes = self._header_bytes(src, n_map, n_data, len(entries), queue_units)
        self._robust_into(np.frombuffer(hbytes, np.uint8), 8 * len(hbytes), q[:1])
        if n_map:
            mbytes = self._map_bytes(entries)
            self._robust_into(np.frombuffer(mbytes, np.uint8), 8 * len(mbytes),
                              q[1:1 + n_map])
        if n_data:
            flat = q[1 + n_map:].reshape(-1)
            flat[:] = self._padded_data(n_data)
            for a, m, first, n in placed:
                cap = n * self.ru_subcarriers * m.bits_per_symbol
                # coded, padded to the capacity, interleaved as one gather (_ru_gather) and
                # mapped straight into the allocation's RUs
                k = first * self.ru_subcarriers
                _encode_into(flat[k: k + n * self.ru_subcarriers], a.payload, m, src, a.dst,
                             _ru_gather(cap, m.bits_per_symbol),
                             _pad_bits(cap - _coded_bits(len(a.payload), m)))
        return self._to_air(q)

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


# ---- MAP entries -----------------------------------------------------------------------------
def _entry(kind: int, mcs: Mcs, fields: bytes, dst: int) -> bytes:
    body = bytes([(kind << 7) | (mcs.index << 4)]) + fields
    return body + struct.pack(">H", crc16(body) ^ dst)


def _dl_entry(dst: int, mcs: Mcs, first: int, n: int, length: int) -> bytes:
    return _entry(_KIND_DL, mcs, struct.pack(">HHH", first, n, length), dst)


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))


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
