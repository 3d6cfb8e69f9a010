"""Hardware overflow/underflow flags through the real client stack: the emulated air raises the
cores' status bits (register 0x80000088) where a Pluto would, and hw.pluto counts them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hw.emu import EmulatorConfig, start_emulators
from hw.emu.registers import RX_OVERFLOW, TX_UNDERFLOW, XFLOW_REG, CoreRegisters
from tests.emu.realtime import realtime_slot


def test_register_file_select_read_and_write_one_to_clear():
    regs = CoreRegisters()
    regs.write(hex(XFLOW_REG))
    assert regs.read() == "0x0"
    regs.raise_flags(RX_OVERFLOW | TX_UNDERFLOW)
    assert regs.read() == "0x5"
    regs.write(f"{XFLOW_REG:#x} 0x4")  # clears bit 2 only
    assert regs.read() == "0x1"
    regs.write("0x10 0xBEEF")
    assert regs.read() == "0xBEEF" and regs.flags() == 1
    with pytest.raises(Exception, match="direct_reg_access"):
        regs.write("0x10 0x1 0x2")


def test_register_writes_reach_the_core_and_leave_the_settings_alone():
    """A ``direct_reg_access`` write of a data core goes to its register file (bad words still
    refused) and notifies no settings listener; a PHY attribute write still does."""
    from hw.emu.ad9361 import PlutoContext
    from hw.emu.context import KIND_ATTR, KIND_DEBUG
    from hw.emu.errors import IioError

    ctx = PlutoContext.default()
    heard: list[object] = []
    ctx.listeners.append(heard.append)
    rx = ctx.device("cf-ad9361-lpc")
    ctx.registers[rx.name].raise_flags(RX_OVERFLOW)
    ctx.write_attr(rx, KIND_DEBUG, "direct_reg_access", hex(XFLOW_REG))
    assert ctx.read_attr(rx, KIND_DEBUG, "direct_reg_access") == f"{RX_OVERFLOW:#x}"
    ctx.write_attr(rx, KIND_DEBUG, "direct_reg_access", f"{XFLOW_REG:#x} {RX_OVERFLOW:#x}")
    assert ctx.read_attr(rx, KIND_DEBUG, "direct_reg_access") == "0x0"
    with pytest.raises(IioError):
        ctx.write_attr(rx, KIND_DEBUG, "direct_reg_access", "0x10 0x1 0x2")
    assert heard == []
    phy = ctx.device("ad9361-phy")
    ctx.write_attr(phy, KIND_ATTR, "frequency", "915000000", phy.channel("altvoltage0", True))
    assert len(heard) == 1


@pytest.mark.libiio
def test_flags_zero_at_a_sustainable_rate_and_counted_when_the_host_falls_behind():
    from hw.pluto import PlutoRadio

    fs = 2_800_000
    # the air at a tenth of real time: the 4 kernel blocks hold 470 ms of wall clock, so a
    # host that keeps up keeps up even when CI's other test worker holds a core (at full
    # speed their 47 ms overflowed once in a CI run, the test reading "on time")
    speed = 0.1
    cfg = EmulatorConfig(sample_rate=fs, clock="wall", seed=4, speed=speed)
    with realtime_slot(), start_emulators(1, cfg) as cluster:
        r = PlutoRadio(cluster.uris[0], sample_rate=fs, rx_buffer_size=32768, kernel_buffers=4)
        try:
            assert r.xflow_flags
            # read continuously, push blocks back to back (each queued before the last plays)
            r.receive(32768)
            block = np.zeros(28000, np.complex64)  # 10 ms
            for _ in range(3):
                r.transmit(block)
            r.receive(32768 * 8)  # ~94 ms of air, read as it arrives
            assert r.stats.overflows == 0 and r.stats.underflows == 0
            # the host stalls for longer than 4 kernel blocks (47 ms of air) hold: the ADC
            # overflows; the DAC ran dry after the last block: the next push reports the
            # underflow
            time.sleep(0.25 / speed)
            r.receive(32768 * 6)
            r.transmit(block)
            assert r.stats.overflows >= 1 and r.stats.underflows == 1
        finally:
            r.close()
