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


def test_summary_counts_only_runs_that_completed_the_handover():
    rows = [{"ok": True, "handover": {"interruption_dl_s": 0.1, "interruption_ul_s": 0.2}},
            {"ok": True, "handover": {"interruption_dl_s": 0.3, "interruption_ul_s": 0.4}},
            {"ok": False, "handover": {}}]
    s = ota_handover.summary(rows)
    assert s["passed"] == 2
    assert round(s["dl_mean_ms"]) == 200 and s["dl_min_ms"] == 100 and s["dl_max_ms"] == 300
    assert round(s["ul_mean_ms"]) == 300 and s["ul_max_ms"] == 400
