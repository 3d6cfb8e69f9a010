"""Schedule, payload-integrity and report formatting pieces of the trial."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaysec.appdata import OVERHEAD, Flow, flow_of, make_packet, parse_packet
from relaysec.report import (
    MscEntry,
    Trace,
    msc_text,
    split_links,
    summary_text,
    to_json,
    write_plots,
)
from relaysec.schedule import OtaTiming, build_schedule, zone_capacity

STATIONS = [("ABS", "abs"), ("ARS-1", "ars"), ("ARS-2", "ars"), ("AMS", "ams")]


def test_schedule_zones_tile_the_frame_in_relay_order():
    s = build_schedule(STATIONS, sample_rate=2.8e6, frame_s=5e-3, guard_s=100e-6)
    assert s.frame_len == 14000
    assert [(z.name, z.tx) for z in s.zones] == [
        ("DL", "ABS"), ("DL-access", "ARS-1"), ("DL-access", "ARS-2"),
        ("UL-access", "ABS"), ("UL-access", "ARS-1"), ("UL-access", "ARS-2"),
        ("UL-relay", "ARS-1"), ("UL-relay", "ARS-2"),
    ]
    assert [z.shared for z in s.zones] == [False] * 3 + [True] * 3 + [False] * 2
    only = build_schedule(STATIONS, sample_rate=2.8e6, frame_s=5e-3, guard_s=100e-6,
                          access_owners=["ARS-1"])
    assert [(z.name, z.tx) for z in only.zones if z.shared] == [("UL-access", "ARS-1")]
    for a, b in zip(s.zones, s.zones[1:], strict=False):
        assert b.start == a.end                      # no overlap, no gap beyond the guard
    assert s.zones[-1].end <= s.frame_len
    assert s.zones[0].length > s.zones[1].length     # ABS zone weighted
    with pytest.raises(ValueError, match="cannot hold"):
        build_schedule(STATIONS, sample_rate=2.8e6, frame_s=5e-4, guard_s=100e-6)


@given(st.integers(0, 5000))
def test_zone_capacity_is_the_largest_fitting_payload(samples):
    def burst_samples(n):
        return 300 + 288 * (-(-n // 50))             # preamble + whole symbols

    cap = zone_capacity(burst_samples, 2000, samples)
    if samples < 300:
        assert cap == 0
    else:
        assert burst_samples(cap) <= samples
        assert cap == 2000 or burst_samples(cap + 1) > samples


def test_ota_timing_locks_and_tracks():
    t = OtaTiming(frame_len=1000, dl_offset=10)
    assert not t.locked(0)
    t.on_abs_burst(5010)
    assert t.frame_start == 5000 and t.locked(5500)
    assert t.next_zone_start(300, 5200) == 5300
    assert t.next_zone_start(300, 5301) == 6300
    t.on_abs_burst(6014)                              # 4 samples late: follow half of it
    assert t.frame_start == 5002                     # same anchor, half the 4-sample offset
    assert not t.locked(6014 + 9000)


def test_ota_timing_keeps_counting_frames_after_an_unmeasured_rx_loss():
    """A node that lost RX samples it could not count re-anchors on the next ABS burst, and
    its frame numbers go on from where they were: its zones (relaysec.ota transmits in frame k
    only past the last frame it used), grants and peers' state are kept by frame number, so
    counting from 0 again left it silent in its zones for as long as it had run (full-speed
    trials on a loaded host: ARSs and the AMS silent for seconds, PeerLost)."""
    t = OtaTiming(frame_len=1000, dl_offset=10)
    t.on_abs_burst(5010)                              # frame 0
    t.on_abs_burst(8010)                              # frame 3
    assert t.last_frame == 3
    t.lose_anchor()
    assert t.frame_start is None and not t.locked(8500)
    t.on_abs_burst(12010 - 2500)                      # frame 7, 2500 samples lost unseen
    assert t.locked(9600) and t.last_frame == 4       # the old anchor's estimate (>= 3 + 1)
    assert (9500 - t.frame_start) // 1000 == 4
    t.on_abs_burst(10510)                             # the next frame: 5, on the new anchor
    assert t.last_frame == 5 and t.frame_start == 5500
    t.lose_anchor()
    t.on_abs_burst(5500 + 9 * 1000 + 10)              # nothing lost after all: frame 9 exactly
    assert t.last_frame == 9 and t.frame_start == 5500
    t.lose_anchor()
    t.on_abs_burst(3010)                              # an axis far behind: never counts back
    assert t.last_frame == 10 and (3000 - t.frame_start) // 1000 == 10


def test_packets_roundtrip_and_detect_any_change():
    pkt = make_packet(3, 77, b"hello world" * 3)
    assert parse_packet(pkt) == (3, 77, b"hello world" * 3)
    assert flow_of(pkt) == 3
    for i in range(len(pkt)):
        bad = bytearray(pkt)
        bad[i] ^= 0x01
        assert parse_packet(bytes(bad)) is None


def test_flow_counts_sent_delivered_lost_corrupted_duplicates():
    f = Flow(1, "ABS->AMS", 64, seed=5)
    pkts = []
    for i in range(4):
        pkts.append(f.peek())
        assert f.peek() == pkts[-1]                  # same until marked sent
        f.mark_sent(float(i))
    assert len(set(pkts)) == 4 and all(len(p) == 64 for p in pkts)
    assert f.deliver(pkts[0], 1.0) == "ok"
    assert f.deliver(pkts[0], 1.1) == "duplicate"
    forged = bytearray(pkts[1])
    forged[OVERHEAD] ^= 1
    assert f.deliver(bytes(forged), 1.2) == "corrupted"
    assert f.deliver(pkts[2], 1.3) == "ok"
    s = f.stats
    assert (s.sent_bytes, s.delivered_bytes, s.lost_bytes, s.corrupted_bytes) == (256, 128, 128, 64)
    assert s.duplicate_packets == 1
    # same seed, same packets
    g = Flow(1, "ABS->AMS", 64, seed=5)
    assert g.peek() == pkts[0]


def _report(ok=True):
    return {
        "ok": ok,
        "reason": None if ok else "phase traffic_1 failed",
        "seed": 1,
        "bytes": {"sent": 100, "delivered": 100, "lost": 0, "corrupted": 0},
        "phases": [{"name": "ars_entry", "ok": True, "t_start": 0.0, "t_end": 0.1},
                   {"name": "traffic_1", "ok": ok, "t_start": 0.1, "t_end": 0.3}],
        "links": {"ABS->ARS-1": {"per": 0.01, "snr_db": 27.5, "goodput_bps": 1.2e6,
                                 "bursts_tx": 100, "evm_db": float("nan")}},
        "security": {"rejections": {"bad_icv": 2}},
        "handover": {"mode": "predistributed", "interruption_s": 0.02, "source": "ARS-1",
                     "target": "ARS-2", "predistributed": True},
    }


def test_summary_and_json():
    text = summary_text(_report())
    assert text.splitlines()[0] == "relaysec trial: PASS"
    assert "ABS->ARS-1" in text and "bad_icv 2" in text and "20 ms" in text
    bad = summary_text(_report(ok=False))
    assert "FAIL" in bad and "traffic_1 failed" in bad
    data = json.loads(to_json(_report()))
    assert data["links"]["ABS->ARS-1"]["evm_db"] is None    # NaN is written as null
    with pytest.raises(ValueError, match="handover"):
        r = _report()
        del r["handover"]
        to_json(r)


def _lk(tx: int, rx: int, fail: int = 0) -> dict:
    return {"bursts_tx": tx, "bursts_rx": rx, "crc_fail": fail, "control_bursts": 1,
            "per": float("nan") if not tx and not rx else 0.0, "snr_db": 25.0,
            "goodput_bps": 1e3}


def test_links_table_leaves_out_self_links_and_links_only_sent_on():
    links = {"ABS->ARS-1": _lk(40, 0), "ARS-1->ABS": _lk(0, 38, 1),
             "ARS-1->ARS-1": _lk(0, 3, 3), "AMS->ABS": _lk(0, 10)}
    # a node (ABS): it knows what it received, not what its bursts did at the far end
    table, tx_only = split_links(links, ["ABS"])
    assert set(table) == {"ARS-1->ABS", "AMS->ABS"}
    assert tx_only == {"ABS->ARS-1": {"bursts_tx": 40, "control_bursts": 1}}
    # a trial (every receiver local): nothing received on ABS->ARS-1 is a loss, kept
    table, tx_only = split_links(links, ["ABS", "ARS-1", "AMS"])
    assert set(table) == {"ABS->ARS-1", "ARS-1->ABS", "AMS->ABS"} and tx_only == {}
    report = {**_report(), "links": split_links(links, ["ABS"])[0],
              "links_tx_only": split_links(links, ["ABS"])[1]}
    text = summary_text(report)
    assert "ARS-1->ARS-1" not in text
    assert "sent only (PER is measured at the receiver): ABS->ARS-1 40 bursts" in text
    assert not any(line.strip().startswith("ABS->ARS-1") for line in text.splitlines())
    assert json.loads(to_json(report))["links_tx_only"]["ABS->ARS-1"]["bursts_tx"] == 40


def test_msc_arrows_point_the_right_way():
    entries = [MscEntry(0.001, "AMS", "ARS-1", "PKM-REQ"),
               MscEntry(0.002, "ABS", "ARS-1", "AK-Transfer"),
               MscEntry(0.003, "ARS-1", "ARS-1", "KeysInstalled", "akid=00")]
    text = msc_text(entries, ["ABS", "ARS-1", "AMS"], width=10)
    lines = text.splitlines()
    assert lines[1].index("<") < lines[1].index("PKM-REQ")
    assert "<-" in lines[1] and "->" in lines[2]
    assert "*" in lines[3] and "akid=00" in lines[3]


def test_msc_folds_quiet_spells_into_one_line():
    entries = [MscEntry(0.001, "AMS", "ARS-1", "TEK-Request"),
               MscEntry(0.400, "ARS-1", "AMS", "TEK-Reply")]
    lines = msc_text(entries, ["ARS-1", "AMS"], gap_s=0.05).splitlines()
    assert len(lines) == 4 and "399 ms without security messages" in lines[2]
    assert len(msc_text(entries, ["ARS-1", "AMS"], gap_s=1.0).splitlines()) == 3


def test_summary_explains_rejections_in_flight_at_handover():
    r = _report()
    r["security"] = {"rejections": {"wrong_link": 1, "bad_icv": 2},
                     "in_flight_at_handover": {"wrong_link": 1}}
    r["handover"] = {"mode": "predistributed", "interruption_s": 0.01, "source": "ARS-1"}
    text = summary_text(r)
    assert "bad_icv 2, wrong_link 1 (1 from ARS-1 after the AMS left it" in text
    r["security"]["in_flight_at_handover"] = {}
    assert "after the AMS left" not in summary_text(r)


def test_render_counts_data_bursts_instead_of_charting_them():
    from relaysec.trial import render

    r = _report()
    r["links"]["ABS->ARS-1"]["control_bursts"] = 7
    r["stations"] = ["ABS", "ARS-1"]
    r["msc"] = [{"t": 0.001, "src": "ABS", "dst": "ARS-1", "label": "AK Transfer (in relay MPDU)"}]
    text = render(r)
    assert "AK Transfer (in relay MPDU)" in text
    assert text.splitlines()[-1] == ("Not charted: 93 bursts without a control message in the "
                                     "clear (ABS->ARS-1 93)")
    assert "Security message sequence" not in render(r, msc=False)


def test_plots_written(tmp_path):
    tr = Trace()
    rng = np.random.default_rng(0)
    for i in range(30):
        tr.add_burst("ABS->ARS-1", i * 0.005, 25 + rng.normal(), i % 7 != 0)
    tr.add_symbols("ABS->ARS-1", (rng.choice([-1, 1], 200) + 1j * rng.choice([-1, 1], 200)))
    files = write_plots(_report(), tr, tmp_path)
    assert {f.name for f in files} == {"constellation_ABS_to_ARS_1.png", "snr_per_over_time.png"}
    assert all(f.stat().st_size > 1000 for f in files)


def test_bursts_carry_their_equalised_symbols_for_the_constellation_plots():
    import phy

    modem = phy.BurstModem("P2.5", "16QAM-3/4")
    iq = modem.modulate(bytes(range(200)), src=1, dst=2)
    pad = np.zeros(300, np.complex64)
    (burst,) = modem.demodulate(np.concatenate([pad, iq, pad]))
    sym = burst.symbols
    assert sym.dtype == np.complex64
    assert sym.size == modem.data_symbols(200, "16QAM-3/4") * modem.grid.n_data
    # noiseless: every symbol on the unit-power 16QAM grid (levels +-1, +-3 over sqrt(10))
    levels = np.round(np.r_[sym.real, sym.imag] * np.sqrt(10))
    assert set(levels.tolist()) <= {-3.0, -1.0, 1.0, 3.0}
    assert "symbols" not in repr(burst)
    assert burst == phy.Burst(**{**burst.__dict__, "symbols": None})   # not compared


def test_a_full_send_buffer_makes_the_application_wait_and_offers_rotate():
    """A sender whose queue to its next hop holds traffic.send_buffer bytes refuses more (the
    application waits, as at a full interface queue) instead of queueing without bound; flows
    offered together take turns going first, and a probe plan offers every `every` frames."""
    from relaysec import phases
    from relaysec.config import load_config
    from relaysec.flows import FlowBook
    from relaysec.trial import Trial
    from tests.trial.helpers import FAST

    t = Trial(load_config(overrides=[*FAST, ("traffic.send_buffer", 2048)]))
    t.build()
    assert phases.ars_entry(t) and phases.ams_entry(t)
    taken = 0
    while t._send("ABS", "AMS", bytes(160)) and taken < 1000:
        taken += 1
    queued = t.roles["ABS"].backlog()[t.id_of["ARS-1"]].nbytes
    assert 2048 <= queued < 2048 + 400 and 8 <= taken < 20
    t.close()

    book = FlowBook(160, 1, {"S": 1, "A": 2, "B": 3}, str)
    plan = book.plan("p", [("S", "A", "A"), ("S", "B", "B")], quota=None, per_frame=1)
    firsts = []

    def send(src, dst, packet):       # room for one packet per frame
        firsts.append(dst)
        return len(firsts) % 2 == 1

    for frame in range(6):
        book.offer(plan, send, frame * 0.005)
    took = firsts[::2]
    assert took.count("A") == took.count("B") == 3
    probe = book.plan("q", [("S", "A", "A"), ("A", "S", "A"), ("S", "B", "B"),
                            ("B", "S", "B")], quota=None, per_frame=1)
    probe.every = 2
    sent = []
    for frame in range(4):
        book.offer(probe, lambda s, d, p, f=frame: sent.append((f, s, d)) or True, frame * 0.005)
    assert len(sent) == 8 and {(f % 2, s + d) for f, s, d in sent} == {
        (0, "SA"), (0, "AS"), (1, "SB"), (1, "BS")}


def test_seq_set_keeps_a_watermark_not_every_number():
    """Delivered sequence numbers of a flow: everything below a watermark plus the few above
    it, so a soak of 100 000s of packets keeps a handful of ints, with set semantics."""
    from relaysec.appdata import SeqSet

    s = SeqSet()
    for q in (0, 1, 2, 5, 3, 7):
        s.add(q)
    assert s.low == 4 and len(s) == 6
    assert all(q in s for q in (0, 1, 2, 3, 5, 7)) and not any(q in s for q in (4, 6, 8, -1))
    s.add(4)
    s.add(6)
    assert s.low == 8 and len(s) == 8 and s._above == set()
    s.add(2)   # again: nothing changes
    assert len(s) == 8 and "2" not in s


def test_event_log_forgets_a_window_but_keeps_counting():
    """A soak keeps only its last minute of events; the tally still counts every one (by kind
    and cause), and the events outside the window stay queryable."""
    from relaysec.eventlog import EventLog
    from relaysec.node import NodeEvent
    from stack.roles.events import KeysInstalled

    log = EventLog()
    for i in range(10):
        log.append(NodeEvent(float(i), "AMS", KeysInstalled(
            subject=1, peer=2, stid=3, akid="00", cmac_key_count=0, said=1,
            counter_teks=(0, 1), tx_eks=0, cause="tek_refresh" if i % 2 else "entry")))
    log.forget(2.0, 8.0)
    assert [ne.t for ne in log] == [0.0, 1.0, 8.0, 9.0] and log.forgotten == 6
    assert len(log.of("KeysInstalled", "AMS", since=5.0)) == 2
    assert log.tally[("KeysInstalled", "tek_refresh")] == 5
    assert log.tally[("KeysInstalled", "entry")] == 5


def test_longest_silence_counts_every_delivery_between_the_move_and_the_target():
    """The handover interruption (ITU-R M.2134): the longest stretch without user data between
    the move's start and the first data by the target; deliveries by the old path shorten it."""
    from relaysec.phases import longest_silence

    assert longest_silence([], 1.0, 1.3) == pytest.approx(0.3)     # nothing until the target
    # the old path delivered at 1.05 and 1.1, then 0.15 s of silence until the target's 1.25
    assert longest_silence([1.05, 1.1, 1.25], 1.0, 1.25) == pytest.approx(0.15)
    # deliveries before the move or after the target's first are not the handover's
    assert longest_silence([0.5, 1.02, 2.0], 1.0, 1.1) == pytest.approx(0.08)
    assert longest_silence(iter([1.1, 1.05]), 1.0, 1.2) == pytest.approx(0.1)  # any order


