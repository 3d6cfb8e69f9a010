"""Handover interruption over the air, downlink and uplink, run by run.

    python -m benchmarks.ota_handover [--runs N] [--speed S] [--emulated] [--set KEY=VALUE]
                                      [--json PATH]

The default trial over the air (20 ms frames, ``traffic.ota_scale``), *runs* times with seeds
1..N: on the wall-clock loopback medium (``schedule.mode=wall``: the OTA runtime without
pyadi-iio), or with ``--emulated`` over four emulated Plutos (``relaysec emulate`` in a
subprocess, the real libiio client path; :func:`benchmarks.emulator.trial_run`). Per run: the
verdict and, in each direction, the handover *interruption* -- the longest time in which no user
data reached or left the mover (ITU-R M.2134's definition; the old path's late deliveries count,
its floor is the probe period, one frame) -- and the *switch* time, from the move's start to the
first end-to-end block delivered that came by the target (each block is reported by the hop
that brought it: ``stack.arq.ArqReceiver.last_tags``). The baseline, in the same run: the same trial
and seeds on the simulated clock (no TX lead, no radio), the protocol's own share of the time.
``--speed`` < 1 slows the air down on a busy host (half speed: every frame gets twice the wall
time; the figures are in air time either way).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
from typing import Any

from benchmarks._machine import announce
from relaysec.phases import HANDOVER_FIGURES


def _trial(sets: list[str]) -> dict[str, Any]:
    from relaysec.config import _set_dotted, default_config, parse_override
    from relaysec.trial import Trial

    cfg = default_config()
    for item in sets:
        _set_dotted(cfg, *parse_override(item))
    with contextlib.redirect_stdout(io.StringIO()):
        report, _ = Trial(cfg).run()
    return {"ok": report["ok"], "reason": report["reason"],
            "handover": {k: v for k, v in (report.get("handover") or {}).items()
                         if k.startswith(HANDOVER_FIGURES)}}


def run_one(seed: int, *, mode: str, speed: float, sets: list[str]) -> dict[str, Any]:
    """One trial: *mode* ``sim`` (baseline), ``wall`` or ``emulated``."""
    base = [f"seed={seed}", *sets]
    if mode == "sim":
        return _trial(base)
    if mode == "wall":
        return _trial(["schedule.mode=wall", f"schedule.ota_speed={speed!r}", *base])
    from benchmarks.emulator import trial_run

    r = trial_run(speed, sets=base)
    return {"ok": r["ok"], "reason": r["reason"], "handover": r["handover"]}


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{1e3 * x:.0f}"


def summary(rows: list[dict[str, Any]], measure: str = "interruption"
            ) -> dict[str, float | None]:
    """Mean and range (ms) of each direction of *measure* (``interruption`` or ``switch``)
    over the runs that completed the handover."""
    out: dict[str, float | None] = {}
    for d in ("dl", "ul"):
        xs = [r["handover"].get(f"{measure}_{d}_s") for r in rows]
        xs = [1e3 * x for x in xs if x is not None]
        out[f"{d}_mean_ms"] = statistics.mean(xs) if xs else None
        out[f"{d}_min_ms"] = min(xs, default=None)
        out[f"{d}_max_ms"] = max(xs, default=None)
    out["passed"] = sum(bool(r["ok"]) for r in rows)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--speed", type=float, default=0.5)
    ap.add_argument("--emulated", action="store_true",
                    help="over four emulated Plutos instead of the wall-clock loopback")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.runs < 1 or not 0 < a.speed <= 1:
        ap.error("--runs must be >= 1 and --speed in (0, 1]")
    info = announce()
    mode = "emulated" if a.emulated else "wall"
    table: dict[str, list[dict[str, Any]]] = {"sim": [], mode: []}
    print(f"\nhandover interruption and switch time (ms of air), {a.runs} runs, over the air: "
          f"{mode} at speed {a.speed:g}; baseline: the simulated clock")
    print(f"  {'':>4}  {'interruption (no data either way)':^46}  {'switch (data by target)':^30}")
    print(f"  {'seed':>4}  {'sim DL':>7} {'sim UL':>7}  {mode + ' DL':>12} {mode + ' UL':>12}"
          f"  {'sim DL':>7} {'sim UL':>7} {mode[:4] + ' DL':>7} {mode[:4] + ' UL':>7}  verdict")
    for seed in range(1, a.runs + 1):
        sim = run_one(seed, mode="sim", speed=a.speed, sets=a.set)
        air = run_one(seed, mode=mode, speed=a.speed, sets=a.set)
        table["sim"].append(sim)
        table[mode].append(air)
        h0, h1 = sim["handover"], air["handover"]
        verdict = "PASS" if air["ok"] else f"FAIL ({air['reason']})"
        print(f"  {seed:>4}  {_ms(h0.get('interruption_dl_s')):>7} "
              f"{_ms(h0.get('interruption_ul_s')):>7}  {_ms(h1.get('interruption_dl_s')):>12} "
              f"{_ms(h1.get('interruption_ul_s')):>12}  {_ms(h0.get('switch_dl_s')):>7} "
              f"{_ms(h0.get('switch_ul_s')):>7} {_ms(h1.get('switch_dl_s')):>7} "
              f"{_ms(h1.get('switch_ul_s')):>7}  {verdict}", flush=True)
    sums = {f"{k} {measure}": summary(v, measure) for k, v in table.items()
            for measure in ("interruption", "switch")}
    nan = float("nan")
    for k, s in sums.items():
        print(f"  {k:<22} DL mean {s['dl_mean_ms'] or nan:.0f} ms "
              f"({s['dl_min_ms'] or nan:.0f}-{s['dl_max_ms'] or nan:.0f}), "
              f"UL mean {s['ul_mean_ms'] or nan:.0f} ms "
              f"({s['ul_min_ms'] or nan:.0f}-{s['ul_max_ms'] or nan:.0f}), "
              f"{s['passed']}/{a.runs} passed")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "mode": mode, "speed": a.speed, "sets": a.set,
                       "runs": table, "summary": sums}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
