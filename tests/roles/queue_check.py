"""A check of the roles' output-queue byte counts, for tests (see ``tests/roles/conftest.py``)."""

from __future__ import annotations

import functools
from typing import Any

from stack.roles.link import MpduQueue, sealed_bytes
from stack.roles.sendpath import SendPath


def assert_counts(role: Any) -> None:
    """Every output queue of *role* is an :class:`MpduQueue` whose count is its entries'."""
    for dst, q in role._out.items():
        assert type(q) is MpduQueue, f"queue to {dst:#x} is a {type(q).__name__}"
        assert q.nbytes == sealed_bytes(q), \
            f"queue to {dst:#x} counts {q.nbytes} bytes, holds {sealed_bytes(q)}"


def checked_queues(monkeypatch: Any) -> None:
    """Make ``SendPath.backlog`` and ``frames_to_send`` check the counts before and after."""
    for name in ("backlog", "frames_to_send"):
        original = getattr(SendPath, name)

        @functools.wraps(original)
        def wrapper(self: Any, *args: Any, __original: Any = original, **kw: Any) -> Any:
            assert_counts(self)
            out = __original(self, *args, **kw)
            assert_counts(self)
            return out

        monkeypatch.setattr(SendPath, name, wrapper)
