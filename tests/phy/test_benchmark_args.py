"""The benchmarks' PHY profile and MCS arguments: a typo is a usage error (exit 2) naming what
is known, found while the command line is parsed (it was a traceback from inside a run)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("module,argv,text", [
    ("benchmarks.modem", ["--profiles", "10"], "unknown PHY profile '10'"),
    ("benchmarks.modem", ["--mcs", "64qam-5/6"], "unknown MCS '64qam-5/6'"),
    ("benchmarks.modem", ["--zone-mcs", "QPSK"], "unknown MCS 'QPSK'"),
    ("benchmarks.viterbi", ["--mcs", "64QAM"], "unknown MCS '64QAM'"),
    ("benchmarks.per", ["--profile", "7MHz"], "unknown PHY profile '7MHz'"),
    ("benchmarks.mcs_thresholds", ["--mcs", "8PSK-1/2"], "unknown MCS '8PSK-1/2'"),
])
def test_unknown_profile_or_mcs_is_a_usage_error(module: str, argv: list[str], text: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert text in err and "known:" in err and "Traceback" not in err


def test_known_names_and_aliases_pass() -> None:
    from benchmarks._args import mcs_name, profile_name

    assert profile_name("P10") == "P10" and profile_name("20MHz") == "20MHz"
    assert mcs_name("16QAM-3/4") == "16QAM-3/4"


def test_the_machine_line_records_the_simd_features_the_kernels_choose_by() -> None:
    """benchmarks._machine reports, of the flags it watches, exactly those /proc/cpuinfo lists
    -- AVX-512BW/VL/VBMI included (the Viterbi's layout and the CCM lanes depend on them)."""
    from pathlib import Path

    from benchmarks import _machine

    assert {"avx512bw", "avx512vl", "avx512vbmi", "vaes"} <= set(_machine._FLAGS_OF_INTEREST)
    info = _machine.machine_info()
    cpuinfo = Path("/proc/cpuinfo")
    have: set[str] = set()   # (no /proc/cpuinfo: no flags reported either)
    text = cpuinfo.read_text(errors="replace") if cpuinfo.exists() else ""
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.partition(":")[2].split())
            break
    assert info["cpu_flags"] == [f for f in _machine._FLAGS_OF_INTEREST if f in have]
    assert ", flags: " + " ".join(info["cpu_flags"]) in _machine.format_machine(info)
