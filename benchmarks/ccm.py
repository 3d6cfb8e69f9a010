"""AES-128-CCM throughput: per-PDU ``cryptography`` vs the batch engines vs the list API.

    python -m benchmarks.ccm [--json PATH] [--seed N] [--mbytes M] [--repeats R] [--calls K]
                             [--no-cold]

For 64, 256, 1500, 9000 B and a mixed 64–1500 B distribution, encrypt (seal) and decrypt (open),
MB/s (10^6 payload bytes per second) and PDU/s of:

* ``pyca-per-pdu``   — the baseline: one ``cryptography`` ``AESCCM.encrypt``/``decrypt`` per PDU
  from a list of ``bytes`` (what a user would otherwise write);
* ``batch-vaes512-1t`` / ``batch-vaes256-1t`` / ``batch-aesni-1t`` —
  :func:`stack.crypto.seal_batch`/``open_batch`` on each lockstep engine this CPU offers (VAES on
  512- / 256-bit vectors, AES-NI), payloads already packed in a reused numpy buffer (the MAC
  layer's data path); ``batch-<default>-2t`` the default engine on two threads;
* ``batch-table-1t`` — the portable table-AES fallback engine;
* ``list-api``       — :func:`stack.crypto.seal_many`/``open_many`` (bytes in, bytes out) on the
  default engine.

Ratios are to ``pyca-per-pdu`` in the same run; the list API's targets take the *worst* round.
Every timed call starts with its input warm in
the cache (batch buffers are copied in, lists are read once) and results are freed outside the
timing. All implementations of one size are timed in interleaved rounds (each round runs each
of them ``--calls`` times in a row, after one warm-up round; the round's time is the fastest of
those calls, for every implementation alike); the ratio is the median over rounds of the
per-round ratio, so load from other processes on a shared machine falls on baseline and engine
alike. MB/s are medians over rounds, "best" the fastest round. The list API's worst round is
printed with its worst *single call* beside it (the first call of each round against the
baseline's first call: what ``--calls 1`` measures). After the table, the list API is set beside
the batch engine it runs on, so the cost of Python objects in and out is visible.
Cold start (numba compile into an empty cache, then a load from that cache) is measured in
subprocesses and reported separately.

With ``--ipsecmb BINARY`` (the anchor program ``shared/anchors/ipsecmb_ccm.c`` built against
Intel's intel-ipsec-mb, the multi-buffer peer in C) the peer's seal rate at each fixed size is run
beside ours (its best round, wall clock: compare with the ``best`` column), and its first sealed
item is checked against this package byte for byte.

Besides wall-clock time each run records the process's CPU time (all threads): on a shared
machine it leaves out the time the OS gave to others, and it is what "per core" means. Cycles/byte
= CPU time × the clock /proc/cpuinfo reports (nominal; boost clocks make the true figure higher),
against the multi-buffer limit of the lane width used (:data:`CPB_LIMIT`). The CPU features that
decide the engines (llvmlite's view of the host) and each engine's status are recorded.
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
from collections.abc import Callable
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESCCM as PycaAESCCM

from benchmarks._machine import format_machine, load_warning, machine_info
from stack.crypto import (
    available_engines,
    default_engine,
    engine_status,
    open_batch,
    open_many,
    seal_batch,
    seal_many,
)

SIZES: list[int | str] = [64, 256, 1500, 9000, "mixed"]
MIXED_RANGE = (64, 1500)
CPB_LIMIT = {"numba-aesni": 0.625, "numba-vaes256": 0.3125, "numba-vaes512": 0.3125}
"""Cycles/byte floor of a lockstep engine: CCM costs 2 AES (MAC + CTR) x 10 rounds per 16 bytes;
AES-NI runs 2 blocks per cycle (two 128-bit AES units), VAES 4 (two 256-bit units, or one 512)."""
TAG = 8
LOCKSTEP = ("numba-vaes512", "numba-vaes256", "numba-aesni")
SHORT = {"numba-vaes512": "vaes512", "numba-vaes256": "vaes256", "numba-aesni": "aesni",
         "numba-table": "table", "reference": "reference"}
SETTLE_S = 0.05


def _lengths(size: int | str, total: int, rng: np.random.Generator) -> np.ndarray:
    if size == "mixed":
        n = max(64, total // ((MIXED_RANGE[0] + MIXED_RANGE[1]) // 2))
        return rng.integers(MIXED_RANGE[0], MIXED_RANGE[1] + 1, n).astype(np.int64)
    assert isinstance(size, int)
    return np.full(max(64, total // size), size, np.int64)


Task = tuple[str, str, Callable[[], object], Callable[[], object] | None]
"""(impl, op, timed call, untimed preparation run before it)."""


def _run_interleaved(tasks: list[Task], repeats: int, rng: np.random.Generator, calls: int = 1
                     ) -> dict[tuple[str, str], list[list[tuple[float, float]]]]:
    """(wall, CPU) seconds of each of ``calls`` calls of each task in each of ``repeats`` rounds,
    after one warm-up round: ``times[task][round][call]``.

    Every round runs every task, back to back, so a burst of load from other processes on
    this shared machine hits the baseline and the engines alike; ratios are then taken per round
    (see :func:`bench_size`) instead of between medians measured minutes apart. CPU time is the
    process's (all threads), which leaves out the time the OS ran someone else. Within a round a
    task is called ``calls`` times in a row, each call with its own (untimed) preparation: the
    round's figure is the fastest call, so one interruption of a 1-ms call (a neighbour's
    burst, a context switch that leaves the caches cold) does not make the round; every
    implementation, the baseline included, is measured the same way, and the first call of each
    round is kept for the single-call statistics.

    The single-threaded tasks run in a fresh (seeded) random order each round, the
    multi-threaded ones last (see ``SETTLE_S``): in a fixed order each task always follows the
    same neighbour, and what that neighbour leaves behind (cache and heap state, a long
    table-AES run) biased some rows by 10-15 % in one direction, run after run.
    """
    times: dict[tuple[str, str], list[list[tuple[float, float]]]] = {
        (impl, op): [] for impl, op, _, _ in tasks
    }
    single = [t for t in tasks if not t[0].endswith("-2t")]
    multi = [t for t in tasks if t[0].endswith("-2t")]
    for rnd in range(repeats + 1):
        order = [single[i] for i in rng.permutation(len(single))] + multi
        for impl, op, fn, prep in order:
            got: list[tuple[float, float]] = []
            for _ in range(calls):
                if prep is not None:
                    prep()
                c0, t0 = time.process_time(), time.perf_counter()
                result = fn()
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                del result  # freeing thousands of bytes objects is not part of anyone's time
                got.append((dt, max(dc, 1e-9)))
                if impl.endswith("-2t"):
                    # OpenMP workers spin for a few ms after a parallel call (measured 5-9 ms of
                    # CPU): let them go to sleep so they neither steal the next task's core nor
                    # show up in its CPU time.
                    time.sleep(SETTLE_S)
            if rnd:  # round 0 warms up (and compiles, when the numba cache is cold)
                times[(impl, op)].append(got)
    return times


def bench_size(size: int | str, total: int, repeats: int, rng: np.random.Generator,
               engines: list[str], calls: int = 1) -> list[dict[str, Any]]:
    """All implementations, both directions, for one PDU size (or the mixed distribution)."""
    lens = _lengths(size, total, rng)
    n = lens.shape[0]
    nbytes = int(lens.sum())
    key = rng.bytes(16)
    keys = np.frombuffer(key, np.uint8).reshape(1, 16)
    kidx = np.zeros(n, np.int64)
    nonces = rng.integers(0, 256, (n, 13), dtype=np.uint8)
    offs = np.zeros(n, np.int64)
    offs[1:] = np.cumsum(lens[:-1] + TAG)
    buf = np.zeros(int(offs[-1] + lens[-1] + TAG), np.uint8)
    payloads = [rng.bytes(int(ln)) for ln in lens]
    for o, p in zip(offs.tolist(), payloads, strict=True):
        buf[o : o + len(p)] = np.frombuffer(p, np.uint8)
    plain = buf.copy()
    nonce_list = [nonces[i].tobytes() for i in range(n)]
    pyca = PycaAESCCM(key, tag_length=TAG)
    sealed_list = [pyca.encrypt(nc, p, None) for nc, p in zip(nonce_list, payloads, strict=True)]
    sealed = buf.copy()
    seal_batch(keys, kidx, nonces, sealed, offs, lens, engine="reference")
    opened = sealed.copy()  # what open must leave: plaintext, tags untouched
    assert open_batch(keys, kidx, nonces, opened, offs, lens, engine="reference").all()

    # Every task starts with its input warm in the cache, as when the payloads were just built:
    # the batch tasks copy their buffer in, the list-based ones read theirs (a join). Without
    # this the list API, which is memory-bound, ran on inputs the previous task had evicted
    # while the compute-bound baseline hardly noticed (measured: 1.6x vs 1.8-1.9x warm).
    def warm_payloads() -> None:
        b"".join(payloads)

    def warm_sealed() -> None:
        b"".join(sealed_list)

    tasks: list[Task] = [
        # (a) baseline: one cryptography call per PDU, from and to lists of bytes
        ("pyca-per-pdu", "seal",
         lambda: [pyca.encrypt(nc, p, None) for nc, p in zip(nonce_list, payloads, strict=True)],
         warm_payloads),
        ("pyca-per-pdu", "open",
         lambda: [pyca.decrypt(nc, c, None) for nc, c in zip(nonce_list, sealed_list,
                                                             strict=True)],
         warm_sealed),
    ]
    # (b) batch engines on a reused numpy buffer (the MAC layer's data path)
    work = buf.copy()
    variants = [(f"batch-{SHORT[e]}-1t", e, 1) for e in LOCKSTEP if e in engines]
    if variants:
        best = default_engine()
        variants.append((f"batch-{SHORT[best]}-2t", best, 2))
    if "numba-table" in engines:
        variants += [("batch-table-1t", "numba-table", 1)]
    ok_of: dict[str, np.ndarray] = {}
    for impl, eng, th in variants:
        tasks.append((impl, "seal", lambda e=eng, t=th: seal_batch(
            keys, kidx, nonces, work, offs, lens, engine=e, threads=t),
            lambda: np.copyto(work, plain)))
        tasks.append((impl, "open", lambda e=eng, t=th, i=impl: ok_of.__setitem__(i, open_batch(
            keys, kidx, nonces, work, offs, lens, engine=e, threads=t)),
            lambda: np.copyto(work, sealed)))
    # (c) list API (default engine), bytes in and out like (a)
    tasks.append(("list-api", "seal", lambda: seal_many(key, nonce_list, payloads),
                  warm_payloads))
    tasks.append(("list-api", "open", lambda: open_many(key, nonce_list, sealed_list),
                  warm_sealed))
    calls_of = _run_interleaved(tasks, repeats, rng, calls)
    # Checked after the timing (a 3 MB compare inside the timed call would penalise open).
    for impl, eng, th in variants:
        np.copyto(work, sealed)
        if not (open_batch(keys, kidx, nonces, work, offs, lens, engine=eng, threads=th).all()
                and ok_of[impl].all() and np.array_equal(work, opened)):
            raise SystemExit(f"size {size}: {impl} failed to open the sealed data")
    if (seal_many(key, nonce_list, payloads) != sealed_list
            or open_many(key, nonce_list, sealed_list) != payloads):
        raise SystemExit(f"size {size}: the list API disagrees with cryptography")

    # A round's figure: the fastest of its calls (wall and CPU each); "single": its first call.
    times = {k: [(min(w for w, _ in c), min(u for _, u in c)) for c in v]
             for k, v in calls_of.items()}
    firsts = {k: [c[0] for c in v] for k, v in calls_of.items()}
    rows: list[dict[str, Any]] = []
    for (impl, op), ts in times.items():
        wall = [w for w, _ in ts]
        cpu = [c for _, c in ts]
        base = times[("pyca-per-pdu", op)]
        b1, t1 = firsts[("pyca-per-pdu", op)], firsts[(impl, op)]
        med, best, cmed = statistics.median(wall), min(wall), statistics.median(cpu)
        rows.append({
            "size": size, "impl": impl, "op": op, "n_pdus": n, "bytes": nbytes,
            "seconds_median": med, "seconds_best": best, "cpu_seconds_median": cmed,
            "mb_s": nbytes / med / 1e6, "mb_s_best": nbytes / best / 1e6,
            "mb_s_cpu": nbytes / cmed / 1e6, "pdu_s": n / med,
            # paired: baseline and implementation timed in the same round, then the median
            "ratio_vs_pyca": statistics.median(
                b[0] / t[0] for b, t in zip(base, ts, strict=True)),
            "ratio_vs_pyca_cpu": statistics.median(
                b[1] / t[1] for b, t in zip(base, ts, strict=True)),
            "ratio_vs_pyca_best": min(b[0] for b in base) / best,
            "ratio_vs_pyca_worst": min(b[0] / t[0] for b, t in zip(base, ts, strict=True)),
            "ratio_vs_pyca_cpu_worst": min(b[1] / t[1] for b, t in zip(base, ts, strict=True)),
            # the first call of each round only (what a run with --calls 1 measures)
            "ratio_vs_pyca_single_worst": min(b[0] / t[0] for b, t in zip(b1, t1, strict=True)),
            "ratio_vs_pyca_cpu_single_worst": min(
                b[1] / t[1] for b, t in zip(b1, t1, strict=True)),
            "rounds_s": ts,
        })
    return rows


_COLD = """
import json, time
t0 = time.perf_counter()
import stack.crypto as sc
t_import = time.perf_counter() - t0
out = {"import_s": t_import}
for eng in ENGINES:
    out[eng + "/1t"] = sc.warm_up(eng, threads=1)
    out[eng + "/2t"] = sc.warm_up(eng, threads=2)
