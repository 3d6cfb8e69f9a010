"""PHY packet error rate vs SNR for every MCS in AWGN and ITU Ped-B.

    python -m benchmarks.per [--json PATH] [--seed N] [--profile P] [--payload BYTES]
                             [--bursts N] [--step DB] [--channels awgn pedB] [--mcs M ...]

Each point sends ``--bursts`` bursts of ``--payload`` random bytes through the channel (random
start offset in the buffer; Ped-B: a new Rayleigh block-fading realisation per burst, taps from
digest §5.4) plus AWGN at Es/N0 = SNR per used subcarrier, and counts a packet error when the
burst is not found or its CRC fails (a CRC pass with a wrong payload would be counted separately
as ``false_pass`` — it must stay 0). The SNR sweep per MCS starts a few dB below the expected
threshold, skips ahead while PER = 1 and stops after two points with PER = 0.

Printed: one table per channel (PER per SNR) and the SNR needed for PER 10 % (log-interpolated)
per MCS; the AWGN column is the in-run baseline for the Ped-B fading loss.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from typing import Any

import numpy as np

import phy
from benchmarks._machine import format_machine, machine_info
from phy import channel as ch

START_DB = {"QPSK-1/2": -1, "QPSK-3/4": 1, "16QAM-1/2": 5, "16QAM-3/4": 8, "64QAM-1/2": 10,
            "64QAM-2/3": 13, "64QAM-3/4": 14, "64QAM-5/6": 15}
MAX_DB = 44.0


def per_point(modem: phy.BurstModem, channel: str, snr_db: float, payload: int, bursts: int,
              rng: np.random.Generator) -> dict[str, Any]:
    errors = false_pass = 0
    snr_est = []
    for _ in range(bursts):
        data = rng.bytes(payload)
        x = modem.modulate(data, src=1, dst=2)
        off = int(rng.integers(50, 1500))
        buf = np.concatenate([np.zeros(off, np.complex64), x, np.zeros(800, np.complex64)])
        if channel != "awgn":
            buf = ch.multipath(buf, ch.tdl_impulse_response(channel, modem.sample_rate, rng))
        buf = ch.awgn(buf, ch.noise_variance_for(snr_db, modem.scale), rng)
        got = modem.demodulate(buf)
        good = [b for b in got if b.crc_ok]
        if any(b.payload != data for b in good):
            false_pass += 1
        if not any(b.payload == data for b in good):
            errors += 1
        if got:
            snr_est.append(got[0].snr_db)
    return {"snr_db": snr_db, "per": errors / bursts, "errors": errors, "bursts": bursts,
            "false_pass": false_pass,
            "snr_est_db": float(np.mean(snr_est)) if snr_est else None}


def snr_at_per(points: list[dict[str, Any]], target: float = 0.1) -> float | None:
    """Log-PER interpolation of the first crossing of ``target``."""
    pts = sorted(points, key=lambda p: p["snr_db"])
    for a, b in itertools.pairwise(pts):
        if a["per"] >= target > b["per"]:
            la = math.log10(max(a["per"], 1e-4))
            lb = math.log10(max(b["per"], 1e-4))
            lt = math.log10(target)
            return a["snr_db"] + (la - lt) / (la - lb) * (b["snr_db"] - a["snr_db"])
    return None


def sweep(modem_profile: str, mcs: str, channel: str, payload: int, bursts: int, step: float,
          rng: np.random.Generator) -> list[dict[str, Any]]:
    modem = phy.BurstModem(modem_profile, mcs)
    snr = float(START_DB[mcs])
    pts: list[dict[str, Any]] = []
    zeros = 0
    while snr <= MAX_DB and zeros < 2:
        p = per_point(modem, channel, snr, payload, bursts, rng)
        if p["per"] == 1.0 and not pts:
            snr += step  # still below threshold: skip ahead, keep only the last all-fail point
            last_fail = p
            continue
        if not pts and snr > START_DB[mcs]:
            pts.append(last_fail)
        pts.append(p)
        zeros = zeros + 1 if p["per"] == 0.0 else 0
        snr += step
    return pts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--profile", default="5MHz")
    ap.add_argument("--payload", type=int, default=1000)
    ap.add_argument("--bursts", type=int, default=100)
    ap.add_argument("--step", type=float, default=2.0)
    ap.add_argument("--channels", nargs="+", default=["awgn", "pedB"])
    ap.add_argument("--mcs", nargs="+", default=phy.mcs_table())
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    info = machine_info()
    print(format_machine(info))
    print(f"profile {args.profile}, payload {args.payload} B, {args.bursts} bursts per point, "
          f"seed {args.seed}; SNR = Es/N0 per used subcarrier")
    t0 = time.perf_counter()
    res: dict[str, Any] = {"benchmark": "per", "seed": args.seed, "machine": info,
                           "profile": args.profile, "payload": args.payload,
                           "bursts": args.bursts, "curves": {}}
    for channel in args.channels:
        res["curves"][channel] = {}
        print(f"\n== {channel} ==  PER at SNR (dB)")
        for mcs in args.mcs:
            pts = sweep(args.profile, mcs, channel, args.payload, args.bursts, args.step, rng)
            s10 = snr_at_per(pts)
            res["curves"][channel][mcs] = {"points": pts, "snr_at_per10_db": s10}
            cells = "  ".join(f"{p['snr_db']:>4.0f}:{p['per']:.3f}" for p in pts)
            fp = sum(p["false_pass"] for p in pts)
            print(f"{mcs:<10} {cells}" + (f"  FALSE CRC PASSES: {fp}" if fp else ""))
    print("\nSNR for PER 10 % (dB):")
    print(f"{'MCS':<10} " + " ".join(f"{c:>8}" for c in args.channels)
          + ("   Ped-B loss" if {"awgn", "pedB"} <= set(args.channels) else ""))
    for mcs in args.mcs:
        vals = [res["curves"][c][mcs]["snr_at_per10_db"] for c in args.channels]
        row = " ".join(f"{v:>8.1f}" if v is not None else f"{'n/a':>8}" for v in vals)
        if {"awgn", "pedB"} <= set(args.channels):
            a = res["curves"]["awgn"][mcs]["snr_at_per10_db"]
            b = res["curves"]["pedB"][mcs]["snr_at_per10_db"]
            row += f"   {b - a:>+6.1f} dB" if a is not None and b is not None else "      n/a"
        print(f"{mcs:<10} {row}")
    res["elapsed_s"] = time.perf_counter() - t0
    print(f"\nelapsed {res['elapsed_s']:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
