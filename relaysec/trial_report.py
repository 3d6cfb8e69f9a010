"""The trial's report: a JSON-ready dict with the verdict, per-AMS and cell figures, links,
security counters, phases and the sequence chart; and its text rendering.

``per_ams[name]``: bytes sent/delivered/lost/corrupted and duplicates over every flow of that
AMS (both directions), goodput over the traffic phases (``traffic_1``, ``tek_refresh``,
``traffic_2``), where it was served, the MCS used and, for a mover, the handover interruption.
``cell``: the totals, the cell goodput and Jain's fairness index over per-AMS goodput.
"""

from __future__ import annotations

from dataclasses import fields as dc_fields
from typing import TYPE_CHECKING, Any

from relaysec.cell import data_mcs
from relaysec.config import stations_by_role
from relaysec.report import MscEntry, msc_text, summary_text

if TYPE_CHECKING:
    from relaysec.trial import Trial

#: What the reports say about a run whose keys were drawn from the seed over radios.
INSECURE = "deterministic keys"

#: Phases whose application traffic counts towards goodput (the handover probes do not).
TRAFFIC_PHASES = ("traffic_1", "tek_refresh", "traffic_2")


def event_fields(ev: Any) -> str:
    """``name=value`` of an event's fields (station ids in hex; never payloads)."""
    try:
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


def jain(xs: list[float]) -> float:
    """Jain's fairness index of *xs* (:func:`relaysec.scheduler.jain`; NaN if empty or all 0)."""
    from relaysec.scheduler import jain as jain_index

    if not xs or not any(xs):
        return float("nan")
    return min(1.0, jain_index(xs))


def _traffic_seconds(t: Trial) -> float:
    return sum((p.t_end or 0.0) - (p.t_start or 0.0) for p in t.phases
               if p.name in TRAFFIC_PHASES and p.t_start is not None and p.t_end is not None)


def _in_windows(t: Trial, e: Any) -> int:
    """Bytes of flow entry *e* delivered inside its phase's measurement window."""
    win = t.windows.get(e.label)
    if win is None:
        return 0
    n = sum(1 for x in e.flow.stats.delivery_times if win[0] <= x <= win[1])
    return n * t.flows.payload_bytes


def _window_seconds(t: Trial) -> float:
    return sum(b - a for a, b in t.windows.values())


def _link_mcs(t: Trial, tx: str, rx: str) -> str | None:
    """The MCS used most for allocations on link *tx* -> *rx*."""
    lk = t.links.links.get(f"{tx}->{rx}") if t.cell is not None else None
    if lk is None or not lk.mcs:
        return None
    return lk.mcs.most_common(1)[0][0]


def per_ams(t: Trial) -> dict[str, dict[str, Any]]:
    """Per-AMS figures (see the module doc). Saturating runs measure goodput over the phases'
    measurement windows only (full queues, settled MCS); counted runs over the traffic phases."""
    windows = _window_seconds(t) if t.windows else 0.0
    secs = windows or _traffic_seconds(t)
    out: dict[str, dict[str, Any]] = {}
    for st in stations_by_role(t.cfg, "ams"):
        name = st["name"]
        mine = [e for e in t.flows.flows.values() if e.ams == name]
        tot = t.flows.totals(mine)
        if windows:
            dl = sum(_in_windows(t, e) for e in mine if e.dst == name)
            ul = sum(_in_windows(t, e) for e in mine if e.src == name)
        else:
            dl = sum(e.flow.stats.delivered_bytes for e in mine
                     if e.label in TRAFFIC_PHASES and e.dst == name)
            ul = sum(e.flow.stats.delivered_bytes for e in mine
                     if e.label in TRAFFIC_PHASES and e.src == name)
        row: dict[str, Any] = {
            "served_by": st["serving"], "now_served_by": t.serving.get(name),
            "handover_target": st.get("handover_target"),
            "sent": tot["sent"], "delivered": tot["delivered"], "lost": tot["lost"],
            "corrupted": tot["corrupted"], "duplicates": tot["duplicates"],
            "goodput_bps": 8 * (dl + ul) / secs if secs > 0 else None,
            "goodput_dl_bps": 8 * dl / secs if secs > 0 else None,
            "goodput_ul_bps": 8 * ul / secs if secs > 0 else None,
            "mcs": _link_mcs(t, t.serving.get(name) or st["serving"], name),
            "mcs_ul": _link_mcs(t, name, t.serving.get(name) or st["serving"]),
        }
        row.update(t.per_ams_extra.get(name, {}))
        out[name] = row
    return out


def efficiency(t: Trial) -> float | None:
    """Application goodput over the coded PHY rate of the zones used, in the saturating phases'
    windows: the application bits every hop carried (a packet through an ARS crosses two) over
    the information bits the OFDM symbols of every zone that carried data could hold at the MCS
    of that data (preamble, zone header and MAP symbols count as zone time; guards do not).
    None for counted traffic or over the air."""
    capacity = getattr(t.net, "capacity_bits", None)
    if not t.windows or capacity is None:
        return None
    cap = sum(capacity(a, b) for a, b in t.windows.values())
    if cap <= 0:
        return None
    app = 0
    for e in t.flows.flows.values():
        if e.label not in t.windows:
            continue
        hops = 2 if t.by_name[t.serving.get(e.ams, "")]["role"] == "ars" else 1
        app += 8 * _in_windows(t, e) * hops
    return app / cap


