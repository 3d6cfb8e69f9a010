"""MAC burst data path: one batch call per burst vs one ``protect``/``unprotect`` per MPDU.

    python -m benchmarks.mac [--json PATH] [--seed N] [--sizes 64,512,1500,2034]
                             [--bursts 1,8,32,128] [--kbytes K] [--repeats R] [--cold]

For each MPDU payload size and burst size (MPDUs per burst), on one link with two SAs (the
MPDUs alternate between them, as data and relay flows would), it times:

* ``batch-<engine>`` — :func:`stack.mac.build_burst` (compiled per-MPDU passes, all MPDUs
  sealed by one engine call) and :func:`stack.mac.open_burst` (likewise, one engine call), for
  the default engine and the ``reference`` engine;
* ``per-mpdu`` — the baseline: :func:`stack.mpdu.protect` per MPDU joined into the burst, and on
  receive a walk over the AGMH Lengths with :func:`stack.mpdu.unprotect_lookup` per MPDU (one
  ``cryptography`` AES-CCM call each).

Reported per burst: build and open time (µs, the median over ``--repeats`` runs of the mean over
a run's bursts), the payload goodput of build+open together (Mbit/s of MPDU payload through one
core doing both ends; median run and fastest run — on a shared machine the fastest run is the
better estimate of the code's own cost), and the speed-up of each batch variant over
``per-mpdu`` in the same run (medians).
Every run checks that the batch and per-MPDU paths produce the same bytes and that every MPDU is
accepted. The first call of the default engine in a fresh process (numba kernels loaded from the
on-disk cache) is reported separately; ``--cold`` adds a compile into an empty cache.
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

from benchmarks._machine import format_machine, load_warning, machine_info
from stack import mpdu
from stack.crypto import default_engine
from stack.keys import AkContext
from stack.mac import TxMpdu, build_burst, open_burst
from stack.sa import SecurityAssociation

STID = 0x2A5
FIDS = (2, 3)
DEFAULT_SIZES = (64, 512, 1500, 2034)
DEFAULT_BURSTS = (1, 8, 32, 128)


def _contexts(rng: np.random.Generator) -> list[AkContext]:
    return [
        AkContext.from_ak(
            rng.bytes(20),
            pmk_sn=0,
            amsid_star=rng.bytes(6),
            absid=rng.bytes(6),
            cmac_key_count=i,
        )
        for i in range(len(FIDS))
    ]


class _Link:
    """Both ends of one link: FID 2 and FID 3, each with its own SA (TX side and RX side)."""

    def __init__(self, ctxs: list[AkContext]) -> None:
        pairs = list(enumerate(zip(FIDS, ctxs, strict=True)))
        self.tx = {f: SecurityAssociation.start(c, 1 + i) for i, (f, c) in pairs}
        self.rx = {f: SecurityAssociation.start(c, 1 + i) for i, (f, c) in pairs}

    def lookup(self, stid: int, fid: int) -> SecurityAssociation | None:
        return self.rx.get(fid) if stid == STID else None


def _batch_build(link: _Link, payloads: list[bytes], engine: str) -> np.ndarray:
    items = [TxMpdu(FIDS[i % 2], p, link.tx[FIDS[i % 2]]) for i, p in enumerate(payloads)]
    return build_burst(STID, items, uplink=True, engine=engine)


def _batch_open(link: _Link, burst: np.ndarray, engine: str) -> int:
    rx = open_burst(STID, burst, uplink=True, lookup=link.lookup, engine=engine)
    if rx.rejected:
        raise AssertionError(f"batch open rejected MPDUs: {dict(rx.rejected)}")
    return len(rx)


def _per_mpdu_build(link: _Link, payloads: list[bytes]) -> bytes:
    return b"".join(
        mpdu.protect(link.tx[FIDS[i % 2]], stid=STID, fid=FIDS[i % 2], uplink=True, payload=p)
        for i, p in enumerate(payloads)
    )


def _per_mpdu_open(link: _Link, burst: bytes) -> int:
    pos, n, view = 0, 0, memoryview(burst)
    while pos < len(burst):
        length = int.from_bytes(burst[pos : pos + 2], "big") & 0x7FF
        mpdu.unprotect_lookup(link.lookup, stid=STID, uplink=True, mpdu=view[pos : pos + length])
        pos += length
        n += 1
    return n


def bench_case(
    size: int,
    per_burst: int,
    n_bursts: int,
    repeats: int,
    rng: np.random.Generator,
    engines: list[str],
) -> dict[str, Any]:
    """Time every variant for one (payload size, MPDUs per burst); returns one result row."""
    ctxs = _contexts(rng)
    bursts_in = [[rng.bytes(size) for _ in range(per_burst)] for _ in range(n_bursts)]
    # same bytes from both paths (twin SAs start from the same PNs)
    a, b = _Link(ctxs), _Link(ctxs)
    ref = _per_mpdu_build(a, bursts_in[0])
    for engine in engines:
        got = _batch_build(_Link(ctxs), bursts_in[0], engine)
        if got.tobytes() != ref:
            raise AssertionError(f"{engine}: batch burst differs from the per-MPDU burst")
    if _batch_open(b, np.frombuffer(ref, np.uint8).copy(), engines[0]) != per_burst:
        raise AssertionError("batch open lost MPDUs")

    variants: dict[str, dict[str, list[float]]] = {}

    def record(name: str, build_s: float, open_s: float) -> None:
        v = variants.setdefault(name, {"build": [], "open": []})
        v["build"].append(build_s / n_bursts)
        v["open"].append(open_s / n_bursts)

    for _ in range(repeats + 1):  # the first round is a warm-up and is dropped below
        link = _Link(ctxs)
        t0 = time.perf_counter()
        plain = [_per_mpdu_build(link, p) for p in bursts_in]
        t1 = time.perf_counter()
        got = sum(_per_mpdu_open(link, x) for x in plain)
        t2 = time.perf_counter()
        assert got == per_burst * n_bursts
        record("per-mpdu", t1 - t0, t2 - t1)
        for engine in engines:
            link = _Link(ctxs)
            t0 = time.perf_counter()
            built = [_batch_build(link, p, engine) for p in bursts_in]
            t1 = time.perf_counter()
            got = sum(_batch_open(link, x, engine) for x in built)
            t2 = time.perf_counter()
            assert got == per_burst * n_bursts
            record(f"batch-{engine}", t1 - t0, t2 - t1)

    payload_bits = 8 * size * per_burst
    row: dict[str, Any] = {
        "payload_bytes": size,
        "mpdus_per_burst": per_burst,
        "bursts_per_run": n_bursts,
        "variants": {},
    }
    base_total = None
    totals: dict[str, float] = {}
    for name, v in variants.items():
        build = statistics.median(v["build"][1:])
        opn = statistics.median(v["open"][1:])
        total = build + opn
        totals[name] = total
        best = min(b + o for b, o in zip(v["build"][1:], v["open"][1:], strict=True))
        if name == "per-mpdu":
            base_total = total
        row["variants"][name] = {
            "build_us": build * 1e6,
            "open_us": opn * 1e6,
            "build_open_us": total * 1e6,
            "per_mpdu_us": total * 1e6 / per_burst,
            "goodput_mbit_s": payload_bits / total / 1e6,
            "best_goodput_mbit_s": payload_bits / best / 1e6,
        }
    assert base_total is not None
    for name, v in row["variants"].items():  # from seconds, so the baseline is exactly 1.0
        v["speedup_vs_per_mpdu"] = base_total / totals[name]
    return row


_FIRST_CALL = r"""
import json, time
t0 = time.perf_counter()
from stack.keys import AkContext
from stack.mac import TxMpdu, build_burst, open_burst
from stack.sa import SecurityAssociation
t1 = time.perf_counter()
ctx = AkContext.from_ak(bytes(20), pmk_sn=0, amsid_star=bytes(6), absid=bytes(6), cmac_key_count=0)
tx, rx = SecurityAssociation.start(ctx, 1), SecurityAssociation.start(ctx, 1)
t2 = time.perf_counter()
b = build_burst(1, [TxMpdu(2, bytes(100), tx)] * 4, uplink=True)
t3 = time.perf_counter()
r = open_burst(1, b, uplink=True, lookup=lambda s, f: rx)
t4 = time.perf_counter()
assert len(r) == 4
print(json.dumps({"import_s": t1 - t0, "first_build_s": t3 - t2, "first_open_s": t4 - t3}))
"""


def first_call(cold: bool) -> dict[str, Any]:
    """First build/open in fresh processes: from the numba cache, and (``cold``) an empty one."""
    out: dict[str, Any] = {}
    phases = [("cached_load", None)]
    tmp = tempfile.TemporaryDirectory() if cold else None
    if tmp is not None:
        phases.insert(0, ("cold_compile", tmp.name))
    try:
        for phase, cache_dir in phases:
            env = dict(os.environ)
            if cache_dir is not None:
                env["NUMBA_CACHE_DIR"] = cache_dir
            r = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL],
                capture_output=True,
                text=True,
                env=env,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                timeout=600,
                check=False,
            )
            if r.returncode:
                out[phase] = {"error": r.stderr.strip().splitlines()[-1:]}
            else:
                out[phase] = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


def print_table(rows: list[dict[str, Any]], names: list[str]) -> None:
    """One line per (size, burst): build/open µs per burst and Mbit/s for every variant."""
    head = f"{'payload':>7} {'MPDUs':>5} |"
    for name in names:
        head += f" {name + ' build/open µs':>34} {'Mbit/s':>7} {'best':>6} {'x':>5} |"
    print(head)
    print("-" * len(head))
    for row in rows:
        line = f"{row['payload_bytes']:>7} {row['mpdus_per_burst']:>5} |"
        for name in names:
            v = row["variants"][name]
            bo = f"{v['build_us']:.0f} / {v['open_us']:.0f}"
            line += (
                f" {bo:>34} {v['goodput_mbit_s']:>7.0f} {v['best_goodput_mbit_s']:>6.0f}"
                f" {v['speedup_vs_per_mpdu']:>5.2f} |"
            )
        print(line)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table, write JSON if asked."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="PATH", help="write results as JSON here")
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--sizes", type=_ints, default=list(DEFAULT_SIZES), help="payload bytes")
    ap.add_argument("--bursts", type=_ints, default=list(DEFAULT_BURSTS), help="MPDUs per burst")
    ap.add_argument("--kbytes", type=int, default=512, help="payload kB per run and case")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per case (median)")
    ap.add_argument("--cold", action="store_true", help="also time a numba compile, empty cache")
    ap.add_argument(
        "--no-first-call", action="store_true", help="skip the fresh-process first-call timing"
    )
    args = ap.parse_args(argv)
    if any(not 0 <= s <= mpdu.MAX_PROTECTED_PAYLOAD for s in args.sizes):
        ap.error(f"--sizes must be 0..{mpdu.MAX_PROTECTED_PAYLOAD} (one protected MPDU)")
    if any(b < 1 for b in args.bursts) or args.repeats < 1 or args.kbytes < 1:
        ap.error("--bursts, --repeats and --kbytes must be positive")

    rng = np.random.default_rng(args.seed)
    info = machine_info()
    print(format_machine(info))
    warn = load_warning()
    if warn:
        print(warn)
    engines = [default_engine()]
    if "reference" not in engines:
        engines.append("reference")
    first = {} if args.no_first_call else first_call(args.cold)
    print("first call in a fresh process (s): " + json.dumps(first))

    t_start = time.perf_counter()
    rows = []
    for size in args.sizes:
        for per_burst in args.bursts:
            burst_bytes = max(1, size) * per_burst
            n_bursts = int(min(400, max(3, args.kbytes * 1000 // burst_bytes)))
            rows.append(bench_case(size, per_burst, n_bursts, args.repeats, rng, engines))
    elapsed = time.perf_counter() - t_start
    names = ["per-mpdu", *(f"batch-{e}" for e in engines)]
    print()
    print_table(rows, names)
    print(
        "\nbuild/open = median µs per burst; Mbit/s = MPDU payload through build+open on one "
        "core (median run; best = fastest run); x = speed-up of the median build+open over "
        f"per-mpdu in the same run; {elapsed:.0f} s"
    )
    if args.json:
        out = {
            "benchmark": "mac",
            "machine": info,
            "load_warning": warn,
            "seed": args.seed,
            "engines": engines,
            "default_engine": engines[0],
            "config": {
                "sizes": args.sizes,
                "mpdus_per_burst": args.bursts,
                "kbytes_per_run": args.kbytes,
                "repeats": args.repeats,
                "sas_per_link": len(FIDS),
            },
            "first_call_s": first,
            "results": rows,
            "elapsed_s": elapsed,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
