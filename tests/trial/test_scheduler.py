"""relaysec.scheduler: per-destination RU allocation (round robin, proportional fair)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaysec.scheduler import Demand, Scheduler, jain


def check_invariants(dem: list[Demand], alloc: dict[int, int], n_ru: int, overhead: float,
                     max_allocs: int | None) -> None:
    by = {d.dst: d for d in dem}
    assert sum(alloc.values()) + overhead * len(alloc) <= n_ru + 1e-9      # conservation
    assert max_allocs is None or len(alloc) <= max_allocs
    for dst, n in alloc.items():
        d = by[dst]
        assert n >= 1 and d.queued_bytes > 0                                # nothing for nothing
        assert (n - 1) * d.bytes_per_ru < d.queued_bytes                    # no RU wasted
        assert n * d.bytes_per_ru >= min(d.min_bytes, d.queued_bytes) - 1e-9  # min_bytes


def full_buffer(dsts: range, bpr: float = 10.0) -> list[Demand]:
    return [Demand(d, 10**6, bpr) for d in dsts]


# ---- fixed cases ------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["rr", "pf"])
def test_needs_are_met_and_leftover_stays_unused(policy: str) -> None:
    dem = [Demand(1, 25, 10.0), Demand(2, 0, 10.0), Demand(3, 100, 20.0)]
    alloc = Scheduler(policy).allocate(dem, 50, alloc_overhead_ru=0.5)
    assert alloc == {1: 3, 3: 5}            # ceil(25/10), ceil(100/20); none for the empty queue
    check_invariants(dem, alloc, 50, 0.5, None)


@pytest.mark.parametrize("policy", ["rr", "pf"])
def test_conservation_under_overload(policy: str) -> None:
    dem = full_buffer(range(5))
    alloc = Scheduler(policy).allocate(dem, 23, alloc_overhead_ru=0.25)
    check_invariants(dem, alloc, 23, 0.25, None)
    assert sum(alloc.values()) == 21        # 23 - 5 x 0.25 = 21.75 -> 21 whole RUs


def test_rr_shares_equally_and_redistributes_what_one_cannot_use() -> None:
    dem = [Demand(1, 20, 10.0), Demand(2, 10**6, 10.0), Demand(3, 10**6, 5.0)]
    alloc = Scheduler("rr").allocate(dem, 30)
    assert alloc[1] == 2                    # its whole queue
    assert alloc[2] == alloc[3] == 14       # equal RUs (not equal bytes) for the other two


def test_rr_a_destination_held_at_its_minimum_gets_no_share_on_top() -> None:
    # level 5 for all: destination 1 sits at its 10-RU minimum, the spare RU goes to another
    dem = [Demand(1, 10**6, 10.0, min_bytes=100), Demand(2, 10**6, 10.0),
           Demand(3, 10**6, 10.0)]
    alloc = Scheduler("rr").allocate(dem, 21)
    assert alloc[1] == 10 and sorted((alloc[2], alloc[3])) == [5, 6]


@pytest.mark.parametrize("policy", ["rr", "pf"])
def test_max_allocs(policy: str) -> None:
    s = Scheduler(policy)
    seen: set[int] = set()
    for _ in range(10):
        alloc = s.allocate(full_buffer(range(8)), 40, alloc_overhead_ru=1.0, max_allocs=3)
        assert len(alloc) == 3
        check_invariants(full_buffer(range(8)), alloc, 40, 1.0, 3)
        for dst, n in alloc.items():
            s.served(dst, n * 10)
        s.end_frame()
        seen |= alloc.keys()
    assert seen == set(range(8))            # the cap rotates, it does not starve anyone
    assert s.allocate(full_buffer(range(8)), 40, max_allocs=0) == {}


@pytest.mark.parametrize("policy", ["rr", "pf"])
def test_min_bytes_allocation_that_cannot_be_useful_is_not_made(policy: str) -> None:
    # destination 1's head-of-line MPDU needs 10 RUs; only 8 are there
    dem = [Demand(1, 5000, 100.0, min_bytes=1000), Demand(2, 5000, 100.0, min_bytes=100)]
    alloc = Scheduler(policy).allocate(dem, 8)
    assert 1 not in alloc and alloc[2] == 8
    alloc = Scheduler(policy).allocate(dem, 14)
    assert alloc[1] >= 10 and sum(alloc.values()) <= 14
    check_invariants(dem, alloc, 14, 0.0, None)


def test_min_bytes_above_the_queue_means_the_whole_queue() -> None:
    d = Demand(1, 50, 10.0, min_bytes=1000)
    assert d.min_ru == d.need_ru == 5


def test_need_is_not_rounded_up_by_float_error() -> None:
    assert Demand(1, 3, 0.3).need_ru == 10
    assert Demand(1, 31, 0.3).need_ru == 104


# ---- fairness and throughput over many frames ----------------------------------------------

def run(s: Scheduler, frames: int, n_ru: int, rates: np.ndarray, *, overhead: float = 0.0,
        max_allocs: int | None = None) -> tuple[np.ndarray, list[dict[int, int]]]:
    """Full buffers; ``rates[t, i]`` bytes per RU of destination i in frame t. Returns bytes
    served per destination and every frame's allocation."""
    got = np.zeros(rates.shape[1])
    allocs = []
    for t in range(frames):
        dem = [Demand(i, 10**6, float(r)) for i, r in enumerate(rates[t])]
        alloc = s.allocate(dem, n_ru, alloc_overhead_ru=overhead, max_allocs=max_allocs)
        check_invariants(dem, alloc, n_ru, overhead, max_allocs)
        for i, n in alloc.items():
            b = int(n * rates[t, i])
            got[i] += b
            s.served(i, b)
        s.end_frame()
        allocs.append(alloc)
    return got, allocs


