"""PHY modem speed: TX and RX samples/s as a real-time factor, per profile and MCS.

    python -m benchmarks.modem [--json PATH] [--seed N] [--profiles P ...] [--mcs M ...]
                               [--payload BYTES] [--bursts N] [--repeats R] [--no-cold]

For each profile and MCS a buffer of ``--bursts`` bursts of ``--payload`` bytes (random data,
10 % idle noise between bursts, AWGN at Es/N0 35 dB so every burst decodes) is built once; then

* TX: ``modulate`` of all bursts; RTF = burst air time / wall time;
* RX: ``demodulate`` of the whole buffer (detection, sync, estimation, decoding); RTF = buffer
  duration / wall time. RTF > 1 means faster than real time (issue 5's targets: RX >= 2x at
  10 MHz QPSK-1/2 and >= 1x at 64-QAM, one core; issue 15's, in CPU time: 20 MHz 64QAM-5/6
  >= 1.5x and 10 MHz 64QAM-5/6 >= 2.5x, printed as ``target (issue 15)`` lines and stored
  under ``targets_issue15`` in the JSON).

RX is also timed in thread CPU seconds (``RX cpu`` = buffer duration / CPU time): on this
shared 2-core machine the wall clock includes time spent waiting for a core, so the CPU-time
factor is the steadier measure of what one core needs, the wall-clock one what a receiver saw
at that moment. Both go to the JSON.

Timings are the best (and median) of ``--repeats`` warm runs; everything is single-threaded
(numba kernels are serial, FFTs single-threaded). Numba cold start is reported separately, from
subprocesses: ``compile`` (empty cache dir: JIT compile of every kernel) and ``cache-load``
(second process on that cache; what a user sees after the first run).

Before/after (``--against TREE``): the same TX and RX timing, run by one self-contained snippet
in subprocesses that import ``phy`` from ``TREE`` (a checkout of an older commit, e.g. ``git
worktree add /tmp/old <commit>``) and from this tree, alternately (``--rounds`` rounds, the order
swapped every round so that a load drift hits both), on identical payloads and noise; best thread
CPU time of each side per row, and the change of this tree against ``TREE``. This is the
measurement a speed claim rests on: numbers from separate runs on this shared machine differ by
more than the changes measured.

Baseline in the same run: the kernels against their naive twins from ``tests/phy/naive.py``
(pure Python/numpy) on the same inputs: Viterbi Mbit/s and demapper Msym/s.

Zone bursts (``--zone-n``, default 1 4 16 receivers; ``--zone-only`` runs just this part): N
receivers each get ``--zone-payload`` bytes at ``--zone-mcs`` in one zone, sent either as N
per-destination ``BurstModem`` bursts back to back or as one ``ZoneModem`` burst (A-MAP +
N allocations). Per row: air samples per payload byte of each, and the RX thread-CPU time one
receiver spends to get its own data from the zone buffer -- the BurstModem receiver decodes all
N bursts (it cannot tell its own before their headers and decodes every one it finds), the zone
receiver the header, the MAP and its allocation only. Also the zone receiver that finds nothing
for it in the MAP, and, as reference, one BurstModem burst of that size alone in its buffer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

import phy
from benchmarks._args import mcs_name, profile_name
from benchmarks._machine import announce
from phy import channel as ch
from phy import qam, spectrum
from phy.viterbi_float import BFLY_SX, BFLY_SY, viterbi_k7

DEFAULT_PROFILES = ["P2.5", "5MHz", "10MHz", "20MHz"]

_COLD_SNIPPET = """
import time, numpy as np
t = time.perf_counter()
import phy
m = phy.BurstModem("5MHz", "16QAM-1/2")
x = m.modulate(bytes(100))
b = m.demodulate(np.concatenate([np.zeros(500, np.complex64), x]))
assert b and b[0].crc_ok
print(time.perf_counter() - t)
"""


# Self-contained (it runs against an older tree's phy too, which has only the public API):
# argv = tree, JSON list of [profile, mcs], payload, bursts, repeats, seed; prints JSON rows.
_AB_SNIPPET = """
import json, sys, time
import numpy as np
tree, rows, payload, bursts, repeats, seed = (sys.argv[1], json.loads(sys.argv[2]),
    int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
sys.path.insert(0, tree)
import phy
assert phy.__file__.startswith(tree), phy.__file__
def best_cpu(fn):
    out = []
    for _ in range(repeats):
        c = time.thread_time()
        fn()
        out.append(time.thread_time() - c)
    return min(out)
res = []
for i, (profile, mcs) in enumerate(rows):
    rng = np.random.default_rng([seed, i])
    m = phy.BurstModem(profile, mcs)
    data = [rng.bytes(payload) for _ in range(bursts)]
    sig = [m.modulate(d, src=1, dst=2) for d in data]
    gap = max(200, sig[0].size // 10)
    parts = []
    for s in sig:
        parts += [np.zeros(gap, np.complex64), s]
    parts.append(np.zeros(gap, np.complex64))
    x = np.concatenate(parts)
    nv = m.scale ** 2 * 10 ** (-35.0 / 10)
    noise = rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size)
    buf = (x + np.sqrt(nv / 2) * noise).astype(np.complex64)
    got = m.demodulate(buf)
    ok = [b.payload for b in got if b.crc_ok] == data
    tx = best_cpu(lambda: [m.modulate(d, src=1, dst=2) for d in data])
    rx = best_cpu(lambda: m.demodulate(buf))
    res.append({"profile": profile, "mcs": mcs, "ok": ok, "tx_cpu_s": tx, "rx_cpu_s": rx,
                "airtime_s": sum(v.size for v in sig) / m.sample_rate,
                "buffer_s": buf.size / m.sample_rate})
print(json.dumps(res))
"""


def _ab_run(tree: str, rows: list[list[str]], payload: int, bursts: int, repeats: int,
            seed: int) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-c", _AB_SNIPPET, os.path.abspath(tree),
                          json.dumps(rows), str(payload), str(bursts), str(repeats), str(seed)],
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def before_after(against: str, rows: list[list[str]], payload: int, bursts: int, repeats: int,
                 rounds: int, seed: int) -> dict[str, Any]:
    """TX and RX thread-CPU time of the same rows with ``phy`` from the tree ``against`` and
    from this tree, run alternately ``rounds`` times (order swapped every round); best per row
    and side. Real-time factors and the change of this tree against the other."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs: dict[str, list[list[dict[str, Any]]]] = {"before": [], "after": []}
    for k in range(rounds):
        order = [("before", against), ("after", here)]
        for side, tree in (order if k % 2 == 0 else order[::-1]):
            runs[side].append(_ab_run(tree, rows, payload, bursts, repeats, seed))
    table = []
    for i, (profile, mcs) in enumerate(rows):
        row: dict[str, Any] = {"profile": profile, "mcs": mcs}
        for side in ("before", "after"):
            rr = [run[i] for run in runs[side]]
            row[f"{side}_ok"] = all(r["ok"] for r in rr)
            row[f"{side}_tx_rtf"] = rr[0]["airtime_s"] / min(r["tx_cpu_s"] for r in rr)
            row[f"{side}_rx_rtf"] = rr[0]["buffer_s"] / min(r["rx_cpu_s"] for r in rr)
        for what in ("tx", "rx"):
            row[f"{what}_change"] = row[f"after_{what}_rtf"] / row[f"before_{what}_rtf"] - 1.0
        table.append(row)
    return {"against": os.path.abspath(against), "against_commit": _git_head(against),
            "this_commit": _git_head(here), "rounds": rounds, "repeats": repeats,
            "payload": payload, "bursts": bursts, "rows": table, "runs": runs,
            "median_tx_change": statistics.median(r["tx_change"] for r in table),
            "median_rx_change": statistics.median(r["rx_change"] for r in table),
            "min_tx_change": min(r["tx_change"] for r in table),
            "min_rx_change": min(r["rx_change"] for r in table)}


def _git_head(tree: str) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                             capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "phy"], cwd=tree, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() + ("+dirty phy" if dirty.stdout.strip() else "")


