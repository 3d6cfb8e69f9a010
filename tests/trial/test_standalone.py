"""`relaysec node`: each station in its own runner (own thread here, own host in the lab), with
nothing shared but the air — a wall-clock loopback medium standing in for four Plutos."""

from __future__ import annotations

import threading

import pytest

from hw.loopback import Medium, WallClock
from relaysec.cli import main
from relaysec.standalone import NodeRunner
from tests.emu.realtime import realtime_slot
from tests.trial.helpers import fast_config

# The air runs at a third of real time (WallClock speed, and the same for the runtime through
# schedule.ota_speed) so that four or five real-time nodes in one process keep up on a 2-core CI
# machine whose other core runs numba-heavy tests (at half speed it lost bursts there).
SPEED = 1 / 4
NODE_SETTINGS = [("schedule.ota_frame_ms", 100.0), ("schedule.ota_guard_ms", 8.0),
                 ("traffic.packets_per_direction", 6), ("traffic.drain_frames", 30),
                 ("traffic.ota_scale", 1.0),
                 ("security.max_retries", 14), ("schedule.ota_speed", SPEED),
                 ("traffic.min_delivery", 0.75)]


def _run_nodes(cfg: dict, *, stop_when_done: tuple[str, ...], seed: int = 4,
               air_s: float = 15.0, only: tuple[str, ...] | None = None) -> dict[str, dict]:
    """Every station of *cfg* (or those in *only*) in its own NodeRunner thread on one
    wall-clock loopback medium; once the stations in *stop_when_done* (the AMSs, which stop by
    themselves) have finished, the others are stopped. Returns the reports by station name."""
    medium = Medium(2.8e6, seed=seed, clock=WallClock(2.8e6, speed=SPEED),
                    start_delay_max=2000.0)
    names = [s["name"] for s in cfg["stations"] if only is None or s["name"] in only]
    radios = {n: medium.add_radio(n, ppm=0.5 * i) for i, n in enumerate(names)}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            medium.set_link(a, b, snr_db=28.0)
    reports: dict[str, dict] = {}
    runners = {n: NodeRunner(cfg, n, radio=radios[n]) for n in names}

    def run(name: str) -> None:
        reports[name] = runners[name].run(air_s)   # air seconds; an AMS stops when done

    threads = {n: threading.Thread(target=run, args=(n,)) for n in names}
    for t in threads.values():
        t.start()
    for n in stop_when_done:
        threads[n].join(120)
    for _ in range(10):            # give the ABS a little more air for the last UL packets
        if any(reports.get(n) is None for n in stop_when_done):
            break
        threads["ABS"].join(0.2)
    for r in runners.values():
        r.stop()
    for t in threads.values():
        t.join(60)
    return reports


@pytest.mark.slow
def test_four_independent_nodes_run_the_scenario_over_a_shared_air():
    with realtime_slot():
        _test_four_independent_nodes_run_the_scenario_over_a_shared_air()


def _test_four_independent_nodes_run_the_scenario_over_a_shared_air():
    cfg = fast_config(*NODE_SETTINGS)
    reports = _run_nodes(cfg, stop_when_done=("AMS",))
    ams, abs_ = reports["AMS"], reports["ABS"]
    assert ams["ok"], ams["reason"]
    assert abs_["ok"], abs_["reason"]
    assert reports["ARS-1"]["ok"] and reports["ARS-2"]["ok"]
    assert ams["bytes"]["corrupted"] == 0 and abs_["bytes"]["corrupted"] == 0
    assert ams["flows"]["flow1"]["delivered"] > 0      # DL before the handover
    assert ams["flows"]["flow3"]["delivered"] > 0      # DL after the handover
    assert abs_["flows"]["flow2"]["delivered"] > 0     # UL before the handover
    assert abs_["flows"].get("flow4", {}).get("delivered", 0) > 0   # UL after the handover
    assert ams["sync"]["AMS"]["locked"]
    # the one-AMS cell keeps its milestone names (per-AMS ones beside them)
    assert {"ams_entered", "predistributed", "handover_seen",
            "AMS:ams_entered"} <= set(abs_["milestones"])
    assert abs_["per_ams"]["AMS"]["ok"]