@pytest.mark.parametrize("max_allocs", [None, 6])
def test_rr_is_fair_to_equal_full_buffer_destinations(max_allocs: int | None) -> None:
    rates = np.full((100, 16), 12.0)
    got, _ = run(Scheduler("rr"), 100, 45, rates, overhead=0.5, max_allocs=max_allocs)
    assert jain(got) >= 0.99


def ladder_rates(frames: int, mean_snr_db: np.ndarray, seed: int) -> np.ndarray:
    """Bytes per RU per frame from Rayleigh block fading around each destination's mean SNR,
    through a ladder like the measured one (thresholds in dB, bits per subcarrier)."""
    thr = np.array([5.3, 7.6, 10.5, 13.9, 15.3, 17.9, 19.6, 20.7])
    bits = np.array([1.0, 1.5, 2.0, 3.0, 3.0, 4.0, 4.5, 5.0])
    rng = np.random.default_rng(seed)
    snr = mean_snr_db + 10 * np.log10(rng.exponential(1.0, (frames, mean_snr_db.size)))
    k = np.searchsorted(thr, snr, side="right") - 1
    return np.where(k >= 0, 9.0 * bits[np.maximum(k, 0)], 4.5)  # below the ladder: a trickle


@pytest.mark.parametrize("max_allocs", [None, 4])
def test_pf_beats_rr_on_fading_channels_and_starves_no_one(max_allocs: int | None) -> None:
    frames, n, window = 400, 8, 20
    rates = ladder_rates(frames, np.linspace(6.0, 22.0, n), seed=7)
    pf, pf_allocs = run(Scheduler("pf", window_frames=window), frames, 48, rates,
                        overhead=1.0, max_allocs=max_allocs)
    rr, _ = run(Scheduler("rr"), frames, 48, rates, overhead=1.0, max_allocs=max_allocs)
    assert pf.sum() > 1.3 * rr.sum(), (pf.sum(), rr.sum())  # multi-user diversity (1.6-1.7x)
    for start in range(0, frames - window + 1, window):     # every window serves everyone
        served = set().union(*pf_allocs[start:start + window])
        assert served == set(range(n)), start
    assert (pf > 0.8 * rr).all(), pf / rr                   # nobody pays for it (1.45x or more)


def test_pf_serves_several_destinations_per_frame() -> None:
    rates = np.full((50, 6), 10.0)
    _, allocs = run(Scheduler("pf", window_frames=10), 50, 30, rates)
    assert np.mean([len(a) for a in allocs[10:]]) >= 3


