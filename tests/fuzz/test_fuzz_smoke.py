"""The fuzz harnesses in CI (issue 11): every seed replays cleanly, and a short atheris pass.

* ``test_corpus_replays``: each committed seed (``tests/fuzz/corpus/<harness>/``) through its
  harness in-process -- fast, deterministic, no atheris needed. A seed that now crashes is a
  regression.
* ``test_short_atheris_pass``: one atheris worker fuzzing every decoder harness at once (the
  first input byte picks the harness, so the imports are paid once) for a fixed number of runs
  with a fixed seed -- a few seconds -- starting from all the seeds, corpus and findings in a
  temporary directory; and one for the role harness. Without atheris the test skips -- and fails
  when ``CI`` is set, so CI can never silently stop fuzzing.

The crashes the role harness found in the roles before their rewrite (issue 11) are kept in
``tests/fuzz/regressions/roles/`` and replayed by ``test_regressions.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import _core
from tests.fuzz.__main__ import multiplexed_seeds, worker_command

# The harnesses restart from the same keys for every input, so one (TEK, PN) is handed out once
# per input: the project's nonce monitor (tests/conftest.py) must not count that as a reuse.
pytestmark = pytest.mark.nonce_reuse_expected

def _harnesses() -> list[object]:
    return sorted(_core.HARNESSES)


def test_every_harness_has_seeds_a_module_and_a_generator() -> None:
    from tests.fuzz.make_corpus import GENERATORS

    assert set(GENERATORS) == set(_core.HARNESSES)
    for name, spec in _core.HARNESSES.items():
        assert spec.corpus.is_dir() and any(spec.corpus.iterdir()), f"no seeds for {name}"
        mod = _core.load(name)
        assert callable(mod.one_input) and isinstance(mod.ALLOWED, tuple), name


def test_every_numba_module_is_kept_from_atheris() -> None:
    """A module whose functions numba compiles from bytecode must be in ``NUMBA_MODULES``
    (atheris's trace calls in its bytecode break the compile: a new kernel module once failed
    every harness that modulates), at least under the packages a harness instruments."""
    import re

    decorated = re.compile(r"^@(numba\.)?(njit|jit|vectorize|guvectorize)\b", re.M)
    packages = {pkg for spec in _core.HARNESSES.values() for pkg in spec.instrument}
    numba_modules = set()
    for pkg in packages:
        base = _core.ROOT / pkg.replace(".", "/")
        for f in (base.rglob("*.py") if base.is_dir() else []):
            if decorated.search(f.read_text()):
                rel = f.relative_to(_core.ROOT).with_suffix("")
                numba_modules.add(".".join(rel.parts))
    assert numba_modules, "no numba module found: the pattern or the packages are wrong"
    assert numba_modules <= set(_core.NUMBA_MODULES), numba_modules - set(_core.NUMBA_MODULES)


def test_corpus_is_small() -> None:
    total = sum(p.stat().st_size for p in _core.CORPUS_DIR.rglob("*") if p.is_file())
    assert total < 1 << 20, f"seed corpus is {total} bytes"


def _replay_all(name: str, folder: Path) -> None:
    """Every input in *folder* passes harness *name*'s invariant (in-process, no atheris)."""
    mod = _core.load(name)
    failures = []
    for path in sorted(folder.iterdir()):
        try:
            _core.execute(mod, path.read_bytes())
        except Exception as exc:
            failures.append(f"{path.name}: {_core.signature(exc)}\n{_core.describe(exc)}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", _harnesses())
def test_corpus_replays(name: str) -> None:
    _replay_all(name, _core.HARNESSES[name].corpus)


@pytest.mark.parametrize("name", sorted(n for n in _harnesses()
                                        if (_core.CAMPAIGN_DIR / n).is_dir()))
def test_campaign_replays(name: str) -> None:
    """The inputs the campaigns kept (``campaign/<name>/``, minimised by ``--merge``) still pass:
    a change that breaks a decoder or a role on a path only fuzzing reached fails here, in CI,
    not in the next campaign (~30 s for all of them, the role cell most of it)."""
    _replay_all(name, _core.CAMPAIGN_DIR / name)


