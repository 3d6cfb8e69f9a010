"""One station per process (``relaysec node``): the same trial, run by one host per station.

Every host loads the same TOML file and runs the station whose role/name it is given, on its own
Pluto. There is no shared clock and no control channel other than the air, so each station follows
a small script of its own, driven by what it hears and by frame counts of the OTA schedule
(see :mod:`relaysec.ota` for the ABS-master timing). A cell may hold any number of AMSs:

* **ABS** — serves entries; for every AMS on its own, once that AMS has keys, it pre-distributes
  the AMS's next AK to its handover target ARS (if ``security.ak_predistribution``) and sends its
  DL flow 1; after that AMS's handover it sends its DL flow 2 (an AMS without a
  ``handover_target`` gets DL flow 1 only).
* **ARS** — enters the network as soon as it is locked to the ABS's beacons (re-entering after a
  failed attempt).
* **AMS** — enters through its serving station once locked; sends UL flow 1; when flow 1 is done
  (sent, and ``traffic.drain_frames`` frames passed) it hands over to ``handover_target`` and then
  sends UL flow 2. An AMS without a target stops once DL flow 1 has arrived.

Application packets are deterministic in (seed, flow id, sequence number) and every AMS's flow ids
follow from its place in the config (:func:`ams_flows`), so each receiver checks what it got
against what the far end must have sent (bytes delivered, corrupted, duplicates). A node's report
covers what *it* saw; the lab compares the reports. A node runs on a radio, so its keys, nonces and
protocol randoms come from the OS CSPRNG (the seed picks only the payloads) unless
``security.insecure_deterministic_keys``, which its report flags as insecure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from relaysec.appdata import Flow, flow_of
from relaysec.config import station, stations_by_role, traffic_counts
from relaysec.config_schema import Config, ConfigError
from relaysec.flows import MAX_FLOWS
from relaysec.phases import try_handover
from relaysec.radios import given
from relaysec.trial import Trial, TrialSetupError, _fields
from stack.nonces import monitoring

#: Flow ids of the first AMS in the config (DL = ABS→AMS, UL = AMS→ABS; 1 before, 2 after the
#: handover); AMS number *i* (from 0) uses these plus ``FLOWS_PER_AMS * i``.
DL1, UL1, DL2, UL2 = 1, 2, 3, 4
FLOWS_PER_AMS = 4


@dataclass(frozen=True)
class AmsFlows:
    """The four flow ids of one AMS and its handover target (None: it stays, flows 1 only)."""

    name: str
    target: str | None
    dl1: int
    ul1: int
    dl2: int
    ul2: int

    @property
    def fids(self) -> tuple[int, ...]:
        """DL1, UL1, DL2, UL2."""
        return (self.dl1, self.ul1, self.dl2, self.ul2)

    @property
    def to_abs(self) -> tuple[int, ...]:
        """The UL flows the ABS must receive from this AMS."""
        return (self.ul1, self.ul2) if self.target else (self.ul1,)

    @property
    def to_ams(self) -> tuple[int, ...]:
        """The DL flows this AMS must receive."""
        return (self.dl1, self.dl2) if self.target else (self.dl1,)

    def label(self, fid: int) -> str:
        """``"DL1"``, ``"UL1"``, ``"DL2"`` or ``"UL2"``."""
        return dict(zip(self.fids, ("DL1", "UL1", "DL2", "UL2"), strict=True))[fid]


def ams_flows(cfg: Config) -> dict[str, AmsFlows]:
    """Every AMS's flows, by name, from its index *i* in the config: ``4i+1 .. 4i+4`` (so every
    host derives the same ids). Raises :class:`ConfigError` past the 16-bit flow id space."""
    amss = stations_by_role(cfg, "ams")
    if FLOWS_PER_AMS * len(amss) > MAX_FLOWS:
        raise ConfigError(f"{len(amss)} AMSs need {FLOWS_PER_AMS * len(amss)} flow ids; "
                          f"relaysec node has {MAX_FLOWS}")
    out = {}
    for i, st in enumerate(amss):
        base = FLOWS_PER_AMS * i
        out[st["name"]] = AmsFlows(st["name"], st.get("handover_target") or None,
                                   base + DL1, base + UL1, base + DL2, base + UL2)
    return out


class NodeRunner:
    """Run station *name* of *cfg* on its own radio (``radio`` overrides the configured one: tests
    pass loopback radios sharing one wall-clock medium). Raises :class:`ConfigError` when the
    cell's flows do not fit the flow id space."""

    def __init__(self, cfg: Config, name: str, *, radio: Any = None,
                 progress: Callable[[str], None] | None = None,
                 record_dir: str | None = None) -> None:
        self.cfg = cfg
        self.name = name
        self.st = station(cfg, name)
        self.progress = progress or (lambda s: None)
        # a node runs on a radio: keys from the OS CSPRNG unless insecure_deterministic_keys
        self.trial = Trial(cfg, progress=self.progress, record_dir=record_dir, radios=True,
                           wall=True, radio_factory=None if radio is None
                           else given({name: radio}))
        self.id_of = self.trial.id_of
        self.abs_name = self.trial.abs_name
        self.all_amss = ams_flows(cfg)
        role = self.st["role"]
        #: the AMSs this node has a script part and flows for: all (ABS), itself (AMS), none (ARS)
        self.amss = (list(self.all_amss.values()) if role == "abs"
                     else [self.all_amss[name]] if role == "ams" else [])
        #: flow id -> (its AMS, the station id it must come from), for the flows received here
        self.rx: dict[int, tuple[AmsFlows, int]] = {}
        for f in self.amss:
            if role == "abs":
                self.rx.update({fid: (f, self.id_of[f.name]) for fid in f.to_abs})
            else:
                self.rx.update({fid: (f, self.id_of[self.abs_name]) for fid in f.to_ams})
        self.flows: dict[int, Flow] = {}
        self.quota: dict[int, int] = {}
        self.milestones: dict[str, float] = {}
        self.attempts = 0
        self.ho_attempts = 0
        self._ho_lost = 0   # handover PeerLost events before the current attempt
        self._ho_due = False  # a handover (attempt) is to be started
        #: why the script stopped before its end (entry or handover attempts ran out), or None
        self.gave_up: str | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to finish after the current frame (thread-safe)."""
        self._stop.set()

    # ------------------------------------------------------------------ helpers

    def _flow(self, fid: int) -> Flow:
        if fid not in self.flows:
            self.flows[fid] = Flow(fid, f"flow{fid}", int(self.cfg["traffic"]["payload_bytes"]),
                                   int(self.cfg["seed"]))
        return self.flows[fid]

    def _mark(self, key: str, *, say: bool = True) -> None:
        if key not in self.milestones:
            self.milestones[key] = self.net.now
            if say:
                self.progress(f"{self.net.now:8.2f} s  {self.name}: {key}")

    def _mark_cell(self, key: str, amss: list[AmsFlows]) -> None:
        """Mark *key* once every AMS of *amss* (if any) reached ``"<AMS>:<key>"``."""
        if amss and all(f"{f.name}:{key}" in self.milestones for f in amss):
            self._mark(key, say=len(self.amss) > 1)

    @property
    def _counts(self) -> tuple[int, int]:
        """Packets per frame and per phase and direction (``config.traffic_counts``)."""
        return traffic_counts(self.cfg, wall=self.trial.wall)

    @property
    def _drain_s(self) -> float:
        return float(self.cfg["traffic"]["drain_frames"]) * self.net.schedule.frame_s

    def _send(self, fid: int, dst: int) -> None:
        from stack.errors import SecurityError

        per_frame, packets = self._counts
        left = self.quota.setdefault(fid, packets)
        flow = self._flow(fid)
        for _ in range(min(left, per_frame)):
            try:
                self.role.send_data(dst, flow.peek(), self.net.now)
            except SecurityError:
                return
            flow.mark_sent(self.net.now)
            self.quota[fid] -= 1
        if self.quota[fid] == 0:
            self._mark(f"flow{fid}_sent")

    def _drained(self, fid: int) -> bool:
        """All of flow *fid* sent and drain_frames frames passed since."""
        key = f"flow{fid}_sent"
        if key not in self.milestones:
            return False
        return self.net.now - self.milestones[key] >= self._drain_s

    def _settled(self, dl: int, ul: int) -> bool:
        """DL flow *dl* all here, or nothing more of it for drain_frames frames since the last of
        it or the end of UL flow *ul*: the AMS hands over (or stops) only then, so DL packets in
        flight through the old station are not stranded by it."""
        stats = self._flow(dl).stats
        if stats.delivered_packets >= self._counts[1]:
            return True
        since = max(stats.last_rx or 0.0, self.milestones[f"flow{ul}_sent"])
        # nothing of it yet: the far end may still be starting it (a loaded host, UL grants
        # one frame ahead): wait three drain periods before giving up on it
        wait = self._drain_s if stats.delivered_packets else 3 * self._drain_s
        return self.net.now - since >= wait

    # ------------------------------------------------------------------ run

    def run(self, duration_s: float) -> dict[str, Any]:
        """Run until the script is done or *duration_s* seconds passed; return the node report."""
        t_wall = time.perf_counter()
        try:
            self.trial.build([self.name])
        except TrialSetupError as exc:
            return {"ok": False, "reason": str(exc), "station": self.name,
                    "role": self.st["role"], "seed": int(self.cfg["seed"]),
                    **self.trial.key_randomness()}
        self.net = self.trial.net
        self.role = self.trial.roles[self.name]
        done = False
        try:
            with monitoring(self.trial.nonces):
                while self.net.now < duration_s and not done and not self._stop.is_set():
                    done = self._script()
                    self.net.step_frame()
                    self._events()
        except KeyboardInterrupt:
            self.progress(f"{self.name}: interrupted")
        finally:
            self.trial.close()
        return self._report(time.perf_counter() - t_wall)

    def _locked(self) -> bool:
        return bool(self.net.sync_status()[self.name]["locked"])

    def _events(self) -> None:
        for ne in self.net.events():
            self.trial.log.append(ne)
            ev = ne.event
            kind = type(ev).__name__
            if kind == "DataReceived":
                fid = flow_of(ev.payload)
                want = self.rx.get(fid) if fid is not None else None
                if want is not None and ev.src == want[1]:
                    self._flow(fid).deliver(ev.payload, ne.t)
                else:   # not a flow of this node, or from the wrong station
                    self.trial.stray_corrupted += len(ev.payload)
            elif kind not in ("Rejected",):
                self.progress(f"{ne.t:8.2f} s  {self.name}: {kind} {_fields(ev)}")

    def _seen(self, kind: str, **match: Any) -> bool:
        return bool(self.trial.events_of(kind, self.name, **match))

    def _script(self) -> bool:
        role = self.st["role"]
        if role == "ars":
            return self._script_ars()
        if role == "ams":
            return self._script_ams()
        return self._script_abs()

    def _failures(self, since: float, *, procedure: str | None = None) -> list[Any]:
        """This station's ``EntryFailed``/``PeerLost`` events from *since* on (only PeerLost
        of *procedure* if given)."""
        if procedure is not None:
            return self.trial.events_of("PeerLost", self.name, since, procedure=procedure)
        return [ne for ne in self.trial.log if ne.station == self.name
                and type(ne.event).__name__ in ("EntryFailed", "PeerLost") and ne.t >= since]

    def _retry_entry(self, via: str) -> bool:
        """Start network entry via *via*, or again after a failed attempt; True once
        ``security.entry_attempts`` attempts failed (the node then stops, saying why, instead of
        listening until its duration ends)."""
        failed = self._failures(self.milestones.get("attach", 0.0))
        limit = int(self.cfg["security"]["entry_attempts"])
        if failed and self.attempts >= limit:
            last = failed[-1].event
            self.gave_up = (f"network entry via {via} failed {self.attempts} times "
                            f"(last: {type(last).__name__} {_fields(last)})")
            self.progress(f"{self.net.now:8.2f} s  {self.name}: {self.gave_up}")
            return True
        if "attach" not in self.milestones or failed:
            self.attempts += 1
            self.milestones["attach"] = self.net.now
            self.role.attach(self.id_of[via], self.net.now)
            self.progress(f"{self.net.now:8.2f} s  {self.name}: network entry via {via} "
                          f"(attempt {self.attempts})")

    def _script_ars(self) -> bool:
        me = self.id_of[self.name]
        if not self._seen("KeysInstalled", subject=me):
            if self._locked():
                return self._retry_entry(self.abs_name)
        else:
            self._mark("entered")
        return False  # an ARS serves until the duration ends

    def _script_ams(self) -> bool:
        me, abs_id = self.id_of[self.name], self.id_of[self.abs_name]
        f = self.amss[0]
        if not self._seen("KeysInstalled", subject=me):
            if self._locked():
                return self._retry_entry(self.st["serving"])
            return False
        self._mark("entered")
        if not self._drained(f.ul1):
            self._send(f.ul1, abs_id)
            return False
        if f.target is None:    # it stays: done once DL flow 1 has arrived
            return self._settled(f.dl1, f.ul1) and self._flow(f.dl1).stats.delivered_packets > 0
        if not self._seen("HandoverComplete", ams=me, target=self.id_of[f.target]):
            if "handover_started" not in self.milestones:
                if not self._settled(f.dl1, f.ul1):
                    return False
                self._mark("handover_started")
                self._ho_due = True
            elif len(self._failures(0.0, procedure="handover")) > self._ho_lost:
                self._ho_due = True
            return self._start_handover(f.target) if self._ho_due else False
        self._mark("handover_complete")
        self._send(f.ul2, abs_id)
        # done when DL flow 2 has arrived too (all of it, or nothing new for drain_frames):
        # over the air the UL flow may well finish first
        return (self._drained(f.ul2) and self._flow(f.dl2).stats.delivered_packets > 0
                and self._settled(f.dl2, f.ul2) and self._uplink_acked(f.ul2))

    def _start_handover(self, target: str) -> bool:
        """Hand over to *target*, or again after the target stayed silent (the role's retries
        ran out: ``PeerLost`` of ``"handover"``; it then still serves us where we are); True once
        ``security.entry_attempts`` attempts failed -- a handover is a re-entry at the target."""
        limit = int(self.cfg["security"]["entry_attempts"])
        if self.ho_attempts >= limit:
            self.gave_up = f"handover to {target} failed {self.ho_attempts} times (target silent)"
            self.progress(f"{self.net.now:8.2f} s  {self.name}: {self.gave_up}")
            return True
        if not try_handover(self.role, self.id_of[target], self.net.now):
            return False   # busy: started again next frame
        self._ho_due = False
        self.ho_attempts += 1
        self._ho_lost = len(self._failures(0.0, procedure="handover"))
        if self.ho_attempts > 1:
            self.progress(f"{self.net.now:8.2f} s  {self.name}: handover to {target} "
                          f"(attempt {self.ho_attempts})")
        return False

    def _uplink_acked(self, ul: int) -> bool:
        """Every ARQ block this node sent is acknowledged, or a block lifetime has passed since
        UL flow *ul* was all sent: a node that stops earlier strands its unacknowledged blocks,
        which the far end then counts as lost (seen over loaded emulated Plutos)."""
        params = self.role.arq_params
        if params is None:
            return True
        if not any(c.tx.unacked() for c in self.role.arq_connections().values()):
            return True
        return self.net.now - self.milestones[f"flow{ul}_sent"] >= params.lifetime

    def _predistributes(self, f: AmsFlows) -> bool:
        return bool(f.target and self.cfg["security"]["ak_predistribution"]
                    and station(self.cfg, f.target)["role"] == "ars")

    def _script_abs(self) -> bool:
        for f in self.amss:
            self._serve(f)
        self._mark_cell("ams_entered", self.amss)
        self._mark_cell("predistributed", [f for f in self.amss if self._predistributes(f)])
        self._mark_cell("handover_seen", [f for f in self.amss if f.target])
        return False  # the ABS serves until the duration ends

    def _serve(self, f: AmsFlows) -> None:
        """The ABS's script for one AMS (milestones ``"<AMS>:<what>"``)."""
        ams_id = self.id_of[f.name]
        if not self._seen("KeysInstalled", subject=ams_id):
            return
        self._mark(f"{f.name}:ams_entered")
        if self._predistributes(f) and f"{f.name}:predistributed" not in self.milestones:
            assert f.target is not None
            self._mark(f"{f.name}:predistributed")
            self.role.prepare_handover(ams_id, [self.id_of[f.target]], self.net.now)
        if f.target is None or not self._seen("HandoverComplete", ams=ams_id):
            self._send(f.dl1, ams_id)
            return
        seen = f"{f.name}:handover_seen"
        self._mark(seen)
        # The AMS completes the handover when the ABS's reply reaches it, possibly after a
        # retransmission; DL packets sent before that are rejected there (no keys). So send DL
        # flow 2 once UL flow 2 shows the AMS is through, or drain_frames frames after.
        if (self._flow(f.ul2).stats.delivered_packets == 0
                and self.net.now - self.milestones[seen] < self._drain_s):
            return
        self._send(f.dl2, ams_id)

    # ------------------------------------------------------------------ report

    def _short(self, fids: Iterable[int]) -> list[str]:
        """Those of *fids* (received here) below ``traffic.min_delivery`` of the packets the far
        end sends, as ``"flowN (AMS UL1) got/n"``."""
        n = self._counts[1]
        need = float(self.cfg["traffic"]["min_delivery"]) * n
        out = []
        for fid in fids:
            got = self._flow(fid).stats.delivered_packets
            if got < need:
                f = self.rx[fid][0]
                out.append(f"flow{fid} ({f.name} {f.label(fid)}) {got}/{n}")
        return out

    def _missing(self) -> list[str]:
        """Milestones this node must reach and has not (the ABS: every AMS entered)."""
        role = self.st["role"]
        if role == "abs":
            need = [f"{f.name}:ams_entered" for f in self.amss]
        elif role == "ams":
            need = ["entered"] + (["handover_complete"] if self.amss[0].target else [])
        else:
            need = ["entered"]
        return [m for m in need if m not in self.milestones]

    def _flow_row(self, fid: int) -> dict[str, Any]:
        s = self.flows[fid].stats
        return {"sent": s.sent_bytes, "delivered": s.delivered_bytes,
                "delivered_packets": s.delivered_packets, "corrupted": s.corrupted_bytes,
                "duplicates": s.duplicate_packets}

    def _per_ams(self) -> dict[str, Any]:
        """One row per AMS this node deals with: its flows here (by label), its milestones (at
        the ABS, without the ``"<AMS>:"`` prefix), ``ok`` and, if not, the ``reason``."""
        rows = {}
        missing = self._missing()
        for f in self.amss:
            flows = {f.label(fid): {"flow": f"flow{fid}", **self._flow_row(fid)}
                     for fid in f.fids if fid in self.flows}
            ms, lacking = dict(self.milestones), missing
            if self.st["role"] == "abs":
                prefix = f"{f.name}:"
                ms = {k.removeprefix(prefix): t for k, t in self.milestones.items()
                      if k.startswith(prefix) or k in {f"flow{fid}_sent" for fid in f.fids}}
                lacking = [m.removeprefix(prefix) for m in missing if m.startswith(prefix)]
            short = self._short(fid for fid in self.rx if self.rx[fid][0] is f)
            reason = (f"not reached: {', '.join(lacking)}" if lacking
                      else "; ".join(short) if short
                      else "corrupted or duplicated data delivered"
                      if any(r["corrupted"] or r["duplicates"] for r in flows.values())
                      else None)
            rows[f.name] = {"target": f.target, "ok": reason is None, "reason": reason,
                            "flows": flows, "milestones": ms}
        return rows

    def _report(self, wall_s: float) -> dict[str, Any]:
        flows = {}
        corrupted = self.trial.stray_corrupted
        duplicates = 0
        owner = {fid: f for f in self.all_amss.values() for fid in f.fids}
        for fid in sorted(self.flows):
            row = self._flow_row(fid)
            f = owner.get(fid)
            flows[f"flow{fid}"] = {**row, "ams": f.name if f else None,
                                   "label": f.label(fid) if f else None}
            corrupted += row["corrupted"]
            duplicates += row["duplicates"]
        rejections: dict[str, int] = {}
        for r, c in getattr(self.role, "rejections", {}).items():
            rejections[r] = int(c)
        role = self.st["role"]
        missing = self._missing()
        short = self._short(self.rx)
        ok = not missing and not short and corrupted == 0 and duplicates == 0 \
            and not self.trial.nonces.reused and self.gave_up is None
        if ok:
            reason = None
        elif self.trial.nonces.reused:
            reason = f"nonce reuse: {self.trial.nonces.describe(limit=2)}"
        elif self.gave_up:
            reason = self.gave_up
        elif missing:
            reason = f"not reached: {', '.join(missing)}"
        elif corrupted or duplicates:
            reason = "corrupted or duplicated data delivered"
        else:
            reason = (f"delivered below traffic.min_delivery: {', '.join(short[:4])}"
                      + (f" and {len(short) - 4} more" if len(short) > 4 else "")
                      + " packets")
        links, links_tx_only = self.trial.link_report(self.net.now)
        return {
            "ok": ok,
            "reason": reason,
            "station": self.name,
            "role": role,
            "seed": int(self.cfg["seed"]),
            **self.trial.key_randomness(),
            "milestones": self.milestones,
            "bytes": {"corrupted": corrupted, "duplicates": duplicates},
            "flows": flows,
            "per_ams": self._per_ams(),
            "links": links,
            "links_tx_only": links_tx_only,
            # nonce streams (TEK fingerprints, never keys) so the hosts' reports can be merged
            # with stack.nonces.NonceMonitor.merge to check the whole cell
            "security": {"rejections": rejections, "keys": self.trial.key_lines(),
                         "nonces": {**self.trial.nonce_summary(),
                                    "streams_sent": self.trial.nonces.export()}},
            "sync": self.net.sync_status(),
            "main_loop": self.net.loop_status(),
            "timing": {"wall_s": wall_s, "air_s": self.net.now, "frames": self.net.frame},
            "events": [f"{ne.t:.3f} s {type(ne.event).__name__} {_fields(ne.event)}"
                       for ne in self.trial.log if type(ne.event).__name__ != "DataReceived"],
        }
