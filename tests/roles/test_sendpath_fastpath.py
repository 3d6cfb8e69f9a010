"""stack.roles.link.sealed_bytes: a queue's bytes on the air, as ``sum(map(len, items))`` counts
them (kept here as the reference), without a Python ``__len__`` per pending MPDU; and
``SendPath.backlog`` built on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stack.mpdu import PROTECTED_OVERHEAD
from stack.roles.framing import FID_CONTROL, mpdu_fid
from stack.roles.link import PendingMpdu, sealed_bytes
from stack.roles.sendpath import Backlog, SendPath


@dataclass(eq=False, repr=False, slots=True)
class _Padded(PendingMpdu):
    """A subclass with a length of its own: counted by its ``__len__``, not the formula."""

    def __len__(self) -> int:
        return 1000 + len(self.payload)


def _payload(kind: str, n: int) -> object:
    data = bytes(range(256)) * (n // 256 + 1)
    return {"bytes": data[:n], "bytearray": bytearray(data[:n]),
            "memoryview": memoryview(data[:n]), "u8": np.frombuffer(data[:n], np.uint8),
            "i16": np.zeros(n, np.int16)}[kind]


entries = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda kind, n, fid: PendingMpdu(fid=fid, payload=_payload(kind, n)),
              st.sampled_from(["bytes", "bytearray", "memoryview", "u8", "i16"]),
              st.integers(0, 1500), st.integers(0, 15)),
    st.builds(lambda n: _Padded(fid=2, payload=bytes(n)), st.integers(0, 50)))


@given(st.lists(entries, max_size=20))
def test_sealed_bytes_is_the_sum_of_the_lengths(items):
    assert sealed_bytes(items) == sum(map(len, items))
    assert sealed_bytes(iter(items)) == sum(map(len, items))


def test_a_pending_mpdu_counts_its_sealed_overhead():
    p = PendingMpdu(fid=2, payload=bytes(100))
    assert len(p) == sealed_bytes([p]) == 100 + PROTECTED_OVERHEAD
    p.payload = bytes(40)            # the queue rewrites a block as DATA+ACK in place
    assert sealed_bytes([p, b"\x00" * 7]) == 40 + PROTECTED_OVERHEAD + 7


class _Queues(SendPath):
    def __init__(self, out: dict[int, list[bytes | PendingMpdu]]) -> None:
        self._out = out


def reference_backlog(out: dict[int, list[bytes | PendingMpdu]]) -> dict[int, Backlog]:
    """SendPath.backlog as it was: ``sum(map(len, items))`` per queue."""
    want = {}
    for dst, items in out.items():
        if items:
            head = items[0]
            control = not isinstance(head, PendingMpdu) and mpdu_fid(head) == FID_CONTROL
            want[dst] = Backlog(sum(map(len, items)), len(head), control)
    return want


clear_mpdus = st.builds(lambda fid, body: bytes([fid << 4, 0, 0]) + body,
                        st.integers(0, 15), st.binary(max_size=100))


@given(st.dictionaries(st.integers(0, 9),
                       st.lists(st.one_of(entries.filter(lambda x: not isinstance(x, bytes)),
                                          clear_mpdus), max_size=6),
                       max_size=5))
def test_backlog_reports_each_queue_as_before(out):
    got = _Queues(out).backlog()
    assert got == reference_backlog(out)
    assert all(type(b) is Backlog for b in got.values())
