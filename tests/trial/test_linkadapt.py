"""relaysec.linkadapt: MCS choice per link from SNR and CRC outcomes, and its threshold table."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

import phy
from relaysec.linkadapt import (
    ROBUST_MCS,
    LinkAdaptation,
    LinkAdaptationConfig,
    ThresholdTableError,
    load_thresholds,
    parse_thresholds,
    thresholds,
)

LADDER = phy.mcs_table()
#: a made-up table 3 dB a step: QPSK-1/2 at 5 dB ... 64QAM-5/6 at 26 dB
TABLE = {m: 5.0 + 3.0 * i for i, m in enumerate(LADDER)}
RAW = LinkAdaptationConfig(alpha=1.0, up_margin_db=1.0, down_margin_db=0.0, up_after=4,
                           skip_dominated=False)


def link(cfg: LinkAdaptationConfig = RAW) -> LinkAdaptation:
    return LinkAdaptation(cfg, table=TABLE)


def test_starts_at_the_most_robust_mcs() -> None:
    assert ROBUST_MCS == LADDER[0] == "QPSK-1/2"
    la = LinkAdaptation()
    assert la.mcs == ROBUST_MCS and la.snr_db is None and la.effective_snr_db is None
    assert LinkAdaptation(LinkAdaptationConfig(start_mcs="16QAM-1/2"), table=TABLE).mcs \
        == "16QAM-1/2"


def test_climbs_only_after_up_after_observations() -> None:
    la = link()
    for _ in range(RAW.up_after - 1):
        assert la.observe(40.0, True) == ROBUST_MCS
    assert la.observe(40.0, True) == LADDER[-1]
    assert la.changes == 1


def test_one_low_observation_restarts_the_count() -> None:
    la = link()
    for snr in (40, 40, 40, 6.5, 40, 40, 40):  # 6.5 dB: no MCS above QPSK-1/2 passes +1 dB
        assert la.observe(snr, True) == ROBUST_MCS
    assert la.observe(40, True) == LADDER[-1]


def test_climbs_to_the_highest_mcs_that_held_in_every_observation() -> None:
    la = link()
    # 16QAM-3/4 (14 dB) + 1 dB margin = 15 dB held in all four; 64QAM-1/2 (17 + 1) only in some
    for snr in (20.0, 15.2, 19.0, 15.0):
        la.observe(snr, True)
    assert la.mcs == "16QAM-3/4"


def test_hysteresis_band_holds_the_mcs() -> None:
    la = link()
    for _ in range(4):
        la.observe(15.5, True)  # 16QAM-3/4 + 1.5 dB
    assert la.mcs == "16QAM-3/4"
    for snr in (14.2, 14.9, 14.0, 16.9):  # between threshold + 0 and the next one + 1 dB
        assert la.observe(snr, True) == "16QAM-3/4"


def test_drops_at_once() -> None:
    la = link()
    for _ in range(4):
        la.observe(40.0, True)
    assert la.mcs == LADDER[-1]
    # one observation at 10.5 dB: the highest MCS with threshold <= 10.5 is QPSK-3/4 (8 dB)
    assert la.observe(10.5, True) == "QPSK-3/4"
    assert la.observe(1.0, True) == ROBUST_MCS  # the floor, never below


def test_smoothing_is_an_ewma_in_db() -> None:
    la = LinkAdaptation(LinkAdaptationConfig(alpha=0.25), table=TABLE)
    la.observe(20.0, True)
    la.observe(0.0, True)
    assert la.snr_db == pytest.approx(15.0)  # 20 + 0.25 * (0 - 20), not a mean of powers


def _noisy_run(cfg: LinkAdaptationConfig, n: int, seed: int) -> int:
    """MCS changes over n observations of an SNR centred 0.5 dB above 16QAM-3/4's threshold,
    scattered like the receiver's estimate (0.5 dB)."""
    table = thresholds("P2.5")
    la = LinkAdaptation(cfg, table=table)
    rng = np.random.default_rng(seed)
    centre = table["16QAM-3/4"] + 0.5
    for x in centre + 0.5 * rng.standard_normal(n):
        la.observe(float(x), True)
    return la.changes


def test_noisy_snr_near_a_threshold_does_not_oscillate() -> None:
    changes = [_noisy_run(LinkAdaptationConfig(), 1000, seed) for seed in range(3)]
    assert max(changes) <= 10, changes  # the climb from QPSK-1/2 plus a few
    # the same SNR without hysteresis or smoothing flips constantly (the test can see it)
    bare = LinkAdaptationConfig(alpha=1.0, up_margin_db=0.0, down_margin_db=0.0, up_after=1)
    assert _noisy_run(bare, 1000, 0) > 100


