"""The trial: a relay cell brought up and exercised end to end, phase by phase, with a verdict.

Default scenario (``relaysec/data/default.toml``): ABS, ARS-1, ARS-2 and an AMS; any number of
ARSs and AMSs may be configured (``examples/cell.toml``). The phases are in
:mod:`relaysec.phases`: ARS entry, AMS entry, traffic, TEK refresh, (group) handover, traffic.

The verdict: every phase passed *and* no application byte was delivered corrupted or twice *and*
no (TEK, PN) was used twice. Anything missing (a layer not importable, a phase timing out) fails
the trial with the reason. The report is built by :mod:`relaysec.trial_report`; fault
injection and the soak's bookkeeping are mixed into :class:`Trial` from
:mod:`relaysec.trial_faults`.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relaysec import phases as phase_fns
from relaysec.cell import MPDU_HEADROOM, Cell, SetupError, build_cell, check_fits, station_psk
from relaysec.chart import describe_frame, short_title
from relaysec.config import (
    arq_params,
    arq_per_hop,
    deterministic_keys,
    stations_by_role,
    traffic_counts,
)
from relaysec.config_schema import Config
from relaysec.eventlog import EventLog
from relaysec.faults import FaultPlan
from relaysec.flows import FlowBook, TrafficPlan
from relaysec.node import FrameTap
from relaysec.phases import PHASES
from relaysec.radios import RadioFactory
from relaysec.report import Trace
from relaysec.trial_faults import SOAK_KEEP_S as SOAK_KEEP_S
from relaysec.trial_faults import FaultsAndSoak
from relaysec.trial_faults import _rss_kb as _rss_kb
from relaysec.trial_report import INSECURE, build_report, event_fields, key_lines, render
from stack.nonces import NonceMonitor, monitoring

log = logging.getLogger(__name__)

#: The cell could not be built (kept under this name for callers of the trial).
TrialSetupError = SetupError
_fields = event_fields

__all__ = ["INSECURE", "MPDU_HEADROOM", "PHASES", "Trial", "TrialSetupError", "check_fits",
           "describe_frame", "render", "run_trial", "short_title", "station_psk"]


@dataclass
class PhaseResult:
    name: str
    ok: bool = False
    detail: str = ""
    t_start: float | None = None
    t_end: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail,
                "t_start": self.t_start, "t_end": self.t_end}


MIN_SATURATE_WINDOW = 4
"""Packets in flight per AMS and direction at the least when saturating (``traffic.window``
is shared by the AMSs): enough to keep an AMS's UL queue from running dry between its grants
in a 16-AMS cell (2 each left a third of the granted UL slots of such a cell empty)."""

class Trial(FaultsAndSoak):
    """One run of the scenario in *cfg*. ``run()`` returns ``(report_dict, trace)``.

    *progress*: called with short status lines (the CLI prints them to stderr). *tap*: test-only
    fault injection on the simulated air (see :data:`relaysec.node.FrameTap`). *record_dir*:
    write every radio's received IQ as SigMF (needs ``hw.sigmf``). *radios*: the run is over
    radios (keys from the OS CSPRNG; default: backend "pluto"); *radio_factory*: where radios
    come from (default: the config's backend, :mod:`relaysec.radios`); *wall*: wall-clock
    timing (default: backend "pluto" or ``schedule.mode = "wall"``).
    """

    def __init__(
        self,
        cfg: Config,
        *,
        progress: Callable[[str], None] | None = None,
        tap: FrameTap | None = None,
        record_dir: str | Path | None = None,
        radios: bool | None = None,
        radio_factory: RadioFactory | None = None,
        wall: bool | None = None,
        soak_s: float | None = None,
    ) -> None:
        self.cfg = cfg
        self.soak_s = soak_s   # relaysec trial --soak: a soak phase after the others
        self.progress = progress or (lambda s: None)
        self.tap = tap
        self.record_dir = record_dir
        self.seed = int(cfg["seed"])
        self.phases: list[PhaseResult] = []
        self.log = EventLog()
        self.nonces = NonceMonitor(name="trial")
        self.handover: dict[str, Any] = {"mode": None, "interruption_s": None}
        self.timing: dict[str, float] = {}
        self.stray_corrupted = 0   # `relaysec node` counts its own flows here
        self.wall = (cfg["backend"] == "pluto" or cfg["schedule"]["mode"] == "wall"
                     if wall is None else wall)
        self.stretch = (float(cfg["schedule"]["ota_frame_ms"]) / float(cfg["phy"]["frame_ms"])
                        if self.wall else 1.0)
        # Over radios (real or emulated) every key, nonce and protocol random comes from the OS
        # CSPRNG unless security.insecure_deterministic_keys; the simulator is always seeded.
        self.radios = cfg["backend"] == "pluto" if radios is None else bool(radios)
        self.radios_factory = radio_factory
        self.seeded_keys = deterministic_keys(cfg, radios=self.radios)
        self.cell: Cell | None = None
        self.net: Any = None
        self.roles: dict[str, Any] = {}
        self.nodes: dict[str, Any] = {}
        self.by_name = {s["name"]: s for s in cfg["stations"]}
        self.id_of = {s["name"]: int(s["station_id"]) for s in cfg["stations"]}
        self._names = {v: k for k, v in self.id_of.items()}
        self.abs_name = stations_by_role(cfg, "abs")[0]["name"]
        # where each AMS is attached now (its serving station; the target after a handover)
        self.serving = {s["name"]: s["serving"] for s in stations_by_role(cfg, "ams")}
        self.moved: dict[str, bool] = {}
        self.per_ams_extra: dict[str, dict[str, Any]] = {}
        # saturating phases: the interval goodput and efficiency are measured over
        self.windows: dict[str, tuple[float, float]] = {}
        self.send_buffer = int(cfg["traffic"]["send_buffer"])
        self.flows = FlowBook(int(cfg["traffic"]["payload_bytes"]), self.seed, self.id_of,
                              self.name_of)
        # faults on purpose ([[faults]], relaysec.faults): lost bursts through the frame tap,
        # restarts fired frame by frame in step()
        self.fault_plan = FaultPlan.from_config(
            cfg, lambda: float(self.net.now) if self.net is not None else 0.0,
            stretch=self.stretch, inner=tap)
        if self.fault_plan or soak_s:
            self.tap = self.fault_plan.tap
        self.soaking = False
        self.soak_samples: list[dict[str, Any]] = []
        self.msc_dropped = 0   # soak chart entries beyond the first 500 (not kept)
        self.soak_stats: dict[str, Any] = {}
        self.restarts: dict[str, int] = {}
        self.retired_roles: list[Any] = []   # roles replaced by a restart (their ARQ counts)
        self._frozen = False   # gc.freeze() in force for this run (undone by close())

    # ------------------------------------------------------------------ construction

    def build(self, names: Iterable[str] | None = None) -> None:
        """Build the cell (:func:`relaysec.cell.build_cell`; *names*: only these stations, as
        ``relaysec node`` does) and take its parts. Raises :class:`TrialSetupError`."""
        cell = build_cell(self.cfg, names, radios=self.radios_factory, wall=self.wall,
                          radios_real=self.radios, tap=self.tap, record_dir=self.record_dir)
        self.cell = cell
        self.roles, self.nodes, self.net = cell.roles, cell.nodes, cell.net
        arq = arq_params(self.cfg, self.stretch)
        for role in self.roles.values():   # ARQ end to end on every data connection, and per
            role.configure_arq(arq, per_hop=arq_per_hop(self.cfg))   # hop in distributed mode
        self.links, self.trace, self.msc = cell.links, cell.trace, cell.msc
        self.directory = cell.directory
        self.schedule = cell.schedule
        self.timing.update(cell.timing)

    # ------------------------------------------------------------------ who is who

    def name_of(self, station_id: int | None) -> str:
        if station_id is None:
            return "?"
        return self._names.get(station_id, f"0x{station_id:x}")

    def stations(self, role: str) -> list[dict[str, Any]]:
        return stations_by_role(self.cfg, role)

    def names(self, role: str) -> list[str]:
        return [s["name"] for s in stations_by_role(self.cfg, role)]

    def key_holder(self, serving: str) -> str:
        """Which station terminates an AMS's SA: its serving station (distributed; an ARS, or the
        ABS for a direct AMS) or the ABS (centralized)."""
        if self.cfg["security"]["mode"] == "distributed":
            return serving
        return self.abs_name

    def distributed_via(self, serving: str) -> bool:
        """Whether an AMS served by *serving* gets its AK through an AK Transfer to an ARS."""
        return (self.cfg["security"]["mode"] == "distributed"
                and self.by_name[serving]["role"] == "ars")

    # ------------------------------------------------------------------ driving

    @property
    def now(self) -> float:
        assert self.net is not None
        return float(self.net.now)

    @property
    def frame_s(self) -> float:
        return float(self.schedule.frame_s)

    def timeout(self, key: str) -> float:
        """A phase timeout in seconds of this run's clock (stretched over the air)."""
        return float(self.cfg["timeouts"][key]) * self.stretch

    def _send(self, src: str, dst: str, packet: bytes) -> bool:
        """Offer one application packet; False when the stack cannot take it now: no keys for
        the path yet (entry, handover) or the sender's queue to its next hop already holds
        ``traffic.send_buffer`` bytes (a host's full interface queue: the application waits
        instead of queueing without bound behind a slow or broken link)."""
        from stack.errors import SecurityError

        hop = self.serving.get(src) or self.serving.get(dst, dst)   # an AMS's, or the ABS's
        if hop == src:
            hop = dst     # the ABS to an AMS it serves itself
        waiting = self.roles[src].backlog().get(self.id_of[hop])
        if waiting is not None and waiting.nbytes >= self.send_buffer:
            return False
        try:
            self.roles[src].send_data(self.id_of[dst], packet, self.now)
        except SecurityError:
            return False   # no keys for the path yet (entry/handover): retry next frame
        return True

    def traffic_plan(self, label: str, *, quota: int | str | None = "cfg",
                     per_frame: int | None = None,
                     amss: Iterable[str] | None = None) -> TrafficPlan:
        """Flows both ways between the ABS and each AMS (*amss*: default all)."""
        tr = self.cfg["traffic"]
        pairs = []
        for ams in (self.names("ams") if amss is None else amss):
            pairs += [(self.abs_name, ams, ams), (ams, self.abs_name, ams)]
        if quota == "cfg" and self.saturate:
            # full buffer: `window` packets in flight per direction, shared by the AMSs (a
            # cell's queues stay as deep as a single mobile's, and drain in a phase), at least
            # MIN_SATURATE_WINDOW each: with 2, an AMS among 16 sent its two and then had
            # nothing to report until they arrived, and its granted UL slots went empty
            w = max(MIN_SATURATE_WINDOW, -(-int(tr["window"]) // max(1, len(pairs) // 2)))
            return self.flows.plan(label, pairs, quota=None, per_frame=w, window=w)
        n_frame, n_packets = traffic_counts(self.cfg, wall=self.wall)
        q = n_packets if quota == "cfg" else quota
        return self.flows.plan(label, pairs, quota=q,  # type: ignore[arg-type]
                               per_frame=n_frame if per_frame is None else per_frame)

    @property
    def saturate(self) -> bool:
        """Traffic phases run full buffer (``traffic.mode = "saturate"``)."""
        return self.cfg["traffic"]["mode"] == "saturate"

    @property
    def expire_s(self) -> float:
        """How long a packet counts as in flight before it is taken as lost: the drain time,
        and with ARQ the block lifetime on top (until then a retransmission may bring it)."""
        drain = float(self.cfg["traffic"]["drain_frames"]) * self.frame_s
        arq = self.cfg["arq"]
        return drain + (float(arq["lifetime_s"]) * self.stretch if arq["enabled"] else 0.0)

    def plan_done(self, plan: TrafficPlan) -> bool:
        return self.flows.plan_done(plan, self.now, self.expire_s)

    def plan_ok(self, plan: TrafficPlan) -> bool:
        return self.flows.plan_ok(plan, float(self.cfg["traffic"]["min_delivery"]))

    def plan_detail(self, plan: TrafficPlan) -> str:
        """Packets delivered/sent and goodput from the phase's start to its last delivery: a
        phase that goes on after that carries none of the plan's traffic (the TEK refresh
        phase waits for the TEK's timer: its goodput counted ~250 ms of that wait over the
        air, ~230 in simulation), and stalls before the last delivery still count."""
        ph = self.phases[-1] if self.phases else None
        if ph is None or ph.t_start is None:
            return self.flows.detail(plan, 0.0)
        last = [e.flow.stats.last_rx for e in plan.flows if e.flow.stats.last_rx is not None]
        end = max(last) if last else self.now
        return self.flows.detail(plan, max(0.0, end - ph.t_start))

    def short_delivery(self, plan: TrafficPlan) -> str:
        need = float(self.cfg["traffic"]["min_delivery"])
        return (f"delivered less than traffic.min_delivery = {need:g} of the packets (the data "
                f"path has no ARQ: lost bursts lose their packets): {self.plan_detail(plan)}")

    def _process_events(self) -> None:
        for ne in self.net.events():
            if not (self.soaking and type(ne.event).__name__ == "DataReceived"):
                self.log.append(ne)   # a soak accounts its packets in the flows only
            if self.fault_plan:
                self._fault_progress(ne)
            if type(ne.event).__name__ == "DataReceived":
                self.flows.deliver(ne.station, ne.t, ne.event)
                self.links.get(self.name_of(ne.event.via), ne.station).app_bytes += \
                    len(ne.event.payload)

    def step(self, plan: TrafficPlan | None = None) -> None:
        """Offer *plan*'s packets of this frame, run one frame, take the events."""
        if self.fault_plan:
            for f in self.fault_plan.due_restarts(self.now):
                self.restart_station(f.spec["station"])
        if plan is not None:
            self.flows.offer(plan, self._send, self.now, expire_s=self.expire_s)
        self.net.step_frame()
        self._process_events()
        if self.net.frame % 20 == 0:
            self.progress(f"  t={self.now * 1e3:7.0f} ms  frame {self.net.frame}")

    def run_until(self, pred: Callable[[], bool], timeout_s: float,
                  plan: TrafficPlan | None = None) -> bool:
        end = self.now + timeout_s
        while self.now < end:
            self.step(plan)
            if pred():
                return True
        return False

    def events_of(self, kind: str, station: str | None = None, since: float = 0.0,
                  **match: Any) -> list[Any]:
        """Role events of *kind* (at *station*) from *since* on whose fields equal *match*."""
        return self.log.of(kind, station, since, **match)

    def timed_events(self, kind: str, station: str,
                     since: float = 0.0) -> Iterator[tuple[float, Any]]:
        return self.log.timed(kind, station, since)

    def begin(self, name: str) -> PhaseResult:
        ph = PhaseResult(name, t_start=self.now)
        self.phases.append(ph)
        self.progress(f"[{len(self.phases)}/{len(PHASES)}] {name} ...")
        return ph

    def end(self, ph: PhaseResult, ok: bool, detail: str) -> bool:
        ph.ok, ph.detail, ph.t_end = ok, detail, self.now
        self.progress(f"      {name_ok(ok)} {ph.name}: {detail}")
        return ok

    def keys_match(self, a: str, b: str) -> tuple[bool, str]:
        """Both ends of link a–b hold the same keys (AKID and check values; never key bytes)."""
        ka = self.roles[a].key_info(self.id_of[b])
        kb = self.roles[b].key_info(self.id_of[a])
        if ka is None or kb is None:
            return False, f"no key context at {a if ka is None else b}"
        fields = ("akid", "cmac_key_count", "kcv_cmac_u", "kcv_cmac_d", "kcv_teks")
        diff = [f for f in fields if getattr(ka, f, None) != getattr(kb, f, None)]
        if diff:
            return False, f"{a}/{b} disagree on {', '.join(diff)}"
        return True, f"AKID {ka.akid}"

    def run_entry(self, entrants: list[tuple[str, str]], done: Callable[[], bool]) -> bool:
        """Start network entry of each ``(station, via)`` and run until *done*; a station whose
        entry failed (``EntryFailed``/``PeerLost``: e.g. an EAP exchange broken by a forged
        message, which EAP-PSK treats as final) starts over, up to ``security.entry_attempts``
        times, as a real station would retry."""
        attempts = dict.fromkeys((n for n, _ in entrants), 0)
        started: dict[str, float] = {}
        limit = int(self.cfg["security"]["entry_attempts"])

        def start(name: str, via: str) -> None:
            attempts[name] += 1
            started[name] = self.now
            self.roles[name].attach(self.id_of[via], self.now)

        for name, via in entrants:
            start(name, via)

        def check() -> bool:
            if done():
                return True
            for name, via in entrants:
                if attempts[name] >= limit:
                    continue
                failed = (self.events_of("EntryFailed", name, since=started[name])
                          + self.events_of("PeerLost", name, since=started[name]))
                if failed:
                    self.progress(f"      {name}: entry failed "
                                  f"({event_fields(failed[-1])}), retrying")
                    self.step(None)      # let the failure settle before starting over
                    start(name, via)
            return False

        return self.run_until(check, self.timeout("entry_s"))

    def why_not(self) -> str:
        lost = [f"{type(ne.event).__name__} at {ne.station}: {event_fields(ne.event)}"
                for ne in self.log.kinds("PeerLost", "EntryFailed")]
        return "; ".join(lost[-3:]) or "no completion event"

    # ------------------------------------------------------------------ run

    def run(self) -> tuple[dict[str, Any], Trace]:
        """Run every phase (stopping at the first failure) and build the report. Every PN any
        station hands out is watched (``stack.nonces``): a (TEK, PN) sent twice fails the
        trial."""
        with monitoring(self.nonces):
            return self._run()

    def _run(self) -> tuple[dict[str, Any], Trace]:
        t_wall = time.perf_counter()
        reason = None
        gc.freeze()   # modules and kernels outlive the run (see below)
        self._frozen = True
        try:
            self.build()
        except TrialSetupError as exc:
            reason = str(exc)
        except Exception as exc:  # a layer raised while building: report, don't crash the CLI
            log.exception("trial setup failed")
            reason = f"setup failed: {type(exc).__name__}: {exc}"
        if reason is None:
            # what exists now (modules, kernels, the cell) lives as long as the run: out of the
            # collector's way, a full collection no longer walks it (~70 ms each, one or two a
            # trial); given back in close()
            gc.freeze()
            n_ams = len(self.serving)
            self.progress(f"schedule: {self.schedule.describe().splitlines()[0]}, "
                          f"{len(self.schedule.zones)} zones, {n_ams} AMS"
                          f"{'s' if n_ams != 1 else ''}; numba warm-up "
                          f"{self.timing['warmup_s']:.1f} s")
            try:
                for step in phase_fns.STEPS:
                    if not step(self):
                        reason = f"phase {self.phases[-1].name} failed: {self.phases[-1].detail}"
                        break
                else:
                    if self.soak_s:
                        self.soaking = True
                        if not phase_fns.soak(self, self.soak_s):
                            reason = f"phase soak failed: {self.phases[-1].detail}"
                        self.soaking = False
                    for _ in range(3):   # let in-flight frames settle before counting
                        self.step(None)
            except Exception as exc:
                log.exception("trial aborted")
                reason = f"aborted in {self.phases[-1].name if self.phases else 'setup'}: " \
                         f"{type(exc).__name__}: {exc}"
                if self.phases and self.phases[-1].t_end is None:
                    self.end(self.phases[-1], False, reason)
        for name in PHASES[len(self.phases):]:
            self.phases.append(PhaseResult(name, False, "not run"))
        self.close()
        self.timing["wall_s"] = time.perf_counter() - t_wall
        return build_report(self, reason), self.cell.trace if self.cell else Trace()

    def close(self) -> None:
        """Stop the network's threads and close every radio (see :meth:`Cell.close`)."""
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
        if self.cell is not None:
            self.cell.close()

    # ------------------------------------------------------------------ report helpers

    def nonce_summary(self) -> dict[str, Any]:
        """What the nonce monitor saw: PNs handed out to send, (TEK, direction) streams, PNs
        handed out twice (0 unless something is badly wrong) and the first such, described
        without key material."""
        n = self.nonces
        return {"sent": n.seen, "streams": n.streams, "reused": n.reused,
                "first_reuses": [str(r) for r in n.reuses[:5]]}

    def key_randomness(self) -> dict[str, Any]:
        """Report fields on where keys came from: ``key_randomness`` is ``"os"`` (the OS CSPRNG)
        or ``"seed"``; ``insecure`` is :data:`INSECURE` when seeded keys went over radios, else
        None (the simulator's seeded keys never leave the process)."""
        seeded = self.seeded_keys or any(getattr(r, "deterministic", False)
                                         for r in self.roles.values())
        return {"key_randomness": "seed" if seeded else "os",
                "insecure": INSECURE if seeded and self.radios else None}

    def link_report(self, duration_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """The links table and the links only transmitted on (:func:`report.split_links`): the
        stations built in this process are the receivers whose counts are known."""
        from relaysec.report import split_links

        if self.cell is None:
            return {}, {}
        return split_links(self.links.summary(duration_s), self.nodes.keys())

    def arq_summary(self) -> dict[str, Any] | None:
        """ARQ counts over every connection of every role (restarted ones included): SDUs,
        blocks sent, retransmissions and their bytes -- the goodput cost of recovering losses
        -- duplicates dropped by receivers, blocks discarded at their lifetime; with per-hop
        ARQ, the retransmissions of each layer (``hop``, ``e2e``)."""
        if not self.cfg["arq"]["enabled"]:
            return None
        from stack.roles.arq_plumbing import arq_layer

        tx: Counter[str] = Counter()
        rx: Counter[str] = Counter()
        layers: dict[str, Counter[str]] = {"hop": Counter(), "e2e": Counter()}
        roles = [*self.roles.values(), *self.retired_roles]
        for role in roles:
            for key, conn in role.arq_connections().items():
                tx.update(conn.tx.stats)
                rx.update(conn.rx.stats)
                layers[arq_layer(key)].update(conn.tx.stats)
            for (layer, side), counts in role.arq_retired.items():
                (tx if side == "tx" else rx).update(counts)
                if side == "tx":
                    layers[layer].update(counts)
        sent = tx["bytes_sent"]
        return {"sdus": tx["sdus"], "blocks_sent": tx["blocks_sent"],
                "retransmissions": tx["retransmissions"],
                "retransmitted_bytes": tx["retransmitted_bytes"],
                "retransmitted_share": tx["retransmitted_bytes"] / sent if sent else 0.0,
                "fast_retransmissions": tx["fast_retransmissions"],
                "spurious_retransmissions": tx["spurious_retransmissions"],
                "discarded": tx["discarded"], "discarded_bytes": tx["discarded_bytes"],
                "duplicates_dropped": rx["duplicates"], "skipped": rx["skipped"],
                "per_hop": arq_per_hop(self.cfg),
                # feedbacks that rode on a data block (DATA+ACK) / went in an MPDU of their own
                "feedback": {k: sum(r.arq_stats[f"feedback_{k}"] for r in roles)
                             for k in ("piggybacked", "mpdus")},
                "layers": {k: {"blocks_sent": v["blocks_sent"],
                               "retransmissions": v["retransmissions"]}
                           for k, v in layers.items()}}

    def key_lines(self) -> list[str]:
        """Key identifiers of the links in use at the end (never key values)."""
        return key_lines(self)


def name_ok(ok: bool) -> str:
    return "ok  " if ok else "FAIL"


def run_trial(cfg: Config, **kw: Any) -> tuple[dict[str, Any], Trace]:
    """Build and run a :class:`Trial`; see its docstring."""
    return Trial(cfg, **kw).run()
