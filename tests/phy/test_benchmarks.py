"""The PHY benchmarks' own logic: the before/after harness and the zone-vs-burst comparison."""

from __future__ import annotations

import os

import numpy as np
import pytest

from benchmarks import modem as bmodem
from benchmarks import per as bper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_before_after_times_both_trees_on_the_same_rows() -> None:
    """This tree against itself, one tiny row, one round: both sides decode, real-time factors
    are positive and the change is their ratio; the commits are recorded."""
    ab = bmodem.before_after(ROOT, [["P2.5", "QPSK-1/2"]], payload=60, bursts=2, repeats=1,
                             rounds=1, seed=3)
    (row,) = ab["rows"]
    assert row["before_ok"] and row["after_ok"]
    for side in ("before", "after"):
        assert row[f"{side}_tx_rtf"] > 0 and row[f"{side}_rx_rtf"] > 0
    assert row["rx_change"] == pytest.approx(row["after_rx_rtf"] / row["before_rx_rtf"] - 1)
    assert len(ab["runs"]["before"]) == len(ab["runs"]["after"]) == 1
    assert ab["against_commit"] == ab["this_commit"]


def test_zone_vs_burst_point_counts_errors_of_both_receivers() -> None:
    rng = np.random.default_rng(1)
    clean = bper.zone_vs_burst_point("P2.5", "QPSK-1/2", 20.0, 100, 6, rng)
    assert clean["per_burst"] == clean["per_zone"] == 0.0 and clean["false_pass"] == 0
    lost = bper.zone_vs_burst_point("P2.5", "64QAM-3/4", 5.0, 100, 6, rng, channel="pedB")
    assert lost["per_burst"] == lost["per_zone"] == 1.0 and lost["false_pass"] == 0


def test_issue15_targets_pick_the_rows_and_judge_them() -> None:
    rows = [{"profile": "20MHz", "mcs": "64QAM-5/6", "rx_rtf_cpu": 1.49},
            {"profile": "10MHz", "mcs": "64QAM-5/6", "rx_rtf_cpu": 2.5},
            {"profile": "10MHz", "mcs": "QPSK-1/2", "rx_rtf_cpu": 9.0}]
    got = {(t["profile"], t["met"], t["target"]) for t in bmodem.issue15_targets(rows)}
    assert got == {("20MHz", False, 1.5), ("10MHz", True, 2.5)}
