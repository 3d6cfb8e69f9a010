"""The zone-burst receiver: :meth:`phy.ZoneModem.demodulate` on IQ built from the input (profile
P2.5, ``max_payload`` 400 so that four 96-byte allocations fit a zone, receiver addresses ``ME``).

Input: byte 0 picks the mode. Mode 0: the rest is IQ as int8 pairs. Mode 1: raw complex64
samples (NaN and infinities included), repeated up to a zone burst's length. Mode 2: a zone burst
of the modem -- up to 4 allocations (destination one of ours, a stranger or broadcast; any MCS;
payload from the input) and up to 3 grants, a queue report -- whose 8-byte zone header may be
replaced by arbitrary fields (version, MAP symbols, src, data symbols, entries, queue) and whose
MAP entries may be replaced by arbitrary 7-byte bodies whose CRC is masked with one of our
addresses, broadcast or a random value (so malformed entries pass the address check), each with
a correct or wrong CRC; then impaired as in the ``phy`` harness (truncated, attenuated, rotated
in frequency, doubled, noisy, scaled up, one extreme sample).

Invariants: rejections are :class:`phy.PhyError` (only for malformed arrays: a buffer without a
decodable zone burst gives ``[]``); every zone burst reported lies inside the buffer, has at most
``max_entries`` entries and a queue report in 16-byte units; a MAP that failed its CRC yields
nothing; every allocation reported is addressed to ``ME`` or broadcast, names a known MCS and
carries at most ``max_payload`` bytes from the burst's ``src``; every grant is addressed to ``ME``
or broadcast (a contention slot: the MAC reads those as such); a genuine zone burst received clean
is decoded exactly once with exactly our allocations (CRC good, same payloads) and grants.
"""

from __future__ import annotations

import struct

import numpy as np

from phy import BROADCAST, Allocation, Grant, PhyError, ZoneModem, mcs_table
from phy.crc import crc16
from tests.fuzz._core import Reader, check

ALLOWED = (PhyError,)

MAX_PAYLOAD = 400
BLOB = 96  # bytes per allocation at most: four of them fit the zone at QPSK-1/2
ME = frozenset({0x0123, 0x0456})
_DSTS = (0x0123, 0x0456, 0x0124, BROADCAST)
_MCS = tuple(mcs_table())


class _CraftedZone(ZoneModem):
    """A zone modem whose next burst may carry an arbitrary zone header (``header``: 8 bytes,
    ``bad_header_crc``) and arbitrary MAP entries (``entries``: 9-byte entries replacing the
    genuine ones, ``bad_map_crc``)."""

    header: bytes | None = None
    bad_header_crc = False
    entries: list[bytes] | None = None
    bad_map_crc = False

    def _header_bytes(self, src: int, n_map: int, n_data: int, n_entries: int,
                      queue_units: int) -> bytes:
        if self.header is None:
            return super()._header_bytes(src, n_map, n_data, n_entries, queue_units)
        crc = crc16(self.header) ^ (0x1234 if self.bad_header_crc else 0)
        return self.header + struct.pack(">H", crc)

    def _map_bytes(self, entries: list[bytes]) -> bytes:
        out = super()._map_bytes(entries if self.entries is None else self.entries)
        return out[:-2] + bytes([out[-2] ^ (0x5A if self.bad_map_crc else 0), out[-1]])


_modem: _CraftedZone | None = None


def setup() -> None:
    """Build the modem once (its tables and numba kernels are the expensive part)."""
    global _modem
    _modem = _CraftedZone("P2.5", max_payload=MAX_PAYLOAD)
    _modem.demodulate(_modem.modulate([Allocation(0x0123, b"warm-up", "QPSK-1/2")], src=1),
                      me=ME)


def _check_zones(zones: list, n: int) -> None:
    m = _modem
    assert m is not None
    for z in zones:
        check(z.start >= 0 and z.start + z.n_samples <= n and z.n_samples > 0, "zone_outside",
              f"start {z.start} len {z.n_samples} of {n}")
        check(0 <= z.n_entries <= m.max_entries, "too_many_entries", str(z.n_entries))
        check(z.queue_report % 16 == 0 and 0 <= z.queue_report <= 0xFFFF * 16, "bad_queue",
              str(z.queue_report))
        check(z.map_ok or not (z.allocations or z.grants), "failed_map_used", "")
        for b in z.allocations:
            check(b.dst in ME or b.dst == BROADCAST, "not_for_me", hex(b.dst))
            check(b.mcs in _MCS, "unknown_mcs", b.mcs)
            check(len(b.payload) <= MAX_PAYLOAD, "payload_too_long", str(len(b.payload)))
            check(b.src == z.src and b.start == z.start, "alloc_mismatch", "")
            repr(b)
        for g in z.grants:
            check(g.dst in ME or g.dst == BROADCAST, "grant_not_for_me", hex(g.dst))
            check(g.mcs in _MCS and 0 <= g.start <= 0xFFFF and 0 <= g.length <= 0xFFFF,
                  "bad_grant", repr(g))
        repr(z)


