"""Bounded state under a flood of spoofed entries (issue 11, "Done when"): 10 000 initial
RNG-REQs from invented station ids, straight at the ABS and through an ARS, while a real ARS and
AMS enter. Half-open state stays under its caps, the legitimate entries succeed, and once the
spoofed attempts expire the ABS holds no state of them (its tables list the three real stations
only; tracemalloc shows what is left is table capacity bounded by the caps)."""

from __future__ import annotations

import gc
import os
import tracemalloc

from stack.pkm import messages as m
from stack.roles import SecurityMode
from stack.roles.framing import control_mpdu
from stack.roles.ids import station_bytes
from stack.roles.memnet import Net
from tests.roles.harness import ABS, AMS, ARS1, ARS2, build, same_keys

N_SPOOFED = 10_000


def _spoof(fake: int, target: int) -> bytes:
    return control_mpdu(m.RngReq(
        purpose=m.RangingPurpose.INITIAL_ENTRY, cmac_key_count=0,
        target_id=station_bytes(target), amsid=station_bytes(fake), nonce_ams=os.urandom(6),
        stid=None, serving_id=None).encode())


def _traced(pattern: str) -> int:
    """Bytes allocated since tracing started, still alive, in files matching ``pattern``."""
    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, pattern)])
    return sum(s.size for s in snap.statistics("filename"))


def _flood(net, abs_, ars2, first: int, on_half=None) -> None:
    """N_SPOOFED spoofed entries, 2000 a second, while the air runs (one 1 ms hop per two)."""
    t0 = net.now
    for i in range(N_SPOOFED):
        fake = first + i
        abs_.receive(fake, _spoof(fake, ABS), net.now)          # straight at the ABS
        ars2.receive(fake, _spoof(fake, ARS2), net.now)         # through an ARS
        if i % 2 == 1:
            net.step()
            net.log.clear()                                     # the test network's own log
            for r in net.roles.values():
                r.events()                                      # as the node runtime drains
            net.now = t0 + (i + 1) / 2000
            if on_half is not None and i == N_SPOOFED // 2 + 1:
                on_half()


def _expire(net, abs_) -> None:
    net.settle(abs_.config.entry_timeout_for(abs_.timers) + 1.0)
    net.log.clear()
    for r in net.roles.values():
        r.events()


def test_ten_thousand_spoofed_entries_leave_no_state_and_lock_nobody_out():
    abs_, ars1, ars2, ams = build(SecurityMode.DISTRIBUTED)
    net = Net({ABS: abs_, ARS1: ars1, ARS2: ars2, AMS: ams})
    ars2.attach(ABS, 0.0)
    net.settle(5.0)
    tracemalloc.start()
    try:
        ars1.attach(ABS, net.now)
        _flood(net, abs_, ars2, 0x0FA0_0000_0000,
               on_half=lambda: ams.attach(ARS1, net.now))  # the real AMS enters mid-flood
        during = _traced("*/stack/roles/abs*.py")   # abs.py and its modules (abs_entry, ...)
        net.settle(10.0)
        assert ars1.phase == "operational" and ams.phase == "operational"
        assert same_keys(ams.key_info(), ars1.key_info(AMS))
        assert abs_.peak_half_open <= abs_.config.max_half_open
        assert abs_.rejections["no_stid"] == 0
        assert ars2.state_size()["entries"] <= ars2.config.max_known_stations
        assert ars2.rejections["rate_limited"] > N_SPOOFED * 0.9  # the ARS relayed few
        _expire(net, abs_)
        size = abs_.state_size()
        assert size["entries"] == 0 and size["stars"] == size["contexts"] == 3
        assert size["stids"] == 3 and size["pending"] == 0
        after, abs_after = _traced("*/stack/*"), _traced("*/stack/roles/abs*.py")
    finally:
        tracemalloc.stop()
    # What is left of the flood in the ABS's own code is hash-table capacity sized by the caps
    # (a few tables of max_half_open slots), not anything per spoofed station; the rest of
    # stack/* is the capped rejection counters and the ARS's bounded station memory.
    assert abs_after < 256 * 1024 and during < 4 * 1024 * 1024, (during, abs_after)
    assert during > 64 * 1024   # the filter does see the ABS's code (a split once hid it)
    print(f"\ntracemalloc: ABS (abs*.py) during the flood {during} B, after expiry {abs_after} B; "
          f"all of stack/* after expiry {after} B")
