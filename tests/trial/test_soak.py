"""The soak, short (CI): a few simulated seconds of ``relaysec trial --soak`` with TEK
refreshes, a re-authentication, a handover, burst loss and a fault; every (TEK, PN) watched,
role tables sampled. The long run is ``python -m benchmarks.soak`` (docs/trial.md)."""

from __future__ import annotations

from relaysec import phases
from relaysec.config import arq_params
from relaysec.trial import run_trial
from stack.arq import over_hops

from .helpers import fast_config


def test_short_soak_reuses_no_pn_and_keeps_role_state_flat(monkeypatch):
    monkeypatch.setattr(phases, "SOAK_HO_EVERY_S", 0.8)
    monkeypatch.setattr(phases, "SOAK_FAULT_EVERY_S", 0.5)
    cfg = fast_config(("security.ak_lifetime_s", 3.0))
    report, _ = run_trial(cfg, soak_s=3.0)
    soak = report["soak"]
    b = report["bytes"]
    assert report["security"]["nonces"]["reused"] == 0
    assert report["security"]["nonces"]["sent"] > 1000
    assert b["corrupted"] == 0 and b["duplicates"] == 0 and b["lost"] == 0
    assert soak["samples"] >= 3
    assert soak["keys_installed"].get("tek_refresh", 0) >= 8      # many TEK updates
    assert soak["keys_installed"].get("reauth", 0) >= 1            # a re-authentication
    assert soak["handovers"] >= 1
    assert [f for f in report["faults"] if f["kind"] != "burst_loss"]  # a random fault drawn
    assert report["arq"]["retransmissions"] > 0                     # burst loss recovered
    for name, table in soak["roles"].items():                       # nothing piles up
        for key, v in table.items():
            if key == "heap":   # lazily pruned: bounded by 2 x (pending + deadlines) + 32
                live = table["pending"]["last"] + table["deadlines"]["last"]
                assert v["last"] <= 2 * live + 33, (name, v)
                continue
            if key == "arq_tx_held":
                # the end-to-end layer over hops acknowledges every quarter window (64 blocks)
                # or quarter second: what it retains until then is bounded by that, not flat
                held = over_hops(arq_params(cfg)).ack_every + 16
                assert v["last"] <= held and v["max"] <= held, (name, key, v)
                continue
            assert v["last"] <= max(v["first"], v["mid"], 8) or v["last"] <= 16, (name, key, v)
    assert report["phases"][-1]["name"] == "soak"
