"""The scale benchmark's scenario: one ABS, M ARSs, N AMSs, the sans-I/O roles wired in memory.

What: the cell that :mod:`benchmarks.scale` measures, and its phases. The ABS/ARS/AMS roles
(:mod:`stack.roles`) run over :class:`stack.roles.memnet.Net` (1 ms per hop, seeded frame loss
on every link both ways; :class:`ScaleNet` polls only the stations that have something to do
and runs due timers at every hop), every role seeded: a simulation. The AMSs are spread round
robin over the ARSs and enter through them. Phases, on one cell of N AMSs:

1. **ARS entry** (:func:`enter_arss`): every ARS enters at once.
2. **AMS entry** (:func:`enter_amss`): the AMSs start in waves of ``--wave`` per ARS (default
   20, the ARS's ``ranging_burst``), one wave every ``wave / max_ranging_per_s`` seconds -- what
   the ARS's initial-ranging limiter relays at once (``--wave 0``: all at once).
3. **TEK refresh** (:func:`tek_refresh`) for every AMS at once (``AmsRole._start_refresh``) and
   every ARS relay link.
4. **Handover** (:func:`handover`) of min(200, N/5) AMSs at once to the next ARS, with AK
   pre-distribution (``AbsRole.prepare_handover``, then ``AmsRole.handover``; centralized: no
   pre-distribution).
5. **Flood** (:func:`flood`): initial AAI-RNG-REQs from ``--flood`` (10 000) unknown station ids
   arriving as a Poisson process of ``--flood-rate`` (2000) ids/s, each straight at the ABS and
   through an ARS (round robin), as in ``tests/roles/test_flood.py``; after a tenth of it M+1 new
   AMSs start entering (one through each ARS, one at the ABS): ``legit_entries_ok`` when all of
   them have entered, with matching keys, before the flood ends. Largest half-open count seen
   (sampled after every spoofed request) against the cap; then the attempts expire and the ABS
   tables must list real stations only.

Each phase returns what it observed, with the CPU seconds (``time.process_time``, the whole
simulation: roles and in-memory network) and air messages of the span it drives -- the span
sits inside the phase (the flood reads CPU at its end and again after expiry), so the reading
stays with it. :func:`key_check` compares every AMS's ``key_info()`` with its key holder's (the
serving ARS in distributed mode, else the ABS) and the ABS's AK, and every ARS's relay link
with the ABS's. :func:`abs_caps` / :func:`ars_caps` raise the caps the scenario needs above
their defaults (entries in progress at once in total and per access station; held handover
AKs); the ARS's ranging rate limit keeps its default.

Why a module of its own: the scenario is the sans-I/O cell and how it is driven; the
measurement around it (sizes, warm-up, tracemalloc attribution, table, JSON, CLI) lives in
:mod:`benchmarks.scale`, which imports this module (never the reverse).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
from stack.roles.framing import control_mpdu
from stack.roles.ids import station_bytes
from stack.roles.memnet import Net

ABS = 0x0000_BB00_0001
ARS_BASE = 0x0002_AA00_0000
AMS_BASE = 0x001B_1000_0000
LEGIT_BASE = 0x001B_2000_0000   # AMSs that enter during the flood
SPOOF_BASE = 0x0FA0_0000_0000   # invented station ids of the flood
HOP = 0.001                     # Net advances the clock 1 ms per exchange step
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
