"""SNR threshold per MCS for PER 1 % in AWGN: the table ``relaysec.linkadapt`` chooses MCSs by.

    python -m benchmarks.mcs_thresholds [--profile P2.5] [--payload 500] [--bursts 2000]
        [--target 0.01] [--seed 2026] [--mcs M ...] [--spot PROFILE ...] [--spot-mcs M ...]
        [--json PATH] [--write-data PATH]

Channel: AWGN at Es/N0 = SNR per used subcarrier (``phy.channel`` convention), each burst at a
random start offset in silence; the receiver does everything itself (detection, timing,
fractional and integer CFO, channel estimate from the preamble). A packet error is a burst not
found or not passing its CRC with the sent payload; a CRC pass with another payload is counted as
``false_pass`` (must stay 0).

Per MCS: (1) bisection with ``--coarse`` bursts per probe for the SNR of PER 10 %; (2) points
``--step`` dB apart from there with ``--bursts`` bursts each, until one has PER <= target / 4;
(3) a binomial maximum-likelihood fit of ``log10 PER = a + b * SNR`` to the points with
PER <= 15 % gives the SNR of PER = ``--target`` and its 95 % interval (delta method). The table
is stated twice: in true channel Es/N0, and on the scale ``phy.Burst.snr_db`` reports (the true
value plus the estimator's mean bias at that point), which is what a receiver can compare with.

``--spot`` re-measures ``--spot-mcs`` on other profiles. ``--write-data PATH`` puts the run's table
into the data file (created or merged: the table of the same profile is replaced): it serves the
measured profile and every spot-checked one within ``--agree-db`` at each spot MCS; a profile that
differs needs its own run with ``--profile``. Seeds derive from ``--seed``, the profile and the
MCS, so any subset of the run reproduces the same numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

import phy
from benchmarks._args import mcs_name, profile_name
from benchmarks._machine import format_machine, machine_info
from phy import channel as ch

FORMAT = "relaysec.mcs_thresholds/1"
FIT_MAX_PER = 0.15
BISECT_PER = 0.1
MAX_FINE_POINTS = 12
_SELF = "benchmarks/mcs_thresholds.py"


def _rng(seed: int, profile: str, mcs: str) -> np.random.Generator:
    """One independent stream per (seed, profile, MCS)."""
    return np.random.default_rng([seed, phy.profiles().index(profile), phy.mcs_table().index(mcs)])


def per_point(modem: phy.BurstModem, snr_db: float, payload: int, bursts: int,
              rng: np.random.Generator) -> dict[str, Any]:
    """Send ``bursts`` bursts of ``payload`` random bytes at Es/N0 ``snr_db``; count errors and
    collect the receiver's SNR estimate of every burst it found."""
    errors = false_pass = 0
    est: list[float] = []
    nv = ch.noise_variance_for(snr_db, modem.scale)
    for _ in range(bursts):
        data = rng.bytes(payload)
        x = modem.modulate(data, src=1, dst=2)
        off = int(rng.integers(50, 1500))
        buf = np.concatenate([np.zeros(off, np.complex64), x, np.zeros(800, np.complex64)])
        got = modem.demodulate(ch.awgn(buf, nv, rng))
        good = [b for b in got if b.crc_ok]
        false_pass += any(b.payload != data for b in good)
        errors += not any(b.payload == data for b in good)
        if got:
            est.append(got[0].snr_db)
    return {"snr_db": round(snr_db, 3), "bursts": bursts, "errors": errors,
            "per": errors / bursts, "false_pass": false_pass, "found": len(est),
            "est_mean_db": round(float(np.mean(est)), 3) if est else None,
            "est_std_db": round(float(np.std(est)), 3) if est else None}


