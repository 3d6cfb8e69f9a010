"""benchmarks.emulator's trial summary: the lines a person reads to see why a full-speed run
lost beacons or throughput (no emulator needed: a result as trial_run returns it)."""

from __future__ import annotations

from benchmarks.emulator import print_trial


def _result(**over):
    r = {"speed": 1.0, "emulate": [], "ok": True, "reason": None, "ota_frame_ms": 20.0,
         "phases": {"traffic_1": {"ok": True, "kbps": {"ABS->AMS": 80.0}}},
         "handover_interruption_s": 0.3, "handover": {"switch_s": 0.4},
         "beacons_lost": 12, "beacons_due": 300, "beacons_lost_pct": 4.0,
         "timeline": {"ABS": {"underflows": 0, "rx_breaks": 0, "late": 3, "gap_max_s": 0.001}},
         "ul_grants": {"AMS": {"heard": 40, "late": 5, "filled": 2}},
         "node_backlog_max_s": {"ABS": 0.1},
         "demodulated": {"ABS": 0.3},
         "main_loop": {"busy": 0.87, "cpu": 0.57, "waited_for_core": 0.25, "passes": 3399,
                       "pass_ms": {"median": 3.6, "p90": 9.7, "max": 38.7}},
         "sync": {"ABS": {"missed_zones": 7}, "ARS-1": {"missed_zones": 0},
                  "AMS": {"missed_zones": None}},
         "loadavg_before": [0.5, 0, 0], "loadavg_after": [1.5, 0, 0], "cpu_cores_trial": 0.5,
         "rx_worker": True, "wall_s": 20.0}
    r.update(over)
    return r


def test_the_summary_names_the_zones_each_node_missed(capsys) -> None:
    """Zone bursts built too late are skipped: the summary counts them per node (the ABS's are
    every other node's lost beacons) and says which knob to turn."""
    print_trial(_result())
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "TX horizon" in x)
    assert "ABS 7" in line and "ARS-1 0" in line and "AMS" not in line
    assert "schedule.ota_build_ahead_ms" in line
    assert "beacons lost 12/300 (4.0 %)" in out and "AMS 5 of 40 (2 still sent in" in out
    assert "main loop (serves every node) busy 87 % of the time (its thread on a core 57 %, " \
           "waiting for one 25 %); 3399 demodulation passes, " \
           "median 3.6 ms, 90th percentile 9.7 ms, longest 38.7 ms" in out


def test_no_missed_zones_no_line(capsys) -> None:
    print_trial(_result(sync={"ABS": {"missed_zones": 0}}))
    assert "TX horizon" not in capsys.readouterr().out
