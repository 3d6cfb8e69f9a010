"""The run's role events, stamped and indexed by kind and station.

Phases ask "has station X seen event K (with these fields) since t?" every frame; with dozens of
mobiles a scan of the whole log would make a run quadratic in its length, so events are indexed
by ``(kind, station)`` on arrival, in time order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from relaysec.node import NodeEvent


class EventLog:
    """Every :class:`NodeEvent` of a run, in arrival (time) order."""

    def __init__(self) -> None:
        self._all: list[NodeEvent] = []
        self._by: dict[tuple[str, str], list[NodeEvent]] = {}
        self.tally: Counter[tuple[str, str]] = Counter()
        """Every event ever appended, by (kind, its ``cause`` or ""): kept when old events are
        forgotten (:meth:`forget`), so a long run still counts what happened."""
        self.forgotten = 0

    def append(self, ne: NodeEvent) -> None:
        kind = type(ne.event).__name__
        self._all.append(ne)
        self._by.setdefault((kind, ne.station), []).append(ne)
        self.tally[(kind, str(getattr(ne.event, "cause", "")))] += 1

    def forget(self, start: float, end: float) -> None:
        """Drop the events stamped in [*start*, *end*) (a soak keeps its last minute only; the
        phases before it and :attr:`tally` stay whole)."""
        def keep(ne: NodeEvent) -> bool:
            return not start <= ne.t < end

        n = len(self._all)
        self._all = [ne for ne in self._all if keep(ne)]
        self.forgotten += n - len(self._all)
        for key, events in list(self._by.items()):
            kept = [ne for ne in events if keep(ne)]
            if kept:
                self._by[key] = kept
            else:
                del self._by[key]

    def __iter__(self) -> Iterator[NodeEvent]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def timed(self, kind: str, station: str, since: float = 0.0) -> Iterator[tuple[float, Any]]:
        """``(t, event)`` of every *kind* event at *station* from *since* on, oldest first."""
        for ne in self._by.get((kind, station), ()):
            if ne.t >= since:
                yield ne.t, ne.event

    def of(self, kind: str, station: str | None = None, since: float = 0.0,
           **match: Any) -> list[Any]:
        """Events of *kind* (at *station*, or anywhere) from *since* on whose fields equal
        *match*."""
        if station is None:
            lists = [v for (k, _), v in self._by.items() if k == kind]
        else:
            lists = [self._by.get((kind, station), [])]
        out = []
        for events in lists:
            for ne in events:
                if ne.t < since:
                    continue
                if all(getattr(ne.event, k, None) == v for k, v in match.items()):
                    out.append(ne.event)
        return out

    def kinds(self, *kinds: str) -> list[NodeEvent]:
        """Every event of the given kinds, in time order."""
        out = [ne for (k, _), v in self._by.items() if k in kinds for ne in v]
        out.sort(key=lambda ne: ne.t)
        return out
