"""Vector throughput of this CPU for the int16 Viterbi's operations, and the floor they set.

    python -m benchmarks.simd_ops [--json PATH] [--iters N] [--widths 8 16 32]

Why: the int16 decoder's forward pass (``phy/viterbi_kernels.py``) is bound by vector
throughput, and how much each of its operations costs differs between CPUs (Zen 4 runs a
512-bit operation as two 256-bit halves; Intel's AVX-512 cores run it whole, and the two differ
on saturating adds and word permutes). This benchmark measures, on the host, the reciprocal
throughput of each operation the add-compare-select step uses, and of the step itself as a
synthetic mix (the same operations on independent chains, nothing else), so what the decoder
could reach on a machine can be read from the machine.

Each row is a loop of independent chains of one operation on ``<W x i16>`` vectors, built as
LLVM IR and compiled for the host by llvmlite (what numba uses; LLVM picks the widest legal
instructions: a width beyond the CPU's registers is split). Cycles are estimated from a
dependent ``imul`` + ``xor`` chain (4 cycles an iteration on every current x86 core); the
nanoseconds are measured.

Rows:

* ``add``, ``adds`` (saturating), ``max``: element-wise ``<W x i16>`` with a constant;
* ``cmp->mask``: a signed compare whose mask is moved to a general register (and one add to
  keep the chain);
* ``permute2``: a two-source word permute (``shufflevector`` of two vectors);
* ``acs step``: per 64 states, the step of the wide layout -- four adds, two compares to masks
  moved to general registers, two selects, two two-source permutes -- on 4 and 8 independent
  chains; its time per 64-state step is a floor for the decoder's forward pass (which also
  loads the branch word, renormalises and stores the decisions).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import time
from collections.abc import Callable
from typing import Any

from benchmarks._machine import announce

#: x86 latency of the clock probe's ``imul`` + ``xor`` (3 + 1 cycles) on every current core.
_CHAIN_CYCLES = 4


def _engine() -> tuple[Any, Any]:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    tm = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)
    return llvm, tm


def _compile(ir_text: str) -> tuple[Callable[..., None], Any]:
    """JIT *ir_text*'s ``@f(i64 n, ptr p, ptr q)``; returns the callable and its engine (keep
    the engine alive while calling)."""
    llvm, tm = _engine()
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    ee = llvm.create_mcjit_compiler(mod, tm)
    ee.finalize_object()
    proto = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)
    return proto(ee.get_function_address("f")), ee


def _vec(w: int, vals: list[int], ty: str = "i16") -> str:
    """An LLVM vector constant, without its type (binary operations take it bare)."""
    return "<" + ", ".join(f"{ty} {v}" for v in vals) + ">"


def _loop(w: int, nstate: int, body: Callable[[str], list[str]]) -> str:
    """IR of a loop carrying ``nstate`` ``<w x i16>`` values ``%s{i}`` (next: ``%s{i}n``) and
    an i64 accumulator ``%acc`` (next: ``%accn``); *body(ty)* emits one iteration."""
    t = f"<{w} x i16>"
    lines = [f"define void @f(i64 %n, {t}* %p, i64* %q) {{", "entry:",
             f"  %v0 = load {t}, {t}* %p, align 2", "  br label %loop", "loop:",
             "  %i = phi i64 [0, %entry], [%i2, %loop]",
             "  %acc = phi i64 [0, %entry], [%accn, %loop]"]
    lines += [f"  %s{i} = phi {t} [%v0, %entry], [%s{i}n, %loop]" for i in range(nstate)]
    lines += body(t)
    lines += ["  %i2 = add i64 %i, 1", "  %c = icmp slt i64 %i2, %n",
              "  br i1 %c, label %loop, label %done", "done:"]
    for i in range(nstate):
        lines += [f"  %o{i} = getelementptr {t}, {t}* %p, i64 {i}",
                  f"  store {t} %s{i}n, {t}* %o{i}, align 2"]
    lines += ["  %qa = getelementptr i64, i64* %q, i64 64", "  store i64 %accn, i64* %qa",
              "  ret void", "}",
              "declare <8 x i16> @llvm.sadd.sat.v8i16(<8 x i16>, <8 x i16>)",
              "declare <16 x i16> @llvm.sadd.sat.v16i16(<16 x i16>, <16 x i16>)",
              "declare <32 x i16> @llvm.sadd.sat.v32i16(<32 x i16>, <32 x i16>)",
              "declare <8 x i16> @llvm.smax.v8i16(<8 x i16>, <8 x i16>)",
              "declare <16 x i16> @llvm.smax.v16i16(<16 x i16>, <16 x i16>)",
              "declare <32 x i16> @llvm.smax.v32i16(<32 x i16>, <32 x i16>)"]
    return "\n".join(lines)


def op_ir(op: str, w: int, chains: int) -> str:
    """The loop of *chains* independent chains of *op* on ``<w x i16>``."""
    b = _vec(w, [i % 7 + 1 for i in range(w)])
    perm = _vec(w, [(5 * i + 3) % (2 * w) for i in range(w)], "i32")
    it = f"i{w}"

    def body(t: str) -> list[str]:
        out: list[str] = []
        acc = "%acc"
        for c in range(chains):
            s, nx = f"%s{c}", f"%s{c}n"
            if op == "add":
                out.append(f"  {nx} = add {t} {s}, {b}")
            elif op == "adds":
                out.append(f"  {nx} = call {t} @llvm.sadd.sat.v{w}i16({t} {s}, {t} {b})")
            elif op == "max":
                out.append(f"  {nx} = call {t} @llvm.smax.v{w}i16({t} {s}, {t} {b})")
            elif op == "permute2":
                other = f"%s{(c + 1) % chains}"
                out.append(f"  {nx} = shufflevector {t} {s}, {t} {other}, <{w} x i32> {perm}")
            elif op == "cmp->mask":
                out += [f"  %k{c} = icmp sgt {t} {s}, {b}",
                        f"  %m{c} = bitcast <{w} x i1> %k{c} to {it}",
                        f"  %z{c} = zext {it} %m{c} to i64",
                        f"  %g{c} = getelementptr i64, i64* %q, i64 {c}",
                        f"  store i64 %z{c}, i64* %g{c}",
                        f"  {nx} = add {t} {s}, {b}"]
            else:
                raise ValueError(f"unknown operation {op!r}")
        out.append(f"  %accn = add i64 {acc}, 0")
        return out

    return _loop(w, chains, body)


def acs_ir(w: int, chains: int) -> str:
    """The wide layout's add-compare-select step, 64 states a step, on *chains* chains: per
    64 states ``64 // (2 w)`` register pairs (even, odd) each doing four adds, two compares
    to masks moved to a general register, two selects, two two-source permutes."""
    b = _vec(w, [i % 7 + 1 for i in range(w)])
    p1 = _vec(w, [(5 * i + 3) % (2 * w) for i in range(w)], "i32")
    p2 = _vec(w, [(7 * i + 1) % (2 * w) for i in range(w)], "i32")
    pairs = chains * (64 // (2 * w))
    it = f"i{w}"

    def body(t: str) -> list[str]:
        out: list[str] = []
        acc = "%acc"
        for r in range(pairs):
            e, o, m = f"%s{2 * r}", f"%s{2 * r + 1}", f"<{w} x i1>"
            out += [f"  %a{r} = add {t} {e}, {b}", f"  %c{r} = add {t} {o}, {b}",
                    f"  %d{r} = sub {t} {e}, {b}", f"  %f{r} = sub {t} {o}, {b}",
                    f"  %k{r} = icmp sgt {t} %f{r}, %a{r}", f"  %l{r} = icmp sgt {t} %c{r}, %d{r}",
                    f"  %lo{r} = select {m} %k{r}, {t} %f{r}, {t} %a{r}",
                    f"  %hi{r} = select {m} %l{r}, {t} %c{r}, {t} %d{r}",
                    f"  %kb{r} = bitcast {m} %k{r} to {it}",
                    f"  %lb{r} = bitcast {m} %l{r} to {it}",
                    f"  %kz{r} = zext {it} %kb{r} to i64", f"  %lz{r} = zext {it} %lb{r} to i64",
                    f"  %ls{r} = shl i64 %lz{r}, 32", f"  %w{r} = or i64 %kz{r}, %ls{r}",
                    f"  %g{r} = getelementptr i64, i64* %q, i64 {r % 64}",
                    f"  store i64 %w{r}, i64* %g{r}",
                    f"  %s{2 * r}n = shufflevector {t} %lo{r}, {t} %hi{r}, <{w} x i32> {p1}",
                    f"  %s{2 * r + 1}n = shufflevector {t} %lo{r}, {t} %hi{r}, <{w} x i32> {p2}"]
        out.append(f"  %accn = add i64 {acc}, 0")
        return out

    return _loop(w, 2 * pairs, body)


def _clock_ir() -> str:
    return "\n".join([
        "define void @f(i64 %n, i8* %p, i64* %q) {", "entry:", "  br label %loop", "loop:",
        "  %i = phi i64 [0, %entry], [%i2, %loop]",
        "  %x = phi i64 [3, %entry], [%y, %loop]",
        "  %sq = mul i64 %x, %x", "  %y = xor i64 %sq, -7046029254386353131",
        "  %i2 = add i64 %i, 1", "  %c = icmp slt i64 %i2, %n",
        "  br i1 %c, label %loop, label %done", "done:", "  store i64 %y, i64* %q",
        "  ret void", "}"])


def _time(ir_text: str, iters: int, repeats: int) -> float:
    """Best seconds per loop iteration of *ir_text*'s ``@f``."""
    fn, ee = _compile(ir_text)
    buf = (ctypes.c_int16 * 4096)()
    q = (ctypes.c_int64 * 65)()
    fn(16, ctypes.addressof(buf), ctypes.addressof(q))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(iters, ctypes.addressof(buf), ctypes.addressof(q))
        best = min(best, time.perf_counter() - t)
    del ee
    return best / iters


