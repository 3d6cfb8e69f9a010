"""The trial: a relay cell brought up and exercised end to end, phase by phase, with a verdict.

Default scenario (``relaysec/data/default.toml``): ABS, ARS-1, ARS-2 and an AMS.

1. ``ars_entry``   — each ARS enters the network (EAP-PSK, key agreement); both ends hold the
   same AK (AKID and key check values compared, never keys).
2. ``ams_entry``   — the AMS enters through its serving ARS; distributed mode: the ABS transfers
   the AMS's AK to the ARS (AK Transfer / ACK); centralized: the keys stay at the ABS.
3. ``traffic_1``   — secured application packets both ways (ABS→AMS and AMS→ABS) through the
   relay; every packet must arrive intact.
4. ``tek_refresh`` — traffic continues while the AMS's TEK is renewed (short TEK lifetime);
   the phase passes when both ends installed the new TEK and the traffic of the phase arrived.
5. ``handover``    — optional AK pre-distribution to the target ARS, then the AMS re-enters at
   the target with CMAC_KEY_COUNT+1; probe traffic every frame measures the interruption.
6. ``traffic_2``   — secured traffic again, now through the target ARS.

The verdict: every phase passed *and* no application byte was delivered corrupted or twice.
Anything missing (a layer not importable, a phase timing out) fails the trial with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relaysec.appdata import Flow, flow_of
from relaysec.cell import MPDU_HEADROOM, Cell, SetupError, build_cell, check_fits, station_psk
from relaysec.chart import describe_frame, short_title
from relaysec.config import Config, deterministic_keys, stations_by_role
from relaysec.node import FrameTap, LinkTable, NodeEvent
from relaysec.radios import RadioFactory
from relaysec.report import MscEntry, Trace, msc_text, split_links, summary_text
from stack.nonces import NonceMonitor, monitoring

log = logging.getLogger(__name__)

PHASES = ("ars_entry", "ams_entry", "traffic_1", "tek_refresh", "handover", "traffic_2")

#: The cell could not be built (kept under this name for callers of the trial).
TrialSetupError = SetupError

#: What the reports say about a run whose keys were drawn from the seed over radios.
INSECURE = "deterministic keys"

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


@dataclass
class _TrafficPlan:
    flows: list[tuple[Flow, str, str]] = field(default_factory=list)  # (flow, src, dst)
    quota: dict[int, int | None] = field(default_factory=dict)       # None = unlimited
    per_frame: int | None = None                                      # None = traffic.per_frame


class Trial:
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
    ) -> None:
        self.cfg = cfg
        self.progress = progress or (lambda s: None)
        self.tap = tap
        self.record_dir = record_dir
        self.seed = int(cfg["seed"])
        self.links = LinkTable()
        self.trace = Trace()
        self.msc: list[MscEntry] = []
        self.phases: list[PhaseResult] = []
        self.log: list[NodeEvent] = []
        self.flows: dict[int, tuple[Flow, str, str]] = {}
        self.stray_corrupted = 0
        self.nonces = NonceMonitor(name="trial")
        self.next_flow_id = 1
        self.handover: dict[str, Any] = {"mode": None, "interruption_s": None}
        self.timing: dict[str, float] = {}
        self.net: Any = None
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

    # ------------------------------------------------------------------ construction

    def build(self, names: Iterable[str] | None = None) -> None:
        """Build the cell (:func:`relaysec.cell.build_cell`; *names*: only these stations, as
        ``relaysec node`` does) and take its parts. Raises :class:`TrialSetupError`."""
        cell = build_cell(self.cfg, names, radios=self.radios_factory, wall=self.wall,
                          radios_real=self.radios, tap=self.tap, record_dir=self.record_dir)
        self.cell = cell
        self.roles, self.nodes, self.net = cell.roles, cell.nodes, cell.net
        self.links, self.trace, self.msc = cell.links, cell.trace, cell.msc
        self.by_name, self.id_of = cell.by_name, cell.id_of
        self.directory = cell.directory
        self.abs_name = cell.abs_name
        self.schedule = cell.schedule
        self.net_frame_s = cell.schedule.frame_s
        self.timing.update(cell.timing)

    # ------------------------------------------------------------------ driving

    @property
    def now(self) -> float:
        assert self.net is not None
        return self.net.now

    def _timeout(self, key: str) -> float:
        """A phase timeout in seconds of this run's clock (stretched over the air)."""
        return float(self.cfg["timeouts"][key]) * self.stretch

    def _new_flow(self, src: str, dst: str, label: str) -> int:
        fid = self.next_flow_id
        self.next_flow_id += 1
        flow = Flow(fid, f"{label}:{src}->{dst}", int(self.cfg["traffic"]["payload_bytes"]),
                    self.seed)
        self.flows[fid] = (flow, src, dst)
        return fid

    def _offer(self, plan: _TrafficPlan) -> None:
        from stack.errors import SecurityError

        per_frame = plan.per_frame or int(self.cfg["traffic"]["per_frame"])
        now = self.now
        for flow, src, dst in plan.flows:
            left = plan.quota.get(flow.flow_id)
            n = per_frame if left is None else min(per_frame, left)
            for _ in range(n):
                try:
                    self.roles[src].send_data(self.id_of[dst], flow.peek(), now)
                except SecurityError:
                    break  # no keys for the path yet (entry/handover): retry next frame
                flow.mark_sent(now)
                if left is not None:
                    left -= 1
                    plan.quota[flow.flow_id] = left

    def _process_events(self) -> None:
        assert self.net is not None
        for ne in self.net.events():
            self.log.append(ne)
            ev = ne.event
            if type(ev).__name__ != "DataReceived":
                continue
            fid = flow_of(ev.payload)
            entry = self.flows.get(fid) if fid is not None else None
            if entry is None or entry[2] != ne.station or self.id_of[entry[1]] != ev.src:
                self.stray_corrupted += len(ev.payload)
                continue
            flow = entry[0]
            flow.deliver(ev.payload, ne.t)
            via = self.directory.get(ev.via, "?")
            self.links.get(via, ne.station).app_bytes += len(ev.payload)

    def _step(self, plan: _TrafficPlan | None) -> None:
        assert self.net is not None
        if plan is not None:
            self._offer(plan)
        self.net.step_frame()
        self._process_events()
        if self.net.frame % 20 == 0:
            self.progress(f"  t={self.now * 1e3:7.0f} ms  frame {self.net.frame}")

    def _run_until(self, pred: Callable[[], bool], timeout_s: float,
                   plan: _TrafficPlan | None = None) -> bool:
        end = self.now + timeout_s
        while self.now < end:
            self._step(plan)
            if pred():
                return True
        return False

    def events_of(self, kind: str, station: str | None = None, since: float = 0.0,
                **match: Any) -> list[Any]:
        out = []
        for ne in self.log:
            if ne.t < since or type(ne.event).__name__ != kind:
                continue
            if station is not None and ne.station != station:
                continue
            if all(getattr(ne.event, k, None) == v for k, v in match.items()):
                out.append(ne.event)
        return out

    def _begin(self, name: str) -> PhaseResult:
        ph = PhaseResult(name, t_start=self.now)
        self.phases.append(ph)
        self.progress(f"[{len(self.phases)}/{len(PHASES)}] {name} ...")
        return ph

    def _end(self, ph: PhaseResult, ok: bool, detail: str) -> bool:
        ph.ok, ph.detail, ph.t_end = ok, detail, self.now
        self.progress(f"      {name_ok(ok)} {ph.name}: {detail}")
        return ok

    def _keys_match(self, a: str, b: str) -> tuple[bool, str]:
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

    # ------------------------------------------------------------------ phases

    def _phase_ars_entry(self) -> bool:
        ph = self._begin("ars_entry")
        arss = [s["name"] for s in stations_by_role(self.cfg, "ars")]

        def done() -> bool:
            return all(self.events_of("KeysInstalled", n, subject=self.id_of[n]) and
                       self.events_of("KeysInstalled", self.abs_name, subject=self.id_of[n])
                       for n in arss)

        if not self._run_entry([(n, self.abs_name) for n in arss], done):
            return self._end(ph, False, "timeout: " + self._why_not())
        notes = []
        for n in arss:
            ok, note = self._keys_match(n, self.abs_name)
            if not ok:
                return self._end(ph, False, note)
            notes.append(f"{n} {note}")
        return self._end(ph, True, "; ".join(notes))

    def _run_entry(self, entrants: list[tuple[str, str]], done: Callable[[], bool]) -> bool:
        """Start network entry of each ``(station, via)`` and run until *done*; a station whose
        entry failed (``EntryFailed``/``PeerLost``: e.g. an EAP exchange broken by a forged
        message, which EAP-PSK treats as final) starts over, up to ``security.entry_attempts``
        times, as a real station would retry."""
        attempts = dict.fromkeys((n for n, _ in entrants), 0)
        started: dict[str, float] = {}

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
                failed = [ne for ne in self.log if ne.t >= started[name] and ne.station == name
                          and type(ne.event).__name__ in ("EntryFailed", "PeerLost")]
                if failed and attempts[name] < int(self.cfg["security"]["entry_attempts"]):
                    self.progress(f"      {name}: entry failed "
                                  f"({_fields(failed[-1].event)}), retrying")
                    self._step(None)      # let the failure settle before starting over
                    start(name, via)
            return False

        return self._run_until(check, self._timeout("entry_s"))

    def _ams(self) -> dict[str, Any]:
        return stations_by_role(self.cfg, "ams")[0]

    def _key_holder(self, serving: str) -> str:
        """Which station terminates the AMS's SA: the serving ARS (distributed) or the ABS."""
        if self.cfg["security"]["mode"] == "distributed":
            return serving
        return self.abs_name

    def _phase_ams_entry(self) -> bool:
        ph = self._begin("ams_entry")
        ams = self._ams()
        name, serving = ams["name"], ams["serving"]
        self.serving = serving
        holder = self._key_holder(serving)
        distributed = (self.cfg["security"]["mode"] == "distributed"
                       and self.by_name[serving]["role"] == "ars")

        def done() -> bool:
            ok = bool(self.events_of("KeysInstalled", name, subject=self.id_of[name]) and
                      self.events_of("KeysInstalled", holder, subject=self.id_of[name]))
            if distributed:
                ok = ok and bool(self.events_of("AkTransferred", self.abs_name,
                                              ams=self.id_of[name], ars=self.id_of[serving],
                                              status=0))
            return ok

        if not self._run_entry([(name, serving)], done):
            return self._end(ph, False, "timeout: " + self._why_not())
        ok, note = self._keys_match(name, holder)
        if not ok:
            return self._end(ph, False, note)
        how = "AK transferred to " + serving if distributed else "keys at the ABS"
        return self._end(ph, True, f"{how}; {note}")

    def _traffic_plan(self, label: str, quota: int | None) -> _TrafficPlan:
        ams = self._ams()["name"]
        plan = _TrafficPlan()
        for src, dst in ((self.abs_name, ams), (ams, self.abs_name)):
            fid = self._new_flow(src, dst, label)
            plan.flows.append(self.flows[fid])
            plan.quota[fid] = quota
        return plan

    def _plan_done(self, plan: _TrafficPlan) -> bool:
        """Everything offered and then either all delivered or nothing in flight any more (no
        delivery for ``traffic.drain_frames`` frames after the last packet was sent)."""
        drain = float(self.cfg["traffic"]["drain_frames"]) * self.net_frame_s
        for f, _, _ in plan.flows:
            if plan.quota[f.flow_id] != 0:
                return False
            if f.outstanding() == 0:
                continue
            last = max(x for x in (f.stats.last_rx, f.stats.last_tx) if x is not None)
            if self.now - last < drain:
                return False
        return True

    def _plan_ok(self, plan: _TrafficPlan) -> bool:
        need = float(self.cfg["traffic"]["min_delivery"])
        return all(f.stats.sent_packets > 0
                   and f.stats.delivered_packets >= need * f.stats.sent_packets
                   for f, _, _ in plan.flows)

    def _short_delivery(self, plan: _TrafficPlan) -> str:
        need = float(self.cfg["traffic"]["min_delivery"])
        return (f"delivered less than traffic.min_delivery = {need:g} of the packets (the data "
                f"path has no ARQ: lost bursts lose their packets): {self._plan_detail(plan)}")

    def _plan_detail(self, plan: _TrafficPlan) -> str:
        """Packets delivered/sent per direction and the application goodput over the phase so
        far (delivered payload bits per second of air since the phase began)."""
        ph = self.phases[-1] if self.phases else None
        dur = self.now - ph.t_start if ph is not None and ph.t_start is not None else 0.0
        parts = []
        for f, src, dst in plan.flows:
            s = f.stats
            rate = f" ({8 * s.delivered_bytes / dur / 1e3:.0f} kb/s)" if dur > 0 else ""
            parts.append(f"{src}->{dst} {s.delivered_packets}/{s.sent_packets}{rate}")
        return ", ".join(parts)

    def _phase_traffic(self, name: str) -> bool:
        ph = self._begin(name)
        plan = self._traffic_plan(name, int(self.cfg["traffic"]["packets_per_direction"]))
        finished = self._run_until(lambda: self._plan_done(plan), self._timeout("traffic_s"),
                                   plan)
        if finished and not self._plan_ok(plan):
            return self._end(ph, False, self._short_delivery(plan))
        ok = finished
        detail = self._plan_detail(plan)
        if ok and name == "traffic_2":
            target = self._ams().get("handover_target")
            vias = {self.directory.get(ev.via) for ev in self.events_of(
                "DataReceived", self._ams()["name"], since=ph.t_start or 0.0)}
            if target and vias != {target}:
                return self._end(ph, False, f"data reached the AMS via {sorted(vias)}, "
                                            f"expected {target}; {detail}")
            detail += f", via {target}"
        return self._end(ph, ok, detail if ok else "timeout: " + detail)

    def _phase_tek_refresh(self) -> bool:
        ph = self._begin("tek_refresh")
        ams = self._ams()["name"]
        holder = self._key_holder(self.serving)
        t0 = ph.t_start or 0.0
        before = self.roles[ams].key_info(self.id_of[self.serving])
        plan = self._traffic_plan("tek_refresh",
                                  int(self.cfg["traffic"]["packets_per_direction"]))

        def refreshed() -> bool:
            return bool(self.events_of("KeysInstalled", ams, since=t0, subject=self.id_of[ams],
                                     cause="tek_refresh") and
                        self.events_of("KeysInstalled", holder, since=t0, subject=self.id_of[ams],
                                     cause="tek_refresh"))

        finished = self._run_until(lambda: refreshed() and self._plan_done(plan),
                                   self._timeout("tek_refresh_s"), plan)
        if not finished:
            why = "no TEK refresh" if not refreshed() else "traffic incomplete"
            return self._end(ph, False, f"timeout ({why}): {self._plan_detail(plan)}")
        if not self._plan_ok(plan):
            return self._end(ph, False, self._short_delivery(plan))
        match, note = self._keys_match(ams, holder)
        if not match:
            # a later refresh may be in flight (served by the key holder, reply not yet at the
            # AMS: long phases outlive a TEK): give it a few frames to land before judging
            self._run_until(lambda: self._keys_match(ams, holder)[0], 20 * self.net_frame_s)
            match, note = self._keys_match(ams, holder)
        after = self.roles[ams].key_info(self.id_of[self.serving])
        if not match:
            return self._end(ph, False, note)
        return self._end(ph, True, f"COUNTER_TEK {getattr(before, 'counter_teks', '?')} -> "
                                   f"{getattr(after, 'counter_teks', '?')}; "
                                   f"{self._plan_detail(plan)}")

    def _phase_handover(self) -> bool:
        ph = self._begin("handover")
        ams_st = self._ams()
        ams, target = ams_st["name"], ams_st.get("handover_target")
        predist = bool(self.cfg["security"]["ak_predistribution"])
        if target and self.by_name.get(target, {}).get("role") == "abs":
            predist = False   # the ABS derives AK' itself: nothing to pre-distribute
            mode = "to_abs"
        else:
            mode = "predistributed" if predist else "on_demand"
        self.handover.update({"mode": mode,
                              "predistributed": predist, "source": self.serving,
                              "target": target})
        if not target:
            return self._end(ph, False, "no handover_target configured for the AMS")
        distributed = (self.cfg["security"]["mode"] == "distributed"
                       and self.by_name[target]["role"] == "ars")
        ams_id, target_id = self.id_of[ams], self.id_of[target]
        timeout = self._timeout("handover_s")
        probe = self._traffic_plan("handover", None)   # one probe per frame, both ways
        probe.per_frame = 1
        notes = []
        if predist:
            t0 = self.now
            self.roles[self.abs_name].prepare_handover(ams_id, [target_id], t0)
            if distributed:
                if not self._run_until(
                        lambda: bool(self.events_of("AkTransferred", self.abs_name, since=t0,
                                                  ams=ams_id, ars=target_id, status=0)),
                        timeout, probe):
                    return self._end(ph, False, "AK pre-distribution to the target was not "
                                                "acknowledged: " + self._why_not())
                notes.append(f"AK' pre-distributed in {(self.now - t0) * 1e3:.0f} ms")
        t_ho = self.now
        self.handover["t_start"] = t_ho
        self.roles[ams].handover(target_id, t_ho)

        # data "via the target": relayed by the target ARS, or straight from the AMS when the
        # target is the ABS itself (an RS -> BS handover)
        vias = {target_id} | ({ams_id, self.id_of[self.abs_name]} if target == self.abs_name
                              else set())

        def first(station: str, src: int) -> float | None:
            for ne in self.log:
                if (ne.t >= t_ho and ne.station == station
                        and type(ne.event).__name__ == "DataReceived"
                        and ne.event.src == src and ne.event.via in vias):
                    return ne.t
            return None

        def done() -> bool:
            return bool(
                self.events_of("HandoverComplete", ams, since=t_ho, ams=ams_id, target=target_id)
                and self.events_of("HandoverComplete", self.abs_name, since=t_ho, ams=ams_id)
                and first(ams, self.id_of[self.abs_name]) is not None
                and first(self.abs_name, ams_id) is not None)

        ok = self._run_until(done, timeout, probe)
        if not ok:
            return self._end(ph, False, "timeout: handover not completed with data via "
                                        f"{target}: " + self._why_not())
        t_dl = first(ams, self.id_of[self.abs_name])
        t_ul = first(self.abs_name, ams_id)
        assert t_dl is not None and t_ul is not None
        interruption = max(t_dl, t_ul) - t_ho
        self.handover["interruption_s"] = interruption
        self.handover["interruption_dl_s"] = t_dl - t_ho
        self.handover["interruption_ul_s"] = t_ul - t_ho
        # stop probing; let queued probes drain (those stranded on the old path are lost)
        for f, _, _ in probe.flows:
            probe.quota[f.flow_id] = 0
        self._run_until(lambda: self._plan_done(probe), 0.1 * self.stretch, probe)
        lost = sum(f.outstanding() for f, _, _ in probe.flows)
        released = self.events_of("ContextReleased", self.serving, since=t_ho, ams=ams_id)
        if distributed and not released:
            self._run_until(lambda: bool(self.events_of("ContextReleased", self.serving,
                                                      since=t_ho, ams=ams_id)),
                                0.5 * self.stretch)
            released = self.events_of("ContextReleased", self.serving, since=t_ho, ams=ams_id)
        ho = self.events_of("HandoverComplete", ams, since=t_ho, ams=ams_id)[-1]
        notes.append(f"AKID {ho.akid} CMAC_KEY_COUNT {ho.cmac_key_count}")
        notes.append(f"interruption {interruption * 1e3:.0f} ms")
        notes.append(f"{lost} probe packets lost in flight")
        if distributed:
            notes.append(f"{self.serving} context {'released' if released else 'NOT released'}")
        self.handover["probe_packets_lost"] = lost
        self.serving = target
        match, note = self._keys_match(ams, self._key_holder(target))
        if not match:
            return self._end(ph, False, note)
        if distributed and not released:
            return self._end(ph, False, "; ".join(notes))
        return self._end(ph, True, "; ".join(notes))

    def _why_not(self) -> str:
        lost = [f"{type(ne.event).__name__} at {ne.station}: {_fields(ne.event)}"
                for ne in self.log if type(ne.event).__name__ in ("PeerLost", "EntryFailed")]
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
        try:
            self.build()
        except TrialSetupError as exc:
            reason = str(exc)
        except Exception as exc:  # a layer raised while building: report, don't crash the CLI
            log.exception("trial setup failed")
            reason = f"setup failed: {type(exc).__name__}: {exc}"
        if reason is None:
            self.progress(f"schedule: {self.schedule.describe().splitlines()[0]}, "
                          f"{len(self.schedule.zones)} zones; numba warm-up "
                          f"{self.timing['warmup_s']:.1f} s")
            steps = [self._phase_ars_entry, self._phase_ams_entry,
                     lambda: self._phase_traffic("traffic_1"), self._phase_tek_refresh,
                     self._phase_handover, lambda: self._phase_traffic("traffic_2")]
            try:
                for step in steps:
                    if not step():
                        reason = f"phase {self.phases[-1].name} failed: {self.phases[-1].detail}"
                        break
                else:
                    for _ in range(3):   # let in-flight frames settle before counting
                        self._step(None)
            except Exception as exc:
                log.exception("trial aborted")
                reason = f"aborted in {self.phases[-1].name if self.phases else 'setup'}: " \
                         f"{type(exc).__name__}: {exc}"
                if self.phases and self.phases[-1].t_end is None:
                    self._end(self.phases[-1], False, reason)
        for name in PHASES[len(self.phases):]:
            self.phases.append(PhaseResult(name, False, "not run"))
        self.close()
        self.timing["wall_s"] = time.perf_counter() - t_wall
        report = self._report(reason)
        return report, self.trace

    def close(self) -> None:
        """Stop the network's threads and close every radio (see :meth:`Cell.close`)."""
        if self.cell is not None:
            self.cell.close()

    def _report(self, reason: str | None) -> dict[str, Any]:
        sent = delivered = corrupted = duplicates = 0
        flows = {}
        for flow, src, dst in self.flows.values():
            s = flow.stats
            sent += s.sent_bytes
            delivered += s.delivered_bytes
            corrupted += s.corrupted_bytes
            duplicates += s.duplicate_packets
            flows[s.name] = {"src": src, "dst": dst, "sent": s.sent_bytes,
                             "delivered": s.delivered_bytes, "lost": s.lost_bytes,
                             "corrupted": s.corrupted_bytes, "duplicates": s.duplicate_packets}
        corrupted += self.stray_corrupted
        ok = reason is None and all(p.ok for p in self.phases)
        if ok and (corrupted or duplicates):
            ok = False
            reason = f"integrity: {corrupted} bytes corrupted, {duplicates} duplicates delivered"
        if ok and self.nonces.reused:
            ok = False
            reason = f"nonce reuse: {self.nonces.describe(limit=2)}"
        sim_s = self.now if self.net is not None else 0.0
        rejections: dict[str, int] = {}
        for role in getattr(self, "roles", {}).values():
            for r, c in getattr(role, "rejections", {}).items():
                rejections[r] = rejections.get(r, 0) + int(c)
        cpu = self.net.cpu() if self.net is not None else {}
        total_cpu = sum(cpu.values()) or 1.0
        names = [s["name"] for s in self.cfg["stations"]]
        links, links_tx_only = self.link_report(sim_s)
        report: dict[str, Any] = {
            "ok": ok,
            "reason": reason,
            "seed": self.seed,
            **self.key_randomness(),
            "backend": self.cfg["backend"],
            "security_mode": self.cfg["security"]["mode"],
            "profile": self.cfg["phy"]["profile"],
            "mcs": self.cfg["phy"]["mcs"],
            "bytes": {"sent": sent, "delivered": delivered, "lost": sent - delivered,
                      "corrupted": corrupted, "duplicates": duplicates},
            "flows": flows,
            "phases": [p.as_dict() for p in self.phases],
            "links": links,
            "links_tx_only": links_tx_only,
            "security": {
                "rejections": rejections,
                "in_flight_at_handover": self._stale_rejections(),
                "keys": self.key_lines(),
                "nonces": self.nonce_summary(),
            },
            "handover": self.handover,
            # control messages each station put on the air, by title (retransmissions included)
            "control_messages": {name: dict(getattr(role, "air_messages", {}))
                                 for name, role in getattr(self, "roles", {}).items()},
            "timing": {**self.timing, "sim_s": sim_s,
                       "frames": self.net.frame if self.net is not None else 0},
            "cpu_share": {k: v / total_cpu for k, v in cpu.items()},
            "cpu_s": dict(cpu),
            "msc": [{"t": e.t, "src": e.src, "dst": e.dst, "label": e.label, "note": e.note}
                    for e in self.msc],
            "stations": names,
            "events": [f"{ne.t * 1e3:.1f} ms {ne.station}: {type(ne.event).__name__} "
                       f"{_fields(ne.event)}" for ne in self.log
                       if type(ne.event).__name__ != "DataReceived"],
        }
        return report

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
        roles = getattr(self, "roles", None) or {}
        seeded = self.seeded_keys or any(getattr(r, "deterministic", False)
                                         for r in roles.values())
        return {"key_randomness": "seed" if seeded else "os",
                "insecure": INSECURE if seeded and self.radios else None}

    def _stale_rejections(self) -> dict[str, int]:
        """Rejections, by reason, of frames the old serving station sent after the handover
        started: packets that were in flight on the old path (the old ARS forwarding queued
        data to an AMS that has left, or relaying its last uplink to an ABS that has already
        switched). They are expected in a clean run and are never delivered; anything else in
        ``security.rejections`` is not explained by the handover."""
        t_ho, source = self.handover.get("t_start"), self.handover.get("source")
        if t_ho is None or source not in getattr(self, "id_of", {}):
            return {}
        src_id = self.id_of[source]
        out: dict[str, int] = {}
        for ne in self.log:
            ev = ne.event
            if (ne.t >= t_ho and type(ev).__name__ == "Rejected"
                    and getattr(ev, "link", None) == src_id):
                out[ev.reason] = out.get(ev.reason, 0) + 1
        return out

    def link_report(self, duration_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """The links table and the links only transmitted on (:func:`report.split_links`): the
        stations built in this process are the receivers whose counts are known."""
        local = getattr(self, "nodes", None) or {}
        return split_links(self.links.summary(duration_s), local.keys())

    def key_lines(self) -> list[str]:
        """Key identifiers of the links in use at the end (AKID, counts; never key values),
        each read at whichever end runs here: both in a trial, one in a ``relaysec node``."""
        roles = getattr(self, "roles", None)
        if not roles:
            return []
        pairs = [(self.abs_name, s["name"]) for s in stations_by_role(self.cfg, "ars")]
        ams = stations_by_role(self.cfg, "ams")
        if ams and getattr(self, "serving", None):
            pairs.append((ams[0]["name"], self._key_holder(self.serving)))
        elif ams and ams[0]["name"] in roles:
            # a node: the AMS's own serving station (None before entry)
            serving = self.directory.get(getattr(roles[ams[0]["name"]], "serving", None))
            if serving is not None:
                pairs.append((ams[0]["name"], self._key_holder(serving)))
        elif ams:
            # a node without the AMS: this station's link with it, if it holds one
            pairs += [(ams[0]["name"], name) for name in roles
                      if name != ams[0]["name"] and self._key_holder(name) == name]
        lines = []
        for a, b in pairs:
            ki = None
            for holder, peer in ((b, a), (a, b)):
                if holder in roles and ki is None:
                    try:
                        ki = roles[holder].key_info(self.id_of[peer])
                    except Exception:
                        ki = None
            if ki is not None:
                lines.append(f"{a}<->{b} AKID {ki.akid} CMAC_KEY_COUNT {ki.cmac_key_count} "
                             f"COUNTER_TEK {tuple(ki.counter_teks)}")
        return lines


def name_ok(ok: bool) -> str:
    return "ok  " if ok else "FAIL"


def _fields(ev: Any) -> str:
    try:
        from dataclasses import fields as dc_fields
        parts = []
        for f in dc_fields(ev):
            if f.name == "payload" or not f.repr:
                continue
            v = getattr(ev, f.name)
            if isinstance(v, int) and f.name in ("ams", "ars", "subject", "peer", "source",
                                                 "target", "station", "link", "src", "via"):
                v = f"0x{v:x}"
            parts.append(f"{f.name}={v}")
        return " ".join(parts)
    except TypeError:
        return repr(ev)


def run_trial(cfg: Config, **kw: Any) -> tuple[dict[str, Any], Trace]:
    """Build and run a :class:`Trial`; see its docstring."""
    return Trial(cfg, **kw).run()


def render(report: dict[str, Any], *, msc: bool = True) -> str:
    """Summary text plus (optionally) the message sequence chart of the security exchanges."""
    text = summary_text(report)
    if msc and report.get("msc"):
        entries = [MscEntry(e["t"], e["src"], e["dst"], e["label"], e.get("note", ""))
                   for e in report["msc"]]
        text += ("\n\nSecurity message sequence (PKMv3/ranging messages per hop, * = event; "
                 "nothing is decrypted to draw it)\n" + msc_text(entries, report["stations"]))
        data = {name: lk.get("bursts_tx", 0) - lk.get("control_bursts", 0)
                for name, lk in report.get("links", {}).items()}
        data = {k: v for k, v in data.items() if v > 0}
        if data:
            text += (f"\nNot charted: {sum(data.values())} data-only bursts ("
                     + ", ".join(f"{k} {v}" for k, v in data.items()) + ")")
    return text