def test_a_failed_trial_whose_streams_broke_says_the_host_did_not_keep_up():
    """Over radios, a FAIL with stream breaks (here 131 underflows and 10 overflows, as four
    emulated Plutos at full speed on two cores gave) ends the radio lines with what to do; a
    PASS with a few breaks, or a FAIL with none, does not (the cause is elsewhere)."""
    r = _report(ok=False)
    r["backend"] = "pluto"
    r["radios"] = {"ABS": {"overflows": 10, "underflows": 131, "dropped": 5, "clipped": 0},
                   "AMS": {"overflows": 0, "underflows": 0, "dropped": 0, "clipped": 0}}
    text = summary_text(r)
    assert "Hint: the radio streams broke 141 times" in text
    assert "relaysec emulate --speed 0.5" in text and "schedule.ota_speed=0.5" in text
    r["radios"]["ABS"].update(overflows=0, underflows=3)
    assert "Hint:" not in summary_text(r)
    r["radios"]["ABS"]["underflows"] = 131
    r["ok"] = True
    assert "Hint:" not in summary_text(r)


def test_the_summary_says_how_busy_the_main_loop_was_and_when_the_host_is_the_limit():
    """Over radios the report's main_loop (OtaNetwork.loop_status) is a line of the summary; a
    FAIL with the loop busy 90 % or more of the time says the host is the limit and what to
    do; a PASS, or a FAIL with the loop idle enough, does not."""
    r = _report(ok=False)
    r["backend"] = "pluto"
    r["radios"] = {"ABS": {"overflows": 0, "underflows": 0, "dropped": 0, "clipped": 0}}
    r["main_loop"] = {"busy": 0.93, "cpu": 0.57, "passes": 3400,
                      "pass_ms": {"median": 3.6, "p90": 9.7, "max": 38.7}}
    text = summary_text(r)
    assert "main loop busy 93 % of the time, on a core 57 % (demodulation passes: median " \
           "3.6 ms, 90th percentile 9.7 ms, longest 38.7 ms)" in text
    assert "Hint: the one loop that serves every node here was busy 93 %" in text
    r["main_loop"]["busy"] = 0.6
    assert "main loop busy 60 %" in summary_text(r) and "Hint:" not in summary_text(r)
    r["main_loop"]["busy"], r["ok"] = 0.95, True
    assert "Hint:" not in summary_text(r)
    r["main_loop"] = {"busy": None, "passes": 0}       # never ran a frame: no line
    assert "main loop" not in summary_text(r)


