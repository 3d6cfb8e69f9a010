"""Fast paths of the per-frame scheduling: ``relaysec.scheduler._ceil_div`` written out, the
sizes of a ``Demand`` computed once, and the demand planner's zone lengths (``units`` of
``relaysec.cell._planner``) kept. Each must answer exactly what the plain definition answers
(kept here as the reference), values and types."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaysec import cell
from relaysec.cell import _planner, _zone_modem, frame_timing
from relaysec.config import load_config
from relaysec.config_schema import access_owners
from relaysec.schedule import build_schedule
from relaysec.scheduler import _EPS, Demand, Scheduler, _ceil_div


def reference_ceil_div(a: float, b: float) -> int:
    q = a / b
    r = round(q)
    return int(r) if abs(q - r) <= _EPS * max(1.0, abs(q)) else math.ceil(q)


def _same(x: object, y: object) -> bool:
    return x == y and type(x) is type(y)


@settings(max_examples=2000)
@given(st.one_of(st.integers(-10**12, 10**12), st.floats(-1e9, 1e9)),
       st.one_of(st.floats(1e-6, 1e6), st.floats(-1e6, -1e-6), st.integers(1, 5000),
                 st.sampled_from([0.1, 0.3, 1 / 3, 0.7, 3.0, 12.75])))
def test_ceil_div_is_its_definition(a, b):
    assert _same(_ceil_div(a, b), reference_ceil_div(a, b))


def test_ceil_div_near_whole_quotients():
    """Quotients within a few ulps of an integer, either side and either sign, and zeros."""
    rng = random.Random(7)
    for _ in range(20000):
        b = rng.choice([0.1, 0.3, 0.7, 1.1, 12.75, rng.uniform(0.01, 50)])
        a = rng.randint(-10**6, 10**6) * b
        a = rng.choice([a, math.nextafter(a, math.inf), math.nextafter(a, -math.inf),
                        a * (1 + rng.choice([1e-9, -1e-9, 2e-9, 1e-10])), 0.0, -0.0])
        assert _same(_ceil_div(a, b), reference_ceil_div(a, b))
    for a, b in ((1e308, 1e-308), (float("inf"), 1.0), (float("nan"), 1.0)):
        with pytest.raises((OverflowError, ValueError)) as new:
            _ceil_div(a, b)
        with pytest.raises(type(new.value)):
            reference_ceil_div(a, b)


def _reference_sizes(d: Demand) -> tuple[int, int, int, int]:
    """need_ru, min_ru, first_ru and the whole-unit need, as the properties computed them."""
    need = reference_ceil_div(d.queued_bytes, d.bytes_per_ru)
    mn = 0 if d.queued_bytes == 0 else \
        max(1, reference_ceil_div(min(d.min_bytes, d.queued_bytes), d.bytes_per_ru))
    first = d.unit_ru if d.unit_ru and d.queued_bytes else mn
    q = d.unit_ru or 1
    return need, mn, first, reference_ceil_div(need, q) * q


def _reference_fit(d: Demand, n_ru: int) -> int:
    _need, _mn, first, top = _reference_sizes(d)
    q = d.unit_ru or 1
    n = min(n_ru, top) // q * q
    return n if n >= first and n > 0 else 0


demands = st.builds(Demand, st.integers(0, 1000), st.integers(0, 50000),
                    st.one_of(st.floats(0.5, 200.0), st.sampled_from([1.0, 12.75, 1 / 3, 0.3])),
                    st.integers(0, 3000), st.integers(0, 40))


@settings(max_examples=1000)
@given(demands, st.lists(st.integers(0, 5000), max_size=8))
def test_demand_sizes_and_fit_are_their_definitions(d, asks):
    for _ in range(2):   # computed, then kept
        assert (d.need_ru, d.min_ru, d.first_ru, d.top_ru) == _reference_sizes(d)
        for n in [*asks, d.top_ru, float(d.top_ru), d.top_ru + 0.5]:
            assert _same(d.fit(n), _reference_fit(d, n))
    assert d == Demand(d.dst, d.queued_bytes, d.bytes_per_ru, d.min_bytes, d.unit_ru)
    assert "need_ru" not in repr(d)


def _reference_rr(dem: list[Demand], n_ru: int, overhead: float, cap: int,
                  turn: dict[int, int]) -> dict[int, int]:
    """Scheduler._rr's sharing with the sizes recomputed at every use (as before)."""
    order = sorted(dem, key=lambda d: (turn.get(d.dst, -1), d.dst))
    room = lambda used, n: math.floor(n_ru - used - n * overhead + _EPS)  # noqa: E731
    admitted, reserved = [], 0
    for d in order:
        first = _reference_fit(d, _reference_sizes(d)[2])
        if len(admitted) < cap and first and room(reserved + first, len(admitted) + 1) >= 0:
            admitted.append(d)
            reserved += first
    if not admitted:
        return {}
    budget = room(0, len(admitted))

    def share(d: Demand, level: int) -> int:
        q = d.unit_ru or 1
        _need, _mn, lo, top = _reference_sizes(d)
        return max(lo, min(top, level // q * q))

    lo, hi = 0, max(_reference_sizes(d)[3] for d in admitted)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if sum(share(d, mid) for d in admitted) <= budget else (lo, mid - 1)
    alloc = {d.dst: share(d, lo) for d in admitted}
    left = budget - sum(alloc.values())
    for d in admitted:
        if _reference_sizes(d)[2] > lo:
            continue
        grown = _reference_fit(d, alloc[d.dst] + min(left, d.unit_ru or 1))
        if grown > alloc[d.dst]:
            left -= grown - alloc[d.dst]
            alloc[d.dst] = grown
    return alloc


@settings(max_examples=300)
@given(st.lists(demands, min_size=1, max_size=6, unique_by=lambda d: d.dst),
       st.integers(0, 3000), st.floats(0.0, 20.0), st.integers(1, 6))
def test_round_robin_shares_as_with_sizes_recomputed(dem, n_ru, overhead, cap):
    s = Scheduler("rr")
    backlogged = [d for d in dem if d.queued_bytes > 0]
    want = _reference_rr(backlogged, n_ru, overhead, cap, {}) if backlogged else {}
    assert s.allocate(dem, n_ru, alloc_overhead_ru=overhead, max_allocs=cap) == want


@pytest.fixture(scope="module")
def plan_parts():
    cfg = load_config()
    zm = _zone_modem(cfg["phy"]["profile"])
    frame_s, guard_s = frame_timing(cfg, wall=False)
    schedule = build_schedule([(s["name"], s["role"]) for s in cfg["stations"]],
                              sample_rate=zm.sample_rate, frame_s=frame_s, guard_s=guard_s,
                              access_owners=access_owners(cfg))
    return cfg, schedule, zm


def test_planner_zone_lengths_kept_are_those_computed(plan_parts, monkeypatch):
    """Asked in random order with repeats (and a memo cleared when full), the planner's zone
    lengths equal those of a fresh planner, whose first answer is always computed; numpy
    arguments are computed every time (their answers keep numpy's types)."""
    cfg, schedule, zm = plan_parts
    monkeypatch.setattr(cell, "UNITS_KEPT", 50)
    kept = _planner(cfg, schedule, zm).units
    rng = random.Random(3)
    asks = [(rng.randrange(len(schedule.zones)), rng.randrange(0, 12),
             rng.choice([1, 60, 200, 499, 500, 540, 700, 1200, zm.max_payload, 5000]))
            for _ in range(40)]
    for i, k, head in [rng.choice(asks) for _ in range(400)]:
        want = _planner(cfg, schedule, zm).units(i, k, head)
        assert _same(kept(i, k, head), want)
        ni, nk, nh = np.int64(i), np.int64(k), np.int64(head)
        assert _same(kept(ni, nk, nh), _planner(cfg, schedule, zm).units(ni, nk, nh))
