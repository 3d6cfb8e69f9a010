"""End-to-end flows of the ABS/ARS/AMS roles wired in memory (issue 4)."""

from __future__ import annotations

import pytest

from stack.roles import DataReceived, SecurityMode
from tests.roles.harness import ABS, AMS, ARS2, enter_all


def test_ars_entry_keys_match():
    _net, abs_, ars1, ars2, _ = enter_all()
    for ars in (ars1, ars2):
        a, b = ars.key_info(), abs_.key_info(ars.station_id)
        assert a is not None and b is not None
        assert (a.akid, a.kcv_cmac_u, a.kcv_cmac_d, a.kcv_teks) == \
               (b.akid, b.kcv_cmac_u, b.kcv_cmac_d, b.kcv_teks)
        assert a.counter_teks == (0, 1)


@pytest.mark.parametrize("mode", [SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED])
def test_ams_entry_and_data(mode):
    net, abs_, ars1, _ars2, ams = enter_all(mode)
    ki = ams.key_info()
    assert ki is not None
    if mode == SecurityMode.DISTRIBUTED:
        other = ars1.key_info(AMS)
        assert abs_.key_info(AMS).akid == ki.akid
    else:
        assert ars1.key_info(AMS) is None
        other = abs_.key_info(AMS)
    assert (other.akid, other.kcv_cmac_u, other.kcv_teks) == (ki.akid, ki.kcv_cmac_u, ki.kcv_teks)
    ams.events()
    abs_.events()
    ams.send_data(ABS, b"up-1", net.now)
    abs_.send_data(AMS, b"down-1", net.now)
    net.settle(1.0)
    assert [e.payload for e in abs_.events() if isinstance(e, DataReceived)] == [b"up-1"]
    assert [e.payload for e in ams.events() if isinstance(e, DataReceived)] == [b"down-1"]


@pytest.mark.parametrize("predistribute", [True, False])
def test_handover_ars1_to_ars2(predistribute):
    net, abs_, ars1, ars2, ams = enter_all()
    old = ams.key_info()
    if predistribute:
        abs_.prepare_handover(AMS, [ARS2], net.now)
        net.settle(2.0)
    ams.handover(ARS2, net.now)
    net.settle(5.0)
    new = ams.key_info()
    assert new.cmac_key_count == old.cmac_key_count + 1 and new.akid != old.akid
    tgt = ars2.key_info(AMS)
    assert (tgt.akid, tgt.kcv_cmac_u, tgt.kcv_teks) == (new.akid, new.kcv_cmac_u, new.kcv_teks)
    assert not ars1.serves(AMS)
    assert abs_.via_of(AMS) == ARS2


def test_entry_under_30_percent_loss():
    _net, _abs, ars1, _ars2, ams = enter_all(loss=0.3, seed=7)
    ki = ams.key_info()
    assert ki is not None and ars1.key_info(AMS).akid == ki.akid
