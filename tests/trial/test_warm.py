"""``relaysec warm`` (what ./bootstrap runs last): compiles the kernels, says so, and refuses an
unknown profile with a clear message and exit status 2."""

from __future__ import annotations

from relaysec.cli import main


def test_warm_compiles_and_says_so(capsys):
    assert main(["warm"]) == 0
    assert "numba kernels ready for P2.5" in capsys.readouterr().out


def test_warm_refuses_an_unknown_profile(capsys):
    assert main(["warm", "--profile", "P99"]) == 2
    err = capsys.readouterr().err
    assert "unknown PHY profile 'P99'" in err and "Traceback" not in err
