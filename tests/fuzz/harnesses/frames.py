"""Frame splitting: :func:`stack.roles.base.frame_bounds` against
:func:`stack.roles.framing.split_frame` (the roles' two parsers of one frame into MPDUs).

Input: a frame. Invariants: both raise only :class:`stack.errors.SecurityError`, and for the same
inputs (same verdict); accepted, the boundaries run from 0 to the frame's end in steps that equal
each MPDU's AGMH Length, and cut the frame into exactly ``split_frame``'s MPDUs.
"""

from __future__ import annotations

import itertools

from stack.errors import SecurityError
from stack.roles.base import frame_bounds
from stack.roles.framing import split_frame
from tests.fuzz._core import Violation, check

ALLOWED = (SecurityError,)


def one_input(data: bytes) -> None:
    """Split ``data`` both ways and compare."""
    err: SecurityError | None = None
    try:
        bounds: list[int] | None = frame_bounds(data)
    except SecurityError as exc:
        bounds, err = None, exc
    try:
        mpdus = split_frame(data)
    except SecurityError:
        check(bounds is None, "verdicts_differ", "frame_bounds accepted, split_frame refused")
        return
    if bounds is None:
        raise Violation("verdicts_differ", f"frame_bounds refused ({err}), split_frame accepted")
    check(bounds[0] == 0 and bounds[-1] == len(data), "bounds_do_not_cover", str(bounds[:4]))
    cuts = [data[a:b] for a, b in itertools.pairwise(bounds)]
    check(cuts == mpdus, "mpdus_differ", "")
    for one in cuts:
        check(int.from_bytes(one[:2], "big") & 0x7FF == len(one), "length_mismatch", "")
