"""The compiled burst data path against a per-MPDU model built from the scalar APIs.

``stack.mac.build_burst`` / ``open_burst`` do their per-MPDU work in ``stack._burst`` and take
PNs and check replay windows per SA / per (SA, EKS) group (``next_pns``, ``check_replay_many``,
``record_many``). Here every one of those is compared, on random and hostile input, with a
model that walks the MPDUs one by one through ``stack.mpdu`` and the scalar SA calls
(``next_pn``, ``check_replay``, ``check_and_record``) -- same bytes, same accepted MPDUs, same
rejection counts, same SA state afterwards.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stack import mac, mpdu
from stack.errors import KeyExhaustedError, MalformedError, ReplayError, SecurityError
from stack.mac import TxMpdu, build_burst, open_burst
from stack.sa import REPLAY_REASONS, ReplayWindow, SecurityAssociation
from tests.stack._ctx import vector_ctx

ENGINE = "reference"
STID = 0x133
CTXS = (vector_ctx(0), vector_ctx(1))
DATA_FIDS = (2, 3)  # FID 2 -> SA 1, FID 3 -> SA 2
PLAIN_FID, NO_SA_FID = 0, 9


class Ends:
    """Both ends of a link: a sending SA set and a receiving one, FID -> SA."""

    def __init__(self, pn_last: int | None = None) -> None:
        kw = {} if pn_last is None else {"pn_last": pn_last, "update_threshold": pn_last}

        def sas() -> dict[int, SecurityAssociation]:
            out = {}
            for i, f in enumerate(DATA_FIDS):
                sa = SecurityAssociation(CTXS[i], 1 + i, **kw)
                sa.install(0)
                sa.install(1)
                out[f] = sa
            return out

        self.tx, self.rx = sas(), sas()

    def lookup(self, stid: int, fid: int) -> SecurityAssociation | None:
        return self.rx.get(fid) if stid == STID else None


def _state(sa: SecurityAssociation) -> list[tuple[int, int, int, int, int]]:
    """Everything a burst can change in an SA: per live TEK, PNs sent and both windows."""
    return [
        (s.tek.counter_tek, s.tx_last[True], s.tx_last[False], s.rx[True].highest,
         s.rx[True]._bitmap)
        for s in sa._live
    ]


# -- the per-MPDU model ----------------------------------------------------------------------


def model_build(ends: Ends, items: list[tuple[int, bytes]]) -> bytes:
    """One ``protect`` / ``encode_plain`` per MPDU, in burst order."""
    out = b""
    for fid, payload in items:
        sa = ends.tx.get(fid)
        if sa is None:
            out += mpdu.encode_plain(fid, payload)
        else:
            out += mpdu.protect(sa, stid=STID, fid=fid, uplink=True, payload=payload)
    return out


def model_open(ends: Ends, data: bytes) -> tuple[list[tuple[int, bytes, int, int]], Counter]:
    """open_burst's contract, one MPDU at a time with the scalar calls.

    Replay windows are checked against the state before the burst, the ICV next, and PNs are
    recorded in burst order afterwards, only for MPDUs whose ICV verified.
    """
    rejected: Counter[str] = Counter()
    pos = 0
    found: list[tuple[int, int, bytes]] = []  # (position, FID, MPDU)
    while pos < len(data):
        if len(data) - pos < 2:
            rejected["short_mpdu"] += 1
            break
        word = int.from_bytes(data[pos : pos + 2], "big")
        length = word & 0x7FF
        if word == 0 and not any(data[pos:]):
            break
        if length < 2 or pos + length > len(data):
            rejected["bad_length"] += 1
            break
        one = data[pos : pos + length]
        found.append((pos, word >> 12, one))
        pos += length
    accepted: dict[int, tuple[int, bytes, int, int]] = {}  # by position
    passed = []
    for pos, fid, one in found:
        if one[0] & 0x08:
            rejected["unsupported_eh"] += 1
            continue
        sa = ends.lookup(STID, fid)
        if sa is None:
            if fid == PLAIN_FID:
                accepted[pos] = (fid, one[2:], -1, -1)
            else:
                rejected["unknown_sa"] += 1
            continue
        if len(one) < 13:
            rejected["short_mpdu"] += 1
            continue
        hdr = mpdu.parse_protected(one)
        try:
            tek = sa.check_replay(hdr.eks, hdr.pn, True)
            _, eks, pn, payload = mpdu.unseal(tek.key, stid=STID, uplink=True, mpdu=one)
        except SecurityError as exc:
            rejected[exc.reason] += 1
            continue
        passed.append((pos, fid, sa, eks, pn, payload))
    for pos, fid, sa, eks, pn, payload in passed:
        try:
            sa.check_and_record(eks, pn, True)
        except SecurityError as exc:
            rejected[exc.reason] += 1
            continue
        accepted[pos] = (fid, payload, eks, pn)
    return [accepted[p] for p in sorted(accepted)], rejected


# -- random hostile bursts ---------------------------------------------------------------------

MUTATIONS = ("none", "flip", "replay_old", "dup", "eh", "short", "no_sa", "plain", "tail",
             "pad", "truncate")


@st.composite
def bursts(draw: st.DrawFn) -> list[tuple[list[tuple[int, bytes]], list[str]]]:
    """A few bursts: each a list of (FID, payload) and the mutations to apply to it."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        items = draw(st.lists(
            st.tuples(st.sampled_from((*DATA_FIDS, PLAIN_FID)), st.binary(max_size=80)),
            min_size=1, max_size=12))
        muts = draw(st.lists(st.sampled_from(MUTATIONS), max_size=4))
        out.append((items, muts))
    return out


