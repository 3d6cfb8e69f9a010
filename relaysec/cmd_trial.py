"""``relaysec trial``: run the relay-security scenario end to end and report pass/fail.

With no arguments: the default scenario (relaysec/data/default.toml) on the loopback simulator.
Exit status 0 only when every phase passed and no application byte arrived corrupted; 1 when the
trial ran and failed; 2 for a configuration or command-line error (a bad value, an output path that
cannot be written), found before the trial starts.

Over radios (--backend pluto) every key, nonce and protocol random comes from the OS CSPRNG; a
seed given for such a run is refused unless --insecure-deterministic-keys, whose reports then say
"insecure: deterministic keys". The loopback simulator is always seeded (same seed, same trace).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from relaysec.config import (
    check_air_speed,
    check_key_randomness,
    deterministic_keys,
    load_config_sources,
    parse_override,
    redacted,
    shared_host_stream,
    to_toml,
)
from relaysec.config_schema import ConfigError, OptionError, check_uri
from relaysec.paths import check_output_dir, check_output_file, make_output_dir


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``trial`` and ``node``."""
    p.add_argument("--config", metavar="FILE.toml", help="scenario/topology file (TOML, UTF-8); "
                   "keys left out keep their defaults")
    p.add_argument("--seed", type=int, help="seed of the simulator's random choices (default "
                   "from config); over radios refused unless --insecure-deterministic-keys")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set phy.mcs=QPSK-1/2 (repeatable)")
    p.add_argument("--insecure-deterministic-keys", action="store_true",
                   help="over radios, draw every key, nonce and protocol random from the seed "
                   "instead of the OS CSPRNG (reproducible, insecure: for debugging only; every "
                   "report says so). The loopback simulator is always seeded")
    p.add_argument("--print-config", action="store_true",
                   help="print the merged configuration as TOML and exit")
    p.add_argument("--json", metavar="PATH",
                   help="write the JSON report here (its directory must exist)")
    p.add_argument("--record", metavar="DIR", help="record every radio's received IQ as SigMF "
                   "into DIR (created if missing; its parent must exist)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def merged_config(args: argparse.Namespace, extra: Sequence[tuple[str, Any]] = (), *,
                  node: bool = False) -> dict[str, Any]:
    """Defaults ← --config file ← --set overrides ← dedicated flags, validated; over radios
    from this one process (not *node*) the shared-host TX stream for the keys left at their
    defaults (:func:`relaysec.config.shared_host_stream`); then the checks
    that depend on how the config runs: a seeded run over radios (*node*, or ``backend =
    "pluto"``) needs --insecure-deterministic-keys, and a data packet must fit the TDD zones of
    the schedule in use. Raises :class:`ConfigError`."""
    overrides = [parse_override(s) for s in args.overrides]
    if args.seed is not None:
        overrides.append(("seed", args.seed))
    if args.insecure_deterministic_keys:
        overrides.append(("security.insecure_deterministic_keys", True))
    overrides.extend(extra)
    cfg, given = load_config_sources(args.config, overrides)
    if not node:  # one process opens every station's radio
        stream = shared_host_stream(cfg, given)
        if stream and not getattr(args, "quiet", False) and not getattr(args, "print_config",
                                                                         False):
            print("radios: one process drives all "
                  f"{len(cfg['stations'])}: the shared-host TX stream "
                  f"({', '.join(f'{k}={v}' for k, v in stream.items())}; "
                  "docs/radios.md)", file=sys.stderr)
    check_key_randomness(cfg, radios=runs_over_radios(cfg, node=node),
                         seed_given="seed" in given)
    from relaysec.trial import check_fits

    check_fits(cfg, wall=node or cfg["backend"] == "pluto" or cfg["schedule"]["mode"] == "wall")
    return cfg


def runs_over_radios(cfg: dict[str, Any], *, node: bool = False) -> bool:
    """Whether the run uses real or emulated radios (``relaysec node``, ``backend = "pluto"``)."""
    return node or cfg["backend"] == "pluto"


