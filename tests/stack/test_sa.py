"""Security associations: TEK pair by EKS, PN rules, replay window, update threshold, lifetimes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack.errors import (
    KeyExhaustedError,
    MalformedError,
    ProtocolError,
    ReplayError,
    SecurityError,
    UnknownKeyError,
)
from stack.sa import (
    DEFAULT_REPLAY_WINDOW,
    PN_LAST,
    PN_MAX,
    PN_UPDATE_THRESHOLD,
    ReplayWindow,
    SecurityAssociation,
)
from tests.stack._ctx import secrets_of, vector_ctx

CTX = vector_ctx(0)


def test_defaults_match_digest() -> None:
    sa = SecurityAssociation(CTX, 1)
    assert sa.replay_window == DEFAULT_REPLAY_WINDOW == 64
    assert sa.update_threshold == PN_UPDATE_THRESHOLD == 1 << 21
    assert sa.pn_last == PN_LAST == (1 << 22) - 2
    assert PN_MAX == (1 << 22) - 1
    assert sa.teks == ()
    assert sa.update_needed()


def test_start_installs_pair_and_tx_uses_oldest() -> None:
    sa = SecurityAssociation.start(CTX, 1)
    assert [(t.counter_tek, t.eks) for t in sa.teks] == [(0, 0), (1, 1)]
    assert sa.teks[0].key == CTX.tek(1, 0)
    assert sa.teks[1].key == CTX.tek(1, 1)
    tek, pn = sa.next_pn(uplink=True)
    assert (tek.counter_tek, pn) == (0, 1)
    assert sa.next_pn(uplink=True)[1] == 2
    assert sa.next_pn(uplink=False)[1] == 1  # directions independent
    assert sa.tx_tek(False).counter_tek == 0
    assert not sa.update_needed()


def test_tek_lookup_by_eks() -> None:
    sa = SecurityAssociation.start(CTX, 1)
    assert sa.tek_for_eks(1).counter_tek == 1
    with pytest.raises(UnknownKeyError) as e:
        sa.tek_for_eks(2)
    assert e.value.reason == "unknown_eks"
    with pytest.raises(MalformedError):
        sa.tek_for_eks(4)


def test_update_threshold_and_hard_stop() -> None:
    sa = SecurityAssociation(CTX, 7, update_threshold=3, pn_last=5)
    sa.install(0)
    sa.install(1)
    pns = []
    for _ in range(5):
        tek, pn = sa.next_pn(True)
        assert tek.counter_tek == 0
        pns.append(pn)
        assert sa.update_needed() == (pn >= 3)
    assert pns == [1, 2, 3, 4, 5]
    # TEK 0 exhausted for UL: the sender moves to TEK 1, and an update is still needed
    tek, pn = sa.next_pn(True)
    assert (tek.counter_tek, pn) == (1, 1)
    assert sa.update_needed()
    for _ in range(4):
        sa.next_pn(True)
    with pytest.raises(KeyExhaustedError) as e:
        sa.next_pn(True)
    assert e.value.reason == "no_usable_tek"
    # DL still has PNs under TEK 0
    assert sa.next_pn(False) == (sa.teks[0], 1)


def test_tek_update_moves_tx_and_never_reuses_pn() -> None:
    sa = SecurityAssociation(CTX, 1, update_threshold=2, pn_last=100)
    sa.install(0)
    sa.install(1)
    used: set[tuple[int, bool, int]] = set()
    for _ in range(2):
        tek, pn = sa.next_pn(True)
        used.add((tek.counter_tek, True, pn))
    assert sa.update_needed()
    assert sa.install(1) is sa.teks[1]  # re-installing a live TEK changes nothing
    tek, pn = sa.next_pn(True)
    assert (tek.counter_tek, pn) == (0, 3)
    used.add((0, True, 3))
    new = sa.install(2)  # TEK-Reply: COUNTER_TEK 2 retires 0
    assert (new.counter_tek, new.eks) == (2, 2)
    assert [t.counter_tek for t in sa.teks] == [1, 2]
    assert not sa.update_needed()
    for _ in range(3):
        tek, pn = sa.next_pn(True)
        key = (tek.counter_tek, True, pn)
        assert key not in used
        used.add(key)
    assert {k[0] for k in used} == {0, 1}
    # a retired (or older) COUNTER_TEK can never come back: its PNs would repeat
    for stale in (0,):
        with pytest.raises(ProtocolError) as e:
            sa.install(stale)
        assert e.value.reason == "stale_counter_tek"
    # EKS must stay unambiguous: 6 ≡ 2 (mod 4) collides with live TEK 2 once 1 is retired
    with pytest.raises(ProtocolError) as e:
        sa.install(6)
    assert e.value.reason == "eks_collision"
    assert [t.counter_tek for t in sa.teks] == [1, 2]
    sa.install(3)
    assert [t.counter_tek for t in sa.teks] == [2, 3]
    assert sa.highest_counter_tek == 3


def test_reinstall_live_tek_keeps_pn_and_window() -> None:
    sa = SecurityAssociation.start(CTX, 1)
    sa.next_pn(False)
    sa.check_and_record(0, 5, True)
    sa.install(0)
    assert sa.next_pn(False)[1] == 2
    with pytest.raises(ReplayError):
        sa.check_and_record(0, 5, True)


def test_replay_window_rules() -> None:
    sa = SecurityAssociation.start(CTX, 1)
    sa.check_and_record(0, 1, True)
    with pytest.raises(ReplayError) as e:
        sa.check_and_record(0, 1, True)
    assert e.value.reason == "pn_replay"
    sa.check_and_record(0, 100, True)
    sa.check_and_record(0, 50, True)  # late but inside the window (100-63 .. 100)
    sa.check_and_record(0, 37, True)  # oldest PN inside a 64 window
    with pytest.raises(ReplayError) as e:
        sa.check_and_record(0, 36, True)
    assert e.value.reason == "pn_window"
    with pytest.raises(ReplayError):
        sa.check_and_record(0, 0, True)  # PN 0 is never sent
    # other direction and other TEK have their own windows
    sa.check_and_record(0, 1, False)
    sa.check_and_record(1, 1, True)
    # check_replay does not record
    sa.check_replay(0, 101, True)
    sa.check_and_record(0, 101, True)


@given(st.lists(st.integers(0, 300), max_size=200), st.integers(1, 80))
def test_replay_window_matches_model(pns: list[int], size: int) -> None:
    w = ReplayWindow(size)
    seen: set[int] = {0}
    highest = 0
    for pn in pns:
        ok = pn not in seen and pn > highest - size
        try:
            w.record(pn)
            accepted = True
        except ReplayError as e:
            accepted = False
            assert e.reason in ("pn_replay", "pn_window")
        assert accepted == ok, (pn, highest)
        if ok:
            seen.add(pn)
            highest = max(highest, pn)
        assert w.highest == highest


def test_lifetimes_against_caller_time() -> None:
    sa = SecurityAssociation.start(CTX, 1, now=1000.0, lifetime=100.0)
    assert not sa.update_needed(now=1010.0)
    assert sa.update_needed(now=1050.0)  # half the lifetime
    assert sa.next_pn(True, now=1099.0)[1] == 1
    with pytest.raises(KeyExhaustedError) as e:
        sa.next_pn(True, now=1100.0)
    assert e.value.reason == "no_usable_tek"
    with pytest.raises(KeyExhaustedError) as e:
        sa.check_and_record(0, 1, False, now=1100.0)
    assert e.value.reason == "tek_expired"
    with pytest.raises(ProtocolError) as e:
        sa.next_pn(True)  # lifetime set but no time given
    assert e.value.reason == "now_required"
    # a fresher TEK with its own lifetime takes over
    sa.install(2, now=1100.0, lifetime=100.0)
    assert sa.tx_tek(True, now=1150.0).counter_tek == 2
    with pytest.raises(ProtocolError):
        sa.install(3, lifetime=5.0)


def test_bad_construction() -> None:
    with pytest.raises(MalformedError):
        SecurityAssociation(CTX, 256)
    with pytest.raises(MalformedError):
        SecurityAssociation(b"\x00" * 20, 1)  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        SecurityAssociation(CTX, 1, replay_window=0)
    with pytest.raises(MalformedError):
        SecurityAssociation(CTX, 1, pn_last=PN_MAX)
    with pytest.raises(MalformedError):
        SecurityAssociation(CTX, 1).install(1 << 16)
    with pytest.raises(MalformedError):
        SecurityAssociation.start(CTX, 1).check_and_record(0, PN_MAX + 1, True)


def test_reprs_and_errors_hide_keys() -> None:
    sa = SecurityAssociation.start(CTX, 1)
    texts = [repr(sa), str(sa), repr(sa.teks), str(sa.teks[0])]
    for call in (
        lambda: sa.tek_for_eks(3),
        lambda: sa.install(0) and sa.install(5),
        lambda: (sa.check_and_record(0, 1, True), sa.check_and_record(0, 1, True)),
    ):
        with pytest.raises(SecurityError) as e:
            call()
        texts += [str(e.value), repr(e.value)]
    text = " ".join(texts)
    assert CTX.akid.hex() in repr(sa)
    for s in secrets_of(CTX):
        assert s not in text


def test_retired_tek_receivable_during_grace_only() -> None:
    tx = SecurityAssociation.start(CTX, 1, now=0.0)
    rx = SecurityAssociation.start(CTX, 1, now=0.0)
    tek, pn = tx.next_pn(True, now=1.0)
    assert pn == 1
    assert tek.counter_tek == 0
    rx.check_and_record(0, 1, True, now=1.0)
    rx.install(2, now=10.0, rx_grace=2.0)  # ABS answers TEK-Request; AMS still sends on TEK 0
    assert rx.retired_tek is not None and rx.retired_tek.counter_tek == 0
    assert [t.counter_tek for t in rx.teks] == [1, 2]
    assert rx.check_and_record(0, 2, True, now=11.0).counter_tek == 0  # in flight: accepted
    with pytest.raises(ReplayError):
        rx.check_and_record(0, 1, True, now=11.0)  # its replay window carried on
    with pytest.raises(UnknownKeyError):
        rx.check_and_record(0, 3, True, now=12.5)  # grace over
    with pytest.raises(UnknownKeyError):
        rx.check_and_record(0, 3, True)  # no time given: grace cannot be confirmed
    # never used to send
    assert rx.next_pn(True, now=11.0)[0].counter_tek == 1
    # a plain install retires at once
    rx.install(3, now=20.0)
    assert rx.retired_tek is None
    with pytest.raises(UnknownKeyError):
        rx.check_and_record(1, 1, True, now=20.0)
    with pytest.raises(ProtocolError):
        rx.install(4, rx_grace=1.0)
    with pytest.raises(MalformedError):
        rx.install(4, now=1.0, rx_grace=-1.0)


# each hypothesis example starts a fresh SA from CTX (within one, the test asserts no repeat)
@pytest.mark.nonce_reuse_expected
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.booleans()),
            st.tuples(st.just("install"), st.integers(-2, 5)),
        ),
        max_size=80,
    )
)
def test_no_tek_pn_pair_ever_repeats(ops: list[tuple[str, object]]) -> None:
    """Whatever the sequence of sends and (re)installs, no {TEK, direction, PN} repeats."""
    sa = SecurityAssociation(CTX, 3, update_threshold=2, pn_last=4)
    sa.install(0)
    sa.install(1)
    used: set[tuple[bytes, bool, int]] = set()
    for op, arg in ops:
        if op == "send":
            try:
                tek, pn = sa.next_pn(bool(arg))
            except KeyExhaustedError:
                continue
            key = (tek.key, bool(arg), pn)
            assert key not in used
            assert 1 <= pn <= 4
            used.add(key)
        else:
            target = (sa.highest_counter_tek or 0) + int(arg)  # type: ignore[call-overload]
            with contextlib.suppress(ProtocolError):
                sa.install(max(target, 0))
        assert len({t.eks for t in sa.teks}) == len(sa.teks) <= 2


def test_a_tek_with_its_cipher_built_still_pickles_and_copies():
    """Tek.cipher (cryptography's AES-CCM, built once per TEK) is not picklable; a TEK is
    pickled and copied without it (the role fuzzer snapshots whole roles) and rebuilds it."""
    import copy
    import pickle

    from stack.sa import Tek

    tek = Tek(1, 3, bytes(range(16)))
    sealed = tek.cipher.encrypt(bytes(13), b"payload", None)
    for again in (pickle.loads(pickle.dumps(tek)), copy.deepcopy(tek)):
        assert again == tek and "cipher" not in again.__dict__
        assert again.cipher.decrypt(bytes(13), sealed, None) == b"payload"