def print_before_after(ab: dict[str, Any]) -> None:
    """The table of :func:`before_after`."""
    print(f"before/after in one run: {ab['against']} ({ab['against_commit']}) -> this tree "
          f"({ab['this_commit']}); {ab['rounds']} alternating rounds, best thread CPU time "
          f"of {ab['repeats']} x {ab['rounds']} per side; {ab['bursts']} bursts of "
          f"{ab['payload']} B per row")
    hdr = (f"{'profile':<8} {'MCS':<10} {'TX before':>9} {'TX after':>9} {'TX':>6} "
           f"{'RX before':>9} {'RX after':>9} {'RX':>6}  ok")
    print(hdr)
    print("-" * len(hdr))
    for r in ab["rows"]:
        print(f"{r['profile']:<8} {r['mcs']:<10} {r['before_tx_rtf']:>9.2f} "
              f"{r['after_tx_rtf']:>9.2f} {100 * r['tx_change']:>+5.0f}% "
              f"{r['before_rx_rtf']:>9.2f} {r['after_rx_rtf']:>9.2f} "
              f"{100 * r['rx_change']:>+5.0f}%  "
              f"{'yes' if r['before_ok'] and r['after_ok'] else 'NO'}")
    print(f"real-time factors in CPU time; change of this tree: TX median "
          f"{100 * ab['median_tx_change']:+.1f} % (worst {100 * ab['min_tx_change']:+.1f} %), "
          f"RX median {100 * ab['median_rx_change']:+.1f} % "
          f"(worst {100 * ab['min_rx_change']:+.1f} %)")


