"""stack.roles.link.sealed_bytes: a queue's bytes on the air, as ``sum(map(len, items))`` counts
them (kept here as the reference), without a Python ``__len__`` per pending MPDU; the
``MpduQueue`` that keeps that count through every list operation; and ``SendPath.backlog``
built on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stack.mpdu import PROTECTED_OVERHEAD
from stack.roles.framing import FID_CONTROL, mpdu_fid
from stack.roles.link import MpduQueue, PendingMpdu, sealed_bytes
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
        self._out = {dst: MpduQueue(items) for dst, items in out.items()}


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


_ops = st.one_of(
    st.tuples(st.just("append"), entries),
    st.tuples(st.just("insert"), st.integers(-8, 8), entries),
    st.tuples(st.just("extend"), st.lists(entries, max_size=4)),
    st.tuples(st.just("iadd"), st.lists(entries, max_size=4)),
    st.tuples(st.just("del"), st.integers(-8, 8)),
    st.tuples(st.just("delslice"), st.integers(-8, 8), st.integers(-8, 8)),
    st.tuples(st.just("setitem"), st.integers(-8, 8), entries),
    st.tuples(st.just("setslice"), st.integers(-8, 8), st.integers(-8, 8),
              st.lists(entries, max_size=3)),
    st.tuples(st.just("pop"), st.integers(-8, 8)),
    st.tuples(st.just("remove"), st.integers(0, 8)),
    st.tuples(st.just("rewrite"), st.integers(0, 8), st.binary(max_size=200)),
    st.tuples(st.just("tail"), st.integers(0, 9)),
    st.tuples(st.just("imul"), st.integers(0, 2)),
    st.tuples(st.just("clear"),),
)


@given(st.lists(entries, max_size=6), st.lists(_ops, max_size=25))
def test_the_queue_keeps_its_count_through_every_list_operation(start, ops):
    """MpduQueue.nbytes is sealed_bytes of what it holds after any sequence of the list
    operations the roles use (and the others a list has), with the same entries in the same
    order as a plain list given the same operations."""
    q, ref = MpduQueue(start), list(start)
    for op, *args in ops:
        if op in ("del", "pop", "setitem") and not -len(ref) <= args[0] < len(ref):
            continue
        if op == "append":
            q.append(args[0])
            ref.append(args[0])
        elif op == "insert":
            q.insert(args[0], args[1])
            ref.insert(args[0], args[1])
        elif op == "extend":
            q.extend(iter(args[0]))
            ref.extend(args[0])
        elif op == "iadd":
            q += args[0]
            ref += args[0]
        elif op == "del":
            del q[args[0]]
            del ref[args[0]]
        elif op == "delslice":
            del q[args[0]:args[1]]
            del ref[args[0]:args[1]]
        elif op == "setitem":
            q[args[0]] = args[1]
            ref[args[0]] = args[1]
        elif op == "setslice":
            q[args[0]:args[1]] = iter(args[2])
            ref[args[0]:args[1]] = args[2]
        elif op == "pop":
            assert q.pop(args[0]) is ref.pop(args[0])
        elif op == "remove":
            if args[0] < len(ref):
                x = ref[args[0]]
                q.remove(x)
                ref.remove(x)
        elif op == "rewrite":
            # (an MPDU is queued once: a rewrite of an object queued twice counts once)
            pend = [x for x in ref if isinstance(x, PendingMpdu)
                    and sum(y is x for y in ref) == 1]
            if pend:
                q.rewrite(pend[args[0] % len(pend)], args[1])
        elif op == "tail":
            cut = min(args[0], len(ref))
            q, ref = MpduQueue.tail(q, cut), ref[cut:]
        elif op == "imul":
            q *= args[0]
            ref *= args[0]
        else:
            q.clear()
            ref.clear()
        assert list(q) == ref and all(a is b for a, b in zip(q, ref, strict=True))
        assert q.nbytes == sealed_bytes(ref) == sum(map(len, ref))
    assert type(q) is MpduQueue


def test_a_queue_survives_pickle_and_deepcopy_with_its_count():
    """A role's snapshot (pickle, protocols 2 and up: a PendingMpdu, slotted, needs them) and
    deepcopy rebuild each queue with its entries and their count (the default list-subclass
    protocol appended the entries before the count was set, or after it: an error, or every
    byte counted twice)."""
    import copy
    import pickle

    q = MpduQueue([b"\x00" * 7, PendingMpdu(fid=2, payload=bytes(100)), b"\x01" * 3])
    copies = [pickle.loads(pickle.dumps(q, protocol=p))
              for p in range(2, pickle.HIGHEST_PROTOCOL + 1)] + [copy.deepcopy(q), copy.copy(q)]
    for c in [*copies, pickle.loads(pickle.dumps(MpduQueue()))]:
        assert type(c) is MpduQueue and c.nbytes == sealed_bytes(c)
    assert all(c.nbytes == q.nbytes == 7 + 100 + PROTECTED_OVERHEAD + 3 for c in copies)
    c = copies[0]
    c.append(b"\x02" * 5)          # the copy keeps counting
    assert c.nbytes == sealed_bytes(c) == q.nbytes + 5
