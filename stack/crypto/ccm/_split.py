"""Running a batch on several numba threads (shared by the numba engines)."""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np


def split_by_bytes(lens: np.ndarray, parts: int) -> np.ndarray:
    """Item boundaries ``(parts+1,)`` cutting the batch into ``parts`` runs of about equal work.

    Work of an item ≈ its length + 32 bytes (B_0, A_0 and the tag cost about two blocks).
    """
    work = np.cumsum(lens + 32)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, parts) / parts, side="left") + 1
    inner = np.minimum(cuts, lens.shape[0])
    return np.concatenate(([0], inner, [lens.shape[0]])).astype(np.int64)


def on_threads(threads: int, kernel: Callable[..., None], *args: object) -> None:
    """Call a ``parallel=True`` kernel with numba's pool limited to ``threads`` threads."""
    prev = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(prev)
