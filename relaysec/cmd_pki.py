"""``relaysec pki init DIR``: a lab PKI for EAP-TLS -- a CA, the AAA server's certificate and one
device certificate per configured AMS/ARS (``relaysec.pki``), so a lab can start from nothing.

It prints, per station, the ``[[stations]]`` keys that use them (``eap = "tls"``, ``cert``,
``key``, ``ca``, ``server_name``). Private keys are written mode 0600 and never printed.
"""

from __future__ import annotations

import argparse
import sys

from relaysec.aaa import station_identity
from relaysec.cmd_trial import config_failed
from relaysec.config import load_config, parse_override
from relaysec.config_schema import ConfigError
from relaysec.pki import init_pki


def run(args: argparse.Namespace) -> int:
    """Write the PKI; exit status 0, 1 when the directory cannot be written, 2 on a config
    error."""
    try:
        cfg = load_config(args.config, [parse_override(s) for s in args.overrides])
    except ConfigError as exc:
        return config_failed("pki", exc)
    radius = {**cfg, "aaa": {**cfg["aaa"], "backend": "radius"}}
    names = {s["name"]: station_identity(radius, s) or "" for s in cfg["stations"]
             if s["role"] != "abs"}
    try:
        pki = init_pki(args.dir, args.server_name, names, days=args.days)
    except OSError as exc:
        print(f"relaysec pki: error: cannot write {args.dir}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote a CA, a server certificate for {args.server_name} and {len(names)} device "
          f"certificates in {args.dir}")
    for name, dev in pki.devices.items():
        print(f'  {name}: eap = "tls", cert = "{dev.cert}", key = "{dev.key}", '
              f'ca = "{pki.ca.cert}", server_name = "{args.server_name}"')
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pki`` sub-command."""
    p = subparsers.add_parser("pki", help="write a lab PKI (CA, server and device certificates)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("init",), help="what to do")
    p.add_argument("dir", metavar="DIR", help="directory for the PEM files (made if needed)")
    p.add_argument("--server-name", default="aaa.relaysec.test",
                   help="DNS name in the AAA server's certificate (default %(default)s)")
    p.add_argument("--days", type=int, default=825, help="validity in days (default %(default)s)")
    p.add_argument("--config", metavar="FILE.toml", help="scenario/topology file (TOML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.set_defaults(func=run)
