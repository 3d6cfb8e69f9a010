"""One wall-clock rehearsal at a time across pytest-xdist workers.

Rehearsals on the wall clock (emulated Plutos, wall-clock loopback nodes) run several real-time
threads or processes each; two of them at once on CI's two cores starve each other and lose
bursts, which measures the test machine, not the code. Tests that run one hold this lock (an
``flock`` on a file in the temp directory, released if the worker dies)."""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "relaysec-realtime-tests.lock"


@contextlib.contextmanager
def realtime_slot() -> Iterator[None]:
    """Hold the machine-wide rehearsal lock for the duration of the block."""
    with LOCK.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def probe_error(radio: object, timeline: object, block: int = 16384, tries: int = 120,
                ahead: int = 3000) -> int | None:
    """Place the timeline's probe ``ahead`` samples past the radio's TX horizon, read blocks
    until it is heard, and return heard minus placed (RX samples; 0 = exactly where placed),
    or None if it was never heard in ``tries`` blocks. *radio* streams (``PlutoRadio`` after
    ``start_stream``), *timeline* is its ``StreamTimeline``."""
    import numpy as np

    keep = timeline.probe.size  # type: ignore[attr-defined]
    index, placed = 0, None
    tail = np.zeros(0, np.complex64)
    for _ in range(tries):
        iq = radio.receive(block)  # type: ignore[attr-defined]
        h = radio.tx_horizon()  # type: ignore[attr-defined]
        if placed is None and h is not None:
            placed = h + ahead
            assert radio.transmit(timeline.probe, at=placed)  # type: ignore[attr-defined]
        # the previous block's tail in front: a probe across two blocks is found too (where
        # the probe lands in the block grid depends on timing: it straddled one in a CI run)
        buf = np.concatenate([tail, iq])
        k = timeline._find_probe(buf)  # type: ignore[attr-defined]
        if k is not None and placed is not None:
            return index - tail.size + k - placed
        index += iq.size
        tail = iq[-keep:]
    return None