@pytest.mark.slow
def test_two_amss_behind_one_relay_run_as_independent_nodes():
    with realtime_slot():
        _test_two_amss_behind_one_relay_run_as_independent_nodes()


def _test_two_amss_behind_one_relay_run_as_independent_nodes():
    """Five nodes (ABS, ARS-1, ARS-2 and two AMSs behind ARS-1; AMS-1 moves to ARS-2, AMS-2
    stays): the ABS serves each AMS on its own script, every flow is checked where it arrives."""
    stations = [
        {"name": "ABS", "role": "abs", "station_id": 0xBB0000000001},
        {"name": "ARS-1", "role": "ars", "station_id": 0x0A0000000011, "parent": "ABS"},
        {"name": "ARS-2", "role": "ars", "station_id": 0x0A0000000012, "parent": "ABS"},
        {"name": "AMS-1", "role": "ams", "station_id": 0x0C0000000101, "serving": "ARS-1",
         "handover_target": "ARS-2"},
        {"name": "AMS-2", "role": "ams", "station_id": 0x0C0000000102, "serving": "ARS-1"},
    ]
    cfg = fast_config(("stations", stations), *NODE_SETTINGS)
    reports = _run_nodes(cfg, stop_when_done=("AMS-1", "AMS-2"), seed=5)
    abs_, mover, stayer = reports["ABS"], reports["AMS-1"], reports["AMS-2"]
    for name, rep in reports.items():
        assert rep["ok"], (name, rep["reason"])
        assert rep["bytes"] == {"corrupted": 0, "duplicates": 0}, name
    # flow ids from each AMS's place in the config: AMS-1 1..4, AMS-2 5..8 (no flow 2 for it)
    assert {k: (f["ams"], f["label"]) for k, f in abs_["flows"].items()} == {
        "flow1": ("AMS-1", "DL1"), "flow2": ("AMS-1", "UL1"), "flow3": ("AMS-1", "DL2"),
        "flow4": ("AMS-1", "UL2"), "flow5": ("AMS-2", "DL1"), "flow6": ("AMS-2", "UL1")}
    for fid in ("flow2", "flow4", "flow6"):                 # UL of both, before/after handover
        assert abs_["flows"][fid]["delivered_packets"] >= 5, (fid, abs_["flows"])
    assert set(abs_["per_ams"]) == {"AMS-1", "AMS-2"}
    assert all(row["ok"] for row in abs_["per_ams"].values())
    ms = abs_["milestones"]
    assert {"AMS-1:ams_entered", "AMS-2:ams_entered", "AMS-1:predistributed",
            "AMS-1:handover_seen", "ams_entered", "handover_seen"} <= set(ms)
    assert not any(k.startswith("AMS-2:") and k != "AMS-2:ams_entered" for k in ms)
    assert set(mover["flows"]) == {"flow1", "flow2", "flow3", "flow4"}
    assert mover["flows"]["flow3"]["delivered_packets"] > 0       # DL after the handover
    assert {"entered", "handover_complete"} <= set(mover["milestones"])
    assert set(stayer["flows"]) == {"flow5", "flow6"}             # DL1 here, UL1 sent
    assert stayer["flows"]["flow5"]["delivered_packets"] >= 5
    assert "entered" in stayer["milestones"] and "handover_started" not in stayer["milestones"]
    assert list(stayer["per_ams"]) == ["AMS-2"] and stayer["per_ams"]["AMS-2"]["ok"]


def test_node_cli_config_errors(capsys):
    assert main(["node", "--role", "ars", "-q"]) == 2
    assert "--name" in capsys.readouterr().err
    assert main(["node", "--role", "abs", "--print-config"]) == 0
    assert 'backend = "pluto"' in capsys.readouterr().out


def test_node_without_uri_fails_with_the_reason(capsys):
    rc = main(["node", "--role", "ams", "--duration", "1", "-q"])
    out = capsys.readouterr().out
    assert rc == 1 and "uri" in out