def _crafted_entries(r: Reader, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        body = bytes(r.take(7)).ljust(7, b"\0")
        how = r.below(4)
        mask = (*sorted(ME), BROADCAST, r.u16())[how]
        out.append(body + struct.pack(">H", crc16(body) ^ mask))
    return out


def _crafted(r: Reader) -> None:
    modem = _modem
    assert modem is not None
    allocs = [Allocation(r.pick(_DSTS), r.blob(BLOB), r.pick(_MCS))
              for _ in range(r.below(5))]
    grants = [Grant(r.pick(_DSTS[:3]), r.u16(), r.u16(), r.pick(_MCS)) for _ in range(r.below(4))]
    src, queue = r.u16(), r.uint(3)
    mode = r.u8()
    modem.header = bytes(r.take(8)).ljust(8, b"\0") if mode & 1 else None
    modem.bad_header_crc = bool(mode & 2)
    modem.entries = _crafted_entries(r, len(allocs) + len(grants)) if mode & 4 else None
    modem.bad_map_crc = bool(mode & 8)
    genuine = not mode & 15
    try:
        iq = modem.modulate(allocs, src=src, grants=grants, queue_report=queue)
    finally:
        modem.header, modem.entries, modem.bad_header_crc, modem.bad_map_crc = (
            None, None, False, False)
    lead = 64 + r.u8() * 4
    buf = np.concatenate([np.zeros(lead, np.complex64), iq, np.zeros(64, np.complex64)])
    clean = genuine
    how = r.u8()
    if how & 1:  # truncated
        buf = buf[: r.u16() % (buf.size + 1)]
        clean = False
    if how & 2:  # attenuated
        buf = buf * np.float32(2.0 ** -(r.u8() % 40))
        clean = False
    if how & 4:  # frequency offset, up to about +-2 subcarriers
        k = np.arange(buf.size)
        buf = buf * np.exp(2j * np.pi * ((r.u8() - 128) / 128 * 2.5 / 256) * k).astype(
            np.complex64)
        clean = False
    if how & 8:  # the burst twice
        buf = np.concatenate([buf, buf])
        clean = False
    if how & 16:  # deterministic noise
        rng = np.random.default_rng(r.u8())
        sigma = np.float32(0.25 * 2.0 ** -(r.u8() % 16))
        buf = buf + (sigma * (rng.standard_normal(buf.size) + 1j * rng.standard_normal(buf.size))
                     ).astype(np.complex64)
        clean = False
    if how & 32:  # scaled up, towards the top of the float32 range
        buf = buf * np.float32(2.0 ** (r.u8() % 128))
        clean = False
    if how & 64 and buf.size:  # one sample replaced by an extreme (finite) value
        buf = buf.copy()
        buf[r.u16() % buf.size] = np.complex64(complex(*np.frombuffer(
            r.take(8).ljust(8, b"\0"), np.float32).tolist()))
        buf = np.nan_to_num(buf, nan=0.0, posinf=3e38, neginf=-3e38)
        clean = False
    buf = buf.astype(np.complex64)
    zones = modem.demodulate(buf, me=ME)
    _check_zones(zones, buf.size)
    _again(buf, zones)
    if clean:
        mine = ME | {BROADCAST}
        want = [(a.dst, a.payload, a.mcs) for a in allocs if a.dst in mine]
        got = [[(b.dst, b.payload, b.mcs) for b in z.allocations if b.crc_ok] for z in zones]
        check(got == [want] and zones[0].src == src, "clean_zone_not_decoded",
              f"{len(zones)} zones, {len(allocs)} allocations, {len(grants)} grants")
        check(zones[0].grants == [g for g in grants if g.dst in ME], "grants_lost", "")


def _again(iq: np.ndarray, zones: list) -> None:
    """The same buffer with the first burst found named as had before (a receiver re-scanning
    an overlap, ``known=``): every burst found then is another one, and well formed (a
    candidate lies within a CP of its burst's start, and none from a CP before the known
    start to a CP before its end is decoded); and searched only around that burst's start
    (``starts=``): well formed."""
    if not zones:
        return
    first = zones[0]
    end = first.start + first.n_samples
    again = _modem.demodulate(iq, me=ME, known=[(first.start, end)])
    _check_zones(again, iq.size)
    ng = _modem.grid.cp
    check(all(z.start < first.start or z.start >= end - 2 * ng for z in again),
          "known_burst_decoded_again", f"{len(again)} zones")
    # the search only where the first burst starts (a locked receiver's starts=)
    _check_zones(_modem.demodulate(iq, me=ME, starts=[(first.start - 64, first.start + 64)]),
                 iq.size)


def one_input(data: bytes) -> None:
    """Demodulate the IQ described by ``data`` (see the module docstring)."""
    assert _modem is not None
    r = Reader(data)
    mode = r.below(3)
    if mode == 0:
        raw = np.frombuffer(r.rest(), np.int8).astype(np.float32) / np.float32(64.0)
        iq = raw[: raw.size // 2 * 2].view(np.complex64)
        _check_zones(_modem.demodulate(iq, me=ME), iq.size)
    elif mode == 1:
        raw = r.rest()
        iq = np.frombuffer(raw[: len(raw) // 8 * 8], np.complex64)
        if iq.size:  # repeated up to a burst's length, so that extreme values reach the receiver
            iq = np.resize(iq, max(iq.size, 6 * _modem.grid.symbol_samples))
        _check_zones(_modem.demodulate(iq, me=ME), iq.size)
    else:
        _crafted(r)
