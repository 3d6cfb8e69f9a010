"""relaysec.appdata: packet bodies are a function of (seed, flow, seq) only -- SHAKE-128 of a
fixed text, checked here against hashlib directly and for independence of the three numbers --
and a flow that keeps the packets it sent checks arrivals by the same bytes as one that
generates them again."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from relaysec.appdata import IN_FLIGHT_KEPT, OVERHEAD, Flow, body_bytes, make_packet


def reference_packet(seed: int, flow: int, seq: int, body_len: int) -> bytes:
    """Packet *seq* by the definition: SHAKE-128 body, header and digest around it."""
    xof = hashlib.shake_128(f"relaysec body {seed} {flow} {seq}".encode())
    return make_packet(flow, seq, xof.digest(body_len))


@settings(max_examples=300)
@given(st.integers(0, 2**64 - 1), st.integers(0, 0xFFFF), st.integers(0, 2**40),
       st.integers(0, 2100))
def test_body_bytes_are_the_shake128_stream_of_seed_flow_and_seq(seed, flow, seq, n):
    body = body_bytes(seed, flow, seq, n)
    assert len(body) == n
    assert make_packet(flow, seq, body) == reference_packet(seed, flow, seq, n)
    # a prefix of the same stream whatever the length asked
    assert body_bytes(seed, flow, seq, n + 7)[:n] == body


def test_each_of_seed_flow_and_seq_changes_the_body():
    """No two of the default trials' first packets share a body (flows and seeds apart)."""
    bodies = {body_bytes(seed, flow, seq, 64)
              for seed in (1, 2, 3) for flow in range(1, 9) for seq in range(64)}
    assert len(bodies) == 3 * 8 * 64
    # "1 23" and "12 3" must not collide: the numbers are separated
    assert body_bytes(1, 23, 4, 32) != body_bytes(12, 3, 4, 32)
    for seed in (1, 2, 3):
        for flow in range(1, 9):
            for seq in range(8):
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
