"""The medium's burst index (bursts kept sorted by start, found by bisection): the same bursts,
in the same order, as the full scans it replaced (``Medium._place``'s stable sort,
``Medium._prune``'s filter, ``LoopbackRadio._snapshot``'s per-burst test)."""

from __future__ import annotations

import numpy as np
import pytest

from hw.channels import INTERP_HALF
from hw.loopback import Burst, ManualClock, Medium


def _scan(m: Medium, rx: str, t_lo: float, t_hi: float) -> list[Burst]:
    """What ``_snapshot`` kept before the index: every burst of the timeline, tested."""
    out = []
    for b in m._bursts:
        link = m._links.get((b.source, rx))
        if link is None:
            continue
        reach = (link.delay_s + link.profile.max_delay_s) * m.sample_rate
        if b.start - INTERP_HALF - 1 > t_hi or b.end + reach + INTERP_HALF + 1 < t_lo:
            continue
        out.append(b)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_index_finds_what_the_full_scan_found(seed: int) -> None:
    rng = np.random.default_rng(seed)
    clock = ManualClock()
    m = Medium(1e6, seed=seed, clock=clock, rx_backlog=30000.0, retention=0.0)
    names = ["a", "b", "c"]
    for n in names:
        m.add_radio(n, ppm=float(rng.integers(-3, 4)))
    m.set_link("a", "b", snr_db=20, channel="vehA", delay_s=2e-5)
    m.set_link("b", "c", snr_db=20)
    m.set_link("a", "a", snr_db=30)
    placed: list[float] = []  # local starts, to place more bursts at an equal start
    for _ in range(300):
        src = m.radios[names[rng.integers(3)]]
        size = int(rng.choice([1, 2, 40, 3000, 60000]))
        at = float(rng.integers(0, 400000)) + (0.5 if rng.random() < 0.3 else 0.0)
        if rng.random() < 0.2 and placed:  # equal starts keep their placing order
            at = placed[int(rng.integers(len(placed)))]
        placed.append(src.transmit(np.full(size, 0.1, np.complex64), at=at))
        assert m._bursts == sorted(m._bursts, key=lambda b: b.start)  # stable: as sort() was
        for rx in names:
            t_lo = float(rng.uniform(-1000, 420000))
            t_hi = t_lo + float(rng.choice([0, 100, 32768]))
            cand = m._candidates(t_lo, t_hi)
            ids = {id(b) for b in cand}
            assert [b for b in m._bursts if id(b) in ids] == cand  # timeline order
            assert all(id(b) in ids for b in _scan(m, rx, t_lo, t_hi))
        if rng.random() < 0.1:
            clock.advance(float(rng.integers(0, 80000)))
            margin = 4 * INTERP_HALF + 2 + m._max_delay_samples()
            horizon = clock.now() - m.rx_backlog - m.retention
            expect = [b for b in m._bursts if b.end + margin >= horizon]
            m._prune()
            assert m._bursts == expect


def test_equal_starts_keep_their_placing_order() -> None:
    m = Medium(1e6, seed=1)
    a = m.add_radio("a")
    for k in (5, 3, 5, 5, 1, 3):
        a.transmit(np.full(k, 0.1, np.complex64), at=float(k))
    assert [(b.start, b.iq.size, b.index) for b in m._bursts] == [
        (pytest.approx(a._global(k)), k, i) for k, i in
        ((1, 4), (3, 1), (3, 5), (5, 0), (5, 2), (5, 3))]
