"""Hostile input, loss and secrecy (issue 4, "Faults and hostile input"): every rejection path is
rejected, counted by reason and never acted on; flows complete under 30 % loss both ways; no key
value ever shows in events, reprs or logs."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from stack.crypto import wrap_key_padded
from stack.pkm import messages as m
from stack.roles import (
    AkTransferred,
    DataReceived,
    HandoverComplete,
    KeysInstalled,
    Lifetimes,
    Rejected,
    SecurityMode,
)
from stack.roles.framing import FID_CONTROL, control_mpdu, mpdu_fid, split_frame
from tests.roles.harness import ABS, AMS, ARS1, ARS2, PSK, enter_all, same_keys

D, C = SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED


def snapshot(*roles):
    """What "acting on" input would change: keys of every link, serving state, queued output."""
    out = []
    for r in roles:
        infos = [r.key_info(p) for p in (None, ABS, ARS1, ARS2, AMS)] if hasattr(r, "serves") \
            else [r.key_info(p) for p in (ABS, ARS1, ARS2, AMS)]
        out.append((infos, getattr(r, "serving", None), r.next_deadline()))
    return out


def success_events(events):
    return [e for e in events if isinstance(e, (KeysInstalled, AkTransferred, HandoverComplete,
                                                DataReceived))]


def control_frames(net, src, dst, code):
    """Captured frames src -> dst whose (single) MPDU is a control message with ``code``."""
    out = []
    for _t, s, d, f in net.log:
        if (s, d) != (src, dst):
            continue
        for mp in split_frame(f):
            if mpdu_fid(mp) == FID_CONTROL and mp[2] == code:
                out.append(mp)
    return out


@pytest.fixture
def cell():
    net, abs_, ars1, ars2, ams = enter_all(D)
    net.start_recording()
    return net, abs_, ars1, ars2, ams


def assert_rejected_only(role, reason, link, before_state, roles, n=1):
    assert role.rejections[reason] == n, dict(role.rejections)
    assert role.rejections_by_link[(link, reason)] == n
    evs = role.events()
    assert [e.reason for e in evs if isinstance(e, Rejected)] == [reason] * n
    assert not success_events(evs)
    assert snapshot(*roles) == before_state


# -- AK Transfer -------------------------------------------------------------------------------

def _predistribute(net, abs_):
    abs_.prepare_handover(AMS, [ARS2], net.now)
    net.settle(1.0)
    return control_frames(net, ABS, ARS2, m.AkTransfer.CODE)[-1]


def test_ak_transfer_replayed_is_rejected(cell):
    net, abs_, _ars1, ars2, _ams = cell
    akt = _predistribute(net, abs_)
    ars2.events()
    before = snapshot(ars2)
    ars2.receive(ABS, akt, net.now)
    assert ars2.frames_to_send(net.now) == []  # not even an ACK
    assert_rejected_only(ars2, "cmac_replay", ABS, before, [ars2])


def test_ak_transfer_with_bad_cmac_is_rejected(cell):
    net, abs_, _ars1, ars2, _ams = cell
    akt = bytearray(_predistribute(net, abs_))
    ars2.events()
    before = snapshot(ars2)
    akt[-1] ^= 0x01                     # CMAC value
    ars2.receive(ABS, bytes(akt), net.now)
    akt[-1] ^= 0x01
    akt[30] ^= 0x80                     # a byte of the wrapped AK, CMAC left as it was
    ars2.receive(ABS, bytes(akt), net.now)
    assert ars2.frames_to_send(net.now) == []
    assert_rejected_only(ars2, "bad_cmac", ABS, before, [ars2], n=2)


def test_ak_transfer_not_from_the_abs_is_rejected(cell):
    net, abs_, ars1, ars2, _ams = cell
    akt = _predistribute(net, abs_)
    ars2.events()
    ars1.events()
    before = snapshot(ars1, ars2)
    ars2.receive(AMS, akt, net.now)     # an AMS (or anyone on the access side) sends it
    ars2.receive(ARS1, akt, net.now)    # another RS sends it
    assert ars2.rejections["not_from_abs"] == 2
    assert ars2.rejections_by_link[(AMS, "not_from_abs")] == 1
    assert ars2.rejections_by_link[(ARS1, "not_from_abs")] == 1
    assert not success_events(ars2.events())
    assert snapshot(ars1, ars2) == before and ars2.frames_to_send(net.now) == []


def test_ak_transfer_for_an_unknown_ams_is_refused(cell):
    net, abs_, _ars1, ars2, _ams = cell
    ars2.events()
    before = snapshot(ars2)
    # correctly signed by the ABS, CMAC_KEY_COUNT 0 (an AK from EAP), but the AMS never
    # entered through ARS-2
    relay = abs_._contexts[ARS2].link
    ams_ctx = abs_._contexts[AMS].link.ctx
    msg = m.AkTransfer(transaction_id=99, ams_stid=abs_._contexts[AMS].stid,
                       amsid_star=ams_ctx.amsid_star, akid=ams_ctx.akid, ak_sn=ams_ctx.pmk_sn,
                       ak_lifetime=3600, cmac_key_count=0,
                       sa_context=(m.SaContext(said=1, counter_tek=0, eks=0, tek_lifetime=600),),
                       wrapped_ak=wrap_key_padded(relay.ctx.kek, ams_ctx.ak))
    ars2.receive(ABS, control_mpdu(relay.sign(msg)), net.now)
    out = ars2.frames_to_send(net.now)
    # only a negative ACK goes back; nothing else
    assert len(out) == 1 and out[0][0] == ABS
    ack = m.AkTransferAck.decode(abs_._contexts[ARS2].link.verify(split_frame(out[0][1])[0][2:]))
    assert (ack.transaction_id, ack.status) == (99, m.AkStatus.UNKNOWN_AMS)
    assert ars2.rejections["unknown_ams"] == 1
    assert not ars2.serves(AMS) and ars2.key_info(AMS) is None
    assert not success_events(ars2.events())
    assert [s[0][:1] for s in snapshot(ars2)] == [s[0][:1] for s in before]


def test_ak_transfer_with_a_key_wrapped_for_another_rs_is_refused(cell):
    net, abs_, _ars1, ars2, _ams = cell
    relay2 = abs_._contexts[ARS2].link
    relay1 = abs_._contexts[ARS1].link
    ams_ctx = abs_._contexts[AMS].link.ctx
    msg = m.AkTransfer(transaction_id=98, ams_stid=abs_._contexts[AMS].stid,
                       amsid_star=ams_ctx.amsid_star, akid=ams_ctx.akid, ak_sn=ams_ctx.pmk_sn,
                       ak_lifetime=3600, cmac_key_count=5,
                       sa_context=(m.SaContext(said=1, counter_tek=0, eks=0, tek_lifetime=600),),
                       wrapped_ak=wrap_key_padded(relay1.ctx.kek, ams_ctx.ak))  # ARS-1's KEK
    ars2.receive(ABS, control_mpdu(relay2.sign(msg)), net.now)
    assert ars2.rejections["bad_ak"] == 1 and ars2.key_info(AMS) is None
    assert not success_events(ars2.events())


# -- key agreement -----------------------------------------------------------------------------

def _entry_with_tamper(tamper_fn):
    """AMS entry directly at the ABS, with a tamper hook on the wire."""
    from tests.roles.harness import Net, build
    abs_, ars1, ars2, ams = build(D)
    net = Net({ABS: abs_, ARS1: ars1, ARS2: ars2, AMS: ams})
    net.tamper = lambda s, d, f: tamper_fn(net, abs_, ams, s, d, f)
    ams.attach(ABS, 0.0)
    net.settle(10.0)
    return net, abs_, ams


def _once(fn):
    done = []

    def wrapper(net, abs_, ams, s, d, frame):
        if done:
            return frame
        out = []
        for f in split_frame(frame):  # the MPDUs of the frame, one by one
            g = fn(net, abs_, ams, s, d, f) if mpdu_fid(f) == FID_CONTROL and not done else f
            if g is not f:
                done.append(True)
            out.append(g)
        return b"".join(out)
    return wrapper


@pytest.mark.parametrize("field,reason", [("nonce_abs", "bad_nonce"), ("akid", "bad_akid")])
def test_key_agreement_msg2_with_wrong_nonce_or_akid(field, reason):
    seen: dict = {}

    @_once
    def forge(net, abs_, ams, s, d, f):
        if (s, d) == (AMS, ABS) and f[2] == m.KeyAgreementMsg2.CODE:
            link = ams._new_link
            msg = m.KeyAgreementMsg2.decode(f[2:-11])
            bad = replace(msg, **{field: bytes(8)})
            seen["abs_before"] = (abs_.context(AMS), abs_.key_info(AMS))
            return control_mpdu(link.sign(bad))  # correctly signed, wrong content
        return f

    _net, abs_, ams = _entry_with_tamper(forge)
    assert seen["abs_before"] == (None, None)
    assert abs_.rejections[reason] == 1 and abs_.rejections_by_link[(AMS, reason)] == 1
    # the forged MSG#2 was not acted on; the genuine retransmission completed the agreement
    assert same_keys(ams.key_info(), abs_.key_info(AMS))
    assert len([e for e in abs_.events() if isinstance(e, KeysInstalled)]) == 1


@pytest.mark.parametrize("code,field,reason", [
    (m.KeyAgreementMsg3.CODE, "nonce_ams", "bad_nonce"),
    (m.KeyAgreementMsg3.CODE, "akid", "bad_akid"),
    (m.KeyAgreementMsg1.CODE, "akid", "bad_akid"),
])
def test_key_agreement_from_abs_with_wrong_nonce_or_akid(code, field, reason):
    cls = m.message_class(code)
    seen: dict = {}

    @_once
    def forge(net, abs_, ams, s, d, f):
        if (s, d) == (ABS, AMS) and f[2] == code:
            attempts = list(abs_._entries_of.get(AMS, {}).values())
            link = attempts[-1].link or attempts[-1].candidates[0] if attempts \
                else abs_.context(AMS).link
            msg = cls.decode(f[2:-11])
            seen["ams_before"] = ams.key_info()
            return control_mpdu(link.sign(replace(msg, **{field: bytes(8)})))
        return f

    _net, abs_, ams = _entry_with_tamper(forge)
    assert seen["ams_before"] is None
    assert ams.rejections[reason] == 1 and ams.rejections_by_link[(ABS, reason)] == 1
    assert same_keys(ams.key_info(), abs_.key_info(AMS))
    assert len([e for e in ams.events() if isinstance(e, KeysInstalled)]) == 1


# -- data ---------------------------------------------------------------------------------------

def test_data_under_unknown_eks_is_rejected(cell):
    net, _abs, ars1, _ars2, ams = cell
    ams.send_data(ABS, b"probe", net.now)
    [(dst, frame)] = ams.frames_to_send(net.now)
    assert dst == ARS1
    forged = bytearray(frame)
    forged[2] = (forged[2] & 0x3F) | (2 << 6)  # EKS 2: live counters are 0 and 1
    ars1.events()
    before = snapshot(ars1)
    ars1.receive(AMS, bytes(forged), net.now)
    ars1.receive(AMS, bytes(forged), net.now)
    # nothing forwarded; the only reaction is one PKMv3 TEK-Invalid (rate-limited) to the AMS
    [(dst, out)] = ars1.frames_to_send(net.now)
    assert dst == AMS and mpdu_fid(out) == FID_CONTROL and out[2] == m.TekInvalid.CODE
    assert_rejected_only(ars1, "unknown_eks", AMS, before, [ars1], n=2)
    ars1.receive(AMS, frame, net.now)  # the genuine one still goes through
    [(dst, _relay)] = ars1.frames_to_send(net.now)
    assert dst == ABS
    # The AMS verifies the TEK-Invalid, but its own last TEK update was confirmed: a TEK-Invalid
    # is then no evidence it is out of step (anyone can provoke one with a forged 16-byte
    # frame), so no TEK update starts (issue 17, finding 6).
    ams.receive(ARS1, out, net.now)
    assert ams.frames_to_send(net.now) == []
    assert ams.rejections == {"tek_in_sync": 1}


def test_relay_link_keys_on_the_access_link_are_rejected(cell):
    net, abs_, _ars1, _ars2, ams = cell
    # the ABS's data to the ARS itself (relay-link SA, STID of the ARS) shown to the AMS
    abs_.send_data(ARS1, b"for the ARS", net.now)
    [(dst, relay_frame)] = abs_.frames_to_send(net.now)
    assert dst == ARS1
    ams.events()
    before = snapshot(ams)
    ams.receive(ARS1, relay_frame, net.now)
    assert ams.rejections["bad_icv"] == 1
    # an encapsulating relay MPDU shown to the AMS
    abs_.send_data(AMS, b"for the AMS", net.now)
    [(_d, relay_mpdu)] = abs_.frames_to_send(net.now)
    ams.receive(ARS1, relay_mpdu, net.now)
    assert ams.rejections["bad_fid"] == 1
    assert not success_events(ams.events()) and snapshot(ams) == before


def test_access_link_keys_on_the_relay_link_are_rejected(cell):
    net, abs_, _ars1, _ars2, ams = cell
    ams.send_data(ABS, b"access hop", net.now)
    [(_d, access_frame)] = ams.frames_to_send(net.now)
    abs_.events()
    before = snapshot(abs_)
    # as if the ARS had sent it on the relay link: refused before or by the ICV check (the
    # relay SA's replay window may already have seen that PN)
    abs_.receive(ARS1, access_frame, net.now)
    assert sum(abs_.rejections.values()) == 1
    assert set(abs_.rejections) <= {"bad_icv", "pn_replay", "pn_window"}
    assert not success_events(abs_.events()) and snapshot(abs_) == before
    # and the AMS cannot talk to the ABS directly with its access-link keys
    abs_.receive(AMS, access_frame, net.now)
    assert abs_.rejections_by_link[(AMS, "no_keys")] == 1
    assert not success_events(abs_.events()) and snapshot(abs_) == before


def test_garbage_frames_are_counted_not_raised(cell):
    net, abs_, ars1, _ars2, ams = cell
    for role, src in ((abs_, ARS1), (ars1, ABS), (ars1, AMS), (ams, ARS1)):
        role.events()
        before = snapshot(role)
        n0 = sum(role.rejections.values())
        for junk in (b"", b"\x00", b"\x00\x05abc", b"\x00\x04\xee\x01", b"\xf0\x02",
                     control_mpdu(b"\xb0\x00")):
            role.receive(src, junk, net.now)
        assert sum(role.rejections.values()) - n0 == 6
        assert not success_events(role.events()) and snapshot(role) == before


# -- loss ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,predistribute", [(D, True), (D, False), (C, False)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_handover_under_30_percent_loss(mode, predistribute, seed):
    net, abs_, ars1, ars2, ams = enter_all(mode, loss=0.3, seed=seed)
    assert ams.key_info() is not None
    if predistribute:
        abs_.prepare_handover(AMS, [ARS2], net.now)
        net.settle(5.0)
    ams.handover(ARS2, net.now)
    net.settle(15.0)
    new = ams.key_info()
    assert ams.serving == ARS2 and new.cmac_key_count == 1
    holder = ars2 if mode == D else abs_
    assert same_keys(new, holder.key_info(AMS))
    assert abs_.via_of(AMS) == ARS2
    assert not ars1.serves(AMS)
    assert abs_.rejections["bad_cmac"] == ars2.rejections["bad_cmac"] == 0


@pytest.mark.parametrize("mode", [D, C])
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_data_and_tek_refresh_under_30_percent_loss(mode, seed):
    life = Lifetimes(pn_refresh=12)
    net, abs_, ars1, _ars2, ams = enter_all(mode, loss=0.3, seed=seed, lifetimes=life)
    net.start_recording()
    n = 80
    for i in range(n):
        ams.send_data(ABS, b"u%d" % i, net.now)
        abs_.send_data(AMS, b"d%d" % i, net.now)
        net.settle(0.02)
    net.settle(10.0)
    up = [e.payload for e in net.of(ABS, DataReceived, src=AMS)]
    dn = [e.payload for e in net.of(AMS, DataReceived)]
    for got, tag in ((up, b"u"), (dn, b"d")):
        idx = [int(p[1:]) for p in got]
        assert all(p.startswith(tag) for p in got)
        assert idx == sorted(set(idx))           # no duplicates, in order
        assert len(idx) >= 0.3 * n               # two lossy hops: ~49 % expected
    holder = ars1 if mode == D else abs_
    ki = ams.key_info()
    assert ki.counter_teks[0] >= 1               # refreshed despite the loss
    assert same_keys(ki, holder.key_info(AMS))
    assert same_keys(ars1.key_info(), abs_.key_info(ARS1))
    for r in (abs_, ars1, ams):                  # loss never looks like an attack
        assert not {"bad_icv", "bad_cmac", "pn_replay", "unknown_eks"} & set(r.rejections)


# -- secrecy ------------------------------------------------------------------------------------

def _secrets(abs_, ars1, ars2, ams):
    keys = [*PSK.values()]
    links = []
    for sub in abs_._contexts.values():
        links += [sub.link, *sub.ho_links.values()]
        keys += [sub.pmk] if sub.pmk else []
    for e in abs_._entries.values():
        links += [e.link, *e.candidates]
        keys += [e.pmk] if e.pmk else []
    links += [ars1.link, ars2.link, ams.link, *ars1._ams_links.values(), *ars2._ams_links.values()]
    keys += [ams._pmk]
    for link in filter(None, links):
        c = link.ctx
        keys += [c.ak, c.cmac_key_u, c.cmac_key_d, c.kek, *(t.key for t in link.sa.teks)]
    return [k for k in keys if k]


def test_no_key_values_in_events_reprs_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    net, abs_, ars1, ars2, ams = enter_all(D)
    net.start_recording()
    abs_.prepare_handover(AMS, [ARS2], net.now)
    net.settle(2.0)
    ams.send_data(ABS, b"x", net.now)
    ams.handover(ARS2, net.now)
    net.settle(3.0)
    ams.receive(ARS2, b"\x00\x05abc", net.now)  # a rejection with detail text
    net.drain()
    texts = [repr(e) for evs in net.events.values() for e in evs]
    texts += [str(e) for evs in net.events.values() for e in evs]
    texts += [repr(x) for x in (abs_, ars1, ars2, ams, abs_.config, ams.config, ars1.config)]
    texts += [repr(x) for x in (ams.link, ars1.link, ams.key_info(), ars2.key_info(AMS))]
    texts += [r.getMessage() for r in caplog.records]
    texts += [repr(ams.link.sa), repr(ams.link.ctx)]
    blob = "\n".join(texts)
    assert "KeysInstalled" in blob and ams.key_info().akid in blob
    secrets = _secrets(abs_, ars1, ars2, ams)
    assert len(secrets) > 20
    for k in secrets:
        assert k.hex() not in blob and repr(k) not in blob and k.hex()[:16] not in blob
