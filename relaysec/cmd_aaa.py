"""``relaysec aaa hostapd DIR``: write a working AAA server configuration for the configured
stations and print the command that starts it (docs/aaa.md).

The server listens on the port of ``aaa.server`` and shares ``aaa.secret`` with the ABS; every
AMS and ARS becomes an EAP-PSK user (its NAI and PSK). Secrets go into files readable by their
owner only and are never printed.
"""

from __future__ import annotations

import argparse
import sys

from relaysec.aaa_servers import describe, write_hostapd
from relaysec.cmd_trial import config_failed
from relaysec.config import ConfigError, load_config, parse_override


def run(args: argparse.Namespace) -> int:
    """Write the configuration; exit status 0, or 2 on a config error."""
    try:
        cfg = load_config(args.config, [parse_override(s) for s in args.overrides])
        files = write_hostapd(cfg, args.dir)
    except ConfigError as exc:
        return config_failed("aaa", exc)
    except OSError as exc:
        print(f"relaysec aaa: error: cannot write {args.dir}: {exc.strerror}", file=sys.stderr)
        return 1
    for line in describe(cfg, files, args.server):
        print(line)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``aaa`` sub-command."""
    p = subparsers.add_parser(
        "aaa", help="write an AAA server configuration (hostapd) for the configured stations",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("server", choices=("hostapd",), help="which server to configure")
    p.add_argument("dir", metavar="DIR", help="directory for the server's files (made if needed)")
    p.add_argument("--config", metavar="FILE.toml", help="scenario/topology file (TOML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set aaa.secret=... (repeatable)")
    p.set_defaults(func=run)