def check_radios(cfg: dict[str, Any], stations: Sequence[dict[str, Any]]) -> None:
    """The radios this process opens (*stations*), after ``--uris``/``--uri`` replaced the
    file's URIs: each URI well formed, and a slowed air only with emulated radios."""
    for st in stations:
        check_uri(f"the uri of station {st['name']}", st.get("uri", ""))
    check_air_speed(cfg, stations)


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path of the command line, before any work starts (:mod:`relaysec.paths`)."""
    if getattr(args, "json", None) is not None:
        check_output_file("--json", args.json)
    for option in ("record", "plots"):
        value = getattr(args, option, None)
        if value is not None:
            check_output_dir(f"--{option}", value)


def config_failed(command: str, exc: ConfigError) -> int:
    """Print a config or command-line error (no traceback) and return exit status 2."""
    kind = "error" if isinstance(exc, OptionError) else "config error"
    print(f"relaysec {command}: {kind}: {exc}", file=sys.stderr)
    return 2


def warn_if_insecure(command: str, cfg: dict[str, Any], *, node: bool = False) -> None:
    """On stderr (even with --quiet): this run's keys over radios are drawn from the seed."""
    radios = runs_over_radios(cfg, node=node)
    if radios and deterministic_keys(cfg, radios=radios):
        print(f"relaysec {command}: warning: insecure: deterministic keys: every key, nonce and "
              f"protocol random is drawn from seed {cfg['seed']} (--insecure-deterministic-keys)",
              file=sys.stderr)


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
    p.add_argument("--plots", metavar="DIR", help="write PNG plots (constellations, SNR/PER) "
                   "into DIR (created if missing; its parent must exist)")
    p.add_argument("--no-msc", action="store_true", help="omit the message sequence chart")
    p.add_argument("--traffic", choices=("count", "saturate"),
                   help="traffic phases: a count of packets per flow, or full buffer both ways "
                   "for every AMS (goodput, efficiency and fairness in the report); default "
                   "from config (traffic.mode)")
    p.add_argument("--soak", type=_positive_seconds, metavar="SECONDS",
                   help="after the phases, a soak of SECONDS simulated seconds: traffic both ways, "
                   "TEK refreshes, re-authentications (AK lifetime 30 s unless set), handovers "
                   "back and forth, random faults; role state and memory sampled (loopback "
                   "only; docs/trial.md)")
    p.add_argument("--aaa", choices=("freeradius", "hostapd"),
                   help="start a private AAA server for the run and authenticate every station "
                   "through it over RADIUS: freeradius (EAP-TLS, a fresh lab PKI) or hostapd "
                   "(EAP-PSK); docs/aaa.md")
    p.set_defaults(func=run)


#: AK lifetime of a soak unless --set gives one: re-authentication every 27 s.
SOAK_AK_LIFETIME_S = 30.0


def _positive_seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < v <= 86400:
        raise argparse.ArgumentTypeError("must lie in (0, 86400] seconds")
    return v


def run(args: argparse.Namespace) -> int:
    extra: list[tuple[str, Any]] = []
    soak = getattr(args, "soak", None)
    if soak and not any(o.split("=", 1)[0].strip() == "security.ak_lifetime_s"
                        for o in args.overrides):
        extra.append(("security.ak_lifetime_s", SOAK_AK_LIFETIME_S))
    if args.backend:
        extra.append(("backend", args.backend))
    if args.mode:
        extra.append(("security.mode", args.mode))
    if args.traffic:
        extra.append(("traffic.mode", args.traffic))
    try:
        cfg = merged_config(args, extra)
        if args.uris:
            if len(args.uris) != len(cfg["stations"]):
                raise ConfigError(f"--uris needs one URI per station ({len(cfg['stations'])}: "
                                  f"{', '.join(s['name'] for s in cfg['stations'])})")
            for st, uri in zip(cfg["stations"], args.uris, strict=True):
                st["uri"] = uri
        if cfg["backend"] == "pluto":
            check_radios(cfg, cfg["stations"])
            if soak:
                raise ConfigError("--soak runs on the simulated air only (backend loopback)")
        check_outputs(args)
    except ConfigError as exc:
        return config_failed("trial", exc)
    if printed_config(args, cfg):
        return 0
    from relaysec.warmstart import start_child

    start_child()   # a cold checkout: compile half the kernels in a second process from now
    warn_if_insecure("trial", cfg)
    progress = stderr_progress(args)
    try:
        if args.record is not None:
            make_output_dir("--record", args.record)
    except ConfigError as exc:
        return config_failed("trial", exc)
    from relaysec.trial import run_trial

    if getattr(args, "aaa", None):
        from relaysec.aaa_lab import AaaLabError, private_server

        try:
            with private_server(cfg, args.aaa) as cfg:
                progress(f"AAA: a private {args.aaa} on {cfg['aaa']['server']}")
                report, trace = run_trial(cfg, progress=progress, record_dir=args.record)
        except AaaLabError as exc:
            print(f"relaysec trial: error: --aaa {args.aaa}: {exc}", file=sys.stderr)
            return 2
    else:
        report, trace = run_trial(cfg, progress=progress, record_dir=args.record, soak_s=soak)
    from relaysec.aaa import report_section, summary_line

    report["aaa"] = report_section(cfg)
    from relaysec.report import write_json, write_plots
    from relaysec.trial import render

    print(render(report, msc=not args.no_msc and not soak))   # a soak's chart is endless
    print(summary_line(report["aaa"]))
    status = 0 if report["ok"] else 1
    if args.json:
        try:
            write_json(report, args.json)
            progress(f"JSON report: {args.json}")
        except OSError as exc:
            status = output_failed("trial", "--json", args.json, exc)
    if args.plots:
        try:
            files = write_plots(report, trace, args.plots)
            progress(f"plots: {', '.join(str(f) for f in files)}")
        except OSError as exc:
            status = output_failed("trial", "--plots", args.plots, exc)
    return status


def output_failed(command: str, option: str, path: str | Path, exc: OSError) -> int:
    """An output that passed the start-up check could not be written after all (removed or
    made read-only meanwhile, disk full): say so and return exit status 2."""
    print(f"relaysec {command}: error: {option} {str(path)!r} could not be written: "
          f"{exc.strerror or exc}", file=sys.stderr)
    return 2
