"""``relaysec warm``: compile the numba kernels once, ahead of the first trial.

numba compiles for the machine it runs on and caches the result on disk (beside the sources), so
this is done once per machine and source tree: the modem's kernels in this process and the
security and medium kernels in a second one at the same time (``relaysec.cell.warm_up``).
``./bootstrap`` runs it as its last step, so that the first ``relaysec trial`` after setting up
starts at once instead of compiling first; a run on a warm cache takes well under a second.
"""

from __future__ import annotations

import argparse
import time


def _warm(args: argparse.Namespace) -> int:
    import sys

    import phy
    from relaysec.cell import warm_up
    from relaysec.config_schema import default_config

    profile = args.profile or default_config()["phy"]["profile"]
    try:
        modem = phy.ZoneModem(profile)
    except phy.PhyError as exc:
        print(f"relaysec warm: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    warm_up(modem)
    print(f"relaysec warm: numba kernels ready for {profile} "
          f"({time.perf_counter() - t0:.1f} s; cached for later runs)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``warm`` sub-command."""
    p = subparsers.add_parser(
        "warm", help="compile the numba kernels now (bootstrap does it), not in the first trial",
        description=__doc__.split("\n\n")[1])
    p.add_argument("--profile", default=None,
                   help="numerology profile whose modem to compile (default: the config's)")
    p.set_defaults(func=_warm)
