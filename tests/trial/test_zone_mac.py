"""The zone MAC and the frame planner (issue 12): demand-driven zones, UL slots with gaps and
contention, saturating traffic with cell figures, link adaptation per AMS."""

from __future__ import annotations

import pytest

from relaysec.config import load_config
from relaysec.schedule import ZonePlanner, build_schedule
from relaysec.trial import run_trial
from tests.trial.helpers import FAST

STATIONS = [("ABS", "abs"), ("ARS-1", "ars"), ("ARS-2", "ars")]
SYM = 288


def _planner(**kw):
    base = build_schedule(STATIONS, sample_rate=2.8e6, frame_s=5e-3, guard_s=60e-6,
                          access_owners=["ARS-1", "ARS-2"])
    return base, ZonePlanner(base, min_len=8 * SYM, need=lambda i, n: (4 + n // 76) * SYM,
                             max_len=24 * SYM, **kw)


def _names(plan):
    return [(z.name, z.tx) for z in plan.zones]


def test_idle_frames_hold_only_the_frame_reference_and_idle_turns():
    _, p = _planner(idle_every=4)
    seen = [_names(p.plan({}, f)) for f in range(4)]
    assert all(s[0] == ("DL", "ABS") for s in seen)
    # every station's zones get a turn together within idle_every frames
    together = [s for s in seen if ("UL-access", "ARS-1") in s]
    assert together and all(("DL-access", "ARS-1") in s for s in together)


def test_busy_zones_take_turns_and_never_overflow_the_frame():
    base, p = _planner(idle_every=4, batch=1)
    busy = {i: (100_000, 400) for i in range(len(base.zones))}
    served = set()
    for f in range(12):
        plan = p.plan(busy, f)
        assert plan.zones[-1].end <= base.frame_len
        for a, b in zip(plan.zones, plan.zones[1:], strict=False):
            assert b.start == a.end                      # tiled, guards kept
        assert all(z.length <= 24 * SYM + base.frame_len for z in plan.zones)
        names = _names(plan)
        for z in plan.zones:
            if z.shared:   # a UL-access zone only with its owner's DL zone (the grants)
                assert ("DL-access", z.tx) in names
        served |= set(names)
    assert served == set(_names(base))                   # nobody starves


def test_a_saturating_cell_reports_goodput_fairness_and_efficiency():
    cfg = load_config(overrides=[*FAST, ("traffic.mode", "saturate"),
                                 ("traffic.saturate_s", 0.15), ("traffic.payload_bytes", 400),
                                 ("security.tek_lifetime_s", 0.15)])
    report, _ = run_trial(cfg)
    assert report["ok"], report["reason"]
    cell = report["cell"]
    assert cell["traffic"] == "saturate" and cell["jain"] == pytest.approx(1.0)
    # one AMS through ARS-1: every application bit crosses two hops; the zones carry more
    # than half the coded PHY rate as application data (a counted run would be near 0.1)
    assert 0.35 < cell["efficiency"] < 1.0
    assert cell["goodput_bps"] > 600e3                 # the counted default: 0.5 Mb/s
    assert report["bytes"]["corrupted"] == 0 and report["security"]["nonces"]["reused"] == 0


def test_link_adaptation_serves_an_edge_mobile_beside_a_near_one():
    """An AMS at 6 dB enters and carries traffic at the robust MCS while one at 28 dB uses the
    configured ceiling (phy.mcs)."""
    amss = [{"name": "NEAR", "role": "ams", "station_id": 0x0C0000000101, "serving": "ARS-1"},
            {"name": "EDGE", "role": "ams", "station_id": 0x0C0000000102, "serving": "ARS-1"}]
    base = [{"name": "ABS", "role": "abs", "station_id": 0xBB0000000001},
            {"name": "ARS-1", "role": "ars", "station_id": 0x0A0000000011, "parent": "ABS"}]
    cfg = load_config(overrides=[*FAST, ("stations", base + amss),
                                 ("links", [{"a": "ARS-1", "b": "EDGE", "snr_db": 6.0}]),
                                 ("traffic.min_delivery", 0.85)])
    report, _ = run_trial(cfg)
    assert report["ok"], report["reason"]
    rows = report["per_ams"]
    assert rows["EDGE"]["mcs"] == "QPSK-1/2" and rows["NEAR"]["mcs"] == "16QAM-3/4"
    assert rows["EDGE"]["delivered"] > 0 and rows["EDGE"]["corrupted"] == 0


def test_over_the_air_link_adaptation_climbs_to_phy_ota_mcs():
    """Simulation keeps ``phy.mcs`` as the ceiling of link adaptation; over the air it is
    ``phy.ota_mcs`` (the radios' SNR picks the MCS below it); a config that names
    ``phy.mcs`` alone sets both."""
    from relaysec.cell import data_mcs, mac_config
    from relaysec.config import ConfigError

    cfg = load_config()
    assert mac_config(cfg, wall=False).max_mcs == cfg["phy"]["mcs"] == "16QAM-3/4"
    assert mac_config(cfg, wall=True).max_mcs == cfg["phy"]["ota_mcs"] == "64QAM-5/6"
    low = load_config(overrides=[("phy.ota_mcs", "QPSK-3/4")])
    assert data_mcs(low, wall=True) == "QPSK-3/4" and data_mcs(low, wall=False) == "16QAM-3/4"
    # naming phy.mcs alone means it over the air too (the lab example's robust QPSK-3/4)
    named = load_config(overrides=[("phy.mcs", "QPSK-1/2")])
    assert data_mcs(named, wall=True) == data_mcs(named, wall=False) == "QPSK-1/2"
    both = load_config(overrides=[("phy.mcs", "QPSK-1/2"), ("phy.ota_mcs", "64QAM-2/3")])
    assert (data_mcs(both, wall=False), data_mcs(both, wall=True)) == ("QPSK-1/2", "64QAM-2/3")
    from pathlib import Path

    lab = load_config(Path(__file__).parents[2] / "examples" / "lab-3pluto.toml")
    assert data_mcs(lab, wall=True) == lab["phy"]["mcs"] == "QPSK-3/4"
    with pytest.raises(ConfigError, match="ota_mcs"):
        load_config(overrides=[("phy.ota_mcs", "256QAM-9/10")])


def test_a_hostile_queue_report_buys_air_time_only_within_the_slot_bound():
    """The zone header's queue report is unauthenticated (as 16m's bandwidth requests): an AMS
    claiming a huge backlog gets at most mac.ul_slots slots inside the zone, never more than the
    zone, and the other AMSs still get their turn (docs/threat-model.md §9)."""
    import phy
    from relaysec.zonemac import BROADCAST, MacConfig, ZoneMac

    class Quiet:
        def backlog(self):
            return {}

        def expected_arrivals(self):
            return 0

        def take_arrivals(self):
            return []

    mac = ZoneMac(1, phy.ZoneModem("P2.5"), Quiet(), MacConfig(), lambda s: s, lambda a: a,
                  abs_id=1, profile="P2.5")
    mac.heard(0, 7, 0xFFFF * 16, subscriber=True)            # the greedy one
    mac.heard(0, 8, 400, subscriber=True)                    # an honest one
    served = {7: 0, 8: 0}
    for frame in range(1, 9):
        grants = mac.ul_grants(frame, 24)
        own = [g for g in grants if g.dst != BROADCAST]
        assert len(own) <= MacConfig().ul_slots
        assert all(g.start + g.length <= 24 for g in grants)
        for g in own:
            served[g.dst] += 1
        mac.heard(frame, 7, 0xFFFF * 16, subscriber=True)
    assert served[8] >= 2 and served[7] >= 2               # round robin: no one starves
    assert len(mac.subscribers) == 2                        # state per AMS heard, bounded


class _Role:
    """A role stand-in: what waits per neighbour, and how many AMSs are about to arrive."""

    def __init__(self, backlog=None, arrivals=0):
        self.waiting = backlog or {}
        self.arrivals = arrivals
        self.arrived: list[int] = []   # handover re-entries completed, for take_arrivals

    def backlog(self):
        return self.waiting

    def expected_arrivals(self):
        return self.arrivals

    def take_arrivals(self):
        out, self.arrived = self.arrived, []
        return out


def _mac(role, sid=1, **cfg):
    import phy
    from relaysec.zonemac import MacConfig, ZoneMac

    return ZoneMac(sid, phy.ZoneModem("P2.5"), role, MacConfig(**cfg), lambda s: s,
                   lambda a: a, abs_id=1, profile="P2.5", seed=sid)


def test_an_owner_expecting_arrivals_reserves_its_contention_slots_for_them():
    """A group handover: the target announces a backoff window that spreads the announced
    arrivals over its contention slots, and AMSs it already serves keep out of them."""
    from relaysec.zonemac import BROADCAST
    from stack.roles.base import Backlog

    owner = _mac(_Role(arrivals=21), sid=1)
    for sid in (7, 8):
        owner.heard(0, sid, 0, subscriber=True)   # two AMSs it serves, idle
    slots = [g for g in owner.ul_grants(1, 24) if g.dst == BROADCAST]
    assert len(slots) >= 2
    assert all(g.backoff == -(-21 // len(slots)) for g in slots)
    idle = _mac(_Role(arrivals=0), sid=2)
    assert all(g.backoff == 0 for g in idle.ul_grants(1, 24) if g.dst == BROADCAST)

    # an AMS the owner granted before does not use the reserved slots ...
    member = _mac(_Role({1: Backlog(200, 200, False)}), sid=7)
    member._granted[1] = -100
    member.note_grants(5, 1, slots)
    assert member.slot(5, 1) is None
    # ... a newcomer with its ranging request does, with the announced window (1 in 11 here)
    tries = 0
    for f in range(10, 400, 10):
        newcomer = _mac(_Role({1: Backlog(31, 31, True)}), sid=1000 + f)
        newcomer.note_grants(f, 1, slots)
        tries += newcomer.slot(f, 1) is not None
    assert 0 < tries < 12
    # ... and an AMS handing back to a station that served it before it moved away is one of
    # the arrivals (it was granted by another owner since): it uses the reserved slots too
    back = 0
    for f in range(10, 400, 10):
        mover = _mac(_Role({1: Backlog(31, 31, True)}), sid=2000 + f)
        mover._granted[1] = f - 300      # served by 1 long ago ...
        mover._granted[2] = f - 20       # ... then by 2, its current owner
        mover.note_grants(f, 1, slots)
        back += mover.slot(f, 1) is not None
    assert 0 < back < 12


def test_an_ams_that_arrived_keeps_out_of_the_slots_reserved_for_the_rest():
    """After a group handover the movers that arrived are served by the target, while their
    old station still polls them for a while: they must keep out of the target's reserved
    contention slots all the same (in the 64-AMS cell 19 arrived movers sent their bandwidth
    requests there, ~230 each, and the last two movers' ranging never got through)."""
    from relaysec.zonemac import BROADCAST
    from stack.roles.base import Backlog

    owner = _mac(_Role(arrivals=2), sid=1)
    owner.heard(0, 7, 0, subscriber=True)
    slots = [g for g in owner.ul_grants(1, 24) if g.dst == BROADCAST]
    assert slots and all(g.backoff for g in slots)
    tries = 0
    for f in range(10, 400, 10):
        arrived = _mac(_Role({1: Backlog(200, 200, False)}), sid=3000 + f)
        arrived.role.serving = 1          # handed over to 1 ...
        arrived._granted[1] = f - 100     # ... which has not granted it lately
        arrived._granted[2] = f - 2       # while its old station still polls it
        arrived.note_grants(f, 1, slots)
        tries += arrived.slot(f, 1) is not None
    assert tries == 0
    assert arrived.current_owner() == 1


def test_contention_carries_no_data_and_known_polled_amss_stay_out():
    """Data in a contention slot could collide and be lost unheard: a known AMS sends its
    queue report only there, and not at all while its owner polls it."""
    from phy.zone import Grant
    from relaysec.linkadapt import ROBUST_MCS
    from relaysec.zonemac import BROADCAST
    from stack.roles.base import Backlog

    slot = Grant(BROADCAST, 17, 6, ROBUST_MCS)
    ams = _mac(_Role({1: Backlog(400, 200, False)}), sid=9, backoff_max=1)
    ams._backoff[1] = (1, None)
    ams._granted[1] = 100                    # granted 4 frames ago: it will be polled
    ams.note_grants(104, 1, [slot])
    assert ams.slot(104, 1) is None
    ams._granted[1] = 80                     # not lately: a bandwidth request, no data
    ams.note_grants(104, 1, [slot])
    assert ams.slot(104, 1) == slot and ams.request_only
    ams.role.waiting = {1: Backlog(31, 31, True)}
    del ams._granted[1]                      # an owner that never granted us: ranging
    ams.note_grants(104, 1, [slot])
    assert ams.slot(104, 1) == slot and not ams.request_only


def test_a_grant_too_small_for_the_next_mpdu_is_followed_by_a_larger_one():
    """An AMS answers a grant its head MPDU does not fit with its queue report only; the owner
    then asks the scheduler for at least twice that grant, never more than one slot holds."""
    owner = _mac(_Role(), sid=1, contention_every=1000)
    owner.heard(0, 7, 60, subscriber=True, data=True, largest=60)   # reports 60 bytes
    assert owner.subscribers[7].unit == 60

    def grant_to_7(frame):
        owner.heard(frame - 1, 8, 0xFFFF * 16, subscriber=True)   # a busy neighbour
        return next((g for g in owner.ul_grants(frame, 14) if g.dst == 7), None)

    f, first = next((k, x) for k in range(1, 9) if (x := grant_to_7(k)) is not None)
    small = owner.subscribers[7].granted_bytes
    assert 0 < small < 180                                   # its next MPDU: 180 bytes
    owner.heard(f, 7, 180, subscriber=True, data=False)      # nothing fitted: report only
    assert owner.subscribers[7].unit == 2 * small
    f2, bigger = next((k, y) for k in range(f + 1, f + 9) if (y := grant_to_7(k)) is not None)
    assert bigger.length > first.length
    assert owner.subscribers[7].granted_bytes >= min(180, 2 * small)
    owner.heard(f2, 7, 0xFFFF * 16, subscriber=True, data=True, largest=10**6)   # a liar
    for k in range(f2 + 1, f2 + 5):
        assert all(x.start + x.length <= 14 for x in owner.ul_grants(k, 14))   # the zone


def test_over_the_air_a_known_ams_may_send_data_in_contention():
    """Over the air (frames of 100s of ms) waiting for the next poll costs more than a rare
    collision: with mac contention_data (set for wall-clock runs) a known AMS sends its data in
    a contention slot; in simulation it would wait for its poll."""
    from phy.zone import Grant
    from relaysec.cell import mac_config
    from relaysec.config import load_config
    from relaysec.linkadapt import ROBUST_MCS
    from relaysec.zonemac import BROADCAST
    from stack.roles.base import Backlog

    assert mac_config(load_config(), wall=True).contention_data
    assert not mac_config(load_config(), wall=False).contention_data
    slot = Grant(BROADCAST, 17, 6, ROBUST_MCS)
    for air, expect in ((True, slot), (False, None)):
        ams = _mac(_Role({1: Backlog(400, 200, False)}), sid=9, backoff_max=1,
                   contention_data=air)
        ams._backoff[1] = (1, None)
        ams._granted[1] = 100
        ams.note_grants(104, 1, [slot])
        assert ams.slot(104, 1) == expect and not ams.request_only


def _units(i, k, head):
    # k MPDUs of *head* bytes at 76 bytes per symbol after 4 symbols of preamble, header, MAP
    return (4 + k * -(-head // 76)) * SYM


def test_zones_carry_whole_mpdus_and_the_room_freed_goes_to_others():
    base, p = _planner(idle_every=4, batch=1, units=_units)
    busy = {i: (100_000, 400) for i in range(len(base.zones))}
    for f in range(20):
        plan = p.plan(busy, f)
        assert plan.zones[-1].end <= base.frame_len
        for z in plan.zones:
            i = next(j for j, b in enumerate(base.zones) if (b.name, b.tx) == (z.name, z.tx))
            if i:   # every busy zone is exactly k whole MPDUs long (no dead air inside)
                assert any(z.length == _units(i, k, 400) for k in range(1, 10)), z
        # what no whole MPDU fits stays idle: less than one more MPDU (6 symbols) + a guard
        assert base.frame_len - plan.zones[-1].end < 6 * SYM + plan.zones[0].guard


def test_busy_zones_share_the_air_by_weight():
    def share(weights):
        # zones that each could fill the frame (work conservation alone would split it evenly)
        base = build_schedule(STATIONS, sample_rate=2.8e6, frame_s=5e-3, guard_s=60e-6,
                              access_owners=["ARS-1", "ARS-2"])
        p = ZonePlanner(base, min_len=8 * SYM, need=lambda i, n: (4 + n // 76) * SYM,
                        max_len=base.frame_len, idle_every=1000, units=_units, weights=weights)
        air = {5: 0, 6: 0}   # the two UL-relay zones, saturated
        for f in range(300):
            for z in p.plan({5: (10**6, 400), 6: (10**6, 400)}, f).zones:
                if z.name == "UL-relay":
                    air[5 if z.tx == "ARS-1" else 6] += z.length + z.guard
        return air[5] / air[6]

    assert share([1.0] * 7) == pytest.approx(1.0, rel=0.1)
    assert share([1.0, 1, 1, 1, 1, 3, 1]) == pytest.approx(3.0, rel=0.15)


def test_backpressure_holds_a_zone_whose_relay_queue_is_longer():
    # ARS-1's UL-access zone (3) feeds its UL-relay zone (5): while ARS-1 holds more for the ABS
    # than its AMSs hold for it, the access zone waits and the relay zone drains
    base, p = _planner(idle_every=1000, batch=1, units=_units)
    names = [(z.name, z.tx) for z in base.zones]
    assert names[3] == ("UL-access", "ARS-1") and names[5] == ("UL-relay", "ARS-1")
    for f in range(10):
        plan = _names(p.plan({3: (20_000, 400), 5: (80_000, 400)}, f))
        assert ("UL-access", "ARS-1") not in plan and ("UL-relay", "ARS-1") in plan
    served = set()
    for f in range(10, 20):
        served |= set(_names(p.plan({3: (80_000, 400), 5: (20_000, 400)}, f)))
    assert ("UL-access", "ARS-1") in served


def test_a_unit_keeps_room_for_an_arq_feedback_between_two_mpdus():
    """With ARQ a UL slot sized in whole MPDUs also carries the small feedback queued between
    them: a slot of exactly three 419-byte MPDUs carried a feedback and two (a third of the
    uplink lost at saturation, issue 12)."""
    from relaysec.zonemac import ARQ_FEEDBACK_SLACK

    plain = _mac(_Role())
    arq = _mac(_Role(), unit_slack=ARQ_FEEDBACK_SLACK)
    mcs = "16QAM-3/4"
    unit = arq._unit_ru(419, mcs)
    assert unit == arq.modem.rus_for(419 + ARQ_FEEDBACK_SLACK, mcs) > plain._unit_ru(419, mcs)
    assert arq.modem.ru_capacity(3 * unit, mcs) >= 3 * 419 + 21
    assert arq._unit_ru(200, mcs) == 0          # two per block: not a unit


def test_the_unit_a_station_grants_in_is_the_largest_mpdu_not_the_allocation():
    """An allocation of a 419-byte MPDU and a 21-byte feedback names a 419-byte unit; bytes
    that do not parse as MPDUs count whole."""
    from relaysec.node import _largest_mpdu
    from stack.roles.framing import control_mpdu

    big, small = control_mpdu(b"\x05" * 410), control_mpdu(b"\x06" * 12)
    assert _largest_mpdu(big + small) == len(big) < len(big + small)
    assert _largest_mpdu(small) == len(small)
    assert _largest_mpdu(b"\xff" * 7) == 7


def test_a_busy_zone_offers_contention_less_often_once_nobody_new_comes():
    """Contention every contention_every-th busy UL-access zone while newcomers are heard;
    every quiet_every-th after quiet_after frames without one; a newcomer restores the rate."""
    from relaysec.zonemac import BROADCAST

    owner = _mac(_Role(), sid=1, contention_every=4, quiet_every=8, quiet_after=50)

    def contention_zones(first, n):
        hits = []
        for k in range(first, first + n):
            owner.heard(k - 1, 7, 0xFFFF * 16, subscriber=True)   # a known AMS, always busy
            if any(g.dst == BROADCAST for g in owner.ul_grants(k, 24)):
                hits.append(k)
        return hits

    assert len(contention_zones(1, 48)) == 12          # every 4th: AMS 7 came at frame 0
    assert len(contention_zones(49, 96)) in (12, 13)   # every 8th after frame 50
    owner.heard(145, 9, 0, subscriber=True)            # a newcomer ...
    assert len(contention_zones(146, 48)) == 12        # ... every 4th again


def test_an_ams_that_just_arrived_by_handover_gets_a_data_slot_at_once():
    """Over the air (a grant delay of frames) a poll, the queue report it brings back and the
    grant that follows cost two grant delays: an AMS whose handover re-entry just completed is
    granted ARRIVAL_BYTES in its first slots instead, until it has sent data (then its queue
    reports decide); in simulation (no grant delay) nothing changes."""
    from relaysec.zonemac import ARRIVAL_BYTES, BROADCAST

    def slot_bytes(mac, frame):
        own = [g for g in mac.ul_grants(frame, 24) if g.dst != BROADCAST]
        assert len(own) == 1
        g = own[0]
        over = mac.modem.overhead_symbols(1)
        return mac.modem.ru_capacity((g.length - over) * mac.modem.ru_per_symbol, g.mcs)

    role = _Role()
    ota = _mac(role, grant_delay=3)
    ota.heard(0, 7, 0, subscriber=True, data=True, largest=31)   # its ranging burst
    poll = slot_bytes(ota, 1)
    assert poll < 200                                  # a known AMS that said nothing: a poll
    role.arrived = [7]                                 # the re-entry completed
    # ARRIVAL_BYTES, or as much as one slot of this 24-symbol zone carries at the robust MCS
    first = slot_bytes(ota, 2)
    assert first > 3 * poll and 3 * poll < ARRIVAL_BYTES
    assert slot_bytes(ota, 3) == first                 # every slot until it sends data ...
    ota.heard(3, 7, 0, subscriber=True, data=True, largest=180)
    # ... then its reports decide: with nothing reported, the poll of an AMS that sends a
    # stream, room for one MPDU (its largest, 180 bytes)
    assert 180 <= slot_bytes(ota, 4) < first
    role.arrived = [7]
    ota.heard(5, 7, 0, subscriber=True, data=False)
    assert slot_bytes(ota, 5) == first
    ota.heard(11, 7, 50, subscriber=True, data=False)    # still no data, but later than
    assert slot_bytes(ota, 5 + 2 * 3 + 1) < first      # two grant delays: its report decides
    sim_role = _Role()
    sim = _mac(sim_role)                               # no grant delay: simulation
    sim.heard(0, 7, 0, subscriber=True, data=True, largest=31)
    sim_role.arrived = [7]
    assert slot_bytes(sim, 1) < first


def test_a_single_expected_arrival_takes_its_reserved_slot_at_once():
    """The target announces the window that spreads the AMSs it expects over its slots; with
    one expected arrival that window is 1, and the mover's own first window (2, for AMSs that
    start together unannounced) no longer makes it skip its reserved slot one time in two.
    A contender without an announcement keeps its own window."""
    from relaysec.zonemac import BROADCAST
    from stack.roles.base import Backlog

    def first_tries(slots, sid0):
        """Of 40 fresh AMSs with a ranging request, how many send in these slots at once."""
        sent = 0
        for f in range(10, 410, 10):
            ams = _mac(_Role({1: Backlog(31, 31, True)}), sid=sid0 + f)
            ams.note_grants(f, 1, slots)
            sent += ams.slot(f, 1) is not None
        return sent

    slots = [g for g in _mac(_Role(arrivals=1), sid=1).ul_grants(1, 24) if g.dst == BROADCAST]
    assert slots and all(g.backoff == 1 for g in slots)
    assert first_tries(slots, 3000) == 40
    unannounced = [g for g in _mac(_Role(), sid=1).ul_grants(1, 24) if g.dst == BROADCAST]
    assert unannounced and all(g.backoff == 0 for g in unannounced)
    assert 5 < first_tries(unannounced, 4000) < 35        # one in two


def test_over_the_air_an_ams_sending_a_stream_is_polled_with_room_for_an_mpdu():
    """Over the air a bare poll of an AMS that sends a stream fetched only its queue report,
    and its data went a grant delay later (UL deliveries in batches three frames apart): its
    polls carry one MPDU (its largest) while it is active; a silent one, and every AMS in
    simulation (no grant delay), gets a bare poll."""
    from relaysec.zonemac import BROADCAST

    def own(mac, frame):
        return [g for g in mac.ul_grants(frame, 24) if g.dst != BROADCAST]

    def carries(mac, g):
        over = mac.modem.overhead_symbols(1)
        return mac.modem.ru_capacity((g.length - over) * mac.modem.ru_per_symbol, g.mcs)

    ota = _mac(_Role(), grant_delay=3)
    ota.heard(0, 7, 0, subscriber=True, data=True, largest=180)
    (g,) = own(ota, 1)
    assert carries(ota, g) >= 180
    sim = _mac(_Role())
    sim.heard(0, 7, 0, subscriber=True, data=True, largest=180)
    (p,) = own(sim, 1)
    assert carries(sim, p) < 180 and p.length < g.length
    quiet = _mac(_Role(), grant_delay=3, poll_every=4)
    quiet.heard(0, 7, 0, subscriber=True, data=True, largest=180)
    assert [carries(quiet, x) < 180 for x in own(quiet, 40)] == [True]   # long silent: a poll


def test_over_the_air_an_ams_stays_polled_for_four_grant_delays_after_its_data():
    """Over the air a stream that pauses and restarts waits for a periodic poll, its queue
    report and a grant cycle (~250 ms at 20 ms frames): the owner keeps polling an AMS with
    room for an MPDU for ``mac.poll_every`` plus four grant delays after its last data, and
    then falls back to a bare poll every ``poll_every`` frames; simulation keeps poll_every."""
    from relaysec.cell import active_frames, mac_config
    from relaysec.zonemac import BROADCAST

    cfg = load_config(overrides=[("schedule.ota_grant_delay", 6), ("mac.poll_every", 8)])
    assert mac_config(cfg, wall=True).active_frames == active_frames(cfg, wall=True) == 32
    assert mac_config(cfg, wall=False).active_frames == 8

    def own(mac, frame):
        return [g for g in mac.ul_grants(frame, 24) if g.dst != BROADCAST]

    def unit_polls(mac, frames):
        over = mac.modem.overhead_symbols(1)
        return [f for f in frames for g in own(mac, f)
                if mac.modem.ru_capacity((g.length - over) * mac.modem.ru_per_symbol,
                                         g.mcs) >= 180]

    ota = _mac(_Role(), grant_delay=6, poll_every=8, active_frames=32)
    ota.heard(0, 7, 0, subscriber=True, data=True, largest=180)
    assert unit_polls(ota, range(1, 33)) == list(range(1, 33))     # every frame, an MPDU each
    assert unit_polls(ota, range(33, 60)) == []                     # then bare polls only


def test_a_ul_slot_carries_as_many_blocks_as_its_symbols_hold():
    """An allocation holds one FEC block (``block_bytes``), and a MAP of one symbol two
    entries: a 20-symbol slot at 64QAM-3/4 has room for 1716 bytes but carried two blocks
    (six 180-byte MPDUs, 1077 bytes). The AMS takes the MAP size that carries the most, and
    the burst still fits the slot; where the data symbols are the limit it keeps one MAP
    symbol."""
    from types import SimpleNamespace

    import phy
    from relaysec.node import Node
    from relaysec.zonemac import MacConfig

    zm = phy.ZoneModem("P2.5")
    me = SimpleNamespace(modem=zm, mac=SimpleNamespace(config=MacConfig()))
    sym = zm.grid.symbol_samples
    blocks, n_ru = Node.slot_layout(me, 20, "64QAM-3/4")
    assert blocks >= 3
    nine = 3 * zm.rus_for(540, "64QAM-3/4")          # three blocks of three 180-byte MPDUs
    assert nine <= n_ru and zm.zone_samples(blocks, nine) <= 20 * sym
    per = zm.ru_per_symbol
    assert Node.slot_layout(me, 20, "16QAM-3/4") == (2, (20 - zm.overhead_symbols(2)) * per)
    for length in range(1, 60):
        for mcs in ("QPSK-1/2", "16QAM-3/4", "64QAM-5/6"):
            b, ru = Node.slot_layout(me, length, mcs)
            if ru:   # whatever it chose fits: the MAP it needs and the RUs it counts
                assert zm.zone_samples(b, ru) <= length * sym
                one = (length - zm.overhead_symbols(1)) * zm.ru_per_symbol
                assert min(b * 600, zm.ru_capacity(ru, mcs)) >= min(
                    2 * 600, zm.ru_capacity(one, mcs))   # never less than one MAP symbol's


class _Target(_Role):
    """A handover target holding pre-distributed AKs for the STIDs in *expected*."""

    def __init__(self, expected=(), **kw):
        super().__init__(arrivals=len(expected), **kw)
        self.expected = list(expected)

    def expected_stids(self):
        return self.expected


def test_a_handover_target_grants_the_amss_it_expects_a_slot_of_their_own():
    """Over the air an ARS holding a pre-distributed AK grants that AMS, by its STID, a slot
    at the robust MCS for an RNG-REQ and a data MPDU in every UL zone, for
    mac.handover_slots frames; its reserved contention slots are then for the others only;
    in simulation (no grant delay) or with handover_slots 0 nothing changes."""
    from relaysec.linkadapt import ROBUST_MCS
    from relaysec.zonemac import BROADCAST, HANDOVER_SLOT_BYTES, stid_address

    role = _Target([18])
    ota = _mac(role, grant_delay=3, handover_slots=5)
    grants = ota.ul_grants(1, 24)
    mine = [g for g in grants if g.dst == stid_address(18)]
    assert len(mine) == 1 and mine[0].mcs == ROBUST_MCS and mine[0].start == 0
    over = ota.modem.overhead_symbols(1)
    assert ota.modem.ru_capacity((mine[0].length - over) * ota.modem.ru_per_symbol,
                                 ROBUST_MCS) >= HANDOVER_SLOT_BYTES
    assert all(g.backoff == 0 for g in grants if g.dst == BROADCAST)   # none reserved
    assert all(g.start + g.length <= 24 for g in grants)
    for f in range(2, 6):
        assert any(g.dst == stid_address(18) for g in ota.ul_grants(f, 24))
    assert not any(g.dst == stid_address(18) for g in ota.ul_grants(6, 24))   # time is up
    role.expected = []                                  # it arrived (or its AK was dropped)
    role.arrivals = 0
    assert not any(g.dst >= 0xE000 and g.dst != BROADCAST for g in ota.ul_grants(7, 24))
    role.expected, role.arrivals = [18], 1              # announced again: a fresh window
    assert any(g.dst == stid_address(18) for g in ota.ul_grants(8, 24))
    for sim in (_mac(_Target([18])), _mac(_Target([18]), grant_delay=3)):
        slots = [g for g in sim.ul_grants(1, 24) if g.dst != BROADCAST]
        assert slots == []
        assert any(g.backoff for g in sim.ul_grants(2, 24) if g.dst == BROADCAST)


def test_a_group_of_expected_amss_takes_turns_in_the_handover_slots():
    """More AMSs expected than mac.ul_slots: each zone grants ul_slots of them, in turn, and
    leaves room for another slot; the others keep their reserved contention slots."""
    from relaysec.zonemac import BROADCAST, STID_ADDRESS

    ota = _mac(_Target([5, 6, 7, 8, 9]), grant_delay=3, handover_slots=100, ul_slots=2)
    seen: set[int] = set()
    for f in range(1, 11):
        grants = ota.ul_grants(f, 40)
        stids = [g.dst - STID_ADDRESS for g in grants if STID_ADDRESS < g.dst < BROADCAST]
        assert 1 <= len(stids) <= 2
        assert all(g.start + g.length <= 40 for g in grants)
        assert sum(g.length + 1 for g in grants if g.dst != BROADCAST) <= 40
        seen.update(stids)
        if any(g.dst == BROADCAST for g in grants):
            assert all(g.backoff >= 1 for g in grants if g.dst == BROADCAST)
    assert seen == {5, 6, 7, 8, 9}


def test_an_ams_leaves_a_slot_empty_at_a_station_it_has_nothing_for():
    """A handover target's slot for our STID, before we move and with nothing for it, is left
    empty; the same grant carries our RNG-REQ once it waits. A poll to our station address is
    answered whoever sends it, the station we left included (in a lossy centralized cell,
    leaving the old station's polls unanswered lost 5 of 8 packets: the answer carries the ARQ
    feedback the role owes it without having queued it)."""
    from phy.zone import Grant
    from relaysec.linkadapt import ROBUST_MCS
    from relaysec.zonemac import stid_address
    from stack.roles.base import Backlog

    g = Grant(stid_address(18), 0, 13, ROBUST_MCS)
    role = _Role({})
    role.serving = 1
    ams = _mac(role, sid=9, grant_delay=3)
    ams.note_grants(10, 2, [g])
    assert ams.slot(13, 2) is None                     # the target's, nothing for it yet
    role.waiting = {2: Backlog(31, 31, True)}          # moving: the RNG-REQ waits
    ams.note_grants(11, 2, [g])
    assert ams.slot(14, 2) == g
    role.waiting = {}
    poll = Grant(9, 0, 5, ROBUST_MCS)
    ams.note_grants(12, 1, [poll])
    assert ams.slot(15, 1) == poll                     # our serving station's poll
    ams.note_grants(13, 3, [poll])
    assert ams.slot(16, 3) == poll                     # a station we left still gets an answer


def test_stid_addresses_are_apart_from_station_addresses_and_broadcast():
    """The addresses that name an AMS by STID never equal a station's (1..256) or broadcast;
    an out-of-range STID is refused."""
    from relaysec.config_schema import MAX_STATIONS
    from relaysec.zonemac import BROADCAST, stid_address

    addrs = {stid_address(s) for s in range(1, 4096)}
    assert len(addrs) == 4095 and BROADCAST not in addrs
    assert min(addrs) > MAX_STATIONS and max(addrs) < BROADCAST
    for bad in (0, 4096, -1):
        with pytest.raises(ValueError):
            stid_address(bad)


def test_grants_heard_after_their_slot_was_decided_are_counted_late():
    """Over the air a grant rides in a DL burst ``grant_delay`` frames before its UL-access
    zone; one decoded after the AMS already chose what to send in that zone goes unused and is
    counted (benchmarks.emulator prints it: the cue to raise schedule.ota_grant_delay)."""
    from phy.zone import Grant
    from relaysec.linkadapt import ROBUST_MCS
    from stack.roles.base import Backlog

    ams = _mac(_Role({1: Backlog(400, 200, False)}), sid=9, grant_delay=4)
    mine = Grant(9, 17, 6, ROBUST_MCS)
    ams.note_grants(10, 1, [mine])             # for frame 14, heard in time
    assert ams.slot(14, 1) == mine
    assert (ams.grants_heard, ams.grants_late) == (1, 0)
    assert ams.slot(15, 1) is None             # frame 15 decided without a grant ...
    ams.note_grants(11, 1, [mine])             # ... whose grant comes only now
    assert (ams.grants_heard, ams.grants_late) == (2, 1)
    ams.note_grants(12, 1, [mine])             # for frame 16: not decided yet
    assert (ams.grants_heard, ams.grants_late) == (3, 1) and ams.slot(16, 1) == mine
    ams.note_grants(12, 2, [mine])             # another owner's zones are their own
    assert ams.grants_late == 1


def test_in_the_simulator_no_grant_comes_late():
    """The simulated cell decides every slot after the DL bursts of its frame: a late grant
    there would be a scheduling bug."""
    from relaysec.config import load_config
    from relaysec.trial import Trial

    cfg = load_config(overrides=[("traffic.packets_per_direction", 8),
                                 ("report.progress", False)])
    trial = Trial(cfg)
    report, _ = trial.run()
    assert report["ok"]
    macs = [n.mac for n in trial.cell.net.nodes.values() if n.is_ams]
    assert macs and sum(m.grants_heard for m in macs) > 0
    assert sum(m.grants_late for m in macs) == 0
