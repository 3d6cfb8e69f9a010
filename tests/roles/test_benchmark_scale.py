"""The scale benchmark runs end to end on a tiny cell and reports what it promises
(benchmarks/scale.py). Every cell of a run draws its own seeds, so no (TEK, PN) repeats and the
nonce monitor stays armed."""

from __future__ import annotations

import json

from benchmarks import scale


def test_scale_benchmark_tiny_cell(tmp_path, capsys):
    path = tmp_path / "scale.json"
    assert scale.main(["--ams", "20", "--ars", "2", "--flood", "600", "--json", str(path)]) == 0
    assert "all keys agree: True" in capsys.readouterr().out
    res = json.loads(path.read_text())
    assert res["all_keys_agree"] is True and res["all_entered"] is True
    assert set(res["cpu_per_entry_s"]) == {"10", "20"}
    assert all(v > 0 for v in res["cpu_per_entry_s"].values())
    assert res["air_messages_per_entry"] > 0
    assert res["bytes_per_ams_context"]["abs"] > 0 and res["bytes_per_ams_context"]["ars"] > 0
    flood = res["flood"]
    assert {"max_half_open", "cap", "legit_entries_ok"} <= set(flood)
    assert 0 < flood["max_half_open"] <= flood["cap"]
    assert flood["legit_entered"] == len(flood["legit"]) == 3  # one per ARS, one at the ABS
    assert flood["abs_holds_only_real_stations"]
    assert res["tek_refresh"]["refreshed"] == res["tek_refresh"]["links"]
    assert res["handover"]["completed"] == res["handover"]["handovers"] == 4
    assert res["internal_errors"] == 0
    assert res["machine"]["cpu_model"] and res["benchmark"] == "scale"