def test_pf_prefers_the_better_channel_at_equal_history() -> None:
    s = Scheduler("pf", chunk_ru=4)
    alloc = s.allocate([Demand(1, 10**6, 5.0), Demand(2, 10**6, 20.0)], 4)
    assert alloc == {2: 4}


# ---- state -------------------------------------------------------------------------------

def test_state_is_bounded_by_recent_destinations() -> None:
    s = Scheduler("pf", window_frames=5, forget_after=10)
    for t in range(200):                    # a new station every frame, each seen once
        alloc = s.allocate([Demand(1000 + t, 100, 10.0)], 20)
        for dst, n in alloc.items():
            s.served(dst, n * 10)
        s.end_frame()
        assert len(s.tracked) <= 11
    s.forget(1199)
    assert 1199 not in s.tracked and s.average(1199) == 0.0


def test_served_averages_follow_the_window() -> None:
    s = Scheduler("pf", window_frames=4)
    s.served(1, 100)
    s.end_frame()
    assert s.average(1) == pytest.approx(25.0)
    s.end_frame()
    assert s.average(1) == pytest.approx(18.75)


# ---- validation --------------------------------------------------------------------------

@pytest.mark.parametrize(("call", "name"), [
    (lambda: Scheduler("fifo"), "policy"),
    (lambda: Scheduler("pf", window_frames=0.5), "window_frames"),
    (lambda: Scheduler("pf", chunk_ru=0), "chunk_ru"),
    (lambda: Scheduler().allocate([], -1), "n_ru"),
    (lambda: Scheduler().allocate([], 10, alloc_overhead_ru=math.nan), "alloc_overhead_ru"),
    (lambda: Scheduler().allocate([], 10, max_allocs=-1), "max_allocs"),
    (lambda: Scheduler().allocate([Demand(1, 5, 1.0), Demand(1, 6, 1.0)], 10), "twice"),
    (lambda: Scheduler().served(1, -5), "n_bytes"),
    (lambda: Demand(1, 10, 0.0), "bytes_per_ru"),
    (lambda: Demand(1, -1, 1.0), "queued_bytes"),
    (lambda: Demand(1, 1, 1.0, min_bytes=1.5), "min_bytes"),  # type: ignore[arg-type]
])
def test_bad_input_names_the_parameter(call, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()


def test_numpy_numbers_are_accepted_and_normalised() -> None:
    d = Demand(np.int64(3), np.int32(100), np.float32(2.5))
    assert type(d.dst) is int and type(d.bytes_per_ru) is float
    alloc = Scheduler().allocate([d], np.int64(50), alloc_overhead_ru=np.float64(0.5))
    assert alloc == {3: 40} and all(type(k) is int for k in alloc)


def test_jain() -> None:
    assert jain([3, 3, 3]) == 1.0
    assert jain([1, 0, 0, 0]) == pytest.approx(0.25)
    assert jain([0, 0]) == 1.0
    with pytest.raises(ValueError):
        jain([])
    with pytest.raises(ValueError):
        jain([1, -1])


# ---- property test -----------------------------------------------------------------------

demand_lists = st.lists(
    st.tuples(st.integers(0, 5000), st.floats(0.5, 200.0), st.integers(0, 3000)),
    max_size=12,
).map(lambda xs: [Demand(i, q, r, m) for i, (q, r, m) in enumerate(xs)])


@settings(max_examples=150)
@given(frames=st.lists(demand_lists, min_size=1, max_size=4), n_ru=st.integers(0, 120),
       overhead=st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.75]),
       max_allocs=st.none() | st.integers(0, 6), policy=st.sampled_from(["rr", "pf"]),
       chunk=st.integers(1, 5))
