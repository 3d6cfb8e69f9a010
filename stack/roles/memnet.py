"""In-memory wiring of role instances: delivers frames by station id on a simulated clock, with
optional seeded frame loss and a tamper hook, and logs every frame put on the "air".

For tests, benchmarks (``benchmarks.handover``) and experiments without a modem. No I/O and no
real clock: time only advances by the steps and deadlines of the roles it drives.
"""

from __future__ import annotations

import numpy as np


class Net:
    """Delivers frames between roles by station id; optional seeded loss per frame.

    ``log`` holds ``(time, src, dst, frame)`` for every frame sent (before loss or tampering).
    Each exchange step advances the clock by ``dt`` (1 ms by default: one hop).
    """

    def __init__(self, roles: dict[int, object], *, loss: float = 0.0, seed: int = 0) -> None:
        self.roles = roles
        self.loss = loss
        self.rng = np.random.default_rng(seed)
        self.now = 0.0
        self.log: list[tuple[float, int, int, bytes]] = []
        # callable(src, dst, frame) -> frame | None | list of frames (e.g. altered + replayed)
        self.tamper = None
        self.keep_events = False  # when True, role events are drained into self.events
        self.events: dict[int, list] = {sid: [] for sid in roles}

    def drain(self) -> None:
        """Move every role's pending events into ``self.events`` (by station)."""
        for sid, role in self.roles.items():
            self.events.setdefault(sid, []).extend(role.events())

    def start_recording(self) -> None:
        """Discard events so far and keep every later event in ``self.events``."""
        for role in self.roles.values():
            role.events()
        self.events = {sid: [] for sid in self.roles}
        self.keep_events = True

    def of(self, sid: int, cls: type, **match) -> list:
        """Collected events of station ``sid`` of type ``cls`` whose fields equal ``match``."""
        self.drain()
        return [e for e in self.events.get(sid, []) if isinstance(e, cls)
                and all(getattr(e, k) == v for k, v in match.items())]

    def step(self) -> bool:
        """One hop: collect every role's queued frames, then deliver them (seeded loss,
        tamper hook). Frames produced while delivering wait for the next step."""
        outs = [(sid, dst, frame) for sid, role in list(self.roles.items())
                for dst, frame in role.frames_to_send(self.now)]
        for sid, dst, frame in outs:
            self.log.append((self.now, sid, dst, frame))
            on_air: list[bytes] = [frame]
            if self.tamper is not None:
                got = self.tamper(sid, dst, frame)
                on_air = [] if got is None else [got] if isinstance(got, bytes) else list(got)
            for f in on_air:
                if self.loss and self.rng.random() < self.loss:
                    continue
                if dst in self.roles:
                    self.roles[dst].receive(sid, f, self.now)
        if self.keep_events:
            self.drain()
        return bool(outs)

    def run(self, until: float = 60.0, dt: float = 0.001) -> None:
        """Exchange frames; jump the clock to the next deadline when idle."""
        while self.now < until:
            while self.step():
                self.now += dt
            dls = [d for r in self.roles.values() if (d := r.next_deadline()) is not None]
            if not dls:
                return
            self.now = max(self.now, min(dls))
            if self.now >= until:
                return
            for r in self.roles.values():
                d = r.next_deadline()
                if d is not None and d <= self.now:
                    r.timer(self.now)

    def settle(self, duration: float) -> None:
        end = self.now + duration
        while self.step():
            self.now += 0.001
        while self.now < end:
            dls = [d for r in self.roles.values() if (d := r.next_deadline()) is not None]
            nxt = min([*dls, end])
            self.now = max(self.now, nxt)
            for r in self.roles.values():
                d = r.next_deadline()
                if d is not None and d <= self.now:
                    r.timer(self.now)
            while self.step():
                self.now += 0.001
            if nxt >= end:
                break