def cell_totals(t: Trial, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Cell-wide goodput, fairness and efficiency over the AMSs."""
    rates = [r["goodput_bps"] for r in rows.values() if r["goodput_bps"] is not None]
    return {"ams": len(rows), "arss": len(stations_by_role(t.cfg, "ars")),
            "traffic": t.cfg["traffic"]["mode"],
            "goodput_bps": sum(rates) if rates else None,
            "jain": jain(rates) if rates else None,
            "efficiency": efficiency(t),
            "measured_s": _window_seconds(t) or _traffic_seconds(t)}


def stale_rejections(t: Trial) -> dict[str, int]:
    """Rejections, by reason, of frames an old serving station sent after the handover started:
    packets that were in flight on the old path (the old ARS forwarding queued data to an AMS
    that has left, or relaying its last uplink to an ABS that has already switched). They are
    expected in a clean run and are never delivered; anything else in ``security.rejections`` is
    not explained by the handover."""
    t_ho = t.handover.get("t_start")
    if t_ho is None:
        return {}
    sources = {t.id_of[s["serving"]] for s in stations_by_role(t.cfg, "ams")
               if s.get("handover_target")}
    out: dict[str, int] = {}
    for ne in t.log.kinds("Rejected"):
        ev = ne.event
        if ne.t >= t_ho and getattr(ev, "link", None) in sources:
            out[ev.reason] = out.get(ev.reason, 0) + 1
    return out


def key_lines(t: Trial) -> list[str]:
    """Key identifiers of the links in use at the end (AKID, counts; never key values), each
    read at whichever end runs here: both in a trial, one in a ``relaysec node``."""
    roles = t.roles
    if not roles:
        return []
    pairs = [(t.abs_name, s["name"]) for s in stations_by_role(t.cfg, "ars")]
    for st in stations_by_role(t.cfg, "ams"):
        name = st["name"]
        if t.cell is not None and len(t.nodes) == len(t.cfg["stations"]):
            pairs.append((name, t.key_holder(t.serving[name])))
        elif name in roles:
            # a node: the AMS's own serving station (None before entry)
            serving = getattr(roles[name], "serving", None)
            if serving is not None:
                pairs.append((name, t.key_holder(t.name_of(serving))))
        else:
            # a node without the AMS: this station's link with it, if it holds one
            pairs += [(name, n) for n in roles if t.key_holder(n) == n]
    lines = []
    for a, b in pairs:
        ki = None
        for holder, peer in ((b, a), (a, b)):
            if holder in roles and ki is None:
                try:
                    ki = roles[holder].key_info(t.id_of[peer])
                except Exception:
                    ki = None
        if ki is not None:
            lines.append(f"{a}<->{b} AKID {ki.akid} CMAC_KEY_COUNT {ki.cmac_key_count} "
                         f"COUNTER_TEK {tuple(ki.counter_teks)}")
    return lines


def radio_stats(t: Trial) -> dict[str, dict[str, int]]:
    """Each local station's radio counters (``hw.radio.RadioStats``), by station name."""
    if t.cell is None:
        return {}
    return {name: node.radio.stats.as_dict() for name, node in t.cell.nodes.items()}


def faults_report(t: Trial) -> list[dict[str, Any]]:
    """Each configured fault: what it did, when the cell recovered (first data across what it
    broke, after it was over), and for a restart the bytes the restarted station lost with
    its state (ARQ blocks it held unacknowledged)."""
    out = t.fault_plan.report()
    for f, d in zip(t.fault_plan.faults, out, strict=True):
        if f.kind == "restart":
            lost = sum(sum(len(b.sdu) for b in c.tx.blocks.values()) + sum(map(len, c.tx.waiting))
                       for r in t.retired_roles if r.station_id == t.id_of[f.spec["station"]]
                       for c in r.arq_connections().values())
            d["held_unacked_bytes_lost"] = lost
    return out


def soak_report(t: Trial) -> dict[str, Any] | None:
    """The soak's figures: handovers, TEK refreshes, re-authentications and faults over the
    run, and per sampled quantity its first, last and largest value -- the growth a reader
    checks (role tables must stay flat; the trial's own per-packet records grow by design)."""
    if not t.soak_samples:
        return None
    samples = t.soak_samples
    mid = samples[len(samples) // 2]

    def series(get: Any) -> dict[str, Any]:
        vals = [get(x) for x in samples]
        return {"first": vals[0], "mid": get(mid), "last": vals[-1], "max": max(vals)}

    roles: dict[str, dict[str, Any]] = {}
    for name in samples[-1]["roles"]:
        keys = set().union(*(x["roles"].get(name, {}).keys() for x in samples))
        roles[name] = {k: series(lambda x, n=name, k=k: x["roles"].get(n, {}).get(k, 0))
                       for k in sorted(keys)}
    causes = {cause: n for (kind, cause), n in t.log.tally.items() if kind == "KeysInstalled"}
    return {"seconds": t.soak_s, "samples": len(samples), **t.soak_stats,
            "keys_installed": causes,
            "faults": sum(1 for f in t.fault_plan.faults if f.fired_at is not None),
            "rss_kb": series(lambda x: x["rss_kb"]),
            "events_logged": series(lambda x: x["events_logged"]),
            "packets_recorded": series(lambda x: x["packets_recorded"]),
            "nonce_streams": series(lambda x: x["nonce_streams"]),
            "roles": roles}


def build_report(t: Trial, reason: str | None) -> dict[str, Any]:
    """The JSON-ready report of trial *t* (verdict first)."""
    flows = {}
    for e in t.flows.flows.values():
        s = e.flow.stats
        flows[s.name] = {"src": e.src, "dst": e.dst, "ams": e.ams, "sent": s.sent_bytes,
                         "delivered": s.delivered_bytes, "lost": s.lost_bytes,
                         "corrupted": s.corrupted_bytes, "duplicates": s.duplicate_packets}
    tot = t.flows.totals()
    corrupted = tot["corrupted"] + t.flows.stray_corrupted
    duplicates = tot["duplicates"]
    ok = reason is None and all(p.ok for p in t.phases)
    if ok and (corrupted or duplicates):
        ok = False
        reason = f"integrity: {corrupted} bytes corrupted, {duplicates} duplicates delivered"
    if ok and t.nonces.reused:
        ok = False
        reason = f"nonce reuse: {t.nonces.describe(limit=2)}"
    sim_s = t.now if t.net is not None else 0.0
    rejections: dict[str, int] = {}
    for role in t.roles.values():
        for r, c in getattr(role, "rejections", {}).items():
            rejections[r] = rejections.get(r, 0) + int(c)
    cpu = t.net.cpu() if t.net is not None else {}
    total_cpu = sum(cpu.values()) or 1.0
    links, links_tx_only = t.link_report(sim_s)
    rows = per_ams(t)
    msc = t.cell.msc if t.cell is not None else []
    return {
        "ok": ok,
        "reason": reason,
        "seed": t.seed,
        **t.key_randomness(),
        "backend": t.cfg["backend"],
        "security_mode": t.cfg["security"]["mode"],
        "profile": t.cfg["phy"]["profile"],
        "mcs": data_mcs(t.cfg, wall=t.wall),
        "bytes": {"sent": tot["sent"], "delivered": tot["delivered"],
                  "lost": tot["sent"] - tot["delivered"], "corrupted": corrupted,
                  "duplicates": duplicates},
        "per_ams": rows,
        "cell": cell_totals(t, rows),
        "flows": flows,
        "phases": [p.as_dict() for p in t.phases],
        "links": links,
        "links_tx_only": links_tx_only,
        "security": {
            "rejections": rejections,
            "in_flight_at_handover": stale_rejections(t),
            "keys": key_lines(t),
            "nonces": t.nonce_summary(),
        },
        "handover": t.handover,
        "arq": t.arq_summary(),
        "faults": faults_report(t),
        "soak": soak_report(t),
        # control messages each station put on the air, by title (retransmissions included)
        "control_messages": {name: dict(getattr(role, "air_messages", {}))
                             for name, role in t.roles.items()},
        "timing": {**t.timing, "sim_s": sim_s, "frames": t.net.frame if t.net is not None else 0,
                   "simulated_clock": not t.wall},
        "cpu_share": {k: v / total_cpu for k, v in cpu.items()},
        "cpu_s": dict(cpu),
        "msc": [{"t": e.t, "src": e.src, "dst": e.dst, "label": e.label, "note": e.note}
                for e in msc],
        "stations": [s["name"] for s in t.cfg["stations"]],
        # per local radio: hardware overflow/underflow flags (Plutos), drops, clipping, traffic
        "radios": radio_stats(t),
        # over the air: per node, locked, beacons heard and lost, zones missed, stream breaks,
        # the stream worker's priority and (an AMS) its UL grants heard late -- what the lab
        # guide reads (docs/radios.md); absent on the simulated air
        **({"sync": t.net.sync_status()} if hasattr(t.net, "sync_status") else {}),
        # over the air: the one loop that serves every local node, how busy it was
        **({"main_loop": t.net.loop_status()} if hasattr(t.net, "loop_status") else {}),
        "events": [f"{ne.t * 1e3:.1f} ms {ne.station}: {type(ne.event).__name__} "
                   f"{event_fields(ne.event)}" for ne in t.log
                   if type(ne.event).__name__ not in ("DataReceived", "ControlSent")],
    }


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
            text += (f"\nNot charted: {sum(data.values())} bursts without a control message in "
                     "the clear (" + ", ".join(f"{k} {v}" for k, v in data.items()) + ")")
    return text
