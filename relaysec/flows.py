"""Application traffic of a trial: flows offered to the roles and checked where they arrive.

A flow is one direction between two stations (``ABS -> AMS-3``); its packets are deterministic in
(seed, flow id, sequence number), so the sink checks every delivered byte
(:mod:`relaysec.appdata`).
A :class:`TrafficPlan` is what a phase offers each frame: a quota of packets per flow (or no
limit), or *saturating* flows that keep a window of packets in flight (full buffer).
:class:`FlowBook` owns every flow of the run and accounts the ``DataReceived`` events.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relaysec.appdata import Flow, flow_of

#: Flow ids are 16 bits in the packet header (:mod:`relaysec.appdata`); 0 is never used.
MAX_FLOWS = 0xFFFF


@dataclass
class FlowEntry:
    """One flow: *src* sends to *dst*; *ams* names the mobile it belongs to (per-AMS reports)."""

    flow: Flow
    src: str
    dst: str
    ams: str
    label: str
    sent_at: array[float] = field(default_factory=lambda: array("d"))  # send time of each seq
    low: int = 0          # every sequence number below is delivered or given up

    def in_flight(self, now: float, expire_s: float) -> int:
        """Packets sent less than *expire_s* ago and not delivered (a lost packet stops
        counting against a window once it expired)."""
        seen = self.flow.delivered_seqs
        while self.low < len(self.sent_at) and (
                self.low in seen or now - self.sent_at[self.low] >= expire_s):
            self.low += 1
        return sum(1 for q in range(self.low, len(self.sent_at))
                   if q not in seen and now - self.sent_at[q] < expire_s)


@dataclass
class TrafficPlan:
    """What a phase offers: ``quota[flow_id]`` packets left (None = unlimited), at most
    ``per_frame`` per flow and frame (in one frame of ``every``); ``window`` (saturating
    traffic) caps the packets of a flow in flight (sent, not yet delivered), so a full buffer
    never grows without bound."""

    flows: list[FlowEntry] = field(default_factory=list)
    quota: dict[int, int | None] = field(default_factory=dict)
    per_frame: int = 1
    window: int | None = None
    turn: int = 0         # offers so far (the flow offered first rotates)
    every: int = 1        # a flow offers in one frame of `every` (a probe's rate)

    def stop(self) -> None:
        """Offer nothing more (what is queued still drains)."""
        for e in self.flows:
            self.quota[e.flow.flow_id] = 0


class FlowBook:
    """Every flow of a run, by id; accounts deliveries and stray packets.

    *id_of*: station name -> id; *name_of*: station id -> name."""

    def __init__(self, payload_bytes: int, seed: int, id_of: Mapping[str, int],
                 name_of: Callable[[int], str]) -> None:
        self.payload_bytes = payload_bytes
        self.seed = seed
        self.id_of = id_of
        self.name_of = name_of
        self.flows: dict[int, FlowEntry] = {}
        self.stray_corrupted = 0
        self.app_bytes_by_hop: dict[tuple[str, str], int] = {}
        self._next = 1

    def new_flow(self, src: str, dst: str, label: str, ams: str) -> FlowEntry:
        """A new flow *src* -> *dst* (RuntimeError past :data:`MAX_FLOWS` flows in a run)."""
        fid = self._free_id()
        entry = FlowEntry(Flow(fid, f"{label}:{src}->{dst}", self.payload_bytes, self.seed),
                          src, dst, ams, label)
        self.flows[fid] = entry
        return entry

    def _free_id(self) -> int:
        if self._next <= MAX_FLOWS:
            fid = self._next
            self._next += 1
            return fid
        raise RuntimeError(f"more than {MAX_FLOWS} application flows in one run")

    def plan(self, label: str, pairs: Iterable[tuple[str, str, str]], *, quota: int | None,
             per_frame: int, window: int | None = None) -> TrafficPlan:
        """A plan of new flows, one per ``(src, dst, ams)``."""
        plan = TrafficPlan(per_frame=per_frame, window=window)
        for src, dst, ams in pairs:
            e = self.new_flow(src, dst, label, ams)
            plan.flows.append(e)
            plan.quota[e.flow.flow_id] = quota
        return plan

    def offer(self, plan: TrafficPlan, send: Callable[[str, str, bytes], bool],
              now: float, *, expire_s: float = float("inf")) -> None:
        """Offer this frame's packets of *plan*; ``send(src, dst, packet)`` returns False when
        the stack cannot take it yet (no keys: entry or handover), and the flow waits. A
        window counts packets in flight for less than *expire_s* (older ones are lost)."""
        # flows offer every `every`-th frame (a flow and its reverse in the same one, the
        # AMSs staggered), the one that sent least recently first: flows sharing a send buffer
        # share it fairly
        turn = plan.turn
        plan.turn += 1
        due = [e for j, e in enumerate(plan.flows) if (turn + j // 2) % plan.every == 0]
        due.sort(key=lambda e: e.sent_at[-1] if e.sent_at else float("-inf"))
        for e in due:
            f = e.flow
            left = plan.quota.get(f.flow_id)
            n = plan.per_frame if left is None else min(plan.per_frame, left)
            if plan.window is not None:
                n = min(n, plan.window - e.in_flight(now, expire_s))
            for _ in range(max(0, n)):
                if not send(e.src, e.dst, f.peek()):
                    break
                f.mark_sent(now)
                e.sent_at.append(now)
                if left is not None:
                    left -= 1
                    plan.quota[f.flow_id] = left

    def deliver(self, station: str, t: float, ev: Any) -> None:
        """Account one ``DataReceived`` event at *station*: to its flow when the packet claims
        a flow that ends here and comes from that flow's source, else as stray corrupted bytes."""
        fid = flow_of(ev.payload)
        e = self.flows.get(fid) if fid is not None else None
        if e is None or e.dst != station or self.id_of[e.src] != ev.src:
            self.stray_corrupted += len(ev.payload)
            return
        e.flow.deliver(ev.payload, t)
        hop = (self.name_of(ev.via), station)
        self.app_bytes_by_hop[hop] = self.app_bytes_by_hop.get(hop, 0) + len(ev.payload)

    def plan_done(self, plan: TrafficPlan, now: float, drain_s: float) -> bool:
        """Everything offered and then either all delivered or nothing in flight any more (no
        delivery for *drain_s* after the last packet was sent)."""
        for e in plan.flows:
            f = e.flow
            if plan.quota[f.flow_id] != 0:
                return False
            if f.outstanding() == 0:
                continue
            last = max(x for x in (f.stats.last_rx, f.stats.last_tx) if x is not None)
            if now - last < drain_s:
                return False
        return True

    @staticmethod
    def plan_ok(plan: TrafficPlan, min_delivery: float) -> bool:
        """Every flow sent something and delivered at least *min_delivery* of its packets."""
        return all(e.flow.stats.sent_packets > 0
                   and e.flow.stats.delivered_packets >= min_delivery * e.flow.stats.sent_packets
                   for e in plan.flows)

    @staticmethod
    def detail(plan: TrafficPlan, duration_s: float, *, limit: int = 4) -> str:
        """Packets delivered/sent per flow and goodput over *duration_s* (the first *limit*
        flows, then totals)."""
        parts = []
        for e in plan.flows[:limit]:
            s = e.flow.stats
            rate = (f" ({8 * s.delivered_bytes / duration_s / 1e3:.0f} kb/s)"
                    if duration_s > 0 else "")
            parts.append(f"{e.src}->{e.dst} {s.delivered_packets}/{s.sent_packets}{rate}")
        if len(plan.flows) > limit:
            sent = sum(e.flow.stats.sent_packets for e in plan.flows)
            got = sum(e.flow.stats.delivered_packets for e in plan.flows)
            nbytes = sum(e.flow.stats.delivered_bytes for e in plan.flows)
            rate = f" ({8 * nbytes / duration_s / 1e3:.0f} kb/s)" if duration_s > 0 else ""
            parts.append(f"all {len(plan.flows)} flows {got}/{sent}{rate}")
        return ", ".join(parts)

    def totals(self, entries: Iterable[FlowEntry] | None = None) -> dict[str, int]:
        """Byte and packet totals over *entries* (default: every flow)."""
        out = dict.fromkeys(("sent", "delivered", "lost", "corrupted", "duplicates",
                             "sent_packets", "delivered_packets"), 0)
        for e in (self.flows.values() if entries is None else entries):
            s = e.flow.stats
            out["sent"] += s.sent_bytes
            out["delivered"] += s.delivered_bytes
            out["lost"] += s.lost_bytes
            out["corrupted"] += s.corrupted_bytes
            out["duplicates"] += s.duplicate_packets
            out["sent_packets"] += s.sent_packets
            out["delivered_packets"] += s.delivered_packets
        return out