def test_the_ota_main_loop_accounts_for_its_busy_time():
    """OtaNetwork.loop_status: the share of step_frame's wall time not spent idle, and the
    demodulation passes' durations; before any frame, nothing to report."""
    import time as _time
    from types import SimpleNamespace

    from relaysec.ota import OtaNetwork

    net = OtaNetwork.__new__(OtaNetwork)
    from collections import deque
    net._loop_wall, net._loop_idle, net._passes, net._pass_count = 0.0, 0.0, deque(), 0
    net._loop_cpu = net._loop_queued = 0.0
    net.states = {"A": SimpleNamespace(node=SimpleNamespace(poll=lambda now: None),
                                       worker=None)}
    assert net.loop_status() == {"busy": None, "cpu": None, "waited_for_core": None,
                                 "passes": 0}
    calls = []

    def service(st):            # a pass of 2 ms on every other call, else nothing queued
        # (asleep: busy on the loop's account but not on a core)
        calls.append(st)
        if len(calls) % 2:
            _time.sleep(0.002)
            return True
        return False

    net._start = lambda: None
    net._service = service
    net._maybe_transmit = lambda st: None
    net.clock = _time.monotonic
    net.t0 = _time.monotonic()
    net.frame = 0
    net.schedule = SimpleNamespace(frame_s=0.05)
    net.step_frame()
    s = net.loop_status()
    assert s["passes"] == len(net._passes) >= 5
    assert 0.1 < s["busy"] < 1.0
    assert 0.0 <= s["cpu"] < s["busy"] / 2      # the passes slept: the thread was not running
    assert 0.0 <= s["waited_for_core"] < 1.0    # Linux schedstat (CI and lab hosts)
    assert 1.5 <= s["pass_ms"]["median"] <= s["pass_ms"]["p90"] <= s["pass_ms"]["max"]


