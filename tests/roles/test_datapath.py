"""The roles' data path: MPDUs of a frame sealed in one batch call (stack.mac) or one by one
(stack.mpdu.protect) -- same bytes on the air either way."""

from __future__ import annotations

import pytest

from stack.pkm import messages as m
from stack.roles import DataReceived, SecurityMode
from stack.roles import link as link_mod
from stack.roles import sendpath as sendpath_mod
from stack.roles.framing import FID_CONTROL, mpdu_fid, split_frame
from stack.sa import SecurityAssociation
from tests.roles.harness import ABS, AMS, ARS1, enter_all

D, C = SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED


# how the roles seal: always one build_burst per frame, the default (one by one below
# batch_seal_min MPDUs), or always one by one
SEAL_PATHS = {"batch": (True, 1), "default": (True, None), "per_mpdu": (False, None)}


def _scenario(mode, path: str):
    net, abs_, ars1, ars2, ams = enter_all(mode)
    batch, least = SEAL_PATHS[path]
    for r in (abs_, ars1, ars2, ams):
        r.batch_seal = batch
        if least is not None:
            r.batch_seal_min = least
    net.start_recording()
    start = len(net.log)
    for i in range(10):  # a burst's worth queued before the next TX opportunity
        ams.send_data(ABS, b"up-%d" % i, net.now)
        abs_.send_data(AMS, b"dn-%d" % i, net.now)
    ars1.send_data(ABS, b"ars-own", net.now)
    abs_.send_data(ARS1, b"to-ars", net.now)
    net.settle(1.0)
    return net, net.log[start:]


# The same seeded cell runs twice (once per path) and is compared: each run reuses the
# other's TEKs and PNs by construction, in separate simulations.
@pytest.mark.nonce_reuse_expected
@pytest.mark.parametrize("mode", [D, C])
def test_batch_and_per_mpdu_paths_put_identical_bytes_on_the_air(mode):
    runs = {path: _scenario(mode, path) for path in SEAL_PATHS}
    logs = [log for _net, log in runs.values()]
    assert logs[0] == logs[1] == logs[2]
    for net, _log in runs.values():
        assert [e.payload for e in net.of(ABS, DataReceived, src=AMS)] == \
               [b"up-%d" % i for i in range(10)]
        assert [e.payload for e in net.of(AMS, DataReceived)] == [b"dn-%d" % i for i in range(10)]
        assert [e.payload for e in net.of(ABS, DataReceived, src=ARS1)] == [b"ars-own"]
        assert [e.payload for e in net.of(ARS1, DataReceived)] == [b"to-ars"]


def test_one_seal_batch_call_per_frame(monkeypatch):
    calls = []
    orig = sendpath_mod.build_burst

    def spy(stid, mpdus, **kw):
        calls.append((stid, len(mpdus), kw["uplink"]))
        return orig(stid, mpdus, **kw)

    monkeypatch.setattr(sendpath_mod, "build_burst", spy)
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
    # an SA whose PN space is tiny (public constructor), used up through its public API
    link = ams.link
    sa = SecurityAssociation(link.ctx, link.sa.said, update_threshold=1, pn_last=2)
    sa.install(0)
    sa.install(1)
    for _ in range(4):
        sa.next_pn(True)
    link.sa = sa
    ams.send_data(ABS, b"x", net.now)
    # the data MPDU is dropped and counted; what goes out is the TEK-Request that fixes it
    [(dst, frame)] = ams.frames_to_send(net.now)
    assert dst == ARS1 and [mp[2] for mp in split_frame(frame)] == [m.TekRequest.CODE]
    assert ams.tx_dropped["no_usable_tek"] == 1


# -- receive side: one open_burst per burst, same outcome as one-by-one ---------------------------

def _hostile(src_dst_counts):
    """Deterministic tamper hook: replays an MPDU inside its burst, flips ICV bits, forges EKS."""

    def tamper(src, dst, frame):
        mpdus = split_frame(frame)
        prot = [i for i, mp in enumerate(mpdus) if mpdu_fid(mp) != FID_CONTROL]
        if not prot:
            return frame
        k = src_dst_counts[(src, dst)] = src_dst_counts.get((src, dst), 0) + 1
        if k % 4 == 1:
            mpdus.append(mpdus[prot[0]])                       # duplicate PN in the burst
        elif k % 4 == 2:
            last = bytearray(mpdus[prot[-1]])
            last[-1] ^= 0x40                                   # bad ICV
            mpdus[prot[-1]] = bytes(last)
        elif k % 4 == 3:
            first = bytearray(mpdus[prot[0]])
            first[2] ^= 0x80                                   # EKS nobody holds (+2 mod 4)
            mpdus[prot[0]] = bytes(first)
        return b"".join(mpdus)

    return tamper


