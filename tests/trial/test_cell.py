"""A cell of any size: groups of AMSs in the config, every phase for every AMS, a group handover,
per-AMS and cell figures in the report (issue 12)."""

from __future__ import annotations

import pytest

from relaysec.config import load_config
from relaysec.config_schema import ConfigError
from relaysec.trial import run_trial
from tests.trial.helpers import FAST

BASE = [
    {"name": "ABS", "role": "abs", "station_id": 0xBB0000000001},
    {"name": "ARS-1", "role": "ars", "station_id": 0x0A0000000011, "parent": "ABS"},
    {"name": "ARS-2", "role": "ars", "station_id": 0x0A0000000012, "parent": "ABS"},
]


def _cfg(amss: list[dict], *extra: tuple[str, object], links: list | None = None) -> dict:
    over: list[tuple[str, object]] = [("stations", BASE + amss), *FAST, *extra]
    if links is not None:
        over.append(("links", links))
    return load_config(overrides=over)


def test_a_group_entry_expands_to_numbered_stations_with_consecutive_ids() -> None:
    cfg = _cfg([{"name": "M", "role": "ams", "count": 3, "station_id": 0x0C0000000100,
                 "serving": "ARS-1", "handover_target": "ARS-2"}],
               links=[{"a": "ARS-1", "b": "M", "snr_db": 12.0}])
    amss = [s for s in cfg["stations"] if s["role"] == "ams"]
    assert [(s["name"], s["station_id"]) for s in amss] == [
        ("M-1", 0x0C0000000100), ("M-2", 0x0C0000000101), ("M-3", 0x0C0000000102)]
    assert all(s["serving"] == "ARS-1" and s["handover_target"] == "ARS-2" for s in amss)
    assert [(lk["a"], lk["b"], lk["snr_db"]) for lk in cfg["links"]] == [
        ("ARS-1", "M-1", 12.0), ("ARS-1", "M-2", 12.0), ("ARS-1", "M-3", 12.0)]


@pytest.mark.parametrize(("entry", "message"), [
    ({"count": 0}, "count must be an integer in 1..256"),
    ({"count": 2, "role": "ars", "parent": "ABS"}, "count applies only to role 'ams'"),
    ({"count": 2, "psk_hex": "00" * 16}, "psk_hex cannot be shared by a group"),
    ({"count": 2, "uri": "ip:192.168.2.1"}, "uri cannot be shared by a group"),
])
def test_bad_groups_are_configuration_errors_naming_the_key(entry: dict, message: str) -> None:
    st = {"name": "M", "role": "ams", "station_id": 0x0C0000000100, "serving": "ARS-1", **entry}
    if st["role"] != "ams":
        st.pop("serving")
    with pytest.raises(ConfigError, match=message):
        _cfg([{"name": "AMS", "role": "ams", "station_id": 0x0C0000000001,
               "serving": "ARS-1"}, st])


def test_a_station_the_scenario_cannot_place_is_an_error() -> None:
    with pytest.raises(ConfigError, match="an AMS needs 'serving'"):
        _cfg([{"name": "AMS", "role": "ams", "station_id": 0x0C0000000001}])
    with pytest.raises(ConfigError, match="serving 'ARS-9' is not a station"):
        _cfg([{"name": "AMS", "role": "ams", "station_id": 0x0C0000000001,
               "serving": "ARS-9"}])
    with pytest.raises(ConfigError, match="at least one station with role 'ams'"):
        _cfg([])


def test_every_phase_runs_for_every_ams_with_a_group_handover() -> None:
    """Two AMSs behind ARS-1 move together to ARS-2 (AK pre-distributed for each); one AMS at
    the ABS stays. Every AMS carries traffic in every phase; the report has per-AMS rows."""
    cfg = _cfg([{"name": "M", "role": "ams", "count": 2, "station_id": 0x0C0000000100,
                 "serving": "ARS-1", "handover_target": "ARS-2"},
                {"name": "D", "role": "ams", "station_id": 0x0C0000000200, "serving": "ABS"}],
               ("phy.frame_ms", 10.0), ("traffic.payload_bytes", 100))
    report, _ = run_trial(cfg)
    assert report["ok"], report["reason"]
    rows = report["per_ams"]
    assert set(rows) == {"M-1", "M-2", "D"}
    for name, row in rows.items():
        assert row["delivered"] > 0 and row["corrupted"] == 0 and row["duplicates"] == 0, name
        assert row["goodput_bps"] > 0
    assert rows["M-1"]["now_served_by"] == rows["M-2"]["now_served_by"] == "ARS-2"
    assert rows["D"]["now_served_by"] == "ABS" and "interruption_s" not in rows["D"]
    assert all(rows[n]["interruption_s"] > 0 for n in ("M-1", "M-2"))
    assert report["handover"]["movers"] == 2
    # AK pre-distribution and the release of the old context, for each mover
    events = "\n".join(report["events"])
    assert events.count("AkTransferred") >= 4          # entry (2) + pre-distribution (2)
    assert events.count("ContextReleased") >= 2
    cell = report["cell"]
    assert cell["ams"] == 3 and 0.9 <= cell["jain"] <= 1.0
    assert cell["goodput_bps"] == pytest.approx(sum(r["goodput_bps"] for r in rows.values()))
    # traffic_2 went through the targets: ARS-2 relayed the movers' data, ARS-1 nothing new
    assert report["phases"][-1]["ok"] and "via their targets" in report["phases"][-1]["detail"]


def test_a_cell_without_handover_targets_skips_the_handover_phase() -> None:
    cfg = _cfg([{"name": "AMS", "role": "ams", "station_id": 0x0C0000000001,
                 "serving": "ARS-1"}])
    report, _ = run_trial(cfg)
    assert report["ok"], report["reason"]
    ho = next(p for p in report["phases"] if p["name"] == "handover")
    assert ho["ok"] and ho["detail"].startswith("skipped")


def test_the_example_cell_passes() -> None:
    """examples/cell.toml as the README shows it: ten mobiles, a group handover of four, two
    edge mobiles served at the robust MCS."""
    from pathlib import Path

    cfg = load_config(Path(__file__).parents[2] / "examples" / "cell.toml",
                      overrides=[("report.progress", False)])
    report, _ = run_trial(cfg)
    assert report["ok"], report["reason"]
    rows = report["per_ams"]
    assert len(rows) == 10 and report["handover"]["movers"] == 4
    assert {rows[n]["mcs"] for n in ("EDGE-1", "EDGE-2")} == {"QPSK-1/2"}
    assert all(rows[f"AMS-{i}"]["now_served_by"] == "ARS-2" for i in range(1, 5))