def test_invariants_hold_for_any_demands(frames, n_ru, overhead, max_allocs, policy,
                                         chunk) -> None:
    s = Scheduler(policy, window_frames=3, chunk_ru=chunk)
    for dem in frames:
        alloc = s.allocate(dem, n_ru, alloc_overhead_ru=overhead, max_allocs=max_allocs)
        check_invariants(dem, alloc, n_ru, overhead, max_allocs)
        # work conservation: nobody left out who would still fit with its minimum
        by = {d.dst: d for d in dem}
        used = sum(alloc.values()) + overhead * len(alloc)
        if max_allocs is None or len(alloc) < max_allocs:
            for d in dem:
                if d.queued_bytes and d.dst not in alloc:
                    assert used + overhead + d.min_ru > n_ru + 1e-9
        if any(n < by[dst].need_ru for dst, n in alloc.items()):
            assert n_ru - used < 1 - 1e-9   # someone still wants more: no whole RU left
        for dst, n in alloc.items():
            s.served(dst, min(int(n * by[dst].bytes_per_ru), by[dst].queued_bytes))
        s.end_frame()


# ---- whole units (MPDUs that are not fragmented) and packing -------------------------------

@pytest.mark.parametrize("policy", ["rr", "pf"])
def test_allocations_are_whole_units(policy: str) -> None:
    # MPDUs of 7 RUs: 30 RUs hold 4 whole ones, never 4 and a fraction
    dem = [Demand(1, 10**6, 10.0, min_bytes=70, unit_ru=7),
           Demand(2, 10**6, 10.0, min_bytes=70, unit_ru=7)]
    for _ in range(6):
        alloc = Scheduler(policy).allocate(dem, 30)
        assert alloc and all(n % 7 == 0 for n in alloc.values())
        assert sum(alloc.values()) == 28
    # a unit larger than what is left is not made; a queue shorter than a unit gets one unit
    assert Scheduler(policy).allocate([Demand(1, 10**6, 10.0, unit_ru=40)], 30) == {}
    assert Scheduler(policy).allocate([Demand(1, 30, 10.0, unit_ru=7)], 30) == {1: 7}


def test_rr_units_rotate_between_destinations() -> None:
    s = Scheduler("rr")
    dem = [Demand(d, 10**6, 10.0, unit_ru=7) for d in range(5)]
    got: dict[int, int] = {}
    for _ in range(50):   # 2 units per frame among 5 destinations
        for dst, n in s.allocate(dem, 15).items():
            got[dst] = got.get(dst, 0) + n
        s.end_frame()
    assert sum(got.values()) == 50 * 14 and jain(list(got.values())) > 0.99


def test_rr_rotation_survives_a_zone_to_another_peer_in_between() -> None:
    """An ARS's scheduler serves its DL-access zone (its AMSs) and its UL relay burst (the ABS,
    a larger id) in turn: the relay burst must not send the access rotation back to the first
    AMS (it did: the two lowest AMS ids got the whole zone, the others nothing)."""
    s = Scheduler("rr")
    amss = [Demand(d, 10**6, 10.0, unit_ru=7) for d in range(8)]
    got = dict.fromkeys(range(8), 0)
    for _ in range(40):   # 2 of 8 AMSs per frame, then the burst to the ABS
        for dst, n in s.allocate(amss, 15).items():
            got[dst] += n
        assert s.allocate([Demand(10**6, 500, 10.0)], 60) == {10**6: 50}
        s.end_frame()
    assert set(got.values()) == {70}


def test_pack_prefers_fewer_fuller_allocations_when_each_costs_much() -> None:
    # a UL zone of 23 symbols, slots costing 5 symbols each, MPDUs of 6 symbols: two slots carry
    # one MPDU each (2 x 11 = 22), one slot carries three (5 + 18 = 23)
    dem = [Demand(d, 10**6, 70.0, min_bytes=400, unit_ru=6) for d in range(4)]
    spread = Scheduler("rr").allocate(dem, 23, alloc_overhead_ru=5, max_allocs=2)
    packed = Scheduler("rr").allocate(dem, 23, alloc_overhead_ru=5, max_allocs=2, pack=True)
    assert sum(spread.values()) == 12 and len(spread) == 2
    assert sum(packed.values()) == 18 and len(packed) == 1
    # who is served still rotates
    s = Scheduler("rr")
    first = [next(iter(s.allocate(dem, 23, alloc_overhead_ru=5, max_allocs=2, pack=True)))
             for _ in range(4)]
    assert sorted(first) == [0, 1, 2, 3]
