"""``relaysec emulate`` and ``relaysec replay``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hw.loopback import Medium
from hw.sigmf import SigMFRecorder, read_recording
from relaysec.cli import main
from relaysec.cmd_replay import decode

ROOT = Path(__file__).resolve().parents[2]


def _print_xml(uri: str) -> bytes:
    host, port = uri.removeprefix("ip:").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        f = s.makefile("rb")
        s.sendall(b"PRINT\r\n")
        n = int(f.readline())
        return f.read(n)


def test_emulate_prints_uris_and_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaysec", "emulate", "--radios", "3", "--seed", "4",
         "--snr", "20"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        uris = [proc.stdout.readline().decode().strip() for _ in range(3)]
        assert all(u.startswith("ip:127.0.0.1:") for u in uris), uris
        assert len(set(uris)) == 3
        for uri in uris:
            assert b'name="ad9361-phy"' in _print_xml(uri)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_emulate_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "--radios", "0"]) == 2
    assert "at least one radio" in capsys.readouterr().err


def _capture(path: Path, annotate: bool = True) -> list[int]:
    """Three bursts from 'a' recorded at 'b' on the loopback medium; returns their starts."""
    import phy

    modem = phy.BurstModem("P2.5")
    m = Medium(2.8e6, seed=1)
    a = m.add_radio("a", start_delay=0)
    b = m.add_radio("b", start_delay=0)
    m.set_link("a", "b", snr_db=25)
    starts = []
    with SigMFRecorder(path, sample_rate=2.8e6, frequency_hz=2.4e9, seed=1, radio="b",
                       config={"phy": {"profile": "P2.5", "mcs": "QPSK-1/2"}}) as rec:
        for i in range(3):
            iq = modem.modulate(bytes(range(60)) * (i + 1), src=0x11, dst=0x22)
            t0 = b.time
            at = a.transmit(iq, at=t0 + 500)
            rec.write(b.receive(iq.size + 2000))
            a.skip(iq.size + 2000)
            starts.append(round(at))
            if annotate:
                rec.annotate(round(at), iq.size, crc_ok=True, src=0x11, dst=0x22)
    return starts


def test_replay_finds_the_recorded_bursts(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    starts = _capture(tmp_path / "b")
    assert main(["replay", str(tmp_path / "b.sigmf-meta"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"] == "P2.5" and out["radio"] == "b"
    assert [b["length"] for b in out["bursts"]] == [60, 120, 180]
    assert all(b["crc_ok"] and b["src"] == 0x11 and b["dst"] == 0x22 for b in out["bursts"])
    assert np.max(np.abs(np.array([b["start"] for b in out["bursts"]]) - starts)) <= 16
    assert out["annotated_found"] == out["annotated_bursts"] == 3
    assert main(["replay", str(tmp_path / "b.sigmf-meta")]) == 0
    text = capsys.readouterr().out
    assert "3 bursts, 3 with a good CRC" in text


@pytest.mark.parametrize("chunk", [700, 1500, 4000, 100_000])
def test_chunked_decoding_finds_each_burst_once(tmp_path: Path, chunk: int) -> None:
    import phy

    starts = _capture(tmp_path / "c", annotate=False)
    samples = read_recording(tmp_path / "c").samples
    # a small max_payload keeps the overlap short, so bursts straddle chunk boundaries
    bursts = decode(samples, phy.BurstModem("P2.5", max_payload=256), chunk=chunk)
    assert [len(b.payload) for b in bursts] == [60, 120, 180]
    assert np.max(np.abs(np.array([b.start for b in bursts]) - starts)) <= 16


def test_replay_reports_unreadable_captures(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "none.sigmf-meta")]) == 1
    assert "no SigMF metadata" in capsys.readouterr().err
    with SigMFRecorder(tmp_path / "odd", sample_rate=1.234e6, frequency_hz=1e9) as rec:
        rec.write(np.zeros(10, np.complex64))
    assert main(["replay", str(tmp_path / "odd.sigmf-meta")]) == 1
    assert "pass --profile" in capsys.readouterr().err


def test_emulate_usb_model_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """--usb-mb-per-s/--usb-overhead-ms/--usb-jitter-ms reach the emulator's configuration;
    a bad value is refused naming the flag."""
    import argparse

    from relaysec.cmd_emulate import config_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["emulate", "--usb-mb-per-s", "30", "--usb-overhead-ms", "0.5",
                              "--usb-jitter-ms", "1.5"])
    cfg = config_from_args(args)
    assert (cfg.usb_mb_per_s, cfg.usb_overhead_ms, cfg.usb_jitter_ms) == (30.0, 0.5, 1.5)
    assert main(["emulate", "--usb-jitter-ms", "-1"]) == 2
    assert "--usb-jitter-ms must be in [0, 1000] ms" in capsys.readouterr().err


@pytest.mark.libiio
def test_emulate_prints_why_a_client_at_another_rate_is_refused() -> None:
    """A pyadi-iio client that sets 2 MS/s on a default (2.8 MS/s) air gets EINVAL on tx(), and
    ``relaysec emulate`` prints why and what to run, without -v (issue 14, item 5). The client
    runs in its own process: a pyadi object dropped after a failed push may be garbage-collected
    after its context, which crashes libiio 0.2x (pluto-iio.md, pitfall 9)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaysec", "emulate", "--radios", "1"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client = (
        "import sys, numpy as np, adi\n"
        "sdr = adi.Pluto(sys.argv[1])\n"
        "sdr.sample_rate = 2_000_000\n"
        "try:\n"
        "    sdr.tx(np.zeros(1024, complex))\n"
        "    print('sent')\n"
        "except OSError as exc:\n"
        "    print('errno', exc.errno)\n"
        "sys.stdout.flush()\n"
        "import os; os._exit(0)\n")
    try:
        assert proc.stdout is not None
        uri = proc.stdout.readline().decode().strip()
        out = subprocess.run([sys.executable, "-c", client, uri], cwd=ROOT, env=env,
                             capture_output=True, timeout=60, text=True)
        assert out.stdout.strip() == "errno 22", out
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        text = stderr.decode()
        assert "2000000 S/s" in text and "relaysec emulate --sample-rate 2000000" in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
