"""``relaysec warm``: compile the numba kernels once, ahead of the first trial.

numba compiles for the machine it runs on and caches the result on disk (beside the sources), so
this is done once per machine and source tree: the modem's kernels in this process and the
security and medium kernels in a second one at the same time (``relaysec.cell.warm_up``).
``./bootstrap`` runs it as its last step, so that the first ``relaysec trial`` after setting up
starts at once instead of compiling first; a run on a warm cache takes well under a second.
"""

from __future__ import annotations

import argparse
import contextlib
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
    if args.clean:
        n = clean()
        print(f"relaysec warm: removed {n} numba cache file{'s' if n != 1 else ''} of this tree")
    t0 = time.perf_counter()
    warm_up(modem)
    print(f"relaysec warm: numba kernels ready for {profile} "
          f"({time.perf_counter() - t0:.1f} s; cached for later runs)")
    return 0


def clean() -> int:
    """Remove this source tree's numba cache files (:func:`relaysec.warmstart.cache_files`);
    returns how many. For a cache left inconsistent -- e.g. a kernel file edited while another
    process was compiling it, which showed as ``RuntimeError: In 'NRT_adapt_ndarray_to_python',
    'descr' is NULL`` from a cached kernel -- so the next compile starts from nothing. Not
    while another relaysec process runs: it may be loading those files."""
    from relaysec.warmstart import cache_files

    n = 0
    for path in cache_files():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            n += 1
    return n


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``warm`` sub-command."""
    p = subparsers.add_parser(
        "warm", help="compile the numba kernels now (bootstrap does it), not in the first trial",
        description=__doc__.split("\n\n")[1])
    p.add_argument("--profile", default=None,
                   help="numerology profile whose modem to compile (default: the config's)")
    p.add_argument("--clean", action="store_true",
                   help="first remove this tree's numba cache (a cache left inconsistent, e.g. "
                   "by editing a kernel file while another process compiled it, fails with "
                   "odd numba runtime errors such as \"'descr' is NULL\"); then compile anew")
    p.set_defaults(func=_warm)
