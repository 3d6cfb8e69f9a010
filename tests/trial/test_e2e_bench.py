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
    rc = e2e.main(["--packets", "4", "--repeats", "1", "--no-cold", "--json", str(out),
                   "--cells", "1", "--cell-saturate-s", "0.05", "--speed-runs", "1"])
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
    # simulator speed: the default scenario's air over wall after warm-up, and the CPU one
    # simulated second of a cell costs (1 AMS here; 1, 4, 16 by default)
    speed = data["trial_speed"]
    run = speed["runs"][0]
    assert run["ok"] and run["air_s"] > 0.5 and run["wall_s"] > 0 and run["cpu_s"] > 0
    assert speed["median_air_per_wall"] == pytest.approx(run["air_s"] / run["wall_s"])
    assert {"stack", "modem", "radio"} <= set(run["cpu_by_layer_s"])
    [cell] = data["cpu_per_simulated_second"]
    assert cell["ams"] == 1 and cell["ok"] and cell["sim_s"] > 0
    assert cell["cpu_per_sim_s"] == pytest.approx(cell["cpu_s"] / cell["sim_s"])
    assert data["target_ratio"] == 0.97 and "meets_target_cpu_view" in data
    text = capsys.readouterr().out
    assert "processing goodput" in text and "CPU-time view" in text
    assert "air/wall" in text and "CPU per simulated second" in text
