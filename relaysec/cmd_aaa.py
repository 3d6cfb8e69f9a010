"""``relaysec aaa hostapd|freeradius DIR``: write a working AAA server configuration for the
configured stations and print the command that starts it (docs/aaa.md).

The server listens on the port of ``aaa.server`` and shares ``aaa.secret`` with the ABS.
hostapd: every AMS and ARS becomes an EAP-PSK user (its NAI and PSK); with ``--pki`` (a
``relaysec pki init`` directory) also EAP-TLS. freeradius: EAP-TLS with the lab PKI (``--pki``;
without it one is made in DIR/pki), from a copy of Debian's /etc/freeradius/3.0. Secrets go into
files readable by their owner only and are never printed.
"""

from __future__ import annotations

import argparse
import sys

from relaysec.aaa import station_identity
from relaysec.aaa_servers import describe, write_freeradius, write_hostapd
from relaysec.cmd_trial import config_failed
from relaysec.config import load_config, parse_override
from relaysec.config_schema import ConfigError
from relaysec.pki import load_pki


def run(args: argparse.Namespace) -> int:
    """Write the configuration; exit status 0, or 2 on a config error."""
    try:
        cfg = load_config(args.config, [parse_override(s) for s in args.overrides])
        radius = {**cfg, "aaa": {**cfg["aaa"], "backend": "radius"}}
        names = {s["name"]: station_identity(radius, s) or "" for s in cfg["stations"]
                 if s["role"] != "abs"}
        if args.server == "hostapd":
            pki = None if args.pki is None else load_pki(args.pki, names)
            files = write_hostapd(cfg, args.dir, tls=pki,
                                  methods="PSK" if pki is None else "TLS,PSK")
        else:
            pki = load_pki(args.pki if args.pki is not None else f"{args.dir}/pki", names,
                           create=args.pki is None)
            files = write_freeradius(cfg, args.dir, pki, tls_max=args.tls_max)
    except ConfigError as exc:
        return config_failed("aaa", exc)
    except OSError as exc:
        print(f"relaysec aaa: error: cannot write {args.dir}: {exc.strerror}", file=sys.stderr)
        return 1
    methods = "EAP-TLS" if args.server == "freeradius" else \
        "EAP-PSK" if args.pki is None else "EAP-TLS, EAP-PSK"
    for line in describe(cfg, files, args.server, methods):
        print(line)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``aaa`` sub-command."""
    p = subparsers.add_parser(
        "aaa", help="write an AAA server configuration (hostapd, freeradius) for the stations",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("server", choices=("hostapd", "freeradius"), help="which server to configure")
    p.add_argument("dir", metavar="DIR", help="directory for the server's files (made if needed)")
    p.add_argument("--pki", metavar="PKIDIR", help="a relaysec pki init directory (EAP-TLS)")
    p.add_argument("--tls-max", choices=("1.2", "1.3"), default="1.3",
                   help="freeradius: highest TLS version (default %(default)s)")
    p.add_argument("--config", metavar="FILE.toml", help="scenario/topology file (TOML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set aaa.secret=... (repeatable)")
    p.set_defaults(func=run)
