"""Command-line paths checked before any work starts: output files and directories, numbers.

A trial can run for minutes over the air; an output path that cannot be written must stop it at
the start with a message naming the option (exit 2), not with a traceback after the run. Nothing
is created silently: an output file's directory must exist, and an output directory (``--plots``,
``--record``) is created only as the last path component, never with missing parents.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path

from relaysec.config_schema import OptionError


def _show(path: Path | str) -> str:
    return repr(str(path))


def _probe(option: str, path: Path) -> tuple[bool, bool]:
    """``(exists, is_dir)`` of *path*; an unusable name (NUL byte, too long, a loop, no
    permission to look) is an :class:`OptionError`."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False, False
    except NotADirectoryError:
        raise OptionError(f"{option} {_show(path)}: a parent is not a directory") from None
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise OptionError(f"{option} {_show(path)}: {why}") from None
    return True, stat.S_ISDIR(st.st_mode)


def _parent_ok(option: str, path: Path) -> None:
    parent = path.parent
    exists, is_dir = _probe(option, parent)
    if not exists:
        raise OptionError(f"{option} {_show(path)}: directory {_show(parent)} does not exist "
                          "(it is not created; create it first)")
    if not is_dir:
        raise OptionError(f"{option} {_show(path)}: {_show(parent)} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OptionError(f"{option} {_show(path)}: cannot create files in {_show(parent)} "
                          "(permission denied)")


def check_output_file(option: str, path: str) -> Path:
    """An output file *path* for *option* (``--json``): not a directory; if it exists, writable;
    else its directory exists and is writable. Raises :class:`OptionError`."""
    if not path:
        raise OptionError(f"{option} needs a file name")
    p = Path(path)
    exists, is_dir = _probe(option, p)
    if is_dir:
        raise OptionError(f"{option} {_show(p)} is a directory; give a file name")
    if exists:
        if not os.access(p, os.W_OK):
            raise OptionError(f"{option} {_show(p)} is not writable (permission denied)")
        return p
    _parent_ok(option, p)
    return p


def check_output_dir(option: str, path: str) -> Path:
    """An output directory *path* for *option* (``--plots``, ``--record``): an existing,
    writable directory, or a new one whose parent exists and is writable (it is created later
    by :func:`make_output_dir`, without parents). Raises :class:`OptionError`."""
    if not path:
        raise OptionError(f"{option} needs a directory name")
    p = Path(path)
    exists, is_dir = _probe(option, p)
    if exists and not is_dir:
        raise OptionError(f"{option} {_show(p)} exists and is not a directory")
    if exists:
        if not os.access(p, os.W_OK | os.X_OK):
            raise OptionError(f"{option} {_show(p)}: cannot create files there "
                              "(permission denied)")
        return p
    _parent_ok(option, p)
    return p


def make_output_dir(option: str, path: str | Path) -> Path:
    """Create the output directory checked by :func:`check_output_dir` (the last component
    only; an existing directory is fine). Raises :class:`OptionError`."""
    p = Path(path)
    try:
        p.mkdir(exist_ok=True)
    except OSError as exc:
        raise OptionError(f"{option} {_show(p)}: cannot create the directory: "
                          f"{exc.strerror or exc}") from None
    return p


def number_in(lo: float, hi: float, *, lo_open: bool = True,
              unit: str = "") -> Callable[[str], float]:
    """An argparse ``type=`` for a finite number in ``(lo, hi]`` (``[lo, hi]`` unless
    *lo_open*); a bad value is an argparse error (exit 2, naming the option)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        low_ok = value > lo if lo_open else value >= lo
        if not math.isfinite(value) or not low_ok or value > hi:
            left = "(" if lo_open else "["
            raise argparse.ArgumentTypeError(
                f"must be a number in {left}{lo:g}, {hi:g}]{' ' + unit if unit else ''}, "
                f"got {text!r}")
        return value

    parse.__name__ = "number"
    return parse
