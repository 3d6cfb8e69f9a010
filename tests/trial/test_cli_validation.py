"""Issue 11: every value the command line accepts is checked where the merged config is built
(``--print-config`` runs there too), and every path before any work starts. A bad value, file or
path exits 2 with the key, option or path named — never a traceback, never after the trial ran,
never a directory created silently."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any

import pytest

import relaysec.trial
from relaysec.cli import main
from relaysec.config import load_config
from relaysec.config_schema import ConfigError, default_config, specs
from relaysec.report import Trace

ROOT = Path(__file__).resolve().parents[2]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``relaysec ARGV`` in process; (exit status, stderr). argparse errors exit too."""
    try:
        rc = main(list(argv))
    except SystemExit as exc:
        rc = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, err


@pytest.fixture
def no_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to run a trial fails the test: errors must come before it."""

    def forbidden(*_: Any, **__: Any) -> None:
        raise AssertionError("the trial ran although the command line was bad")

    monkeypatch.setattr(relaysec.trial, "run_trial", forbidden)


def fake_report() -> dict[str, Any]:
    return {"ok": True, "reason": None, "seed": 1, "insecure": None,
            "bytes": {"sent": 0, "delivered": 0, "lost": 0, "corrupted": 0},
            "phases": [], "links": {}, "security": {"rejections": {}, "keys": []},
            "handover": {"mode": None, "interruption_s": None}, "stations": [], "msc": []}


# --------------------------------------------------------------------------- config values


@pytest.mark.parametrize("override, key", [
    ("phy.mcs=BOGUS", "phy.mcs"),
    ("phy.profile=P9", "phy.profile"),
    ("phy.frame_ms=1e9", "phy.frame_ms"),
    ("phy.frame_ms=nan", "phy.frame_ms"),
    ("phy.tx_dbfs=3", "phy.tx_dbfs"),
    ("security.tek_lifetime_s=-1", "security.tek_lifetime_s"),
    ("security.tek_lifetime_s=7200", "security.tek_lifetime_s"),   # longer than the AK's
    ("security.ak_lifetime_s=0", "security.ak_lifetime_s"),
    ("security.ak_lifetime_s=1e12", "security.ak_lifetime_s"),     # u32 seconds on the air
    ("security.max_retries=-5", "security.max_retries"),
    ("security.max_retries=2.5", "security.max_retries"),
    ("security.rto_s=0", "security.rto_s"),
    ("security.entry_attempts=0", "security.entry_attempts"),
    ("security.psk_seed=''", "security.psk_seed"),
    ("security.insecure_deterministic_keys=1", "security.insecure_deterministic_keys"),
    ("seed=-1", "seed"),
    ("seed=1.5", "seed"),
    ("backend=usrp", "backend"),
    ("channel.snr_db=inf", "channel.snr_db"),
    ("channel.cfo_ppm=-2", "channel.cfo_ppm"),
    ("traffic.packets_per_direction=0", "traffic.packets_per_direction"),
    ("traffic.min_delivery=2", "traffic.min_delivery"),
    ("traffic.payload_bytes=4000", "traffic.payload_bytes"),       # fits no TDD zone
    ("timeouts.entry_s=0", "timeouts.entry_s"),
    ("schedule.ota_speed=0", "schedule.ota_speed"),
    ("schedule.guard_us=2000", "schedule.guard_us"),               # guards fill the frame
    ("schedule.max_bursts_per_zone=0", "schedule.max_bursts_per_zone"),
    ("report.progress=yes", "report.progress"),
    ("pluto.lo_hz=1e12", "pluto.lo_hz"),
    ("pluto.gain_mode=turbo", "pluto.gain_mode"),
    ("pluto.kernel_buffers=0", "pluto.kernel_buffers"),
    ("phy=3", "phy"),
    ("phy.nope=1", "phy.nope"),
    ("stations.0.name=X", "stations"),
    ("links=[{a='ABS', b='ABS'}]", "links[0]"),
    ("links=[{a='ABS', b='AMS', snr_db=nan}]", "links[0].snr_db"),
    ("stations=[{name='A B', role='abs', station_id=1}]", "stations[0].name"),
    ("stations=[{name='ABS', role='abs', station_id=1, serving='ABS'}]", "stations[0].serving"),
    ("stations=[{name='ABS', role='abs', station_id=1}]", "'ams'"),  # no mobile to drive
])
def test_bad_value_exits_2_naming_the_key(capsys: pytest.CaptureFixture[str], override: str,
                                          key: str) -> None:
    rc, err = cli(capsys, "trial", "--set", override, "--print-config")
    assert rc == 2
    assert key in err
    assert "relaysec trial: config error:" in err


def test_the_same_values_stop_a_run_before_it_starts(capsys: pytest.CaptureFixture[str],
                                                     no_trial: None) -> None:
    for override in ("phy.mcs=BOGUS", "security.tek_lifetime_s=-1", "phy.frame_ms=1e9"):
        rc, err = cli(capsys, "trial", "--set", override, "-q")
        assert rc == 2 and override.split("=")[0] in err


def test_seed_flag_is_range_checked(capsys: pytest.CaptureFixture[str]) -> None:
    for seed in ("-1", str(2**64)):
        rc, err = cli(capsys, "trial", "--seed", seed, "--print-config")
        assert rc == 2 and "'seed'" in err


def test_an_override_is_one_toml_value(capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = cli(capsys, "trial", "--set", 'seed=1\nbackend="pluto"', "--print-config")
    assert rc == 2 and "seed" in err
    rc, err = cli(capsys, "trial", "--set", "seed=" + "[" * 5000, "--print-config")
    assert rc == 2 and "seed" in err


def test_every_default_key_has_a_spec_that_accepts_it() -> None:
    def scalars(table: dict[str, Any], where: str = "") -> set[str]:
        out = set()
        for k, v in table.items():
            path = f"{where}.{k}" if where else k
            if isinstance(v, dict):
                out |= scalars(v, path)
            elif k not in ("stations", "links"):
                out.add(path)
        return out

    defaults = default_config()
    assert scalars(defaults) == set(specs())
    load_config()                                           # the defaults pass
    for name in ("loopback.toml", "lab-3pluto.toml"):
        load_config(ROOT / "examples" / name)


JUNK: list[Any] = [-1e308, 1e308, -1, 0, 1, 0.5, True, "x", "", [1], {"a": 1}, math.nan]


def test_junk_in_any_key_is_a_config_error_or_accepted_never_a_crash() -> None:
    """Every key, a dozen hostile values: either a ConfigError naming the key, or a value the
    key's spec accepts (and then the rest of the start-up checks run without crashing)."""
    for key, spec in specs().items():
        for value in JUNK:
            try:
                cfg = load_config(overrides=[(key, value)])
            except ConfigError as exc:
                assert key in str(exc) or key.split(".")[0] in str(exc), (key, value, exc)
                continue
            spec.check(key, value)
            for wall in (False, True):
                with contextlib.suppress(ConfigError):
                    relaysec.trial.check_fits(cfg, wall=wall)


