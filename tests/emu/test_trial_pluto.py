"""The whole ``relaysec trial`` over three emulated Plutos: ABS, one ARS and the AMS (handover from
the ARS to the ABS itself), through the real Pluto code path — ``relaysec emulate`` in its own
process, ``--backend pluto --uris ip:127.0.0.1:PORT …`` through hw.pluto, pyadi-iio, pylibiio and
the libiio C library — with short settings. The emulated air runs on the wall clock, as hardware
does, so this is also the timing rehearsal the issue asks for; at a third of real time
(``relaysec emulate --speed 1/3`` and ``schedule.ota_speed = 1/3``, allowed because every URI is
an emulator on loopback), so that a busy second test worker on CI's two cores does not cost
bursts through TX timing jitter. Then the same scenario as three
``relaysec node`` processes, one per station, as on three hosts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaysec.cli import main
from relaysec.trial import PHASES
from tests.emu.conftest import LAB, ROOT, emulate3
from tests.emu.realtime import realtime_slot

pytestmark = [pytest.mark.libiio, pytest.mark.slow]

#: Air speed of the emulator and the runtime (a third of real time: three times the slack for
#: every burst, so the rehearsal holds while the other xdist worker runs CPU-heavy tests).
SPEED = 1 / 3
#: Short settings: few packets, a short TEK life; 100 ms frames and 8 ms guards from the lab file.
#: One packet per burst: the data path has no ARQ, so with two per burst a single lost burst costs
#: a flow a quarter of its packets. min_delivery is the lab file's.
SHORT = ["--set", "traffic.packets_per_direction=8", "--set", "traffic.per_frame=1",
         "--set", "traffic.ota_scale=1",
         "--set", f"schedule.ota_speed={SPEED}",
         "--set", "security.tek_lifetime_s=0.3", "--set", "traffic.drain_frames=8",
         "--set", "security.max_retries=14"]


@pytest.fixture
def slow_emulated_plutos() -> Iterator[list[str]]:
    """Three emulated Plutos at :data:`SPEED` (``relaysec emulate --radios 3 --speed …``)."""
    with realtime_slot():
        yield from emulate3(SPEED)


def test_rehearsals_on_three_emulated_plutos(
        slow_emulated_plutos: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """One test, run in sequence on one emulator, so the two rehearsals (each several real-time
    threads or processes) never share the two cores with each other under ``pytest -n 2``."""
    _trial_passes_with_its_report(slow_emulated_plutos, tmp_path, capsys)
    _three_node_processes_run_the_scenario(slow_emulated_plutos, tmp_path)


def _trial_passes_with_its_report(emulated_plutos: list[str], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``relaysec trial --backend pluto --uris …`` (the lab file sets the backend)."""
    out_json = tmp_path / "report.json"
    rc = main(["trial", "--config", str(LAB), "--uris", *emulated_plutos, *SHORT,
               "--json", str(out_json), "--quiet"])
    text = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert rc == 0, text
    assert text.startswith("relaysec trial: PASS"), text
    assert "backend pluto" in text
    assert report["ok"] and report["reason"] is None
    assert [p["name"] for p in report["phases"]] == list(PHASES)
    assert all(p["ok"] for p in report["phases"])
    assert report["bytes"]["corrupted"] == 0 and report["bytes"]["duplicates"] == 0
    assert report["bytes"]["delivered"] > 0
    assert report["handover"]["source"] == "ARS-1" and report["handover"]["target"] == "ABS"
    # every station heard the others over the emulated air, at about the configured SNR
    for link in ("ABS->ARS-1", "ARS-1->ABS", "ARS-1->AMS", "AMS->ARS-1", "ABS->AMS", "AMS->ABS"):
        assert report["links"][link]["bursts_rx"] > 0, link
        assert 20 < report["links"][link]["snr_db"] < 30, (link, report["links"][link])
    # only links something was received on, never a station's own (report artefacts)
    assert all(a != b and (lk["bursts_rx"] or lk["crc_fail"])
               for name, lk in report["links"].items() for a, b in [name.split("->")])
    # per radio, from the cores' flags: every radio streams (bursts placed on its timeline);
    # an overflow or underflow breaks the timeline and is counted (how many depends on the
    # machine's load: each one made the radio measure its offset again, and the trial passed)
    assert set(report["radios"]) == {"ABS", "ARS-1", "AMS"}
    for name, r in report["radios"].items():
        assert r["tx_bursts"] > 0 and r["rx_samples"] > 0, (name, r)
        assert r["overflows"] >= 0 and r["underflows"] >= 0, (name, r)
    assert "Radios   ABS: overflows " in text
    # over the air the report carries each node's sync state: locked to the ABS, its stream
    # timeline, and the AMS's UL grants (heard, and how many came after their slot)
    sync = report["sync"]
    assert set(sync) == {"ABS", "ARS-1", "AMS"} and all(e["locked"] for e in sync.values())
    assert all("underflows" in e["timeline"] for e in sync.values())
    # the stream workers' TX threads asked for nice -10: what each got (root: -10), reported
    # after the radios closed too
    assert all(isinstance(e["timeline"].get("worker_nice"), int) for e in sync.values())
    g = sync["AMS"]["ul_grants"]
    assert g["heard"] > 0 and 0 <= g["late"] <= g["heard"]
    # and how busy the one loop serving the three nodes was (a "Host" line of the summary)
    loop = report["main_loop"]
    assert 0.0 < loop["busy"] < 1.0 and loop["passes"] > 0
    # its thread's own CPU and its wait for a core (Linux schedstat) are parts of its time
    assert loop["cpu"] > 0.0 and 0.0 <= loop["waited_for_core"] < 1.0
    assert loop["pass_ms"]["median"] <= loop["pass_ms"]["p90"] <= loop["pass_ms"]["max"]
    assert "Host     main loop busy" in text
    # the air took wall time: 100 ms frames of air, at half real time
    t = report["timing"]
    assert t["sim_s"] == pytest.approx(t["frames"] * 0.100, rel=0.05)  # air seconds
    assert t["wall_s"] > t["sim_s"] / SPEED * 0.9


