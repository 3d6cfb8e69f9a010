"""``relaysec node``: run one station of the trial on this host's Pluto.

One host per station, each with a Pluto, runs ``relaysec node --role abs|ars|ams --config
lab.toml`` with the same file (``uri = "ip:…"``/``"usb:…"`` per station, or ``--uri`` here; with
several ARSs or AMSs, ``--name`` picks the station, e.g. ``--name AMS-2`` of a ``count = N``
group). The ABS is the timing master; the others lock to its beacons (docs/trial.md). Each node
prints its progress and a summary of what it saw, and exits 0 when its part of the scenario
completed with no corrupted or duplicated data delivered, 1 otherwise, 2 for a configuration or
command-line error (found before the radio is opened).

A node runs on a radio: every key, nonce and protocol random comes from the OS CSPRNG. A seed set
for it (--seed, ``seed`` in the file) is refused unless --insecure-deterministic-keys, whose
report then says "insecure: deterministic keys".
"""

from __future__ import annotations

import argparse
import json
import signal
import threading

from relaysec.cmd_trial import (
    add_common_options,
    check_outputs,
    check_radios,
    config_failed,
    merged_config,
    output_failed,
    printed_config,
    stderr_progress,
    warn_if_insecure,
)
from relaysec.config_schema import ConfigError
from relaysec.paths import make_output_dir, number_in
from relaysec.report import insecure_line

#: Longest ``--duration`` (a week of air).
MAX_DURATION_S = 7 * 86400.0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "node", help="run one station (abs/ars/ams) on this host's Pluto",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", required=True, choices=("abs", "ars", "ams"))
    p.add_argument("--name", help="station name when several have the role (e.g. ARS-2)")
    p.add_argument("--uri", help="this station's Pluto (overrides the config's uri)")
    p.add_argument("--duration", type=number_in(0.0, MAX_DURATION_S, unit="s"), default=300.0,
                   help="seconds to run at most (default 300); the AMS stops when done")
    add_common_options(p)
    p.set_defaults(func=run)


def pick_station(cfg: dict, role: str, name: str | None) -> dict:
    """The station this node runs: by name, else the only one with *role*."""
    cands = [s for s in cfg["stations"] if s["role"] == role and (name is None
                                                                   or s["name"] == name)]
    if not cands:
        raise ConfigError(f"no station with role {role!r}"
                          + (f" named {name!r}" if name else "") + " in the config")
    if len(cands) > 1:
        raise ConfigError(f"{len(cands)} stations have role {role!r} "
                          f"({', '.join(s['name'] for s in cands)}): choose one with --name")
    return cands[0]


def run(args: argparse.Namespace) -> int:
    try:
        cfg = merged_config(args, [("backend", "pluto")], node=True)
        st = pick_station(cfg, args.role, args.name)
        if args.uri is not None:
            st["uri"] = args.uri
        check_radios(cfg, [st])
        check_outputs(args)
    except ConfigError as exc:
        return config_failed("node", exc)
    if printed_config(args, cfg):
        return 0
    warn_if_insecure("node", cfg, node=True)
    progress = stderr_progress(args)
    try:
        if args.record is not None:
            make_output_dir("--record", args.record)
    except ConfigError as exc:
        return config_failed("node", exc)
    from relaysec.standalone import NodeRunner

    try:
        runner = NodeRunner(cfg, st["name"], progress=progress, record_dir=args.record)
    except ConfigError as exc:
        return config_failed("node", exc)
    # SIGTERM (a lab script or test harness stopping the node) ends it as cleanly as Ctrl-C:
    # after the current frame, with its report.
    main_thread = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, lambda *_: runner.stop()) if main_thread else None
    try:
        report = runner.run(args.duration)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old)
    verdict = "PASS" if report["ok"] else f"FAIL — {report['reason']}"
    print(f"relaysec node {st['name']} ({st['role']}): {verdict}")
    warning = insecure_line(report)
    if warning:
        print(f"  {warning}")
    for name, f in report.get("flows", {}).items():
        what = f" ({f['ams']} {f['label']})" if f.get("ams") else ""
        print(f"  {name}{what}: sent {f['sent']} B, delivered here {f['delivered']} B, "
              f"corrupted {f['corrupted']} B")
    per_ams = report.get("per_ams", {})
    if len(per_ams) > 1:
        for name, row in per_ams.items():
            print(f"  {name}: " + ("ok" if row["ok"] else f"FAIL — {row['reason']}"))
    for name, link in report.get("links", {}).items():
        print(f"  {name}: PER {link['per']:.3f}, SNR {link['snr_db']:.1f} dB")
    for name, link in report.get("links_tx_only", {}).items():
        print(f"  {name}: sent {link['bursts_tx']} bursts (PER is measured at the receiver)")
    if report.get("security", {}).get("rejections"):
        print(f"  security rejections: {report['security']['rejections']}")
    status = 0 if report["ok"] else 1
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(report, fh, indent=2, default=str)
        except OSError as exc:
            status = output_failed("node", "--json", args.json, exc)
    return status
