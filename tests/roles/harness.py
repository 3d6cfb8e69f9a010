"""In-memory wiring of role instances with seeded loss/tampering (test helper, not production)."""

from __future__ import annotations

import numpy as np


class Net:
    """Delivers frames between roles by station id; optional seeded loss per frame."""

    def __init__(self, roles: dict[int, object], *, loss: float = 0.0, seed: int = 0) -> None:
        self.roles = roles
        self.loss = loss
        self.rng = np.random.default_rng(seed)
        self.now = 0.0
        self.log: list[tuple[float, int, int, bytes]] = []
        self.tamper = None  # callable(src, dst, frame) -> frame | None

    def step(self) -> bool:
        moved = False
        for sid, role in self.roles.items():
            for dst, frame in role.frames_to_send(self.now):
                moved = True
                self.log.append((self.now, sid, dst, frame))
                if self.tamper is not None:
                    frame = self.tamper(sid, dst, frame)
                    if frame is None:
                        continue
                if self.loss and self.rng.random() < self.loss:
                    continue
                if dst in self.roles:
                    self.roles[dst].receive(sid, frame, self.now)
        return moved

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
