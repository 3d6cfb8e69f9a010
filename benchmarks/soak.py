"""Soak: a long simulated run with every security procedure repeated, faults injected, state and
memory watched.

    python -m benchmarks.soak [--seconds 600] [--seed 1] [--mode distributed] [--json PATH]

Runs the default trial and then ``relaysec trial --soak SECONDS`` (:func:`relaysec.phases.soak`):
traffic both ways for every AMS, TEK refreshes every 0.4 s per link, re-authentication every
27 s (AK lifetime 30 s), handovers back and forth every 5 s, 2 % burst loss on every link and
random outages and ARS restarts from the seed. The trial's nonce monitor records every
(TEK, direction, PN) handed out and fails the run on any reuse; role tables and process memory
are sampled every simulated second.

Prints the machine, a table of the sampled quantities (first / mid / last / max: what must stay
flat does), the counts of the security procedures and faults, and the verdict of each check;
``--json`` writes all of it. The baseline in the same run is the soak's own first sample: growth
is measured against it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from benchmarks._machine import announce


def run(seconds: float, seed: int, mode: str) -> dict[str, Any]:
    """One soak; returns the figures (see the module docstring)."""
    from relaysec.config import load_config
    from relaysec.trial import run_trial

    cfg = load_config(overrides=[("report.progress", False), ("seed", seed),
                                 ("security.mode", mode), ("security.ak_lifetime_s", 30.0)])
    t0 = time.perf_counter()
    report, _ = run_trial(cfg, soak_s=seconds)
    wall = time.perf_counter() - t0
    soak = report.get("soak") or {}
    b = report["bytes"]
    nonces = report["security"]["nonces"]
    faults = [f for f in report["faults"] if f["kind"] != "burst_loss"]
    unrecovered = [f for f in faults if f.get("fired_at_s") is not None
                   and f.get("recovery_s") is None]
    checks = {
        "pn_reuse_0": nonces["reused"] == 0,
        "replays_accepted_0": b["duplicates"] == 0,
        "corrupted_0": b["corrupted"] == 0,
        "lost_0": b["lost"] == 0,
        "faults_recovered": not unrecovered,
        "handovers_completed": not soak.get("handovers_failed"),
        "role_tables_flat": not _grew(soak),
    }
    return {"seconds": seconds, "seed": seed, "mode": mode, "wall_s": wall,
            "ok": report["ok"], "reason": report["reason"], "checks": checks,
            "bytes": b, "pns_sent": nonces["sent"], "tek_streams": nonces["streams"],
            "rejections": dict(sorted(report["security"].get("rejections", {}).items())),
            "arq": report["arq"], "faults": len(faults), "unrecovered": unrecovered[:5],
            "soak": soak}


def _grew(soak: dict[str, Any]) -> dict[str, Any]:
    """Role quantities whose last sample exceeds the first, the mid-run one and a small floor
    (a queue or table that keeps growing, not one that moves with the traffic: the ARQ blocks
    held go up and down with what is in flight, 59 / 15 / 23 in a 600 s run)."""
    return {f"{n}.{k}": v for n, r in soak.get("roles", {}).items() for k, v in r.items()
            if k != "heap" and v["last"] > max(v["first"], v["mid"], 8)}   # heap: pruned lazily


def _table(res: dict[str, Any]) -> str:
    soak = res["soak"]
    rows = [("process RSS (KiB)", soak.get("rss_kb", {})),
            ("trial event log (entries)", soak.get("events_logged", {})),
            ("trial packet records", soak.get("packets_recorded", {})),
            ("nonce monitor streams", soak.get("nonce_streams", {}))]
    for name, r in soak.get("roles", {}).items():
        for k, v in r.items():
            if v["max"]:
                rows.append((f"{name} {k}", v))
    out = [f"{'sampled':<38}{'first':>10}{'mid':>10}{'last':>10}{'max':>10}"]
    for label, v in rows:
        if v:
            out.append(f"{label:<38}{v['first']:>10}{v['mid']:>10}{v['last']:>10}{v['max']:>10}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="simulated seconds of soak")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=("distributed", "centralized"), default="distributed")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON here")
    args = ap.parse_args(argv)
    info = announce()
    res = run(args.seconds, args.seed, args.mode)
    soak = res["soak"]
    print()
    print(_table(res))
    print(f"\n{args.seconds:g} simulated s in {res['wall_s']:.0f} s wall; "
          f"{soak.get('handovers', 0)} handovers ({soak.get('handovers_failed', 0)} failed), "
          f"keys installed {soak.get('keys_installed', {})}, {res['faults']} faults, "
          f"{res['pns_sent']} PNs in {res['tek_streams']} (TEK, direction) streams")
    print(f"bytes {res['bytes']}; ARQ {res['arq']}")
    print(f"security rejections by reason (no attacker runs here; burst loss is caught by the "
          f"PHY's CRC): {res['rejections'] or 'none'}")
    for name, ok in res["checks"].items():
        print(f"  [{'ok' if ok else 'FAIL':<4}] {name}")
    print(f"verdict: {'PASS' if res['ok'] and all(res['checks'].values()) else 'FAIL'}"
          + (f" ({res['reason']})" if res["reason"] else ""))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"benchmark": "soak", "machine": info, **res}, f, indent=1, default=str)
        print(f"wrote {args.json}")
    return 0 if res["ok"] and all(res["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