#: Few, quick retries, so that attempts run out within seconds of air.
GIVE_UP = [("security.max_retries", 2), ("security.entry_attempts", 2), ("security.rto_s", 0.02)]


def _cell(**ams: str) -> dict:
    """ABS, ARS-1, ARS-2 and an AMS set up by *ams*; a test runs only some of them, so the
    others are in the config (every id is known) but not on the air."""
    stations = [
        {"name": "ABS", "role": "abs", "station_id": 0xBB0000000001},
        {"name": "ARS-1", "role": "ars", "station_id": 0x0A0000000011, "parent": "ABS"},
        {"name": "ARS-2", "role": "ars", "station_id": 0x0A0000000012, "parent": "ABS"},
        {"name": "AMS", "role": "ams", "station_id": 0x0C0000000101, **ams},
    ]
    return fast_config(("stations", stations), *NODE_SETTINGS, *GIVE_UP)


@pytest.mark.slow
def test_an_ams_whose_entry_keeps_failing_stops_and_says_why():
    """The AMS's serving ARS never answers: after ``security.entry_attempts`` failed entries the
    node stops by itself (not at the end of its duration) and its report gives the reason."""
    with realtime_slot():
        cfg = _cell(serving="ARS-1")
        reports = _run_nodes(cfg, stop_when_done=("AMS",), air_s=40.0, only=("ABS", "AMS"))
    ams = reports["AMS"]
    assert not ams["ok"]
    assert ams["reason"].startswith("network entry via ARS-1 failed 2 times (last: EntryFailed")
    assert ams["timing"]["air_s"] < 30.0     # it gave up; it did not run out its 40 s
    assert "entered" not in ams["milestones"]


@pytest.mark.slow
def test_an_ams_whose_handover_target_stays_silent_retries_then_stops_and_says_why():
    """The handover target ARS-2 is not on the air: the AMS hands over again after the role's
    retries run out (it still has its serving ARS meanwhile), then gives up with the reason."""
    with realtime_slot():
        cfg = _cell(serving="ARS-1", handover_target="ARS-2")
        cfg["traffic"]["drain_frames"] = 10     # hand over sooner: only the handover matters
        reports = _run_nodes(cfg, stop_when_done=("AMS",), air_s=60.0,
                             only=("ABS", "ARS-1", "AMS"))
    ams = reports["AMS"]
    assert not ams["ok"]
    assert ams["reason"] == "handover to ARS-2 failed 2 times (target silent)"
    assert "handover_started" in ams["milestones"]
    assert "handover_complete" not in ams["milestones"]
    assert ams["timing"]["air_s"] < 50.0


def test_a_handover_refused_as_busy_is_started_again_next_frame_not_counted():
    """The role refuses a handover while a re-authentication's key agreement finishes
    (``ProtocolError``, reason ``busy``): the node neither crashes nor counts an attempt, and
    starts the handover in a later frame."""
    from types import SimpleNamespace

    from stack.errors import ProtocolError

    cfg = _cell(serving="ARS-1", handover_target="ARS-2")
    runner = NodeRunner(cfg, "AMS", radio=object())
    calls: list[float] = []

    def handover(target: int, now: float) -> None:
        calls.append(now)
        if len(calls) == 1:
            raise ProtocolError("re-authentication key agreement in progress", reason="busy")

    runner.role = SimpleNamespace(handover=handover)
    runner.net = SimpleNamespace(now=1.0)
    runner._ho_due = True
    assert runner._start_handover("ARS-2") is False
    assert runner.ho_attempts == 0 and runner._ho_due       # refused: still due, not counted
    runner.net.now = 1.1
    assert runner._start_handover("ARS-2") is False
    assert runner.ho_attempts == 1 and not runner._ho_due and calls == [1.0, 1.1]
    # any other refusal is a bug and is raised
    runner.role = SimpleNamespace(handover=lambda t, n: (_ for _ in ()).throw(
        ProtocolError("handover needs an attached station with keys")))
    with pytest.raises(ProtocolError):
        runner._start_handover("ARS-2")
