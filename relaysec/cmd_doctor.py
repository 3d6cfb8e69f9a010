"""``relaysec doctor``: is this machine ready to drive an ADALM-Pluto?

Prints the libiio / pylibiio / pyadi-iio versions, looks for Plutos, and turns known failures into
one-line fixes. Exit status 0 when the Pluto path works, 1 when it cannot.
"""

from __future__ import annotations

import argparse
import json
import sys

from hw.doctor import diagnose, format_findings, pluto_path_ok


def run(args: argparse.Namespace) -> int:
    """Run the checks and print the report; returns the exit status."""
    findings = diagnose(args.uri, scan=not args.no_scan)
    ok = pluto_path_ok(findings)
    if args.json:
        json.dump({"ok": ok, "findings": [f.as_dict() for f in findings]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_findings(findings))
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``doctor`` sub-command."""
    p = subparsers.add_parser(
        "doctor",
        help="check libiio/pylibiio/pyadi-iio and look for ADALM-Pluto radios",
        description=__doc__,
    )
    p.add_argument("--uri", help="also try this radio, e.g. ip:192.168.2.1 or usb:1.2.5")
    p.add_argument("--no-scan", action="store_true", help="do not scan USB/network for Plutos")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)