@pytest.mark.parametrize(("name", "zones", "share"), [("ARS-1", 2, 0.75), ("ABS", 1, 0.75)])
def test_the_tx_gate_skips_checks_but_never_a_zone(name: str, zones: int, share: float):
    """OtaTransmit._maybe_transmit skips a node's checks while none of its zones can come due
    (the horizon moving in whole TX blocks, as a streaming Pluto's): over 30 frames the same
    zone bursts are built at the same clock instants as with every check made in full, with
    fewer horizon reads; a new frame start (a beacon) reopens the gate at once."""
    from types import SimpleNamespace

    from relaysec.ota import _NodeState
    from relaysec.ota_tx import OtaTransmit
    from relaysec.schedule import OtaTiming, build_schedule

    fs, block = 2.8e6, 16800
    sched = build_schedule([("ABS", "abs"), ("ARS-1", "ars"), ("ARS-2", "ars"), ("AMS", "ams")],
                           sample_rate=fs, frame_s=0.02, guard_s=0.0005)

    def run(gated: bool, abs_lead: int = 28000) -> tuple[list[tuple[float, int, str]], int]:
        clock = [0.0]
        reads = [0]
        built: list[tuple[float, int, str]] = []

        def horizon() -> int:                     # the worker claims a block at a time
            reads[0] += 1
            return int(clock[0] * fs) // block * block + 5000

        def build_zone(now, length, *, frame, kind, **kw):
            built.append((round(clock[0], 6), frame, kind))
            return None, set()                    # nothing to send: no radio call

        radio = SimpleNamespace(caps=SimpleNamespace(stream=True, timed_tx=False),
                                tx_horizon=horizon)
        node = SimpleNamespace(name=name, is_ams=False, radio=radio, poll=lambda now: None,
                               build_zone=build_zone)
        timing = OtaTiming(sched.frame_len)
        timing.frame_start, timing.last_heard = 0, 0
        st = _NodeState(node=node, is_master=True, timing=timing, d0=0.0)
        net = OtaTransmit.__new__(OtaTransmit)
        net.schedule, net.t0, net.build_ahead, net.chunk, net.early = sched, 0.0, 28000, 16800, 0
        net.abs_build_ahead = abs_lead            # the master's (every node is here)
        net.clock = lambda: clock[0]
        net._owned_ul = {}
        net.states = {name: st}
        if not gated:
            net._gate = lambda st, horizon: None
        while clock[0] < 0.6:
            net._maybe_transmit(st)
            if abs(clock[0] - 0.3) < 1e-9:        # a beacon moves the frame start
                timing.frame_start += 7
            clock[0] = round(clock[0] + 0.0003, 7)
        return built, reads[0]

    OtaTransmit.now = property(lambda self: 0.0)
    try:
        full, full_reads = run(False)
        gated, gated_reads = run(True)
        early, _ = run(True, abs_lead=56000)
    finally:
        del OtaTransmit.now
    assert len(full) >= zones * 29                # its zones, every frame
    assert gated == full
    # with 6 ms TX blocks about a third of the checks go (the horizon reaches a zone only at
    # a block's claim, whose instant the gate cannot know: the last block before it is checked)
    assert gated_reads < share * full_reads
    # the ABS (the master) builds its zone burst its own lead earlier than the others': with
    # 28 000 samples (10 ms) more, each zone is built 10 ms sooner, give or take a TX block
    n = min(len(early), len(full))
    assert [(f, k) for _, f, k in early[:n]] == [(f, k) for _, f, k in full[:n]]
    leads = [a[0] - b[0] for a, b in zip(full, early, strict=False)][1:]
    assert all(0.004 <= d <= 0.016 for d in leads), leads


