"""Config merging, validation and printing (relaysec.config)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from relaysec.config import (
    check_air_speed,
    is_emulator_uri,
    link_params,
    load_config,
    parse_override,
    to_toml,
)
from relaysec.config_schema import ConfigError, default_config


def test_defaults_are_valid_and_complete():
    cfg = load_config()
    assert cfg["backend"] == "loopback"
    assert [s["name"] for s in cfg["stations"]] == ["ABS", "ARS-1", "ARS-2", "AMS"]
    assert cfg["security"]["mode"] == "distributed"


def test_file_overrides_defaults_and_flags_override_file(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text('seed = 7\n[phy]\nmcs = "QPSK-1/2"\n[channel]\nsnr_db = 12\n')
    cfg = load_config(p, overrides=[parse_override("phy.mcs=QPSK-3/4")])
    assert cfg["seed"] == 7
    assert cfg["phy"]["mcs"] == "QPSK-3/4"          # flag beats file
    assert cfg["channel"]["snr_db"] == 12           # file beats default
    assert cfg["phy"]["profile"] == default_config()["phy"]["profile"]  # untouched default


@pytest.mark.parametrize(
    "text, words",
    [
        ("[phy]\nmcss = 'x'\n", "phy.mcss"),
        ("sed = 3\n", "sed"),
        ("[security]\nmode = 'hybrid'\n", "security.mode"),
        ("[channel]\nsnr_db = 'high'\n", "channel.snr_db"),
        ("[security]\nencrypt_relay_control = 1\n", "security.encrypt_relay_control"),
        ("[[stations]]\nname = 'A'\nrole = 'ams'\nstation_id = 5\nserving = 'A'\n", "abs"),
        ("[[stations]]\nname='B'\nrole='abs'\nstation_id=1\ncolour='red'\n", "colour"),
        ("phy = 3\n", "phy"),
        ("links = [{a = 'ABS', b = 'nobody'}]\n", "links[0].b"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, words):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_config(p)


def test_not_toml_and_missing_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("seed = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_override_parsing():
    assert parse_override("seed=3") == ("seed", 3)
    assert parse_override("security.ak_predistribution=false") == (
        "security.ak_predistribution", False)
    assert parse_override("phy.mcs=16QAM-1/2") == ("phy.mcs", "16QAM-1/2")
    with pytest.raises(ConfigError):
        parse_override("seed")
    with pytest.raises(ConfigError, match="nothing"):
        load_config(overrides=[("nothing.here", 1)])


def test_printed_config_reads_back_identically():
    cfg = load_config(overrides=[("channel.snr_db", 9.5)])
    cfg["links"] = [{"a": "ABS", "b": "AMS", "snr_db": 3.0}]
    again = tomllib.loads(to_toml(cfg))
    assert again == cfg


def test_link_params_symmetric_override():
    cfg = load_config()
    cfg["links"] = [{"a": "AMS", "b": "ARS-1", "snr_db": 4.0, "channel": "pedA"}]
    assert link_params(cfg, "ARS-1", "AMS") == {"snr_db": 4.0, "channel": "pedA"}
    assert link_params(cfg, "ABS", "AMS")["snr_db"] == cfg["channel"]["snr_db"]


@pytest.mark.parametrize(
    "uri, emulated",
    [("ip:127.0.0.1:30431", True), ("ip:127.0.0.2", True), ("ip:localhost:30431", True),
     ("ip:[::1]:30431", True), ("ip:192.168.2.1", False), ("usb:1.4.5", False),
     ("ip:127.0.0.1.evil:1", False), ("ip:pluto.local", False), ("", False)],
)
def test_emulator_uris_are_loopback_network_uris(uri, emulated):
    assert is_emulator_uri(uri) is emulated


def test_slowed_air_with_plutos_only_when_they_are_emulated():
    cfg = load_config(overrides=[("backend", "pluto"), ("schedule.ota_speed", 0.5)])
    stations = cfg["stations"]
    for st, port in zip(stations, range(30431, 30435), strict=True):
        st["uri"] = f"ip:127.0.0.1:{port}"
    check_air_speed(cfg, stations)                         # all on loopback: emulators
    stations[2]["uri"] = "ip:192.168.2.1"
    with pytest.raises(ConfigError, match=r"ARS-2 \(ip:192.168.2.1\).*Real Plutos need 1"):
        check_air_speed(cfg, stations)
    check_air_speed(cfg, [stations[0]])                    # a node opens only its own radio
    cfg["schedule"]["emulated"] = True                     # emulators on another host
    check_air_speed(cfg, stations)
    cfg["schedule"]["emulated"] = False
    cfg["schedule"]["ota_speed"] = 1.0                     # real time: any radio
    check_air_speed(cfg, stations)
    cfg = load_config(overrides=[("schedule.ota_speed", 0.5)])
    check_air_speed(cfg, cfg["stations"])                  # loopback backend: no URIs at all
    with pytest.raises(ConfigError, match="ota_speed"):
        load_config(overrides=[("schedule.ota_speed", 1.5)])


def test_trial_refuses_slowed_air_on_real_plutos_before_opening_them():
    from relaysec.trial import run_trial

    cfg = load_config(overrides=[("backend", "pluto"), ("schedule.ota_speed", 0.5),
                                 ("report.progress", False)])
    for st in cfg["stations"]:
        st["uri"] = "ip:192.168.2.1"
    report, _ = run_trial(cfg)
    assert not report["ok"] and "needs emulated radios" in report["reason"]


@pytest.mark.parametrize("name", sorted(p.name for p in
                                        (Path(__file__).parents[2] / "examples").glob("*.toml")))
def test_every_example_scenario_loads(name):
    """The scenario files the README and docs point users to are valid configurations."""
    cfg = load_config(Path(__file__).parents[2] / "examples" / name)
    if name == "shared-host.toml":  # longer TX pushes, and a lead the grants must cover
        assert cfg["pluto"]["tx_block_size"] > load_config()["pluto"]["tx_block_size"]
        assert cfg["schedule"]["ota_grant_delay"] == 6
        # the stream `relaysec trial --backend pluto` takes by itself: the same values
        from relaysec.config import SHARED_HOST_STREAM

        for key, value in SHARED_HOST_STREAM.items():
            table, name = key.split(".")
            assert cfg[table][name] == value, key
