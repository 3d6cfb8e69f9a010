"""What :class:`relaysec.ota.OtaNetwork` reports about itself: how busy the main loop that
serves every local node was, and each node's lock to the ABS, beacons and radio counters.

Kept apart from the loop (``relaysec/ota.py``) and the hand-over of bursts
(``relaysec/ota_tx.py``) because it changes for other reasons -- what a lab engineer reads in a
trial's report and ``benchmarks.emulator`` prints. A mixin: the network holds the state named
below; a node's state (``_NodeState``) is the one of ota.py.
"""

from __future__ import annotations

from collections import deque
from typing import Any, cast

from hw.radio import StreamingRadio
from relaysec.schedule import FrameSchedule


class OtaStatus:
    """Reports of :class:`relaysec.ota.OtaNetwork` (see the module doc)."""

    schedule: FrameSchedule
    states: dict[str, Any]
    _loop_wall: float
    _loop_idle: float
    _loop_cpu: float
    _loop_queued: float
    _passes: deque[float]
    _pass_count: int

    def loop_status(self) -> dict[str, Any]:
        """The main loop that serves every local node, on the host's clock: the share of its
        time it was busy (not waiting for samples), its demodulation passes and their
        durations (median, 90th percentile, longest, over the last ``PASS_HISTORY``; with
        demodulation workers a pass only hands its windows over) and the workers' CPU time.
        Busy near 1 means the host cannot keep up with these nodes at this air speed: their
        processing falls behind, UL grants come late and zone bursts are skipped. ``cpu`` is
        the share of the loop's time its thread ran on a core: busy well above cpu means the
        loop waited rather than worked: ``waited_for_core`` is the share it was ready to run
        but every core was taken (Linux only), the rest of the difference is the GIL."""
        wall = self._loop_wall
        out: dict[str, Any] = {
            "busy": round(1.0 - self._loop_idle / wall, 3) if wall > 0 else None,
            "cpu": round(self._loop_cpu / wall, 3) if wall > 0 else None,
            "waited_for_core": round(self._loop_queued / wall, 3) if wall > 0 else None,
            "passes": self._pass_count,
        }
        workers = [st.worker for st in self.states.values() if st.worker is not None]
        if workers:
            # demodulation ran in the nodes' own processes (ota_demod_workers): their CPU time
            out["demod_workers_cpu_s"] = round(sum(w.cpu_s for w in workers), 3)
        if self._passes:
            p = sorted(self._passes)
            out["pass_ms"] = {"median": round(1e3 * p[len(p) // 2], 2),
                              "p90": round(1e3 * p[min(len(p) - 1, int(0.9 * len(p)))], 2),
                              "max": round(1e3 * p[-1], 2)}
        return out

    def sync_status(self) -> dict[str, Any]:
        """Per node: locked to the ABS, beacons heard, radio counters."""
        out = {}
        for name, st in self.states.items():
            radio = st.node.radio
            entry: dict[str, Any] = {
                "master": st.is_master,
                "locked": st.is_master or st.timing.locked(st.rx_index),
                "beacons": st.beacons,
                "missed_zones": st.missed,
                "radio": radio.stats.as_dict(),
                # share of the RX stream demodulated (overlap re-scans count again): the zones
                # it receives in and its own, once it keeps the frame timing
                "demodulated": round(st.scanned / max(1, st.scanned + st.skipped), 3),
            }
            mac = st.node.mac
            if mac.grants_heard:
                # UL grants to this AMS, those decoded after its slot there was decided, and
                # of those the ones still sent in (the slot was ahead of the TX horizon)
                entry["ul_grants"] = {"heard": mac.grants_heard, "late": mac.grants_late,
                                      "filled": mac.grants_filled}
            if not st.is_master and st.first_lock is not None:
                # the ABS opens every frame with a beacon: those due since the first one heard
                expected = (st.rx_index - st.first_lock) // self.schedule.frame_len + 1
                entry["beacons_expected"] = expected
                entry["beacons_lost"] = max(0, expected - st.beacons)
            if radio.caps.stream:
                entry["timeline"] = cast(StreamingRadio, radio).timeline_report()
                entry["relocks"] = st.relocks
            out[name] = entry
        return out
