"""Key management at scale: one ABS, M ARSs, N AMSs, the sans-I/O roles wired in memory.

    python -m benchmarks.scale --ams N --ars M --json PATH [--loss L] [--seed S]
                               [--mode distributed|centralized] [--wave W] [--flood F]

Measures the scenario of :mod:`benchmarks.scale_scenario` (the cell, its in-memory network and
phases 1-5: ARS entry, AMS entry in waves, TEK refresh, handovers at once, the spoofed-entry
flood) and reports it: a table, and with ``--json`` the results with the machine block
(:func:`benchmarks._machine.announce`). One small cell runs every phase but the flood first,
unmeasured (:func:`warm`). CPU seconds per entry (``time.process_time``, the whole simulation:
roles and in-memory network) are measured on separate cells of 10, 100 and 1000 AMSs (the
sizes up to N; N itself is the main cell, which then runs phases 3-5).

Memory per AMS context: a separate cell (``--mem-ams``, default min(N, 1000)) repeats phases 1-2
under ``tracemalloc``; every allocation still alive after the entries is attributed to the ABS
(a frame of one of its modules, ``stack/roles/abs*.py``, among the allocation's innermost
``TRACE_FRAMES``), an ARS (``ars*.py``) or an AMS (``subscriber*.py``, ``ams.py``), and divided
by the number of AMS contexts.

At the end every AMS's ``key_info()`` must equal its key holder's (the serving ARS in distributed
mode, else the ABS), the ABS's AK of the AMS must match too, and every ARS's relay link must
match the ABS's. The ABS caps that the scenario needs above their defaults (entries in progress
at once in total and per access station) and ARS caps (held handover AKs) are raised in the
configuration and listed in the output; the ARS's ranging rate limit keeps its default.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import sys
import time
import tracemalloc
from collections import Counter
from typing import Any

from benchmarks._machine import announce
from benchmarks.scale_scenario import (
    ABS,
    ARS_BASE,
    HOP,
    TIMERS,
    Params,
    abs_caps,
    ars_caps,
    build,
    enter_amss,
    enter_arss,
    flood,
    handover,
    key_check,
    tek_refresh,
)
from stack.roles import AbsConfig, ArsConfig, SecurityMode
from stack.roles.base import RoleBase

SIZES = (10, 100, 1000)
TRACE_FRAMES = 12               # enough to reach the role's frame from every allocation kept


# -- memory --------------------------------------------------------------------------------------
_src, _first = inspect.getsourcelines(RoleBase.events)
_EVENTS_LINES = range(_first, _first + len(_src))
"""Lines of ``RoleBase.events``: draining a role's event deque gives it a new (traced) block that
replaces the one it had before tracing started -- no growth, so kept apart."""


#: A role's modules under stack/roles/, by file-name prefix: the ABS's (abs.py and its mixins
#: abs_keys.py, abs_entry.py, ...), an ARS's (ars.py, ars_keys.py), an AMS's (subscriber*.py,
#: ams.py); checked in this order.
_ROLE_FILES = (("abs", ("abs",)), ("ars", ("ars",)), ("ams", ("subscriber", "ams")))


def _owner(tb: tracemalloc.Traceback) -> str:
    """Which role kept an allocation: a frame in one of the ABS's modules -> ABS, else an
    ARS's -> ARS, else the subscriber's/AMS's -> AMS; ``other`` is the simulator itself."""
    names = [f.filename.replace("\\", "/") for f in tb]
    if any(n.endswith("stack/roles/base.py") and f.lineno in _EVENTS_LINES
           for n, f in zip(names, tb, strict=True)):
        return "event_queues"  # a drained deque's fresh block: one per role, not per context
    roles = [n.rsplit("/", 1)[-1] for n in names if "stack/roles/" in n]
    for who, prefixes in _ROLE_FILES:
        if any(base.startswith(prefixes) for base in roles):
            return who
    if any("/stack/" in n for n in names):
        return "unattributed"  # no role frame within TRACE_FRAMES of the allocation
    return "other"


