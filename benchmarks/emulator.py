"""Pluto emulator throughput and real-time cost.

    python -m benchmarks.emulator [--json PATH] [--seed N] [--seconds S] [--radios N]
                                  [--rate SPS] [--trial [--speeds 1 0.25]]

1. **Unpaced streaming** (``LocalLoop``): ``rx()`` throughput in MS/s for 64 k and 1 M sample
   buffers, through the full client stack (pyadi-iio -> pylibiio -> libiio C -> TCP -> emulator),
   against the in-run baseline of a raw-socket client issuing the same ``READBUF`` requests (the
   emulator alone, no libiio/pyadi).
2. **Real time on one air**: ``--radios`` emulated Plutos on a wall-clock medium at ``--rate``,
   each read continuously by its own thread through pyadi-iio for ``--seconds``: delivered rate
   per radio (should equal ``--rate``), overflows, and the CPU cores the whole process used
   (server + medium + clients); the baseline is the sample rate itself (real time).
3. **The default trial over emulated Plutos** (``--trial``, issue 16): ``relaysec emulate
   --radios 4 --speed S`` in its own process and the default trial with ``--backend pluto``
   over it (streaming timeline, ``ota_frame_ms`` 20), once per ``--speeds`` value: verdict,
   goodput per direction in each traffic phase, handover interruption, beacons lost, stream
   breaks, and the load average around the run; the slowest speed is the baseline (the same
   design with the host given more slack).

4. **Streaming I/O alone** (``--stream``, issue 16): ``relaysec emulate --radios 4`` in its own
   process and 4 ``hw.pluto.PlutoRadio`` streaming both ways (``start_stream``: TX blocks back to
   back, RX read continuously, no demodulation) for ``--seconds``, once with the streams in
   threads of the node process (the baseline) and once with each radio's streams in a worker
   process of its own (``rx_worker``): TX pushes a second (real time: ``sample_rate /
   tx_block_size``), RX MS/s per radio, underflows and RX breaks, and the CPU cores of the node
   process, the workers and the emulator, with the load average.

Needs libiio (Debian libiio0) and pyadi-iio; the raw-socket baseline runs without them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import threading
import time
from typing import Any

try:
    from benchmarks._machine import format_machine, machine_info
except ImportError:  # pragma: no cover
    def machine_info() -> dict[str, object]:
        return {}

    def format_machine(info: dict[str, object]) -> str:
        return ""

from hw.emu import EmulatorConfig, LocalLoop, PlutoServer, start_emulators
from relaysec.phases import HANDOVER_FIGURES


def _raw_readbuf(srv: PlutoServer, n: int, seconds: float) -> float:
    """MS/s of READBUF through a raw socket (the emulator's own cost)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        f = s.makefile("rb")
        s.sendall(b"WRITE iio:device0 OUTPUT altvoltage1 frequency 11\r\n2400000000\0")
        f.readline()
        s.sendall(f"OPEN iio:device3 {n} 00000003\r\n".encode())
        assert int(f.readline()) == 0
        total, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            s.sendall(f"READBUF iio:device3 {4 * n}\r\n".encode())
            assert int(f.readline()) == 4 * n
            f.readline()
            f.read(4 * n)
            total += n
        rate = total / (time.perf_counter() - t0) / 1e6
        s.sendall(b"CLOSE iio:device3\r\n")
        f.readline()
    return rate


def _pyadi_rx(srv: PlutoServer, n: int, seconds: float) -> float | None:
    try:
        import adi
    except Exception:
        return None
    sdr = adi.Pluto(srv.uri)
    try:
        sdr.tx_lo = sdr.rx_lo
        sdr.rx_buffer_size = n
        sdr.rx()
        total, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            sdr.rx()
            total += n
        return total / (time.perf_counter() - t0) / 1e6
    finally:
        sdr.rx_destroy_buffer()
        del sdr


def unpaced(seconds: float) -> list[dict[str, Any]]:
    """Throughput rows for 64 k and 1 M sample buffers."""
    rows = []
    with PlutoServer(data=LocalLoop(seed=1)) as srv:
        for n in (1 << 16, 1 << 20):
            rows.append({"buffer": n, "raw_socket_msps": _raw_readbuf(srv, n, seconds),
                         "pyadi_msps": _pyadi_rx(srv, n, seconds)})
    return rows


def realtime(radios: int, rate: int, seconds: float, seed: int) -> dict[str, Any]:
    """Several radios read continuously on one wall-clock air."""
    import adi

    cfg = EmulatorConfig(sample_rate=rate, clock="wall", seed=seed)
    with start_emulators(radios, cfg) as cluster:
        sdrs = [adi.Pluto(u) for u in cluster.uris]
        for s in sdrs:
            s.rx_buffer_size = 32768
            s._rxadc.set_kernel_buffers_count(8)
            s.rx()
        counts = [0] * radios
        stop = time.monotonic() + seconds

        def run(i: int) -> None:
            while time.monotonic() < stop:
                sdrs[i].rx()
                counts[i] += 32768

        c0, t0 = os.times(), time.monotonic()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(radios)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c1, elapsed = os.times(), time.monotonic() - t0
        result = {
            "radios": radios, "rate": rate, "seconds": elapsed,
            "delivered_msps": [c / elapsed / 1e6 for c in counts],
            "overflows": [s.data.radio.stats.overflows for s in cluster.servers],
            "cpu_cores": (c1.user + c1.system - c0.user - c0.system) / elapsed,
        }
        for s in sdrs:
            s.rx_destroy_buffer()
        sdrs.clear()
    return result


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc), 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def stream_run(seconds: float, *, worker: bool, radios: int = 4, tx_block: int = 11200,
               tx_kernel_buffers: int = 4) -> dict[str, Any]:
    """*radios* PlutoRadios streaming both ways on emulated Plutos (no demodulation): the
    streaming I/O's own cost and whether it keeps up with the air."""
    import subprocess
    import sys

    from hw.pluto import PlutoRadio

    proc = subprocess.Popen([sys.executable, "-m", "relaysec", "emulate", "--radios",
                             str(radios)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    rs: list[PlutoRadio] = []
    try:
        assert proc.stdout is not None
        uris = [proc.stdout.readline().strip() for _ in range(radios)]
        for u in uris:
            rs.append(PlutoRadio(u, rx_buffer_size=32768, kernel_buffers=8,
                                 tx_block_size=tx_block, tx_kernel_buffers=tx_kernel_buffers,
                                 rx_worker=worker))
        for r in rs:
            r.start_stream()
        for r in rs:  # skip what queued up while the others started (as relaysec.ota does)
            r.catch_up()
        counts = [0] * radios
        stop = time.monotonic() + seconds

        def read(i: int) -> None:
            while time.monotonic() < stop:
                counts[i] += rs[i].receive(8400).size

        def tl(r: PlutoRadio) -> dict[str, Any]:
            return r.timeline_report()

        workers = [r._rx_worker.proc.pid for r in rs if r._rx_worker is not None]
        before = [tl(r) for r in rs]
        load0 = os.getloadavg()
        c0, t0 = os.times(), time.monotonic()
        w0 = sum(_proc_cpu_s(p) for p in workers)
        e0 = _proc_cpu_s(proc.pid)
        threads = [threading.Thread(target=read, args=(i,)) for i in range(radios)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c1, el = os.times(), time.monotonic() - t0
        w1 = sum(_proc_cpu_s(p) for p in workers)
        e1 = _proc_cpu_s(proc.pid)
        after = [tl(r) for r in rs]
        fs = rs[0].sample_rate
        return {
            "worker": worker, "radios": radios, "seconds": el, "sample_rate": fs,
            "tx_block_size": tx_block, "tx_kernel_buffers": tx_kernel_buffers,
            "pushes_needed_per_s": fs / tx_block,
            "pushes_per_s": [(int(a["blocks"] or 0) - int(b["blocks"] or 0)) / el
                             for a, b in zip(after, before, strict=True)],
            "rx_msps": [c / el / 1e6 for c in counts],
            "underflows": [int(a["underflows"] or 0) - int(b["underflows"] or 0)
                           for a, b in zip(after, before, strict=True)],
            "rx_breaks": [int(a["rx_breaks"] or 0) - int(b["rx_breaks"] or 0)
                          for a, b in zip(after, before, strict=True)],
            "node_cores": (c1.user + c1.system - c0.user - c0.system) / el,
            "worker_cores": (w1 - w0) / el, "emulator_cores": (e1 - e0) / el,
            "loadavg_before": load0, "loadavg_after": os.getloadavg(),
        }
    finally:
        for r in rs:
            r.close()
        proc.terminate()
        proc.wait(timeout=20)


def print_stream(rows: list[dict[str, Any]]) -> None:
    """The streaming runs as a table (the in-process threads first: the baseline)."""
    r0 = rows[0]
    print(f"\nstreaming I/O, {r0['radios']} emulated Plutos both ways at "
          f"{r0['sample_rate'] / 1e6:g} MS/s, {r0['tx_block_size']}-sample TX blocks x "
          f"{r0['tx_kernel_buffers']} (needs {r0['pushes_needed_per_s']:.0f} pushes/s), "
          f"{r0['seconds']:.0f} s each")
    print(f"  {'streams in':<22} {'pushes/s':>17} {'RX MS/s':>19} {'underflows':>12} "
          f"{'RX breaks':>10} {'node':>6} {'workers':>8} {'emulator':>9}  load")
    for r in rows:
        where = "a process per radio" if r["worker"] else "node threads (base)"
        push = "/".join(f"{x:.0f}" for x in r["pushes_per_s"])
        rx = "/".join(f"{x:.2f}" for x in r["rx_msps"])
        print(f"  {where:<22} {push:>17} {rx:>19} {sum(r['underflows']):>12} "
              f"{sum(r['rx_breaks']):>10} {r['node_cores']:>6.2f} {r['worker_cores']:>8.2f} "
              f"{r['emulator_cores']:>9.2f}  {r['loadavg_before'][0]:.1f}->"
              f"{r['loadavg_after'][0]:.1f}")


_RATE = re.compile(r"(\S+->\S+) (\d+)/(\d+) \(([\d.]+) kb/s\)")


def trial_run(speed: float, *, sets: list[str], emulate: list[str] | None = None,
              worker: bool = True, config: str | None = None) -> dict[str, Any]:
    """The default trial over 4 emulated Plutos (``relaysec emulate`` in a subprocess) at air
    *speed*; returns the Done-when figures of issue 16 and what the host was doing."""
    import subprocess
    import sys

    from relaysec.config import (
        load_config_sources,
        parse_override,
        shared_host_stream,
    )
    from relaysec.trial import Trial

    proc = subprocess.Popen([sys.executable, "-m", "relaysec", "emulate", "--radios", "4",
                             "--speed", repr(speed), *(emulate or [])], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        uris = [proc.stdout.readline().strip() for _ in range(4)]
        # the defaults, or a scenario file over them, then --set; as `relaysec trial`, the
        # shared-host TX stream for the keys neither set
        cfg, given = load_config_sources(config, [parse_override(item) for item in sets])
        cfg["backend"] = "pluto"
        cfg["schedule"]["ota_speed"] = speed
        cfg["schedule"]["emulated"] = True
        for st, uri in zip(cfg["stations"], uris, strict=True):
            st["uri"] = uri
        shared_host_stream(cfg, given)
        cfg["pluto"]["rx_worker"] = worker
        load0 = os.getloadavg()
        c0, t0 = os.times(), time.monotonic()
        e0 = _proc_cpu_s(proc.pid)
        trial = Trial(cfg)
        backlog: dict[str, float] = {}
        done = threading.Event()

        def watch() -> None:  # how far the node's processing falls behind its radios
            while not done.wait(0.5):
                net = getattr(trial.cell, "net", None)
                for name, st in (getattr(net, "states", None) or {}).items():
                    behind = st.queue.qsize() * net.chunk / net.schedule.sample_rate
                    backlog[name] = max(backlog.get(name, 0.0), behind)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            report, _ = trial.run()
        finally:
            done.set()
            watcher.join()
        c1, wall = os.times(), time.monotonic() - t0
        e1 = _proc_cpu_s(proc.pid)
        sync = trial.cell.net.sync_status() if trial.cell is not None else {}
        loop = trial.cell.net.loop_status() if trial.cell is not None else {}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    phases = {}
    for ph in report["phases"]:
        rates = {m[1]: float(m[4]) for m in _RATE.finditer(ph.get("detail") or "")}
        phases[ph["name"]] = {"ok": ph["ok"], "kbps": rates}
    lost = [e.get("beacons_lost", 0) for e in sync.values() if not e.get("master")]
    due = [e.get("beacons_expected", 0) for e in sync.values() if not e.get("master")]
    breaks = {n: {k: (e.get("timeline") or {}).get(k) for k in (
        "underflows", "rx_breaks", "late", "calibrations", "gap_max_s", "push_max_s")}
              for n, e in sync.items()}
    return {"speed": speed, "emulate": emulate or [], "ok": report["ok"],
            "reason": report["reason"],
            "ota_frame_ms": cfg["schedule"]["ota_frame_ms"], "phases": phases,
            "handover_interruption_s": (report.get("handover") or {}).get("interruption_s"),
            "handover": {k: v for k, v in (report.get("handover") or {}).items()
                         if k.startswith(HANDOVER_FIGURES)},
            "beacons_lost": sum(lost), "beacons_due": sum(due),
            "beacons_lost_pct": 100.0 * sum(lost) / max(1, sum(due)), "timeline": breaks,
            "node_backlog_max_s": backlog, "rx_worker": worker,
            "demodulated": {n: e.get("demodulated") for n, e in sync.items()},
            "ul_grants": {n: e["ul_grants"] for n, e in sync.items() if e.get("ul_grants")},
            "main_loop": loop,
            "sync": {n: {k: e.get(k) for k in ("locked", "beacons", "missed_zones", "relocks",
                                                "beacons_lost")} for n, e in sync.items()},
            "links": {n: {k: lk.get(k) for k in ("bursts_tx", "bursts_rx", "per")}
                      for n, lk in (report.get("links") or {}).items()},
            "wall_s": wall, "cpu_cores_trial": (c1.user + c1.system - c0.user - c0.system) / wall,
            # the RX/TX workers are the trial's children, ended and reaped when it closes
            "cpu_cores_workers": (c1.children_user + c1.children_system - c0.children_user
                                  - c0.children_system) / wall,
            "cpu_cores_emulator": (e1 - e0) / wall,
            "loadavg_before": load0, "loadavg_after": os.getloadavg()}


def print_trial(r: dict[str, Any]) -> None:
    """One speed's figures as a table."""
    extra = f" (relaysec emulate {' '.join(r['emulate'])})" if r["emulate"] else ""
    print(f"\ndefault trial, 4 emulated Plutos{extra}, air speed {r['speed']:g}, ota_frame_ms "
          f"{r['ota_frame_ms']:g}: {'PASS' if r['ok'] else 'FAIL'}"
          + ("" if r["ok"] else f" ({r['reason']})"))
    for name, ph in r["phases"].items():
        if ph["kbps"]:
            rates = ", ".join(f"{k} {v:.0f} kb/s" for k, v in ph["kbps"].items())
            print(f"  {name:<12} {'ok' if ph['ok'] else 'FAIL':<5} {rates}")
    ho, switch = r["handover_interruption_s"], r["handover"].get("switch_s")
    print(f"  handover interruption {'n/a' if ho is None else f'{ho * 1e3:.0f} ms'} (switch to "
          f"the target {'n/a' if switch is None else f'{switch * 1e3:.0f} ms'}); beacons "
          f"lost {r['beacons_lost']}/{r['beacons_due']} ({r['beacons_lost_pct']:.1f} %)")
    print("  stream breaks: " + "; ".join(
        f"{n} {t['underflows']} underflows, {t['rx_breaks']} rx, {t['late']} late, longest "
        f"host gap {1e3 * (t['gap_max_s'] or 0):.0f} ms"
        for n, t in r["timeline"].items()))
    missed = {n: e.get("missed_zones") for n, e in r.get("sync", {}).items()}
    if any(missed.values()):
        # the ABS's own zone is every other node's beacon: each one it misses is a beacon
        # lost at each of them
        print("  zone bursts not built before their TX horizon (skipped, never sent late; "
              "raise schedule.ota_build_ahead_ms, the ABS's ota_abs_build_ahead_ms, if "
              "many): " + ", ".join(f"{n} {v}" for n, v in missed.items() if v is not None))
    if r.get("ul_grants"):
        print("  UL grants decoded after their slot was decided (raise schedule.ota_grant_delay "
              "if many lost): " + ", ".join(
                  f"{n} {g['late']} of {g['heard']} ({g.get('filled', 0)} still sent in: "
                  "their slot had not gone by)" for n, g in r["ul_grants"].items()))
    loop = r.get("main_loop") or {}
    if loop.get("busy") is not None:
        p = loop.get("pass_ms") or {}
        cpu = (f" (its thread on a core {100 * loop['cpu']:.0f} %, waiting for one "
               f"{100 * (loop.get('waited_for_core') or 0):.0f} %)"
               if loop.get("cpu") is not None else "")
        print(f"  main loop (serves every node) busy {100 * loop['busy']:.0f} % of the time{cpu}; "
              f"{loop['passes']} demodulation passes"
              + (f", median {p['median']:.1f} ms, 90th percentile {p['p90']:.1f} ms, longest "
                 f"{p['max']:.1f} ms" if p else ""))
    if r.get("node_backlog_max_s"):
        print("  node processing behind its radios, at most: " + ", ".join(
            f"{n} {v:.2f} s" for n, v in r["node_backlog_max_s"].items()))
    if r.get("demodulated"):
        print("  share of each RX stream demodulated (its zones only, once in step): " + ", ".join(
            f"{n} {v:.2f}" for n, v in r["demodulated"].items() if v is not None))
    la, lb = r["loadavg_before"], r["loadavg_after"]
    print(f"  trial process {r['cpu_cores_trial']:.2f} cores (streams in "
          f"{'a process per radio' if r.get('rx_worker', True) else 'node threads'}); load "
          f"average {la[0]:.1f} before, {lb[0]:.1f} after; {r['wall_s']:.0f} s")
    if "cpu_cores_emulator" in r:
        parts = {"trial": r["cpu_cores_trial"], "workers": r["cpu_cores_workers"],
                 "emulator": r["cpu_cores_emulator"]}
        per_air = {k: v / r["speed"] for k, v in parts.items()}
        print("  CPU per second of air (cores at full speed): " + ", ".join(
            f"{k} {v:.2f}" for k, v in per_air.items())
            + f"; all {sum(per_air.values()):.2f} of the host's {os.cpu_count()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--radios", type=int, default=3)
    ap.add_argument("--rate", type=int, default=2_800_000)
    ap.add_argument("--trial", action="store_true",
                    help="run the default trial over 4 emulated Plutos instead (issue 16)")
    ap.add_argument("--speeds", type=float, nargs="+", default=[1.0, 0.25],
                    help="air speeds for --trial (the slowest is the baseline)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="--trial: config overrides, e.g. pluto.tx_kernel_buffers=6")
    ap.add_argument("--config", metavar="FILE.toml",
                    help="--trial: a scenario file over the defaults, e.g. "
                         "examples/shared-host.toml")
    ap.add_argument("--emulate", default="", metavar="ARGS",
                    help="--trial: extra `relaysec emulate` flags, e.g. '--usb-mb-per-s 0'")
    ap.add_argument("--no-worker", action="store_true",
                    help="--trial: each radio's streams in threads of the node process "
                         "(pluto.rx_worker = false) instead of a process per radio")
    ap.add_argument("--stream", action="store_true",
                    help="measure the streaming I/O alone (4 radios, no demodulation), "
                         "threads vs a process per radio")
    ap.add_argument("--tx-block", type=int, default=11200, help="--stream: TX block samples")
    ap.add_argument("--tx-kernel-buffers", type=int, default=4,
                    help="--stream: TX kernel blocks")
    args = ap.parse_args(argv)
    info = machine_info()
    print(format_machine(info))
    if args.stream:
        rows = [stream_run(args.seconds, worker=w, tx_block=args.tx_block,
                           tx_kernel_buffers=args.tx_kernel_buffers) for w in (False, True)]
        print_stream(rows)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"machine": info, "stream": rows}, f, indent=2, default=str)
        return 0
    if args.trial:
        runs = [trial_run(s, sets=args.sets, emulate=args.emulate.split(),
                          worker=not args.no_worker, config=args.config) for s in args.speeds]
        for r in runs:
            print_trial(r)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"machine": info, "trial": runs, "sets": args.sets,
                           "config": args.config}, f, indent=2, default=str)
        return 0
    rows = unpaced(args.seconds)
    print(f"\nunpaced rx(), LocalLoop        {'raw socket':>12} {'pyadi-iio':>12}")
    for r in rows:
        py = "n/a" if r["pyadi_msps"] is None else f"{r['pyadi_msps']:.2f} MS/s"
        print(f"  buffer {r['buffer']:>8} samples   {r['raw_socket_msps']:>7.2f} MS/s {py:>12}")
    rt = None
    if rows[0]["pyadi_msps"] is not None:
        rt = realtime(args.radios, args.rate, args.seconds, args.seed)
        print(f"\n{rt['radios']} radios on one wall-clock air at {rt['rate'] / 1e6:g} MS/s "
              f"(baseline: real time = {rt['rate'] / 1e6:g} MS/s each)")
        print("  delivered MS/s: " + ", ".join(f"{x:.3f}" for x in rt["delivered_msps"]))
        print(f"  overflows: {rt['overflows']}   CPU cores used: {rt['cpu_cores']:.2f}")
    else:
        print("\n(libiio/pyadi-iio unavailable: real-time part skipped)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "seed": args.seed, "unpaced": rows, "realtime": rt},
                      f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
