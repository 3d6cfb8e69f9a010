"""The iiod buffer commands (``SET … BUFFERS_COUNT``, ``OPEN``, ``READBUF``, ``WRITEBUF``,
``CLOSE``) of the emulated Pluto's protocol server.

What a connection's buffers are (:class:`_OpenBuffer`: device, size, channel mask, sample
format) and how samples cross the wire: ``READBUF`` turns the data path's complex64 samples into
12-bit codes in int16 words, ``WRITEBUF`` turns the client's int16 words back into complex64,
both :data:`_CHUNK` samples at a time in buffers the connection reuses. :class:`BufferCommands`
is a mixin of :class:`hw.emu.server._Handler`, which holds the connection, the command loop and
the other commands (its socket I/O is :class:`hw.emu.wire.WireIO`); kept apart because the
sample conversion and the buffer bounds change for different reasons than the protocol's
framing, timeouts and connection limits.
"""

from __future__ import annotations

import errno
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hw.emu.context import Channel, Device
from hw.emu.errors import IioError, einval
from hw.loopback_radio import _kernels

if TYPE_CHECKING:
    from hw.emu.server import PlutoServer, _Connection

_FORMAT_RE = re.compile(r"^(le|be):([sSuU])(\d+)/(\d+)(?:X(\d+))?>>(\d+)$")
#: Largest kernel-buffer count (``SET … BUFFERS_COUNT``), as ``hw.pluto`` allows.
MAX_BUFFERS_COUNT = 64
#: Samples converted at a time between the data path and the wire.
_CHUNK = 1 << 16


def _to_codes() -> Callable[[np.ndarray, np.ndarray], None]:
    """The compiled float -> 12-bit code conversion (:func:`hw._medium.to_codes_12bit`),
    imported on the first ``READBUF``: the medium has loaded numba by then."""
    return _kernels().to_codes_12bit  # type: ignore[no-any-return]


def _nonzero_span() -> Callable[[np.ndarray, np.integer], tuple[int, int]]:
    """The compiled scan for a pushed block's first and last non-zero sample
    (:func:`hw._medium.nonzero_span`); numba is loaded by the time a client pushes."""
    return _kernels().nonzero_span  # type: ignore[no-any-return]


#: Every bit of a wire sample (int16 I and Q read as one uint32 word).
_ALL_BITS = np.uint32(0xFFFF_FFFF)


#: The shared read-only zero blocks, by size (at most :data:`_ZEROS_KEPT`, oldest dropped).
_ZEROS: dict[int, np.ndarray] = {}
_ZEROS_KEPT = 8
_ZEROS_LOCK = threading.Lock()


def _zeros(n: int) -> np.ndarray:
    """A read-only block of *n* complex64 zeros (what an all-zero ``WRITEBUF`` carries)."""
    z = _ZEROS.get(n)
    if z is None:
        with _ZEROS_LOCK:  # handler threads may ask at once: one block per size
            z = _ZEROS.get(n)
            if z is None:
                z = np.zeros(n, np.complex64)
                z.setflags(write=False)
                while len(_ZEROS) >= _ZEROS_KEPT:
                    del _ZEROS[next(iter(_ZEROS))]
                _ZEROS[n] = z
    return z


def is_shared_zeros(iq: np.ndarray) -> bool:
    """Whether *iq* is one of the read-only zero blocks an all-zero ``WRITEBUF`` hands the data
    path: known silent, so the data path need not scan it again for a burst."""
    return _ZEROS.get(iq.shape[0] if iq.ndim == 1 else -1) is iq


def _bytes_per_sample(chans: list[Channel]) -> int:
    total = 0
    for ch in chans:
        m = _FORMAT_RE.match(ch.format or "")
        if not m:
            raise einval(f"channel {ch.id}: unsupported format {ch.format!r}")
        total += int(m.group(4)) // 8 * int(m.group(5) or 1)
    return total


@dataclass
class _OpenBuffer:
    device: Device
    samples: int
    mask: int
    mask_words: int
    cyclic: bool
    channels: list[Channel]
    sample_size: int
    pushed: bool = False
    #: Wire column of each enabled channel (0: I, 1: Q), whether they are I then Q, and the
    #: mask line a READBUF reply carries: fixed while the buffer is open, worked out once
    #: instead of per request (~1000 WRITEBUF and ~340 READBUF a second on four radios).
    cols: list[int] = field(init=False)
    pair: bool = field(init=False)
    mask_line: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.cols = [0 if c.scan_index == 0 else 1 for c in self.channels]
        self.pair = self.cols == [0, 1]
        self.mask_line = self.mask_text().encode() + b"\n"

    def mask_text(self) -> str:
        words = [(self.mask >> (32 * i)) & 0xFFFFFFFF for i in range(self.mask_words)]
        return "".join(f"{w:08x}" for w in reversed(words))


