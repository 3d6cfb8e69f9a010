"""``relaysec warm`` (what ./bootstrap runs last): compiles the kernels, says so, and refuses an
unknown profile with a clear message and exit status 2."""

from __future__ import annotations

from pathlib import Path

from relaysec.cli import main


def test_warm_compiles_and_says_so(capsys):
    assert main(["warm"]) == 0
    assert "numba kernels ready for P2.5" in capsys.readouterr().out


def test_warm_refuses_an_unknown_profile(capsys):
    assert main(["warm", "--profile", "P99"]) == 2
    err = capsys.readouterr().err
    assert "unknown PHY profile 'P99'" in err and "Traceback" not in err


def test_a_cold_cache_is_told_by_the_index_files_and_only_then_a_child_compiles(tmp_path,
                                                                                monkeypatch):
    """relaysec.warmstart: cold while the security kernels or the Viterbi decoder have no numba
    index (here under NUMBA_CACHE_DIR); warm once both have one -- then no child is started."""
    from relaysec import warmstart

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(warmstart, "_child", None)
    assert warmstart.cold()
    (tmp_path / "phy_0abc").mkdir()
    (tmp_path / "phy_0abc" / "viterbi_lanes.viterbi_k7_simd_lanes-180.py311.nbi").write_bytes(b"")
    assert warmstart.compiled("phy", ["viterbi_lanes.viterbi_k7"])
    assert not warmstart.compiled("phy", ["viterbi_kernels.v16_forward"])
    assert warmstart.cold()                       # the security kernels still missing
    (tmp_path / "ccm_0def").mkdir()
    (tmp_path / "ccm_0def" / "_aesni._run_serial-518.py311.nbi").write_bytes(b"")
    assert not warmstart.cold()
    assert warmstart.start_child() is None        # nothing to compile elsewhere


def test_the_awaited_decoder_is_named_as_numba_names_its_cache_file(monkeypatch):
    """warmstart.await_decoder waits for the cache file of the decoder the modem uses: its
    name is <module>.<function>- of that decoder, whichever module it lives in, and is one of
    the names cold() accepts."""
    from phy import viterbi
    from relaysec import warmstart

    for forced, fn in (("float", viterbi.viterbi_k7), ("int16", viterbi.viterbi_k7_simd)):
        monkeypatch.setenv("RELAYSEC_VITERBI", forced)
        name = warmstart.decoder_cache_name()
        module = fn.py_func.__module__
        assert name == f"{module.rpartition('.')[2]}.{fn.py_func.__name__}-"
        assert (Path(warmstart.__file__).parents[1] / (module.replace(".", "/") + ".py")).is_file()
        assert any(name.startswith(d) for d in warmstart._DECODERS)


def _fake_tree(root: Path) -> list[Path]:
    """A source tree with kernels' cache files beside two source directories, and files that
    are not numba's (returned: the cache files)."""
    made = []
    for src in (root / "phy", root / "stack" / "crypto" / "ccm"):
        (src / "__pycache__").mkdir(parents=True)
        (src / "k.py").write_text("")
        (src / "__pycache__" / "k.cpython-311.pyc").write_bytes(b"")
        for name in ("k.f-1.py311.nbi", "k.f-1.py311.1.nbc"):
            (src / "__pycache__" / name).write_bytes(b"")
            made.append(src / "__pycache__" / name)
    return made


def test_the_cache_files_are_this_trees_beside_the_sources_or_under_numba_cache_dir(
        tmp_path, monkeypatch):
    """warmstart.cache_files: the .nbi/.nbc of every source directory of the packages (not the
    .pyc); under NUMBA_CACHE_DIR the directory numba derives from each source directory
    (checked against numba's own rule), and never another project's there."""
    import hashlib
    import os

    from numba.core.caching import _CacheLocator

    from relaysec import warmstart

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    root = tmp_path / "tree"
    made = _fake_tree(root)
    assert sorted(warmstart.cache_files(root)) == sorted(made)
    assert warmstart.cache_files(root, ["hw"]) == []

    shared = tmp_path / "shared"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(shared))
    src = root / "phy"
    sub = _CacheLocator.get_suitable_cache_subpath(str(src / "k.py"))
    d = os.path.abspath(src)
    assert sub == f"phy_{hashlib.sha1(d.encode()).hexdigest()}"
    (shared / sub).mkdir(parents=True)
    (shared / sub / "k.f-1.py311.nbi").write_bytes(b"")
    (shared / "phy_0123").mkdir()                  # another checkout's phy/ in a shared dir
    (shared / "phy_0123" / "k.f-1.py311.nbi").write_bytes(b"")
    assert warmstart.cache_files(root) == [shared / sub / "k.f-1.py311.nbi"]


def test_warm_clean_removes_the_cache_files_then_compiles(tmp_path, monkeypatch, capsys):
    """``relaysec warm --clean`` removes what cache_files lists (here a fake tree's: the real
    cache is in use by other test workers), says how many, then warms up as usual."""
    from relaysec import warmstart

    made = _fake_tree(tmp_path)
    monkeypatch.setattr(warmstart, "cache_files", lambda: made)
    assert main(["warm", "--clean"]) == 0
    out = capsys.readouterr().out
    assert "removed 4 numba cache files of this tree" in out and "kernels ready" in out
    assert not any(p.exists() for p in made)
    assert (tmp_path / "phy" / "__pycache__" / "k.cpython-311.pyc").exists()
