"""End-to-end payload integrity: application packets carrying a sequence number and a digest.

Every application packet is ``magic(2) | flow(2) | seq(4) | length(2) | body | digest(8)``, where
the digest is BLAKE2b-64 over everything before it and the body is seeded pseudo-random data
(:func:`body_bytes`). The sink checks each delivered packet against what the source sent, so the
trial can state exactly how many bytes were sent, delivered, lost and *corrupted* (delivered but
different from what was sent; the security layer must make this 0) and how many were delivered
twice (a replay that got through).
This is an application-level check independent of the CRC and the CCM ICV it is auditing.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from dataclasses import dataclass, field

MAGIC = b"RS"
_HDR = struct.Struct(">2sHIH")
HEADER_BYTES = _HDR.size
DIGEST_BYTES = 8
OVERHEAD = HEADER_BYTES + DIGEST_BYTES
IN_FLIGHT_KEPT = 256
"""Packets a flow keeps after sending them, to check them on arrival without generating them
again (beyond that, the oldest go; a packet not kept is generated again)."""


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


def body_bytes(seed: int, flow: int, seq: int, n: int) -> bytes:
    """The *n* body bytes of packet *seq*: the first *n* bytes of SHAKE-128 of
    ``b"relaysec body <seed> <flow> <seq>"`` (decimal). A function of the three numbers only
    (any host regenerates them), and ~10x cheaper than seeding a numpy generator per packet,
    which was 1-2 % of a simulated trial's CPU."""
    return hashlib.shake_128(b"relaysec body %d %d %d" % (seed, flow, seq)).digest(n)


def make_packet(flow: int, seq: int, body: bytes) -> bytes:
    """One application packet (see module docstring)."""
    head = _HDR.pack(MAGIC, flow & 0xFFFF, seq & 0xFFFFFFFF, len(body))
    return head + body + _digest(head + body)


def parse_packet(data: bytes) -> tuple[int, int, bytes] | None:
    """``(flow, seq, body)`` if *data* is an intact packet, else ``None``."""
    if len(data) < OVERHEAD:
        return None
    magic, flow, seq, length = _HDR.unpack_from(data)
    if magic != MAGIC or len(data) != OVERHEAD + length:
        return None
    if _digest(data[:-DIGEST_BYTES]) != data[-DIGEST_BYTES:]:
        return None
    return flow, seq, data[HEADER_BYTES:-DIGEST_BYTES]


@dataclass
class FlowStats:
    """Byte and packet counters of one application flow (one direction between two stations)."""

    name: str
    sent_packets: int = 0
    sent_bytes: int = 0
    delivered_packets: int = 0
    delivered_bytes: int = 0
    corrupted_packets: int = 0
    corrupted_bytes: int = 0
    duplicate_packets: int = 0
    first_tx: float | None = None
    last_tx: float | None = None
    last_rx: float | None = None
    delivery_times: array[float] = field(default_factory=lambda: array("d"))
    """Arrival time of each delivered packet (8 bytes each: a long soak keeps 100 000s)."""

    @property
    def lost_bytes(self) -> int:
        """Bytes sent but never delivered intact."""
        return self.sent_bytes - self.delivered_bytes

    @property
    def lost_packets(self) -> int:
        return self.sent_packets - self.delivered_packets


class SeqSet:
    """A set of sequence numbers that arrive mostly in order: everything below a watermark,
    plus the few above it (a long soak delivers 100 000s of packets; a plain set kept them all)."""

    def __init__(self) -> None:
        self.low = 0                # every number below is in the set
        self._above: set[int] = set()

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and (0 <= seq < self.low or seq in self._above)

    def add(self, seq: int) -> None:
        """Put *seq* (>= 0) in the set."""
        if seq < self.low:
            return
        self._above.add(seq)
        while self.low in self._above:
            self._above.remove(self.low)
            self.low += 1

    def __len__(self) -> int:
        return self.low + len(self._above)


class Flow:
    """A source and its sink: packets offered at one station and checked where they arrive."""

    def __init__(self, flow_id: int, name: str, payload_bytes: int, seed: int) -> None:
        if payload_bytes < OVERHEAD:
            raise ValueError(f"payload_bytes must be at least {OVERHEAD}")
        self.flow_id = flow_id
        self.body_bytes = payload_bytes - OVERHEAD
        self.stats = FlowStats(name)
        self._seed = seed
        self._seen = SeqSet()
        self._next_seq = 0
        self._pending: bytes | None = None
        self._in_flight: dict[int, bytes] = {}   # seq -> packet, sent and not yet delivered

    def expected(self, seq: int) -> bytes:
        """Packet *seq* of this flow: a function of (seed, flow id, seq) only, so a receiver on
        another host can check what it got without having seen the sender's state."""
        body = body_bytes(self._seed, self.flow_id, seq, self.body_bytes)
        return make_packet(self.flow_id, seq, body)

    def peek(self) -> bytes:
        """The next packet to send (the same bytes until :meth:`mark_sent` is called)."""
        if self._pending is None:
            self._pending = self.expected(self._next_seq)
        return self._pending

    def mark_sent(self, now: float) -> None:
        """The packet from :meth:`peek` was accepted by the stack: count it as sent."""
        pkt = self.peek()
        kept = self._in_flight
        if len(kept) >= IN_FLIGHT_KEPT:
            del kept[next(iter(kept))]
        kept[self._next_seq] = pkt
        self._next_seq += 1
        self._pending = None
        self.stats.sent_packets += 1
        self.stats.sent_bytes += len(pkt)
        if self.stats.first_tx is None:
            self.stats.first_tx = now
        self.stats.last_tx = now

    def deliver(self, data: bytes, now: float) -> str:
        """Check a delivered packet: ``"ok"``, ``"duplicate"`` or ``"corrupted"``."""
        parsed = parse_packet(data)
        if parsed is None or parsed[0] != self.flow_id or self._sent(parsed[1]) != data:
            self.stats.corrupted_packets += 1
            self.stats.corrupted_bytes += len(data)
            return "corrupted"
        seq = parsed[1]
        if seq in self._seen:
            self.stats.duplicate_packets += 1
            return "duplicate"
        self._seen.add(seq)
        self.stats.delivered_packets += 1
        self.stats.delivered_bytes += len(data)
        self.stats.last_rx = now
        self.stats.delivery_times.append(now)
        return "ok"

    def _sent(self, seq: int) -> bytes:
        # what was sent as *seq*: kept since mark_sent (let go now: a second copy is checked
        # against a packet generated again), else generated again
        kept = self._in_flight.pop(seq, None)
        return self.expected(seq) if kept is None else kept

    @property
    def delivered_seqs(self) -> SeqSet:
        """Sequence numbers delivered so far (read only)."""
        return self._seen

    def outstanding(self) -> int:
        """Packets sent and not yet delivered."""
        return self.stats.sent_packets - self.stats.delivered_packets


def flow_of(data: bytes) -> int | None:
    """The flow id a packet claims (unauthenticated; used only to route it to its sink)."""
    if len(data) >= HEADER_BYTES and data[:2] == MAGIC:
        return int.from_bytes(data[2:4], "big")
    return None
