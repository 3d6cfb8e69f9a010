"""AES-128-CCM throughput: per-PDU ``cryptography`` vs the batch engines vs the list API.

    python -m benchmarks.ccm [--json PATH] [--seed N] [--mbytes M] [--repeats R] [--no-cold]

For 64, 256, 1500, 9000 B and a mixed 64–1500 B distribution, encrypt (seal) and decrypt (open),
MB/s (10^6 payload bytes per second) and PDU/s of:

* ``pyca-per-pdu``   — the baseline: one ``cryptography`` ``AESCCM.encrypt``/``decrypt`` per PDU
  from a list of ``bytes`` (what a user would otherwise write);
* ``batch-aesni-1t`` / ``batch-aesni-2t`` — :func:`stack.crypto.seal_batch`/``open_batch`` on the
  AES-NI engine, payloads already packed in a reused numpy buffer (the MAC layer's data path);
* ``batch-table-1t`` — the portable table-AES fallback engine;
* ``list-api``       — :func:`stack.crypto.seal_many`/``open_many`` (bytes in, bytes out).

Ratios are to ``pyca-per-pdu`` in the same run. Timings are the median of ``--repeats`` runs
after one warm-up run. Cold start (numba compile into an empty cache, then a load from that cache)
is measured in subprocesses and reported separately. Cycles/byte use the clock /proc/cpuinfo
reports (nominal; boost clocks make the true figure higher) against the 0.625 cpb multi-buffer
limit of ``shared/spec/ccm-engine.md``.
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
from stack.crypto import available_engines, open_batch, open_many, seal_batch, seal_many

SIZES: list[int | str] = [64, 256, 1500, 9000, "mixed"]
MIXED_RANGE = (64, 1500)
CPB_LIMIT = 0.625
TAG = 8


def _lengths(size: int | str, total: int, rng: np.random.Generator) -> np.ndarray:
    if size == "mixed":
        n = max(64, total // ((MIXED_RANGE[0] + MIXED_RANGE[1]) // 2))
        return rng.integers(MIXED_RANGE[0], MIXED_RANGE[1] + 1, n).astype(np.int64)
    assert isinstance(size, int)
    return np.full(max(64, total // size), size, np.int64)


def _median_time(fn: Callable[[], object], repeats: int, prep: Callable[[], None] | None = None
                 ) -> tuple[float, float]:
    """(median, best) seconds of ``repeats`` timed runs of ``fn`` after one untimed run."""
    if prep:
        prep()
    fn()  # warm-up (and JIT, when not cached)
    times = []
    for _ in range(repeats):
        if prep:
            prep()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def bench_size(size: int | str, total: int, repeats: int, rng: np.random.Generator,
               engines: list[str]) -> list[dict[str, Any]]:
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

    rows: list[dict[str, Any]] = []

    def add(impl: str, op: str, t: tuple[float, float]) -> None:
        med, best = t
        rows.append({"size": size, "impl": impl, "op": op, "n_pdus": n, "bytes": nbytes,
                     "seconds_median": med, "seconds_best": best, "mb_s": nbytes / med / 1e6,
                     "mb_s_best": nbytes / best / 1e6, "pdu_s": n / med})

    # (a) baseline: one cryptography call per PDU
    add("pyca-per-pdu", "seal", _median_time(
        lambda: [pyca.encrypt(nc, p, None) for nc, p in zip(nonce_list, payloads, strict=True)],
        repeats))
    add("pyca-per-pdu", "open", _median_time(
        lambda: [pyca.decrypt(nc, c, None) for nc, c in zip(nonce_list, sealed_list, strict=True)],
        repeats))

    # (b) batch engines on a reused numpy buffer
    work = buf.copy()
    variants = []
    if "numba-aesni" in engines:
        variants += [("batch-aesni-1t", "numba-aesni", 1), ("batch-aesni-2t", "numba-aesni", 2)]
    if "numba-table" in engines:
        variants += [("batch-table-1t", "numba-table", 1)]
    for impl, eng, th in variants:
        add(impl, "seal", _median_time(
            lambda e=eng, t=th: seal_batch(keys, kidx, nonces, work, offs, lens, engine=e,
                                           threads=t),
            repeats, prep=lambda: np.copyto(work, plain)))
        ok_holder: list[np.ndarray] = []
        add(impl, "open", _median_time(
            lambda e=eng, t=th, h=ok_holder: h.append(
                open_batch(keys, kidx, nonces, work, offs, lens, engine=e, threads=t)),
            repeats, prep=lambda: np.copyto(work, sealed)))
        if not all(o.all() for o in ok_holder) or not np.array_equal(work, opened):
            raise SystemExit(f"{impl}: open failed to verify the sealed data — engine broken")

    # (c) list API (default engine)
    add("list-api", "seal", _median_time(lambda: seal_many(key, nonce_list, payloads), repeats))
    add("list-api", "open", _median_time(lambda: open_many(key, nonce_list, sealed_list), repeats))

    base = {r["op"]: r["mb_s"] for r in rows if r["impl"] == "pyca-per-pdu"}
    base_best = {r["op"]: r["mb_s_best"] for r in rows if r["impl"] == "pyca-per-pdu"}
    for r in rows:
        r["ratio_vs_pyca"] = r["mb_s"] / base[r["op"]]
        r["ratio_vs_pyca_best"] = r["mb_s_best"] / base_best[r["op"]]
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


def print_table(rows: list[dict[str, Any]], mhz: float | None) -> None:
    print(f"\n{'size':<18}{'impl':<16}{'op':<6}{'MB/s':>8}{'best':>8}{'kPDU/s':>9}"
          f"{'x pyca':>8}{'cpb':>7}")
    for r in rows:
        cpb = mhz / r["mb_s_best"] if mhz else float("nan")
        print(f"{_fmt_size(r['size']):<18}{r['impl']:<16}{r['op']:<6}{r['mb_s']:>8.0f}"
              f"{r['mb_s_best']:>8.0f}{r['pdu_s'] / 1e3:>9.1f}{r['ratio_vs_pyca']:>8.1f}"
              f"{cpb:>7.2f}")
    print("(MB/s and kPDU/s: median; best: fastest run; x pyca: median vs median; cpb: from best)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="PATH", help="write results as JSON here")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--mbytes", type=float, default=3.0, help="payload MB per measurement")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-compile subprocesses")
    args = ap.parse_args(argv)

    info = machine_info()
    print(format_machine(info))
    warn_before = load_warning()
    if warn_before:
        print(warn_before)
    engines = available_engines()
    print(f"engines here: {', '.join(engines)}; seed {args.seed}; "
          f"{args.mbytes:g} MB per measurement, median of {args.repeats}")

    cold = {} if args.no_cold else cold_start(engines)
    if cold:
        print("\ncold start (s): " + json.dumps(cold))

    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for size in SIZES:
        rows += bench_size(size, int(args.mbytes * 1e6), args.repeats, rng, engines)
    mhz = info.get("cpu_mhz")
    print_table(rows, mhz if isinstance(mhz, float) else None)
    warn_after = load_warning()
    print(f"\n(cpb = cycles/byte at the reported {mhz} MHz clock; multi-buffer limit "
          f"{CPB_LIMIT} cpb; OpenSSL's own single-stream CCM sits near 2.5 cpb)")
    if warn_after:
        print(warn_after)
    print(f"benchmark time {time.perf_counter() - t0:.1f} s")

    targets = {}
    get = {(r["size"], r["impl"], r["op"]): r for r in rows}
    if ("numba-aesni" in engines):
        targets = {
            "batch_1t_vs_pyca_64B_seal>=8": get[(64, "batch-aesni-1t", "seal")]["ratio_vs_pyca"],
            "batch_1t_1500B_seal_MBps>=2500": get[(1500, "batch-aesni-1t", "seal")]["mb_s"],
            "list_api_min_ratio>=2": min(r["ratio_vs_pyca"] for r in rows
                                         if r["impl"] == "list-api"),
        }
        print("targets: " + ", ".join(f"{k}: {v:.1f}" for k, v in targets.items()))

    if args.json:
        out = {
            "benchmark": "ccm",
            "seed": args.seed,
            "params": {"mbytes": args.mbytes, "repeats": args.repeats, "sizes": SIZES,
                       "mixed_range": MIXED_RANGE, "tag_len": TAG, "nonce_len": 13},
            "machine": info,
            "load_average_after": list(os.getloadavg()),
            "load_warning": warn_before or warn_after,
            "engines": engines,
            "cold_start_s": cold,
            "cpb_limit": CPB_LIMIT,
            "targets": targets,
            "results": rows,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
