"""Nonce monitor (issue 17): every (TEK, direction, PN) handed out to send is recorded; a repeat
is caught even when the TEK was re-derived into a new SA, and nothing else is flagged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack import mpdu, nonces
from stack.errors import MalformedError, NonceReuseError, SecurityError
from stack.mac import TxMpdu, build_burst
from stack.nonces import NonceMonitor, monitoring, tek_fingerprint
from stack.sa import SecurityAssociation
from tests.stack._ctx import secrets_of, vector_ctx

CTX = vector_ctx(0)

# Every test here builds its own monitors; most reuse nonces on purpose, and the conftest monitor
# (which is active around each test too) must not fail them for it.
pytestmark = pytest.mark.nonce_reuse_expected


def test_two_sas_from_the_same_ak_context_reuse_is_caught() -> None:
    with monitoring() as mon:
        a = SecurityAssociation.start(CTX, 1)
        b = SecurityAssociation.start(vector_ctx(0), 1)  # rebuilt from scratch: new objects
        a.next_pn(uplink=False)
        a.next_pn(uplink=False)
        assert mon.ok
        tek, pn = b.next_pn(uplink=False)
    assert (tek.counter_tek, pn) == (0, 1)
    assert a.teks[0] is not b.teks[0]
    assert tek_fingerprint(a.teks[0]) == tek_fingerprint(b.teks[0])
    assert (mon.seen, mon.reused, mon.streams) == (3, 1, 1)
    [r] = mon.reuses
    assert (r.tek, r.direction, r.pn, r.count, r.at) == (tek_fingerprint(tek).hex(), "DL", 1, 1, 2)
    assert "test_nonce_monitor.py" in r.where  # the caller, for finding the culprit
    with pytest.raises(NonceReuseError) as e:
        mon.check()
    assert isinstance(e.value, SecurityError)
    assert e.value.reason == "nonce_reuse"
    assert "DL PN 1 sent again" in str(e.value)


def test_protect_path_is_monitored() -> None:
    with monitoring() as mon:
        for sa in (SecurityAssociation.start(CTX, 2), SecurityAssociation.start(CTX, 2)):
            mpdu.protect(sa, stid=0x123, fid=1, uplink=True, payload=b"x")
    assert mon.reused == 1
    assert mon.reuses[0].direction == "UL"


def test_directions_and_different_teks_are_independent() -> None:
    with monitoring() as mon:
        sa = SecurityAssociation.start(CTX, 1)
        for _ in range(3):
            sa.next_pn(uplink=True)
            sa.next_pn(uplink=False)
        SecurityAssociation.start(CTX, 2).next_pn(uplink=True)  # other SAID: other TEK
        SecurityAssociation.start(vector_ctx(1), 1).next_pn(uplink=True)  # other AK
        sa.install(2)  # TEK update: TEK 1 sends next, its PNs start at 1
        tek, pn = sa.next_pn(uplink=True)
        assert (tek.counter_tek, pn) == (1, 1)
    assert mon.ok and mon.reused == 0 and mon.reuses == []
    assert (mon.seen, mon.streams) == (9, 5)
    mon.check()  # no raise


def test_next_pns_blocks_against_single_pns() -> None:
    with monitoring() as mon:
        a = SecurityAssociation.start(CTX, 1)
        b = SecurityAssociation.start(CTX, 1)
        assert a.next_pns(True, 10)[0][1:] == (1, 10)  # PNs 1..10
        b.next_pn(True)  # PN 1
        b.next_pn(True)  # PN 2
        assert mon.reused == 2
        assert [(r.pn, r.count) for r in mon.reuses] == [(1, 1), (2, 1)]
        b.next_pns(True, 20)  # PNs 3..22: 3..10 reused
        assert [(r.pn, r.count) for r in mon.reuses][-1] == (3, 8)
        a.next_pns(True, 5)  # PNs 11..15, also taken by b just now
        assert [(r.pn, r.count) for r in mon.reuses][-1] == (11, 5)
        a.next_pns(True, 100)  # 16..22 reused, 23..115 new
        assert [(r.pn, r.count) for r in mon.reuses][-1] == (16, 7)
    assert mon.reused == 2 + 8 + 5 + 7
    assert mon.seen == 10 + 2 + 20 + 5 + 100


def test_build_burst_path_is_monitored() -> None:
    with monitoring() as mon:
        a = SecurityAssociation.start(CTX, 1)
        b = SecurityAssociation.start(CTX, 1)
        build_burst(0x12, [TxMpdu(1, b"p" * 8, a) for _ in range(6)], uplink=False)
        assert (mon.seen, mon.reused) == (6, 0)
        mpdu.protect(b, stid=0x12, fid=1, uplink=False, payload=b"q")
        build_burst(0x12, [TxMpdu(1, b"p", b), TxMpdu(0, b"plain")], uplink=False)
    assert [(r.direction, r.pn, r.count) for r in mon.reuses] == [("DL", 1, 1), ("DL", 2, 1)]
    assert mon.seen == 8


def test_block_across_a_tek_change_reports_both_runs() -> None:
    with monitoring() as mon:
        sa = SecurityAssociation(CTX, 1, pn_last=4, update_threshold=2)
        sa.install(0)
        sa.install(1)
        runs = sa.next_pns(False, 6)
        assert [(t.counter_tek, f, k) for t, f, k in runs] == [(0, 1, 4), (1, 1, 2)]
    assert (mon.seen, mon.streams, mon.reused) == (6, 2, 0)


def test_nested_monitors_both_record() -> None:
    base = list(nonces.active)  # the conftest monitor
    sa = SecurityAssociation.start(CTX, 1)
    with monitoring(name="outer") as outer:
        sa.next_pn(True)
        with monitoring(name="inner") as inner:
            assert nonces.active == [*base, outer, inner]
            SecurityAssociation.start(CTX, 1).next_pn(True)  # PN 1 again
            sa.next_pn(False)
        assert nonces.active == [*base, outer]
        sa.next_pn(True)
    assert nonces.active == base
    assert (outer.seen, outer.reused) == (4, 1)
    assert (inner.seen, inner.reused) == (2, 0)  # inner never saw the first PN 1
    assert outer.reuses[0].pn == 1
    with monitoring(inner):  # a monitor can be re-activated and carries on
        SecurityAssociation.start(CTX, 1).next_pn(False)
    assert (inner.seen, inner.reused) == (3, 1)


def test_overlapping_non_nested_exit() -> None:
    base = list(nonces.active)
    a, b = NonceMonitor("a"), NonceMonitor("b")
    ca, cb = monitoring(a), monitoring(b)
    ca.__enter__()
    cb.__enter__()
    ca.__exit__(None, None, None)  # a leaves first
    assert nonces.active == [*base, b]
    SecurityAssociation.start(CTX, 1).next_pn(True)
    cb.__exit__(None, None, None)
    assert (a.seen, b.seen) == (0, 1)
    assert nonces.active == base


def test_inactive_monitor_records_nothing() -> None:
    mon = NonceMonitor()
    saved = list(nonces.active)
    nonces.active.clear()  # outside every monitor, the conftest one included
    try:
        sa = SecurityAssociation.start(CTX, 1)
        sa.next_pn(True)
        sa.next_pns(True, 5)
        SecurityAssociation.start(CTX, 1).next_pn(True)
        nonces.report(sa.teks[0], True, 1, 3)  # what SA would call: no monitor, no effect
        assert nonces._fingerprints == {}  # nothing cached either
    finally:
        nonces.active[:] = saved
    assert (mon.seen, mon.reused, mon.streams) == (0, 0, 0)
    with monitoring(mon):
        pass
    assert mon.seen == 0
    with monitoring(mon):
        sa.next_pn(True)  # PN 7
    assert (mon.seen, mon.reused) == (1, 0)


def test_no_key_bytes_in_reprs_or_messages() -> None:
    with monitoring(name="keys") as mon:
        sas = [SecurityAssociation.start(CTX, s) for s in (0, 1, 2) for _ in range(2)]
        for sa in sas:
            sa.next_pns(True, 3)
            sa.next_pn(False)
    assert mon.reused == 3 * 4
    texts = [repr(mon), str(mon), mon.describe(limit=100)]
    texts += [repr(r) for r in mon.reuses] + [str(r) for r in mon.reuses]
    with pytest.raises(NonceReuseError) as e:
        mon.check()
    texts += [str(e.value), repr(e.value)]
    blob = "\n".join(texts).lower()
    assert "sent again" in blob and "keys" in blob
    for secret in secrets_of(CTX):
        assert secret not in blob
    for sa in sas:
        for tek in sa.teks:
            fp = tek_fingerprint(tek)
            assert len(fp) == nonces.FINGERPRINT_LEN
            assert fp not in tek.key and tek.key.hex() not in blob


def test_describe_limits_and_counts() -> None:
    with monitoring() as mon:
        for _ in range(8):
            SecurityAssociation.start(CTX, 1).next_pn(True)
    text = mon.describe(limit=2)
    assert "8 nonces" in text and "7 reused" in text and "and 5 more run(s)" in text
    assert repr(mon) == "NonceMonitor(seen=8, streams=1, reused=7)"


def test_export_and_merge_across_processes() -> None:
    """Fingerprints do not depend on the process: two stations' monitors can be compared."""
    with monitoring(name="abs") as abs_mon:
        SecurityAssociation.start(CTX, 1).next_pns(False, 5)  # DL 1..5
    with monitoring(name="ars") as ars_mon:
        sa = SecurityAssociation.start(vector_ctx(0), 1)  # the same TEK held elsewhere
        sa.next_pns(True, 9)  # UL: other direction, no clash
        sa.next_pns(False, 3)  # DL 1..3: clash with the ABS
    data = ars_mon.export()
    fp = tek_fingerprint(sa.teks[0]).hex()
    assert data == {f"{fp}:UL": [(1, 9)], f"{fp}:DL": [(1, 3)]}
    abs_mon.merge(data, source="ARS-1")
    assert (abs_mon.seen, abs_mon.reused) == (17, 3)
    [r] = abs_mon.reuses
    assert (r.tek, r.direction, r.pn, r.count, r.where) == (fp, "DL", 1, 3, "merged from ARS-1")
    with pytest.raises(MalformedError):
        abs_mon.merge({f"{fp}:XX": [(1, 1)]})


