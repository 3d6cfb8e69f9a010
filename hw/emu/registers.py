"""The HDL cores' register file behind the ``direct_reg_access`` debug attribute.

libiio's ``iio_device_reg_read(dev, addr)`` writes ``"0x<addr>"`` to the device's debug attribute
``direct_reg_access`` and reads the value back; ``iio_device_reg_write(dev, addr, value)`` writes
``"0x<addr> 0x<value>"``. On a Pluto the RX core (``cf-ad9361-lpc``) and the TX core
(``cf-ad9361-dds-core-lpc``) answer this way, and register :data:`XFLOW_REG` holds the sticky
status flags the FPGA raises when the DMA could not keep up: bit 2 RX overflow (the ADC had
nowhere to put samples), bit 0 TX underflow (the DAC ran out of samples). Writing 1 to a flag
clears it (write-one-to-clear); other registers just store what is written.

The emulator's data path raises the flags through :meth:`CoreRegisters.raise_flags`, so a client
sees them exactly where it would on hardware.
"""

from __future__ import annotations

import threading

from hw.emu.errors import einval
from hw.pluto import RX_OVERFLOW_BIT as RX_OVERFLOW
from hw.pluto import TX_UNDERFLOW_BIT as TX_UNDERFLOW
from hw.pluto import XFLOW_REG

__all__ = ["RX_OVERFLOW", "TX_UNDERFLOW", "XFLOW_REG", "CoreRegisters"]
#: Largest register address / value (32-bit bus).
_MAX = 0xFFFFFFFF


def _parse(word: str) -> int:
    try:
        value = int(word, 0)
    except ValueError:
        raise einval(f"direct_reg_access: {word!r} is not a number") from None
    if not 0 <= value <= _MAX:
        raise einval(f"direct_reg_access: {word!r} is not a 32-bit value")
    return value


class CoreRegisters:
    """One core's registers: the selected address, stored values and the sticky flags."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._selected = 0
        self._values: dict[int, int] = {}

    def write(self, text: str) -> None:
        """A write to ``direct_reg_access``: ``"ADDR"`` selects, ``"ADDR VALUE"`` writes."""
        words = text.split()
        if len(words) not in (1, 2):
            raise einval(f"direct_reg_access: expected 'ADDR [VALUE]', got {text!r}")
        addr = _parse(words[0])
        with self._lock:
            self._selected = addr
            if len(words) == 2:
                value = _parse(words[1])
                if addr == XFLOW_REG:  # write-one-to-clear
                    self._values[addr] = self._values.get(addr, 0) & ~value
                else:
                    self._values[addr] = value

    def read(self) -> str:
        """The selected register, as the kernel prints it (``0x%X``)."""
        with self._lock:
            return f"0x{self._values.get(self._selected, 0):X}"

    def raise_flags(self, bits: int) -> None:
        """The hardware sets status flags in :data:`XFLOW_REG` (sticky until cleared)."""
        with self._lock:
            self._values[XFLOW_REG] = self._values.get(XFLOW_REG, 0) | bits

    def flags(self) -> int:
        """The current value of :data:`XFLOW_REG` (tests)."""
        with self._lock:
            return self._values.get(XFLOW_REG, 0)
