"""The over-the-air runtime (wall clock, ABS-master beacon timing) rehearsed on a wall-clock
loopback medium: the same path `--backend pluto` takes, minus pyadi-iio."""

from __future__ import annotations

import pytest

from relaysec.trial import PHASES, run_trial
from tests.emu.realtime import realtime_slot
from tests.trial.helpers import fast_config

# Wall-clock runs compete with whatever else the machine does: long frames, wide guards, more
# retries and a delivery ratio below 100 % keep them meaningful on a loaded 2-core host.
WALL = [("schedule.mode", "wall"), ("schedule.ota_frame_ms", 100.0),
        ("schedule.ota_guard_ms", 8.0), ("security.max_retries", 14),
        ("traffic.min_delivery", 0.75), ("schedule.ota_speed", 0.5), ("traffic.ota_scale", 1.0)]


@pytest.mark.slow
def test_wall_clock_trial_with_abs_master_timing_passes():
    with realtime_slot():
        _test_wall_clock_trial_with_abs_master_timing_passes()


def _test_wall_clock_trial_with_abs_master_timing_passes():
    report, _ = run_trial(fast_config(*WALL))
    assert report["ok"], report["reason"]
    assert [p["name"] for p in report["phases"]] == list(PHASES)
    assert report["bytes"]["corrupted"] == 0
    # frames take wall time: 100 ms each
    t = report["timing"]
    assert t["sim_s"] == pytest.approx(t["frames"] * 0.100, rel=0.05)


@pytest.mark.slow
def test_wall_clock_trial_with_demodulation_workers_passes():
    """schedule.ota_demod_workers: every node demodulates in a process of its own
    (relaysec.demod_worker), the loop applies the answers in order -- the trial passes as it
    does in one process, and the workers did the demodulation (their CPU time)."""
    with realtime_slot():
        report, _ = run_trial(fast_config(*WALL, ("schedule.ota_demod_workers", True)))
    assert report["ok"], report["reason"]
    assert [p["name"] for p in report["phases"]] == list(PHASES)
    assert report["bytes"]["corrupted"] == 0
    loop = report["main_loop"]
    assert loop["demod_workers_cpu_s"] > 0 and loop["passes"] > 0
    assert all(e["locked"] for e in report["sync"].values())


def test_pluto_backend_without_uris_fails_cleanly():
    cfg = fast_config(("backend", "pluto"))
    report, _ = run_trial(cfg)
    assert not report["ok"]
    assert "uri" in report["reason"]


def test_a_node_behind_demodulates_what_has_queued_in_one_pass():
    """OtaNetwork._batch: a node that has fallen behind takes up to MAX_BATCH_CHUNKS queued
    chunks in one demodulation pass (the overlap a pass re-scans, longer than a chunk, is then
    paid once per batch), in order, as the chunks themselves (the pass joins them to its kept
    overlap in one copy); a reader's error is handed over after the batch."""
    import queue as _queue
    from types import SimpleNamespace

    import numpy as np

    from relaysec.ota import MAX_BATCH_CHUNKS, OtaNetwork

    st = SimpleNamespace(queue=_queue.Queue())
    chunks = [np.full(3, k, np.complex64) for k in range(MAX_BATCH_CHUNKS + 2)]
    for c in chunks[1:]:
        st.queue.put(c)
    got = OtaNetwork._batch(None, st, chunks[0])  # type: ignore[arg-type]
    assert [p[0].real for p in got] == list(range(MAX_BATCH_CHUNKS))   # in order, as they came
    assert got[0] is chunks[0] and all(p is c for p, c in zip(got, chunks[:MAX_BATCH_CHUNKS],
                                                              strict=True))
    assert st.queue.qsize() == 2                    # the rest waits for the next pass
    assert len(OtaNetwork._batch(None, st, chunks[0])) == 3  # type: ignore[arg-type]
    err = OSError("radio gone")
    st.queue.put(np.zeros(3, np.complex64))
    st.queue.put(err)
    assert len(OtaNetwork._batch(None, st, chunks[0])) == 2  # type: ignore[arg-type]
    assert st.queue.get_nowait() is err
    one = OtaNetwork._batch(None, st, chunks[0])    # type: ignore[arg-type]
    assert len(one) == 1 and one[0] is chunks[0]    # caught up: the chunk as it came


