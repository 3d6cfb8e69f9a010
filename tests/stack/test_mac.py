"""Burst data path: one seal_batch/open_batch per burst, mixed SAs, rejections, relay."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stack import mac, mpdu
from stack.errors import KeyExhaustedError, MalformedError
from stack.mac import TxMpdu, build_burst, open_burst
from stack.sa import SecurityAssociation
from tests.stack._ctx import vector_ctx

ENGINE = "reference"  # the numba engines are B's to test; the data path is engine-agnostic
STID = 0x2A5
CTX0 = vector_ctx(0)
CTX1 = vector_ctx(1)


def _pair(ctx=CTX0, said=1, **kw):
    return SecurityAssociation.start(ctx, said, **kw), SecurityAssociation.start(ctx, said, **kw)


class Link:
    """Twin SA sets for both ends of a link: FID 2 → SA 1 (ctx0), FID 3 → SA 2 (ctx1)."""

    def __init__(self) -> None:
        self.tx = {2: SecurityAssociation.start(CTX0, 1), 3: SecurityAssociation.start(CTX1, 2)}
        self.rx = {2: SecurityAssociation.start(CTX0, 1), 3: SecurityAssociation.start(CTX1, 2)}

    def lookup(self, stid: int, fid: int):
        return self.rx.get(fid) if stid == STID else None


def _mixed(link: Link, payloads: list[bytes], fids: list[int]) -> list[TxMpdu]:
    return [TxMpdu(f, p, link.tx.get(f)) for f, p in zip(fids, payloads, strict=True)]


def _open(link: Link, burst, **kw):
    return open_burst(STID, burst, uplink=True, lookup=link.lookup, engine=ENGINE, **kw)


# twin Link (same AKs) seals the same PNs to compare bytes
@pytest.mark.nonce_reuse_expected
def test_burst_equals_single_mpdu_codec() -> None:
    link = Link()
    twin = Link()
    payloads = [b"alpha", b"", b"\x00" * 100, b"ctl", bytes(range(256)) * 3]
    fids = [2, 3, 2, 0, 3]
    burst = build_burst(STID, _mixed(link, payloads, fids), uplink=True, engine=ENGINE)
    expect = b""
    for f, p in zip(fids, payloads, strict=True):
        if f == 0:
            expect += mpdu.encode_plain(0, p)
        else:
            expect += mpdu.protect(twin.tx[f], stid=STID, fid=f, uplink=True, payload=p)
    assert burst.dtype == np.uint8 and burst.ndim == 1
    assert burst.tobytes() == expect


def test_mixed_sas_roundtrip() -> None:
    link = Link()
    payloads = [b"alpha", b"", b"ctl", b"x" * 2034, b"beta"]
    fids = [2, 3, 0, 2, 3]
    burst = build_burst(STID, _mixed(link, payloads, fids), uplink=True, engine=ENGINE)
    rx = _open(link, burst)
    assert rx.rejected == Counter()
    assert rx.payloads() == payloads
    got = list(rx)
    assert [m.fid for m in got] == fids
    assert [m.protected for m in got] == [True, True, False, True, True]
    assert [m.said for m in got] == [1, 2, None, 1, 2]
    assert [m.pn for m in got] == [1, 1, None, 2, 2]
    assert rx.buf is burst  # opened in place


# a twin Link (same AKs) re-seals the genuine MPDU
@pytest.mark.nonce_reuse_expected
def test_forged_mpdu_in_the_middle_rejected_others_pass() -> None:
    link = Link()
    payloads = [b"first", b"second-secret", b"third", b"fourth"]
    fids = [2, 3, 2, 3]
    burst = build_burst(STID, _mixed(link, payloads, fids), uplink=True, engine=ENGINE)
    second = 5 + 13  # start of the 2nd MPDU
    burst[second + 5 + 3] ^= 0x40  # a ciphertext byte of "second-secret"
    stats: Counter[str] = Counter({"bad_icv": 1})
    rx = _open(link, burst, stats=stats)
    assert rx.payloads() == [b"first", b"third", b"fourth"]
    assert rx.rejected == Counter({"bad_icv": 1})
    assert stats == Counter({"bad_icv": 2})
    # the forged MPDU's plaintext region is zeroed: nothing unauthenticated escapes
    assert not burst[second + 5 : second + 5 + len(payloads[1])].any()
    # its PN was not recorded: the genuine MPDU (from a fresh build on a twin) is still accepted
    twin = Link()
    genuine = build_burst(STID, _mixed(twin, payloads, fids), uplink=True, engine=ENGINE)
    rx2 = _open(link, genuine[second : second + 5 + 13 + 8])
    assert rx2.payloads() == [b"second-secret"]


def test_replay_across_bursts_rejected() -> None:
    link = Link()
    burst = build_burst(
        STID,
        _mixed(link, [b"a", b"b", b"c"], [2, 3, 0]),
        uplink=True,
        engine=ENGINE,
    )
    copy = burst.copy()
    assert _open(link, burst).payloads() == [b"a", b"b", b"c"]
    again = _open(link, copy)
    assert again.rejected == Counter({"pn_replay": 2})
    assert again.payloads() == [b"c"]  # plain MPDUs carry no PN (checked by CMAC, if at all)
    nxt = build_burst(STID, _mixed(link, [b"d"], [2]), uplink=True, engine=ENGINE)
    assert _open(link, nxt).payloads() == [b"d"]


def test_duplicate_within_one_burst() -> None:
    link = Link()
    one = build_burst(STID, [TxMpdu(2, b"dup", link.tx[2])], uplink=True, engine=ENGINE)
    rx = _open(link, np.concatenate([one, one]))
    assert rx.payloads() == [b"dup"]
    assert rx.rejected == Counter({"pn_replay": 1})


# a second SA from the same AK crafts the unknown-SA MPDU
@pytest.mark.nonce_reuse_expected
def test_each_rejection_reason() -> None:
    link = Link()
    good = build_burst(STID, [TxMpdu(2, b"ok", link.tx[2])], uplink=True, engine=ENGINE)
    unknown_sa = build_burst(STID, [TxMpdu(9, b"no sa", _pair()[0])], uplink=True, engine=ENGINE)
    ctx_other = vector_ctx(1)
    wrong_eks = build_burst(
        STID,
        [TxMpdu(2, b"eks", SecurityAssociation.start(ctx_other, 1, counter_tek=2))],
        uplink=True,
        engine=ENGINE,
    )
    eh = good.copy()
    eh[0] |= 0x08
    short = np.frombuffer(mpdu.Agmh(2, False, 6).encode() + bytes(4), dtype=np.uint8)
    parts = [good, unknown_sa, wrong_eks, eh, short]
    rx = _open(link, np.concatenate(parts))
    assert rx.payloads() == [b"ok"]
    assert rx.rejected == Counter(
        {"unknown_sa": 1, "unknown_eks": 1, "unsupported_eh": 1, "short_mpdu": 1}
    )
    # wrong direction / other station: bad ICV
    link2 = Link()
    dl = build_burst(STID, [TxMpdu(2, b"dl", link2.tx[2])], uplink=False, engine=ENGINE)
    assert _open(link2, dl).rejected == Counter({"bad_icv": 1})


# a fresh Link (same AKs) builds the second burst
@pytest.mark.nonce_reuse_expected
def test_bad_length_stops_parsing_and_padding_is_ignored() -> None:
    link = Link()
    burst = build_burst(STID, _mixed(link, [b"one", b"two"], [2, 2]), uplink=True, engine=ENGINE)
    padded = np.concatenate([burst, np.zeros(40, np.uint8)])
    assert _open(link, padded).payloads() == [b"one", b"two"]
    link = Link()
    burst = build_burst(STID, _mixed(link, [b"one", b"two"], [2, 2]), uplink=True, engine=ENGINE)
    broken = burst.copy()
    broken[16 + 1] = 0xFF  # second AGMH Length runs past the end
    rx = _open(link, broken)
    assert rx.payloads() == [b"one"]
    assert rx.rejected == Counter({"bad_length": 1})
    rx = _open(Link(), np.concatenate([burst, np.array([0, 0, 7], np.uint8)]))
    assert rx.rejected == Counter({"bad_length": 1})
    assert _open(Link(), np.array([0x20], np.uint8)).rejected == Counter({"short_mpdu": 1})


def test_inputs_and_empty_burst() -> None:
    link = Link()
    assert build_burst(STID, [], uplink=True, engine=ENGINE).shape == (0,)
    rx = _open(link, b"")
    assert len(rx) == 0 and rx.n_rejected == 0
    burst = build_burst(STID, [TxMpdu(2, b"bytes in", link.tx[2])], uplink=True, engine=ENGINE)
    assert _open(link, burst.tobytes()).payloads() == [b"bytes in"]
    ro = build_burst(STID, [TxMpdu(2, b"ro", link.tx[2])], uplink=True, engine=ENGINE)
    ro.flags.writeable = False
    assert _open(link, ro).payloads() == [b"ro"]
    arr = np.frombuffer(b"numpy payload", dtype=np.uint8)
    burst = build_burst(STID, [TxMpdu(2, arr, link.tx[2])], uplink=True, engine=ENGINE)
    assert _open(link, burst).payloads() == [b"numpy payload"]
    with pytest.raises(MalformedError):
        open_burst(STID, "text", uplink=True, lookup=link.lookup)  # type: ignore[arg-type]


def test_bad_tx_input_consumes_no_pn() -> None:
    link = Link()
    for bad in (
        [TxMpdu(2, b"ok", link.tx[2]), TxMpdu(16, b"x", link.tx[2])],
        [TxMpdu(2, b"ok", link.tx[2]), TxMpdu(2, bytes(2035), link.tx[2])],
        [TxMpdu(0, bytes(2046))],
        [TxMpdu(2, "str", link.tx[2])],  # type: ignore[arg-type]
        [(2, b"tuple")],  # type: ignore[list-item]
    ):
        with pytest.raises(MalformedError):
            build_burst(STID, bad, uplink=True, engine=ENGINE)
    with pytest.raises(MalformedError):
        build_burst(0x1000, [], uplink=True, engine=ENGINE)
    assert link.tx[2].next_pn(True)[1] == 1


def test_exhausted_sa_raises() -> None:
    sa = SecurityAssociation(CTX0, 1, pn_last=1, update_threshold=1)
    sa.install(0)
    build_burst(STID, [TxMpdu(2, b"a", sa)], uplink=True, engine=ENGINE)
    with pytest.raises(KeyExhaustedError):
        build_burst(STID, [TxMpdu(2, b"b", sa)], uplink=True, engine=ENGINE)


# each hypothesis example builds a fresh Link from the same AKs
@pytest.mark.nonce_reuse_expected
@settings(max_examples=40)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=8),
    data=st.data(),
)
def test_single_forgery_rejects_exactly_that_mpdu(sizes: list[int], data: st.DataObject) -> None:
    link = Link()
    fids = [data.draw(st.sampled_from([2, 3])) for _ in sizes]
    payloads = [bytes([i % 251]) * s for i, s in enumerate(sizes)]
    burst = build_burst(STID, _mixed(link, payloads, fids), uplink=True, engine=ENGINE)
    victim = data.draw(st.integers(0, len(sizes) - 1))
    start = sum(s + 13 for s in sizes[:victim])
    # any bit of EKS/PN, ciphertext or ICV (flipping AGMH bits changes the framing instead)
    bit = data.draw(st.integers(2 * 8, (sizes[victim] + 13) * 8 - 1))
    burst[start + bit // 8] ^= 0x80 >> (bit % 8)
    rx = _open(link, burst)
    assert rx.payloads() == payloads[:victim] + payloads[victim + 1 :]
    assert rx.n_rejected == 1
    assert set(rx.rejected) <= {"bad_icv", "unknown_eks", "pn_replay", "pn_window"}


# -- relay encapsulation ---------------------------------------------------------------------


def test_relay_encapsulation_end_to_end() -> None:
    ams_stids = [0x101, 0x102, 0x103]
    inner = [(s, mpdu.encode_plain(2, f"data for {s:#x}".encode())) for s in ams_stids]
    inner.append((0x101, mpdu.encode_plain(0, b"ctl")))
    ars_stid = 0x010
    ars_tx, ars_rx = _pair(CTX1, 1)
    payloads = mac.pack_relay(inner)
    assert len(payloads) == 1
    burst = build_burst(
        ars_stid, [TxMpdu(mac.RELAY_FID, p, ars_tx) for p in payloads], uplink=True, engine=ENGINE
    )
    rx = open_burst(
        ars_stid,
        burst,
        uplink=True,
        lookup=lambda s, f: ars_rx if (s, f) == (ars_stid, mac.RELAY_FID) else None,
        engine=ENGINE,
    )
    assert [m.fid for m in rx] == [mac.RELAY_FID]
    assert mac.decapsulate_relay(rx.payload(0)) == inner


def test_pack_relay_splits() -> None:
    inner = [(7, mpdu.encode_plain(2, bytes(900))) for _ in range(5)]
    groups = mac.pack_relay(inner)
    assert [len(mac.decapsulate_relay(g)) for g in groups] == [2, 2, 1]
    assert [x for g in groups for x in mac.decapsulate_relay(g)] == inner
    with pytest.raises(MalformedError):
        mac.pack_relay([(7, mpdu.encode_plain(2, bytes(2040)))])


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01",
        b"\x00\x10\x20",  # truncated item
        b"\x00\x11" + mpdu.encode_plain(2, b"x"),  # reserved nibble set
        b"\x00\x10" + mpdu.encode_plain(2, b"xy")[:-1],  # inner Length past the end
        b"\x00\x10\x20\x01" + b"zz",  # inner Length < 2
    ],
)
def test_decapsulate_relay_rejects(payload: bytes) -> None:
    with pytest.raises(MalformedError) as e:
        mac.decapsulate_relay(payload)
    assert e.value.reason == "bad_relay"


def test_encapsulate_relay_rejects_bad_inner() -> None:
    with pytest.raises(MalformedError):
        mac.encapsulate_relay([(1, b"\x20\x09abc")])  # Length says 9, 5 bytes
    with pytest.raises(MalformedError):
        mac.encapsulate_relay([(0x1000, mpdu.encode_plain(2, b""))])


# twin Links (same AKs) seal the same PNs on two engines
@pytest.mark.nonce_reuse_expected
def test_default_engine_agrees_with_reference() -> None:
    """The data path does not depend on the engine: auto (numba if available) == reference."""
    a, b = Link(), Link()
    payloads = [bytes([i]) * (37 * i) for i in range(6)]
    fids = [2, 3, 0, 2, 3, 2]
    ref = build_burst(STID, _mixed(a, payloads, fids), uplink=True, engine=ENGINE)
    auto = build_burst(STID, _mixed(b, payloads, fids), uplink=True, engine=None)
    assert ref.tobytes() == auto.tobytes()
    rx = open_burst(STID, auto, uplink=True, lookup=b.lookup, engine=None)
    assert rx.payloads() == payloads


# a fresh Link (same AKs) per payload form, same bytes expected
@pytest.mark.nonce_reuse_expected
def test_payload_forms_give_the_same_burst() -> None:
    """bytes, bytearray, memoryview (any format), strided uint8 arrays and numpy FIDs all work."""
    data = bytes(range(40))
    forms = [
        data,
        bytearray(data),
        memoryview(data),
        memoryview(data).cast("I"),  # 4-byte items: still 40 payload bytes
        np.frombuffer(data + data, dtype=np.uint8).reshape(2, 40)[0],
        np.repeat(np.frombuffer(data, dtype=np.uint8), 2)[::2],  # non-contiguous view
    ]
    expect = None
    for form in forms:
        link = Link()
        burst = build_burst(
            STID, [TxMpdu(np.uint8(2), form, link.tx[2])], uplink=True, engine=ENGINE
        )
        expect = burst.tobytes() if expect is None else expect
        assert burst.tobytes() == expect, type(form)
        assert _open(link, burst).payloads() == [data]