def test_a_grant_heard_after_its_slot_was_decided_still_fills_it_ahead_of_the_horizon():
    """A UL slot is decided ``build_ahead`` before the TX horizon reaches it; with no grant then
    it used to be lost, and a grant decoded in between with it (counted late). Now the slot
    stays open: a grant heard while the slot is still ahead of the horizon is sent in it, at
    the slot's own sample, and kept among the placed bursts; one heard after the horizon
    passed is not, nor one after the frame grid moved (the slot's sample would be stale),
    and the open slot goes."""
    from types import SimpleNamespace

    from relaysec.ota import _NodeState
    from relaysec.ota_tx import OPEN_SLOTS_KEPT, OtaTransmit
    from relaysec.schedule import OtaTiming, build_schedule

    fs = 2.8e6
    sched = build_schedule([("ABS", "abs"), ("ARS-1", "ars"), ("AMS", "ams")],
                           sample_rate=fs, frame_s=0.02, guard_s=0.0005,
                           access_owners=["ARS-1"])
    (ul,) = [z for z in sched.zones if z.shared]
    clock = [0.0]
    sent: list[tuple[int, int]] = []
    grants: dict[tuple[int, int], object] = {}

    def build_slot(now, *, frame, owner, lead):
        return np.ones(8, np.complex64) * frame if grants.pop((frame, owner), None) else None

    def transmit(iq, *, at):
        sent.append((int(iq[0].real), at))
        return at >= int(clock[0] * fs) + 5000

    radio = SimpleNamespace(caps=SimpleNamespace(stream=True, timed_tx=False),
                            tx_horizon=lambda: int(clock[0] * fs) + 5000)
    mac = SimpleNamespace(grants=grants, grants_filled=0)
    node = SimpleNamespace(name="AMS", is_ams=True, radio=radio, poll=lambda now: None,
                           build_slot=build_slot, transmit=transmit, mac=mac,
                           addressing=SimpleNamespace(names={11: "ARS-1"}))
    timing = OtaTiming(sched.frame_len)
    timing.frame_start, timing.last_heard = 0, 0
    st = _NodeState(node=node, is_master=True, timing=timing, d0=0.0)
    net = OtaTransmit.__new__(OtaTransmit)
    net.schedule, net.t0, net.build_ahead, net.chunk, net.early = sched, 0.0, 28000, 16800, 0
    net.abs_build_ahead = 28000
    net.clock = lambda: clock[0]
    net._owned_ul = {}
    net.states = {"AMS": st}
    OtaTransmit.now = property(lambda self: 0.0)

    def slot_at(k: int) -> int:
        return k * sched.frame_len + ul.start

    shifted = False
    try:
        while clock[0] < 0.5:        # 25 frames: after frame 9 no grant comes any more
            net._maybe_transmit(st)
            now = int(clock[0] * fs) + 5000          # the TX horizon
            for k in (3, 5, 7):                       # decided without a grant, heard later
                if k != 5 and now + 14000 >= slot_at(k) > now and (k, 11) not in grants \
                        and k not in [f for f, _ in sent]:
                    grants[(k, 11)] = object()        # 5 ms before the horizon reaches it
            if now > slot_at(5) and not any(f == 5 for f, _ in sent):
                grants[(5, 11)] = object()            # heard after the horizon passed it
            if not shifted and now + 14000 >= slot_at(9) > now:
                timing.frame_start += 7               # the grid moved (a re-anchor): the
                shifted = True                        # open slot's sample is stale
                grants[(9, 11)] = object()
            clock[0] = round(clock[0] + 0.0003, 7)
    finally:
        del OtaTransmit.now
    assert sent == [(3, slot_at(3)), (7, slot_at(7))]  # at their own samples, 5 and 9 not
    assert mac.grants_filled == 2 and st.missed == 0
    # kept as placed, as every other burst: heard back, each is matched with its own place
    # (one missing there was matched with another and moved the radio's offset)
    assert st.placed == [slot_at(3), slot_at(7)]
    assert all(k > 9 for k, *_ in st.open_slots)       # the passed ones are gone
    # a station that never grants (or a forged MAP's silence) leaves at most OPEN_SLOTS_KEPT
    # open slots, the latest, never a list growing with every frame
    ks = [k for k, *_ in st.open_slots]
    assert len(ks) == OPEN_SLOTS_KEPT and ks == list(range(ks[0], ks[0] + len(ks)))
    assert ks[-1] >= 0.5 / 0.02 - 2