def _rx_scenario(mode, path: str):
    net, abs_, ars1, ars2, ams = enter_all(mode)
    roles = (abs_, ars1, ars2, ams)
    batch_open, least = SEAL_PATHS[path]
    for r in roles:
        r.batch_open = batch_open
        if least is not None:
            r.batch_open_min = least
    net.start_recording()
    start = len(net.log)
    net.tamper = _hostile({})
    for i in range(24):
        for j in range(3):  # several MPDUs per burst
            ams.send_data(ABS, b"up-%d-%d" % (i, j), net.now)
            abs_.send_data(AMS, b"dn-%d-%d" % (i, j), net.now)
        ars1.send_data(ABS, b"ars-%d" % i, net.now)
        abs_.send_data(ARS1, b"to-ars-%d" % i, net.now)
        net.settle(0.05)
    net.tamper = None
    net.settle(2.0)
    got = {sid: [(e.src, e.payload) for e in net.of(sid, DataReceived)] for sid in net.roles}
    return net.log[start:], got, [dict(r.rejections) for r in roles], \
        [r.key_info(p) for r in roles for p in (ABS, AMS)]


# The same seeded cell runs twice (once per path) and is compared: each run reuses the
# other's TEKs and PNs by construction, in separate simulations.
@pytest.mark.nonce_reuse_expected
@pytest.mark.parametrize("mode", [D, C])
def test_batch_and_one_by_one_receive_behave_identically(mode):
    log_b, got_b, rej_b, keys_b = _rx_scenario(mode, "batch")
    log_p, got_p, rej_p, keys_p = _rx_scenario(mode, "per_mpdu")
    log_d, got_d, rej_d, keys_d = _rx_scenario(mode, "default")  # short runs one by one
    assert got_b == got_p == got_d and rej_b == rej_p == rej_d and keys_b == keys_p == keys_d
    assert log_b == log_p == log_d  # the same frames (incl. TEK-Invalid / TEK-Request) on air
    # the hostile bursts were really rejected, and good MPDUs around them still delivered
    abs_rej, ars_rej, ams_rej = rej_b[0], rej_b[1], rej_b[3]
    for rej in (abs_rej, ams_rej):
        assert rej.get("pn_replay") and rej.get("bad_icv") and rej.get("unknown_eks")
    assert ars_rej.get("bad_icv") and ars_rej.get("unknown_eks")
    assert len(got_b[ABS]) > 40 and len(got_b[AMS]) > 30


def test_one_open_burst_call_per_received_burst(monkeypatch):
    calls = []
    orig = link_mod.open_burst

    def spy(stid, burst, **kw):
        calls.append((stid, kw["uplink"]))
        return orig(stid, burst, **kw)

    monkeypatch.setattr(link_mod, "open_burst", spy)
    net, abs_, ars1, _ars2, ams = enter_all(D)
    for i in range(10):
        ams.send_data(ABS, b"up-%d" % i, net.now)
    [(_d, frame)] = ams.frames_to_send(net.now)
    calls.clear()
    ars1.receive(AMS, frame, net.now)
    assert calls == [(ams.stid, True)]              # ten MPDUs, one batch open
    [(_d, relay)] = ars1.frames_to_send(net.now)
    calls.clear()
    abs_.receive(ARS1, relay, net.now)
    assert calls == [(ars1.stid, True)]
    assert [e.payload for e in abs_.events() if isinstance(e, DataReceived)] == \
           [b"up-%d" % i for i in range(10)]


def test_short_frames_and_runs_take_the_per_mpdu_path(monkeypatch):
    """Below ``batch_seal_min`` / ``batch_open_min`` the roles seal / open one by one (faster
    there, docs/roles.md §3.1); from those sizes on, one batch call."""
    built, opened = [], []
    orig_build, orig_open = sendpath_mod.build_burst, link_mod.open_burst
    monkeypatch.setattr(sendpath_mod, "build_burst",
                        lambda stid, mpdus, **kw: built.append(len(mpdus)) or
                        orig_build(stid, mpdus, **kw))
    monkeypatch.setattr(link_mod, "open_burst",
                        lambda stid, burst, **kw: opened.append(len(burst)) or
                        orig_open(stid, burst, **kw))
    net, abs_, ars1, _ars2, ams = enter_all(D)
    assert (ams.batch_seal_min, ars1.batch_open_min) == (4, 4)
    for count, batched in ((1, False), (2, False), (3, False), (4, True), (5, True)):
        batch_sealed = batch_opened = batched
        built.clear()
        opened.clear()
        for i in range(count):
            ams.send_data(ABS, b"n%d-%d" % (count, i), net.now)
        [(_d, frame)] = ams.frames_to_send(net.now)
        ars1.receive(AMS, frame, net.now)
        assert built == ([count] if batch_sealed else []), count
        assert len(opened) == (1 if batch_opened else 0), count
        [(_d, relay)] = ars1.frames_to_send(net.now)  # re-sealed for the relay link
        abs_.receive(ARS1, relay, net.now)
        got = [e.payload for e in abs_.events() if isinstance(e, DataReceived)]
        assert got == [b"n%d-%d" % (count, i) for i in range(count)], count
