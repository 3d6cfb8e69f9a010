"""The whole ``relaysec trial`` over three emulated Plutos: ABS, one ARS and the AMS (handover from
the ARS to the ABS itself), through the real Pluto code path — ``relaysec emulate`` in its own
process, ``--backend pluto --uris ip:127.0.0.1:PORT …`` through hw.pluto, pyadi-iio, pylibiio and
the libiio C library — with short settings. The emulated air runs on the wall clock, as hardware
does, so this is also the timing rehearsal the issue asks for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaysec.cli import main
from relaysec.trial import PHASES

pytestmark = [pytest.mark.libiio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "examples" / "lab-3pluto.toml"

#: Short settings: few packets, a short TEK life; 100 ms frames, 8 ms guards and min_delivery 0.75
#: from the lab file. One packet per burst: the data path has no ARQ, so with two per burst a
#: single lost burst costs a 6-packet flow a third of its packets.
SHORT = ["--set", "traffic.packets_per_direction=8", "--set", "traffic.per_frame=1",
         "--set", "security.tek_lifetime_s=0.3", "--set", "traffic.drain_frames=8",
         "--set", "security.max_retries=14"]


@pytest.fixture
def emulated_plutos() -> Iterator[list[str]]:
    """``relaysec emulate --radios 3`` in its own process (its own GIL, as in a rehearsal); the
    three URIs it prints. Interrupted (Ctrl-C) at the end, and must exit cleanly."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaysec", "emulate", "--radios", "3", "--seed", "5",
         "--snr", "25"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        uris = [proc.stdout.readline().decode().strip() for _ in range(3)]
        assert all(u.startswith("ip:127.0.0.1:") for u in uris), (uris, proc.stderr.read())
        yield uris
        proc.send_signal(2)   # SIGINT
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_trial_over_three_emulated_plutos_passes_with_its_report(
        emulated_plutos: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
    # the air took wall time: 100 ms frames
    t = report["timing"]
    assert t["sim_s"] == pytest.approx(t["frames"] * 0.100, rel=0.05)
