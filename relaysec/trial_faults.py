"""Faults on purpose and the soak's bookkeeping for a :class:`relaysec.trial.Trial`.

A mixin of :class:`relaysec.trial.Trial` (which holds the state named below and builds the
:class:`relaysec.faults.FaultPlan` in its constructor): injecting one more fault during the run
(the soak draws them from the seed), restarting a station (a ``restart`` fault), following each
fault to its recovery from the events, and the soak's samples of role state and memory with the
trimming that keeps a long soak's records bounded (the soak phase is
:func:`relaysec.phases.soak`). Kept apart because what breaks the cell on purpose and how a long
run is measured change for different reasons than how a trial builds and drives its cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from relaysec.config import arq_params, arq_per_hop

if TYPE_CHECKING:
    from relaysec.cell import Cell
    from relaysec.config_schema import Config
    from relaysec.eventlog import EventLog
    from relaysec.faults import FaultPlan
    from relaysec.flows import FlowBook
    from relaysec.report import Trace
    from stack.nonces import NonceMonitor

__all__ = ["SOAK_KEEP_S", "FaultsAndSoak"]


SOAK_KEEP_S = 60.0
"""Simulated seconds of soak events the event log keeps (older ones are tallied only)."""


def _rss_kb() -> int:
    """Resident memory of this process in KiB (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


class FaultsAndSoak:
    """Fault injection and soak bookkeeping of a trial (mixed into Trial): adding faults,
    restarting stations, marking faults recovered, sampling the soak."""

    cfg: Config
    seed: int
    stretch: float
    seeded_keys: bool
    progress: Callable[[str], None]
    cell: Cell | None
    roles: dict[str, Any]
    nodes: dict[str, Any]
    by_name: dict[str, dict[str, Any]]
    id_of: dict[str, int]
    abs_name: str
    serving: dict[str, str]
    log: EventLog
    nonces: NonceMonitor
    flows: FlowBook
    trace: Trace
    fault_plan: FaultPlan
    soak_samples: list[dict[str, Any]]
    msc_dropped: int
    restarts: dict[str, int]
    retired_roles: list[Any]
    # provided by Trial
    now: float
    name_of: Callable[[int | None], str]

    def add_fault(self, spec: dict[str, Any]) -> None:
        """Inject one more fault during the run (the soak draws them from the seed)."""
        from relaysec.faults import Fault, parse_link, validate_faults

        validate_faults([spec], self.cfg["stations"])
        link = parse_link(spec["link"], list(self.by_name)) if "link" in spec else None
        self.fault_plan.faults.append(Fault(len(self.fault_plan.faults), spec["kind"],
                                            dict(spec), link))

    def soak_sample(self) -> None:
        """One sample of the soak: every role's table sizes, the process's resident memory,
        the trial's own records (what grows by design: one entry per packet and event)."""
        roles = {n: r.state_counts() for n, r in self.roles.items()}
        self.soak_samples.append({
            "t": self.now, "rss_kb": _rss_kb(), "roles": roles,
            "events_logged": len(self.log),
            "packets_recorded": sum(len(e.sent_at) for e in self.flows.flows.values()),
            "nonce_streams": self.nonces.streams})
        for series in self.trace.bursts.values():   # the plots' series: keep the last 10 k
            del series[:-10_000]
        # the soak's events and chart entries: the last minute (phases query recent events
        # only; the event log's tally keeps counting everything), and the chart's first 500
        t0 = self.soak_samples[0]["t"]
        if self.now - t0 > 2 * SOAK_KEEP_S:
            self.log.forget(t0, self.now - SOAK_KEEP_S)
        if self.cell is not None:
            soak_msc = [i for i, e in enumerate(self.cell.msc) if e.t >= t0]
            if len(soak_msc) > 500:
                del self.cell.msc[soak_msc[500]:]
                self.msc_dropped += len(soak_msc) - 500

    def restart_station(self, name: str) -> None:
        """*name* crashes and restarts (a ``restart`` fault): its role is replaced by a new one
        that knows nothing -- no keys, no contexts, no ARQ state, new randoms -- and enters the
        network again by itself; its peers find out from the traffic (docs/trial.md)."""
        from relaysec.cell import make_roles

        n = self.restarts[name] = self.restarts.get(name, 0) + 1
        cfg = dict(self.cfg)
        cfg["seed"] = int(np.random.default_rng([self.seed, self.id_of[name] & 0xFFFFFFFF, n])
                          .integers(2**62))
        role = make_roles(cfg, [self.by_name[name]], seeded_keys=self.seeded_keys,
                          stretch=self.stretch)[name]
        role.configure_arq(arq_params(self.cfg, self.stretch), per_hop=arq_per_hop(self.cfg))
        node = self.nodes[name]
        self.retired_roles.append(self.roles[name])
        self.roles[name] = node.role = node.mac.role = role
        node._seen_rejections.clear()  # the new role counts its rejections from zero
        self._reenter(name)
        self.progress(f"  fault: {name} restarted at {self.now * 1e3:.0f} ms")

    def _reenter(self, name: str) -> None:
        st = self.by_name[name]
        via = st.get("parent", self.abs_name) if st["role"] == "ars" else self.serving[name]
        self.roles[name].attach(self.id_of[via], self.now)

    def _fault_progress(self, ne: Any) -> None:
        """A restarted station whose new entry failed starts over; a fault is recovered at the
        first data delivered across what it broke once it is over."""
        kind = type(ne.event).__name__
        if kind == "EntryFailed" and ne.station in self.restarts and \
                self.roles[ne.station].phase == "failed":
            self._reenter(ne.station)
        if kind == "Attached" and ne.station in self.restarts:
            # a restarted station that serves no AMS has recovered once it is back in
            for f in self.fault_plan.faults:
                if f.kind == "restart" and f.spec["station"] == ne.station and \
                        f.fired_at is not None and f.recovered_at is None and \
                        ne.station not in self.serving.values():
                    f.recovered_at = ne.t
        if kind != "DataReceived":
            return
        via = self.name_of(ne.event.via)
        for f in self.fault_plan.faults:
            if f.recovered_at is not None or f.kind == "burst_loss":
                continue
            if f.kind == "restart":
                if f.fired_at is None or ne.t < f.fired_at:
                    continue
                who = f.spec["station"]
                if who in (via, ne.station) or self.name_of(ne.event.src) == who:
                    f.recovered_at = ne.t
            else:
                if ne.t < self.fault_plan.outage_end(f):
                    continue
                if f.link is None or {via, ne.station} & {f.link[0], f.link[1]}:
                    f.recovered_at = ne.t
