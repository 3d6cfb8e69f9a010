"""The blocks an :class:`stack.arq.ArqSender` holds until acknowledged or discarded, and the
change record that tells the sender when its next deadline must be computed again (a block's
times written by the station's output path, the block map changed) or only folded with the
blocks that went on the air since (:meth:`stack.arq.ArqSender.next_deadline`)."""

from __future__ import annotations

MAX_AIRED = 64
"""Blocks gone on the air a sender folds into its last deadline; past that it walks them all."""


class _Changed:
    """What moved a sender's next deadline since :meth:`ArqSender.next_deadline` last computed
    it, shared by the sender, its block map and its blocks: ``flag``, anything (a walk over
    every block follows), or only the blocks in ``aired``, queued ones that went on the air
    (a time added, none taken away: the last answer and their times give the new one)."""

    def __init__(self) -> None:
        self.flag = True
        self.aired: list[TxBlock] = []


class TxBlock:
    """A block held by the sender until acknowledged or discarded. ``queued``: a copy waits in
    the station's output queue (not on the air yet), so its timer does not run.

    ``first_tx``, ``last_tx``, ``sends`` and ``queued`` set its sender's deadline: writing one
    (the station's output path does) tells the sender to recompute it."""

    def __init__(self, sn: int, sdu: bytes, first_tx: float | None = None,
                 last_tx: float | None = None, prev_tx: float | None = None, sends: int = 0,
                 queued: bool = False, *, changed: _Changed | None = None) -> None:
        self.sn = sn                 # absolute sequence number (BSN = sn mod 1024)
        self.sdu = sdu
        self.prev_tx = prev_tx       # when the copy before the last one went out
        self._first_tx = first_tx
        self._last_tx = last_tx
        self._sends = sends
        self._queued = queued
        self._changed = changed

    def __repr__(self) -> str:
        return (f"TxBlock(sn={self.sn!r}, first_tx={self._first_tx!r}, "
                f"last_tx={self._last_tx!r}, prev_tx={self.prev_tx!r}, sends={self._sends!r}, "
                f"queued={self._queued!r})")

    def _touch(self) -> None:
        if self._changed is not None:
            self._changed.flag = True

    @property
    def first_tx(self) -> float | None:
        return self._first_tx

    @first_tx.setter
    def first_tx(self, v: float | None) -> None:
        self._first_tx = v
        self._touch()

    @property
    def last_tx(self) -> float | None:
        return self._last_tx

    @last_tx.setter
    def last_tx(self, v: float | None) -> None:
        self._last_tx = v
        self._touch()

    @property
    def sends(self) -> int:
        return self._sends

    @sends.setter
    def sends(self, v: int) -> None:
        self._sends = v
        self._touch()

    @property
    def queued(self) -> bool:
        return self._queued

    @queued.setter
    def queued(self, v: bool) -> None:
        self._queued = v
        self._touch()

    def on_air(self, now: float) -> None:
        """The queued copy went out (called by the station's output path)."""
        queued = self._queued
        self._queued = False
        if self._last_tx is not None:
            self.prev_tx = self._last_tx
        self._last_tx = now
        if self._first_tx is None:
            self._first_tx = now
        c = self._changed
        if c is not None and not c.flag:
            if queued and len(c.aired) < MAX_AIRED:
                c.aired.append(self)
            else:
                c.flag = True

    def lost(self) -> None:
        """The queued copy was dropped before going out (e.g. a link that ended)."""
        self._queued = False
        self._last_tx = None
        self._touch()


class _BlockMap(dict[int, TxBlock]):
    """The sender's blocks by absolute SN: a dict whose every change (the station clears it
    after a handover) tells the sender to recompute its deadline."""

    __slots__ = ("_changed",)

    def __init__(self, changed: _Changed) -> None:
        super().__init__()
        self._changed = changed

    def __reduce__(self):  # type: ignore[no-untyped-def, override]
        # pickle (a role's snapshot) and deepcopy: the flag first, then the blocks
        return _BlockMap, (self._changed,), None, None, iter(self.items())

    def __setitem__(self, k: int, v: TxBlock) -> None:
        super().__setitem__(k, v)
        self._changed.flag = True

    def __delitem__(self, k: int) -> None:
        super().__delitem__(k)
        self._changed.flag = True

    def __ior__(self, other):  # type: ignore[no-untyped-def, override]
        self._changed.flag = True
        return super().__ior__(other)

    def pop(self, *a):  # type: ignore[no-untyped-def, override]
        self._changed.flag = True
        return super().pop(*a)

    def popitem(self):  # type: ignore[no-untyped-def, override]
        self._changed.flag = True
        return super().popitem()

    def clear(self) -> None:
        self._changed.flag = True
        super().clear()

    def update(self, *a, **k):  # type: ignore[no-untyped-def, override]
        self._changed.flag = True
        super().update(*a, **k)

    def setdefault(self, *a):  # type: ignore[no-untyped-def, override]
        self._changed.flag = True
        return super().setdefault(*a)

