"""In-memory wiring for the role tests: :class:`stack.roles.memnet.Net` plus a standard cell."""

from __future__ import annotations

from stack.roles.memnet import Net

__all__ = ["ABS", "AMS", "ARS1", "ARS2", "PSK", "Net", "build", "enter_all", "same_keys"]


# -- a standard cell: ABS, two ARSs, one AMS ------------------------------------------------------

ABS, ARS1, ARS2, AMS = 0x0000BB000001, 0x0002AA000001, 0x0002AA000002, 0x001B11C9D50C
PSK = {ARS1: b"\x11" * 16, ARS2: b"\x12" * 16, AMS: b"\x22" * 16}


def build(mode=None, timers=None, lifetimes=None, encrypt_relay_control=False, arq=None):
    """ABS, ARS-1, ARS-2 and AMS roles with fixed seeds (``mode`` default: distributed;
    ``arq``: ``stack.arq.ArqParams`` for every station, None = off)."""
    from stack.pkm.authenticator import BuiltinAuthenticator
    from stack.roles import (
        AbsConfig,
        AbsRole,
        AmsConfig,
        AmsRole,
        ArsConfig,
        ArsRole,
        Lifetimes,
        SecurityMode,
        Timers,
    )
    from stack.roles.ids import station_bytes

    mode = mode or SecurityMode.DISTRIBUTED
    timers = timers or Timers(rto=0.2, max_retries=30)
    life = lifetimes or Lifetimes()
    auth = BuiltinAuthenticator({station_bytes(k): v for k, v in PSK.items()})
    enc = encrypt_relay_control
    abs_ = AbsRole(AbsConfig(station_id=ABS, mode=mode, timers=timers, lifetimes=life,
                             encrypt_relay_control=enc, relays=frozenset({ARS1, ARS2}), arq=arq),
                   authenticator=auth, rng=1)
    ars1 = ArsRole(ArsConfig(station_id=ARS1, psk=PSK[ARS1], mode=mode, timers=timers,
                             lifetimes=life, encrypt_relay_control=enc, arq=arq), rng=2)
    ars2 = ArsRole(ArsConfig(station_id=ARS2, psk=PSK[ARS2], mode=mode, timers=timers,
                             lifetimes=life, encrypt_relay_control=enc, arq=arq), rng=3)
    ams = AmsRole(AmsConfig(station_id=AMS, psk=PSK[AMS], timers=timers, lifetimes=life,
                            abs_id=ABS, arq=arq), rng=4)
    return abs_, ars1, ars2, ams


def enter_all(mode=None, loss=0.0, seed=0, timers=None, lifetimes=None, via=ARS1,
              encrypt_relay_control=False, arq=None):
    """Both ARSs enter, then the AMS enters at ``via``; returns (net, abs, ars1, ars2, ams)."""
    abs_, ars1, ars2, ams = build(mode, timers, lifetimes, encrypt_relay_control, arq)
    net = Net({ABS: abs_, ARS1: ars1, ARS2: ars2, AMS: ams}, loss=loss, seed=seed)
    ars1.attach(ABS, 0.0)
    ars2.attach(ABS, 0.0)
    net.settle(10.0)
    ams.attach(via, net.now)
    net.settle(20.0)
    return net, abs_, ars1, ars2, ams


def same_keys(a, b) -> bool:
    """Both KeyInfos name the same AK, CMAC keys and TEKs (by identifiers and check values)."""
    return a is not None and b is not None and (
        a.akid, a.pmk_sn, a.cmac_key_count, a.kcv_cmac_u, a.kcv_cmac_d, a.counter_teks, a.kcv_teks
    ) == (b.akid, b.pmk_sn, b.cmac_key_count, b.kcv_cmac_u, b.kcv_cmac_d, b.counter_teks,
          b.kcv_teks)