def memory(p: Params, n: int) -> dict[str, Any]:
    """Bytes still allocated per AMS context after ``n`` AMSs entered, by role kind."""
    c = build(p, n, "mem")
    enter_arss(c)
    c.drain()
    gc.collect()
    tracemalloc.start(TRACE_FRAMES)
    try:
        res = enter_amss(c, c.ams)
        c.drain()
        gc.collect()
        snap = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    by: Counter[str] = Counter()
    sites: dict[str, Counter[str]] = {}
    for st in snap.statistics("traceback"):
        who = _owner(st.traceback)
        by[who] += st.size
        fr = st.traceback[-1]
        site = "/".join(fr.filename.replace("\\", "/").split("/")[-2:]) + f":{fr.lineno}"
        sites.setdefault(who, Counter())[site] += st.size
    # every AMS entered through an ARS: n contexts at the ABS and n spread over the ARSs
    return {"ams": n, "entered": res["entered"],
            "abs": round(by["abs"] / n), "ars": round(by["ars"] / n),
            "ams_role": round(by["ams"] / n), "other_bytes": by["other"],
            "unattributed_bytes": by["unattributed"], "event_queue_bytes": by["event_queues"],
            "trace_frames": TRACE_FRAMES,
            "total_bytes": dict(by),
            "top_sites": {k: dict(v.most_common(6)) for k, v in sites.items()
                          if k in ("abs", "ars", "ams", "unattributed")}}


# -- warm-up ---------------------------------------------------------------------------------------
def warm(p: Params) -> None:
    """One small cell through entry, TEK refresh and handover, not measured: imports, numba's
    compiled burst passes and caches are ready before the first timed cell."""
    c = build(Params(ams=8, ars=2, mode=p.mode, seed=p.seed, wave=p.wave), 8, "warm")
    enter_arss(c)
    enter_amss(c, c.ams)
    tek_refresh(c)
    handover(c)


# -- the run --------------------------------------------------------------------------------------
def run(p: Params) -> dict[str, Any]:
    """Every phase at N, the entry phase at each size up to N, memory on its own cell."""
    out: dict[str, Any] = {"params": {
        "ams": p.ams, "ars": p.ars, "loss": p.loss, "seed": p.seed, "mode": p.mode.value,
        "wave_per_ars": p.wave, "handovers": p.n_handovers, "flood_ids": p.flood,
        "flood_rate_ids_per_s": p.flood_rate, "hop_s": HOP,
        "timers": {"rto": TIMERS.rto, "max_retries": TIMERS.max_retries}},
        "raised_caps": {"abs": {k: v for k, v in abs_caps(p).items()
                                if v != getattr(AbsConfig(station_id=ABS), k)},
                        "ars": {k: v for k, v in ars_caps(p).items()
                                if v != getattr(ArsConfig(station_id=ARS_BASE + 1,
                                                          psk=bytes(16)), k)}}}
    warm(p)
    entry: dict[str, Any] = {}
    for n in (s for s in SIZES if s < p.ams):
        c = build(p, n, f"entry{n}")
        enter_arss(c)
        entry[str(n)] = enter_amss(c, c.ams)
        entry[str(n)]["keys_agree"] = key_check(c)["agree"]
        del c
        gc.collect()
    c = build(p, p.ams, "main", legit=p.ars + 1)
    enter_arss(c)
    entry[str(p.ams)] = enter_amss(c, c.ams)
    entry[str(p.ams)]["keys_agree"] = key_check(c)["agree"]
    out["entry"] = entry
    out["cpu_per_entry_s"] = {k: v["cpu_per_entry_s"] for k, v in entry.items()}
    out["air_messages_per_entry"] = entry[str(p.ams)]["air_messages_per_entry"]
    out["tek_refresh"] = tek_refresh(c)
    out["handover"] = handover(c)
    out["flood"] = flood(c)
    final = key_check(c)
    out["keys"] = final
    not_in = [a for a in (*c.ams, *c.legit) if a.phase != "operational"]
    out["all_entered"] = not not_in and all(v["entered"] == v["ams"] for v in entry.values())
    out["all_keys_agree"] = final["agree"] and not not_in and all(
        v["keys_agree"] for v in entry.values())
    out["rejections"] = {
        "abs": dict(c.abs_.rejections.most_common()),
        "ars": dict(sum((r.rejections for r in c.ars), Counter()).most_common()),
        "ams": dict(sum((a.rejections for a in (*c.ams, *c.legit)), Counter()).most_common())}
    out["internal_errors"] = sum(r.rejections["internal_error"] for r in c.roles())
    out["entry_failures"] = dict(c.failed)
    out["events"] = dict(c.events.most_common())
    del c
    gc.collect()
    n_mem = min(p.ams, 1000) if p.mem_ams is None else p.mem_ams
    if n_mem:
        out["memory"] = memory(p, n_mem)
        out["bytes_per_ams_context"] = {"abs": out["memory"]["abs"],
                                        "ars": out["memory"]["ars"]}
    return out


