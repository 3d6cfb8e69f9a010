"""The ``relaysec`` command line.

Each sub-command lives in its own module ``relaysec/cmd_<name>.py`` exposing
``register(subparsers) -> None``; the registered parser sets ``func`` (``args -> int`` exit status)
with ``parser.set_defaults(func=...)``. Sub-commands are discovered at start, so adding one never
touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import relaysec


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every discovered sub-command."""
    parser = argparse.ArgumentParser(
        prog="relaysec",
        description="IEEE 802.16m relay security (PKMv3) over an OFDM baseband: "
        "loopback simulator and ADALM-Pluto radios.",
    )
    parser.add_argument("--version", action="version", version=relaysec.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(relaysec.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"relaysec.{info.name}")
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``relaysec`` console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args))


if __name__ == "__main__":
    sys.exit(main())
