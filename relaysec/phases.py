"""The phases of a trial, each for every station it concerns (a cell of any size).

1. ``ars_entry``   — every ARS enters the network (EAP-PSK, key agreement); both ends hold the
   same AK (AKID and key check values compared, never keys).
2. ``ams_entry``   — every AMS enters at once through its serving station; distributed mode: the
   ABS transfers each AMS's AK to its ARS (AK Transfer / ACK); centralized: keys stay at the ABS.
3. ``traffic_1``   — secured application packets both ways between the ABS and every AMS; every
   packet must arrive intact.
4. ``tek_refresh`` — traffic continues while every AMS's TEK is renewed (short TEK lifetime).
5. ``handover``    — a *group handover*: every AMS with a ``handover_target`` moves in the same
   frames, after AK pre-distribution to each target; probe traffic every frame measures each
   AMS's interruption (the longest time no user data reached or left it, ITU-R M.2134's
   definition) and its switch time (until data came by the target). A cell where no AMS has a
   target skips the phase (and says so).
6. ``traffic_2``   — secured traffic again, the movers through their targets.

Each phase is a function of the :class:`relaysec.trial.Trial` driving the cell; it returns
whether the phase passed and records its result through ``trial.begin``/``trial.end``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from stack.errors import ProtocolError

if TYPE_CHECKING:
    from relaysec.flows import TrafficPlan
    from relaysec.trial import Trial

HANDOVER_FIGURES = ("interruption", "switch", "probe_period")
"""Prefixes of the handover phase's timing keys in ``report["handover"]`` (:func:`handover`):
``interruption_*``, ``switch_*``, ``probe_period_s``."""

PHASES = ("ars_entry", "ams_entry", "traffic_1", "tek_refresh", "handover", "traffic_2")


def ars_entry(t: Trial) -> bool:
    """Every ARS enters through the ABS and agrees keys with it."""
    ph = t.begin("ars_entry")
    arss = t.names("ars")

    def done() -> bool:
        return all(t.events_of("KeysInstalled", n, subject=t.id_of[n]) and
                   t.events_of("KeysInstalled", t.abs_name, subject=t.id_of[n]) for n in arss)

    if not t.run_entry([(n, t.abs_name) for n in arss], done):
        return t.end(ph, False, "timeout: " + t.why_not())
    notes = []
    for n in arss:
        ok, note = t.keys_match(n, t.abs_name)
        if not ok:
            return t.end(ph, False, note)
        notes.append(f"{n} {note}")
    return t.end(ph, True, "; ".join(notes))


def ams_entry(t: Trial) -> bool:
    """Every AMS enters at once through its serving station."""
    ph = t.begin("ams_entry")
    amss = t.names("ams")

    def entered(name: str) -> bool:
        sid = t.id_of[name]
        serving = t.serving[name]
        ok = bool(t.events_of("KeysInstalled", name, subject=sid) and
                  t.events_of("KeysInstalled", t.key_holder(serving), subject=sid))
        if t.distributed_via(serving):
            ok = ok and bool(t.events_of("AkTransferred", t.abs_name, ams=sid,
                                         ars=t.id_of[serving], status=0))
        return ok

    if not t.run_entry([(n, t.serving[n]) for n in amss], lambda: all(map(entered, amss))):
        missing = [n for n in amss if not entered(n)]
        return t.end(ph, False, f"timeout: {_names(missing)} not entered: " + t.why_not())
    for n in amss:
        ok, note = t.keys_match(n, t.key_holder(t.serving[n]))
        if not ok:
            return t.end(ph, False, note)
    how = {("AK transferred to its ARS" if t.distributed_via(t.serving[n]) else "keys at the ABS")
           for n in amss}
    if len(amss) == 1:
        _, note = t.keys_match(amss[0], t.key_holder(t.serving[amss[0]]))
        return t.end(ph, True, f"{next(iter(how)).replace('its ARS', t.serving[amss[0]])}; "
                               f"{note}")
    return t.end(ph, True, f"{len(amss)} AMSs entered ({'; '.join(sorted(how))})")


#: Frames of a saturating phase before its measurement window opens (queues fill, MCSs settle).
SATURATE_WARMUP_FRAMES = 20


def saturate(t: Trial, name: str, plan: TrafficPlan,
             until: Callable[[], bool] | None = None) -> None:
    """Run *plan* full buffer for ``traffic.saturate_s`` (and until *until*), note the
    measurement window (after :data:`SATURATE_WARMUP_FRAMES`), then stop offering."""
    t0 = t.now
    warm = SATURATE_WARMUP_FRAMES * t.frame_s
    t.run_until(lambda: False, warm, plan)
    t.run_until(lambda: t.now - t0 >= float(t.cfg["traffic"]["saturate_s"]) * t.stretch
                and (until is None or until()), t.timeout("traffic_s"), plan)
    t.windows[name] = (t0 + warm, t.now)
    plan.stop()


def traffic(t: Trial, name: str) -> bool:
    """Secured traffic between the ABS and every AMS; all of it must arrive (saturating: every
    flow delivers, and no more than ``1 - traffic.min_delivery`` is lost)."""
    ph = t.begin(name)
    plan = t.traffic_plan(name)
    if t.saturate:
        saturate(t, name, plan)
    finished = t.run_until(lambda: t.plan_done(plan), t.timeout("traffic_s"), plan)
    if finished and not t.plan_ok(plan):
        return t.end(ph, False, t.short_delivery(plan))
    detail = t.plan_detail(plan)
    if not finished:
        return t.end(ph, False, "timeout: " + detail)
    if name == "traffic_2":
        wrong = []
        for ams in t.names("ams"):
            vias = {t.name_of(ev.via) for ev in t.events_of("DataReceived", ams,
                                                            since=ph.t_start or 0.0)}
            if vias != {t.serving[ams]}:
                wrong.append(f"{ams} via {sorted(vias)}, expected {t.serving[ams]}")
        if wrong:
            return t.end(ph, False, "; ".join(wrong[:3]) + f"; {detail}")
        movers = [n for n in t.names("ams") if t.moved.get(n)]
        if len(movers) == 1:
            detail += f", via {t.serving[movers[0]]}"
        elif movers:
            detail += f", {len(movers)} AMSs via their targets"
    return t.end(ph, True, detail)


def tek_refresh(t: Trial) -> bool:
    """Traffic continues while every AMS's TEK is renewed by its key holder."""
    ph = t.begin("tek_refresh")
    amss = t.names("ams")
    t0 = ph.t_start or 0.0
    before = {n: t.roles[n].key_info(t.id_of[t.serving[n]]) for n in amss}
    plan = t.traffic_plan("tek_refresh")

    def refreshed(n: str) -> bool:
        sid = t.id_of[n]
        return bool(t.events_of("KeysInstalled", n, since=t0, subject=sid, cause="tek_refresh")
                    and t.events_of("KeysInstalled", t.key_holder(t.serving[n]), since=t0,
                                    subject=sid, cause="tek_refresh"))

    if t.saturate:
        saturate(t, "tek_refresh", plan, until=lambda: all(map(refreshed, amss)))
    finished = t.run_until(lambda: all(map(refreshed, amss)) and t.plan_done(plan),
                           t.timeout("tek_refresh_s"), plan)
    if not finished:
        stale = [n for n in amss if not refreshed(n)]
        why = f"no TEK refresh at {_names(stale)}" if stale else "traffic incomplete"
        return t.end(ph, False, f"timeout ({why}): {t.plan_detail(plan)}")
    if not t.plan_ok(plan):
        return t.end(ph, False, t.short_delivery(plan))

    def all_match() -> bool:
        return all(t.keys_match(n, t.key_holder(t.serving[n]))[0] for n in amss)

    if not all_match():
        # a later refresh may be in flight (served by the key holder, reply not yet at the
        # AMS: long phases outlive a TEK): give it time to land before judging (on a lossy
        # link its retries take a few retransmission timeouts)
        t.run_until(all_match, max(20 * t.frame_s, t.timeout("tek_refresh_s")))
    for n in amss:
        match, note = t.keys_match(n, t.key_holder(t.serving[n]))
        if not match:
            return t.end(ph, False, note)
    if len(amss) == 1:
        n = amss[0]
        after = t.roles[n].key_info(t.id_of[t.serving[n]])
        return t.end(ph, True, f"COUNTER_TEK {getattr(before[n], 'counter_teks', '?')} -> "
                               f"{getattr(after, 'counter_teks', '?')}; {t.plan_detail(plan)}")
    return t.end(ph, True, f"{len(amss)} AMSs refreshed; {t.plan_detail(plan)}")


