"""Key management at scale: one ABS, M ARSs, N AMSs, the sans-I/O roles wired in memory.

    python -m benchmarks.scale --ams N --ars M --json PATH [--loss L] [--seed S]
                               [--mode distributed|centralized] [--wave W] [--flood F]

Runs the ABS/ARS/AMS roles (:mod:`stack.roles`) over :class:`stack.roles.memnet.Net` (1 ms per
hop, seeded frame loss on every link both ways; :class:`ScaleNet` polls only the stations that
have something to do and runs due timers at every hop), every role seeded: a simulation. The
AMSs are spread round robin over the ARSs and enter through them. Phases, on one cell of N AMSs:

1. **ARS entry**: every ARS enters at once.
2. **AMS entry**: the AMSs start in waves of ``--wave`` per ARS (default 20, the ARS's
   ``ranging_burst``), one wave every ``wave / max_ranging_per_s`` seconds -- what the ARS's
   initial-ranging limiter relays at once (``--wave 0``: all at once). CPU seconds per entry
   (``time.process_time``, the whole simulation: roles and in-memory network) are measured on
   separate cells of 10, 100 and 1000 AMSs (the sizes up to N; N itself is the main cell).
3. **TEK refresh** for every AMS at once (``AmsRole._start_refresh``) and every ARS relay link.
4. **Handover** of min(200, N/5) AMSs at once to the next ARS, with AK pre-distribution
   (``AbsRole.prepare_handover``, then ``AmsRole.handover``; centralized: no pre-distribution).
5. **Flood**: initial AAI-RNG-REQs from ``--flood`` (10 000) unknown station ids arriving as a
   Poisson process of ``--flood-rate`` (2000) ids/s, each straight at the ABS and through an ARS
   (round robin), as in ``tests/roles/test_flood.py``; after a tenth of it M+1 new AMSs start
   entering (one through each ARS, one at the ABS): ``legit_entries_ok`` when all of them have
   entered, with matching keys, before the flood ends. Largest half-open count seen (sampled
   after every spoofed request) against the cap; then the attempts expire and the ABS tables
   must list real stations only.

Memory per AMS context: a separate cell (``--mem-ams``, default min(N, 1000)) repeats phases 1-2
under ``tracemalloc``; every allocation still alive after the entries is attributed to the ABS
(a frame of ``stack/roles/abs.py`` among the allocation's innermost ``TRACE_FRAMES``), an ARS
(``ars.py``) or an AMS (``subscriber.py``), and divided by the number of AMS contexts.

At the end every AMS's ``key_info()`` must equal its key holder's (the serving ARS in distributed
mode, else the ABS), the ABS's AK of the AMS must match too, and every ARS's relay link must
match the ABS's. The ABS caps that the scenario needs above their defaults (entries in progress
at once in total and per access station) and ARS caps (held handover AKs) are raised in the
configuration and listed in the output; the ARS's ranging rate limit keeps its default.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import heapq
import inspect
import itertools
import json
import math
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks._machine import announce
from stack.pkm import messages as m
from stack.pkm.authenticator import BuiltinAuthenticator
from stack.roles import (
    AbsConfig,
    AbsRole,
    AmsConfig,
    AmsRole,
    ArsConfig,
    ArsRole,
    Attached,
    EntryFailed,
    KeyInfo,
    PeerLost,
    SecurityMode,
    Timers,
)
from stack.roles.base import RoleBase
from stack.roles.framing import control_mpdu
from stack.roles.ids import station_bytes
from stack.roles.memnet import Net

ABS = 0x0000_BB00_0001
ARS_BASE = 0x0002_AA00_0000
AMS_BASE = 0x001B_1000_0000
LEGIT_BASE = 0x001B_2000_0000   # AMSs that enter during the flood
SPOOF_BASE = 0x0FA0_0000_0000   # invented station ids of the flood
SIZES = (10, 100, 1000)
HOP = 0.001                     # Net advances the clock 1 ms per exchange step
TRACE_FRAMES = 12               # enough to reach the role's frame from every allocation kept
QUIET = 60.0                    # no deadline this close: nothing retransmits, the cell is idle
TIMERS = Timers(rto=0.2, max_retries=30)


def _seed(seed: int, cell: str, index: int) -> int:
    """A role's rng seed: distinct for every (run seed, cell, station), so no two cells of a
    run share a key (the test suite's nonce monitor would see any reused (TEK, PN))."""
    h = hashlib.blake2b(f"{seed}/{cell}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big")


def _psk(station: int) -> bytes:
    return hashlib.blake2b(b"scale-psk" + station_bytes(station), digest_size=16).digest()


@dataclass
class Params:
    """What one run simulates."""

    ams: int = 1000
    ars: int = 8
    loss: float = 0.0
    seed: int = 0
    mode: SecurityMode = SecurityMode.DISTRIBUTED
    wave: int = 20
    flood: int = 10_000
    flood_rate: float = 2000.0
    handovers: int | None = None      # None: min(200, N // 5)
    mem_ams: int | None = None        # None: min(N, 1000); 0: no memory measurement

    @property
    def n_handovers(self) -> int:
        return min(200, self.ams // 5) if self.handovers is None else self.handovers


class ScaleNet(Net):
    """:class:`stack.roles.memnet.Net` for thousands of stations.

    Delivery is Net's: 1 ms hops, seeded loss per frame, frames produced while delivering wait
    for the next hop. Three differences keep the simulator's own cost from growing with the
    number of idle stations and keep timers honest: a hop polls only the roles *touched* since
    their last poll (received a frame, ran a timer, got a command -- an untouched role has
    nothing queued); every role's next deadline is kept in a heap and due timers run at every
    hop (``Net.settle`` runs them only once a hop carries nothing, which under sustained
    traffic delays retransmissions); frames are counted, not logged.
    """

    def __init__(self, roles: dict[int, Any], *, loss: float, seed: int) -> None:
        super().__init__(roles, loss=loss, seed=seed)
        self._order = {sid: i for i, sid in enumerate(roles)}
        self._poll: set[int] = set()
        self._changed: set[int] = set()      # deadline to re-read
        self.event_roles: set[int] = set()   # may hold events
        self._dl: dict[int, float] = {}
        self._heap: list[tuple[float, int]] = []
        self.frames = 0
        self.frame_bytes = 0

    def touch(self, sid: int) -> None:
        """Role ``sid`` was driven from outside (a command, a frame fed to ``receive``)."""
        self._poll.add(sid)
        self._changed.add(sid)
        self.event_roles.add(sid)

    def _refresh(self) -> None:
        for sid in self._changed:
            d = self.roles[sid].next_deadline()
            d = math.inf if d is None else d
            if self._dl.get(sid) != d:
                self._dl[sid] = d
                if d != math.inf:
                    heapq.heappush(self._heap, (d, sid))
        self._changed.clear()

    def next_deadline(self) -> float:
        """Earliest deadline of any role (inf: none)."""
        self._refresh()
        heap = self._heap
        while heap and self._dl.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def run_timers(self) -> int:
        """Run the timer of every role with a deadline due now; how many ran."""
        due: list[int] = []
        while self.next_deadline() <= self.now:
            _d, sid = heapq.heappop(self._heap)
            self._dl[sid] = math.inf
            due.append(sid)
        for sid in due:
            self.roles[sid].timer(self.now)
            self.touch(sid)
        return len(due)

    def step(self) -> bool:
        """One hop: collect the touched roles' frames (in station order), then deliver them."""
        polled = sorted(self._poll, key=self._order.__getitem__)
        self._poll.clear()
        outs = [(sid, dst, frame) for sid in polled
                for dst, frame in self.roles[sid].frames_to_send(self.now)]
        for sid, dst, frame in outs:
            self.frames += 1
            self.frame_bytes += len(frame)
            if self.loss and self.rng.random() < self.loss:
                continue
            if dst in self.roles:
                self.roles[dst].receive(sid, frame, self.now)
                self.touch(dst)
        return bool(outs)


@dataclass
class Cell:
    """One simulated cell: the roles, the network and what the driver observed."""

    params: Params
    net: ScaleNet
    abs_: AbsRole
    ars: list[ArsRole]
    ams: list[AmsRole]
    legit: list[AmsRole]
    events: Counter[str] = field(default_factory=Counter)
    started_at: dict[int, float] = field(default_factory=dict)
    attached_at: dict[int, float] = field(default_factory=dict)
    failed: Counter[str] = field(default_factory=Counter)
    steps: int = 0

    @property
    def distributed(self) -> bool:
        return self.params.mode == SecurityMode.DISTRIBUTED

    def roles(self) -> Iterable[Any]:
        return self.net.roles.values()

    def attach(self, role: Any, via: int) -> None:
        """``role.attach(via)`` now (an AMS's or ARS's network entry starts)."""
        self.started_at[role.station_id] = self.net.now
        self.attached_at.pop(role.station_id, None)
        role.attach(via, self.net.now)
        self.net.touch(role.station_id)

    def drain(self) -> None:
        """Drain the events of every role that may have some (as the node runtime does)."""
        for sid in self.net.event_roles:
            role = self.net.roles[sid]
            evs = role.events()
            if not evs:
                continue
            kind = "abs" if role is self.abs_ else "ars" if isinstance(role, ArsRole) else "ams"
            for ev in evs:
                self.events[type(ev).__name__] += 1
                if isinstance(ev, Attached) and ev.station == sid:
                    self.attached_at.setdefault(sid, self.net.now)
                elif isinstance(ev, EntryFailed):
                    self.failed[f"{kind}: EntryFailed({ev.reason})"] += 1
                elif isinstance(ev, PeerLost):
                    self.failed[f"{kind}: PeerLost({ev.procedure})"] += 1
        self.net.event_roles.clear()

    def air_messages(self) -> Counter[str]:
        """Control messages sent so far by every role, by title (each hop counts)."""
        total: Counter[str] = Counter()
        for role in self.roles():
            total.update(role.air_messages)
        return total


def abs_caps(p: Params) -> dict[str, int]:
    """The ABS entry caps this scenario needs: the defaults, raised where N/M concurrent entries
    through one ARS (or N in total) would not fit."""
    d = AbsConfig(station_id=ABS)
    return {"max_half_open": max(d.max_half_open, p.ams),
            "max_half_open_per_via": max(d.max_half_open_per_via, math.ceil(p.ams / p.ars))}


def ars_caps(p: Params) -> dict[str, int]:
    """ARS caps raised for the scenario: handover AKs held at one target ARS at once."""
    d = ArsConfig(station_id=ARS_BASE + 1, psk=bytes(16))
    per_target = math.ceil(p.n_handovers / p.ars) if p.ars > 1 else 0
    return {"max_pending_handovers": max(d.max_pending_handovers, per_target),
            "max_known_stations": max(d.max_known_stations, math.ceil(p.ams / p.ars))}


def build(p: Params, n_ams: int, cell: str, *, legit: int = 0) -> Cell:
    """ABS, ``p.ars`` ARSs, ``n_ams`` AMSs (and ``legit`` spare AMSs for the flood), seeded."""
    ars_ids = [ARS_BASE + i + 1 for i in range(p.ars)]
    ams_ids = [AMS_BASE + j + 1 for j in range(n_ams)]
    legit_ids = [LEGIT_BASE + k + 1 for k in range(legit)]
    auth = BuiltinAuthenticator({station_bytes(s): _psk(s)
                                 for s in (*ars_ids, *ams_ids, *legit_ids)})
    abs_ = AbsRole(AbsConfig(station_id=ABS, mode=p.mode, timers=TIMERS,
                             relays=frozenset(ars_ids), **abs_caps(p)),
                   authenticator=auth, rng=_seed(p.seed, cell, 0))
    ars = [ArsRole(ArsConfig(station_id=s, psk=_psk(s), mode=p.mode, timers=TIMERS,
                             abs_id=ABS, **ars_caps(p)), rng=_seed(p.seed, cell, i + 1))
           for i, s in enumerate(ars_ids)]
    ams = [AmsRole(AmsConfig(station_id=s, psk=_psk(s), timers=TIMERS, abs_id=ABS),
                   rng=_seed(p.seed, cell, 100_000 + j)) for j, s in enumerate(ams_ids)]
    spare = [AmsRole(AmsConfig(station_id=s, psk=_psk(s), timers=TIMERS, abs_id=ABS),
                     rng=_seed(p.seed, cell, 900_000 + k)) for k, s in enumerate(legit_ids)]
    roles: dict[int, Any] = {ABS: abs_}
    roles.update({r.station_id: r for r in (*ars, *ams, *spare)})
    net = ScaleNet(roles, loss=p.loss, seed=_seed(p.seed, cell, -1) % 2**32)
    return Cell(p, net, abs_, ars, ams, spare)


# -- driving the network ------------------------------------------------------------------------
def drive(c: Cell, *, limit: float, done: Callable[[], bool] | None = None,
          actions: list[tuple[float, Callable[[], None]]] | None = None) -> None:
    """Hop by hop: due ``actions`` ``(time, callable)``, due timers, one exchange; when a hop
    carries nothing, jump to the next deadline or action. Returns once ``done()`` holds and the
    cell is quiet (no deadline within ``QUIET`` s: nothing retransmits), or after ``limit``
    simulated seconds. Events are drained at every hop."""
    net = c.net
    end = net.now + limit
    todo = sorted(actions or [], key=lambda a: a[0])
    while True:
        while todo and todo[0][0] <= net.now:
            todo.pop(0)[1]()
        net.run_timers()
        sent = net.step()
        c.steps += 1
        c.drain()
        if sent:
            net.now += HOP
            continue
        nxt = net.next_deadline()
        if not todo and (done is None or done()) and nxt > net.now + QUIET:
            return
        if todo:
            nxt = min(nxt, todo[0][0])
        if nxt >= end:
            net.now = max(net.now, end)
            return
        net.now = max(net.now + HOP, nxt) if nxt <= net.now else nxt


def enter_arss(c: Cell) -> None:
    """Phase 1: every ARS enters at once."""
    for r in c.ars:
        c.attach(r, ABS)
    drive(c, limit=60.0, done=lambda: all(r.phase == "operational" for r in c.ars))
    if not all(r.phase == "operational" for r in c.ars):
        raise RuntimeError("not every ARS entered")


def enter_amss(c: Cell, ams: list[AmsRole]) -> dict[str, Any]:
    """Phase 2: the AMSs enter through their ARSs in waves; CPU, air messages, time."""
    p, m_ = c.params, len(c.ars)
    per_ars: list[list[AmsRole]] = [ams[i::m_] for i in range(m_)]
    wave = p.wave if p.wave > 0 else max(len(x) for x in per_ars)
    rate = c.ars[0].config.max_ranging_per_s  # type: ignore[attr-defined]
    gap = wave / rate if p.wave > 0 else 0.0
    t0 = c.net.now
    actions: list[tuple[float, Callable[[], None]]] = []
    for i, group in enumerate(per_ars):
        via = c.ars[i].station_id
        for w in range(0, len(group), wave):
            def start(batch: list[AmsRole] = group[w:w + wave], via: int = via) -> None:
                for a in batch:
                    c.attach(a, via)
            actions.append((t0 + (w // wave) * gap, start))
    before = c.air_messages()
    failed_before = Counter(c.failed)
    cpu0 = time.process_time()
    drive(c, limit=600.0, actions=actions,
          done=lambda: all(a.phase in ("operational", "failed") for a in ams))
    cpu = time.process_time() - cpu0
    air = c.air_messages() - before
    entered = sum(1 for a in ams if a.phase == "operational")
    last = max((c.attached_at.get(a.station_id, t0) for a in ams), default=t0)
    lat = sorted(c.attached_at[a.station_id] - c.started_at[a.station_id] for a in ams
                 if a.station_id in c.attached_at)
    return {"ams": len(ams), "entered": entered, "cpu_s": cpu,
            "cpu_per_entry_s": cpu / max(1, len(ams)),
            "air_messages": sum(air.values()),
            "air_messages_per_entry": sum(air.values()) / max(1, len(ams)),
            "air_messages_by_title": dict(sorted(air.items())),
            "sim_s": round(last - t0, 3), "waves": math.ceil(max(map(len, per_ars)) / wave),
            "entry_latency_s": {"median": round(lat[len(lat) // 2], 3) if lat else None,
                                "p95": round(lat[int(0.95 * (len(lat) - 1))], 3) if lat else None,
                                "max": round(lat[-1], 3) if lat else None},
            "failures": dict(c.failed - failed_before)}


# -- key agreement ------------------------------------------------------------------------------
def _same(a: KeyInfo | None, b: KeyInfo | None, *, teks: bool = True) -> bool:
    """Both ends name the same AK and CMAC keys (and TEKs) by identifiers and check values."""
    if a is None or b is None:
        return False
    ak = (a.akid, a.pmk_sn, a.cmac_key_count, a.kcv_cmac_u, a.kcv_cmac_d) == \
        (b.akid, b.pmk_sn, b.cmac_key_count, b.kcv_cmac_u, b.kcv_cmac_d)
    return ak and (not teks or (a.counter_teks, a.kcv_teks) == (b.counter_teks, b.kcv_teks))


def key_check(c: Cell, ams: Iterable[AmsRole] | None = None) -> dict[str, Any]:
    """Every AMS against its key holder (and the ABS's AK), every ARS relay link against the ABS."""
    by_id = {r.station_id: r for r in c.ars}
    bad: list[str] = []
    n = 0
    for a in (c.ams + c.legit) if ams is None else ams:
        if a.phase != "operational":
            continue
        n += 1
        mine = a.key_info()
        holder = by_id.get(a.serving) if c.distributed and a.serving != ABS else None
        held = holder.key_info(a.station_id) if holder is not None else \
            c.abs_.key_info(a.station_id)
        if not _same(mine, held):
            bad.append(f"{a.station_id:#x}: holder")
        elif not _same(mine, c.abs_.key_info(a.station_id), teks=holder is None):
            bad.append(f"{a.station_id:#x}: ABS AK")
        elif c.abs_.via_of(a.station_id) != a.serving:
            bad.append(f"{a.station_id:#x}: path")
    for r in c.ars:
        if not _same(r.key_info(), c.abs_.key_info(r.station_id)):
            bad.append(f"ARS {r.station_id:#x}")
    return {"checked_ams": n, "disagree": len(bad), "examples": bad[:5], "agree": not bad}


# -- phases 3 and 4 -----------------------------------------------------------------------------
def tek_refresh(c: Cell) -> dict[str, Any]:
    """Phase 3: a TEK update for every AMS and every ARS relay link, all at once."""
    subs: list[Any] = [a for a in c.ams if a.phase == "operational"] + c.ars
    newest = {s.station_id: s.link.newest_counter for s in subs}
    before = c.air_messages()
    cpu0 = time.process_time()
    for s in subs:
        s._start_refresh(c.net.now)  # the refresh the schedule would start at 80 % of the TEK life
        c.net.touch(s.station_id)
    drive(c, limit=120.0, done=lambda: all(s.link.newest_counter > newest[s.station_id]
                                           for s in subs))
    cpu = time.process_time() - cpu0
    air = c.air_messages() - before
    done = sum(1 for s in subs if s.link.newest_counter > newest[s.station_id])
    return {"links": len(subs), "refreshed": done, "cpu_s": cpu,
            "cpu_per_refresh_s": cpu / len(subs),
            "air_messages_per_refresh": sum(air.values()) / len(subs),
            "keys": key_check(c)}


def handover(c: Cell) -> dict[str, Any]:
    """Phase 4: min(200, N/5) AMSs move at once to the next ARS, AKs pre-distributed first."""
    n = c.params.n_handovers
    if len(c.ars) < 2 or n == 0:
        return {"handovers": 0, "skipped": "needs 2 ARSs and 5 AMSs"}
    idx = {r.station_id: i for i, r in enumerate(c.ars)}
    served = [[a for a in c.ams if a.phase == "operational" and a.serving == r.station_id]
              for r in c.ars]
    movers = [a for row in itertools.zip_longest(*served) for a in row if a is not None][:n]
    target = {a.station_id: c.ars[(idx[a.serving] + 1) % len(c.ars)].station_id
              for a in movers}
    before = c.air_messages()
    cpu0 = time.process_time()
    for a in movers:
        c.abs_.prepare_handover(a.station_id, [target[a.station_id]], c.net.now)
    c.net.touch(ABS)
    drive(c, limit=60.0)
    for a in movers:
        a.handover(target[a.station_id], c.net.now)
        c.net.touch(a.station_id)
    drive(c, limit=120.0, done=lambda: all(a.serving == target[a.station_id] for a in movers))
    cpu = time.process_time() - cpu0
    air = c.air_messages() - before
    moved = sum(1 for a in movers if a.serving == target[a.station_id])
    return {"handovers": len(movers), "completed": moved, "cpu_s": cpu,
            "cpu_per_handover_s": cpu / len(movers),
            "air_messages_per_handover": sum(air.values()) / len(movers),
            "ak_requests": air.get(m.AkRequest.TITLE, 0),
            "air_messages_by_title": dict(sorted(air.items())), "keys": key_check(c)}


# -- phase 5: flood ------------------------------------------------------------------------------
def _spoof(fake: int, target: int, nonce: bytes) -> bytes:
    return control_mpdu(m.RngReq(
        purpose=m.RangingPurpose.INITIAL_ENTRY, cmac_key_count=0, target_id=station_bytes(target),
        amsid=station_bytes(fake), nonce_ams=nonce, stid=None, serving_id=None).encode())


def flood(c: Cell) -> dict[str, Any]:
    """Phase 5: spoofed initial ranging straight at the ABS and through the ARSs while M+1 new
    AMSs enter (one through each ARS, one at the ABS); then the spoofed attempts expire.

    The spoofed station ids arrive as a Poisson process of ``flood_rate`` ids/s (seeded), each
    sending one request straight to the ABS and one through an ARS (round robin), each fed to
    ``receive`` at its own arrival time, after the hop's real frames."""
    p, abs_, net = c.params, c.abs_, c.net
    rng = np.random.default_rng(_seed(p.seed, "flood", 0))
    t0 = net.now
    arrivals = t0 + np.cumsum(rng.exponential(1.0 / p.flood_rate, p.flood))
    t_end = float(arrivals[-1]) if p.flood else t0
    t_legit = t0 + 0.1 * (t_end - t0)
    paths = [*(r.station_id for r in c.ars), ABS]
    peak = abs_.half_open
    ars_peak: Counter[str] = Counter()
    limited0 = sum(r.rejections["rate_limited"] for r in c.ars)
    legit_at: dict[int, float] = {}
    sent = 0
    started = False
    before = c.air_messages()
    cpu0 = time.process_time()
    while sent < p.flood:  # hop by hop: timers, the hop's exchange, the hop's spoofed requests
        if not started and net.now >= t_legit:
            started = True
            for a, via in zip(c.legit, paths, strict=True):
                c.attach(a, via)
        net.run_timers()
        net.step()
        c.steps += 1
        c.drain()
        for a in c.legit:
            if a.phase == "operational":
                legit_at.setdefault(a.station_id, net.now)
        until = net.now + HOP
        while sent < p.flood and arrivals[sent] < until:
            at = max(net.now, float(arrivals[sent]))
            fake = SPOOF_BASE + sent
            ars = c.ars[sent % len(c.ars)]
            abs_.receive(fake, _spoof(fake, ABS, rng.bytes(6)), at)
            peak = max(peak, abs_.half_open)
            ars.receive(fake, _spoof(fake, ars.station_id, rng.bytes(6)), at)
            peak = max(peak, abs_.half_open)
            net.touch(ABS)
            net.touch(ars.station_id)
            sent += 1
        for r in c.ars:
            for k, v in r.state_size().items():
                ars_peak[k] = max(ars_peak[k], v)
        net.now = until
    flood_cpu = time.process_time() - cpu0
    size_flood = abs_.state_size()
    # the legitimate entries finish; then every spoofed attempt expires
    timeout = abs_.config.entry_timeout_for(abs_.timers) + 1.0
    drive(c, limit=timeout, done=lambda: all(a.phase in ("operational", "failed")
                                             for a in c.legit))
    drive(c, limit=timeout, done=lambda: abs_.half_open == 0)
    cpu = time.process_time() - cpu0
    air = c.air_messages() - before
    legit = []
    for a, via in zip(c.legit, paths, strict=True):
        sid = a.station_id
        at_ = legit_at.get(sid, c.attached_at.get(sid))
        legit.append({"station": f"{sid:#x}",
                      "via": "ABS" if via == ABS else f"ARS-{paths.index(via) + 1}",
                      "entered": a.phase == "operational",
                      "entered_after_s": None if at_ is None else round(at_ - c.started_at[sid], 3),
                      "during_flood": sid in legit_at})
    keys = key_check(c, c.legit)
    after = abs_.state_size()
    real = len(c.ars) + sum(1 for a in (*c.ams, *c.legit) if abs_.context(a.station_id))
    return {
        "spoofed_ids": p.flood, "spoofed_requests": 2 * p.flood, "rate_ids_per_s": p.flood_rate,
        "duration_s": round(t_end - t0, 3), "max_half_open": peak,
        "cap": abs_.config.max_half_open, "cap_per_via": abs_.config.max_half_open_per_via,
        "legit_entries_ok": all(x["entered"] and x["during_flood"] for x in legit)
        and keys["agree"],
        "legit_entered": sum(1 for x in legit if x["entered"]),
        "legit_entered_during_flood": sum(1 for x in legit if x["during_flood"]),
        "legit": legit, "legit_keys_agree": keys["agree"],
        "ars_rate_limited": sum(r.rejections["rate_limited"] for r in c.ars) - limited0,
        "abs_state_at_flood_end": size_flood, "abs_state_after_expiry": after,
        "abs_holds_only_real_stations": after["entries"] == 0 and after["contexts"] == real
        and after["stids"] == real and after["stars"] == real,
        "ars_state_peak": dict(ars_peak), "cpu_flood_s": flood_cpu, "cpu_total_s": cpu,
        "air_messages": sum(air.values()),
    }


# -- memory --------------------------------------------------------------------------------------
_src, _first = inspect.getsourcelines(RoleBase.events)
_EVENTS_LINES = range(_first, _first + len(_src))
"""Lines of ``RoleBase.events``: draining a role's event deque gives it a new (traced) block that
replaces the one it had before tracing started -- no growth, so kept apart."""


def _owner(tb: tracemalloc.Traceback) -> str:
    """Which role kept an allocation: a frame in abs.py -> ABS, in ars.py -> ARS, in
    subscriber.py/ams.py (and neither) -> AMS; ``other`` is the simulator itself."""
    names = [f.filename.replace("\\", "/") for f in tb]
    if any(n.endswith("stack/roles/base.py") and f.lineno in _EVENTS_LINES
           for n, f in zip(names, tb, strict=True)):
        return "event_queues"  # a drained deque's fresh block: one per role, not per context
    if any(n.endswith("stack/roles/abs.py") for n in names):
        return "abs"
    if any(n.endswith("stack/roles/ars.py") for n in names):
        return "ars"
    if any(n.endswith(("stack/roles/subscriber.py", "stack/roles/ams.py")) for n in names):
        return "ams"
    if any("/stack/" in n for n in names):
        return "unattributed"  # no role frame within TRACE_FRAMES of the allocation
    return "other"


def memory(p: Params, n: int) -> dict[str, Any]:
    """Bytes still allocated per AMS context after ``n`` AMSs entered, by role kind."""
    c = build(p, n, "mem")
    enter_arss(c)
    c.drain()
    gc.collect()
    tracemalloc.start(TRACE_FRAMES)
    try:
        res = enter_amss(c, c.ams)
        c.drain()
        gc.collect()
        snap = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    by: Counter[str] = Counter()
    sites: dict[str, Counter[str]] = {}
    for st in snap.statistics("traceback"):
        who = _owner(st.traceback)
        by[who] += st.size
        fr = st.traceback[-1]
        site = "/".join(fr.filename.replace("\\", "/").split("/")[-2:]) + f":{fr.lineno}"
        sites.setdefault(who, Counter())[site] += st.size
    # every AMS entered through an ARS: n contexts at the ABS and n spread over the ARSs
    return {"ams": n, "entered": res["entered"],
            "abs": round(by["abs"] / n), "ars": round(by["ars"] / n),
            "ams_role": round(by["ams"] / n), "other_bytes": by["other"],
            "unattributed_bytes": by["unattributed"], "event_queue_bytes": by["event_queues"],
            "trace_frames": TRACE_FRAMES,
            "total_bytes": dict(by),
            "top_sites": {k: dict(v.most_common(6)) for k, v in sites.items()
                          if k in ("abs", "ars", "ams", "unattributed")}}


# -- warm-up ---------------------------------------------------------------------------------------
def warm(p: Params) -> None:
    """One small cell through entry, TEK refresh and handover, not measured: imports, numba's
    compiled burst passes and caches are ready before the first timed cell."""
    c = build(Params(ams=8, ars=2, mode=p.mode, seed=p.seed, wave=p.wave), 8, "warm")
    enter_arss(c)
    enter_amss(c, c.ams)
    tek_refresh(c)
    handover(c)


# -- the run --------------------------------------------------------------------------------------
def run(p: Params) -> dict[str, Any]:
    """Every phase at N, the entry phase at each size up to N, memory on its own cell."""
    out: dict[str, Any] = {"params": {
        "ams": p.ams, "ars": p.ars, "loss": p.loss, "seed": p.seed, "mode": p.mode.value,
        "wave_per_ars": p.wave, "handovers": p.n_handovers, "flood_ids": p.flood,
        "flood_rate_ids_per_s": p.flood_rate, "hop_s": HOP,
        "timers": {"rto": TIMERS.rto, "max_retries": TIMERS.max_retries}},
        "raised_caps": {"abs": {k: v for k, v in abs_caps(p).items()
                                if v != getattr(AbsConfig(station_id=ABS), k)},
                        "ars": {k: v for k, v in ars_caps(p).items()
                                if v != getattr(ArsConfig(station_id=ARS_BASE + 1,
                                                          psk=bytes(16)), k)}}}
    warm(p)
    entry: dict[str, Any] = {}
    for n in (s for s in SIZES if s < p.ams):
        c = build(p, n, f"entry{n}")
        enter_arss(c)
        entry[str(n)] = enter_amss(c, c.ams)
        entry[str(n)]["keys_agree"] = key_check(c)["agree"]
        del c
        gc.collect()
    c = build(p, p.ams, "main", legit=p.ars + 1)
    enter_arss(c)
    entry[str(p.ams)] = enter_amss(c, c.ams)
    entry[str(p.ams)]["keys_agree"] = key_check(c)["agree"]
    out["entry"] = entry
    out["cpu_per_entry_s"] = {k: v["cpu_per_entry_s"] for k, v in entry.items()}
    out["air_messages_per_entry"] = entry[str(p.ams)]["air_messages_per_entry"]
    out["tek_refresh"] = tek_refresh(c)
    out["handover"] = handover(c)
    out["flood"] = flood(c)
    final = key_check(c)
    out["keys"] = final
    not_in = [a for a in (*c.ams, *c.legit) if a.phase != "operational"]
    out["all_entered"] = not not_in and all(v["entered"] == v["ams"] for v in entry.values())
    out["all_keys_agree"] = final["agree"] and not not_in and all(
        v["keys_agree"] for v in entry.values())
    out["rejections"] = {
        "abs": dict(c.abs_.rejections.most_common()),
        "ars": dict(sum((r.rejections for r in c.ars), Counter()).most_common()),
        "ams": dict(sum((a.rejections for a in (*c.ams, *c.legit)), Counter()).most_common())}
    out["internal_errors"] = sum(r.rejections["internal_error"] for r in c.roles())
    out["entry_failures"] = dict(c.failed)
    out["events"] = dict(c.events.most_common())
    del c
    gc.collect()
    n_mem = min(p.ams, 1000) if p.mem_ams is None else p.mem_ams
    if n_mem:
        out["memory"] = memory(p, n_mem)
        out["bytes_per_ams_context"] = {"abs": out["memory"]["abs"],
                                        "ars": out["memory"]["ars"]}
    return out


def _table(res: dict[str, Any]) -> str:
    rows = [f"{'AMSs':>6} {'entered':>8} {'CPU/entry':>11} {'air msgs/entry':>15} "
            f"{'sim s':>7} {'waves':>6}"]
    for k, v in res["entry"].items():
        rows.append(f"{k:>6} {v['entered']:>8} {v['cpu_per_entry_s'] * 1e3:>8.2f} ms "
                    f"{v['air_messages_per_entry']:>15.1f} {v['sim_s']:>7.2f} {v['waves']:>6}")
    t, h, f = res["tek_refresh"], res["handover"], res["flood"]
    rows.append("")
    rows.append(f"TEK refresh: {t['refreshed']}/{t['links']} links, "
                f"{t['cpu_per_refresh_s'] * 1e3:.2f} ms CPU and "
                f"{t['air_messages_per_refresh']:.1f} air messages each")
    if h.get("handovers"):
        rows.append(f"handover:    {h['completed']}/{h['handovers']} at once, "
                    f"{h['cpu_per_handover_s'] * 1e3:.2f} ms CPU and "
                    f"{h['air_messages_per_handover']:.1f} air messages each "
                    f"({h['ak_requests']} AK Requests)")
    rows.append(f"flood:       {f['spoofed_ids']} spoofed ids ({f['spoofed_requests']} requests) "
                f"in {f['duration_s']} s; half-open max {f['max_half_open']} / cap {f['cap']}; "
                f"legit entries {f['legit_entered_during_flood']}/{len(f['legit'])} during it, "
                f"{f['legit_entered']} in the end -> legit_entries_ok={f['legit_entries_ok']}")
    rows.append(f"             after expiry the ABS holds real stations only: "
                f"{f['abs_holds_only_real_stations']} ({f['abs_state_after_expiry']})")
    if "memory" in res:
        mem = res["memory"]
        rows.append(f"memory per AMS context ({mem['ams']} AMSs): ABS {mem['abs']} B, "
                    f"ARS {mem['ars']} B, AMS role {mem['ams_role']} B")
    rows.append(f"all keys agree: {res['all_keys_agree']} ({res['keys']['checked_ams']} AMSs, "
                f"{res['keys']['disagree']} disagreements); internal errors "
                f"{res['internal_errors']}")
    raised = res["raised_caps"]
    rows.append(f"caps raised for the scenario: ABS {raised['abs'] or 'none'}, "
                f"ARS {raised['ars'] or 'none'}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ams", type=int, default=1000, help="AMSs (N)")
    ap.add_argument("--ars", type=int, default=8, help="ARSs (M)")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON here")
    ap.add_argument("--loss", type=float, default=0.0, help="frame loss on every link")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=[x.value for x in SecurityMode],
                    default=SecurityMode.DISTRIBUTED.value)
    ap.add_argument("--wave", type=int, default=20,
                    help="AMSs starting entry at once per ARS (0: all at once)")
    ap.add_argument("--flood", type=int, default=10_000, help="spoofed station ids")
    ap.add_argument("--flood-rate", type=float, default=2000.0, help="spoofed ids per second")
    ap.add_argument("--mem-ams", type=int, default=None,
                    help="AMSs of the tracemalloc cell (default min(N, 1000); 0: skip)")
    args = ap.parse_args(argv)
    if args.ams < 1 or args.ars < 1 or not 0 <= args.loss < 1 or args.flood < 1 \
            or not args.flood_rate > 0 or args.wave < 0:
        ap.error("need --ams, --ars, --flood >= 1, --flood-rate > 0, --wave >= 0, "
                 "0 <= --loss < 1")
    p = Params(ams=args.ams, ars=args.ars, loss=args.loss, seed=args.seed,
               mode=SecurityMode(args.mode), wave=args.wave, flood=args.flood,
               flood_rate=args.flood_rate, mem_ams=args.mem_ams)
    info = announce()
    wall0 = time.perf_counter()
    res = run(p)
    res["wall_s"] = time.perf_counter() - wall0
    print()
    print(_table(res))
    if args.json:
        out = {"benchmark": "scale", "machine": info, **res}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