def _mutate(raw: bytes, old: list[bytes], muts: list[str], rng: np.random.Generator) -> bytes:
    """Apply hostile edits that keep (or deliberately break) the framing."""
    units = []
    pos = 0
    while pos < len(raw):
        n = int.from_bytes(raw[pos : pos + 2], "big") & 0x7FF
        units.append(bytearray(raw[pos : pos + n]))
        pos += n
    tail = b""
    for m in muts:
        k = int(rng.integers(len(units))) if units else 0
        if m == "flip" and units and len(units[k]) > 2:
            j = int(rng.integers(2, len(units[k])))
            units[k][j] ^= 1 << int(rng.integers(8))
        elif m == "replay_old" and old:
            units.insert(k, bytearray(old[int(rng.integers(len(old)))]))
        elif m == "dup" and units:
            units.insert(k, bytearray(units[k]))
        elif m == "eh" and units:
            units[k][0] |= 0x08
        elif m == "short":
            units.insert(k, bytearray(mpdu.Agmh(2, False, 7).encode() + bytes(5)))
        elif m == "no_sa":
            units.insert(k, bytearray(mpdu.encode_plain(NO_SA_FID, b"x" * 20)))
        elif m == "plain":
            units.insert(k, bytearray(mpdu.encode_plain(PLAIN_FID, b"ctl")))
        elif m == "tail":
            tail = bytes([0x20, 0xFF, 1, 2])  # Length past the end
        elif m == "pad":
            tail = bytes(9)
        elif m == "truncate":
            tail = b"\x20"
    return b"".join(bytes(u) for u in units) + tail


# the model and the fast path send from twin SAs (same AKs) to compare bytes
@pytest.mark.nonce_reuse_expected
@settings(max_examples=60, deadline=None)
@given(bursts(), st.integers(0, 2**32 - 1), st.sampled_from([None, 5, 40]))
def test_build_and_open_match_the_per_mpdu_model(plan, seed, pn_last) -> None:
    rng = np.random.default_rng(seed)
    fast, model = Ends(pn_last), Ends(pn_last)
    sent: list[bytes] = []
    for items, muts in plan:
        txs = [TxMpdu(f, p, fast.tx.get(f)) for f, p in items]
        try:
            expect = model_build(model, items)
        except KeyExhaustedError:
            with pytest.raises(KeyExhaustedError):
                build_burst(STID, txs, uplink=True, engine=ENGINE)
            return  # both ran out of PNs (tiny pn_last): nothing more to compare
        burst = build_burst(STID, txs, uplink=True, engine=ENGINE)
        assert burst.tobytes() == expect
        for f in DATA_FIDS:
            assert _state(fast.tx[f]) == _state(model.tx[f])

        raw = _mutate(expect, sent, muts, rng)
        rx = open_burst(STID, np.frombuffer(bytearray(raw), np.uint8), uplink=True,
                        lookup=fast.lookup, engine=ENGINE)
        want, want_rej = model_open(model, raw)
        got = [(int(f), rx.payload(k), int(e), int(p))
               for k, (f, e, p) in enumerate(zip(rx.fid, rx.eks, rx.pn, strict=True))]
        assert got == want
        assert rx.rejected == want_rej
        assert rx.protected.tolist() == [e >= 0 for _, _, e, _ in want]
        for f in DATA_FIDS:
            assert _state(fast.rx[f]) == _state(model.rx[f])
        sent.extend(_units(expect))  # material for later replays


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.lists(st.sampled_from((0x00, 0x20, 0x30, 0x90)), max_size=6))
def test_arbitrary_bytes_are_parsed_like_the_model(noise: bytes, heads: list[int]) -> None:
    """Garbage (with some plausible AGMH first bytes spliced in) never raises and is classified
    exactly as the per-MPDU model does; nothing protected is accepted from it."""
    raw = bytearray(noise)
    for k, head in enumerate(heads):
        if k * 37 < len(raw):
            raw[k * 37] = head
    fast, model = Ends(), Ends()
    rx = open_burst(STID, bytes(raw), uplink=True, lookup=fast.lookup, engine=ENGINE)
    want, want_rej = model_open(model, bytes(raw))
    got = [(int(f), rx.payload(k), int(e), int(p))
           for k, (f, e, p) in enumerate(zip(rx.fid, rx.eks, rx.pn, strict=True))]
    assert got == want and rx.rejected == want_rej
    assert not rx.protected.any()


