"""benchmarks/mac.py runs end to end on a tiny configuration and writes its JSON (no timing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import mac as bench


# benchmarks.mac seals the same bursts from twin SAs (per-MPDU vs batch) and repeats for timing
@pytest.mark.nonce_reuse_expected
def test_mac_benchmark_smoke(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mac.json"
    argv = ["--sizes", "0,40", "--bursts", "1,3", "--kbytes", "1", "--repeats", "1"]
    assert bench.main([*argv, "--no-first-call", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["seed"] == 20261128 and data["machine"]["cpu_model"]
    assert [(r["payload_bytes"], r["mpdus_per_burst"]) for r in data["results"]] == [
        (0, 1),
        (0, 3),
        (40, 1),
        (40, 3),
    ]
    names = {"per-mpdu", *(f"batch-{e}" for e in data["engines"])}
    for row in data["results"]:
        assert set(row["variants"]) == names
        assert row["variants"]["per-mpdu"]["speedup_vs_per_mpdu"] == 1.0
    assert "per-mpdu" in capsys.readouterr().out