def bisect_snr(modem: phy.BurstModem, payload: int, bursts: int, rng: np.random.Generator,
               lo: float = -4.0, hi: float = 36.0, tol: float = 0.1) -> float:
    """SNR where PER crosses :data:`BISECT_PER`, by bisection with ``bursts`` per probe."""
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if per_point(modem, mid, payload, bursts, rng)["per"] > BISECT_PER:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def fit_threshold(points: list[dict[str, Any]], target: float) -> dict[str, float]:
    """Binomial ML fit of ``log10 PER = a + b (s - s0)`` to the points with PER <= 15 %;
    returns the SNR at ``target`` and its 95 % half-width (delta method on Fisher information)."""
    pts = [p for p in points if p["per"] <= FIT_MAX_PER]
    if len(pts) < 2 or not any(p["per"] >= target for p in pts) \
            or not any(p["per"] <= target for p in pts):
        raise RuntimeError(f"cannot fit PER {target}: points do not bracket it: {points}")
    s = np.array([p["snr_db"] for p in pts])
    n = np.array([p["bursts"] for p in pts], float)
    k = np.array([p["errors"] for p in pts], float)
    s0 = float(s.mean())
    ln10 = math.log(10.0)

    def prob(th: np.ndarray) -> np.ndarray:
        return np.clip(10.0 ** (th[0] + th[1] * (s - s0)), 1e-15, 1 - 1e-12)

    def nll(th: np.ndarray) -> float:
        p = prob(th)
        return -float(np.sum(k * np.log(p) + (n - k) * np.log1p(-p)))

    # start from a least-squares line through the points that have errors
    y = np.log10(np.maximum(k, 0.5) / n)
    b0, a0 = np.polyfit(s - s0, y, 1)
    res = optimize.minimize(nll, np.array([a0, min(b0, -0.1)]), method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
    a, b = (float(v) for v in res.x)
    lt = math.log10(target)
    t = s0 + (lt - a) / b
    # Fisher information of (a, b): sum n (dp/dth)(dp/dth)^T / (p (1 - p)), dp/da = ln10 p
    p = prob(res.x)
    g = np.stack([ln10 * p, ln10 * p * (s - s0)])
    info = (g * (n / (p * (1 - p)))) @ g.T
    cov = np.linalg.inv(info)
    grad = np.array([-1.0 / b, -(lt - a) / b**2])  # dt/da, dt/db
    half = 1.96 * math.sqrt(max(float(grad @ cov @ grad), 0.0))
    return {"esn0_db": t, "ci95_db": half, "slope_db_per_decade": -1.0 / b}


def reported_scale(points: list[dict[str, Any]], t: float) -> float:
    """``t`` plus the receiver's mean SNR-estimate bias, interpolated at ``t``."""
    pts = [p for p in points if p["est_mean_db"] is not None]
    s = np.array([p["snr_db"] for p in pts])
    bias = np.array([p["est_mean_db"] - p["snr_db"] for p in pts])
    order = np.argsort(s)
    return t + float(np.interp(t, s[order], bias[order]))


def measure(profile: str, mcs: str, payload: int, bursts: int, coarse: int, step: float,
            target: float, seed: int) -> dict[str, Any]:
    """Threshold of one (profile, MCS): bisection, then fine points, then the fit."""
    rng = _rng(seed, profile, mcs)
    modem = phy.BurstModem(profile, mcs)
    s10 = bisect_snr(modem, payload, coarse, rng)
    pts: list[dict[str, Any]] = []
    s = round(s10 - step, 3)
    # walk down until the first point is well above the target, then up past it
    while True:
        p = per_point(modem, s, payload, bursts, rng)
        pts.append(p)
        if p["per"] >= 3 * target or len(pts) >= MAX_FINE_POINTS // 2:
            break
        s = round(s - step, 3)
    s = max(q["snr_db"] for q in pts)
    while pts[-1]["per"] > target / 4 and len(pts) < MAX_FINE_POINTS:
        s = round(s + step, 3)
        pts.append(per_point(modem, s, payload, bursts, rng))
    pts.sort(key=lambda q: q["snr_db"])
    fit = fit_threshold(pts, target)
    return {"profile": profile, "mcs": mcs, "snr_at_per10_bisect_db": round(s10, 2),
            "esn0_db": round(fit["esn0_db"], 2),
            "snr_db": round(reported_scale(pts, fit["esn0_db"]), 2),
            "ci95_db": round(fit["ci95_db"], 2),
            "slope_db_per_decade": round(fit["slope_db_per_decade"], 2),
            "false_pass": sum(q["false_pass"] for q in pts), "points": pts}


def git_commit() -> str | None:
    """HEAD of the repository this file is in, with ``-dirty`` when a tracked file of ``phy/`` or
    this file (all the numbers depend on) differs from it; other people's edits elsewhere, and
    untracked files (nothing imports them unless a tracked file changed), do not count."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "phy", _SELF],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty.strip() else "")


def data_table(res: dict[str, Any], agree_db: float) -> dict[str, Any]:
    """One profile's entry of the data file: its thresholds, provenance and spot checks; it
    applies to the measured profile and to every spot-checked one whose MCSs all agree within
    ``agree_db``."""
    main = res["profile"]
    by_profile: dict[str, list[float]] = {}
    for c in res["spot_checks"]:
        by_profile.setdefault(c["profile"], []).append(abs(c["delta_db"]))
    agree = [p for p, d in by_profile.items() if max(d) < agree_db and p != main]
    differ = {p: max(d) for p, d in by_profile.items() if max(d) >= agree_db}
    note = f"measured on {main}"
    if agree:
        note += f"; {', '.join(agree)} within {agree_db} dB of it at every spot check"
    if differ:
        note += "; " + ", ".join(f"{p} differs by up to {d:.2f} dB" for p, d in differ.items())
        note += " (needs its own table)"
    return {
        "applies_to": [main, *agree],
        "note": note,
        "provenance": {
            "command": res["command"], "profile": main, "payload_bytes": res["payload"],
            "bursts_per_point": res["bursts"], "coarse_bursts_per_probe": res["coarse"],
            "step_db": res["step"], "seed": res["seed"], "date": res["date"],
            "git_commit": res["git_commit"],
            "machine": {k: res["machine"][k] for k in ("cpu_model", "python", "numpy", "numba")},
        },
        "spot_checks": [{k: c[k] for k in ("profile", "mcs", "snr_db", "ci95_db", "delta_db")}
                        for c in res["spot_checks"]],
        "mcs": {r["mcs"]: {k: r[k] for k in ("snr_db", "esn0_db", "ci95_db")}
                for r in res["thresholds"]},
    }


def merge_data(doc: dict[str, Any] | None, res: dict[str, Any], agree_db: float
               ) -> dict[str, Any]:
    """Put this run's table into the data document ``doc`` (``None``: a new one). The table of
    the same profile is replaced; profiles it now covers leave the other tables (the latest
    measurement wins), except another table's own measured profile."""
    if doc is None:
        doc = {
            "format": FORMAT,
            "description": (
                f"Es/N0 per used subcarrier (dB) at which a {res['payload']}-byte burst reaches "
                f"PER {res['target_per']:g} in AWGN with full receiver sync, per MCS. 'snr_db' "
                "is on the scale phy.Burst.snr_db reports (true Es/N0 plus the estimator's mean "
                "bias) and is what relaysec.linkadapt uses; 'esn0_db' is the channel's true "
                "Es/N0; 'ci95_db' the half-width of its 95 % interval. Written by "
                "benchmarks/mcs_thresholds.py --write-data; one table per measured profile, "
                "'applies_to' lists the profiles it serves."),
            "target_per": res["target_per"], "payload_bytes": res["payload"], "tables": {}}
    if doc.get("format") != FORMAT or doc.get("payload_bytes") != res["payload"] \
            or doc.get("target_per") != res["target_per"]:
        raise SystemExit("the existing data file has another format, payload or target PER: "
                         "write to a new file")
    table = data_table(res, agree_db)
    others = {k: v for k, v in doc["tables"].items() if k != res["profile"]}
    table["applies_to"] = [p for p in table["applies_to"]
                           if p == res["profile"] or p not in others]
    for v in others.values():
        v["applies_to"] = [p for p in v["applies_to"] if p not in table["applies_to"]]
    doc["tables"] = {**others, res["profile"]: table}
    doc["tables"] = {k: doc["tables"][k] for k in phy.profiles() if k in doc["tables"]}
    covered = {p for v in doc["tables"].values() for p in v["applies_to"]}
    doc["profiles_without_table"] = [p for p in phy.profiles() if p not in covered]
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", type=profile_name, default="P2.5")
    ap.add_argument("--payload", type=int, default=500)
    ap.add_argument("--bursts", type=int, default=2000, help="bursts per fine point")
    ap.add_argument("--coarse", type=int, default=200, help="bursts per bisection probe")
    ap.add_argument("--step", type=float, default=0.25, help="dB between fine points")
    ap.add_argument("--target", type=float, default=0.01, help="target PER")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--mcs", nargs="+", type=mcs_name, default=phy.mcs_table())
    ap.add_argument("--spot", nargs="*", default=["5MHz", "10MHz"], help="profiles to spot-check")
    ap.add_argument("--spot-mcs", nargs="*", default=["QPSK-1/2", "64QAM-5/6"])
    ap.add_argument("--agree-db", type=float, default=0.3)
    ap.add_argument("--json", help="write the full result (every point) here")
    ap.add_argument("--write-data", help="write the relaysec/data/mcs_thresholds.json document")
    args = ap.parse_args(argv)
    profile = phy.get_profile(args.profile).name
    info = machine_info()
    print(format_machine(info))
    print(f"profile {profile}, payload {args.payload} B, PER target {args.target:g}, "
          f"{args.bursts} bursts per fine point, {args.coarse} per bisection probe, "
          f"step {args.step} dB, seed {args.seed}; SNR = Es/N0 per used subcarrier, AWGN")
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "benchmark": "mcs_thresholds", "command": "python -m benchmarks.mcs_thresholds "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "profile": profile, "payload": args.payload, "target_per": args.target,
        "bursts": args.bursts, "coarse": args.coarse, "step": args.step, "seed": args.seed,
        "date": dt.date.today().isoformat(), "git_commit": git_commit(), "machine": info,
        "thresholds": [], "spot_checks": []}
    hdr = (f"{'MCS':<10} {'snr_db':>7} {'Es/N0':>7} {'±95%':>5} {'dB/dec':>6} "
           f"{'bursts':>7} {'false':>5}")
    print("\n" + hdr)
    for mcs in args.mcs:
        r = measure(profile, mcs, args.payload, args.bursts, args.coarse, args.step,
                    args.target, args.seed)
        res["thresholds"].append(r)
        n = sum(p["bursts"] for p in r["points"])
        print(f"{mcs:<10} {r['snr_db']:>7.2f} {r['esn0_db']:>7.2f} {r['ci95_db']:>5.2f} "
              f"{r['slope_db_per_decade']:>6.2f} {n:>7} {r['false_pass']:>5}", flush=True)
    main_by_mcs = {r["mcs"]: r for r in res["thresholds"]}
    spots = [m for m in args.spot_mcs if m in main_by_mcs]
    if args.spot and spots:
        print(f"\nspot checks against {profile} (reported-scale threshold):")
    for sp in args.spot:
        spn = phy.get_profile(sp).name
        for mcs in spots:
            r = measure(spn, mcs, args.payload, args.bursts, args.coarse, args.step,
                        args.target, args.seed)
            r["delta_db"] = round(r["snr_db"] - main_by_mcs[mcs]["snr_db"], 2)
            res["spot_checks"].append(r)
            print(f"{spn:<10} {mcs:<10} {r['snr_db']:>7.2f} ±{r['ci95_db']:.2f}  "
                  f"delta {r['delta_db']:+.2f} dB", flush=True)
    res["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print(f"\nelapsed {res['elapsed_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if args.write_data:
        path = Path(args.write_data)
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        doc = merge_data(old, res, args.agree_db)
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        t = doc["tables"][profile]
        print(f"wrote {path}: {profile} table for {', '.join(t['applies_to'])} ({t['note']}); "
              f"no table yet: {', '.join(doc['profiles_without_table']) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
