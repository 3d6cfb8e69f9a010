"""relaysec.demod_worker: a node's demodulation in its own process -- same bursts as in-process,
answers in order, the shared ring never overwritten under a pending pass, failures raised."""

from __future__ import annotations

import numpy as np
import pytest

import phy
from phy import channel as ch
from relaysec.demod_worker import DemodError, DemodWorker


@pytest.fixture(scope="module")
def zone_buf() -> np.ndarray:
    zm = phy.ZoneModem("P2.5")
    rng = np.random.default_rng(7)
    zone = zm.modulate([phy.Allocation(0x102, rng.bytes(200), "16QAM-3/4"),
                        phy.Allocation(0x103, rng.bytes(80), "QPSK-1/2")], src=1)
    pad = np.zeros(700, np.complex64)
    return ch.awgn(np.concatenate([pad, zone, pad]), 1e-4, rng).astype(np.complex64)


def test_the_worker_finds_what_the_node_would_in_order_and_keeps_pending_regions(zone_buf):
    zm = phy.ZoneModem("P2.5")
    want = zm.demodulate(zone_buf, me={0x102})
    w = DemodWorker("P2.5", ring_samples=3 * zone_buf.size)
    try:
        w.wait_ready()
        assert w.ready()
        n = zone_buf.size
        seqs = [w.submit(zone_buf, [(0, n)], frozenset({0x102}), tag) for tag in "abc"]
        assert seqs == [1, 2, 3] and w.pending == 3
        # the ring holds three passes: a fourth would overwrite one not answered yet
        assert w.submit(zone_buf, [(0, n)], frozenset({0x102})) is None
        got = []
        while w.pending:
            got += w.results(wait_s=10.0)
        assert [tag for tag, _ in got] == ["a", "b", "c"]          # each pass's own tag
        for _seq, outs in got:
            (start, bursts), = outs
            assert start == 0 and len(bursts) == len(want) == 1
            b, a = bursts[0], want[0]
            assert (b.src, b.start, len(b.allocations)) == (a.src, a.start, 1)
            assert b.allocations[0].payload == a.allocations[0].payload
            assert b.allocations[0].crc_ok
        # answered: the ring takes passes again (from its start), windows in order
        assert w.submit(zone_buf, [(0, 400), (400, n)], frozenset({0x103}), 1234) == 4
        (tag, outs), = w.results(wait_s=10.0)
        assert tag == 1234 and [a for a, _ in outs] == [0, 400]
        assert sum(len(b) for _, b in outs) == 1          # the burst lies in the second window
        assert w.cpu_s > 0
        with pytest.raises(ValueError, match="does not fit"):
            w.submit(np.zeros(3 * n + 1, np.complex64), [(0, 10)], frozenset({1}))
    finally:
        w.close()
        w.close()                                          # idempotent


def test_a_failed_pass_is_raised_not_swallowed(zone_buf):
    w = DemodWorker("P2.5", ring_samples=zone_buf.size)
    try:
        w.wait_ready()
        w.submit(zone_buf, [(0, zone_buf.size)], frozenset({-5}))   # not an address
        with pytest.raises(DemodError, match="PhyInputError"):
            w.results(wait_s=10.0)
    finally:
        w.close()


def test_a_worker_that_cannot_start_says_so():
    w = DemodWorker("no-such-profile")
    try:
        with pytest.raises(DemodError, match=r"exited|did not start"):
            w.wait_ready(timeout_s=30.0)
    finally:
        w.close()


def test_a_worker_that_stops_answering_fails_the_run_instead_of_hanging_it():
    """OtaNetwork._submit: while the worker's ring is full it applies the answers that come;
    when none come for the stall time it raises DemodError (a stuck worker would otherwise
    hang the trial), and a worker that answers lets the pass through."""
    from types import SimpleNamespace

    from relaysec.ota import OtaNetwork

    class Full:
        def __init__(self, answers_after: int | None) -> None:
            self.tries, self.answers_after = 0, answers_after

        def submit(self, buf, windows, me, tag=None):
            self.tries += 1
            if self.answers_after is not None and self.tries > self.answers_after:
                return 7
            return None

        def results(self, wait_s=0.0):
            return []

    net = OtaNetwork.__new__(OtaNetwork)
    node = SimpleNamespace(name="AMS", _addresses=lambda: (5,))
    st = SimpleNamespace(node=node, worker=Full(None))
    with pytest.raises(DemodError, match=r"answered nothing for 0\.2 s"):
        net._submit(st, np.zeros(8, np.complex64), [(0, 8)], 0, stall_s=0.2)
    st.worker = Full(answers_after=3)                  # room again after a few tries
    assert net._submit(st, np.zeros(8, np.complex64), [(0, 8)], 0, stall_s=5.0) == 7