def _default_ota_schedule():
    from relaysec.cell import _zone_modem, access_owners, frame_timing
    from relaysec.config import load_config
    from relaysec.schedule import build_schedule

    cfg = load_config()
    zm = _zone_modem(cfg["phy"]["profile"])
    frame_s, guard_s = frame_timing(cfg, wall=True)
    return build_schedule([(s["name"], s["role"]) for s in cfg["stations"]],
                          sample_rate=zm.sample_rate, frame_s=frame_s, guard_s=guard_s,
                          access_owners=access_owners(cfg))


def test_each_station_demodulates_only_the_zones_it_needs():
    """FrameSchedule.heard_by: the ABS receives in the relay uplinks; an ARS in the ABS's DL
    zone (frame reference) and its AMSs' uplink, nothing of the other ARS; an AMS in the DL
    and every DL-access zone. sent_by: each one's own zones (an AMS: every UL-access zone)."""
    sch = _default_ota_schedule()

    def zones(idx):
        return [(sch.zones[i].name, sch.zones[i].tx) for i in idx]

    assert zones(sch.heard_by("ABS", "abs")) == [("UL-relay", "ARS-1"), ("UL-relay", "ARS-2")]
    assert zones(sch.heard_by("ARS-1", "ars")) == [("DL", "ABS"), ("UL-access", "ARS-1")]
    assert zones(sch.heard_by("AMS", "ams")) == [("DL", "ABS"), ("DL-access", "ARS-1"),
                                                 ("DL-access", "ARS-2")]
    assert zones(sch.sent_by("ABS", "abs")) == [("DL", "ABS")]
    assert zones(sch.sent_by("ARS-1", "ars")) == [("DL-access", "ARS-1"), ("UL-relay", "ARS-1")]
    assert zones(sch.sent_by("AMS", "ams")) == [("UL-access", "ARS-1"), ("UL-access", "ARS-2")]


