"""Node runtime over the real burst modem and loopback medium, with a toy sans-I/O role.

The toy role only queues frames and records what it receives: it isolates the runtime's job
(zones, bursts, CRC accounting, never delivering a bad burst) from the security roles.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import phy
from hw import loopback
from relaysec.node import Addressing, LinkTable, Node
from relaysec.report import Trace
from relaysec.schedule import build_schedule
from relaysec.simnet import SimNetwork
from relaysec.zonemac import MacConfig


class ToyRole:
    """Queues whole frames per neighbour (each already at most one allocation) and records what
    it receives."""

    def __init__(self) -> None:
        self.out: list[tuple[int, bytes]] = []
        self.got: list[tuple[int, bytes, float]] = []
        self.rejections: Counter[str] = Counter()
        self.rejections_by_link: Counter[tuple[int, str]] = Counter()

    def backlog(self):
        from stack.roles.base import Backlog

        out = {}
        for d, f in self.out:
            if d not in out:
                out[d] = Backlog(0, len(f), False)
            out[d] = out[d]._replace(nbytes=out[d].nbytes + len(f))
        return out

    def frames_to_send(self, now, max_bytes=None, *, dst=None):
        for i, (d, f) in enumerate(self.out):
            if (dst is None or d == dst) and (max_bytes is None or len(f) <= max_bytes):
                del self.out[i]
                return [(d, f)]
        return []

    def receive(self, src, frame, now):
        self.got.append((src, frame, now))

    def expected_arrivals(self):
        return 0

    def take_arrivals(self):
        return []

    def next_deadline(self):
        return None

    def timer(self, now):
        pass

    def events(self):
        return []


def _net(snr_db: float, seed: int = 3):
    fs = phy.ZoneModem("P2.5").sample_rate
    medium = loopback.Medium(fs, seed=seed, start_delay_max=100.0)
    names = [("ABS", "abs", 1), ("ARS", "ars", 2), ("AMS", "ams", 3)]
    for n, _, _ in names:
        medium.add_radio(n, ppm=1.0)
    for i, (a, _, _) in enumerate(names):
        for b, _, _ in names[i + 1:]:
            medium.set_link(a, b, snr_db=snr_db)
    links = LinkTable()
    trace = Trace()
    directory = {sid: n for n, _, sid in names}
    mac = MacConfig(link_adaptation=False, max_mcs="QPSK-1/2")
    nodes = [Node(n, sid, ToyRole(), phy.ZoneModem("P2.5"), medium.radios[n],
                  addressing=Addressing(directory), links=links, abs_id=1, infrastructure=(1, 2),
                  mac=mac, trace=trace)
             for n, _, sid in names]
    sched = build_schedule([(n, r) for n, r, _ in names], sample_rate=fs, frame_s=5e-3,
                           guard_s=100e-6, access_owners=["ARS"])
    return SimNetwork(nodes, sched), links, trace


def test_frames_cross_the_air_and_are_counted_per_link():
    """DL in the ABS's zone burst, UL in the slot the ARS granted the AMS (contention first:
    the ARS has not heard it yet), each frame delivered once, to its addressee only."""
    net, links, trace = _net(30.0)
    abs_, ars, ams = (net.nodes[n] for n in ("ABS", "ARS", "AMS"))
    rng = np.random.default_rng(0)
    sent_dl = [rng.bytes(60) for _ in range(5)]
    sent_ul = [rng.bytes(40) for _ in range(5)]
    for f in range(5):
        abs_.role.out.append((2, sent_dl[f]))
        ams.role.out.append((2, sent_ul[f]))
    for _ in range(12):
        net.step_frame()
    got = [f for _, f, _ in ars.role.got]
    assert sorted(got) == sorted(sent_dl + sent_ul)
    assert [f for f in got if f in sent_dl] == sent_dl     # in order per link
    assert [f for f in got if f in sent_ul] == sent_ul
    assert not abs_.role.got and not ams.role.got     # everything was for the ARS
    dl = links.links["ABS->ARS"]
    assert dl.bursts_tx == dl.bursts_rx and dl.crc_fail == 0 and dl.per == 0.0
    assert 25 < dl.summary(1.0)["snr_db"] < 35 and dl.measured == dl.bursts_rx - dl.crc_fail
    assert trace.constellations.get("ABS->ARS") is not None
    assert links.links["AMS->ARS"].bursts_rx >= 1 and 3 in ars.mac.subscribers
    assert net.now == pytest.approx(12 * 5e-3)


def test_bad_bursts_are_counted_and_never_delivered():
    # at -1 dB QPSK-1/2 fails most 200-byte bursts (0 dB: ~10 % PER, too few failures to rely on)
    net, links, _ = _net(-1.0)
    abs_, ars = net.nodes["ABS"], net.nodes["ARS"]
    for _ in range(6):
        abs_.role.out.append((2, bytes(range(200))))
        net.step_frame()
    link = links.links["ABS->ARS"]
    delivered = len(ars.role.got)
    assert delivered < 6 and link.crc_fail > 0
    assert all(f == bytes(range(200)) for _, f, _ in ars.role.got)
    assert link.bursts_tx == 6
    assert link.per == pytest.approx(1 - delivered / 6)


def test_frames_larger_than_the_zone_wait_for_the_next_zone():
    net, _links, _ = _net(30.0)
    abs_, ars = net.nodes["ABS"], net.nodes["ARS"]
    zone = net.schedule.zones[0]
    zm = abs_.modem
    data_ru = ((zone.length - zone.guard // 2) // abs_.sym - zm.overhead_symbols(2)) \
        * zm.ru_per_symbol
    cap = zm.ru_capacity(data_ru, "QPSK-1/2")
    assert cap > 100
    size = cap // 2 + 10                         # one per zone fits, two do not
    for _ in range(4):
        abs_.role.out.append((2, bytes(size)))
    net.step_frame()
    first = len(ars.role.got)
    for _ in range(4):
        net.step_frame()
    assert first == 1 and len(ars.role.got) == 4


def test_the_abs_reference_burst_is_modulated_once_scaled_after_its_lead_and_never_altered():
    """With nothing to send the ABS still opens the frame with a bare zone burst, whose samples
    the node keeps per queue report (modulated once). Each burst handed out is a new buffer:
    *lead* zeros, then the kept burst times the TX scale -- the kept one is never scaled in
    place, so the tenth frame's burst equals the first's."""
    net, _, _ = _net(30.0)
    abs_ = net.nodes["ABS"]
    abs_.tx_scale = 0.5                # (1.0 would hide scaling in place)
    zone = net.schedule.zones[0]
    bursts = [abs_.build_zone(0.0, zone.length, frame=k, kind=zone.name, lead=37, force=True)[0]
              for k in range(10)]
    kept = next(iter(abs_._empty_bursts.values()))
    assert len(abs_._empty_bursts) == 1
    first = bursts[0]
    assert first.dtype == np.complex64 and first.size == 37 + kept.size
    assert not first[:37].any()
    np.testing.assert_array_equal(first[37:], kept * np.float32(abs_.tx_scale))
    for b in bursts[1:]:
        assert b is not first and np.array_equal(b, first)
    bursts[0][:] = 0                   # a caller writing its buffer changes no later burst
    again = abs_.build_zone(0.0, zone.length, frame=10, kind=zone.name, lead=37, force=True)[0]
    np.testing.assert_array_equal(again, bursts[1])