class BufferCommands:
    """The buffer commands of one connection (mixed into the server's ``_Handler``): open,
    size, stream in both directions and close its buffers."""

    server: PlutoServer
    conn: _Connection
    _started: float | None
    _max_wait_s: float
    # provided by _Handler (its wire I/O and refusal accounting)
    _send: Callable[[bytes | memoryview], None]
    _send_parts: Callable[[bytes, memoryview], None]
    _reply: Callable[[int], None]
    _read_into: Callable[[np.ndarray], None]
    _oversized: Callable[[IioError], IioError]

    def _words(self, count: int) -> np.ndarray:
        """This connection's reusable int16 receive buffer, at least ``count`` words (a
        streaming client pushes the same size again and again: no allocation per push)."""
        buf = getattr(self, "_wordbuf", None)
        if buf is None or buf.size < count:
            buf = self._wordbuf = np.empty(count, "<i2")
        return buf

    def _set(self, args: list[str]) -> None:
        if len(args) != 3 or args[1].upper() != "BUFFERS_COUNT":
            raise einval("only SET <dev> BUFFERS_COUNT <n> is supported")
        dev = self.server.context.device(args[0])
        try:
            count = int(args[2])
        except ValueError:
            raise einval("BUFFERS_COUNT is not a number") from None
        if not 1 <= count <= MAX_BUFFERS_COUNT:
            raise einval(f"BUFFERS_COUNT {count} outside [1, {MAX_BUFFERS_COUNT}]")
        if self.server.busy(dev):
            raise IioError(errno.EBUSY, f"{dev.id}: buffer active")
        scan = dev.scan_channels()
        output = bool(scan) and scan[0].output
        if output:  # the count belongs to the device it was set on (pyadi sets the RX one)
            self.server.context.tx_buffers_count = count
        else:
            self.server.context.buffers_count = count
        self.server.data.set_kernel_buffers(count, output=output)
        self._reply(0)

    def _open(self, args: list[str]) -> None:
        if len(args) not in (3, 4) or (len(args) == 4 and args[3].upper() != "CYCLIC"):
            raise einval("OPEN <dev> <samples> <mask> [CYCLIC]")
        dev = self.server.context.device(args[0])
        if not dev.buffer_capable:
            raise IioError(errno.ENODEV, f"{dev.id} cannot stream")
        try:
            samples = int(args[1])
            mask = int(args[2], 16)
        except ValueError:
            raise einval("bad sample count or mask") from None
        scan = [c for c in dev.scan_channels() if c.scan_index is not None]
        if samples <= 0 or mask <= 0 or mask >> len(scan):
            raise einval(f"OPEN {dev.id}: bad samples {samples} or mask {args[2]}")
        if samples > self.server.max_buffer_samples:
            raise self._oversized(IioError(
                errno.ENOMEM, f"OPEN {dev.id}: {samples} samples is more than this emulator's "
                f"buffer limit of {self.server.max_buffer_samples} (max_buffer_samples)"))
        chans = [c for i, c in enumerate(scan) if mask >> i & 1]
        cyclic = len(args) == 4
        if cyclic and not chans[0].output:
            raise einval("CYCLIC is for output buffers")
        if dev.id in self.conn.buffers:
            raise IioError(errno.EBUSY, f"{dev.id}: already open on this connection")
        self.server.acquire(dev, self.conn)
        self.conn.buffers[dev.id] = _OpenBuffer(
            dev, samples, mask, max(1, (len(args[2]) + 7) // 8), cyclic, chans,
            _bytes_per_sample(chans))
        if not chans[0].output:
            self.server.data.start_rx()
        self._reply(0)

    def _close(self, args: list[str]) -> None:
        dev = self.server.context.device(args[0] if args else "")
        buf = self.conn.buffers.pop(dev.id, None)
        if buf is None:
            raise IioError(errno.EBADF, f"{dev.id}: no buffer open")
        self.server.release(dev, self.conn, buf)
        self._reply(0)

    def _buffer(self, args: list[str], output: bool) -> tuple[_OpenBuffer, int]:
        if len(args) != 2:
            raise einval("READBUF/WRITEBUF <dev> <bytes>")
        dev = self.server.context.device(args[0])
        buf = self.conn.buffers.get(dev.id)
        if buf is None:
            raise IioError(errno.EBADF, f"{dev.id}: no buffer open on this connection")
        if buf.channels[0].output != output:
            raise IioError(errno.EBADF, f"{dev.id}: wrong direction")
        try:
            nbytes = int(args[1])
        except ValueError:
            raise einval("byte count is not a number") from None
        if nbytes <= 0 or nbytes % buf.sample_size:
            raise einval(f"{nbytes} bytes is not a whole number of samples")
        limit = buf.samples * buf.sample_size
        if nbytes > limit:  # refused before anything is allocated
            raise self._oversized(einval(
                f"{'WRITEBUF' if output else 'READBUF'} {dev.id} {nbytes}: more than the "
                f"{buf.samples}-sample buffer opened on this connection holds ({limit} bytes)"))
        return buf, nbytes

    def _readbuf(self, args: list[str]) -> None:
        buf, nbytes = self._buffer(args, output=False)
        n = nbytes // buf.sample_size
        iq = np.asarray(self.server.data.rx(n, max_wait_s=self._max_wait_s,
                                            started=self._started), np.complex64)
        if iq.shape != (n,):
            raise IioError(errno.EIO, f"data path returned {iq.shape} samples, not {n}")
        cols = buf.cols
        head: bytes | None = b"%d\n" % nbytes + buf.mask_line
        m0 = min(n, _CHUNK)
        codes = self._words(2 * m0)
        to_codes = _to_codes()
        try:  # chunk by chunk: the wire copy never holds more than _CHUNK samples
            for start in range(0, n, _CHUNK):
                m = min(_CHUNK, n - start)
                c = codes[:2 * m]  # in a reused buffer: no temporaries per chunk
                to_codes(iq[start:start + m].view(np.float32), c)
                body = memoryview(c).cast("B") if buf.pair else \
                    memoryview(c.reshape(m, 2)[:, cols].tobytes())
                if head is not None:  # the header goes with the first chunk
                    self._send_parts(head, body)
                    head = None
                else:
                    self._send(body)
        except (OSError, EOFError):
            raise
        except Exception as exc:  # the reply is half sent: the connection cannot go on
            raise ConnectionAbortedError(f"READBUF failed after its header: {exc}") from exc

    def _writebuf(self, args: list[str]) -> None:
        buf, nbytes = self._buffer(args, output=True)
        if buf.cyclic and buf.pushed:
            raise IioError(errno.EBUSY, "cyclic buffer already pushed")
        self._reply(0)
        n = nbytes // buf.sample_size
        k = len(buf.channels)
        # a streaming client pushes mostly zeros (the DAC's idle between bursts): a block that
        # is all zeros is never converted and shares one read-only block of zeros
        iq: np.ndarray | None = None
        cols = buf.cols
        words = self._words(min(n, _CHUNK) * k)
        pair = buf.pair
        for start in range(0, n, _CHUNK):  # the payload is read and converted chunk by chunk
            m = min(_CHUNK, n - start)
            chunk = words[:m * k]
            self._read_into(chunk)
            if pair:  # samples from the first to the last non-zero one (I, Q as one word)
                a, b = _nonzero_span()(chunk.view(np.uint32), _ALL_BITS)
                if a == b:
                    continue
            elif not chunk.any():
                continue
            if iq is None:
                iq = np.zeros(n, np.complex64)
            comp = iq.view(np.float32).reshape(n, 2)
            if pair:  # I and Q: one pass over the span, straight into the complex samples
                # (zeros around it stay the zeros they would convert to)
                np.multiply(chunk.reshape(m, 2)[a:b], np.float32(1.0 / 32768.0),
                            out=comp[start + a:start + b], dtype=np.float32)
            else:
                for i, c in enumerate(cols):
                    comp[start:start + m, c] = chunk[i::k] * np.float32(1.0 / 32768.0)
        if iq is None:
            iq = _zeros(n)
        self.server.data.tx(iq, cyclic=buf.cyclic, max_wait_s=self._max_wait_s,
                            started=self._started)
        buf.pushed = True
        self._reply(nbytes)
