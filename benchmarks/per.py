"""PHY packet error rate vs SNR: the real receiver beside an ideal-sync, ideal-CSI reference.

    python -m benchmarks.per [--quick] [--json PATH] [--seed N] [--profile P] [--payload BYTES]
                             [--bursts N] [--channels C ...] [--mcs M ...] [--target PER]

Every burst (``--payload`` random bytes, random start offset in silence) goes through the
channel and AWGN at Es/N0 = SNR per used subcarrier, and is then decoded twice from the same
samples: by :class:`phy.BurstModem` (detection, timing, CFO, channel and noise estimation, pilot
tracking, header -- everything from the samples) and by :class:`phy.reference.ReferenceReceiver`
(told the start, MCS, length, the true channel response, the true noise variance and, under
phase noise, each symbol's true common phase; the same equaliser, demapper and Viterbi). A
packet error is a burst not found or not passing its CRC with the sent payload; a CRC pass with
another payload counts as ``false_pass`` (must stay 0); ``missed`` counts bursts the real
receiver did not find at all (detection or header lost).

Channels (``--channels``): ``awgn``; ``twopath`` (static echo 2 us at -3 dB, echo phase random
per burst, powers normalised); ``pedA``, ``pedB``, ``vehA`` (ITU-R M.1225 tap-delay lines from
``hw.channels``, a new Rayleigh block-fading draw per burst; SNR is the average); ``pn70`` and
``pn65`` (AWGN plus a free-running oscillator's phase noise of -70 / -65 dBc/Hz at 10 kHz,
``hw.channels.phase_noise``). Per channel and MCS the SNR sweep starts below the expected
threshold, skips ahead while both receivers lose every burst, and stops once both are below
``--target`` / 4 (or 12 dB above its start, 24 dB on fading channels: an error floor).
Printed per curve: PER of both receivers per SNR; then the SNR of PER ``--target``
(log-interpolated) for each and the gap in dB (real minus reference). The default
run (``--quick`` off) is the one ``docs/phy.md`` quotes; ``--quick`` uses fewer bursts and
coarser steps to check a change in a few minutes. ``--spot SNR ...`` measures only the given
points (e.g. ``--channels twopath --mcs 16QAM-3/4 --spot 17``).

``--zone-vs-burst`` instead compares a :class:`phy.ZoneModem` allocation with a
:class:`phy.BurstModem` burst of the same payload (AWGN, 1000 bytes by default, random start
offset): the allocation is the second of four in its zone (the three others ``--payload`` bytes
at QPSK-1/2) and its receiver decodes only its own; per MCS (default QPSK-1/2, 16QAM-1/2,
64QAM-3/4) 0.5 dB steps from below the threshold until both PERs are under 5 %, and the SNR of
PER 10 % of each (log-interpolated). With ``--channels pedB`` (the first channel given) every
transmission gets its own fading draw.
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
from benchmarks._args import mcs_name, profile_name
from benchmarks._machine import announce, format_machine
from benchmarks.mcs_thresholds import fit_threshold
from hw import channels as hwch
from phy import channel as ch
from phy.reference import ReferenceReceiver, common_phases, window_response

DEFAULT_MCS = ["QPSK-1/2", "16QAM-3/4", "64QAM-5/6"]
DEFAULT_CHANNELS = ["awgn", "twopath", "pedA", "pedB", "vehA", "pn70"]
# first SNR of a sweep (dB) per MCS for AWGN-like channels; fading channels start 3 dB higher
START_DB = {"QPSK-1/2": 1.0, "QPSK-3/4": 4.0, "16QAM-1/2": 7.0, "16QAM-3/4": 10.5,
            "64QAM-1/2": 12.0, "64QAM-2/3": 15.0, "64QAM-3/4": 16.5, "64QAM-5/6": 17.5}
FADING = {"pedA", "pedB", "vehA"}
PHASE_NOISE_DBC = {"pn70": -70.0, "pn65": -65.0}
MAX_DB = 50.0
SPAN_DB = 12.0  # a sweep ends this far above its start (an error floor, e.g. phase noise)
SPAN_FADING_DB = 24.0
TWO_PATH = ((0.0, 2e-6), (0.0, -3.0))  # delays s, powers dB


def _taps(channel: str, fs: float, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray] | None:
    """(delays in samples, complex gains) of one channel draw; None for a flat channel."""
    if channel in FADING:
        prof = hwch.channel_profile(channel)
        return prof.delays_samples(fs), prof.draw(rng)
    if channel == "twopath":
        p = 10 ** (np.asarray(TWO_PATH[1]) / 10)
        p /= p.sum()
        g = np.sqrt(p).astype(np.complex128)
        g[1] *= np.exp(2j * np.pi * rng.random())
        return np.asarray(TWO_PATH[0]) * fs, g
    return None


def per_point(modem: phy.BurstModem, ref: ReferenceReceiver, channel: str, snr_db: float,
              payload: int, bursts: int, rng: np.random.Generator) -> dict[str, Any]:
    """One SNR point: ``bursts`` bursts through ``channel``, decoded by both receivers."""
    errors = ref_errors = false_pass = missed = 0
    snr_est = []
    nv = ch.noise_variance_for(snr_db, modem.scale)
    fs = modem.sample_rate
    mcs = modem.mcs.name
    for _ in range(bursts):
        data = rng.bytes(payload)
        x = modem.modulate(data, src=1, dst=2)
        off = int(rng.integers(50, 1500))
        buf = np.concatenate([np.zeros(off, np.complex64), x, np.zeros(800, np.complex64)])
        taps = _taps(channel, fs, rng)
        if taps is None:
            H = window_response(modem, np.zeros(1), np.ones(1))
        else:
            buf = hwch.apply_taps(buf, *taps)
            H = window_response(modem, *taps)
        cpe = None
        if channel in PHASE_NOISE_DBC:
            phase = hwch.phase_noise(buf.size, fs, PHASE_NOISE_DBC[channel], rng)
            buf = (buf * np.exp(1j * phase)).astype(np.complex64)
            cpe = common_phases(phase, modem, off, modem.data_symbols(payload) + 1)
        buf = ch.awgn(buf, nv, rng)
        got = modem.demodulate(buf)
        good = [b for b in got if b.crc_ok]
        if any(b.payload != data for b in good):
            false_pass += 1
        if not any(b.payload == data for b in good):
            errors += 1
        if not any(abs(b.start - off) <= modem.grid.cp for b in got):
            missed += 1
        if got:
            snr_est.append(got[0].snr_db)
        rp, rok = ref.decode(buf, off, mcs=mcs, length=payload, src=1, dst=2, H=H, sigma2=nv,
                             cpe=cpe)
        if not (rok and rp == data):
            ref_errors += 1
            false_pass += int(rok)
    return {"snr_db": snr_db, "per": errors / bursts, "ref_per": ref_errors / bursts,
            "errors": errors, "ref_errors": ref_errors, "missed": missed, "bursts": bursts,
            "false_pass": false_pass,
            "snr_est_db": float(np.mean(snr_est)) if snr_est else None}


ZONE_MCS = ["QPSK-1/2", "16QAM-1/2", "64QAM-3/4"]
ZONE_START_DB = {"QPSK-1/2": 2.5, "16QAM-1/2": 8.0, "64QAM-3/4": 16.5}
ZONE_ME, ZONE_OTHERS = 0x0123, (0x0200, 0x0201, 0x0202)


def zone_vs_burst_point(profile: str, mcs: str, snr_db: float, payload: int, bursts: int,
                        rng: np.random.Generator, channel: str = "awgn") -> dict[str, Any]:
    """``bursts`` payloads, each sent as a BurstModem burst and as the second of four
    allocations of a zone burst, through ``channel`` (a new fading draw for every
    transmission) at Es/N0 ``snr_db``; errors of both receivers."""
    bm, zm = phy.BurstModem(profile, mcs), phy.ZoneModem(profile)
    nv = ch.noise_variance_for(snr_db, bm.scale)
    err_b = err_z = false_pass = 0

    def air(x: np.ndarray) -> np.ndarray:
        off = int(rng.integers(50, 1500))
        buf = np.concatenate([np.zeros(off, np.complex64), x, np.zeros(800, np.complex64)])
        taps = _taps(channel, bm.sample_rate, rng)
        if taps is not None:
            buf = hwch.apply_taps(buf, *taps)
        return ch.awgn(buf, nv, rng)

    for _ in range(bursts):
        data = rng.bytes(payload)
        got = [b for b in bm.demodulate(air(bm.modulate(data, src=1, dst=ZONE_ME))) if b.crc_ok]
        err_b += not any(b.payload == data for b in got)
        false_pass += sum(b.payload != data for b in got)
        allocs = [phy.Allocation(ZONE_OTHERS[0], rng.bytes(payload), "QPSK-1/2"),
                  phy.Allocation(ZONE_ME, data, mcs),
                  *(phy.Allocation(d, rng.bytes(payload), "QPSK-1/2") for d in ZONE_OTHERS[1:])]
        rx = zm.demodulate(air(zm.modulate(allocs, src=1)), me={ZONE_ME})
        mine = [b for z in rx for b in z.allocations if b.crc_ok and b.dst == ZONE_ME]
        err_z += not any(b.payload == data for b in mine)
        false_pass += sum(b.payload != data for b in mine)
    return {"snr_db": snr_db, "bursts": bursts, "per_burst": err_b / bursts,
            "per_zone": err_z / bursts, "false_pass": false_pass}


def zone_vs_burst(profile: str, mcss: list[str], payload: int, bursts: int, step: float,
                  seed: int, channel: str = "awgn") -> dict[str, Any]:
    """Per MCS: points from ``ZONE_START_DB`` (3 dB higher and 4x the step on fading channels)
    up until both PERs are below 5 %; the SNR of PER 10 % of each."""
    out: dict[str, Any] = {}
    print(f"zone allocation (2nd of 4) vs BurstModem burst, {profile}, {payload} B, {channel}, "
          f"{bursts} of each per point: SNR: PER burst / zone")
    fading = channel in FADING
    for mi, mcs in enumerate(mcss):
        rng = np.random.default_rng([seed, mi, 23])
        first = ZONE_START_DB.get(mcs, START_DB[mcs]) + (3.0 if fading else 0.0)
        snr = first
        pts = []
        while snr <= first + (SPAN_FADING_DB if fading else SPAN_DB):
            p = zone_vs_burst_point(profile, mcs, snr, payload, bursts, rng, channel)
            pts.append(p)
            if p["per_burst"] < 0.05 and p["per_zone"] < 0.05:
                break
            snr = round(snr + step * (4 if fading else 1), 3)
        conv = [{"snr_db": p["snr_db"], "bursts": p["bursts"], "per": p["per_burst"],
                 "ref_per": p["per_zone"]} for p in pts]
        b10, z10 = snr_at_per(conv, 0.1), snr_at_per(conv, 0.1, "ref_per")
        out[mcs] = {"points": pts, "burst_per10_db": b10, "zone_per10_db": z10}
        cells = "  ".join(f"{p['snr_db']:g}:{p['per_burst']:.3f}/{p['per_zone']:.3f}"
                          for p in pts)
        fp = sum(p["false_pass"] for p in pts)
        print(f"{mcs:<10} {cells}  PER 10 %: burst {_f(b10)} dB, zone {_f(z10)} dB, "
              f"difference {_f(None if b10 is None or z10 is None else z10 - b10, '+')} dB"
              + (f"  FALSE CRC PASSES: {fp}" if fp else ""), flush=True)
    return out


def snr_at_per(points: list[dict[str, Any]], target: float, key: str = "per") -> float | None:
    """Log-PER interpolation of the last downward crossing of ``target`` (PER of 0 counts as
    half an error in the point's bursts)."""
    pts = sorted(points, key=lambda p: p["snr_db"])
    out = None
    for a, b in itertools.pairwise(pts):
        if a[key] >= target > b[key]:
            la = math.log10(max(a[key], 0.5 / a["bursts"]))
            lb = math.log10(max(b[key], 0.5 / b["bursts"]))
            lt = math.log10(target)
            out = a["snr_db"] + (la - lt) / (la - lb) * (b["snr_db"] - a["snr_db"])
    return out


def fitted(points: list[dict[str, Any]], target: float, ref: bool = False
           ) -> dict[str, float] | None:
    """Binomial ML fit of log-PER vs SNR through the points with PER <= 15 %
    (:func:`benchmarks.mcs_thresholds.fit_threshold`) for the real receiver or the reference:
    the SNR at ``target`` and its 95 % half-width; None when the points do not bracket it."""
    key, err = ("ref_per", "ref_errors") if ref else ("per", "errors")
    pts = [{"snr_db": p["snr_db"], "per": p[key], "bursts": p["bursts"], "errors": p[err]}
           for p in points]
    try:
        return fit_threshold(pts, target)
    except (RuntimeError, np.linalg.LinAlgError, ValueError):
        return None


def summarise(res: dict[str, Any]) -> None:
    """Print the per-curve fits and gaps (and store them in ``res``)."""
    target = res["target"]
    channels = list(res["curves"])
    mcss = list(next(iter(res["curves"].values()))) if channels else []
    print(f"\nSNR (dB) for PER {target:g}, binomial fit +- 95 %: real / reference / gap")
    print(f"{'channel':<8} " + " ".join(f"{m:>30}" for m in mcss))
    for c in channels:
        row = []
        for mcs in mcss:
            cur = res["curves"][c][mcs]
            a, b = fitted(cur["points"], target), fitted(cur["points"], target, ref=True)
            cur["fit"], cur["ref_fit"] = a, b
            cur["gap_fit_db"] = None if a is None or b is None else a["esn0_db"] - b["esn0_db"]
            txt = (f"{_f(a and a['esn0_db'])}+-{_f(a and a['ci95_db'], '', 1)} / "
                   f"{_f(b and b['esn0_db'])}+-{_f(b and b['ci95_db'], '', 1)} / "
                   f"{_f(cur['gap_fit_db'], '+')}")
            row.append(txt.rjust(30))
        print(f"{c:<8} " + " ".join(row))
    fp = sum(p["false_pass"] for cc in res["curves"].values() for cur in cc.values()
             for p in cur["points"])
    n = sum(p["bursts"] for cc in res["curves"].values() for cur in cc.values()
            for p in cur["points"])
    res["false_pass"] = fp
    res["total_bursts"] = n
    print(f"\nfalse CRC passes: {fp} in {n} bursts (each decoded by both receivers)")
    print("bursts the real receiver did not find at all (detection or header lost), per curve: "
          "the highest SNR with a miss, misses there / that point's real-receiver errors")
    for c in channels:
        cells = []
        for mcs in mcss:
            pts = [p for p in res["curves"][c][mcs]["points"] if p["missed"]]
            if pts:
                p = max(pts, key=lambda q: q["snr_db"])
                cells.append(f"{mcs} {p['snr_db']:g} dB: {p['missed']}/{p['errors']}")
            else:
                cells.append(f"{mcs} none")
        print(f"  {c:<8} " + "; ".join(cells))
    for mcs, cur in res["curves"].get("twopath", {}).items():
        at17 = [p for p in cur["points"] if abs(p["snr_db"] - 17.0) < 1e-6]
        if at17:
            print(f"twopath {mcs} at 17 dB: PER {at17[0]['per']:.4f} "
                  f"(reference {at17[0]['ref_per']:.4f}, {at17[0]['bursts']} bursts)")


def sweep(profile: str, mcs: str, channel: str, payload: int, bursts: int, step: float,
          target: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    """PER points of both receivers from a start below threshold until both are well below
    ``target``."""
    modem = phy.BurstModem(profile, mcs)
    ref = ReferenceReceiver(modem)
    snr = START_DB[mcs] + (3.0 if channel in FADING else 0.0)
    stop = min(MAX_DB, snr + (SPAN_FADING_DB if channel in FADING else SPAN_DB))
    pts: list[dict[str, Any]] = []
    last_fail: dict[str, Any] | None = None
    while snr <= stop:
        p = per_point(modem, ref, channel, snr, payload, bursts, rng)
        if p["per"] == 1.0 and p["ref_per"] == 1.0:
            last_fail = p  # below both thresholds: skip ahead, keep the last all-fail point
            snr = round(snr + 2 * step, 3)
            continue
        if not pts and last_fail is not None:
            pts.append(last_fail)
        pts.append(p)
        if p["per"] <= target / 4 and p["ref_per"] <= target / 4:
            break
        # far above the target PER both: a coarse step; then the fine one
        snr = round(snr + (2 * step if min(p["per"], p["ref_per"]) > 0.5 else step), 3)
    return pts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true",
                    help="200 bursts per point, coarser steps (a few minutes)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--profile", type=profile_name, default="5MHz")
    ap.add_argument("--payload", type=int, default=200)
    ap.add_argument("--bursts", type=int, help="bursts per point (default 1000, quick 200)")
    ap.add_argument("--step", type=float, help="dB between AWGN-like points (default 0.25, "
                    "quick 0.5; fading channels and two-path use 4x / 2x)")
    ap.add_argument("--target", type=float, default=0.01, help="PER at which gaps are stated")
    ap.add_argument("--channels", nargs="+", default=DEFAULT_CHANNELS,
                    choices=["awgn", "twopath", *sorted(FADING), *PHASE_NOISE_DBC])
    ap.add_argument("--mcs", nargs="+", type=mcs_name, default=DEFAULT_MCS)
    ap.add_argument("--from-json", help="print the summary of a saved run instead of running")
    ap.add_argument("--spot", type=float, nargs="+",
                    help="instead of sweeps: PER of both receivers at these SNRs (dB) only")
    ap.add_argument("--zone-vs-burst", action="store_true",
                    help="instead: a zone allocation against a BurstModem burst (see above)")
    args = ap.parse_args(argv)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            saved = json.load(f)
        print(format_machine(saved["machine"]))
        print(f"saved run: profile {saved['profile']}, payload {saved['payload']} B, "
              f"{saved['bursts']} bursts per point, seed {saved['seed']}")
        summarise(saved)
        return 0
    bursts = args.bursts or (200 if args.quick else 1000)
    step = args.step or (0.5 if args.quick else 0.25)
    info = announce()
    t0 = time.perf_counter()
    if args.zone_vs_burst:
        payload = 1000 if args.payload == ap.get_default("payload") else args.payload
        zb_bursts = args.bursts or (100 if args.quick else 300)
        mcss = ZONE_MCS if args.mcs == ap.get_default("mcs") else args.mcs
        zres = {"benchmark": "per-zone-vs-burst", "seed": args.seed, "machine": info,
                "profile": args.profile, "payload": payload, "bursts": zb_bursts,
                "channel": args.channels[0],
                "curves": zone_vs_burst(args.profile, mcss, payload, zb_bursts,
                                        args.step or 0.5, args.seed, args.channels[0]),
                "elapsed_s": time.perf_counter() - t0}
        print(f"elapsed {zres['elapsed_s']:.0f} s")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(zres, f, indent=2)
            print(f"wrote {args.json}")
        return 0
    print(f"profile {args.profile}, payload {args.payload} B, {bursts} bursts per point, "
          f"seed {args.seed}; SNR = Es/N0 per used subcarrier; PER real / reference")
    t0 = time.perf_counter()
    res: dict[str, Any] = {"benchmark": "per", "seed": args.seed, "machine": info,
                           "profile": args.profile, "payload": args.payload, "bursts": bursts,
                           "target": args.target, "quick": args.quick, "curves": {}}
    if args.spot:
        res["spot"] = {}
        for ci, channel in enumerate(args.channels):
            for mi, mcs in enumerate(args.mcs):
                modem = phy.BurstModem(args.profile, mcs)
                ref = ReferenceReceiver(modem)
                for si, snr in enumerate(args.spot):
                    rng = np.random.default_rng([args.seed, ci, mi, si, 17])
                    p = per_point(modem, ref, channel, snr, args.payload, bursts, rng)
                    res["spot"][f"{channel} {mcs} {snr:g}"] = p
                    print(f"{channel:<8} {mcs:<10} {snr:>5g} dB: PER {p['per']:.4f} "
                          f"({p['errors']}/{p['bursts']}), reference {p['ref_per']:.4f}, "
                          f"missed {p['missed']}, false CRC passes {p['false_pass']}",
                          flush=True)
        args.channels = []
    for ci, channel in enumerate(args.channels):
        res["curves"][channel] = {}
        cstep = step * (4 if channel in FADING else 2 if channel == "twopath" else 1)
        print(f"\n== {channel} ==  SNR: PER real/ref")
        for mi, mcs in enumerate(args.mcs):
            rng = np.random.default_rng([args.seed, ci, mi])
            pts = sweep(args.profile, mcs, channel, args.payload, bursts, cstep, args.target,
                        rng)
            real = snr_at_per(pts, args.target)
            ref = snr_at_per(pts, args.target, "ref_per")
            res["curves"][channel][mcs] = {
                "points": pts, "snr_at_target_db": real, "ref_snr_at_target_db": ref,
                "gap_db": None if real is None or ref is None else real - ref,
                "snr_at_per10_db": snr_at_per(pts, 0.1),
                "ref_snr_at_per10_db": snr_at_per(pts, 0.1, "ref_per")}
            cells = "  ".join(f"{p['snr_db']:g}:{p['per']:.3f}/{p['ref_per']:.3f}" for p in pts)
            fp = sum(p["false_pass"] for p in pts)
            ms = sum(p["missed"] for p in pts)
            print(f"{mcs:<10} {cells}" + (f"  missed {ms}" if ms else "")
                  + (f"  FALSE CRC PASSES: {fp}" if fp else ""), flush=True)
    if res["curves"]:
        summarise(res)
    res["elapsed_s"] = time.perf_counter() - t0
    print(f"elapsed {res['elapsed_s']:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def _f(v: float | None, sign: str = "", digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:{sign}.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