def test_olla_penalty_after_crc_failures_then_recovery() -> None:
    cfg = LinkAdaptationConfig(alpha=1.0, up_after=2, olla_up_db=1.0, olla_down_db=0.25,
                               olla_max_db=3.0)
    la = LinkAdaptation(cfg, table=TABLE)
    for _ in range(2):
        la.observe(16.0, True)  # 16QAM-3/4 (14) + 2 dB
    assert la.mcs == "16QAM-3/4" and la.penalty_db == 0.0
    la.observe(16.0, False)
    assert la.penalty_db == 1.0 and la.mcs == "16QAM-3/4"   # 15 dB effective: still above 14
    la.observe(16.0, False)
    la.observe(16.0, False)
    assert la.penalty_db == 3.0 and la.effective_snr_db == 13.0
    assert la.mcs == "16QAM-1/2"                            # dropped at once
    for _ in range(5):
        la.observe(16.0, False)
    assert la.penalty_db == 3.0                             # bounded
    for _ in range(12):
        la.observe(16.0, True)                              # decays 0.25 dB per success
    assert la.penalty_db == 0.0 and la.mcs == "16QAM-3/4"


def test_floor_and_ceiling() -> None:
    cfg = LinkAdaptationConfig(alpha=1.0, up_after=1, start_mcs="QPSK-3/4", min_mcs="QPSK-3/4",
                               max_mcs="64QAM-1/2", skip_dominated=False)
    la = LinkAdaptation(cfg, table=TABLE)
    assert la.observe(40.0, True) == "64QAM-1/2"
    assert la.observe(-10.0, False) == "QPSK-3/4"


def test_an_mcs_that_carries_no_more_than_a_robuster_one_is_skipped() -> None:
    # 64QAM-1/2 and 16QAM-3/4 both carry 3 bits per subcarrier
    cfg = LinkAdaptationConfig(alpha=1.0, up_after=1)
    la = LinkAdaptation(cfg, table=TABLE)
    assert la.observe(18.5, True) == "16QAM-3/4"     # 64QAM-1/2 (17) + 1 dB passes: not taken
    assert la.observe(21.5, True) == "64QAM-2/3"
    assert la.observe(17.5, True) == "16QAM-3/4"     # and not dropped to either
    for x in np.linspace(0, 40, 161):
        assert la.observe(float(x), True) != "64QAM-1/2"


def test_reset_forgets_everything() -> None:
    la = link()
    for _ in range(4):
        la.observe(40.0, False)
    la.reset()
    assert (la.mcs, la.snr_db, la.penalty_db, la.observations) == (ROBUST_MCS, None, 0.0, 0)


def test_numpy_snr_is_accepted() -> None:
    la = link()
    for _ in range(4):
        la.observe(np.float32(40.0), np.bool_(True))  # type: ignore[arg-type]
    assert la.mcs == LADDER[-1]


@pytest.mark.parametrize("snr", [math.nan, math.inf, "12", None, np.float32("nan")])
def test_observe_refuses_a_non_number(snr: object) -> None:
    with pytest.raises(ValueError, match="snr_db"):
        link().observe(snr, True)  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [
    ("alpha", 0.0), ("alpha", 1.5), ("alpha", math.nan),
    ("up_margin_db", math.inf), ("down_margin_db", 2.0),  # above up_margin_db
    ("up_after", 0), ("up_after", 2.5), ("up_after", True),
    ("olla_up_db", -1.0), ("olla_down_db", -0.1), ("olla_max_db", -1.0),
    ("start_mcs", "BPSK-1/2"), ("min_mcs", 3), ("max_mcs", "QPSK-1/2"),
    ("skip_dominated", 1),
])
def test_bad_config_names_the_parameter(field: str, value: object) -> None:
    kwargs = {field: value}
    if field == "max_mcs":  # a ceiling under the floor
        kwargs["min_mcs"] = "QPSK-3/4"
        kwargs["start_mcs"] = "QPSK-3/4"
    with pytest.raises(ValueError, match=field):
        LinkAdaptationConfig(**kwargs)  # type: ignore[arg-type]


def test_start_outside_floor_and_ceiling_is_refused() -> None:
    with pytest.raises(ValueError, match="start_mcs"):
        LinkAdaptationConfig(min_mcs="16QAM-1/2")  # start stays at QPSK-1/2


# ---- the measured table -----------------------------------------------------------------

def test_shipped_table_covers_the_ladder_and_increases() -> None:
    tables = load_thresholds()
    assert "P2.5" in tables
    for row in tables.values():
        assert list(row) == LADDER
        assert all(a < b for a, b in itertools.pairwise(row.values()))
    t = thresholds("P2.5")
    assert 2.0 < t["QPSK-1/2"] < 8.0 and 17.0 < t["64QAM-5/6"] < 25.0


def test_shipped_file_states_its_provenance() -> None:
    from importlib import resources
    doc = json.loads(resources.files("relaysec").joinpath("data/mcs_thresholds.json")
                     .read_text("utf-8"))
    assert doc["payload_bytes"] == 500 and doc["target_per"] == 0.01
    assert "P2.5" in doc["tables"]
    for name, table in doc["tables"].items():
        prov = table["provenance"]
        assert prov["command"].startswith("python -m benchmarks.mcs_thresholds")
        assert prov["profile"] == name == table["applies_to"][0]
        for key in ("bursts_per_point", "date", "git_commit", "seed"):
            assert prov[key]


