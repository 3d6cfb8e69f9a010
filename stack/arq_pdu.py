"""ARQ PDUs (docs/roles.md §11): the wire format of :mod:`stack.arq` and its strict codec.

Wire format (every field big-endian; ``stack.errors.MalformedError`` with reason ``bad_arq`` on
anything else):

=========  ======================================================================
DATA       ``0x01 | 000000 BSN(10) | SDU (1 byte or more)``
FEEDBACK   ``0x02 | 000000 ACK_BSN(10) | N(1, 0..64) | bitmap (N bytes)``: every block before
           ACK_BSN was received; bit *i* of the bitmap (MSB first) = block ACK_BSN+1+i received
DISCARD    ``0x03 | 000000 BSN(10)``: the sender gave up every block before BSN (lifetime)
DATA+ACK   ``0x04 | 000000 BSN(10) | 000000 ACK_BSN(10) | N(1, 0..64) | bitmap (N bytes) |
           SDU (1 byte or more)``: a block with the FEEDBACK of the reverse direction of its
           connection piggybacked (16m carries ARQ feedback in an extended header of a data
           MPDU [R]; here inside the envelope, like the rest)
=========  ======================================================================

**Piggybacking** [D]: a station owing a FEEDBACK on a connection rides it on the first data
MPDU of the same connection still waiting (unsealed) in its queue, rewriting that block as
DATA+ACK, and sends a FEEDBACK MPDU of its own only when no such block waits. With traffic both
ways a feedback then costs 3 + N bytes instead of an MPDU (header, PN, ICV) and, on the uplink,
a granted slot of its own. A retransmission of the block goes out as plain DATA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stack.errors import MalformedError

BSN_BITS = 10
BSN_MODULUS = 1 << BSN_BITS
"""Block sequence numbers are 10 bits (16m ARQ_BSN_MODULUS 1024 [R]); the window is at most
half of it so that an old block can never be mistaken for a new one."""
MAX_WINDOW = BSN_MODULUS // 2
MAX_BITMAP_BYTES = 64
"""Selective-ACK bitmap: at most 512 blocks after ACK_BSN (one window)."""

DATA = 0x01
FEEDBACK = 0x02
DISCARD = 0x03
DATA_ACK = 0x04
DATA_OVERHEAD = 3
"""Bytes an ARQ DATA header adds to an SDU."""

_REASON = "bad_arq"


# -- wire format ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArqData:
    """One block: BSN and the SDU it carries."""

    bsn: int
    sdu: bytes = field(repr=False)

    def encode(self) -> bytes:
        return bytes([DATA]) + _bsn(self.bsn) + self.sdu


@dataclass(frozen=True)
class ArqFeedback:
    """Cumulative ACK (every block before ``ack_bsn``) plus a selective bitmap after it."""

    ack_bsn: int
    bitmap: bytes = b""

    def encode(self) -> bytes:
        if len(self.bitmap) > MAX_BITMAP_BYTES:
            raise MalformedError("ARQ bitmap too long", reason=_REASON)
        return bytes([FEEDBACK]) + _bsn(self.ack_bsn) + bytes([len(self.bitmap)]) + self.bitmap

    def acked(self) -> list[int]:
        """Offsets after ``ack_bsn`` (1-based) the bitmap marks as received."""
        return [8 * i + b + 1 for i, byte in enumerate(self.bitmap) for b in range(8)
                if byte & (0x80 >> b)]


@dataclass(frozen=True)
class ArqDiscard:
    """The sender gave up every block before ``bsn``."""

    bsn: int

    def encode(self) -> bytes:
        return bytes([DISCARD]) + _bsn(self.bsn)


@dataclass(frozen=True)
class ArqDataAck:
    """A block with the reverse direction's feedback piggybacked (DATA+ACK)."""

    data: ArqData
    feedback: ArqFeedback

    def encode(self) -> bytes:
        fb = self.feedback
        if len(fb.bitmap) > MAX_BITMAP_BYTES:
            raise MalformedError("ARQ bitmap too long", reason=_REASON)
        return b"".join((bytes([DATA_ACK]), _bsn(self.data.bsn), _bsn(fb.ack_bsn),
                         bytes([len(fb.bitmap)]), fb.bitmap, self.data.sdu))


ArqPdu = ArqData | ArqFeedback | ArqDiscard | ArqDataAck


def _bsn(v: int) -> bytes:
    if not 0 <= v < BSN_MODULUS:
        raise MalformedError(f"BSN {v} outside 0..{BSN_MODULUS - 1}", reason=_REASON)
    return v.to_bytes(2, "big")


def _read_bsn(data: bytes) -> int:
    v = int.from_bytes(data[1:3], "big")
    if v >= BSN_MODULUS:
        raise MalformedError("ARQ BSN with reserved bits set", reason=_REASON)
    return v


def decode_arq(data: bytes) -> ArqPdu:
    """Parse one ARQ PDU (strict: unknown type, reserved bits, short or trailing bytes raise
    :class:`MalformedError` with reason ``bad_arq``)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedError("ARQ PDU must be bytes", reason=_REASON)
    data = bytes(data)
    if len(data) < 3:
        raise MalformedError(f"ARQ PDU of {len(data)} bytes", reason=_REASON)
    kind, bsn = data[0], _read_bsn(data)
    if kind == DATA:
        if len(data) == 3:
            raise MalformedError("ARQ DATA without an SDU", reason=_REASON)
        return ArqData(bsn, data[3:])
    if kind == FEEDBACK:
        if len(data) < 4 or data[3] > MAX_BITMAP_BYTES or len(data) != 4 + data[3]:
            raise MalformedError("ARQ FEEDBACK length does not match its bitmap",
                                 reason=_REASON)
        return ArqFeedback(bsn, data[4:])
    if kind == DISCARD:
        if len(data) != 3:
            raise MalformedError("ARQ DISCARD with trailing bytes", reason=_REASON)
        return ArqDiscard(bsn)
    if kind == DATA_ACK:
        if len(data) < 6 or data[5] > MAX_BITMAP_BYTES or len(data) <= 6 + data[5]:
            raise MalformedError("ARQ DATA+ACK shorter than its bitmap and one SDU byte",
                                 reason=_REASON)
        ack = _read_bsn(data[2:])
        end = 6 + data[5]
        return ArqDataAck(ArqData(bsn, data[end:]), ArqFeedback(ack, data[6:end]))
    raise MalformedError(f"unknown ARQ PDU type {kind:#04x}", reason=_REASON)


__all__ = ["BSN_BITS", "BSN_MODULUS", "DATA", "DATA_ACK", "DATA_OVERHEAD", "DISCARD", "FEEDBACK",
           "MAX_BITMAP_BYTES", "MAX_WINDOW", "ArqData", "ArqDataAck", "ArqDiscard",
           "ArqFeedback", "ArqPdu", "decode_arq"]