def test_a_phase_goodput_runs_from_its_start_to_its_last_delivery():
    """A phase that goes on after its traffic arrived (the TEK refresh phase waits for the
    TEK's timer) carries none of it meanwhile: its goodput is taken from the phase's start to
    the last delivery of its plan, and a stall before that still counts."""
    from types import SimpleNamespace

    from relaysec.flows import FlowBook, FlowEntry, TrafficPlan
    from relaysec.trial import PhaseResult, Trial

    flows = []
    for src, dst, last in (("ABS", "AMS", 1.25), ("AMS", "ABS", 1.5)):
        f = Flow(7 if src == "ABS" else 8, f"{src}->{dst}", 160, seed=1)
        f.stats.delivered_bytes, f.stats.delivered_packets, f.stats.sent_packets = 12_500, 1, 1
        f.stats.last_rx = last
        flows.append(FlowEntry(f, src, dst, "AMS", "tek_refresh"))
    t = SimpleNamespace(phases=[PhaseResult("tek_refresh", t_start=1.0)], now=3.0,
                        flows=FlowBook)
    detail = Trial.plan_detail(t, TrafficPlan(flows=flows))
    # 100 000 bits over the 0.5 s to the last delivery, not over the phase's 2 s
    assert "ABS->AMS 1/1 (200 kb/s)" in detail and "AMS->ABS 1/1 (200 kb/s)" in detail
    t.phases = [PhaseResult("tek_refresh", t_start=0.5)]       # a stall before: counted
    assert "(100 kb/s)" in Trial.plan_detail(t, TrafficPlan(flows=flows))
