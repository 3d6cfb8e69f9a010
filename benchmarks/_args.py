"""Command-line argument types shared by the benchmarks: a PHY profile or an MCS name is
checked when the command line is parsed, so a typo is a usage error naming what is known
(exit 2), never a traceback from inside a measurement."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import phy


def _known(lookup: Callable[[str], object], error: type[Exception]) -> Callable[[str], str]:
    """An argparse type: the text itself when *lookup* accepts it; *lookup*'s *error* (which
    lists the known names) as a usage error otherwise."""

    def check(text: str) -> str:
        try:
            lookup(text)
        except error as exc:
            raise argparse.ArgumentTypeError(str(exc.args[0] if exc.args else exc)) from None
        return text

    return check


#: A PHY profile name or alias (``phy.get_profile``).
profile_name = _known(phy.get_profile, phy.UnknownProfileError)
#: An MCS name (``phy.get_mcs``).
mcs_name = _known(phy.get_mcs, phy.UnknownMcsError)
