"""``relaysec trial``: run the relay-security scenario end to end and report pass/fail.

With no arguments: the default scenario (relaysec/data/default.toml) on the loopback simulator.
Exit status 0 only when every phase passed and no application byte arrived corrupted; 1 when the
trial ran and failed; 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from relaysec.config import ConfigError, load_config, parse_override, redacted, to_toml


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``trial`` and ``node``."""
    p.add_argument("--config", metavar="FILE.toml", help="scenario/topology file (TOML); "
                   "keys left out keep their defaults")
    p.add_argument("--seed", type=int, help="seed of every random choice (default from config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set phy.mcs=QPSK-1/2 (repeatable)")
    p.add_argument("--print-config", action="store_true",
                   help="print the merged configuration as TOML and exit")
    p.add_argument("--json", metavar="PATH", help="write the JSON report here")
    p.add_argument("--record", metavar="DIR", help="record every radio's received IQ as SigMF")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def merged_config(args: argparse.Namespace, extra: list[tuple[str, Any]] = ()) -> dict[str, Any]:
    """Defaults ← --config file ← --set overrides ← dedicated flags."""
    overrides = [parse_override(s) for s in args.overrides]
    if args.seed is not None:
        overrides.append(("seed", args.seed))
    overrides.extend(extra)
    return load_config(args.config, overrides)


def printed_config(args: argparse.Namespace, cfg: dict[str, Any]) -> bool:
    """``--print-config``: write the merged config (secrets redacted) and say so."""
    if args.print_config:
        sys.stdout.write(to_toml(redacted(cfg)))
    return bool(args.print_config)


def stderr_progress(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines to stderr unless ``--quiet``."""

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    return progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trial", help="run the relay security scenario (default: loopback simulator)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    p.add_argument("--backend", choices=("loopback", "pluto"),
                   help="loopback simulator or ADALM-Pluto radios (default from config)")
    p.add_argument("--uris", nargs="+", metavar="URI",
                   help="Pluto URIs (ip:…/usb:…), one per station in config order")
    p.add_argument("--mode", choices=("distributed", "centralized"),
                   help="security mode (default from config)")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots (constellations, SNR/PER)")
    p.add_argument("--no-msc", action="store_true", help="omit the message sequence chart")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extra: list[tuple[str, Any]] = []
    if args.backend:
        extra.append(("backend", args.backend))
    if args.mode:
        extra.append(("security.mode", args.mode))
    try:
        cfg = merged_config(args, extra)
        if args.uris:
            if len(args.uris) != len(cfg["stations"]):
                raise ConfigError(f"--uris needs one URI per station ({len(cfg['stations'])}: "
                                  f"{', '.join(s['name'] for s in cfg['stations'])})")
            for st, uri in zip(cfg["stations"], args.uris, strict=True):
                st["uri"] = uri
    except ConfigError as exc:
        print(f"relaysec trial: config error: {exc}", file=sys.stderr)
        return 2
    if printed_config(args, cfg):
        return 0
    progress = stderr_progress(args)
    from relaysec.trial import run_trial

    report, trace = run_trial(cfg, progress=progress, record_dir=args.record)
    from relaysec.report import write_json, write_plots
    from relaysec.trial import render

    print(render(report, msc=not args.no_msc))
    if args.json:
        write_json(report, args.json)
        progress(f"JSON report: {args.json}")
    if args.plots:
        files = write_plots(report, trace, args.plots)
        progress(f"plots: {', '.join(str(f) for f in files)}")
    return 0 if report["ok"] else 1