# --------------------------------------------------------------------------- --config


@pytest.mark.parametrize("kind", ["directory", "not utf-8", "not toml", "missing", "huge"])
def test_bad_config_file_exits_2_naming_the_path(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 kind: str) -> None:
    path = tmp_path / "lab.toml"
    if kind == "directory":
        path.mkdir()
    elif kind == "not utf-8":
        path.write_bytes(b'seed = 3\nname = "\xff\xfe"\n')
    elif kind == "not toml":
        path.write_text("seed = = 3\n")
    elif kind == "huge":
        path.write_text("# " + "x" * (1 << 21) + "\n")
    for command in (["trial"], ["node", "--role", "abs"]):
        rc, err = cli(capsys, *command, "--config", str(path), "--print-config")
        assert rc == 2, (command, err)
        assert str(path) in err


def test_deeply_nested_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("seed = " + "[" * 100_000 + "\n")
    rc, err = cli(capsys, "trial", "--config", str(path), "--print-config")
    assert rc == 2 and str(path) in err


# --------------------------------------------------------------------------- output paths


def test_json_into_a_missing_directory_is_refused_before_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_trial: None) -> None:
    target = tmp_path / "missing" / "deeper" / "report.json"
    rc, err = cli(capsys, "trial", "--json", str(target), "-q")
    assert rc == 2 and "--json" in err and "does not exist" in err
    assert not (tmp_path / "missing").exists()          # nothing created silently


@pytest.mark.parametrize("option, make, words", [
    ("--json", "dir", "is a directory"),
    ("--json", "file-parent", "not a directory"),
    ("--plots", "file", "not a directory"),
    ("--plots", "missing-parent", "does not exist"),
    ("--record", "file", "not a directory"),
    ("--record", "missing-parent", "does not exist"),
])
def test_impossible_output_paths_exit_2_before_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_trial: None,
        option: str, make: str, words: str) -> None:
    (tmp_path / "afile").write_text("x")
    path = {"dir": tmp_path, "file": tmp_path / "afile",
            "file-parent": tmp_path / "afile" / "r.json",
            "missing-parent": tmp_path / "nope" / "out"}[make]
    rc, err = cli(capsys, "trial", option, str(path), "-q")
    assert rc == 2 and option in err and words in err, err
    assert not (tmp_path / "nope").exists()


