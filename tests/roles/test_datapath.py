"""The roles' data path: MPDUs of a frame sealed in one batch call (stack.mac) or one by one
(stack.mpdu.protect) -- same bytes on the air either way."""

from __future__ import annotations

import pytest

from stack.roles import DataReceived, SecurityMode
from stack.roles import base as base_mod
from tests.roles.harness import ABS, AMS, ARS1, enter_all

D, C = SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED


def _scenario(mode, batch: bool):
    net, abs_, ars1, ars2, ams = enter_all(mode)
    for r in (abs_, ars1, ars2, ams):
        r.batch_seal = batch
    net.start_recording()
    start = len(net.log)
    for i in range(10):  # a burst's worth queued before the next TX opportunity
        ams.send_data(ABS, b"up-%d" % i, net.now)
        abs_.send_data(AMS, b"dn-%d" % i, net.now)
    ars1.send_data(ABS, b"ars-own", net.now)
    abs_.send_data(ARS1, b"to-ars", net.now)
    net.settle(1.0)
    return net, net.log[start:]


@pytest.mark.parametrize("mode", [D, C])
def test_batch_and_per_mpdu_paths_put_identical_bytes_on_the_air(mode):
    net_b, log_b = _scenario(mode, True)
    net_p, log_p = _scenario(mode, False)
    assert log_b == log_p
    for net in (net_b, net_p):
        assert [e.payload for e in net.of(ABS, DataReceived, src=AMS)] == \
               [b"up-%d" % i for i in range(10)]
        assert [e.payload for e in net.of(AMS, DataReceived)] == [b"dn-%d" % i for i in range(10)]
        assert [e.payload for e in net.of(ABS, DataReceived, src=ARS1)] == [b"ars-own"]
        assert [e.payload for e in net.of(ARS1, DataReceived)] == [b"to-ars"]


def test_one_seal_batch_call_per_frame(monkeypatch):
    calls = []
    orig = base_mod.build_burst

    def spy(stid, mpdus, **kw):
        calls.append((stid, len(mpdus), kw["uplink"]))
        return orig(stid, mpdus, **kw)

    monkeypatch.setattr(base_mod, "build_burst", spy)
    net, abs_, ars1, _ars2, ams = enter_all(D)
    calls.clear()
    for i in range(10):
        ams.send_data(ABS, b"up-%d" % i, net.now)
    frames = ams.frames_to_send(net.now)
    assert len(frames) == 1 and frames[0][0] == ARS1
    assert calls == [(ams.stid, 10, True)]       # ten MPDUs, one batch call
    calls.clear()
    ars1.receive(AMS, frames[0][1], net.now)
    [(dst, relay)] = ars1.frames_to_send(net.now)  # re-protected per hop for the relay link
    assert dst == ABS and calls == [(ars1.stid, 10, True)]
    abs_.receive(ARS1, relay, net.now)
    got = [e.payload for e in abs_.events() if isinstance(e, DataReceived)]
    assert got == [b"up-%d" % i for i in range(10)]


def test_unsealable_mpdus_are_dropped_and_counted_not_raised():
    net, _abs, _ars1, _ars2, ams = enter_all(D)
    ams.send_data(ABS, b"x", net.now)
    sa = ams.link.sa
    for st in sa._live:            # simulate a PN space used up on both TEKs
        st.tx_last[True] = sa.pn_last
    assert ams.frames_to_send(net.now) == []
    assert ams.tx_dropped["no_usable_tek"] == 1
