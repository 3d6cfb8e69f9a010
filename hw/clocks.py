"""Time sources for the loopback medium: the simulated air's clock in medium samples.

:class:`Clock` is what a :class:`~hw.loopback.Medium` in wall mode asks for the time and waits on;
:class:`WallClock` follows ``time.monotonic()`` (optionally sped up or slowed down) and
:class:`ManualClock` moves only when told to (deterministic wall-mode tests).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from hw.errors import RadioConfigError


class Clock(Protocol):
    """External time source for :class:`Medium` in medium samples (float)."""

    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class WallClock:
    """Medium time that follows ``time.monotonic()`` at ``sample_rate * speed`` samples/s.

    Time 0 is the moment of construction (or ``t0``, a ``time.monotonic()`` value).
    """

    def __init__(self, sample_rate: float, *, speed: float = 1.0, t0: float | None = None) -> None:
        if not sample_rate > 0 or not speed > 0:
            raise RadioConfigError("WallClock needs a positive sample_rate and speed")
        self.rate = float(sample_rate) * float(speed)
        self.t0 = time.monotonic() if t0 is None else float(t0)

    def now(self) -> float:
        """Current medium time in samples."""
        return (time.monotonic() - self.t0) * self.rate

    def sleep_until(self, t: float) -> None:
        """Block until :meth:`now` >= ``t``."""
        while True:
            dt = (t - self.now()) / self.rate
            if dt <= 0:
                return
            time.sleep(min(dt, 0.5))


class ManualClock:
    """A clock that only moves when told to: ``advance(n)``/``set(t)``, or by ``sleep_until``
    (which jumps straight to the requested time). Deterministic wall-mode tests use it."""

    def __init__(self, t: float = 0.0) -> None:
        self._t = float(t)
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current medium time in samples."""
        with self._lock:
            return self._t

    def advance(self, n: float) -> None:
        """Move time forward by ``n`` samples."""
        with self._lock:
            self._t += float(n)

    def set(self, t: float) -> None:
        """Jump to time ``t`` (never backwards)."""
        with self._lock:
            self._t = max(self._t, float(t))

    def sleep_until(self, t: float) -> None:
        """Jump forward to ``t`` immediately."""
        self.set(t)


__all__ = ["Clock", "ManualClock", "WallClock"]
