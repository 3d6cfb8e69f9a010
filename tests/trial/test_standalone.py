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

SPEED = 1 / 3


@pytest.mark.slow
def test_four_independent_nodes_run_the_scenario_over_a_shared_air():
    with realtime_slot():
        _test_four_independent_nodes_run_the_scenario_over_a_shared_air()


def _test_four_independent_nodes_run_the_scenario_over_a_shared_air():
    # The air runs at a third of real time (WallClock speed, and the same for the runtime through
    # schedule.ota_speed) so that four real-time nodes in one process keep up on a 2-core CI
    # machine whose other core runs numba-heavy tests (at half speed it lost bursts there).
    cfg = fast_config(("schedule.ota_frame_ms", 100.0), ("schedule.ota_guard_ms", 8.0),
                      ("traffic.packets_per_direction", 6), ("traffic.drain_frames", 10),
                      ("security.max_retries", 14), ("schedule.ota_speed", SPEED),
                     ("traffic.min_delivery", 0.75))
    medium = Medium(2.8e6, seed=4, clock=WallClock(2.8e6, speed=SPEED), start_delay_max=2000.0)
    names = [s["name"] for s in cfg["stations"]]
    radios = {n: medium.add_radio(n, ppm=0.5 * i) for i, n in enumerate(names)}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            medium.set_link(a, b, snr_db=28.0)
    reports: dict[str, dict] = {}
    runners = {n: NodeRunner(cfg, n, radio=radios[n]) for n in names}

    def run(name: str) -> None:
        reports[name] = runners[name].run(15.0)   # air seconds; the AMS stops when done

    threads = {n: threading.Thread(target=run, args=(n,)) for n in names}
    for t in threads.values():
        t.start()
    threads["AMS"].join(120)
    for _ in range(10):            # give the ABS a second (of air) for the last UL packets
        if reports.get("AMS") is None:
            break
        threads["ABS"].join(0.2)
    for r in runners.values():
        r.stop()
    for t in threads.values():
        t.join(60)
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


def test_node_cli_config_errors(capsys):
    assert main(["node", "--role", "ars", "-q"]) == 2
    assert "--name" in capsys.readouterr().err
    assert main(["node", "--role", "abs", "--print-config"]) == 0
    assert 'backend = "pluto"' in capsys.readouterr().out


def test_node_without_uri_fails_with_the_reason(capsys):
    rc = main(["node", "--role", "ams", "--duration", "1", "-q"])
    out = capsys.readouterr().out
    assert rc == 1 and "uri" in out
