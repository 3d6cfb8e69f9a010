"""Where an emulated Pluto's samples come from and go to.

The protocol server (its buffer commands, :mod:`hw.emu.buffers`) converts between libiio's buffer
bytes and complex64 samples in the project's full-scale units (``code / 2048`` on RX, ``int16 /
32768`` on TX: the DAC takes the 12 most significant bits, so pyadi's customary ``2**14``
amplitude is 0.5 full scale) and hands them to a :class:`DataPath`:

- :class:`LocalLoop` — one radio alone, the prototype's semantics: TX blocks are queued (a cyclic
  buffer repeats), RX drains them, passes them through a channel function (frequency shift by
  ``tx_lo - rx_lo``; nothing when that falls outside the band) and adds about 1 LSB of noise.
  Optional wall-clock pacing. No dependency on the loopback medium.
- :class:`hw.emu.air.MediumPath` — a radio on the shared simulated air (``hw.loopback.Medium``),
  so several emulated Plutos hear each other.

Contract for every implementation: ``rx`` and ``tx`` never block longer than ``max_wait_s``
(libiio turns a stall longer than its timeout into a broken pipe); when data is not there in time
the answer is noise, never a wait.
"""

from __future__ import annotations

import errno
import threading
import time
from collections import deque
from typing import Protocol

import numpy as np

from hw.emu.ad9361 import Settings
from hw.emu.errors import IioError
from hw.emu.registers import CoreRegisters

LSB = 1.0 / 2048.0
#: Most TX samples a :class:`LocalLoop` queues for its RX (128 MB of complex64): a client that
#: pushes without anyone reading gets ENOBUFS instead of growing the queue without bound.
LOCAL_QUEUE_MAX_SAMPLES = 1 << 24


class DataPath(Protocol):
    """Sample source/sink behind one emulated Pluto's buffers (see the module docstring)."""

    def configure(self, settings: Settings) -> None:
        """Follow new RF settings (rate, LOs, gains, loopback mode)."""

    def start_rx(self) -> None:
        """An RX buffer was opened: capture starts now (hardware starts its DMA here)."""

    def rx(self, n: int, *, max_wait_s: float, started: float | None = None) -> np.ndarray:
        """Next ``n`` received samples, complex64 full scale, on the 12-bit grid. ``started``:
        ``time.monotonic()`` when the request arrived (a timing model counts from there)."""

    def tx(self, iq: np.ndarray, *, cyclic: bool, max_wait_s: float,
           started: float | None = None) -> None:
        """Send one buffer (complex64 full scale); ``cyclic`` repeats it until :meth:`stop_tx`.
        ``started``: ``time.monotonic()`` when the request arrived."""

    def stop_tx(self) -> None:
        """Destroying the TX buffer: a cyclic transmission ends."""

    def set_kernel_buffers(self, count: int, *, output: bool = False) -> None:
        """Number of kernel blocks the driver queues on the RX (overflow depth) or, with
        ``output``, the TX device (back-pressure depth); each device has its own."""

    def attach_registers(self, rx: CoreRegisters, tx: CoreRegisters) -> None:
        """The RX and TX cores' registers: the path raises their overflow/underflow flags."""

    def close(self) -> None:
        """Release resources."""


def quantise(iq: np.ndarray) -> np.ndarray:
    """Round to the 12-bit grid and clip at full scale (complex64)."""
    comp = np.asarray(iq, dtype=np.complex64).view(np.float32)
    codes = np.clip(np.rint(comp * np.float32(2048.0)), -2048.0, 2047.0) * np.float32(LSB)
    return codes.astype(np.float32).view(np.complex64)


class LocalLoop:
    """A single emulated Pluto whose TX port is cabled to its RX port (no shared medium).

    ``noise_lsb`` is the RX noise standard deviation per component in ADC codes; ``paced`` makes
    ``rx`` take ``n / sample_rate`` of wall time (bounded by ``max_wait_s``). Deterministic from
    ``seed`` for a given call sequence.
    """

    def __init__(self, *, seed: int = 0, noise_lsb: float = 1.0, paced: bool = False) -> None:
        self._rng = np.random.default_rng(seed)
        self.noise_lsb = float(noise_lsb)
        self.paced = paced
        self._lock = threading.Lock()
        self._fifo: deque[np.ndarray] = deque()
        self._queued = 0  # samples in _fifo
        self._cyclic: np.ndarray | None = None
        self._cyclic_pos = 0
        self._phase = 0  # sample index of the channel's frequency shift (phase continuity)
        self._settings: Settings | None = None

    def configure(self, settings: Settings) -> None:
        with self._lock:
            self._settings = settings

    def set_kernel_buffers(self, count: int, *, output: bool = False) -> None:
        return None

    def attach_registers(self, rx: CoreRegisters, tx: CoreRegisters) -> None:
        return None  # no timing: nothing ever overflows or runs dry

    def start_rx(self) -> None:
        return None

    def tx(self, iq: np.ndarray, *, cyclic: bool, max_wait_s: float,
           started: float | None = None) -> None:
        iq = np.asarray(iq, dtype=np.complex64).copy()
        with self._lock:
            if cyclic:
                self._cyclic, self._cyclic_pos = iq, 0
            elif self._queued + iq.size > max(iq.size, LOCAL_QUEUE_MAX_SAMPLES):
                raise IioError(errno.ENOBUFS, f"TX queue full: {self._queued} samples wait for "
                               "a reader of this radio's RX")
            else:
                self._fifo.append(iq)
                self._queued += iq.size

    def stop_tx(self) -> None:
        with self._lock:
            self._cyclic, self._cyclic_pos = None, 0

    def _take(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.complex64)
        pos = 0
        while pos < n and self._fifo:
            block = self._fifo[0]
            k = min(n - pos, block.size)
            out[pos:pos + k] = block[:k]
            pos += k
            self._queued -= k
            if k == block.size:
                self._fifo.popleft()
            else:
                self._fifo[0] = block[k:]
        if self._cyclic is not None and self._cyclic.size and pos < n:
            c = self._cyclic
            idx = (self._cyclic_pos + np.arange(n - pos)) % c.size
            out[pos:] = c[idx]
            self._cyclic_pos = int((self._cyclic_pos + n - pos) % c.size)
        return out

    def rx(self, n: int, *, max_wait_s: float, started: float | None = None) -> np.ndarray:
        t0 = time.monotonic() if started is None else started
        with self._lock:
            s = self._settings
            sig = self._take(n)
            if s is not None and s.loopback == 0 and s.tx_lo != s.rx_lo:
                shift = s.tx_lo - s.rx_lo
                if abs(shift) >= s.sample_rate / 2:
                    sig[:] = 0  # outside the RX band: filtered away
                else:
                    k = self._phase + np.arange(n)
                    sig *= np.exp(2j * np.pi * shift / s.sample_rate * k).astype(np.complex64)
            self._phase += n
            noise = self._rng.standard_normal(2 * n).astype(np.float32)
        noise *= np.float32(self.noise_lsb * LSB)
        out = quantise(sig + noise.view(np.complex64))
        if self.paced and s is not None:
            remaining = min(n / s.sample_rate, max_wait_s) - (time.monotonic() - t0)
            if remaining > 0:
                time.sleep(remaining)
        return out

    def close(self) -> None:
        with self._lock:
            self._fifo.clear()
            self._queued = 0
            self._cyclic = None