NODE_SHORT = ["--set", "traffic.packets_per_direction=6", *SHORT[2:]]
#: Air seconds each node runs at most. The AMS's scenario takes ~8 s of air; 40 s (120 s of
#: wall clock at SPEED) ends it with its own report -- and the reason -- well inside the
#: test's 150 s wait if it stalls. The ABS and ARS serve until they are sent SIGTERM.
NODE_DURATION = {"abs": 60, "ars": 60, "ams": 40}


def _logs(tmp_path: Path) -> str:
    """The three nodes' output (the last 60 lines each), for a failure message."""
    parts = []
    for role in ("abs", "ars", "ams"):
        f = tmp_path / f"{role}.log"
        lines = f.read_text(errors="replace").splitlines() if f.exists() else ["(no log)"]
        parts.append(f"--- {role}.log ---\n" + "\n".join(lines[-60:]))
    return "\n".join(parts)


def _three_node_processes_run_the_scenario(emulated_plutos: list[str], tmp_path: Path) -> None:
    """Three hosts rehearsed on one machine: three ``relaysec node --role … --config
    lab-3pluto.toml --uri …`` processes (ABS, ARS-1, AMS), nothing shared but the emulated air.
    The AMS enters through ARS-1, hands over to the ABS and stops; the ABS and ARS are then
    stopped with SIGTERM, as a lab script would, and every node must report success with its
    share of the data delivered."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for role, uri in zip(("abs", "ars", "ams"), emulated_plutos, strict=True):
            log = (tmp_path / f"{role}.log").open("wb")
            procs[role] = subprocess.Popen(
                [sys.executable, "-m", "relaysec", "node", "--role", role, "--config", str(LAB),
                 "--uri", uri, "--duration", str(NODE_DURATION[role]),
                 "--json", str(tmp_path / f"{role}.json"), *NODE_SHORT],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            rc = procs["ams"].wait(timeout=150)
        except subprocess.TimeoutExpired:
            pytest.fail("the AMS node did not stop within its duration:\n"
                        + _logs(tmp_path))
        assert rc == 0, _logs(tmp_path)
        for role in ("abs", "ars"):
            procs[role].send_signal(signal.SIGTERM)
        for role in ("abs", "ars"):
            assert procs[role].wait(timeout=30) == 0, _logs(tmp_path)
    finally:
        # SIGTERM first: a node stopped so still writes its report and summary (in its log,
        # shown by a failure above) -- only one that does not stop then is killed
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    rep = {r: json.loads((tmp_path / f"{r}.json").read_text()) for r in ("abs", "ars", "ams")}
    for r, report in rep.items():
        assert report["ok"], (r, report["reason"])
        assert report["bytes"] == {"corrupted": 0, "duplicates": 0}, r
        sync = next(iter(report["sync"].values()))
        assert sync["locked"], r
        # the node's Pluto streamed: its TX->RX offset was measured by hearing its probe
        assert sync["timeline"]["calibrations"] >= 1 and sync["timeline"]["bursts"] > 0, r
    ams, abs_ = rep["ams"], rep["abs"]
    assert {"entered", "handover_complete"} <= set(ams["milestones"])
    assert {"ams_entered", "handover_seen"} <= set(abs_["milestones"])
    # the far ends' flows arrived (the lab file's min_delivery 0.75 of 6 packets: 5)
    for report, flows in ((ams, ("flow1", "flow3")), (abs_, ("flow2", "flow4"))):
        for f in flows:
            assert report["flows"][f]["delivered"] >= 5 * 120, (f, report["flows"])
    # a node lists no link it only transmitted on (its PER is known only at the far end)
    for r, report in rep.items():
        for name, lk in report["links"].items():
            assert lk["bursts_rx"] or lk["crc_fail"], (r, name)
    assert rep["abs"]["security"]["keys"], "the ABS node reports its key identifiers"
    assert "entered" in rep["ars"]["milestones"]
