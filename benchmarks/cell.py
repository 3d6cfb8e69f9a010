"""The relay cell at scale on the loopback simulator: goodput, efficiency, fairness, CPU.

For each cell size (1, 4, 16, 64 AMSs) and security setting (distributed, centralized, security
off), one run: the ARSs and then every AMS enter the network (EAP-PSK, key agreement, AK
transfers in distributed mode), then every AMS carries **full-buffer traffic both ways**
(``traffic.mode = "saturate"``) for ``--saturate-s`` seconds of air. Reported per run:

* cell goodput (application bits delivered per second of air, both directions, all AMSs) and the
  per-AMS minimum/maximum;
* Jain's fairness index over per-AMS goodput;
* *efficiency*: application bits each hop carried over the coded PHY rate of the zones that
  carried data (:func:`relaysec.trial_report.efficiency`);
* entry time (first ARS attach to the last AMS keyed) and the CPU seconds one second of
  simulated air costs (wall clock of the whole run, this process alone).

PKM timers are those of a large cell (``security.rto_s = 0.1``, ``max_retries = 20``): dozens of
AMSs entering through one station at once share its contention slots, and the default retry span
(0.45 s) runs out for some of them. "Security off" replaces the AES-CCM transform by a null one
(same MPDU format), so the difference
to "distributed" is what protecting and verifying the data costs. Cells: 1 AMS behind ARS-1 (the
default topology); 4 and 16 AMSs, half behind each of two ARSs; 64 AMSs over the ABS and two
ARSs. Run: ``python -m benchmarks.cell [--ams 1 4 16 64] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from typing import Any

from benchmarks._machine import announce
from benchmarks.e2e import _timed_crypto
from relaysec import phases
from relaysec.config import load_config
from relaysec.trial import Trial
from relaysec.trial_report import build_report
from stack.nonces import NonceMonitor, monitoring

MODES = ("distributed", "centralized", "off")

BASE = [
    {"name": "ABS", "role": "abs", "station_id": 0xBB0000000001},
    {"name": "ARS-1", "role": "ars", "station_id": 0x0A0000000011, "parent": "ABS"},
    {"name": "ARS-2", "role": "ars", "station_id": 0x0A0000000012, "parent": "ABS"},
]


def stations(n: int) -> list[dict[str, Any]]:
    """The cell of *n* AMSs (see the module doc)."""
    if n == 1:
        return [*BASE, {"name": "AMS", "role": "ams", "station_id": 0x0C0000000101,
                        "serving": "ARS-1", "handover_target": "ARS-2"}]
    if n < 64:
        half = n // 2
        return [
            *BASE,
            {"name": "A", "role": "ams", "count": half, "station_id": 0x0C0000000100,
             "serving": "ARS-1"},
            {"name": "B", "role": "ams", "count": n - half, "station_id": 0x0C0000000200,
             "serving": "ARS-2"}]
    third = n // 3
    return [
        *BASE,
        {"name": "A", "role": "ams", "count": third, "station_id": 0x0C0000000100,
         "serving": "ARS-1"},
        {"name": "B", "role": "ams", "count": third, "station_id": 0x0C0000000200,
         "serving": "ARS-2"},
        {"name": "D", "role": "ams", "count": n - 2 * third, "station_id": 0x0C0000000300,
         "serving": "ABS"}]


def run_one(n: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """One cell run; returns its row."""
    cfg = load_config(overrides=[
        ("stations", stations(n)), ("report.progress", False), ("seed", args.seed),
        ("security.mode", "distributed" if mode == "off" else mode),
        ("traffic.mode", "saturate"), ("traffic.saturate_s", args.saturate_s),
        ("traffic.payload_bytes", args.payload), ("traffic.min_delivery", 0.0),
        ("timeouts.entry_s", args.entry_s), ("timeouts.traffic_s", args.saturate_s + 4.0),
        # PKM timers for a large cell: dozens of AMSs entering through one station at once share
        # its contention slots, so a request may wait longer than the default retry span
        ("security.tek_lifetime_s", 60.0), ("security.rto_s", 0.1),
        ("security.max_retries", 20),
        *args.set])
    t = Trial(cfg)
    acc = {"security": 0.0}
    crypto = _timed_crypto(acc, null=True) if mode == "off" else nullcontext()
    t0 = time.process_time()
    w0 = time.perf_counter()
    with monitoring(NonceMonitor(name="bench")), crypto:
        t.build()
        steps = (phases.ars_entry, phases.ams_entry, lambda tr: phases.traffic(tr, "traffic_1"))
        ok = all(step(t) for step in steps)
    cpu = time.process_time() - t0
    wall = time.perf_counter() - w0
    report = build_report(t, None if ok else t.phases[-1].detail)
    t.close()
    cell = report["cell"]
    rates = [r["goodput_bps"] or 0.0 for r in report["per_ams"].values()]
    entry = next((p for p in report["phases"] if p["name"] == "ams_entry"), {})
    return {
        "ams": n, "mode": mode, "ok": ok, "reason": None if ok else t.phases[-1].detail[:200],
        "goodput_bps": cell["goodput_bps"], "min_ams_bps": min(rates), "max_ams_bps": max(rates),
        "jain": cell["jain"], "efficiency": cell["efficiency"],
        "entry_s": (entry.get("t_end") or 0.0) - (entry.get("t_start") or 0.0),
        "sim_s": t.now, "cpu_s": cpu, "wall_s": wall,
        "cpu_per_sim_s": cpu / t.now if t.now else None,
        "corrupted": report["bytes"]["corrupted"], "duplicates": report["bytes"]["duplicates"],
    }


def _override(text: str) -> tuple[str, Any]:
    from relaysec.config import parse_override

    return parse_override(text)


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ams", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--saturate-s", type=float, default=0.5)
    p.add_argument("--payload", type=int, default=400,
                   help="application payload per packet (bytes; an MPDU must fit one 600-byte "
                   "allocation block)")
    p.add_argument("--entry-s", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", default=[], type=_override, metavar="KEY=VALUE",
                   help="override a config key for every run (e.g. mac.policy=pf)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    machine = announce()
    rows = []
    head = (f"{'AMSs':>5} {'mode':<12} {'ok':<4} {'goodput':>10} {'min/AMS':>9} {'max/AMS':>9} "
            f"{'Jain':>6} {'eff.':>6} {'entry s':>8} {'CPU s/s':>8}")
    print(head)
    for n in args.ams:
        for mode in args.modes:
            row = run_one(n, mode, args)
            rows.append(row)
            print(f"{n:>5} {mode:<12} {'yes' if row['ok'] else 'NO':<4} "
                  f"{_fmt(row['goodput_bps'] and row['goodput_bps'] / 1e6, '.3f'):>7} Mb/s"
                  f"{_fmt(row['min_ams_bps'] / 1e3, '.0f'):>6} kb/s"
                  f"{_fmt(row['max_ams_bps'] / 1e3, '.0f'):>6} kb/s"
                  f"{_fmt(row['jain'], '.3f'):>7}{_fmt(row['efficiency'], '.3f'):>7}"
                  f"{row['entry_s']:>9.2f}{_fmt(row['cpu_per_sim_s'], '.1f'):>9}"
                  + ("" if row["ok"] else f"  ({row['reason']})"))
            sys.stdout.flush()
    one = {r["mode"]: r for r in rows if r["ams"] == 1}
    checks = {}
    for r in rows:
        base = one.get(r["mode"])
        if r["ams"] > 1 and base and base["goodput_bps"] and r["goodput_bps"]:
            checks[f"{r['ams']}_{r['mode']}_vs_1"] = r["goodput_bps"] / base["goodput_bps"]
    if checks:
        print("cell goodput vs the one-AMS cell: " + ", ".join(
            f"{k} {v:.2f}" for k, v in checks.items()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"machine": machine, "args": vars(args), "runs": rows,
                       "goodput_vs_one_ams": checks}, fh, indent=2, default=str)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