print(json.dumps(out))
"""


def cold_start(engines: list[str]) -> dict[str, Any]:
    """Compile into an empty numba cache, then load from it: seconds per engine / threads."""
    engines = [e for e in engines if e.startswith("numba")]
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ccm-bench-cache-") as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        for phase in ("cold_compile", "cached_load"):
            code = _COLD.replace("ENGINES", repr(engines))
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                               text=True, timeout=600)
            if r.returncode != 0:
                res[phase] = {"error": r.stderr[-500:]}
            else:
                res[phase] = json.loads(r.stdout.strip().splitlines()[-1])
    return res


def _fmt_size(s: int | str) -> str:
    return f"{s} B" if isinstance(s, int) else f"mixed {MIXED_RANGE[0]}-{MIXED_RANGE[1]} B"


def _engine_of(impl: str) -> str | None:
    """The engine a batch task ran on (``batch-vaes512-1t`` -> ``numba-vaes512``)."""
    for e, short in SHORT.items():
        if impl.startswith(f"batch-{short}-"):
            return e
    return None


def print_table(rows: list[dict[str, Any]], mhz: float | None) -> None:
    print(f"\n{'size':<18}{'impl':<18}{'op':<6}{'MB/s':>7}{'best':>7}{'cpu':>7}{'kPDU/s':>9}"
          f"{'x pyca':>8}{'worst':>7}{'x cpu':>7}{'cpb':>6}{'limit':>7}")
    for r in rows:
        cpb = mhz / r["mb_s_cpu"] if mhz else float("nan")
        limit = CPB_LIMIT.get(_engine_of(r["impl"]) or "")
        lim = f"{limit:>7.3f}" if limit else f"{'':>7}"
        print(f"{_fmt_size(r['size']):<18}{r['impl']:<18}{r['op']:<6}{r['mb_s']:>7.0f}"
              f"{r['mb_s_best']:>7.0f}{r['mb_s_cpu']:>7.0f}{r['pdu_s'] / 1e3:>9.1f}"
              f"{r['ratio_vs_pyca']:>8.1f}{r['ratio_vs_pyca_worst']:>7.1f}"
              f"{r['ratio_vs_pyca_cpu']:>7.1f}{cpb:>6.2f}{lim}")
    print("(MB/s, kPDU/s: wall clock, median over rounds; best: fastest round; cpu: payload per "
          "second of process CPU time, all threads; x pyca / worst / x cpu: median / worst of "
          "the per-round wall ratios, median of the CPU-time ratios; cpb: CPU cycles per byte at "
          "the reported clock; limit: the multi-buffer floor of the engine's lane width)")


def ipsecmb_anchor(binary: str, total: int, rounds: int) -> dict[str, Any]:
    """Seal MB/s of the intel-ipsec-mb anchor program at each fixed size, and whether its first
    sealed item (its own key, nonce and payload pattern) equals ours."""
    out: dict[str, Any] = {}
    for size in (s for s in SIZES if isinstance(s, int)):
        count = max(64, total // size)
        try:
            r = subprocess.run([binary, str(size), str(count), str(rounds)], capture_output=True,
                               text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            return {"error": str(exc)}
        words = r.stdout.split()
        if r.returncode != 0 or "MB/s" not in words or "first" not in words:
            return {"error": (r.stderr or r.stdout)[-300:]}
        key = bytes((i * 7 + 1) & 0xFF for i in range(16))
        nonce = bytes((i * 13 + 5) & 0xFF for i in range(13))
        payload = bytes((i * 31 + 3) & 0xFF for i in range(size))
        ours = seal_many(key, [nonce], [payload])[0]
        first, tag = words[words.index("first") + 1], words[words.index("tag") + 1]
        out[str(size)] = {
            "arch": words[words.index("arch") + 1],
            "mb_s_best": float(words[words.index("MB/s") + 1]),
            "byte_exact": ours[: min(size, 64)].hex() == first and ours[size:].hex() == tag,
        }
    return out


def cpu_features() -> dict[str, bool]:
    """The host CPU features (llvmlite's view, what numba compiles for) that pick the engines."""
    import llvmlite.binding as llvm

    host = llvm.get_host_cpu_features()
    return {f: bool(host.get(f, False))
            for f in ("aes", "vaes", "avx2", "avx512f", "avx512vl", "pclmul", "vpclmulqdq")}


def targets_of(rows: list[dict[str, Any]], engines: list[str]) -> dict[str, float]:
    """Issue 15's done-when ratios of this run (worst of seal/open; the list API's worst round)."""
    get = {(r["size"], r["impl"], r["op"]): r for r in rows}
    out: dict[str, float] = {}
    fast = next((e for e in LOCKSTEP if e in engines), None)
    if fast is None:
        return out
    impl = f"batch-{SHORT[fast]}-1t"
    for size, want in ((64, 20), (1500, 8)):
        rs = [get[(size, impl, op)] for op in ("seal", "open")]
        out[f"{impl}_vs_pyca_{size}B>={want} (wall)"] = min(r["ratio_vs_pyca"] for r in rs)
        out[f"{impl}_vs_pyca_{size}B>={want} (cpu)"] = min(r["ratio_vs_pyca_cpu"] for r in rs)
    if "numba-aesni" in engines and fast != "numba-aesni":
        r15 = [get[(1500, "batch-aesni-1t", op)]["mb_s"] for op in ("seal", "open")]
        f15 = [get[(1500, impl, op)]["mb_s"] for op in ("seal", "open")]
        out[f"{SHORT[fast]}_vs_aesni_1500B"] = min(f / a for f, a in zip(f15, r15, strict=True))
    lst = [r for r in rows if r["impl"] == "list-api"]
    out["list_api_worst_round>=2.5 (wall)"] = min(r["ratio_vs_pyca_worst"] for r in lst)
    out["list_api_worst_round>=2.5 (cpu)"] = min(r["ratio_vs_pyca_cpu_worst"] for r in lst)
    out["list_api_median>=2.5 (wall)"] = min(r["ratio_vs_pyca"] for r in lst)
    out["list_api_median>=2.5 (cpu)"] = min(r["ratio_vs_pyca_cpu"] for r in lst)
    out["list_api_worst_single_call (wall)"] = min(r["ratio_vs_pyca_single_worst"] for r in lst)
    out["list_api_worst_single_call (cpu)"] = min(r["ratio_vs_pyca_cpu_single_worst"] for r in lst)
    return out


def list_vs_batch(rows: list[dict[str, Any]], engines: list[str]) -> list[dict[str, Any]]:
    """The list API beside the batch engine it runs on (the default engine, one thread), per size
    and direction: CPU-time MB/s of both, and the list API's share of the engine's speed (what
    Python objects in and out cost)."""
    get = {(r["size"], r["impl"], r["op"]): r for r in rows}
    fast = next((e for e in LOCKSTEP if e in engines), None)
    if fast is None:
        return []
    impl = f"batch-{SHORT[fast]}-1t"
    out = []
    for size in SIZES:
        for op in ("seal", "open"):
            lst, bat = get.get((size, "list-api", op)), get.get((size, impl, op))
            if lst is None or bat is None:
                continue
            out.append({"size": size, "op": op, "batch": impl, "batch_mb_s_cpu": bat["mb_s_cpu"],
                        "list_mb_s_cpu": lst["mb_s_cpu"],
                        "list_share_of_batch": lst["mb_s_cpu"] / bat["mb_s_cpu"],
                        "list_x_pyca_cpu": lst["ratio_vs_pyca_cpu"],
                        "list_x_pyca_cpu_worst": lst["ratio_vs_pyca_cpu_worst"],
                        "batch_x_pyca_cpu": bat["ratio_vs_pyca_cpu"]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="PATH", help="write results as JSON here")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--mbytes", type=float, default=3.0, help="payload MB per measurement")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds")
    ap.add_argument("--calls", type=int, default=3,
                    help="calls of each task per round; the round takes the fastest")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-compile subprocesses")
    ap.add_argument("--ipsecmb", metavar="BINARY",
                    help="the built intel-ipsec-mb anchor (shared/anchors/ipsecmb_ccm.c) to run "
                         "beside")
    args = ap.parse_args(argv)

    info = machine_info()
    print(format_machine(info))
    warn_before = load_warning()
    if warn_before:
        print(warn_before)
    engines = available_engines()
    feats = cpu_features()
    print(f"CPU features (llvmlite): {' '.join(f for f, on in feats.items() if on)}")
    print(f"engines here: {', '.join(engines)} (default {default_engine()}); seed {args.seed}; "
          f"{args.mbytes:g} MB per measurement, {args.repeats} rounds of the fastest of "
          f"{args.calls} calls")

    cold = {} if args.no_cold else cold_start(engines)
    if cold:
        print("\ncold start (s): " + json.dumps(cold))

    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for size in SIZES:
        rows += bench_size(size, int(args.mbytes * 1e6), args.repeats, rng, engines, args.calls)
    mhz = info.get("cpu_mhz")
    print_table(rows, mhz if isinstance(mhz, float) else None)
    warn_after = load_warning()
    print(f"\n(cpb = cycles/byte at the reported {mhz} MHz clock, nominal: boost clocks make "
          f"the true figure higher; OpenSSL's own single-stream CCM sits near 2.5 cpb)")
    if warn_after:
        print(warn_after)
    print(f"benchmark time {time.perf_counter() - t0:.1f} s")
    anchor = {} if not args.ipsecmb else ipsecmb_anchor(args.ipsecmb, int(args.mbytes * 1e6),
                                                        args.repeats)
    if anchor:
        best = {(r["size"], r["impl"]): r["mb_s_best"] for r in rows if r["op"] == "seal"}
        fast = next((e for e in LOCKSTEP if e in engines), None)
        print("\nintel-ipsec-mb anchor, seal, best round (wall clock):")
        for size, a in anchor.items():
            if size == "error":
                print(f"  error: {a}")
                continue
            ours = best.get((int(size), f"batch-{SHORT[fast]}-1t")) if fast else None
            vs = f"; batch-{SHORT[fast]}-1t best {ours:.0f} ({ours / a['mb_s_best']:.2f}x)" \
                if ours else ""
            print(f"  {size} B: {a['mb_s_best']:.0f} MB/s ({a['arch']}, byte-exact "
                  f"{a['byte_exact']}){vs}")
    gap = list_vs_batch(rows, engines)
    if gap:
        print(f"\nlist API beside the batch engine ({gap[0]['batch']}), CPU-time MB/s:")
        print(f"  {'size':<18}{'op':<6}{'batch':>7}{'list':>7}{'share':>7}"
              f"{'batch x':>9}{'list x':>8}{'worst':>7}")
        for g in gap:
            print(f"  {_fmt_size(g['size']):<18}{g['op']:<6}{g['batch_mb_s_cpu']:>7.0f}"
                  f"{g['list_mb_s_cpu']:>7.0f}{g['list_share_of_batch']:>7.2f}"
                  f"{g['batch_x_pyca_cpu']:>9.1f}{g['list_x_pyca_cpu']:>8.1f}"
                  f"{g['list_x_pyca_cpu_worst']:>7.1f}")
        print("  (share: list API speed / batch engine speed; x: median CPU-time ratio to "
              "per-PDU cryptography; worst: the list API's worst round)")
    targets = targets_of(rows, engines)
    if targets:
        print("targets (issue 15; worst of seal/open, list API over all sizes):\n  " + "\n  ".join(
            f"{k}: {v:.1f}" for k, v in targets.items()))

    if args.json:
        out = {
            "benchmark": "ccm",
            "seed": args.seed,
            "params": {"mbytes": args.mbytes, "repeats": args.repeats, "calls": args.calls,
                       "sizes": SIZES,
                       "mixed_range": MIXED_RANGE, "tag_len": TAG, "nonce_len": 13},
            "machine": info,
            "load_average_after": list(os.getloadavg()),
            "load_warning": warn_before or warn_after,
            "engines": engines,
            "default_engine": default_engine(),
            "engine_status": engine_status(),
            "cpu_features": feats,
            "cold_start_s": cold,
            "ipsecmb_anchor": anchor,
            "cpb_limit": CPB_LIMIT,
            "timing": "interleaved rounds, each the fastest of `calls` calls per task (single: "
                      "the first call); wall = perf_counter, cpu = process_time (all threads)",
            "targets": targets,
            "list_vs_batch": gap,
            "results": rows,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
