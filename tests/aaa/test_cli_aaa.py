"""``relaysec aaa hostapd DIR`` and the ``[aaa]`` config: the written server works with the
printed command, secrets stay out of output, bad values are config errors naming the key."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from relaysec.cli import main
from relaysec.config import load_config, redacted, to_toml
from relaysec.config_schema import ConfigError
from tests.aaa.servers import free_udp_port, need, running
from tests.aaa.test_servers import _authenticate


def test_aaa_hostapd_writes_a_server_that_starts_with_the_printed_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need("hostapd", "hostapd")
    port = free_udp_port()
    sets = ["--set", "aaa.secret=cli-secret-1", "--set", f"aaa.server=127.0.0.1:{port}"]
    assert main(["aaa", "hostapd", str(tmp_path / "srv"), *sets]) == 0
    out = capsys.readouterr().out
    assert "cli-secret-1" not in out
    start = next(line for line in out.splitlines() if line.startswith("start it with:"))
    command = shlex.split(start.split(":", 1)[1])
    cfg = load_config(overrides=[("aaa.backend", "radius"), ("aaa.secret", "cli-secret-1"),
                                 ("aaa.server", f"127.0.0.1:{port}")])
    with running(command, port, tmp_path):
        result, peer, _ = _authenticate(cfg, "ARS-2")
    assert result is not None and result.success and result.msk == peer.msk


def test_aaa_hostapd_needs_a_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["aaa", "hostapd", str(tmp_path)]) == 2
    assert "aaa.secret" in capsys.readouterr().err


@pytest.mark.parametrize("key, value", [
    ("aaa.backend", "diameter"), ("aaa.server", "localhost"), ("aaa.server", "h:70000"),
    ("aaa.realm", "bad realm"), ("aaa.realm", ""), ("aaa.timeout_s", 0),
    ("aaa.retries", -1), ("aaa.nas_identifier", ""),
])
def test_bad_aaa_values_are_config_errors(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(overrides=[(key, value)])


def test_radius_needs_a_secret_and_identities_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"aaa\.secret"):
        load_config(overrides=[("aaa.backend", "radius")])
    stations = [{"name": "ABS", "role": "abs", "station_id": 1},
                {"name": "A", "role": "ams", "station_id": 2, "serving": "ABS",
                 "identity": "has space@x.test"}]
    with pytest.raises(ConfigError, match=r"stations\[1\]\.identity"):
        load_config(overrides=[("stations", stations)])
    stations[1]["identity"] = "mobile-2@lab.example"
    cfg = load_config(overrides=[("stations", stations)])
    assert cfg["stations"][1]["identity"] == "mobile-2@lab.example"


def test_printed_config_hides_the_secret() -> None:
    cfg = load_config(overrides=[("aaa.backend", "radius"), ("aaa.secret", "do-not-print")])
    assert "do-not-print" not in to_toml(redacted(cfg))
    assert cfg["aaa"]["secret"] == "do-not-print"


def test_trial_print_config_hides_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trial", "--print-config", "--set", "aaa.backend=radius",
                 "--set", "aaa.secret=do-not-print-2"]) == 0
    out = capsys.readouterr().out
    assert "do-not-print-2" not in out and 'backend = "radius"' in out


def test_pki_init_and_aaa_freeradius_give_a_working_eap_tls_server(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from relaysec.pki import load_pki
    from stack.pkm.eap_tls import EapTlsPeer
    from tests.aaa.test_eap_tls import NAI, SERVER, _converse

    need("freeradius", "freeradius")
    port = free_udp_port()
    sets = ["--set", "aaa.secret=cli-secret-2", "--set", f"aaa.server=127.0.0.1:{port}"]
    assert main(["pki", "init", str(tmp_path / "pki"), "--server-name", SERVER, *sets]) == 0
    out = capsys.readouterr().out
    assert 'AMS: eap = "tls"' in out and "BEGIN" not in out
    assert (tmp_path / "pki" / "device-AMS.key").stat().st_mode & 0o077 == 0
    assert main(["aaa", "freeradius", str(tmp_path / "fr"), "--pki", str(tmp_path / "pki"),
                 *sets]) == 0
    out = capsys.readouterr().out
    assert "cli-secret-2" not in out and "EAP-TLS" in out
    command = shlex.split(next(line for line in out.splitlines()
                               if line.startswith("start it with:")).split(":", 1)[1])
    cfg = load_config(overrides=[("aaa.backend", "radius"), ("aaa.secret", "cli-secret-2"),
                                 ("aaa.server", f"127.0.0.1:{port}")])
    pki = load_pki(tmp_path / "pki", {"AMS": NAI})
    dev = pki.devices["AMS"]
    peer = EapTlsPeer(NAI.encode(), cert=str(dev.cert), key=str(dev.key), ca=str(pki.ca.cert),
                      server_name=SERVER)
    with running(command, port, tmp_path, ready_line="Ready to process requests", timeout=30):
        result, _ = _converse(cfg, peer)
    assert result is not None and result.success and result.msk == peer.msk


def test_aaa_freeradius_without_a_pki_dir_is_a_config_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["aaa", "freeradius", str(tmp_path / "fr"), "--pki", str(tmp_path / "none"),
                 "--set", "aaa.secret=x"]) == 2
    assert "ca.pem missing" in capsys.readouterr().err


FAST_SETS = ["--set", "traffic.packets_per_direction=8", "--set", "security.tek_lifetime_s=0.3",
             "--set", "traffic.drain_frames=10", "-q", "--no-msc"]


@pytest.mark.parametrize("server, method", [("freeradius", "EAP-TLS"), ("hostapd", "EAP-PSK")])
@pytest.mark.parametrize("mode", ["distributed", "centralized"])
def test_trial_with_a_private_aaa_server(capsys: pytest.CaptureFixture[str], server: str,
                                         method: str, mode: str) -> None:
    need(server, server)
    assert main(["trial", "--aaa", server, "--mode", mode, *FAST_SETS]) == 0
    out = capsys.readouterr().out
    assert "relaysec trial: PASS" in out
    aaa = next(line for line in out.splitlines() if line.startswith("AAA: radius"))
    assert aaa.count(method) == 3      # ARS-1, ARS-2, AMS


def test_trial_aaa_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import relaysec.aaa_lab

    monkeypatch.setattr(relaysec.aaa_lab.shutil, "which", lambda name: None)
    monkeypatch.setattr(relaysec.aaa_lab.os, "access", lambda path, mode: False)
    assert main(["trial", "--aaa", "freeradius", *FAST_SETS]) == 2
    assert "apt-get install freeradius" in capsys.readouterr().err


def test_builtin_aaa_with_configured_identities_passes_the_trial() -> None:
    from relaysec.trial import run_trial
    from tests.trial.helpers import FAST

    cfg = load_config(overrides=FAST)
    stations = [dict(s) for s in cfg["stations"]]
    for s in stations:
        if s["role"] != "abs":
            s["identity"] = f"{s['name'].lower()}@lab.example"
    report, _ = run_trial(load_config(overrides=[*FAST, ("stations", stations)]))
    assert report["ok"], report["reason"]