def try_handover(role: Any, target: int, now: float) -> bool:
    """Start *role*'s handover to station *target*; False, with nothing started, when the role
    refuses it as busy (a re-authentication's key agreement is finishing: try again in a later
    frame). Any other refusal is raised."""
    try:
        role.handover(target, now)
    except ProtocolError as exc:
        if exc.reason != "busy":
            raise
        return False
    return True


def handover(t: Trial) -> bool:
    """Group handover: every AMS with a target moves in the same frames."""
    ph = t.begin("handover")
    movers = [s["name"] for s in t.stations("ams") if s.get("handover_target")]
    predist_cfg = bool(t.cfg["security"]["ak_predistribution"])
    if not movers:
        t.handover.update({"mode": None, "movers": 0})
        return t.end(ph, True, "skipped: no AMS has a handover_target")
    target = {n: t.by_name[n]["handover_target"] for n in movers}
    source = {n: t.serving[n] for n in movers}
    to_abs = {n for n in movers if t.by_name[target[n]]["role"] == "abs"}
    predist = {n: predist_cfg and n not in to_abs for n in movers}
    modes = {("to_abs" if n in to_abs else "predistributed" if predist[n] else "on_demand")
             for n in movers}
    t.handover.update({"mode": modes.pop() if len(modes) == 1 else "mixed",
                       "predistributed": any(predist.values()), "movers": len(movers)})
    if len(movers) == 1:
        t.handover.update({"source": source[movers[0]], "target": target[movers[0]]})
    ids = {n: t.id_of[n] for n in movers}
    timeout = t.timeout("handover_s")
    probe = t.traffic_plan("handover", quota=None, per_frame=1, amss=movers)
    # one probe per frame measures the interruption; a window of 8 keeps a slow or broken path
    # from being flooded (probes queued ahead of the next phase's traffic) without throttling a
    # working one
    probe.window = min(8, int(t.cfg["traffic"]["drain_frames"]))
    # a large group probes less often (each mover every few frames, staggered): a probe per
    # mover and frame would offer more than the cell carries, and the interruption would
    # measure the backlog instead of the handover
    probe.every = max(1, -(-len(movers) // 4))
    notes = []
    wanted = [n for n in movers if predist[n]]
    if wanted:
        t0 = t.now
        for n in wanted:
            t.roles[t.abs_name].prepare_handover(ids[n], [t.id_of[target[n]]], t0)
        acks = [n for n in wanted if t.distributed_via(target[n])]

        def acked(n: str) -> bool:
            return bool(t.events_of("AkTransferred", t.abs_name, since=t0, ams=ids[n],
                                    ars=t.id_of[target[n]], status=0))

        if acks and not t.run_until(lambda: all(map(acked, acks)), timeout, probe):
            missing = [n for n in acks if not acked(n)]
            return t.end(ph, False, f"AK pre-distribution for {_names(missing)} was not "
                                    "acknowledged: " + t.why_not())
        if acks:
            notes.append(f"AK' pre-distributed in {(t.now - t0) * 1e3:.0f} ms")
    t_ho = t.now
    t.handover["t_start"] = t_ho
    resent0 = {n: t.roles[n].arq_stats["resent_after_move"] for n in (*movers, t.abs_name)}
    pending = list(movers)

    def start_pending() -> bool:
        """Start each mover's handover; one its role refuses as busy is started again in a
        later frame (:func:`try_handover`)."""
        pending[:] = [n for n in pending
                      if not try_handover(t.roles[n], t.id_of[target[n]], t.now)]
        return not pending

    if not start_pending() and not t.run_until(start_pending, timeout, probe):
        return t.end(ph, False, f"handover of {_names(pending)} refused until the timeout: a "
                                "re-authentication's key agreement did not finish")

    def vias(n: str) -> set[int]:
        # data "via the target": relayed by the target ARS, or straight from the AMS when the
        # target is the ABS itself (an RS -> BS handover)
        tid = t.id_of[target[n]]
        return {tid} | ({ids[n], t.id_of[t.abs_name]} if n in to_abs else set())

    first: dict[tuple[str, str], float] = {}

    def first_data(station: str, n: str, src: int) -> float | None:
        key = (station, n)
        if key not in first:
            for ev_t, ev in t.timed_events("DataReceived", station, since=t_ho):
                if ev.src == src and ev.via in vias(n):
                    first[key] = ev_t
                    break
        return first.get(key)

    def done_one(n: str) -> bool:
        return bool(
            t.events_of("HandoverComplete", n, since=t_ho, ams=ids[n],
                        target=t.id_of[target[n]])
            and t.events_of("HandoverComplete", t.abs_name, since=t_ho, ams=ids[n])
            and first_data(n, n, t.id_of[t.abs_name]) is not None
            and first_data(t.abs_name, n, ids[n]) is not None)

    if not t.run_until(lambda: all(map(done_one, movers)), timeout, probe):
        late = [n for n in movers if not done_one(n)]
        return t.end(ph, False, f"timeout: handover of {_names(late)} not completed with data "
                                "via the target: " + t.why_not())
    interruptions = {}
    for n in movers:
        t_dl = first_data(n, n, t.id_of[t.abs_name])
        t_ul = first_data(t.abs_name, n, ids[n])
        assert t_dl is not None and t_ul is not None
        gap_dl = longest_silence(
            (ev_t for ev_t, ev in t.timed_events("DataReceived", n, since=t_ho)
             if ev.src == t.id_of[t.abs_name]), t_ho, t_dl)
        gap_ul = longest_silence(
            (ev_t for ev_t, ev in t.timed_events("DataReceived", t.abs_name, since=t_ho)
             if ev.src == ids[n]), t_ho, t_ul)
        interruptions[n] = {"interruption_s": max(gap_dl, gap_ul),
                            "interruption_dl_s": gap_dl, "interruption_ul_s": gap_ul,
                            "switch_s": max(t_dl, t_ul) - t_ho,
                            "switch_dl_s": t_dl - t_ho, "switch_ul_s": t_ul - t_ho}
        t.per_ams_extra.setdefault(n, {}).update(interruptions[n])
    worst = max(v["interruption_s"] for v in interruptions.values())
    # the measure's floor: a mover's probes come this far apart, so no gap reads shorter
    t.handover["probe_period_s"] = probe.every * t.frame_s
    if len(movers) == 1:
        t.handover.update(interruptions[movers[0]])
    else:
        for key in ("interruption_s", "switch_s"):
            t.handover[key] = max(v[key] for v in interruptions.values())
            t.handover[key.replace("_s", "_mean_s")] = (
                sum(v[key] for v in interruptions.values()) / len(movers))
    # stop probing; let queued probes drain (those stranded on the old path are lost) -- a
    # large group's take a while (the next phase's packets would queue behind them), a small
    # group's a few frames
    probe.stop()
    left = timeout - (t.now - (ph.t_start or t_ho))
    # with ARQ a probe lost on the air is only late: wait for it as long as the phase allows
    long_drain = probe.every > 1 or bool(t.cfg["arq"]["enabled"])
    t.run_until(lambda: t.plan_done(probe),
                max(0.1 * t.stretch, left) if long_drain else 0.1 * t.stretch, probe)
    lost = sum(e.flow.outstanding() for e in probe.flows)
    distributed = [n for n in movers if t.distributed_via(source[n])]

    def released(n: str) -> bool:
        return bool(t.events_of("ContextReleased", source[n], since=t_ho, ams=ids[n]))

    if distributed and not all(map(released, distributed)):
        t.run_until(lambda: all(map(released, distributed)), 0.5 * t.stretch)
    not_released = [n for n in distributed if not released(n)]
    if len(movers) == 1:
        ho = t.events_of("HandoverComplete", movers[0], since=t_ho, ams=ids[movers[0]])[-1]
        notes.append(f"AKID {ho.akid} CMAC_KEY_COUNT {ho.cmac_key_count}")
        notes.append(f"interruption {worst * 1e3:.0f} ms (switch to the target "
                     f"{t.handover['switch_s'] * 1e3:.0f} ms)")
    else:
        notes.append(f"{len(movers)} AMSs moved together; interruption "
                     f"{t.handover['interruption_mean_s'] * 1e3:.0f} ms mean, "
                     f"{worst * 1e3:.0f} ms worst (switch to the target "
                     f"{t.handover['switch_mean_s'] * 1e3:.0f} ms mean)")
    notes.append(f"{lost} probe packets lost in flight")
    if t.cfg["arq"]["enabled"]:
        # what the old path still held: the ABS's unacknowledged DL blocks and the movers'
        # unacknowledged UL blocks, sent again through the target (retention, docs/roles.md §11)
        dl = t.roles[t.abs_name].arq_stats["resent_after_move"] - resent0[t.abs_name]
        ul = sum(t.roles[n].arq_stats["resent_after_move"] - resent0[n] for n in movers)
        t.handover.update(resent_dl_blocks=dl, resent_ul_blocks=ul)
        notes.append(f"{dl} DL + {ul} UL blocks re-sent via the target")
    if len(movers) == 1 and distributed:
        notes.append(f"{source[movers[0]]} context "
                     f"{'released' if not not_released else 'NOT released'}")
    elif distributed:
        notes.append(f"{len(distributed) - len(not_released)}/{len(distributed)} old contexts "
                     "released")
    t.handover["probe_packets_lost"] = lost
    for n in movers:
        t.serving[n] = target[n]
        t.moved[n] = True
    def all_match() -> bool:
        return all(t.keys_match(n, t.key_holder(target[n]))[0] for n in movers)

    if not all_match():   # a TEK refresh may be half way (request served, reply in flight;
        # on a lossy link its retries take a few retransmission timeouts)
        t.run_until(all_match, max(20 * t.frame_s, t.timeout("tek_refresh_s")))
    for n in movers:
        match, note = t.keys_match(n, t.key_holder(target[n]))
        if not match:
            return t.end(ph, False, note)
    if not_released:
        return t.end(ph, False, "; ".join(notes))
    return t.end(ph, True, "; ".join(notes))


#: Soak settings (simulated seconds, stretched over the air): handovers back and forth every
#: SOAK_HO_EVERY_S; a random fault (outage of a link or restart of an ARS) on average every
#: SOAK_FAULT_EVERY_S; role state and process memory sampled every SOAK_SAMPLE_S; a packet
#: each way per AMS every SOAK_EVERY frames; bursts lost at SOAK_BURST_LOSS on every link.
SOAK_HO_EVERY_S = 5.0
SOAK_FAULT_EVERY_S = 20.0
SOAK_SAMPLE_S = 1.0
SOAK_EVERY = 2
SOAK_BURST_LOSS = 0.02


def soak(t: Trial, seconds: float) -> bool:
    """A long run (``relaysec trial --soak SECONDS``): traffic both ways for every AMS, TEK
    refreshes (short TEK life), re-authentications (short AK life), handovers back and forth,
    random faults from the seed; role state and process memory sampled. Passes when every
    handover completed, the cell recovered from every fault and nothing was left behind
    (integrity and nonce checks are the trial's own, over the whole run)."""
    import numpy as np

    from stack.errors import SecurityError

    ph = t.begin("soak")
    rng = np.random.default_rng([t.seed, 0x50A4])
    s = t.stretch
    start = t.now
    end = start + seconds * s
    plan = t.traffic_plan("soak", quota=None, per_frame=1)
    plan.every = SOAK_EVERY
    t.add_fault({"kind": "burst_loss", "link": "*", "p": SOAK_BURST_LOSS})
    movers = [n for n in t.names("ams") if t.by_name[n].get("handover_target")]
    ends = {n: (t.by_name[n]["serving"], t.by_name[n]["handover_target"]) for n in movers}
    links = sorted({f"{t.by_name[n]['serving']}<->{n}" for n in t.names("ams")}
                   | {f"{ends[m][1]}<->{m}" for m in movers}
                   | {f"{t.abs_name}<->{a}" for a in t.names("ars")})
    arss = t.names("ars")
    pending: dict[str, tuple[float, str]] = {}
    stats = {"handovers": 0, "handovers_failed": 0}
    next_ho, next_sample = start + SOAK_HO_EVERY_S * s, start
    next_fault = start + float(rng.exponential(SOAK_FAULT_EVERY_S)) * s
    while t.now < end:
        t.step(plan)
        now = t.now
        if now >= next_sample:
            t.soak_sample()
            next_sample += SOAK_SAMPLE_S * s
        for n, (t_ho, target) in list(pending.items()):
            if t.events_of("HandoverComplete", n, since=t_ho, target=t.id_of[target]):
                t.serving[n] = target
                stats["handovers"] += 1
                del pending[n]
            elif now - t_ho > t.timeout("handover_s"):
                stats["handovers_failed"] += 1
                del pending[n]
        if now >= next_ho:
            next_ho += SOAK_HO_EVERY_S * s
            for n in movers:
                role = t.roles[n]
                if n in pending or role.phase != "operational":
                    continue   # still moving, or re-entering after a fault
                home, away = ends[n]
                target = away if t.serving[n] == home else home
                try:
                    t.roles[t.abs_name].prepare_handover(t.id_of[n], [t.id_of[target]], now)
                    role.handover(t.id_of[target], now)
                except SecurityError:
                    continue   # e.g. a re-authentication's key agreement in progress
                pending[n] = (now, target)
        if now >= next_fault and now < end - 2.0 * s:   # each fault has time to recover
            next_fault += float(rng.exponential(SOAK_FAULT_EVERY_S)) * s
            if arss and rng.random() < 0.3:
                t.add_fault({"kind": "restart", "station": str(rng.choice(arss)),
                             "at_s": now / s})
            else:
                t.add_fault({"kind": "outage", "link": str(rng.choice(links)), "at_s": now / s,
                             "for_s": float(rng.uniform(0.05, 0.3))})
    plan.stop()
    t.run_until(lambda: t.plan_done(plan), t.expire_s + t.timeout("traffic_s"), plan)
    t.soak_sample()
    t.soak_stats = stats
    notes = [f"{seconds:g} s", f"{stats['handovers']} handovers"
             + (f" ({stats['handovers_failed']} failed)" if stats["handovers_failed"] else ""),
             f"{len(t.fault_plan.faults) - 1} faults", t.plan_detail(plan)]
    unrecovered = [f for f in t.fault_plan.faults   # an outage nothing crossed did nothing
                   if f.kind != "burst_loss" and f.fired_at is not None
                   and f.recovered_at is None]
    ok = not stats["handovers_failed"] and not unrecovered and t.plan_ok(plan)
    if unrecovered:
        notes.append(f"{len(unrecovered)} faults not recovered")
    return t.end(ph, ok, "; ".join(notes))


#: The phase functions in order (``traffic`` twice).
STEPS: tuple[Callable[[Any], bool], ...] = (
    ars_entry, ams_entry, lambda t: traffic(t, "traffic_1"), tek_refresh, handover,
    lambda t: traffic(t, "traffic_2"),
)


def longest_silence(deliveries: Iterable[float], start: float, end: float) -> float:
    """Handover interruption as ITU-R M.2134 defines it for IMT-Advanced (the requirement
    802.16m was built to): the longest time in [*start*, *end*] during which the mobile could
    exchange no user data with any station -- here the longest stretch with no delivery of the
    probe stream in one direction, the move starting at *start* and the first data by the
    target arriving at *end*. Deliveries by the old path in between count: they are data the
    user got. Its floor is the probe period (one probe per frame)."""
    points = [start, *sorted(x for x in deliveries if start <= x <= end), end]
    return max(b - a for a, b in pairwise(points))


def _names(names: list[str], limit: int = 4) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