def test_every_profile_has_a_table() -> None:
    assert set(load_thresholds()) == set(phy.profiles())


def _doc() -> dict:
    return {"format": "relaysec.mcs_thresholds/1",
            "tables": {"P2.5": {"applies_to": ["P2.5"],
                                "mcs": {m: {"snr_db": v} for m, v in TABLE.items()}}}}


def _broken(kind: str) -> str:
    doc = _doc()
    mcs = doc["tables"]["P2.5"]["mcs"]
    if kind == "not json":
        return "{not json"
    if kind == "format":
        doc["format"] = "something/2"
    elif kind == "missing mcs":
        del mcs["64QAM-2/3"]
    elif kind == "nan":
        mcs["QPSK-3/4"]["snr_db"] = "NaN"
    elif kind == "not increasing":
        mcs["16QAM-3/4"]["snr_db"] = 1.0
    elif kind == "unknown profile":
        doc["tables"]["P2.5"]["applies_to"] = ["7MHz"]
    elif kind == "no tables":
        doc["tables"] = {}
    return json.dumps(doc)


@pytest.mark.parametrize(("kind", "says"), [
    ("not json", "not JSON"), ("format", "format"), ("missing mcs", "lacks 64QAM-2/3"),
    ("nan", "not a finite number"), ("not increasing", "not increasing"),
    ("unknown profile", "unknown profile '7MHz'"), ("no tables", "tables"),
])
def test_broken_threshold_file_is_a_clear_error(tmp_path, kind: str, says: str) -> None:
    p = tmp_path / "t.json"
    p.write_text(_broken(kind), encoding="utf-8")
    with pytest.raises(ThresholdTableError, match=says) as e:
        load_thresholds(str(p))
    assert str(p) in str(e.value)


def test_missing_threshold_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ThresholdTableError, match="cannot read"):
        load_thresholds(str(tmp_path / "absent.json"))


def test_a_given_table_is_checked_too() -> None:
    bad = dict(TABLE, **{"64QAM-5/6": 0.0})
    with pytest.raises(ThresholdTableError, match="not increasing"):
        LinkAdaptation(table=bad)


# ---- how the table is made (benchmarks/mcs_thresholds.py) ---------------------------------

def test_threshold_fit_recovers_a_known_curve() -> None:
    from benchmarks.mcs_thresholds import fit_threshold
    # log10 PER = -1 - (s - 5): PER 10 % at 5 dB, 1 % at 6 dB; expected error counts
    pts = [{"snr_db": s, "bursts": 100_000, "errors": round(1e5 * 10 ** (-1 - (s - 5)))}
           for s in (5.0, 5.25, 5.5, 5.75, 6.0, 6.25, 6.5)]
    for p in pts:
        p["per"] = p["errors"] / p["bursts"]
    fit = fit_threshold(pts, 0.01)
    assert fit["esn0_db"] == pytest.approx(6.0, abs=0.01)
    assert fit["slope_db_per_decade"] == pytest.approx(1.0, abs=0.01)
    assert 0 < fit["ci95_db"] < 0.05


def _run(profile: str, spots: dict[str, float]) -> dict:
    rows = [{"mcs": m, "snr_db": 5.0 + i, "esn0_db": 5.0 + i, "ci95_db": 0.1}
            for i, m in enumerate(LADDER)]
    return {"profile": profile, "payload": 500, "target_per": 0.01, "command": "python -m x",
            "bursts": 2000, "coarse": 200, "step": 0.25, "seed": 1, "date": "2026-01-01",
            "git_commit": "abc", "machine": dict.fromkeys(("cpu_model", "python", "numpy",
                                                           "numba"), "?"),
            "thresholds": rows,
            "spot_checks": [{"profile": p, "mcs": "QPSK-1/2", "snr_db": 5.0 + d,
                             "ci95_db": 0.1, "delta_db": d} for p, d in spots.items()]}


def test_data_file_merge_gives_each_profile_one_table() -> None:
    from benchmarks.mcs_thresholds import merge_data
    doc = merge_data(None, _run("P2.5", {"5MHz": 0.1, "10MHz": 1.0, "20MHz": 2.0}), 0.3)
    assert doc["tables"]["P2.5"]["applies_to"] == ["P2.5", "5MHz"]
    assert "10MHz" in doc["profiles_without_table"]
    doc = merge_data(doc, _run("10MHz", {"10MHz-cp16": 0.0, "5MHz": 0.2}), 0.3)
    # the latest measurement claims 5MHz; P2.5 keeps its own profile
    assert doc["tables"]["10MHz"]["applies_to"] == ["10MHz", "10MHz-cp16", "5MHz"]
    assert doc["tables"]["P2.5"]["applies_to"] == ["P2.5"]
    doc = merge_data(doc, _run("5MHz", {"P2.5": 0.0}), 0.3)
    assert doc["tables"]["5MHz"]["applies_to"] == ["5MHz"]   # P2.5 is another table's own
    tables = parse_thresholds(doc)
    assert tables["10MHz-cp16"] == tables["10MHz"] and "20MHz" not in tables
