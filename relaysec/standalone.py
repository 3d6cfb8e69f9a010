"""One station per process (``relaysec node``): the same trial, run by three or four hosts.

Every host loads the same TOML file and runs the station whose role/name it is given, on its own
Pluto. There is no shared clock and no control channel other than the air, so each station follows
a small script of its own, driven by what it hears and by frame counts of the OTA schedule
(see :mod:`relaysec.ota` for the ABS-master timing):

* **ABS** — serves entries; once the AMS has keys it pre-distributes the AMS's next AK to the
  handover target ARS (if ``security.ak_predistribution``) and sends DL flow 1; after the handover
  it sends DL flow 2.
* **ARS** — enters the network as soon as it is locked to the ABS's beacons (re-entering after a
  failed attempt).
* **AMS** — enters through its serving station once locked; sends UL flow 1; when flow 1 is done
  (sent, and ``traffic.drain_frames`` frames passed) it hands over to ``handover_target`` and then
  sends UL flow 2.

Application packets are deterministic in (seed, flow id, sequence number), so each receiver checks
what it got against what the far end must have sent (bytes delivered, corrupted, duplicates). A
node's report covers what *it* saw; the lab compares the three or four reports. A node runs on a
radio, so its keys, nonces and protocol randoms come from the OS CSPRNG (the seed picks only the
payloads) unless ``security.insecure_deterministic_keys``, which its report flags as insecure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from relaysec.appdata import Flow, flow_of
from relaysec.config import Config, station, stations_by_role
from relaysec.radios import given
from relaysec.trial import Trial, TrialSetupError, _fields
from stack.nonces import monitoring

#: Flow ids used by the node script (DL = ABS→AMS, UL = AMS→ABS; 1 before, 2 after handover).
DL1, UL1, DL2, UL2 = 1, 2, 3, 4


class NodeRunner:
    """Run station *name* of *cfg* on its own radio (``radio`` overrides the configured one: tests
    pass loopback radios sharing one wall-clock medium)."""

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
        self.flows: dict[int, Flow] = {}
        self.quota: dict[int, int] = {}
        self.milestones: dict[str, float] = {}
        self.attempts = 0
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

    def _mark(self, key: str) -> None:
        if key not in self.milestones:
            self.milestones[key] = self.net.now
            self.progress(f"{self.net.now:8.2f} s  {self.name}: {key}")

    def _send(self, fid: int, dst: int) -> None:
        from stack.errors import SecurityError

        left = self.quota.setdefault(fid, int(self.cfg["traffic"]["packets_per_direction"]))
        flow = self._flow(fid)
        for _ in range(min(left, int(self.cfg["traffic"]["per_frame"]))):
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
        drain = float(self.cfg["traffic"]["drain_frames"]) * self.net.schedule.frame_s
        return self.net.now - self.milestones[key] >= drain

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
        self.id_of = self.trial.id_of
        self.abs_name = self.trial.abs_name
        ams = stations_by_role(self.cfg, "ams")
        self.ams = ams[0] if ams else None
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
                if fid in (DL1, DL2, UL1, UL2):
                    self._flow(fid).deliver(ev.payload, ne.t)
                else:
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

    def _retry_entry(self, via: str) -> None:
        failed = [ne for ne in self.trial.log if ne.station == self.name
                  and type(ne.event).__name__ in ("EntryFailed", "PeerLost")
                  and ne.t >= self.milestones.get("attach", 0.0)]
        if "attach" not in self.milestones or (
                failed and self.attempts < int(self.cfg["security"]["entry_attempts"])):
            self.attempts += 1
            self.milestones["attach"] = self.net.now
            self.role.attach(self.id_of[via], self.net.now)
            self.progress(f"{self.net.now:8.2f} s  {self.name}: network entry via {via} "
                          f"(attempt {self.attempts})")

    def _script_ars(self) -> bool:
        me = self.id_of[self.name]
        if not self._seen("KeysInstalled", subject=me):
            if self._locked():
                self._retry_entry(self.abs_name)
        else:
            self._mark("entered")
        return False  # an ARS serves until the duration ends

    def _script_ams(self) -> bool:
        me, abs_id = self.id_of[self.name], self.id_of[self.abs_name]
        target = self.st.get("handover_target")
        if not self._seen("KeysInstalled", subject=me):
            if self._locked():
                self._retry_entry(self.st["serving"])
            return False
        self._mark("entered")
        if not self._drained(UL1):
            self._send(UL1, abs_id)
            return False
        if target and not self._seen("HandoverComplete", ams=me, target=self.id_of[target]):
            if "handover_started" not in self.milestones:
                if not self._dl1_settled():
                    return False
                self._mark("handover_started")
                self.role.handover(self.id_of[target], self.net.now)
            return False
        self._mark("handover_complete")
        self._send(UL2, abs_id)
        return self._drained(UL2) and self._flow(DL2).stats.delivered_packets > 0

    def _dl1_settled(self) -> bool:
        """DL flow 1 all here, or nothing more of it for drain_frames frames: the AMS hands over
        only then, so DL packets in flight through the old station are not stranded by it."""
        stats = self._flow(DL1).stats
        if stats.delivered_packets >= int(self.cfg["traffic"]["packets_per_direction"]):
            return True
        drain = float(self.cfg["traffic"]["drain_frames"]) * self.net.schedule.frame_s
        since = max(stats.last_rx or 0.0, self.milestones[f"flow{UL1}_sent"])
        return self.net.now - since >= drain

    def _short_flows(self) -> list[str]:
        """The flows this node receives that fell short of ``traffic.min_delivery`` of the
        packets the far end sends (AMS: DL 1 and 2; ABS: UL 1 and 2; nothing for an ARS)."""
        role = self.st["role"]
        if role == "ars" or self.ams is None:
            return []
        fids = [DL1, DL2] if role == "ams" else [UL1, UL2]
        if not self.ams.get("handover_target"):
            fids = fids[:1]
        n = int(self.cfg["traffic"]["packets_per_direction"])
        need = float(self.cfg["traffic"]["min_delivery"]) * n
        got = {fid: self._flow(fid).stats.delivered_packets for fid in fids}
        return [f"flow{fid} {got[fid]}/{n}" for fid in fids if got[fid] < need]

    def _script_abs(self) -> bool:
        if self.ams is None:
            return False
        ams_id = self.id_of[self.ams["name"]]
        if not self._seen("KeysInstalled", subject=ams_id):
            return False
        self._mark("ams_entered")
        target = self.ams.get("handover_target")
        if (target and self.cfg["security"]["ak_predistribution"]
                and station(self.cfg, target)["role"] == "ars"
                and "predistributed" not in self.milestones):
            self._mark("predistributed")
            self.role.prepare_handover(ams_id, [self.id_of[target]], self.net.now)
        if not self._seen("HandoverComplete", ams=ams_id):
            self._send(DL1, ams_id)
            return False
        self._mark("handover_seen")
        # The AMS completes the handover when the ABS's reply reaches it, possibly after a
        # retransmission; DL packets sent before that are rejected there (no keys). So send DL
        # flow 2 once UL flow 2 shows the AMS is through, or drain_frames frames after.
        drain = float(self.cfg["traffic"]["drain_frames"]) * self.net.schedule.frame_s
        if (self._flow(UL2).stats.delivered_packets == 0
                and self.net.now - self.milestones["handover_seen"] < drain):
            return False
        self._send(DL2, ams_id)
        return False  # the ABS serves until the duration ends

    def _report(self, wall_s: float) -> dict[str, Any]:
        flows = {}
        corrupted = self.trial.stray_corrupted
        duplicates = 0
        for fid, f in sorted(self.flows.items()):
            s = f.stats
            flows[f"flow{fid}"] = {"sent": s.sent_bytes, "delivered": s.delivered_bytes,
                                   "corrupted": s.corrupted_bytes,
                                   "duplicates": s.duplicate_packets}
            corrupted += s.corrupted_bytes
            duplicates += s.duplicate_packets
        rejections: dict[str, int] = {}
        for r, c in getattr(self.role, "rejections", {}).items():
            rejections[r] = int(c)
        role = self.st["role"]
        need = {"ars": ["entered"], "ams": ["entered", "handover_complete"],
                "abs": ["ams_entered"]}[role]
        missing = [m for m in need if m not in self.milestones]
        short = self._short_flows()
        ok = not missing and not short and corrupted == 0 and duplicates == 0 \
            and not self.trial.nonces.reused
        if ok:
            reason = None
        elif self.trial.nonces.reused:
            reason = f"nonce reuse: {self.trial.nonces.describe(limit=2)}"
        elif missing:
            reason = f"not reached: {', '.join(missing)}"
        elif corrupted or duplicates:
            reason = "corrupted or duplicated data delivered"
        else:
            reason = (f"delivered below traffic.min_delivery: {', '.join(short)} packets")
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
            "links": links,
            "links_tx_only": links_tx_only,
            # nonce streams (TEK fingerprints, never keys) so the three hosts' reports can be
            # merged with stack.nonces.NonceMonitor.merge to check the whole cell
            "security": {"rejections": rejections, "keys": self.trial.key_lines(),
                         "nonces": {**self.trial.nonce_summary(),
                                    "streams_sent": self.trial.nonces.export()}},
            "sync": self.net.sync_status(),
            "timing": {"wall_s": wall_s, "air_s": self.net.now, "frames": self.net.frame},
            "events": [f"{ne.t:.3f} s {type(ne.event).__name__} {_fields(ne.event)}"
                       for ne in self.trial.log if type(ne.event).__name__ != "DataReceived"],
        }
