"""Viterbi decoder speed: the int16 SIMD decoder against the float32 decoder in one run.

    python -m benchmarks.viterbi [--json PATH] [--sizes N ...] [--rounds R] [--repeats K]
                                 [--modem] [--profiles P ...] [--mcs M]

Decoders, on the same noisy code words (rate 1/2, Eb/N0 3 dB, float32 LLRs) per block size:

* ``float``: ``phy.viterbi_float.viterbi_k7`` (float32 metrics, one chain; today's decoder and the
  fallback);
* ``int16``: ``phy.viterbi.viterbi_k7_simd``, what ``phy.fec`` uses by default on
  AVX2/AVX-512BW: the layout this CPU gets (``phy.viterbi.simd_layout``);
* ``wide``: the int16 decoder in the wide layout (``<32 x i16>`` values, two-source word
  permutes; the forward pass split into interleaved chains), the choice with AVX-512BW;
* ``lanes``: the int16 decoder in the 128-bit-lane layout (one chain), the choice without;
* ``wide-1``: the wide layout with the split off (one chain): what the split buys.

Each round times every decoder (best of ``--repeats`` calls, thread CPU time), the order
rotating between rounds so that a load drift hits all; the table gives Mbit/s of decoded bits
of the best round and the int16/float ratio of every round (worst and best). Bit errors of
each decoder are printed beside (same samples: the BER comparison of the tests, here at
benchmark sizes).

Then the int16 decoder's parts per block (scale, branch table, forward pass, traceback) and
whether the issue's 3x target holds on the blocks of at least 12 000 bits in every round.

``--modem``: the receiver's real-time factor (thread CPU time) with each decoder forced, same
buffers (``benchmarks.modem.bench_modem``: bursts of 1500 B at Es/N0 35 dB), for the issue's
rows 20 MHz and 10 MHz 64QAM-5/6.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._args import mcs_name, profile_name
from benchmarks._machine import announce
from phy import kernels, viterbi
from phy.fec import ConvCode

DECODERS = ("float", "int16", "wide", "lanes", "wide-1")


def _decoder(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The decode function of one of ``DECODERS``."""
    if name == "float":
        return lambda llr: kernels.viterbi_k7(llr, kernels.BFLY_SX, kernels.BFLY_SY)
    if name == "int16":
        return viterbi.viterbi_k7_simd
    if name == "wide":
        return viterbi.viterbi_k7_simd_wide
    if name == "lanes":
        return viterbi.viterbi_k7_simd_lanes
    return lambda llr: viterbi.viterbi_k7_i16(llr, viterbi.llr_scale(llr, viterbi.Q_MAX,
                                                                      viterbi.Q_MEAN), 0)


