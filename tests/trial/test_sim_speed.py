"""The simulator's pace in the report: simulated air seconds per wall second after warm-up."""

from __future__ import annotations

import pytest

from relaysec.report import sim_pace, summary_text
from tests.trial.test_pieces import _report


def test_pace_is_air_over_wall_after_warm_up_on_the_simulated_clock_only():
    t = {"simulated_clock": True, "sim_s": 0.9, "wall_s": 0.4, "warmup_s": 0.1}
    assert sim_pace(t) == pytest.approx(3.0)
    assert sim_pace({**t, "simulated_clock": False}) is None     # over the air: real time
    assert sim_pace({**t, "warmup_s": 0.4}) is None              # nothing left to divide by
    assert sim_pace({k: v for k, v in t.items() if k != "sim_s"}) is None


def test_summary_says_the_pace_of_a_simulated_run_and_not_of_a_run_over_the_air():
    sim = {**_report(), "timing": {"simulated_clock": True, "sim_s": 0.77, "wall_s": 0.6,
                                   "warmup_s": 0.1}}
    line = summary_text(sim).splitlines()[1]
    assert "air time 0.77 s" in line and "simulated at 1.5x real time after warm-up" in line
    ota = {**sim, "timing": {**sim["timing"], "simulated_clock": False}}
    assert "simulated at" not in summary_text(ota)
