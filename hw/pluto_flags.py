"""The sticky overflow/underflow flag register of the ADI HDL cores behind a Pluto.

A leaf module (constants only) because both sides of :class:`hw.pluto.PlutoRadio` read it: the
radio itself after each burst-mode transfer (:mod:`hw.pluto`), and the streaming timeline's
monitor thread (:mod:`hw.pluto_streaming`), which cannot import :mod:`hw.pluto` (that module
imports it to build the radio). Importable from :mod:`hw.pluto` too.
"""

from __future__ import annotations

#: Status register of the ADI HDL cores (``iio_device_reg_read`` through ``direct_reg_access``):
#: sticky flags, write one to clear. 0x80000000 selects the FPGA core, not the AD9361's SPI.
XFLOW_REG = 0x80000088
#: RX overflow flag of :data:`XFLOW_REG` on the ADC core (``cf-ad9361-lpc``).
RX_OVERFLOW_BIT = 1 << 2
#: TX underflow flag of :data:`XFLOW_REG` on the DAC core (``cf-ad9361-dds-core-lpc``).
TX_UNDERFLOW_BIT = 1 << 0

__all__ = ["RX_OVERFLOW_BIT", "TX_UNDERFLOW_BIT", "XFLOW_REG"]
