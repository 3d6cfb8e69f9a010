"""End-to-end benchmark of the relay cell on the loopback simulator (one run, table + JSON).

Questions answered, all in the same run on the same machine:

1. **Secured relayed goodput vs security off.** The default scenario with a saturating load (one
   500-byte packet per direction per 10 ms frame, ABS↔AMS through an ARS). "Security off" runs the
   identical scenario with the CCM batch engine replaced by a null transform (same MPDU format, no
   cryptography), so the difference is exactly the cost of protecting and verifying the data path.
   Two goodputs are reported: *processing goodput* (application bytes delivered per second of
   CPU time of the traffic phases — what limits a CPU-bound SDR node; target ≥ 95 %
   of security off) and *air goodput* (application bytes per second of simulated air; identical by
   construction, so the airtime cost of the security fields is given as a projection: the 12
   bytes of EKS/PN + ICV per protected MPDU on each hop, i.e. payload / (payload + 24) — an upper
   bound on the cost: with fixed TDD zones holding one packet each, as here, the same packets go
   per frame either way and the measured air goodput is equal).
   The comparison is fair for the data path: both runs do the same framing, sealing bookkeeping
   (PN, nonces, burst layout) and key management; only the AES-CCM transform is replaced.
2. **Per-layer CPU share**: security (CCM seal/open batches), rest of the stack (roles, MAC,
   PKMv3), modem, medium (loopback radios), measured with timers around each layer.
3. **Handover interruption** with and without AK pre-distribution (first data through the
   target after the AMS starts re-entry).

Run: ``python -m benchmarks.e2e [--json PATH] [--seed N] [--packets N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from typing import Any

import numpy as np

from benchmarks._machine import format_machine, load_warning, machine_info
from relaysec.config import load_config
from relaysec.trial import run_trial

SECURITY_BYTES_PER_MPDU = 12  # EKS/PN (4) + ICV (8), digest §4.2


@contextmanager
def _timed_crypto(acc: dict[str, float], *, null: bool):
    """Time (and optionally replace by a null transform) the AES-CCM calls of the data path:
    the batch engine used by stack.mac and the single-MPDU calls of stack.mpdu."""
    import stack.mac as mac
    import stack.mpdu as mpdu

    real_batch = mac.run_in_place_trusted
    real_enc, real_dec = mpdu.ccm_encrypt, mpdu.ccm_decrypt

    def enc(key, nonce, payload, *a, **kw):
        t0 = time.perf_counter()
        try:
            return bytes(payload) + bytes(8) if null else real_enc(key, nonce, payload, *a, **kw)
        finally:
            acc["security"] += time.perf_counter() - t0

    def dec(key, nonce, sealed, *a, **kw):
        t0 = time.perf_counter()
        try:
            return bytes(sealed[:-8]) if null else real_dec(key, nonce, sealed, *a, **kw)
        finally:
            acc["security"] += time.perf_counter() - t0

    def batch(keys, key_index, nonces, buf, offsets, lengths, *, decrypt, **kw):
        t0 = time.perf_counter()
        try:
            if null:
                if not decrypt:
                    for o, n in zip(offsets.tolist(), lengths.tolist(), strict=True):
                        buf[o + n:o + n + 8] = 0
                return np.ones(len(offsets), dtype=bool)
            return real_batch(keys, key_index, nonces, buf, offsets, lengths, decrypt=decrypt,
                              **kw)
        finally:
            acc["security"] += time.perf_counter() - t0

    mac.run_in_place_trusted = batch
    mpdu.ccm_encrypt, mpdu.ccm_decrypt = enc, dec
    try:
        yield
    finally:
        mac.run_in_place_trusted = real_batch
        mpdu.ccm_encrypt, mpdu.ccm_decrypt = real_enc, real_dec


def _traffic_stats(report: dict[str, Any]) -> dict[str, float]:
    phases = {p["name"]: p for p in report["phases"]}
    air = 0.0
    delivered = 0
    for name in ("traffic_1", "traffic_2"):
        p = phases[name]
        air += (p["t_end"] or 0) - (p["t_start"] or 0)
    for flow, f in report["flows"].items():
        if flow.startswith(("traffic_1", "traffic_2")):
            delivered += f["delivered"]
    return {"air_s": air, "delivered_bytes": delivered}


def run_case(cfg: dict[str, Any], *, null: bool) -> dict[str, Any]:
    acc = {"security": 0.0}
    phase_wall: dict[str, float] = {}

    def progress(line: str) -> None:
        now = time.process_time()   # CPU time of this process: less sensitive to other load
        for name in ("traffic_1", "traffic_2", "tek_refresh"):
            if f"] {name} ..." in line:
                phase_wall[name] = now
        if line.strip().startswith(("ok", "FAIL")):
            for name in ("traffic_1", "traffic_2"):
                if f" {name}:" in line and name in phase_wall:
                    phase_wall[name] = now - phase_wall[name]

    with _timed_crypto(acc, null=null):
        report, _ = run_trial(cfg, progress=progress)
    stats = _traffic_stats(report)
    wall = sum(v for k, v in phase_wall.items() if k in ("traffic_1", "traffic_2") and v < 1e6)
    cpu = dict(report["cpu_s"])
    cpu["security"] = acc["security"]
    cpu["stack_other"] = max(0.0, cpu.pop("stack", 0.0) - acc["security"])
    cpu["medium"] = cpu.pop("radio", 0.0)
    total = sum(cpu.values()) or 1.0
    return {
        "ok": report["ok"],
        "reason": report["reason"],
        "delivered_bytes": stats["delivered_bytes"],
        "traffic_air_s": stats["air_s"],
        "traffic_wall_s": wall,
        "air_goodput_bps": 8 * stats["delivered_bytes"] / stats["air_s"] if stats["air_s"] else 0,
        "processing_goodput_bps": 8 * stats["delivered_bytes"] / wall if wall else 0,
        "cpu_s": cpu,
        "cpu_share": {k: v / total for k, v in cpu.items()},
        "handover": report["handover"],
        "bytes": report["bytes"],
        "warmup_s": report["timing"].get("warmup_s"),
    }


_COLD = """
import time, numpy as np
t0 = time.perf_counter()
import phy
from stack.crypto import seal_batch
from relaysec.trial import Trial
from relaysec.config import load_config
t1 = time.perf_counter()
m = phy.BurstModem("P2.5", "16QAM-3/4")
Trial(load_config())._warm_up(m)
print(t1 - t0, time.perf_counter() - t1)
"""


def cold_start() -> dict[str, float] | None:
    """Import time and first-call (numba compile) time of the modem and CCM engine, measured in a
    fresh interpreter with an empty numba cache."""
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        try:
            out = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True,
                                 text=True, timeout=600, check=True).stdout.split()
        except (subprocess.SubprocessError, OSError):
            return None
    return {"import_s": float(out[0]), "first_call_compile_s": float(out[1])}


def best_of_interleaved(cfg_overrides: list[tuple[str, Any]], *, repeats: int
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(secured, security off): for each, the run with the highest processing goodput of
    *repeats* identical runs (timing noise on a shared machine only ever slows a run down).
    The two cases alternate run by run, so a stretch of load from other processes hits both
    instead of biasing whichever case ran during it."""
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for _ in range(repeats):
        for null in (False, True):
            runs[null].append(run_case(load_config(overrides=cfg_overrides), null=null))
    best = {k: max(v, key=lambda r: r["processing_goodput_bps"]) for k, v in runs.items()}
    return best[False], best[True]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--packets", type=int, default=60, help="packets per direction per phase")
    ap.add_argument("--repeats", type=int, default=3, help="runs per case (best is kept)")
    ap.add_argument("--no-cold", action="store_true",
                    help="skip the cold-start measurement (a fresh interpreter, empty numba cache)")
    args = ap.parse_args(argv)

    base = [("seed", args.seed), ("phy.frame_ms", 10.0), ("traffic.payload_bytes", 500),
            ("traffic.per_frame", 1), ("traffic.packets_per_direction", args.packets),
            ("security.tek_lifetime_s", 1.0), ("report.progress", False)]
    info = machine_info()
    warn = load_warning()
    print(format_machine(info))
    if warn:
        print(f"warning: {warn}")
    t0 = time.perf_counter()
    secured, plain = best_of_interleaved(base, repeats=args.repeats)
    no_pre = run_case(load_config(overrides=[*base, ("security.ak_predistribution", False)]),
                      null=False)
    elapsed = time.perf_counter() - t0
    cold = None if args.no_cold else cold_start()

    payload = 500
    # per app packet: access-hop MPDU and relay MPDU each carry EKS/PN + ICV
    sec_overhead = 2 * SECURITY_BYTES_PER_MPDU
    air_ratio_projection = payload / (payload + sec_overhead)
    proc_ratio = (secured["processing_goodput_bps"] / plain["processing_goodput_bps"]
                  if plain["processing_goodput_bps"] else float("nan"))
    # The same question on the less noisy clock: the secured run's CPU time with its security
    # time replaced by the null run's (other users' load inflates whole-run timings, and two
    # identical secured runs differ by several percent on a shared host).
    sec_s, sec_n = secured["cpu_s"]["security"], plain["cpu_s"]["security"]
    total_s = sum(secured["cpu_s"].values())
    cpu_ratio = (total_s - sec_s + sec_n) / total_s if total_s else float("nan")
    result = {
        "benchmark": "e2e",
        "seed": args.seed,
        "machine": info,
        "load_warning": warn,
        "settings": dict(base),
        "secured": secured,
        "security_off": plain,
        "no_predistribution": no_pre,
        "processing_goodput_ratio": proc_ratio,
        "cpu_time_ratio": cpu_ratio,
        "air_goodput_ratio_projection": air_ratio_projection,
        "target_ratio": 0.95,
        "meets_target": bool(proc_ratio >= 0.95),
        "handover_interruption_s": {
            "predistributed": secured["handover"].get("interruption_s"),
            "on_demand": no_pre["handover"].get("interruption_s"),
        },
        "elapsed_s": elapsed,
        "cold_start": cold,
    }

    def rate(x: float) -> str:
        return f"{x / 1e3:8.1f} kb/s"

    print()
    print(f"{'case':<22}{'ok':>4}{'delivered':>11}{'air goodput':>15}{'proc. goodput':>16}"
          f"{'security':>10}{'stack':>8}{'modem':>8}{'medium':>8}")
    for name, r in (("secured", secured), ("security off (null)", plain),
                    ("secured, no AK pre-dist", no_pre)):
        s = r["cpu_share"]
        print(f"{name:<22}{'yes' if r['ok'] else 'NO':>4}{r['delivered_bytes']:>10}B"
              f"{rate(r['air_goodput_bps']):>15}{rate(r['processing_goodput_bps']):>16}"
              f"{s.get('security', 0):>9.1%}{s.get('stack_other', 0):>8.1%}"
              f"{s.get('modem', 0):>8.1%}{s.get('medium', 0):>8.1%}")
    print()
    print(f"processing goodput secured / security off: {proc_ratio:.1%} "
          f"(target >= 95 %: {'met' if result['meets_target'] else 'NOT met'})")
    print(f"CPU-time view: secured run with its AES-CCM time replaced by the null run's: "
          f"{cpu_ratio:.1%} (security {sec_s * 1e3:.0f} ms vs null {sec_n * 1e3:.0f} ms of "
          f"{total_s:.2f} s CPU)")
    print(f"air goodput: identical MPDU formats; security fields cost {sec_overhead} B per "
          f"{payload} B packet over the two hops -> projected {air_ratio_projection:.1%}")
    hi = result["handover_interruption_s"]
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v * 1e3:.0f} ms"

    print(f"handover interruption: with AK pre-distribution {fmt(hi['predistributed'])}, "
          f"without {fmt(hi['on_demand'])}")
    if cold:
        print(f"cold start (empty numba cache): imports {cold['import_s']:.1f} s, first modem + "
              f"CCM calls (JIT compile) {cold['first_call_compile_s']:.1f} s; "
              f"warm: {secured['warmup_s']:.2f} s")
    print(f"all runs took {elapsed:.1f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2, default=float)
        print(f"JSON: {args.json}")
    ok = secured["ok"] and plain["ok"] and no_pre["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
