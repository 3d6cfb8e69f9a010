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
        ("traffic.min_delivery", 0.75), ("schedule.ota_speed", 0.5)]


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


def test_pluto_backend_without_uris_fails_cleanly():
    cfg = fast_config(("backend", "pluto"))
    report, _ = run_trial(cfg)
    assert not report["ok"]
    assert "uri" in report["reason"]