def test_a_node_in_step_scans_its_zones_windows_only():
    """OtaNetwork._ranges: every sample until the node keeps the frame timing; then the parts
    of a buffer inside the windows (a margin each side) of the zones it receives in, and of
    its own zones in one frame of TRACK_EVERY, across a frame boundary too; a burst in a zone
    it does not need is never scanned, one in a zone it receives in always is. Where bursts
    may start: nowhere said while everything is scanned; then a margin around each scanned
    zone's start (its whole length for a UL-access zone), inside the parts scanned."""
    from itertools import pairwise
    from types import SimpleNamespace

    from relaysec.ota import TRACK_EVERY, WINDOW_MARGIN, OtaNetwork
    from relaysec.schedule import OtaTiming

    sch = _default_ota_schedule()
    net = SimpleNamespace(schedule=sch)
    timing = OtaTiming(sch.frame_len)
    st = SimpleNamespace(timing=timing, is_master=False,
                         heard=OtaNetwork._windows(net, sch.heard_by("ARS-1", "ars")),
                         own=OtaNetwork._windows(net, sch.sent_by("ARS-1", "ars")))
    n = 58_000
    assert OtaNetwork._ranges(net, st, 1000, n) == ([(0, n)], None)   # not in step yet
    fs = 5_000
    timing.on_abs_burst(fs)
    by = {(z.name, z.tx): z for z in sch.zones}

    def check(k, own):   # a buffer holding the end of frame k - 1 and most of frame k
        start = fs + k * sch.frame_len - 10_000
        timing.last_heard = start
        ranges, starts = OtaNetwork._ranges(net, st, start, n)
        assert ranges and all(0 <= a < b <= n for a, b in ranges)
        assert starts and all(any(a <= s1 and s0 < b for a, b in ranges) for s0, s1 in starts)

        def may_start(pos):   # a burst starting at this position of frame k
            i = fs + k * sch.frame_len + pos - start
            return any(s0 <= i <= s1 for s0, s1 in starts)

        dl, ul = by[("DL", "ABS")], by[("UL-access", "ARS-1")]
        assert may_start(dl.start) and may_start(dl.start + dl.guard // 2)
        assert may_start(dl.start - WINDOW_MARGIN) and may_start(dl.start + WINDOW_MARGIN)
        assert not may_start(dl.start + dl.guard + 2 * WINDOW_MARGIN)
        assert all(may_start(p) for p in range(ul.start, ul.end, 97))   # slots anywhere
        assert all(b1 < a2 for (_a1, b1), (a2, _b2) in pairwise(ranges))  # merged

        def scanned(pos):   # a sample at this position of frame k
            i = fs + k * sch.frame_len + pos - start
            assert 0 <= i < n
            return any(a <= i < b for a, b in ranges)

        def whole(z):
            return all(scanned(p) for p in range(z.start - WINDOW_MARGIN + 1, z.end, 97))

        def none(z):
            return not any(scanned(p) for p in range(z.start + WINDOW_MARGIN,
                                                      z.end - WINDOW_MARGIN, 97))

        assert whole(by[("DL", "ABS")]) and whole(by[("UL-access", "ARS-1")])  # receives in
        assert none(by[("DL-access", "ARS-2")]) and none(by[("UL-access", "ARS-2")])
        assert whole(by[("DL-access", "ARS-1")]) == own                # its own, now and then
        assert none(by[("DL-access", "ARS-1")]) == (not own)
        return sum(b - a for a, b in ranges)

    assert check(TRACK_EVERY, own=True) < 0.75 * n
    assert check(TRACK_EVERY + 1, own=False) < 0.55 * n
    timing.last_heard = fs - 100 * sch.frame_len   # lost the ABS: everything again
    assert OtaNetwork._ranges(net, st, fs + sch.frame_len, n) == ([(0, n)], None)


def test_over_the_air_a_phase_offers_the_traffic_of_the_air_it_spans():
    """config.traffic_counts: counts as written in simulation; over the air multiplied by
    traffic.ota_scale (a 20 ms frame, four simulated frames of air), 1 = as written."""
    from relaysec.config import load_config, traffic_counts

    cfg = load_config()
    assert traffic_counts(cfg, wall=False) == (4, 48)
    assert traffic_counts(cfg, wall=True) == (16, 192)
    one = load_config(overrides=[("traffic.ota_scale", 1.0), ("traffic.per_frame", 2)])
    assert traffic_counts(one, wall=True) == (2, 48)
    big = load_config(overrides=[("traffic.ota_scale", 100.0), ("traffic.per_frame", 100)])
    assert traffic_counts(big, wall=True)[0] == 1000   # the per_frame bound


def test_a_burst_found_in_part_of_a_buffer_is_annotated_where_it_was_recorded():
    """Node.handle_samples(behind=...): a node demodulating only part of its RX buffer (its
    zones' windows) annotates a recording at the same sample as when it demodulates all of
    it."""
    from collections import Counter
    from types import SimpleNamespace

    import numpy as np

    import phy
    from phy.zone import Allocation
    from relaysec.node import Node

    modem = phy.ZoneModem("P2.5")
    burst = np.asarray(modem.modulate([Allocation(2, b"x" * 40, "QPSK-1/2")], src=1),
                       np.complex64)
    buf = np.zeros(30_000, np.complex64)
    buf[12_000:12_000 + burst.size] = burst
    marks = []

    def node():
        n = SimpleNamespace(
            modem=modem, addr=2, _addresses=lambda: (2, 0xFFFF), cpu=Counter(),
            _window_start=100_000, _last_rx_len=6_000,
            recorder=SimpleNamespace(annotate=lambda at, n, **kw: marks.append(at)),
            addressing=SimpleNamespace(station_of=lambda a: None), _collect=lambda now: None)
        n.handle_bursts = lambda bursts, now, **kw: Node.handle_bursts(n, bursts, now, **kw)
        return n

    Node.handle_samples(node(), buf, 0.0)
    a, b = 10_000, 20_000
    Node.handle_samples(node(), buf[a:b], 0.0, behind=buf.size - b)
    assert len(marks) == 2 and marks[0] == marks[1]
    # the buffer ends where the last read (6000 samples from recording index 100 000) ended
    assert abs(marks[0] - (100_000 + 6_000 - buf.size + 12_000)) <= 32


def test_a_window_the_last_pass_scanned_whole_is_not_demodulated_again() -> None:
    """relaysec.ota keeps the last pass's overlap so that a burst straddling two passes is
    found whole; a zone window lying wholly inside a span the last pass scanned (same end)
    holds only bursts found then, and is skipped. One that reaches past it is scanned."""
    from relaysec.ota import OtaNetwork

    last = [(1000, 1500), (4000, 6000)]      # RX-index spans the last pass scanned
    start = 3000                              # this buffer's first RX index
    ranges = [(1000, 2000),                   # 4000..5000: inside (4000, 6000): skipped
              (2500, 3000),                   # 5500..6000: inside, to the same end: skipped
              (2800, 3500),                   # 5800..6500: reaches past it: scanned
              (0, 200)]                       # 3000..3200: never scanned: scanned
    assert OtaNetwork._unscanned(ranges, start, last) == [(2800, 3500), (0, 200)]
    assert OtaNetwork._unscanned(ranges, start, []) == ranges