def _words(n_bits: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(info bits, depunctured float32 LLRs) of one rate-1/2 code word at Eb/N0 3 dB."""
    rng = np.random.default_rng(seed)
    code = ConvCode("1/2", decoder="float")
    bits = rng.integers(0, 2, n_bits).astype(np.uint8)
    sigma = np.sqrt(1.0 / (2 * 0.5 * 10 ** 0.3))
    y = 1.0 - 2.0 * code.encode(bits) + rng.normal(0, sigma, code.coded_length(n_bits))
    buf = np.zeros(code.input_size(n_bits), np.float32)
    buf[code.input_positions(n_bits)] = 2 * y / sigma**2
    return bits, buf


def _cpu_best(fn: Callable[[], object], repeats: int) -> float:
    """Best thread CPU seconds of ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        c = time.thread_time()
        fn()
        best = min(best, time.thread_time() - c)
    return max(best, 1e-9)


def bench_sizes(sizes: list[int], rounds: int, repeats: int, seed: int) -> list[dict[str, Any]]:
    """Per block size: best Mbit/s of each decoder, the per-round int16/float ratios, errors."""
    rows = []
    for n in sizes:
        bits, llr = _words(n, seed)
        fns = {d: _decoder(d) for d in DECODERS}
        errors = {d: int(np.sum(fns[d](llr)[:n] != bits)) for d in DECODERS}  # (and warm-up)
        # short blocks: time several per call so the timer resolution does not matter
        per_call = max(1, 200_000 // n)
        times: dict[str, list[float]] = {d: [] for d in DECODERS}
        for r in range(rounds):
            k = r % len(DECODERS)
            order = DECODERS[k:] + DECODERS[:k]
            for d in order:
                f = fns[d]
                t = _cpu_best(lambda f=f, x=llr, k=per_call: [f(x) for _ in range(k)], repeats)
                times[d].append(t / per_call)
        ratios = [f / i for f, i in zip(times["float"], times["int16"], strict=True)]
        rows.append({
            "bits": n, "steps": n + 6, "errors": errors,
            "mbit_s": {d: (n + 6) / min(ts) / 1e6 for d, ts in times.items()},
            "ratio_rounds": ratios, "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ratio_best": min(times["float"]) / min(times["int16"]),
        })
    return rows


def bench_parts(sizes: list[int], repeats: int, seed: int) -> list[dict[str, Any]]:
    """Per block size, the int16 decoder's parts (thread CPU microseconds per block, best of
    ``repeats``): the LLR scale, the branch table, the forward pass, the traceback -- where
    the time goes, beside the whole float decode."""
    rows = []
    for n in sizes:
        _, llr = _words(n, seed)
        sc = kernels.v16_llr_scale(llr, viterbi.Q_MAX, viterbi.Q_MEAN)
        tab = kernels.v16_branch_table(llr, sc, viterbi.Q_MAX)
        dec = kernels.v16_forward(tab, kernels.V16_SPLIT_MIN)
        parts: dict[str, Callable[[], object]] = {
            "scale": lambda x=llr: kernels.v16_llr_scale(x, viterbi.Q_MAX, viterbi.Q_MEAN),
            "table": lambda x=llr, c=sc: kernels.v16_branch_table(x, c, viterbi.Q_MAX),
            "forward wide": lambda t=tab: kernels.v16_forward(t, kernels.V16_SPLIT_MIN),
            "forward lanes": lambda t=tab: kernels.v16_forward_lanes(t),
            "traceback": lambda d=dec: kernels.v16_traceback(d, kernels.V16_TB_SPLIT_MIN),
            "int16": lambda x=llr: viterbi.viterbi_k7_simd(x),
            "float": lambda x=llr: kernels.viterbi_k7(x, kernels.BFLY_SX, kernels.BFLY_SY),
        }
        per_call = max(1, 200_000 // n)
        us = {k: _cpu_best(lambda f=f, m=per_call: [f() for _ in range(m)], repeats)
              / per_call * 1e6 for k, f in parts.items()}
        rows.append({"bits": n, "us": us})
    return rows


def bench_modem_rows(profiles: list[str], mcs: str, repeats: int, seed: int) -> list[dict]:
    """RX real-time factor (CPU time) with each decoder forced, the same buffers."""
    import phy.modem as pm
    from benchmarks.modem import bench_modem

    rate = pm.get_mcs(mcs).code_rate
    code = pm._fec(rate)
    keep = code.decoder
    rows = []
    try:
        for p in profiles:
            row: dict[str, Any] = {"profile": p, "mcs": mcs}
            for d in ("float", "int16"):
                code.decoder = d
                r = bench_modem(p, mcs, 1500, 8, repeats, np.random.default_rng(seed))
                row[d] = {"rx_rtf_cpu": r["rx_rtf_cpu"], "rx_rtf": r["rx_rtf"],
                          "decoded_ok": r["decoded_ok"]}
            rows.append(row)
    finally:
        code.decoder = keep
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables, optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[288, 1000, 12_000, 200_000])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--modem", action="store_true")
    ap.add_argument("--profiles", nargs="+", type=profile_name, default=["20MHz", "10MHz"])
    ap.add_argument("--mcs", type=mcs_name, default="64QAM-5/6")
    args = ap.parse_args(argv)
    import llvmlite.binding as ll

    feats = ll.get_host_cpu_features()
    res: dict[str, Any] = {
        "machine": announce(), "default_decoder": viterbi.default_decoder(),
        "simd_layout": viterbi.simd_layout(),
        "cpu_has_simd16": viterbi.cpu_has_simd16(), "llvm_cpu": ll.get_host_cpu_name(),
        "llvm_features": sorted(f for f in ("sse2", "avx2", "avx512bw", "avx512vbmi")
                                if feats.get(f, False)),
    }
    print(f"LLVM target {res['llvm_cpu']} ({' '.join(res['llvm_features'])}); default "
          f"decoder here: {res['default_decoder']}, int16 layout {res['simd_layout']}")
    res["sizes"] = bench_sizes(args.sizes, args.rounds, args.repeats, args.seed)
    hdr = (f"{'bits':>7} {'float Mb/s':>10} {'int16 Mb/s':>10} {'wide':>7} {'lanes':>7} "
           f"{'wide-1':>7} {'x best':>6} {'x rounds':>11}  errors f/i16/wide/lanes/wide-1")
    print(hdr)
    print("-" * len(hdr))
    for r in res["sizes"]:
        m, e = r["mbit_s"], r["errors"]
        print(f"{r['bits']:>7} {m['float']:>10.1f} {m['int16']:>10.1f} {m['wide']:>7.1f} "
              f"{m['lanes']:>7.1f} {m['wide-1']:>7.1f} {r['ratio_best']:>6.2f} "
              f"{r['ratio_min']:>5.2f}-{r['ratio_max']:<5.2f}  "
              + "/".join(str(e[d]) for d in DECODERS))
    res["parts"] = bench_parts(args.sizes, max(args.repeats, 5), args.seed)
    print("int16 decoder by part, us per block (thread CPU time, best of "
          f"{max(args.repeats, 5)}; Python call overhead in each):")
    print(f"{'bits':>7} {'scale':>7} {'table':>7} {'fwd wide':>9} {'fwd lanes':>9} "
          f"{'traceback':>9} {'int16':>8} {'float':>8}")
    for r in res["parts"]:
        u = r["us"]
        print(f"{r['bits']:>7} {u['scale']:>7.2f} {u['table']:>7.2f} {u['forward wide']:>9.2f} "
              f"{u['forward lanes']:>9.2f} {u['traceback']:>9.2f} {u['int16']:>8.2f} "
              f"{u['float']:>8.2f}")
    big = [r for r in res["sizes"] if r["bits"] >= 12_000]
    if big:
        worst = min(r["ratio_min"] for r in big)
        print(f"issue 15 target int16/float >= 3 on blocks >= 12 000 bits: "
              f"{'met' if worst >= 3 else 'not met'} (worst round {worst:.2f})")
    if args.modem:
        res["modem"] = bench_modem_rows(args.profiles, args.mcs, args.repeats, args.seed)
        print(f"modem RX real-time factor (thread CPU time), {args.mcs}, 8 x 1500 B bursts:")
        for r in res["modem"]:
            f, i = r["float"], r["int16"]
            print(f"  {r['profile']:<6} float {f['rx_rtf_cpu']:.2f}  int16 {i['rx_rtf_cpu']:.2f}"
                  f"  (x{i['rx_rtf_cpu'] / f['rx_rtf_cpu']:.2f}; decoded "
                  f"{'yes' if f['decoded_ok'] and i['decoded_ok'] else 'NO'})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=1)
    return res


if __name__ == "__main__":
    main()
