"""Run the fuzz harnesses: ``python -m tests.fuzz --seconds N [--harness NAME ...]``.

Each harness runs in its own subprocess (:mod:`tests.fuzz._worker`: atheris with libFuzzer's
``-max_total_time``), one after the other, so a campaign uses one core. The growing corpus of a
harness is ``tests/fuzz/.work/corpus/<harness>/`` (git-ignored; the committed seeds in
``tests/fuzz/corpus/<harness>/`` are read too), its log ``tests/fuzz/.work/logs/<harness>.log``,
and its findings go to ``tests/fuzz/findings/<harness>/``. At the end a table gives, per harness,
executions, coverage (libFuzzer's ``cov``/``ft``), new corpus entries and new findings; the exit
status is 1 when anything new was found.

Other modes: ``--list`` names the harnesses; ``--replay FILE... --harness NAME`` runs inputs
in-process (no atheris needed) and prints the traceback of a finding; ``--minimize`` shrinks a
crashing input while its signature stays the same; ``--merge --harness NAME`` minimises the
committed campaign corpus ``tests/fuzz/campaign/NAME/`` to the inputs its coverage needs.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz import _core

_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)
_COV = re.compile(r"cov: (\d+) ft: (\d+)")
_EXECS = re.compile(r"^#(\d+)\s", re.M)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass
class Result:
    """What one harness run reported."""

    harness: str
    seconds: float = 0.0
    execs: int = 0
    cov: int = 0
    ft: int = 0
    new_units: int = 0
    findings: list[str] = field(default_factory=list)
    restarts: int = 0
    error: str = ""


def _parse(log: str, res: Result) -> None:
    stats = {k: int(v) for k, v in _STAT.findall(log)}
    execs = stats.get("number_of_executed_units")
    if execs is None:
        found = _EXECS.findall(log)
        execs = int(found[-1]) if found else 0
    res.execs += execs
    cov = _COV.findall(log)
    if cov:
        res.cov, res.ft = max(res.cov, int(cov[-1][0])), max(res.ft, int(cov[-1][1]))
    res.new_units += stats.get("new_units_added", 0)
    res.findings += [line.split(": ", 1)[1] for line in log.splitlines()
                     if line.startswith("NEW_FINDING ")]
    res.findings += [f"libFuzzer: {Path(p).name}" for p in _ARTIFACT.findall(log)]


def worker_command(names: str | list[str], seconds: float, *, findings: Path,
                   corpus: Path | None, runs: int | None = None, seed: int | None = None,
                   stop_on_crash: bool = False, campaign: bool = True) -> list[str]:
    """The command line of one worker run (also used by the pytest smoke test).

    ``findings`` is the root (findings go to ``findings/<harness>/``). With several harnesses the
    worker multiplexes them (first input byte); ``corpus`` should then hold the prefixed seeds of
    :func:`multiplexed_seeds`, as the harnesses' own seed folders cannot be read directly. One
    harness reads its seeds and, with ``campaign``, the corpus its campaigns grew.
    """
    names = [names] if isinstance(names, str) else list(names)
    specs = [_core.HARNESSES[n] for n in names]
    cmd = [sys.executable, "-m", "tests.fuzz._worker", ",".join(names), str(findings)]
    if stop_on_crash:
        cmd.append("--stop-on-crash")
    prefix = findings / names[0] if len(names) == 1 else findings
    lf = [f"-max_total_time={max(1, round(seconds))}",
          f"-max_len={max(s.max_len for s in specs) + (len(names) > 1)}",
          "-timeout=30", "-rss_limit_mb=3072", "-print_final_stats=1",
          f"-artifact_prefix={prefix}{os.sep}"]
    if runs is not None:
        lf.append(f"-runs={runs}")
    if seed is not None:
        lf.append(f"-seed={seed}")
    if len(names) == 1 and specs[0].dictionary is not None:
        lf.append(f"-dict={specs[0].dictionary}")
    dirs = [corpus] + ([specs[0].corpus] + ([_core.CAMPAIGN_DIR / names[0]] if campaign else [])
                       if len(names) == 1 else [])
    return [*cmd, "--", *lf, *(str(d) for d in dirs if d is not None and d.is_dir())]


def multiplexed_seeds(names: list[str], dest: Path) -> int:
    """Copy every seed of ``names`` into ``dest`` behind its harness's selector byte; returns the
    number of seeds written."""
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for k, name in enumerate(names):
        for path in sorted(_core.HARNESSES[name].corpus.iterdir()):
            data = bytes([k]) + path.read_bytes()
            (dest / _core.input_id(data)).write_bytes(data)
            n += 1
    return n


def run_harness(name: str, seconds: float, *, fresh: bool = False, stop_on_crash: bool = False,
                seed: int | None = None, quiet: bool = False) -> Result:
    """Fuzz ``name`` for ``seconds`` of wall time (restarting after a libFuzzer-level crash such as
    a timeout or out-of-memory, for the time left)."""
    spec = _core.HARNESSES[name]
    corpus = _core.WORK_DIR / "corpus" / name
    logs = _core.WORK_DIR / "logs"
    if fresh and corpus.is_dir():
        for p in corpus.iterdir():
            p.unlink()
    corpus.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    spec.findings.mkdir(parents=True, exist_ok=True)
    res = Result(name)
    t0 = time.monotonic()
    log_path = logs / f"{name}.log"
    with log_path.open("w") as log_fh:
        while True:
            left = seconds - (time.monotonic() - t0)
            if left < 1 or res.restarts > 5:
                break
            cmd = worker_command(name, left, findings=_core.FINDINGS_DIR, corpus=corpus,
                                 seed=seed, stop_on_crash=stop_on_crash)
            proc = subprocess.run(cmd, cwd=_core.ROOT, capture_output=True, text=True,
                                  errors="replace", timeout=left + 120)
            log_fh.write(proc.stdout + proc.stderr)
            _parse(proc.stderr, res)
            if proc.returncode == 0 or stop_on_crash:
                if proc.returncode != 0 and not res.findings:
                    res.error = f"worker exited {proc.returncode} (see {log_path})"
                break
            if "Test unit written to" not in proc.stderr:
                res.error = f"worker exited {proc.returncode} (see {log_path})"
                break
            res.restarts += 1
    res.seconds = time.monotonic() - t0
    if spec.findings.is_dir() and not any(spec.findings.iterdir()):
        spec.findings.rmdir()  # nothing found, ever: no empty folder left behind
    if not quiet:
        print(f"  {name}: {res.execs} execs, cov {res.cov}, {len(res.findings)} new findings",
              file=sys.stderr, flush=True)
    return res


def table(results: list[Result]) -> str:
    """The summary table printed at the end of a campaign."""
    head = ("harness", "seconds", "executions", "exec/s", "cov", "ft", "new corpus", "findings")
    rows = [head]
    for r in results:
        rate = r.execs / r.seconds if r.seconds else 0.0
        rows.append((r.harness, f"{r.seconds:.0f}", str(r.execs), f"{rate:.0f}", str(r.cov),
                     str(r.ft), str(r.new_units), str(len(r.findings)) + (" !" if r.error else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        for sig in r.findings:
            lines.append(f"  {r.harness}: {sig}")
        if r.error:
            lines.append(f"  {r.harness}: {r.error}")
    return "\n".join(lines)


def replay(name: str, paths: list[Path], minimize: bool) -> int:
    """Run inputs in-process; print each finding. With ``minimize``, shrink the first finding
    (dropping and zeroing chunks while the signature holds) and write it next to the input."""
    mod = _core.load(name)
    status = 0
    for path in paths:
        data = path.read_bytes()
        try:
            _core.execute(mod, data)
        except Exception as exc:
            status = 1
            sig = _core.signature(exc)
            print(f"{path}: FINDING {sig}\n{_core.describe(exc)}")
            if minimize:
                small = _minimize(mod, data, sig)
                out = path.with_name(path.name + ".min")
                out.write_bytes(small)
                print(f"minimized {len(data)} -> {len(small)} bytes: {out}")
        else:
            print(f"{path}: ok")
    return status


def _same(mod: object, data: bytes, sig: str) -> bool:
    try:
        _core.execute(mod, data)  # type: ignore[arg-type]
    except Exception as exc:
        return _core.signature(exc) == sig
    return False


def _minimize(mod: object, data: bytes, sig: str) -> bytes:
    chunk = max(1, len(data) // 2)
    while chunk >= 1:
        i, changed = 0, False
        while i < len(data):
            cand = data[:i] + data[i + chunk :]
            if _same(mod, cand, sig):
                data, changed = cand, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return data


def merge_campaign(name: str, *, campaign: Path | None = None) -> tuple[int, int]:
    """Minimise the campaign corpus of harness ``name`` (default ``campaign/<name>/``) in place
    with libFuzzer's ``-merge=1``: keep the smallest set of its inputs that reaches every
    coverage feature the seeds and the whole corpus reach, seeds left out (they stay in
    ``corpus/``). Returns (inputs before, after).

    libFuzzer merges in a child process that it starts by re-running ``argv[0]`` with its own
    flags, so the worker is started through a small generated script that puts the harness's
    arguments back in front of them."""
    src = campaign or _core.CAMPAIGN_DIR / name
    before = sorted(p for p in src.iterdir() if p.is_file())
    work = _core.WORK_DIR / "merge" / name
    out, findings = work / "out", work / "findings"
    for d in (out, findings):
        if d.is_dir():
            for p in d.rglob("*"):
                if p.is_file():
                    p.unlink()
        d.mkdir(parents=True, exist_ok=True)
    launcher = work / "worker"
    launcher.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(_core.ROOT)!r})\n"
        "from tests.fuzz._worker import main\n"
        f"main([{name!r}, {str(findings)!r}, '--', *sys.argv[1:]])\n")
    launcher.chmod(0o755)
    spec = _core.HARNESSES[name]
    proc = subprocess.run([str(launcher), "-merge=1", "-timeout=30", "-rss_limit_mb=3072",
                           f"-max_len={spec.max_len}", str(out), str(spec.corpus), str(src)],
                          cwd=_core.ROOT, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0 or "MERGE-OUTER: successful" not in proc.stderr:
        raise RuntimeError(f"libFuzzer's merge of {name} failed (exit {proc.returncode}):\n"
                           + "\n".join(proc.stderr.splitlines()[-15:]))
    seeds = {_core.input_id(p.read_bytes()) for p in spec.corpus.iterdir() if p.is_file()}
    merged = (p.read_bytes() for p in out.iterdir() if p.is_file())
    keep = {k: d for d in merged if (k := _core.input_id(d)) not in seeds}
    for p in before:
        if p.name not in keep:
            p.unlink()
    for k, data in keep.items():
        if not (src / k).exists():
            (src / k).write_bytes(data)
    return len(before), len(keep)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="wall time per harness")
    ap.add_argument("--harness", action="append", choices=sorted(_core.HARNESSES),
                    help="run only this harness (repeatable)")
    ap.add_argument("--fresh", action="store_true", help="start from the seeds only")
    ap.add_argument("--stop-on-crash", action="store_true",
                    help="stop a harness at its first finding (libFuzzer's own crash handling)")
    ap.add_argument("--seed", type=int, default=None, help="libFuzzer -seed")
    ap.add_argument("--list", action="store_true", help="list the harnesses and exit")
    ap.add_argument("--replay", nargs="+", type=Path, metavar="FILE",
                    help="run these inputs in-process through --harness")
    ap.add_argument("--minimize", action="store_true", help="with --replay: shrink a finding")
    ap.add_argument("--merge", action="store_true",
                    help="minimise the committed campaign corpus of each --harness (libFuzzer "
                         "-merge=1: the same coverage from fewer inputs) instead of fuzzing")
    args = ap.parse_args(argv)
    if args.list:
        for name, spec in _core.HARNESSES.items():
            print(f"{name:10} {spec.summary}")
        return 0
    if args.replay:
        if not args.harness or len(args.harness) != 1:
            ap.error("--replay needs exactly one --harness")
        return replay(args.harness[0], args.replay, args.minimize)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: .venv/bin/pip install -e '.[test]'", file=sys.stderr)
        return 2
    names = args.harness or list(_core.HARNESSES)
    if args.merge:
        for n in names:
            if not (_core.CAMPAIGN_DIR / n).is_dir():
                print(f"{n:10} no campaign corpus")
                continue
            before, after = merge_campaign(n)
            print(f"{n:10} campaign {before} -> {after} inputs (same coverage)")
        return 0
    results = [run_harness(n, args.seconds, fresh=args.fresh, stop_on_crash=args.stop_on_crash,
                           seed=args.seed) for n in names]
    print(table(results))
    return 1 if any(r.findings or r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
