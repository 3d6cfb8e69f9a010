"""benchmarks/e2e.py runs end to end and writes the JSON it promises (smoke test, tiny load)."""

from __future__ import annotations

import json

import pytest

from benchmarks import e2e


# Several simulated trials from the same seed in one test: each repeats the other's keys
# and PNs by construction (every trial checks its own nonces, relaysec.trial).
@pytest.mark.nonce_reuse_expected
def test_e2e_benchmark_smoke(tmp_path, capsys):
    out = tmp_path / "e2e.json"
    rc = e2e.main(["--packets", "4", "--repeats", "1", "--no-cold", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    for key in ("secured", "security_off", "no_predistribution", "processing_goodput_ratio",
                "handover_interruption_s", "machine", "seed"):
        assert key in data
    assert data["secured"]["bytes"]["corrupted"] == 0
    shares = data["secured"]["cpu_share"]
    assert abs(sum(shares.values()) - 1.0) < 1e-6
    assert {"security", "modem", "medium", "stack_other"} <= set(shares)
    # the CPU-time view removes exactly the security time the null transform saved
    assert 0.5 < data["cpu_time_ratio"] <= 1.0 + 1e-9
    assert data["security_off"]["cpu_s"]["security"] < data["secured"]["cpu_s"]["security"]
    text = capsys.readouterr().out
    assert "processing goodput" in text and "CPU-time view" in text