def _require_atheris() -> None:
    if importlib.util.find_spec("atheris") is not None:
        return
    message = "atheris is not installed (.venv/bin/pip install -e '.[test]')"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must fuzz", pytrace=False)
    pytest.skip(message)


DECODERS = sorted(n for n, spec in _core.HARNESSES.items() if spec.decoder)


@pytest.mark.parametrize(("names", "runs"), [
    pytest.param(DECODERS, 2500, id="decoders"),
    pytest.param(["roles"], 25, id="roles"),
])
def test_short_atheris_pass(names: list[str], runs: int, tmp_path: Path) -> None:
    _require_atheris()
    findings, corpus = tmp_path / "findings", tmp_path / "corpus"
    findings.mkdir()
    if len(names) > 1:
        multiplexed_seeds(names, corpus)
    else:
        corpus.mkdir()
    cmd = worker_command(names, 20, findings=findings, corpus=corpus, runs=runs, seed=1,
                         campaign=False)
    proc = subprocess.run(cmd, cwd=_core.ROOT, capture_output=True, text=True, errors="replace",
                          timeout=300)
    found = sorted(p.relative_to(findings).as_posix() for p in findings.rglob("crash-*"))
    reports = [p.read_text() for p in sorted(findings.rglob("*.txt"))]
    log_tail = "\n".join(proc.stderr.splitlines()[-15:])
    assert not found and proc.returncode == 0, (
        f"exit {proc.returncode}, findings {found}\n" + "\n".join(reports) + log_tail)
    assert "stat::number_of_executed_units" in proc.stderr, log_tail


def _inited(name: str, dirs: list[Path], findings: Path) -> str:
    """libFuzzer's coverage after loading *dirs* for harness *name* (``cov: N ft: M``)."""
    cmd = [sys.executable, "-m", "tests.fuzz._worker", name, str(findings), "--", "-runs=0",
           *(str(d) for d in dirs)]
    proc = subprocess.run(cmd, cwd=_core.ROOT, capture_output=True, text=True, errors="replace",
                          timeout=120)
    m = re.search(r"INITED cov: (\d+) ft: (\d+)", proc.stderr)
    assert m, proc.stderr[-2000:]
    return m.group(0)


def test_merge_keeps_the_coverage_with_fewer_inputs(tmp_path: Path) -> None:
    """``python -m tests.fuzz --merge`` (libFuzzer -merge=1 through a relaunching script): a
    campaign of the harness's seeds plus its committed corpus comes out without the seeds (they
    stay in corpus/), only with inputs it had, and with the coverage it had."""
    _require_atheris()
    from tests.fuzz.__main__ import merge_campaign

    name = "frames"
    spec = _core.HARNESSES[name]
    campaign = tmp_path / "campaign"
    campaign.mkdir()
    inputs = {}
    for src in (spec.corpus, _core.CAMPAIGN_DIR / name):
        for p in src.iterdir():
            data = p.read_bytes()
            inputs[_core.input_id(data)] = data
            (campaign / _core.input_id(data)).write_bytes(data)
    seeds = {_core.input_id(p.read_bytes()) for p in spec.corpus.iterdir()}
    findings = tmp_path / "findings"
    findings.mkdir()
    want = _inited(name, [spec.corpus, campaign], findings)
    # the campaign reaches more than the seeds alone: a merge that dropped it would show
    assert _inited(name, [spec.corpus], findings) != want
    before, after = merge_campaign(name, campaign=campaign)
    kept = {p.name for p in campaign.iterdir()}
    assert before == len(inputs) and after == len(kept) < before
    assert not kept & seeds and kept <= set(inputs)
    assert all(_core.input_id((campaign / k).read_bytes()) == k for k in kept)
    assert _inited(name, [spec.corpus, campaign], findings) == want
