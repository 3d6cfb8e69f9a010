"""``relaysec doctor``: is this machine ready to drive an ADALM-Pluto?

Prints the libiio / pylibiio / pyadi-iio versions, looks for Plutos, and turns known failures into
one-line fixes. Exit status 0 when the Pluto path works, 1 when it cannot. ``--latency URI``
measures that radio's streaming timeline instead (exit 1 when the stream does not hold).
"""

from __future__ import annotations

import argparse
import json
import sys

from hw.doctor import diagnose, format_findings, pluto_path_ok


def run(args: argparse.Namespace) -> int:
    """Run the checks and print the report; returns the exit status."""
    if args.latency:
        from hw.latency import format_latency, measure_latency

        rep = measure_latency(args.latency, seconds=args.seconds)
        if args.json:
            json.dump(rep.as_dict(), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(format_latency(rep))
        return 0 if rep.ok else 1
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
    p.add_argument("--latency", metavar="URI",
                   help="measure this radio's streaming timeline instead: TX->RX offset, "
                        "placement jitter, TX lead, stream breaks; suggests ota_* settings")
    p.add_argument("--seconds", type=float, default=3.0,
                   help="how long --latency measures (default 3)")
    p.set_defaults(func=run)
