"""benchmarks/ota_handover.py: the simulated baseline it prints beside the over-the-air runs, and
its summary (the over-the-air runs themselves take wall-clock seconds: run by hand)."""

from __future__ import annotations

from benchmarks import ota_handover


def test_the_baseline_measures_both_directions_by_the_target():
    r = ota_handover.run_one(1, mode="sim", speed=1.0, sets=[])
    assert r["ok"]
    h = r["handover"]
    assert 0 < h["interruption_dl_s"] < 0.5 and 0 < h["interruption_ul_s"] < 0.5
    assert h["interruption_s"] == max(h["interruption_dl_s"], h["interruption_ul_s"])
    assert h["switch_s"] == max(h["switch_dl_s"], h["switch_ul_s"])
    # no gap is longer than the whole switch, and the old path delivered during the move (make
    # before break): the downlink's longest silence is shorter than its switch
    assert h["interruption_dl_s"] < h["switch_dl_s"]
    assert h["interruption_ul_s"] <= h["switch_ul_s"]
    assert h["probe_period_s"] > 0


def test_summary_counts_only_runs_that_completed_the_handover():
    rows = [{"ok": True, "handover": {"interruption_dl_s": 0.1, "interruption_ul_s": 0.2}},
            {"ok": True, "handover": {"interruption_dl_s": 0.3, "interruption_ul_s": 0.4}},
            {"ok": False, "handover": {}}]
    s = ota_handover.summary(rows)
    assert s["passed"] == 2
    assert round(s["dl_mean_ms"]) == 200 and s["dl_min_ms"] == 100 and s["dl_max_ms"] == 300
    assert round(s["ul_mean_ms"]) == 300 and s["ul_max_ms"] == 400


def test_summary_reads_the_switch_time_apart():
    rows = [{"ok": True, "handover": {"interruption_dl_s": 0.05, "switch_dl_s": 0.2}}]
    assert ota_handover.summary(rows, "switch")["dl_mean_ms"] == 200
    assert ota_handover.summary(rows)["dl_mean_ms"] == 50
