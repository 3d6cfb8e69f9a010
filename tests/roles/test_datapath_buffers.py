"""The roles' data path works on burst buffers: the frame sent is the sealed burst buffer (one
copy), a received frame is opened in place as one buffer -- with the same bytes and outcomes as
the per-MPDU path, also when ``max_bytes`` splits a queue into several frames."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stack.errors import MalformedError
from stack.mac import TxMpdu
from stack.roles import DataReceived, SecurityMode
from stack.roles import link as link_mod
from stack.roles.base import frame_bounds
from stack.roles.framing import control_mpdu, split_frame
from stack.roles.link import PendingMpdu
from tests.roles.harness import ABS, AMS, ARS1, enter_all

D = SecurityMode.DISTRIBUTED


def _drain(role, cap):
    frames = []
    while out := role.frames_to_send(0.0, cap):
        frames += out
    return frames


def _queue_mixed(ams):
    """Ten data MPDUs of varied sizes with two control MPDUs in between."""
    for i in range(10):
        ams.send_data(ABS, bytes([i]) * (7 + 13 * i), 0.0)
        if i in (3, 6):
            ams._queue(ARS1, control_mpdu(b"ctl-%d" % i))


# The same seeded cell runs twice (once per path) and is compared: each run reuses the
# other's TEKs and PNs by construction, in separate simulations.
@pytest.mark.nonce_reuse_expected
@pytest.mark.parametrize("cap", [None, 140, 300, 600])
def test_frames_identical_to_per_mpdu_path_with_and_without_max_bytes(cap):
    got = {}
    for batch in (True, False):
        _net, _abs, _ars1, _ars2, ams = enter_all(D)
        ams.batch_seal = batch
        _queue_mixed(ams)
        got[batch] = _drain(ams, cap)
    assert got[True] == got[False]
    frames = [f for _d, f in got[True]]
    assert all(type(f) is bytes for f in frames)
    if cap is not None:
        assert len(frames) > 1 and all(len(f) <= cap for f in frames)
    assert len([mp for f in frames for mp in split_frame(f)]) == 12


def test_frames_split_by_max_bytes_are_received_in_order():
    net, _abs, ars1, _ars2, ams = enter_all(D)
    for i in range(10):
        ams.send_data(ABS, b"up-%d" % i + bytes(40), net.now)
    frames = _drain(ams, 120)
    assert len(frames) > 2
    for dst, frame in frames:
        assert dst == ARS1
        ars1.receive(AMS, frame, net.now)
    net.settle(1.0)
    got = [e.payload for e in net.of(ABS, DataReceived, src=AMS)]
    assert got == [b"up-%d" % i + bytes(40) for i in range(10)]


def test_received_run_is_opened_as_one_view_of_the_frame(monkeypatch):
    seen = []
    orig = link_mod.Link.open_many

    def spy(self, mpdus, now=None):
        seen.append((type(mpdus), len(mpdus), getattr(mpdus, "flags", None)))
        return orig(self, mpdus, now)

    monkeypatch.setattr(link_mod.Link, "open_many", spy)
    net, _abs, ars1, _ars2, ams = enter_all(D)
    for i in range(5):
        ams.send_data(ABS, b"up-%d" % i, net.now)
    [(_d, frame)] = ams.frames_to_send(net.now)
    seen.clear()
    ars1.receive(AMS, frame, net.now)
    [(kind, n, flags)] = seen
    assert kind is np.ndarray and n == len(frame) and flags.writeable


def test_pending_mpdu_is_the_txmpdu_build_burst_takes_and_hides_its_payload():
    _net, _abs, _ars1, _ars2, ams = enter_all(D)
    p = ams.link.defer(2, b"secret payload")
    assert isinstance(p, PendingMpdu) and isinstance(p, TxMpdu)
    assert (p.fid, p.stid, p.uplink, len(p)) == (2, ams.link.stid, True, 14 + 13)
    assert "secret" not in repr(p) and "key" not in repr(p).lower()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.binary(max_size=40)), max_size=6),
       st.binary(max_size=5), st.booleans())
def test_frame_bounds_parses_exactly_like_split_frame(mpdus, junk, corrupt):
    frame = b"".join(control_mpdu(p) if fid == 0 else bytes([fid << 4, 2 + len(p)]) + p
                     for fid, p in mpdus)
    if corrupt:
        frame += junk
    try:
        want = split_frame(frame)
    except MalformedError as exc:
        with pytest.raises(MalformedError) as got:
            frame_bounds(frame)
        assert str(got.value) == str(exc) and got.value.reason == exc.reason
        return
    b = frame_bounds(frame)
    assert [frame[x:y] for x, y in itertools.pairwise(b)] == want