def measure(widths: list[int], iters: int, repeats: int) -> dict[str, Any]:
    """Clock estimate, per-operation costs and the ACS step's, as a JSON-ready dict."""
    ns_cycle = _time(_clock_ir(), iters, repeats) * 1e9 / _CHAIN_CYCLES
    ops = []
    for w in widths:
        for op in ("add", "adds", "max", "cmp->mask", "permute2"):
            chains = 8
            per = _time(op_ir(op, w, chains), iters // 4, repeats) * 1e9 / chains
            ops.append({"op": op, "lanes": w, "ns": per, "cycles": per / ns_cycle})
    steps = []
    for w in widths:
        if 64 % (2 * w):
            continue
        for chains in (4, 8):
            per = _time(acs_ir(w, chains), iters // 16, repeats) * 1e9 / chains
            steps.append({"lanes": w, "chains": chains, "ns_per_step": per,
                          "cycles_per_step": per / ns_cycle})
    return {"ghz_est": 1.0 / ns_cycle, "ops": ops, "acs_step": steps}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the probe, print the tables, optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--iters", type=int, default=20_000_000,
                    help="loop iterations of the clock probe (default 20 000 000; the operation "
                    "rows run a quarter, the ACS rows a sixteenth of it)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32],
                    help="int16 lanes per vector (8: 128-bit, 16: 256-bit, 32: 512-bit)")
    args = ap.parse_args(argv)
    bad = [w for w in args.widths if w not in (8, 16, 32)]
    if bad or args.iters < 64 or args.repeats < 1:
        ap.error("widths are 8, 16 or 32; --iters at least 64; --repeats at least 1")
    import llvmlite.binding as ll

    feats = ll.get_host_cpu_features()
    res: dict[str, Any] = {"machine": announce(), "llvm_cpu": ll.get_host_cpu_name(),
                           "llvm_features": sorted(f for f in ("sse2", "avx2", "avx512bw")
                                                   if feats.get(f, False))}
    res.update(measure(args.widths, args.iters, args.repeats))
    print(f"LLVM target {res['llvm_cpu']} ({' '.join(res['llvm_features'])}); clock estimate "
          f"{res['ghz_est']:.2f} GHz (dependent imul+xor chain, {_CHAIN_CYCLES} cycles)")
    print("reciprocal throughput, one <lanes x i16> operation (8 independent chains):")
    print(f"{'op':>10} " + " ".join(f"{w:>4} lanes ns/cyc " for w in args.widths))
    for op in ("add", "adds", "max", "cmp->mask", "permute2"):
        cells = []
        for w in args.widths:
            r = next(x for x in res["ops"] if x["op"] == op and x["lanes"] == w)
            cells.append(f"{r['ns']:>8.3f} / {r['cycles']:<5.2f}")
        print(f"{op:>10} " + " ".join(cells))
    print("ACS step of the wide layout (synthetic: the step's operations only), per 64 states:")
    for s in res["acs_step"]:
        print(f"  {s['lanes']:>2} lanes, {s['chains']} chains: {s['ns_per_step']:.2f} ns "
              f"({s['cycles_per_step']:.2f} cycles) a step")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=1)
    return res


if __name__ == "__main__":
    main()
