"""Command-line argument types shared by the benchmarks: a PHY profile or an MCS name is
checked when the command line is parsed, so a typo is a usage error naming what is known
(exit 2), never a traceback from inside a measurement."""

from __future__ import annotations

import argparse

import phy


def profile_name(text: str) -> str:
    """A PHY profile name or alias (``phy.get_profile``)."""
    try:
        phy.get_profile(text)
    except phy.UnknownProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0] if exc.args else exc)) from None
    return text


def mcs_name(text: str) -> str:
    """An MCS name (``phy.get_mcs``)."""
    try:
        phy.get_mcs(text)
    except phy.UnknownMcsError as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0] if exc.args else exc)) from None
    return text
