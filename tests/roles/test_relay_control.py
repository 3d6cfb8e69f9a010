"""Relay management inside the relay SA (``encrypt_relay_control``, digest §6.3: AK Transfer
"additionally travels AES-CCM-encrypted under the ARS's primary-SA TEK")."""

from __future__ import annotations

import pytest

from stack.crypto import wrap_key_padded
from stack.pkm import messages as m
from stack.roles import AkTransferred, ContextReleased, DataReceived, Rejected
from stack.roles.framing import (
    FID_CONTROL,
    RELAY_MANAGEMENT_CODES,
    control_mpdu,
    mpdu_fid,
    split_frame,
)
from tests.roles.harness import ABS, AMS, ARS1, ARS2, enter_all, same_keys

RELAY_LINKS = {(ABS, ARS1), (ARS1, ABS), (ABS, ARS2), (ARS2, ABS)}


def plain_management(net):
    """Codes of relay-management messages seen in clear on the ABS<->ARS links."""
    return [mp[2] for _t, s, d, f in net.log if (s, d) in RELAY_LINKS
            for mp in split_frame(f) if mpdu_fid(mp) == FID_CONTROL
            and mp[2] in RELAY_MANAGEMENT_CODES]


@pytest.mark.parametrize("predistribute", [True, False])
@pytest.mark.parametrize("encrypt", [True, False])
def test_entry_and_handover_with_relay_management_sealed(encrypt, predistribute):
    net, abs_, ars1, ars2, ams = enter_all(encrypt_relay_control=encrypt)
    net.start_recording()
    if predistribute:
        abs_.prepare_handover(AMS, [ARS2], net.now)
        net.settle(2.0)
    ams.handover(ARS2, net.now)
    net.settle(5.0)
    assert same_keys(ams.key_info(), ars2.key_info(AMS))
    assert net.of(ABS, AkTransferred, ars=ARS2, cmac_key_count=1, status=0)
    assert net.of(ARS1, ContextReleased, ams=AMS) and not ars1.serves(AMS)
    ams.send_data(ABS, b"up", net.now)
    net.settle(1.0)
    assert [e.payload for e in net.of(ABS, DataReceived, src=AMS)] == [b"up"]
    seen = set(plain_management(net))
    if encrypt:  # AK Transfer, its ACK, AK Request and Context Release never in clear
        assert not seen
        assert not any(isinstance(e, Rejected) for evs in net.events.values() for e in evs)
    else:
        want = {m.AkTransfer.CODE, m.AkTransferAck.CODE, m.ContextRelease.CODE,
                m.ContextReleaseAck.CODE} | (set() if predistribute else {m.AkRequest.CODE})
        assert seen == want


def test_entry_through_ars_with_sealed_ak_transfer_under_loss():
    _net, abs_, ars1, _ars2, ams = enter_all(encrypt_relay_control=True, loss=0.3, seed=5)
    assert same_keys(ams.key_info(), ars1.key_info(AMS))
    assert abs_.key_info(AMS).akid == ams.key_info().akid


def test_clear_relay_management_is_refused_when_sealing_is_required():
    net, abs_, _ars1, ars2, _ams = enter_all(encrypt_relay_control=True)
    relay = abs_._contexts[ARS2].link
    ams_ctx = abs_._contexts[AMS].link.ctx
    msg = m.AkTransfer(transaction_id=77, ams_stid=abs_._contexts[AMS].stid,
                       amsid_star=ams_ctx.amsid_star, akid=ams_ctx.akid, ak_sn=ams_ctx.pmk_sn,
                       ak_lifetime=3600, cmac_key_count=3,
                       sa_context=(m.SaContext(said=1, counter_tek=0, eks=0, tek_lifetime=600),),
                       wrapped_ak=wrap_key_padded(relay.ctx.kek, ams_ctx.ak))
    ars2.events()
    ars2.receive(ABS, control_mpdu(relay.sign(msg)), net.now)   # correct CMAC, but in clear
    assert ars2.rejections["not_encrypted"] == 1
    assert ars2.frames_to_send(net.now) == [] and ars2.key_info(AMS) is None
    assert not [e for e in ars2.events() if isinstance(e, AkTransferred)]
    # and the ABS refuses a clear ACK from the ARS the same way
    ack = m.AkTransferAck(transaction_id=77, ams_stid=msg.ams_stid, akid=msg.akid, status=0)
    abs_.receive(ARS2, control_mpdu(ars2.link.sign(ack)), net.now)
    assert abs_.rejections_by_link[(ARS2, "not_encrypted")] == 1


def test_sealed_ak_transfer_replayed_is_rejected_by_the_relay_sa():
    net, abs_, _ars1, ars2, _ams = enter_all(encrypt_relay_control=True)
    net.start_recording()
    start = len(net.log)
    abs_.prepare_handover(AMS, [ARS2], net.now)
    net.settle(1.0)
    first = next(f for _t, s, d, f in net.log[start:] if (s, d) == (ABS, ARS2))
    assert mpdu_fid(first) != FID_CONTROL          # nothing to read on the air
    assert ars2.key_info(AMS) is None              # pre-distributed AK, AMS not here yet
    assert net.of(ARS2, AkTransferred, cmac_key_count=1)
    ars2.receive(ABS, first, net.now)
    assert ars2.rejections["pn_replay"] == 1 and ars2.frames_to_send(net.now) == []