def _cold(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", _COLD_SNIPPET], env=env, capture_output=True,
                         text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    return float(out.stdout.strip().splitlines()[-1])


def cold_start() -> dict[str, float]:
    """Seconds for import + first modulate/demodulate: empty numba cache, then cached."""
    with tempfile.TemporaryDirectory() as d:
        return {"compile_s": _cold(d), "cache_load_s": _cold(d)}


def _time(fn, repeats: int) -> tuple[float, float]:
    """Best and median wall-clock seconds of ``repeats`` calls."""
    best, med, _ = _time_cpu(fn, repeats)
    return best, med


def _time_cpu(fn, repeats: int) -> tuple[float, float, float]:
    """Best and median wall-clock seconds and best thread CPU seconds of ``repeats`` calls.

    The CPU time (``time.thread_time``) leaves out the time the thread waited for a core, so on
    a shared, busy machine it is the steadier measure of what one core needs; the wall-clock
    figure is what a real-time receiver experiences on that machine at that moment."""
    ts, cs = [], []
    for _ in range(repeats):
        c = time.thread_time()
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
        cs.append(time.thread_time() - c)
    return min(ts), statistics.median(ts), min(cs)


def bench_modem(profile: str, mcs: str, payload: int, bursts: int, repeats: int,
                rng: np.random.Generator) -> dict[str, Any]:
    m = phy.BurstModem(profile, mcs)
    data = [rng.bytes(payload) for _ in range(bursts)]
    sig = [m.modulate(d, src=1, dst=2) for d in data]
    gap = max(200, sig[0].size // 10)
    parts = []
    for s in sig:
        parts += [np.zeros(gap, np.complex64), s]
    parts.append(np.zeros(gap, np.complex64))
    buf = ch.awgn(np.concatenate(parts), ch.noise_variance_for(35.0, m.scale), rng)
    got = m.demodulate(buf)  # warm-up (and correctness check)
    ok = sum(b.crc_ok for b in got) == bursts and [b.payload for b in got] == data
    air = sum(s.size for s in sig) / m.sample_rate
    dur = buf.size / m.sample_rate
    tx_best, tx_med = _time(lambda: [m.modulate(d, src=1, dst=2) for d in data], repeats)
    rx_best, rx_med, rx_cpu = _time_cpu(lambda: m.demodulate(buf), repeats)
    info_bits = 8 * payload * bursts
    return {
        "profile": profile, "mcs": mcs, "payload": payload, "bursts": bursts,
        "decoded_ok": bool(ok), "sample_rate": m.sample_rate, "buffer_s": dur, "airtime_s": air,
        "tx_best_s": tx_best, "tx_median_s": tx_med, "rx_best_s": rx_best, "rx_median_s": rx_med,
        "tx_rtf": air / tx_best, "tx_rtf_median": air / tx_med,
        "rx_rtf": dur / rx_best, "rx_rtf_median": dur / rx_med,
        "rx_cpu_s": rx_cpu, "rx_rtf_cpu": dur / rx_cpu,
        "rx_msamples_s": buf.size / rx_best / 1e6, "rx_info_mbit_s": info_bits / rx_best / 1e6,
    }


ISSUE15_TARGETS = {("20MHz", "64QAM-5/6"): 1.5, ("10MHz", "64QAM-5/6"): 2.5}
"""Issue 15's receive targets: real-time factor in CPU time on one core."""


def issue15_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of :func:`bench_modem` that issue 15 sets a receive target for, with the
    target and whether the CPU-time real-time factor meets it."""
    out = []
    for r in rows:
        goal = ISSUE15_TARGETS.get((r["profile"], r["mcs"]))
        if goal is not None:
            out.append({"profile": r["profile"], "mcs": r["mcs"], "target": goal,
                        "rx_rtf_cpu": r["rx_rtf_cpu"], "met": r["rx_rtf_cpu"] >= goal})
    return out


def bench_zone(profile: str, mcs: str, payload: int, n_rx: int, repeats: int,
               rng: np.random.Generator) -> dict[str, Any]:
    """N per-destination BurstModem bursts against one zone burst carrying the same N payloads:
    air samples per payload byte and RX CPU seconds of one receiver (see the module doc)."""
    bm, zm = phy.BurstModem(profile, mcs), phy.ZoneModem(profile)
    data = [rng.bytes(payload) for _ in range(n_rx)]
    dsts = [0x100 + i for i in range(n_rx)]
    row: dict[str, Any] = {"profile": profile, "mcs": mcs, "payload": payload, "receivers": n_rx}
    n_ru = n_rx * zm.rus_for(payload, mcs)
    if zm.data_symbols(n_ru) > zm.max_data_symbols:
        row["skipped"] = f"{n_rx} x {payload} B exceed one zone burst"
        return row
    pad = np.zeros(300, np.complex64)
    nv = ch.noise_variance_for(35.0, bm.scale)
    bursts = [bm.modulate(d, src=1, dst=t) for d, t in zip(data, dsts, strict=True)]
    bbuf = ch.awgn(np.concatenate([pad, *bursts, pad]), nv, rng)
    zone = zm.modulate([phy.Allocation(t, d, mcs) for d, t in zip(data, dsts, strict=True)],
                       src=1)
    zbuf = ch.awgn(np.concatenate([pad, zone, pad]), nv, rng)
    one = ch.awgn(np.concatenate([pad, bursts[-1], pad]), nv, rng)
    me = dsts[-1]  # the last allocation: the receiver skips every other one
    got_b = [b.payload for b in bm.demodulate(bbuf) if b.crc_ok and b.dst == me]
    got_z = [b.payload for rx in zm.demodulate(zbuf, me={me}) for b in rx.allocations
             if b.crc_ok]
    air_b = sum(b.size for b in bursts)
    row.update({
        "decoded_ok": got_b == [data[-1]] and got_z == [data[-1]],
        "burst_samples": air_b, "zone_samples": int(zone.size),
        "zone_overhead_symbols": zm.overhead_symbols(n_rx),
        "burst_samples_per_byte": air_b / (n_rx * payload),
        "zone_samples_per_byte": zone.size / (n_rx * payload),
        "air_saving": 1.0 - zone.size / air_b,
        "rx_bursts_cpu_s": _time_cpu(lambda: bm.demodulate(bbuf), repeats)[2],
        "rx_zone_cpu_s": _time_cpu(lambda: zm.demodulate(zbuf, me={me}), repeats)[2],
        "rx_zone_none_cpu_s": _time_cpu(lambda: zm.demodulate(zbuf, me={7}), repeats)[2],
        "rx_one_burst_cpu_s": _time_cpu(lambda: bm.demodulate(one), repeats)[2],
    })
    return row


def print_zone(rows: list[dict[str, Any]], header: bool = True) -> None:
    """Rows of :func:`bench_zone` as a table (with its header unless ``header`` is False)."""
    hdr = (f"{'profile':<8} {'MCS':<10} {'bytes':>5} {'N':>3} {'bursts S/B':>10} "
           f"{'zone S/B':>9} {'air -%':>6} {'ovh sym':>7} {'RX bursts':>10} {'RX zone':>8} "
           f"{'zone none':>9} {'1 burst':>8}  ok")
    if header:
        print("zone bursts vs per-destination bursts (S/B: air samples per payload byte; "
              "RX: ms CPU per receiver)")
        print(hdr)
        print("-" * len(hdr))
    for r in rows:
        lead = f"{r['profile']:<8} {r['mcs']:<10} {r['payload']:>5} {r['receivers']:>3}"
        if "skipped" in r:
            print(f"{lead} skipped: {r['skipped']}")
            continue
        print(f"{lead} {r['burst_samples_per_byte']:>10.2f} {r['zone_samples_per_byte']:>9.2f} "
              f"{100 * r['air_saving']:>6.1f} {r['zone_overhead_symbols']:>7} "
              f"{1e3 * r['rx_bursts_cpu_s']:>10.2f} {1e3 * r['rx_zone_cpu_s']:>8.2f} "
              f"{1e3 * r['rx_zone_none_cpu_s']:>9.2f} {1e3 * r['rx_one_burst_cpu_s']:>8.2f}  "
              f"{'yes' if r['decoded_ok'] else 'NO'}")


def bench_kernels(rng: np.random.Generator) -> dict[str, Any]:
    """numba kernels vs their naive twins (tests/phy/naive.py) on the same inputs."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
    from tests.phy import naive

    out: dict[str, Any] = {}
    n = 200_000
    llr = rng.standard_normal(2 * n).astype(np.float32)
    viterbi_k7(llr[:200], BFLY_SX, BFLY_SY)
    best, _ = _time(lambda: viterbi_k7(llr, BFLY_SX, BFLY_SY), 3)
    nn = 2000
    nbest, _ = _time(lambda: naive.viterbi(llr[: 2 * nn]), 1)
    out["viterbi_numba_mbit_s"] = n / best / 1e6
    out["viterbi_naive_mbit_s"] = nn / nbest / 1e6
    ns = 400_000
    z = (rng.standard_normal(ns) + 1j * rng.standard_normal(ns)).astype(np.complex64)
    w = np.ones(ns, np.float32)
    m_ = 2000
    for bps in (2, 6):
        qam.demodulate(z[:10], w[:10], bps)
        best, _ = _time(lambda b=bps: qam.demodulate(z, w, b), 3)
        pts = qam.constellation(bps)
        nbest, _ = _time(lambda p=pts: naive.demap_maxlog(z[:m_], w[:m_], p), 1)
        out[f"demap{bps}_numba_msym_s"] = ns / best / 1e6
        out[f"demap{bps}_naive_msym_s"] = m_ / nbest / 1e6
    return out


PAPR_LEVELS_DB = (9.0, 10.0, 11.0, 12.0)
SPECTRUM_MCS = ("QPSK-1/2", "16QAM-3/4", "64QAM-5/6")


def bench_spectrum(profile: str, bursts: int, payload: int, rng: np.random.Generator
                   ) -> dict[str, Any]:
    """Transmit spectrum of ``bursts`` bursts (MCS cycling over SPECTRUM_MCS), shaped as sent
    and, as the in-run baseline, unshaped: PSD at the Nyquist edge, transmit EVM of the shaping,
    per-symbol PAPR CCDF and the fraction of samples the limiter clips at the default TX level
    (full scale 1.0, data RMS ``DEFAULT_TX_RMS``)."""
    shaped = {m: phy.BurstModem(profile, m, tx_rms=None) for m in SPECTRUM_MCS}
    bare = {m: phy.BurstModem(profile, m, tx_rms=None, shaping=False) for m in SPECTRUM_MCS}
    scale = phy.BurstModem(profile).scale
    g = shaped[SPECTRUM_MCS[0]].grid
    xs, ys, evm, papr = [], [], [], []
    for i in range(bursts):
        mcs = SPECTRUM_MCS[i % len(SPECTRUM_MCS)]
        d = rng.bytes(payload)
        a, b = shaped[mcs].modulate(d), bare[mcs].modulate(d)
        xs.append(a)
        ys.append(b)
        evm.append(10 ** (spectrum.tx_evm_db(a, b, g, shaped[mcs].backoff) / 10))
        papr.append(spectrum.symbol_papr_db(a, g))
    x, y, pp = np.concatenate(xs), np.concatenate(ys), np.concatenate(papr)
    tail = spectrum.ccdf(pp, np.asarray(PAPR_LEVELS_DB))
    return {"profile": profile, "bursts": bursts, "payload": payload, "symbols": int(pp.size),
            "edge_db": spectrum.psd_edge_db(x, g), "edge_db_unshaped": spectrum.psd_edge_db(y, g),
            "tx_evm_db": 10 * float(np.log10(np.mean(evm))),
            "papr_ccdf": {f"{lv:g}": float(c) for lv, c in zip(PAPR_LEVELS_DB, tail,
                                                                 strict=True)},
            "papr_max_db": float(pp.max()), "papr_max_db_unshaped":
                float(np.concatenate([spectrum.symbol_papr_db(v, g) for v in ys]).max()),
            "clip_level_db": 20 * float(np.log10(1.0 / phy.modem.DEFAULT_TX_RMS)),
            "clipped_per_million": 1e6 * spectrum.clip_fraction(x * np.float32(scale)),
            "samples": int(x.size)}


def print_spectrum(rows: list[dict[str, Any]]) -> None:
    """Rows of :func:`bench_spectrum` as a table."""
    lv = " ".join(f"{'>' + format(v, 'g') + ' dB':>8}" for v in PAPR_LEVELS_DB)
    hdr = (f"{'profile':<11} {'edge dB':>8} {'unshaped':>8} {'TX EVM':>7} {'PAPR max':>8} "
           f"{'unshaped':>8} {lv} {'clip/1e6':>8}")
    print("transmit spectrum (PSD at the Nyquist edge vs the used band), shaping EVM, per-symbol "
          "PAPR CCDF, samples the limiter clips (full scale = data RMS + "
          f"{rows[0]['clip_level_db']:.2f} dB)" if rows else "")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        cc = " ".join(f"{r['papr_ccdf'][format(v, 'g')]:>8.1e}" for v in PAPR_LEVELS_DB)
        print(f"{r['profile']:<11} {r['edge_db']:>8.1f} {r['edge_db_unshaped']:>8.1f} "
              f"{r['tx_evm_db']:>7.1f} {r['papr_max_db']:>8.2f} {r['papr_max_db_unshaped']:>8.2f} "
              f"{cc} {r['clipped_per_million']:>8.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write results to this path")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--profiles", nargs="+", type=profile_name, default=DEFAULT_PROFILES)
    ap.add_argument("--mcs", nargs="+", type=mcs_name, default=phy.mcs_table())
    ap.add_argument("--payload", type=int, default=4000, help="bytes per burst")
    ap.add_argument("--bursts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-cold", action="store_true", help="skip the numba cold-start runs")
    ap.add_argument("--zone-only", action="store_true",
                    help="only the zone-burst comparison (no kernels, no per-MCS table)")
    ap.add_argument("--no-zone", action="store_true", help="skip the zone-burst comparison")
    ap.add_argument("--zone-profiles", nargs="+", type=profile_name, default=["5MHz"])
    ap.add_argument("--zone-mcs", nargs="+", type=mcs_name,
                    default=["QPSK-1/2", "16QAM-3/4"])
    ap.add_argument("--zone-payload", nargs="+", type=int, default=[100, 400],
                    help="bytes per receiver")
    ap.add_argument("--zone-n", nargs="+", type=int, default=[1, 4, 16],
                    help="receivers sharing the zone")
    ap.add_argument("--zone-repeats", type=int, default=7)
    ap.add_argument("--spectrum", action="store_true",
                    help="also measure the transmit spectrum, shaping EVM, PAPR and clipping")
    ap.add_argument("--spectrum-only", action="store_true", help="only that measurement")
    ap.add_argument("--spectrum-profiles", nargs="+", type=profile_name,
                    default=phy.profiles())
    ap.add_argument("--spectrum-bursts", type=int, default=300)
    ap.add_argument("--spectrum-payload", type=int, default=1000)
    ap.add_argument("--against", metavar="TREE",
                    help="also time --profiles x --mcs with phy from this other checkout and "
                         "from this tree, alternately (before/after in one run)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds for --against")
    ap.add_argument("--against-only", action="store_true",
                    help="only the before/after comparison")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    info = announce()
    res: dict[str, Any] = {"benchmark": "modem", "seed": args.seed, "machine": info,
                           "payload": args.payload, "bursts": args.bursts,
                           "repeats": args.repeats, "rows": []}
    ab_profiles = args.profiles
    if args.against_only:
        if not args.against:
            ap.error("--against-only needs --against TREE")
        args.no_zone, args.zone_only = True, True
    if args.zone_only or args.spectrum_only:
        args.no_cold, args.profiles = True, []
    if args.spectrum_only:
        args.no_zone, args.spectrum = True, True
    if not args.no_cold:
        res["cold"] = cold_start()
        print(f"numba cold start (import + first modulate/demodulate): "
              f"compile {res['cold']['compile_s']:.2f} s, "
              f"cache-load {res['cold']['cache_load_s']:.2f} s")
    if args.against:
        ab_rows = [[p, m] for p in ab_profiles for m in args.mcs]
        res["before_after"] = before_after(args.against, ab_rows, args.payload, args.bursts,
                                           args.repeats, args.rounds, args.seed)
        print_before_after(res["before_after"])
        print()
    if not (args.zone_only or args.spectrum_only):
        k = bench_kernels(rng)
        res["kernels"] = k
        print(f"Viterbi K=7: numba {k['viterbi_numba_mbit_s']:.1f} Mbit/s vs naive "
              f"{k['viterbi_naive_mbit_s'] * 1e3:.1f} kbit/s "
              f"(x{k['viterbi_numba_mbit_s'] / k['viterbi_naive_mbit_s']:.0f}); demapper "
              f"64QAM: numba {k['demap6_numba_msym_s']:.1f} Msym/s vs naive "
              f"{k['demap6_naive_msym_s'] * 1e3:.1f} ksym/s")
    hdr = (f"{'profile':<8} {'MCS':<10} {'Fs MS/s':>7} {'TX RTF':>8} {'RX RTF':>8} "
           f"{'RX med':>8} {'RX cpu':>8} {'RX Msps':>8} {'info Mb/s':>9}  ok")
    if args.profiles:
        print(hdr)
        print("-" * len(hdr))
    for p in args.profiles:
        for mcs in args.mcs:
            r = bench_modem(p, mcs, args.payload, args.bursts, args.repeats, rng)
            res["rows"].append(r)
            print(f"{p:<8} {mcs:<10} {r['sample_rate'] / 1e6:>7.1f} {r['tx_rtf']:>8.2f} "
                  f"{r['rx_rtf']:>8.2f} {r['rx_rtf_median']:>8.2f} {r['rx_rtf_cpu']:>8.2f} "
                  f"{r['rx_msamples_s']:>8.2f} "
                  f"{r['rx_info_mbit_s']:>9.2f}  {'yes' if r['decoded_ok'] else 'NO'}")
    res["targets_issue15"] = issue15_targets(res["rows"])
    for t in res["targets_issue15"]:
        print(f"target (issue 15) {t['profile']} {t['mcs']} RX >= {t['target']:g}x "
              f"(CPU time, one core): {t['rx_rtf_cpu']:.2f}x "
              f"({'met' if t['met'] else 'NOT met'})")
    tgt = [r for r in res["rows"] if r["profile"] == "10MHz"]
    if tgt:
        for key, what in (("rx_rtf", "wall clock"), ("rx_rtf_cpu", "CPU time")):
            q = [r[key] for r in tgt if r["mcs"] == "QPSK-1/2"]
            s64 = [r[key] for r in tgt if r["mcs"].startswith("64QAM")]
            if q:
                print(f"target 10MHz QPSK-1/2 RX >= 2x ({what}): {q[0]:.2f}x "
                      f"({'met' if q[0] >= 2 else 'NOT met'})")
            if s64:
                print(f"target 10MHz 64QAM RX >= 1x ({what}): {min(s64):.2f}x .. "
                      f"{max(s64):.2f}x over the 64QAM rates "
                      f"({'met for all' if min(s64) >= 1 else 'not met for all'})")
    if not args.no_zone:
        res["zone"] = {"repeats": args.zone_repeats, "rows": []}
        print()
        print_zone([])
        for p in args.zone_profiles:
            for mcs in args.zone_mcs:
                for n_bytes in args.zone_payload:
                    for n in args.zone_n:
                        r = bench_zone(p, mcs, n_bytes, n, args.zone_repeats, rng)
                        res["zone"]["rows"].append(r)
                        print_zone([r], header=False)
    if args.spectrum:
        res["spectrum"] = [bench_spectrum(p, args.spectrum_bursts, args.spectrum_payload, rng)
                           for p in args.spectrum_profiles]
        print()
        print_spectrum(res["spectrum"])
    res["load_after"] = os.getloadavg()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
