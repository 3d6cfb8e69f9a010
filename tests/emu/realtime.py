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
