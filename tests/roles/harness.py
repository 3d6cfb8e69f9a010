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
        if self.keep_events:
            self.drain()
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


# -- a standard cell: ABS, two ARSs, one AMS ------------------------------------------------------

ABS, ARS1, ARS2, AMS = 0x0000BB000001, 0x0002AA000001, 0x0002AA000002, 0x001B11C9D50C
PSK = {ARS1: b"\x11" * 16, ARS2: b"\x12" * 16, AMS: b"\x22" * 16}


def build(mode=None, timers=None, lifetimes=None):
    """ABS, ARS-1, ARS-2 and AMS roles with fixed seeds (``mode`` default: distributed)."""
    from stack.pkm.authenticator import BuiltinAuthenticator
    from stack.roles import (
        AbsConfig,
        AbsRole,
        AmsConfig,
        AmsRole,
        ArsConfig,
        ArsRole,
        Lifetimes,
        SecurityMode,
        Timers,
    )
    from stack.roles.ids import station_bytes

    mode = mode or SecurityMode.DISTRIBUTED
    timers = timers or Timers(rto=0.2, max_retries=30)
    life = lifetimes or Lifetimes()
    auth = BuiltinAuthenticator({station_bytes(k): v for k, v in PSK.items()})
    abs_ = AbsRole(AbsConfig(station_id=ABS, mode=mode, timers=timers, lifetimes=life),
                   authenticator=auth, rng=1)
    ars1 = ArsRole(ArsConfig(station_id=ARS1, psk=PSK[ARS1], mode=mode, timers=timers,
                             lifetimes=life), rng=2)
    ars2 = ArsRole(ArsConfig(station_id=ARS2, psk=PSK[ARS2], mode=mode, timers=timers,
                             lifetimes=life), rng=3)
    ams = AmsRole(AmsConfig(station_id=AMS, psk=PSK[AMS], timers=timers, lifetimes=life,
                            abs_id=ABS), rng=4)
    return abs_, ars1, ars2, ams


def enter_all(mode=None, loss=0.0, seed=0, timers=None, lifetimes=None, via=ARS1):
    """Both ARSs enter, then the AMS enters at ``via``; returns (net, abs, ars1, ars2, ams)."""
    abs_, ars1, ars2, ams = build(mode, timers, lifetimes)
    net = Net({ABS: abs_, ARS1: ars1, ARS2: ars2, AMS: ams}, loss=loss, seed=seed)
    ars1.attach(ABS, 0.0)
    ars2.attach(ABS, 0.0)
    net.settle(10.0)
    ams.attach(via, net.now)
    net.settle(20.0)
    return net, abs_, ars1, ars2, ams


def same_keys(a, b) -> bool:
    """Both KeyInfos name the same AK, CMAC keys and TEKs (by identifiers and check values)."""
    return a is not None and b is not None and (
        a.akid, a.pmk_sn, a.cmac_key_count, a.kcv_cmac_u, a.kcv_cmac_d, a.counter_teks, a.kcv_teks
    ) == (b.akid, b.pmk_sn, b.cmac_key_count, b.kcv_cmac_u, b.kcv_cmac_d, b.counter_teks,
          b.kcv_teks)
