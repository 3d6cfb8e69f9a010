"""`relaysec trial` command line: exit codes, --print-config, --json, --plots."""

from __future__ import annotations

import json

import tomllib

from relaysec.cli import main

FAST = ["--set", "traffic.packets_per_direction=6", "--set", "security.tek_lifetime_s=0.3",
        "--quiet", "--no-msc"]


def test_print_config_is_merged_toml(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[phy]\nmcs = "QPSK-1/2"\n[[stations]]\nname = "ABS"\nrole = "abs"\n'
                   'station_id = 1\n[[stations]]\nname = "AMS"\nrole = "ams"\nstation_id = 2\n'
                   'serving = "ABS"\npsk_hex = "000102030405060708090a0b0c0d0e0f"\n')
    rc = main(["trial", "--config", str(cfg), "--seed", "9", "--set", "channel.snr_db=12",
               "--print-config"])
    out = capsys.readouterr().out
    assert rc == 0
    data = tomllib.loads(out)
    assert data["seed"] == 9 and data["phy"]["mcs"] == "QPSK-1/2"
    assert data["channel"]["snr_db"] == 12 and data["phy"]["profile"] == "P2.5"
    assert [s["name"] for s in data["stations"]] == ["ABS", "AMS"]
    assert "0001020304" not in out and data["stations"][1]["psk_hex"] == "<hidden>"


def test_config_errors_exit_2(tmp_path, capsys):
    assert main(["trial", "--set", "phy.nope=1", "--print-config"]) == 2
    assert "phy.nope" in capsys.readouterr().err
    assert main(["trial", "--config", str(tmp_path / "missing.toml")]) == 2
    assert main(["trial", "--uris", "ip:127.0.0.1:1", "--print-config"]) == 2


def test_passing_trial_exits_0_and_writes_json_and_plots(tmp_path, capsys):
    rc = main(["trial", *FAST, "--json", str(tmp_path / "r.json"), "--plots",
               str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("relaysec trial: PASS")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] is True and report["bytes"]["corrupted"] == 0
    assert {"sent", "delivered", "lost", "corrupted"} <= set(report["bytes"])
    assert all(set(p) >= {"name", "ok"} for p in report["phases"])
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert "snr_per_over_time.png" in pngs and any(p.startswith("constellation_") for p in pngs)


def test_failing_trial_exits_1(capsys):
    rc = main(["trial", *FAST, "--set", "timeouts.entry_s=0.005"])
    out = capsys.readouterr().out
    assert rc == 1
    assert out.startswith("relaysec trial: FAIL")


def test_record_writes_sigmf_per_station(tmp_path, capsys):
    from hw.sigmf import read_recording

    rc = main(["trial", *FAST, "--set", "traffic.packets_per_direction=2", "--record",
               str(tmp_path)])
    assert rc == 0
    metas = sorted(p.name for p in tmp_path.glob("*.sigmf-meta"))
    assert metas == ["ABS.sigmf-meta", "AMS.sigmf-meta", "ARS-1.sigmf-meta", "ARS-2.sigmf-meta"]
    rec = read_recording(tmp_path / "AMS.sigmf-meta")
    assert len(rec.annotations) > 0


def test_trial_over_radios_takes_the_shared_host_stream_for_keys_left_at_default(capsys):
    """One `relaysec trial --backend pluto` process drives every station's radio, so its TX
    stream is the shared-host one (relaysec.config.SHARED_HOST_STREAM); a key the user set
    keeps the user's value, and the simulator's config is left as it is."""
    from relaysec.config import SHARED_HOST_STREAM, load_config

    assert main(["trial", "--backend", "pluto", "--set", "schedule.ota_grant_delay=7",
                 "--print-config"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    assert data["pluto"]["tx_block_size"] == SHARED_HOST_STREAM["pluto.tx_block_size"] == 16800
    assert data["pluto"]["tx_kernel_buffers"] == 3
    assert data["schedule"]["ota_build_ahead_ms"] == 14.0
    assert data["schedule"]["ota_abs_build_ahead_ms"] == 20.0  # the frame reference: earlier
    assert data["schedule"]["ota_grant_delay"] == 7  # given: kept
    # a slowed emulated air leaves the host slack: the one-radio stream answers sooner
    assert main(["trial", "--backend", "pluto", "--set", "schedule.ota_speed=0.5",
                 "--set", "schedule.emulated=true", "--print-config"]) == 0, \
        capsys.readouterr().err
    slow = tomllib.loads(capsys.readouterr().out)
    assert slow["pluto"]["tx_block_size"] == 11200 and slow["schedule"]["ota_grant_delay"] == 3
    assert slow["schedule"]["ota_abs_build_ahead_ms"] == 8.0
    assert main(["trial", "--print-config"]) == 0  # loopback: the defaults
    data = tomllib.loads(capsys.readouterr().out)
    defaults = load_config()
    assert data["pluto"] == defaults["pluto"] and data["pluto"]["tx_block_size"] == 11200
    assert data["schedule"]["ota_grant_delay"] == defaults["schedule"]["ota_grant_delay"] == 3


def test_node_keeps_the_one_radio_stream():
    """`relaysec node` opens one radio: the shared-host stream is never applied to it."""
    import argparse

    from relaysec.cmd_trial import merged_config

    args = argparse.Namespace(overrides=[], seed=None, insecure_deterministic_keys=False,
                              config=None, quiet=True, print_config=False)
    cfg = merged_config(args, [("backend", "pluto")], node=True)
    assert cfg["pluto"]["tx_block_size"] == 11200 and cfg["pluto"]["tx_kernel_buffers"] == 4