def _units(raw: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(raw):
        n = int.from_bytes(raw[pos : pos + 2], "big") & 0x7FF
        out.append(raw[pos : pos + n])
        pos += n
    return out


def test_rejected_after_icv_is_zeroed() -> None:
    """A duplicate that passes its ICV but fails the record step is wiped from the buffer."""
    ends = Ends()
    one = build_burst(STID, [TxMpdu(2, b"secret!", ends.tx[2])], uplink=True, engine=ENGINE)
    buf = np.concatenate([one, one])
    rx = open_burst(STID, buf, uplink=True, lookup=ends.lookup, engine=ENGINE)
    assert rx.payloads() == [b"secret!"] and rx.rejected == Counter({"pn_replay": 1})
    second = buf[one.shape[0] :].tobytes()
    assert b"secret!" not in second


# -- PN blocks and batch replay windows --------------------------------------------------------


# twin SAs (same AK) hand out the same PNs by design; hypothesis examples repeat AKs
@pytest.mark.nonce_reuse_expected
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 9)), max_size=30), st.integers(3, 12))
def test_next_pns_hands_out_what_next_pn_would(blocks, pn_last) -> None:
    block_sa = SecurityAssociation(CTXS[0], 1, pn_last=pn_last, update_threshold=pn_last)
    one_sa = SecurityAssociation(CTXS[0], 1, pn_last=pn_last, update_threshold=pn_last)
    for sa in (block_sa, one_sa):
        sa.install(0)
        sa.install(1)
    for uplink, n in blocks:
        singles = []
        try:
            for _ in range(n):
                tek, pn = one_sa.next_pn(uplink)
                singles.append((tek.counter_tek, pn))
        except KeyExhaustedError:
            before = _state(block_sa)
            with pytest.raises(KeyExhaustedError) as err:
                block_sa.next_pns(uplink, n)
            assert err.value.reason == "no_usable_tek"
            assert _state(block_sa) == before  # all or nothing
            return
        runs = block_sa.next_pns(uplink, n)
        flat = [(tek.counter_tek, first + i) for tek, first, count in runs for i in range(count)]
        assert flat == singles
        assert all(count > 0 for _, _, count in runs) and len(runs) <= 2
        assert _state(block_sa) == _state(one_sa)


def _codes(call, pns: list[int]) -> list[int]:
    """One scalar window call per PN, in order: 0, or the index of the reason it raised."""
    out = []
    for pn in pns:
        try:
            call(pn)
            out.append(0)
        except ReplayError as exc:
            out.append(REPLAY_REASONS.index(exc.reason))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.integers(0, 400), max_size=40), max_size=6),
       st.sampled_from([1, 2, 7, 63, 64, 65, 200]))
def test_window_batch_calls_match_one_pn_at_a_time(batches, size) -> None:
    fast, model = ReplayWindow(size), ReplayWindow(size)
    for pns in batches:
        arr = np.array(pns, dtype=np.int64)
        before = (fast.highest, fast._bitmap)
        checked = fast.check_many(arr)
        assert (fast.highest, fast._bitmap) == before  # check changes nothing
        assert checked.tolist() == _codes(model.check, pns)
        want_rec = _codes(model.record, pns)
        assert fast.record_many(arr).tolist() == want_rec
        assert (fast.highest, fast._bitmap) == (model.highest, model._bitmap)


@pytest.mark.parametrize("size", [64, 100])
@pytest.mark.parametrize("bad", [[-1], [1 << 22], [5, 1 << 40]])
def test_window_batch_rejects_out_of_range_pns(size, bad) -> None:
    w = ReplayWindow(size)
    w.record(3)
    for call in (w.check_many, w.record_many):
        with pytest.raises(MalformedError):
            call(np.array(bad, dtype=np.int64))
    assert (w.highest, w._bitmap) == (3, 1 | 1 << 3)  # untouched
    with pytest.raises(MalformedError):
        w.record_many(np.array([[1]]))
    with pytest.raises(MalformedError):
        w.check_many(np.array([1.5]))


def test_sa_batch_replay_calls() -> None:
    sa = SecurityAssociation.start(CTXS[0], 1)
    tek, codes = sa.check_replay_many(0, np.array([1, 2, 2]), True)
    assert tek.eks == 0 and codes.tolist() == [0, 0, 0]
    assert sa.record_many(0, np.array([1, 2, 2]), True).tolist() == [0, 0, 2]
    assert sa.check_replay_many(0, np.array([2, 3]), True)[1].tolist() == [2, 0]
    assert sa.check_replay_many(0, np.array([2]), False)[1].tolist() == [0]  # other direction
    with pytest.raises(SecurityError) as err:
        sa.check_replay_many(3, np.array([1]), True)
    assert err.value.reason == "unknown_eks"


def test_early_reject_kinds_match_the_kernels() -> None:
    from stack import _burst

    assert mac._EARLY_REASONS == (
        (_burst.RX_EH, "unsupported_eh"),
        (_burst.RX_UNKNOWN_SA, "unknown_sa"),
        (_burst.RX_SHORT, "short_mpdu"),
    )
    assert (_burst.AGMH_LEN, _burst.EKS_PN_LEN, _burst.PROTECTED_OVERHEAD) == (
        mpdu.AGMH_LEN, mpdu.EKS_PN_LEN, mpdu.PROTECTED_OVERHEAD)
