"""benchmarks/ccm.py's statistics: a round is the fastest of its calls, the first call of each
round gives the single-call figures, the targets and the list-API-beside-batch table come from
them. The clock is replaced by a scripted one, so nothing here depends on the machine's speed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks import ccm as bench


def _scripted(durations: dict[tuple[str, str], list[list[float]]]):
    """A ``_run_interleaved`` stand-in returning fixed (wall, CPU) seconds per task/round/call:
    CPU = wall / 2 so the two clocks are told apart."""

    def run(tasks, repeats, rng, calls=1):
        names = {(impl, op) for impl, op, _, _ in tasks}
        assert names == set(durations), names
        return {k: [[(w, w / 2) for w in rnd] for rnd in v] for k, v in durations.items()}

    return run


def test_round_is_fastest_call_and_single_call_is_the_first(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    ops = ("seal", "open")
    # baseline: 10 s every call; list API: round 1 calls (1, 2, 5) s, round 2 calls (4, 2, 3) s
    durations = {("pyca-per-pdu", op): [[10.0, 10.0, 10.0]] * 2 for op in ops}
    durations |= {("list-api", op): [[1.0, 2.0, 5.0], [4.0, 2.0, 3.0]] for op in ops}
    monkeypatch.setattr(bench, "_run_interleaved", _scripted(durations))
    rows = bench.bench_size(64, 64 * 64, 2, np.random.default_rng(0), [], calls=3)
    lst = {r["op"]: r for r in rows if r["impl"] == "list-api"}
    for op in ops:
        r = lst[op]
        assert r["rounds_s"] == [(1.0, 0.5), (2.0, 1.0)]  # fastest call of each round
        assert r["ratio_vs_pyca_worst"] == pytest.approx(5.0)  # round 2: 10 / 2
        assert r["ratio_vs_pyca_cpu_worst"] == pytest.approx(5.0)
        assert r["ratio_vs_pyca"] == pytest.approx(7.5)  # median of 10 and 5
        assert r["ratio_vs_pyca_single_worst"] == pytest.approx(2.5)  # first calls: 1 and 4 s
        assert r["ratio_vs_pyca_cpu_single_worst"] == pytest.approx(2.5)
        assert r["mb_s_best"] == pytest.approx(64 * 64 / 1.0 / 1e6)
    assert bench.targets_of(rows, []) == {}  # no lockstep engine: no targets, nothing invented


def test_targets_and_list_beside_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    impls = ("pyca-per-pdu", "batch-aesni-1t", "list-api")
    rows = []
    for size, (impl, op) in itertools.product(bench.SIZES,
                                              itertools.product(impls, ("seal", "open"))):
        t = {"pyca-per-pdu": 10.0, "batch-aesni-1t": 1.0, "list-api": 4.0}[impl]
        rows.append({"size": size, "impl": impl, "op": op, "mb_s": 100 / t, "mb_s_cpu": 100 / t,
                     "ratio_vs_pyca": 10 / t, "ratio_vs_pyca_cpu": 10 / t,
                     "ratio_vs_pyca_worst": 10 / t - 1, "ratio_vs_pyca_cpu_worst": 10 / t - 0.5,
                     "ratio_vs_pyca_single_worst": 10 / t - 2,
                     "ratio_vs_pyca_cpu_single_worst": 10 / t - 1.5})
    targets = bench.targets_of(rows, ["numba-aesni", "numba-table", "reference"])
    assert targets["batch-aesni-1t_vs_pyca_1500B>=8 (cpu)"] == pytest.approx(10.0)
    assert targets["list_api_worst_round>=2.5 (cpu)"] == pytest.approx(2.0)
    assert targets["list_api_worst_round>=2.5 (wall)"] == pytest.approx(1.5)
    assert targets["list_api_worst_single_call (cpu)"] == pytest.approx(1.0)
    gap = bench.list_vs_batch(rows, ["numba-aesni"])
    assert [(g["size"], g["op"]) for g in gap] == [
        (s, op) for s in bench.SIZES for op in ("seal", "open")]
    assert all(g["list_share_of_batch"] == pytest.approx(0.25) for g in gap)
    assert bench.list_vs_batch(rows, ["numba-table"]) == []
