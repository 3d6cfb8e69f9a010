"""Replay campaign (issue 17, "Done when"): every frame put on the air over full life cycles --
entry of two ARSs and an AMS, data both ways, TEK refresh, handover with AK pre-distribution and
back on demand, re-authentication -- in both security modes, with and without relay-control
encryption, is replayed to its receiver, singly and all together, at two checkpoints. No replay
changes any station's keys, attachment or counters, delivers data, or stops later traffic.
The counts are printed (``-s``) and quoted in docs/threat-model.md."""

from __future__ import annotations

from collections import Counter

import pytest

from stack.roles import (
    AkTransferred,
    Attached,
    DataReceived,
    HandoverComplete,
    KeysInstalled,
    SecurityMode,
)
from tests.roles.harness import ABS, AMS, ARS1, ARS2, enter_all

STATIONS = (ABS, ARS1, ARS2, AMS)
SUCCESS = (KeysInstalled, Attached, HandoverComplete, AkTransferred, DataReceived)


def state(net) -> tuple:
    """Everything a replay must not change: keys of every link end, attachment, counts."""
    abs_, ars1, ars2, ams = (net.roles[s] for s in STATIONS)
    keys = [abs_.key_info(p) for p in (ARS1, ARS2, AMS)]
    keys += [r.key_info(p) for r in (ars1, ars2) for p in (None, AMS)]
    c = abs_.context(AMS)
    return (tuple(keys), ams.key_info(), ams.serving, ams.cmac_key_count, ams.phase,
            abs_.via_of(AMS), c.count if c else None, ars1.serves(AMS), ars2.serves(AMS),
            abs_.state_size()["contexts"])


def exchange(net, tag: bytes) -> bool:
    abs_, ams = net.roles[ABS], net.roles[AMS]
    n_up, n_down = len(net.of(ABS, DataReceived, src=AMS)), len(net.of(AMS, DataReceived))
    ams.send_data(ABS, b"up " + tag, net.now)
    abs_.send_data(AMS, b"down " + tag, net.now)
    for _ in range(20):
        net.step()
        net.now += 0.001
    return ([e.payload for e in net.of(ABS, DataReceived, src=AMS)[n_up:]] == [b"up " + tag]
            and [e.payload for e in net.of(AMS, DataReceived)[n_down:]] == [b"down " + tag])


def life_cycle(mode, enc, at_checkpoint):
    """A cell through entry, data, TEK refresh, handover there and back, re-authentication;
    ``at_checkpoint(net)`` runs while the AMS is at ARS-2."""
    net, abs_, _ars1, _ars2, ams = enter_all(mode, encrypt_relay_control=enc)
    net.start_recording()
    assert exchange(net, b"entry")
    ams._start_refresh(net.now)
    net.settle(1.0)
    assert exchange(net, b"tek")
    if mode == SecurityMode.DISTRIBUTED:
        abs_.prepare_handover(AMS, [ARS2], net.now)
        net.settle(1.0)
    ams.handover(ARS2, net.now)
    net.settle(2.0)
    assert ams.serving == ARS2 and exchange(net, b"ars2")
    checkpoint = len(net.log)
    at_checkpoint(net)
    ams.handover(ARS1, net.now)
    net.settle(2.0)
    assert ams.serving == ARS1 and exchange(net, b"back")
    ams.reauthenticate(net.now)
    net.settle(3.0)
    assert net.of(AMS, KeysInstalled, cause="reauth") and exchange(net, b"reauth")
    return net, checkpoint


def replay(net, frames, *, singly: bool) -> Counter:
    """Deliver recorded ``(src, dst, frame)`` again; return the receivers' new rejections."""
    before = Counter()
    for s in STATIONS:
        before.update(net.roles[s].rejections)
    ref = state(net)
    net.drain()
    n_success = sum(len([e for e in net.events[s] if isinstance(e, SUCCESS)]) for s in STATIONS)
    batches = [[f] for f in frames] if singly else [frames]
    for batch in batches:
        for src, dst, frame in batch:
            net.roles[dst].receive(src, frame, net.now)
        for _ in range(6):  # whatever the replays provoke is delivered too (no timers run)
            net.step()
            net.now += 0.001
        assert state(net) == ref, (src, dst, frame.hex())
    net.drain()
    assert sum(len([e for e in net.events[s] if isinstance(e, SUCCESS)])
               for s in STATIONS) == n_success
    after = Counter()
    for s in STATIONS:
        after.update(net.roles[s].rejections)
    after.subtract(before)
    return +after


@pytest.mark.parametrize("enc", [False, True], ids=["clear_relay_ctl", "sealed_relay_ctl"])
@pytest.mark.parametrize("mode", [SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED])
def test_replays_of_whole_life_cycles_change_nothing(mode, enc):
    totals: Counter = Counter()
    counts = []

    def recorded(net):
        return list(dict.fromkeys((s, d, f) for _t, s, d, f in net.log if d in net.roles))

    def mid(net):  # checkpoint 1: at ARS-2, everything so far replayed singly
        frames = recorded(net)
        totals.update(replay(net, frames, singly=True))
        counts.append(len(frames))
        assert exchange(net, b"after replay at ARS-2")

    net, _checkpoint = life_cycle(mode, enc, mid)
    unique = recorded(net)
    # checkpoint 2: the end of the cycle (stale keys, counts and transaction ids): the whole
    # cycle singly, then all of it at once
    for singly in (True, False):
        totals.update(replay(net, unique, singly=singly))
        counts.append(len(unique))
        assert exchange(net, b"after replay %s" % (b"singly" if singly else b"together"))
    print(f"\n{mode.value}/{'sealed' if enc else 'clear'}: {len(unique)} distinct frames "
          f"recorded, {sum(counts)} replayed; rejections {dict(totals.most_common())}")
    assert sum(totals.values()) > len(unique)  # they were seen, and refused