def _table(res: dict[str, Any]) -> str:
    rows = [f"{'AMSs':>6} {'entered':>8} {'CPU/entry':>11} {'air msgs/entry':>15} "
            f"{'sim s':>7} {'waves':>6}"]
    for k, v in res["entry"].items():
        rows.append(f"{k:>6} {v['entered']:>8} {v['cpu_per_entry_s'] * 1e3:>8.2f} ms "
                    f"{v['air_messages_per_entry']:>15.1f} {v['sim_s']:>7.2f} {v['waves']:>6}")
    t, h, f = res["tek_refresh"], res["handover"], res["flood"]
    rows.append("")
    rows.append(f"TEK refresh: {t['refreshed']}/{t['links']} links, "
                f"{t['cpu_per_refresh_s'] * 1e3:.2f} ms CPU and "
                f"{t['air_messages_per_refresh']:.1f} air messages each")
    if h.get("handovers"):
        rows.append(f"handover:    {h['completed']}/{h['handovers']} at once, "
                    f"{h['cpu_per_handover_s'] * 1e3:.2f} ms CPU and "
                    f"{h['air_messages_per_handover']:.1f} air messages each "
                    f"({h['ak_requests']} AK Requests)")
    rows.append(f"flood:       {f['spoofed_ids']} spoofed ids ({f['spoofed_requests']} requests) "
                f"in {f['duration_s']} s; half-open max {f['max_half_open']} / cap {f['cap']}; "
                f"legit entries {f['legit_entered_during_flood']}/{len(f['legit'])} during it, "
                f"{f['legit_entered']} in the end -> legit_entries_ok={f['legit_entries_ok']}")
    rows.append(f"             after expiry the ABS holds real stations only: "
                f"{f['abs_holds_only_real_stations']} ({f['abs_state_after_expiry']})")
    if "memory" in res:
        mem = res["memory"]
        rows.append(f"memory per AMS context ({mem['ams']} AMSs): ABS {mem['abs']} B, "
                    f"ARS {mem['ars']} B, AMS role {mem['ams_role']} B")
    rows.append(f"all keys agree: {res['all_keys_agree']} ({res['keys']['checked_ams']} AMSs, "
                f"{res['keys']['disagree']} disagreements); internal errors "
                f"{res['internal_errors']}")
    raised = res["raised_caps"]
    rows.append(f"caps raised for the scenario: ABS {raised['abs'] or 'none'}, "
                f"ARS {raised['ars'] or 'none'}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ams", type=int, default=1000, help="AMSs (N)")
    ap.add_argument("--ars", type=int, default=8, help="ARSs (M)")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON here")
    ap.add_argument("--loss", type=float, default=0.0, help="frame loss on every link")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=[x.value for x in SecurityMode],
                    default=SecurityMode.DISTRIBUTED.value)
    ap.add_argument("--wave", type=int, default=20,
                    help="AMSs starting entry at once per ARS (0: all at once)")
    ap.add_argument("--flood", type=int, default=10_000, help="spoofed station ids")
    ap.add_argument("--flood-rate", type=float, default=2000.0, help="spoofed ids per second")
    ap.add_argument("--mem-ams", type=int, default=None,
                    help="AMSs of the tracemalloc cell (default min(N, 1000); 0: skip)")
    args = ap.parse_args(argv)
    if args.ams < 1 or args.ars < 1 or not 0 <= args.loss < 1 or args.flood < 1 \
            or not args.flood_rate > 0 or args.wave < 0:
        ap.error("need --ams, --ars, --flood >= 1, --flood-rate > 0, --wave >= 0, "
                 "0 <= --loss < 1")
    p = Params(ams=args.ams, ars=args.ars, loss=args.loss, seed=args.seed,
               mode=SecurityMode(args.mode), wave=args.wave, flood=args.flood,
               flood_rate=args.flood_rate, mem_ams=args.mem_ams)
    info = announce()
    wall0 = time.perf_counter()
    res = run(p)
    res["wall_s"] = time.perf_counter() - wall0
    print()
    print(_table(res))
    if args.json:
        out = {"benchmark": "scale", "machine": info, **res}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