@given(st.lists(st.tuples(st.integers(1, 60), st.integers(1, 12)), min_size=1, max_size=40))
def test_intervals_match_a_set_model(blocks: list[tuple[int, int]]) -> None:
    """Any order of blocks: ``add`` reports exactly the PNs seen before, as maximal runs."""
    mon = NonceMonitor()
    seen: set[int] = set()
    fp = b"\x01" * nonces.FINGERPRINT_LEN
    for first, count in blocks:
        got = mon.add(fp, True, first, count)
        pns = range(first, first + count)
        assert [p for s, k in got for p in range(s, s + k)] == [p for p in pns if p in seen]
        assert all(s + k not in seen or s + k >= first + count for s, k in got)  # maximal
        seen.update(pns)
        starts, ends = mon._pns[(fp, True)]
        assert {p for s, e in zip(starts, ends, strict=True) for p in range(s, e)} == seen
        assert all(e < s for e, s in zip(ends, starts[1:], strict=False))  # disjoint, apart
    assert mon.seen == sum(k for _, k in blocks)
    assert mon.reused == mon.seen - len(seen)


PLUGIN_PROBE = """
import pytest
from stack.sa import SecurityAssociation
from tests.stack._ctx import vector_ctx

def _twice():
    for _ in range(2):
        SecurityAssociation.start(vector_ctx(0), 1).next_pns(True, 3)

def test_reuses():
    _twice()

@pytest.mark.nonce_reuse_expected
def test_reuses_on_purpose():
    _twice()

def test_clean():
    SecurityAssociation.start(vector_ctx(0), 1).next_pns(True, 3)

def test_fails_anyway():
    assert False
"""


def test_conftest_plugin_fails_unmarked_reuse(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_probe=PLUGIN_PROBE)
    res = pytester.runpytest("-p", "tests.conftest", "-q", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=2, failed=2)
    out = res.stdout.str()
    assert "test_probe.py::test_reuses -" in out.replace("FAILED ", "")
    assert "3 reused" in out and "UL PNs 1..3 sent again (after 3 nonces)" in out
    assert "nonce_reuse_expected" in out
    assert "test_reuses_on_purpose" not in out.split("short test summary")[-1]