def test_path_with_a_nul_byte(capsys: pytest.CaptureFixture[str], no_trial: None) -> None:
    rc, err = cli(capsys, "trial", "--json", "a\x00b.json", "-q")
    assert rc == 2 and "--json" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              no_trial: None) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    rc, err = cli(capsys, "trial", "--json", str(ro / "r.json"), "-q")
    assert rc == 2 and "permission denied" in err


def test_output_directories_are_created_as_a_leaf_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(cfg: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], Trace]:
        seen["record_exists"] = Path(kw["record_dir"]).is_dir()
        return fake_report(), Trace()

    monkeypatch.setattr(relaysec.trial, "run_trial", fake_run)
    rc, _ = cli(capsys, "trial", "--no-msc", "-q", "--json", str(tmp_path / "r.json"),
                "--plots", str(tmp_path / "plots"), "--record", str(tmp_path / "rec"))
    assert rc == 0
    assert seen["record_exists"]                    # created before the run, which needs it
    assert (tmp_path / "plots").is_dir() and (tmp_path / "r.json").is_file()


def test_output_that_vanished_during_the_run_is_an_error_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()

    def fake_run(cfg: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], Trace]:
        out.rmdir()
        return fake_report(), Trace()

    monkeypatch.setattr(relaysec.trial, "run_trial", fake_run)
    rc, err = cli(capsys, "trial", "--no-msc", "-q", "--json", str(out / "r.json"))
    assert rc == 2 and "--json" in err and "could not be written" in err


def test_help_says_which_directories_are_created(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["trial", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--plots DIR" in text and "created if missing; its parent must exist" in text
    assert "its directory must exist" in text


# --------------------------------------------------------------------------- node and replay


@pytest.mark.parametrize("args, word", [
    (["--set", "security.max_retries=-5"], "security.max_retries"),
    (["--set", "phy.mcs=BOGUS"], "phy.mcs"),
    (["--duration", "-1"], "--duration"),
    (["--duration", "nan"], "--duration"),
    (["--uri", "bogus"], "uri"),
    (["--uri", "ip:10.0.0.1 --evil"], "uri"),
    (["--json", "/nonexistent-dir/r.json"], "--json"),
    (["--record", "/nonexistent-dir/rec"], "--record"),
])
def test_node_refuses_bad_values_before_opening_a_radio(
        capsys: pytest.CaptureFixture[str], args: list[str], word: str) -> None:
    rc, err = cli(capsys, "node", "--role", "abs", *args, "-q")
    assert rc == 2 and word in err, err


def test_trial_uris_are_checked(capsys: pytest.CaptureFixture[str], no_trial: None) -> None:
    rc, err = cli(capsys, "trial", "--backend", "pluto", "--uris", "a", "b", "c", "d", "-q")
    assert rc == 2 and "uri" in err and "ABS" in err


def test_replay_bad_options_exit_2_and_unreadable_captures_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = tmp_path / "x.sigmf-meta"
    meta.write_bytes(b"\xff\xfe not json")
    (tmp_path / "x.sigmf-data").write_bytes(b"\0" * 64)
    rc, err = cli(capsys, "replay", str(meta), "--chunk-s", "0")
    assert rc == 2 and "--chunk-s" in err
    rc, err = cli(capsys, "replay", str(meta), "--chunk-s", "inf")
    assert rc == 2 and "--chunk-s" in err
    rc, err = cli(capsys, "replay", str(meta), "--profile", "P9")
    assert rc == 2 and "--profile" in err
    rc, err = cli(capsys, "replay", str(meta))                   # not UTF-8, not JSON
    assert rc == 1 and str(meta) in err
    (tmp_path / "d.sigmf-meta").mkdir()
    (tmp_path / "d.sigmf-data").write_bytes(b"")
    rc, err = cli(capsys, "replay", str(tmp_path / "d.sigmf-meta"))   # a directory
    assert rc == 1 and "d.sigmf-meta" in err


def test_printed_config_escapes_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    assert main(["trial", "--set", 'security.psk_seed="a\\u0001b\\tc\\u007f"',
                 "--print-config"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)      # TOML forbids raw control characters
    assert printed["security"]["psk_seed"] == "a\x01b\tc\x7f"
