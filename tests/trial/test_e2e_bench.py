"""benchmarks/e2e.py runs end to end and writes the JSON it promises (smoke test, tiny load)."""

from __future__ import annotations

import json

from benchmarks import e2e


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
    assert "processing goodput" in capsys.readouterr().out
