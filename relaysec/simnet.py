"""The simulated network: every node of a cell on one loopback medium, stepped zone by zone.

See :class:`SimNetwork`; the over-the-air counterpart with the same stepping interface is
:class:`relaysec.ota.OtaNetwork`.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable

from relaysec.node import FrameTap, Node, NodeEvent
from relaysec.schedule import (
    DL,
    DL_ACCESS,
    UL_ACCESS,
    UL_RELAY,
    FrameSchedule,
    Zone,
    ZonePlanner,
)
from relaysec.zonemac import BROADCAST


class SimNetwork:
    """Nodes sharing one loopback medium, stepped zone by zone on a simulated clock.

    Per frame the zone lengths come from *planner* (demand-driven; None: the static
    *schedule*): the demand of each zone is what its transmitters' roles hold for the
    neighbours it reaches (the queue reports a 16m ABS receives, taken without their one-frame
    delay). Per zone: the transmitter builds its zone burst (at the zone start in its own sample
    clock, after a lead-in of half a guard: radio clocks differ by their random start delays, as
    unsynchronised Plutos do) — in a UL-access zone, every AMS with a slot sends its own; then
    every radio receives the zone plus its guard; each receiver demodulates. A receiver skips
    demodulation when nothing in the zone is addressed to it — a simulation shortcut for speed
    (over the air every node demodulates everything); it changes no result because the MAP
    entries of other receivers do not check under its address anyway.
    """

    def __init__(self, nodes: Iterable[Node], schedule: FrameSchedule,
                 *, tap: FrameTap | None = None, planner: ZonePlanner | None = None) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.schedule = schedule
        self.layout = schedule
        self.frame = 0
        self.tap = tap
        self.planner = planner
        self._index = {(z.name, z.tx): i for i, z in enumerate(schedule.zones)}
        self._by_id = {n.station_id: n for n in self.nodes.values()}
        #: capacity bits of the zones that carried data, per frame (index = frame number): what
        #: their OFDM symbols (preamble, header and MAP included) carry at the MCS of their
        #: data. 8 bytes a frame: a 600 s soak kept 120 000 frames x 7 zones of tuples before.
        self.usage = array("d")

    @property
    def now(self) -> float:
        return self.frame * self.schedule.frame_s

    def demand(self) -> dict[int, tuple[int, int]]:
        """``(bytes waiting, largest first MPDU)`` per zone of the static schedule (index), from
        the roles' backlogs."""
        out: dict[int, tuple[int, int]] = {}
        self.urgent: set[int] = set()    # zones with a control message at the head of a queue

        def add(kind: str, tx: str, n: int, head: int, control: bool = False) -> None:
            i = self._index.get((kind, tx))
            if i is not None and n > 0:
                have = out.get(i, (0, 0))
                out[i] = (have[0] + n, max(have[1], head))
                if control:
                    self.urgent.add(i)

        for node in self.nodes.values():
            for dst, b in node.role.backlog().items():
                # in the air the top MCS would need (a slower link, control at the most
                # robust MCS): the planner sizes zones at the top MCS
                n = node.mac.airtime_bytes(dst, b.nbytes, control=b.control)
                head = node.mac.airtime_bytes(dst, b.head, control=b.control)
                if node.station_id == node.abs_id:
                    add(DL, node.name, n, head, b.control)
                elif not node.is_ams:
                    add(UL_RELAY if dst == node.abs_id else DL_ACCESS, node.name, n, head,
                        b.control)
                else:
                    owner = self._by_id.get(dst)
                    if owner is not None:
                        add(UL_ACCESS, owner.name, n, head, b.control)
        # a UL-access zone in use needs its owner's DL zone in the same frame (the grants)
        for (kind, tx), i in self._index.items():
            if kind == UL_ACCESS and i in out:
                add(DL if self.nodes[tx].station_id == self.nodes[tx].abs_id else DL_ACCESS,
                    tx, 1, 1)
        return out

    def step_frame(self) -> None:
        """Run one TDD frame."""
        fs = self.schedule.sample_rate
        if self.planner is None:
            layout = self.schedule
        else:
            demand = self.demand()
            layout = self.planner.plan(demand, self.frame, urgent=self.urgent)
        self.layout = layout
        ul = {z.tx: z for z in layout.zones if z.shared}
        base = self.frame * self.schedule.frame_len
        for zone in layout.zones:
            t0, t1 = (base + zone.start) / fs, (base + zone.end) / fs
            if zone.shared:
                self._run_ul_access(zone, t0, t1)
            else:
                self._run_zone(zone, t0, t1, ul.get(zone.tx))
        tail = self.schedule.frame_len - (layout.zones[-1].end if layout.zones else 0)
        if tail > 0:
            for node in self.nodes.values():
                node.skip_samples(tail)
        self.frame += 1
        end = self.frame * self.schedule.frame_s
        for node in self.nodes.values():
            node.poll(end)

    def _listen(self, zone: Zone, t_end: float, receivers: set[str]) -> None:
        n = zone.length + zone.guard
        for node in self.nodes.values():
            if node.name not in receivers:
                node.skip_samples(n)
                continue
            rx = node.receive_samples(n)
            bursts = node.handle_samples(rx, t_end, frame=self.frame, expect_src=zone.tx)
            if zone.shared or node.station_id == node.abs_id or zone.tx != self._reference(node):
                continue
            # keep this station's frame on its reference's (a 16m AMS tracks its station's
            # preamble, an RS the ABS's): the reference's zone burst starts half a guard into
            # the zone; where it starts in our window says how far our clock has drifted
            # (crystals differ by ppm: over seconds, bursts would drift out of the UL slots)
            ref = self.nodes[zone.tx].addr
            starts = [int(b.start) for b in bursts if b.src == ref]
            if starts and node.radio.caps.retime:
                err = starts[0] - zone.guard // 2
                if abs(err) >= 2:
                    node.radio.retime(max(-64.0, min(64.0, err / 2)))

    def _run_zone(self, zone: Zone, t_start: float, t_end: float, ul: Zone | None) -> None:
        tx = self.nodes[zone.tx]
        tx.poll(t_start)
        lead = zone.guard // 2
        ul_symbols = None if ul is None or zone.name == UL_RELAY else \
            (ul.length - ul.guard // 2) // tx.sym
        tx.last_data_mcs = None
        iq, audience = tx.build_zone(t_start, zone.length, frame=self.frame, kind=zone.name,
                                     lead=lead, ul_symbols=ul_symbols, tap=self.tap,
                                     force=tx.station_id == tx.abs_id)
        if iq is not None:
            tx.transmit(iq)
            self._used(zone, t_start, [tx.last_data_mcs])
        receivers = {self._by_id[d].name for d in audience if d in self._by_id}
        if BROADCAST in audience:   # a contention slot: AMSs with something for the owner
            receivers |= {n.name for n in self.nodes.values()
                          if n.is_ams and n.wants(tx.station_id)}
        receivers.discard(tx.name)
        self._listen(zone, t_end, receivers)

    def _reference(self, node: Node) -> str | None:
        """The station whose frame timing *node* follows: an AMS its serving station (the
        owner that granted it last), an ARS the ABS."""
        if not node.is_ams:
            return next((n.name for n in self.nodes.values() if n.station_id == node.abs_id),
                        None)
        owner = node.mac.current_owner()
        return None if owner is None or owner not in self._by_id else self._by_id[owner].name

    def _run_ul_access(self, zone: Zone, t_start: float, t_end: float) -> None:
        owner = self.nodes[zone.tx]
        lead = zone.guard // 2
        sent = False
        mcs: list[str | None] = []
        for node in self.nodes.values():
            if node is owner or not node.is_ams:
                continue
            node.poll(t_start)
            node.last_data_mcs = None
            iq = node.build_slot(t_start, frame=self.frame, owner=owner.station_id, lead=lead,
                                 tap=self.tap)
            if iq is not None:
                node.transmit(iq)
                sent = True
                mcs.append(node.last_data_mcs)
        self._used(zone, t_start, mcs)
        self._listen(zone, t_end, {owner.name} if sent else set())

    def _used(self, zone: Zone, t: float, mcs: list[str | None]) -> None:
        """Note the capacity of *zone* if it carried data (at the most robust MCS used)."""
        used = [m for m in mcs if m is not None]
        if not used:
            return
        node = next(iter(self.nodes.values()))
        zm = node.modem
        m = min(used, key=lambda x: zm.ru_capacity(zm.ru_per_symbol, x))
        bits = 8 * max(0, zm.ru_capacity((zone.length // node.sym) * zm.ru_per_symbol, m))
        while len(self.usage) <= self.frame:
            self.usage.append(0.0)
        self.usage[self.frame] += bits

    def capacity_bits(self, t0: float, t1: float) -> float:
        """Capacity bits (see :attr:`usage`) of the frames that start in [*t0*, *t1*)."""
        fs = self.schedule.frame_s
        a, b = max(0, math.ceil(t0 / fs - 1e-9)), max(0, math.ceil(t1 / fs - 1e-9))
        return float(sum(self.usage[a:b]))

    def close(self) -> None:
        """Nothing to stop in simulation (same interface as the OTA network)."""

    def events(self) -> list[NodeEvent]:
        out: list[NodeEvent] = []
        for node in self.nodes.values():
            out.extend(node.drain_events())
        out.sort(key=lambda e: e.t)
        return out

    def cpu(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for node in self.nodes.values():
            total.update(node.cpu)
        return total
