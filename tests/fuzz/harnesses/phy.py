"""The PHY receiver: :meth:`phy.BurstModem.demodulate` on IQ built from the input (profile P2.5,
the Pluto profile, with a small ``max_payload`` to keep each run cheap).

Input: byte 0 picks the mode. Mode 0: the rest is IQ as int8 pairs. Mode 1: the rest is raw
complex64 samples (NaN and infinities included). Mode 2: a crafted burst -- a real burst of the
modem whose 7-byte PHY header may be replaced by arbitrary fields (version, MCS index, length,
src, dst) with a correct or wrong CRC-16, placed after some silence, then optionally truncated,
attenuated or amplified (up to the top of the float32 range), rotated in frequency, noisy,
followed by a copy of itself, or with one sample set to an extreme value. Raw complex64 samples
are repeated up to a burst's length so that extreme values reach the receiver's arithmetic.

Invariants: rejections are :class:`phy.PhyError` (only for malformed arrays: a buffer without a
decodable burst gives ``[]``); every burst reported lies wholly inside the buffer, names a known
MCS, has a payload no longer than ``max_payload`` and 16-bit ids; a genuine burst received clean
(no truncation, noise or rotation) is decoded exactly once, CRC good, same payload and ids.
"""

from __future__ import annotations

import struct

import numpy as np

from phy import BurstModem, Mcs, PhyError, get_mcs, mcs_table
from phy.crc import crc16
from tests.fuzz._core import Reader, check

ALLOWED = (PhyError,)

MAX_PAYLOAD = 96
_MCS = tuple(mcs_table())


class _CraftedModem(BurstModem):
    """A modem whose next burst may carry an arbitrary PHY header (``header``: 7 bytes, and
    whether to spoil its CRC)."""

    header: bytes | None = None
    bad_crc = False

    def _header_bits(self, mcs: Mcs, length: int, src: int, dst: int) -> np.ndarray:
        if self.header is None:
            return super()._header_bits(mcs, length, src, dst)
        crc = crc16(self.header) ^ (0x1234 if self.bad_crc else 0)
        return np.unpackbits(np.frombuffer(self.header + struct.pack(">H", crc), np.uint8))


_modem: _CraftedModem | None = None


def setup() -> None:
    """Build the modem once (its tables and numba kernels are the expensive part)."""
    global _modem
    _modem = _CraftedModem("P2.5", "QPSK-1/2", max_payload=MAX_PAYLOAD)
    _modem.demodulate(_modem.modulate(b"warm-up", src=1, dst=2))


def _check_bursts(bursts: list, n: int) -> None:
    for b in bursts:
        check(b.start >= 0 and b.start + b.n_samples <= n and b.n_samples > 0, "burst_outside",
              f"start {b.start} len {b.n_samples} of {n}")
        check(b.mcs in _MCS, "unknown_mcs", b.mcs)
        check(len(b.payload) <= MAX_PAYLOAD, "payload_too_long", str(len(b.payload)))
        check(0 <= b.src <= 0xFFFF and 0 <= b.dst <= 0xFFFF, "bad_ids", "")
        repr(b)


def _crafted(r: Reader) -> None:
    modem = _modem
    assert modem is not None
    modem.mcs = get_mcs(r.below(len(_MCS)))
    src, dst = r.u16(), r.u16()
    payload = r.blob(MAX_PAYLOAD)
    genuine = r.below(4) != 0
    modem.header = None if genuine else bytes(r.take(7)).ljust(7, b"\0")
    modem.bad_crc = not genuine and r.flag()
    try:
        iq = modem.modulate(payload, src=src, dst=dst)
    finally:
        modem.header, modem.bad_crc = None, False
    lead = 64 + r.u8() * 4
    buf = np.concatenate([np.zeros(lead, np.complex64), iq, np.zeros(64, np.complex64)])
    clean = genuine
    how = r.u8()
    if how & 1:  # truncated
        buf = buf[: r.u16() % (buf.size + 1)]
        clean = False
    if how & 2:  # attenuated (down to noise level of the float grid)
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
    bursts = modem.demodulate(buf.astype(np.complex64))
    _check_bursts(bursts, buf.size)
    if clean:
        got = [(b.payload, b.src, b.dst) for b in bursts if b.crc_ok]
        check(got == [(payload, src, dst)], "clean_burst_not_decoded",
              f"{len(bursts)} bursts, {len(payload)} B payload, mcs {modem.mcs.name}")


def one_input(data: bytes) -> None:
    """Demodulate the IQ described by ``data`` (see the module docstring)."""
    assert _modem is not None
    r = Reader(data)
    mode = r.below(3)
    if mode == 0:
        raw = np.frombuffer(r.rest(), np.int8).astype(np.float32) / np.float32(64.0)
        iq = raw[: raw.size // 2 * 2].view(np.complex64)
        _check_bursts(_modem.demodulate(iq), iq.size)
    elif mode == 1:
        raw = r.rest()
        iq = np.frombuffer(raw[: len(raw) // 8 * 8], np.complex64)
        if iq.size:  # repeated up to a burst's length, so that extreme values reach the receiver
            iq = np.resize(iq, max(iq.size, 6 * _modem.grid.symbol_samples))
        _check_bursts(_modem.demodulate(iq), iq.size)
    else:
        _crafted(r)
