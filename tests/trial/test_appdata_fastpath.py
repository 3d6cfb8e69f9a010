"""relaysec.appdata fast paths: packet bodies drawn straight from the PCG64 stream, and a flow
that keeps the packets it sent to check them on arrival. Packet bytes are part of the trace, so
both must give exactly the bytes of the plain definition (a Generator's uint8 draw, generated
again at every check), kept here as the reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from relaysec.appdata import IN_FLIGHT_KEPT, OVERHEAD, Flow, body_bytes, make_packet


def reference_packet(seed: int, flow: int, seq: int, body_len: int) -> bytes:
    """Flow.expected as it was: a Generator seeded by (seed, flow, seq), body_len uint8s."""
    rng = np.random.default_rng([seed, flow, seq])
    return make_packet(flow, seq, rng.integers(0, 256, body_len, dtype=np.uint8).tobytes())


@settings(max_examples=500)
@given(st.integers(0, 2**64 - 1), st.integers(0, 0xFFFF), st.integers(0, 2**40),
       st.integers(0, 2100))
def test_body_bytes_are_the_generators_uint8_draw(seed, flow, seq, n):
    rng = np.random.default_rng([seed, flow, seq])
    assert body_bytes(seed, flow, seq, n) == rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def test_body_bytes_of_the_default_trials_flows():
    """Every length 0..1500 and the first packets of the default seeds' flows, exhaustively."""
    for n in range(1501):
        assert body_bytes(1, 2, n, n) == \
            np.random.default_rng([1, 2, n]).integers(0, 256, n, dtype=np.uint8).tobytes()
    for seed in (1, 2, 3):
        for flow in range(1, 9):
            for seq in range(64):
                f = Flow(flow, "x", 500, seed)
                assert f.expected(seq) == reference_packet(seed, flow, seq, 500 - OVERHEAD)


def test_a_flow_checks_arrivals_against_what_it_sent_kept_or_not():
    """ok / duplicate / corrupted as before: a kept packet, one let go (delivered once, or
    pushed out past IN_FLIGHT_KEPT) and a forged one are all judged by the same bytes."""
    f = Flow(7, "ABS->AMS", 80, seed=11)
    sent = []
    for i in range(IN_FLIGHT_KEPT + 40):
        p = f.peek()
        assert p == reference_packet(11, 7, i, 80 - OVERHEAD)
        f.mark_sent(i * 0.001)
        sent.append(p)
    assert len(f._in_flight) == IN_FLIGHT_KEPT          # the oldest 40 were let go
    assert f.deliver(sent[0], 2.0) == "ok"              # generated again
    assert f.deliver(sent[-1], 2.0) == "ok"             # kept
    assert f.deliver(sent[-1], 2.1) == "duplicate"      # let go at the first delivery
    assert f.deliver(sent[0], 2.1) == "duplicate"
    forged = bytearray(sent[5])
    forged[OVERHEAD + 3] ^= 0x40
    assert f.deliver(bytes(forged), 2.2) == "corrupted"
    wrong = reference_packet(12, 7, 6, 80 - OVERHEAD)  # intact, another seed's bytes
    assert f.deliver(wrong, 2.2) == "corrupted"
    assert f.deliver(sent[6], 2.3) == "ok"
    s = f.stats
    assert (s.delivered_packets, s.duplicate_packets, s.corrupted_packets) == (3, 2, 2)
