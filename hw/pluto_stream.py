"""The Pluto's streaming I/O plumbing: the stream worker process and its shared rings.

:class:`hw.pluto.PlutoRadio` configures and drives one radio; once it streams
(:meth:`hw.pluto.PlutoRadio.start_stream`) the samples move through what is here: the direct
libiio C-call path for a buffer (:class:`_DirectBuffer`, used by the radio's own streams and by
the worker), the per-radio stream worker process (:func:`_rx_worker_main`), the shared file it
and the node map (header words :data:`_HDR` / ``_H_*``, RX ring of :data:`RX_RING_S`, TX ring of
:data:`TX_RING_S`) and the node's two sides of it (:class:`_RxWorker`, :class:`_SharedTxRing`).
Apart from :mod:`hw.pluto` because the worker runs in a fresh interpreter that imports only
this module (no pyadi, no timeline), and because none of it depends on the radio's settings.
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from typing import Any

import numpy as np

from hw.errors import RadioIOError

#: int16 DAC code of TX full scale 1.0 (12-bit DAC in the MSBs: 2047 << 4).
TX_SCALE = 2047 * 16
#: RX full scale: 12-bit ADC codes.
RX_SCALE = 2048.0

#: Sample layout the direct libiio path handles: two int16 channels (I, Q) interleaved.
_LEAN_STEP = 4


class _DirectBuffer:
    """A pyadi-created ``iio.Buffer`` driven straight through libiio's C calls.

    Why: pyadi converts every transfer in Python (per-channel demux into new bytearrays, a
    complex128 array, then ours to complex64: ~6 passes and allocations per block) and takes
    the GIL around each step, which a node demodulating four radios in one process holds
    most of the time. Here a transfer is one ``iio_buffer_refill``/``iio_buffer_push_partial``
    call (ctypes releases the GIL for it) plus one numpy pass between the buffer's memory
    and complex64, so a radio's streaming threads need the GIL only briefly per block.
    Same libiio, same buffer, same bytes: pyadi still creates, sizes and destroys it.
    Used only for the Pluto's layout (2 interleaved int16 channels); anything else keeps
    pyadi's path (:meth:`wrap` returns None).
    """

    def __init__(self, iio: Any, buf: Any, samples: int, rx_bits: int | None) -> None:
        self._iio = iio
        # weak: pyadi destroys a buffer by dropping it (rx/tx_destroy_buffer), and libiio
        # closes it on the device only when the object goes; a strong reference here would
        # keep the device's buffer open (the next one: EBUSY)
        self._ref = weakref.ref(buf)
        self.samples = samples
        self._rx_bits = rx_bits  # RX: sign-extend from this many bits (le:S12/16>>0 -> 12)
        self._shifted: np.ndarray | None = None  # RX: the shifted codes (kept: one per block)

    @classmethod
    def wrap(cls, buf: Any, device: Any, *, output: bool) -> _DirectBuffer | None:
        """The direct path for pyadi's buffer *buf* of *device*, or None when its layout
        is not two little-endian int16 channels (or it is not a libiio buffer at all)."""
        try:
            import iio

            ptr = buf._buffer
            if not isinstance(buf, iio.Buffer) or not ptr \
                    or int(iio._buffer_step(ptr)) != _LEAN_STEP:
                return None
            chans = [c for c in device.channels if c.enabled and c.output == output]
            if len(chans) != 2:
                return None
            bits = []
            for c in chans:
                f = c.data_format
                if f.length != 16 or f.is_be or not f.is_signed or f.shift != 0 \
                        or f.repeat > 1:
                    return None
                bits.append(int(f.bits))
            samples = int(buf._samples_count)
        except Exception:  # a fake device, another binding: pyadi's path
            return None
        rx_bits = None if output else max(bits)
        return cls(iio, buf, samples, rx_bits)

    @property
    def buf(self) -> Any:
        """The pyadi buffer this drives (None once pyadi dropped it)."""
        return self._ref()

    def _words(self) -> np.ndarray:
        """The buffer's memory as int16 (I, Q interleaved); re-read after every transfer:
        with the local backend libiio hands out a different DMA block each time."""
        import ctypes

        buf = self.buf
        if buf is None:
            raise RadioIOError("the buffer was destroyed")
        start = int(self._iio._buffer_start(buf._buffer))
        n = 2 * self.samples
        return np.ctypeslib.as_array((ctypes.c_int16 * n).from_address(start))

    def read(self) -> np.ndarray:
        """Refill (blocks in C, without the GIL) and return the block as ADC codes / 2048
        (complex64), sign-extended like ``iio_channel_convert``."""
        out = np.empty(self.samples, np.complex64)
        self.read_into((out,))
        return out

    def read_into(self, parts: tuple[np.ndarray, ...]) -> None:
        """:meth:`read` written into *parts* (complex64 arrays whose sizes add up to the
        block's: the two ends of a ring), without a block in between.

        The sign extension from ``b`` bits is a left shift by ``16 - b`` and a scale of
        ``2**-(11 + 16 - b)``: the shifted code is the sign-extended one times a power of two,
        so the float32 values are the same bit for bit, in two passes instead of three and
        with no temporaries (75 -> 51 us for 32 768 samples, each RX block of a stream)."""
        buf = self.buf
        if buf is None:
            raise RadioIOError("the RX buffer was destroyed")
        self._iio._buffer_refill(buf._buffer)
        words = self._words()
        drop = 16 - self._rx_bits if self._rx_bits is not None and self._rx_bits < 16 else 0
        if drop:
            if self._shifted is None or self._shifted.size != words.size:
                self._shifted = np.empty(words.size, np.int16)
            words = np.left_shift(words, drop, out=self._shifted)
        scale = np.float32(1.0 / (RX_SCALE * (1 << drop)))
        at = 0
        for part in parts:
            n = 2 * part.size
            np.multiply(words[at:at + n], scale, out=part.view(np.float32))
            at += n

    def push(self, codes: np.ndarray | None) -> None:
        """Write DAC codes (float64 I, Q pairs already rounded, or None for zeros) into the
        buffer and push it (blocks in C, without the GIL, while the kernel queue is full)."""
        words = self._words()
        if codes is None:
            words.fill(0)
        else:
            words[...] = codes
        self._iio._buffer_push_partial(self.buf._buffer, self.samples)  # checked in _words


#: Seconds of TX samples the stream worker's TX ring holds (bursts are placed at most this far
#: ahead of what the worker has pushed).
TX_RING_S = 0.5
#: Seconds of samples the RX worker's host ring holds (:class:`_RxWorker`): how long the node
#: process may fall behind (GIL, a loaded host) before samples are lost on the host.
RX_RING_S = 1.0
#: The directory holding the ``hw`` package (the RX worker's interpreter imports it from here).
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Header of the stream worker's shared file (int64 words; then the RX ring, then the TX ring).
_HDR = 16
_H_RX_WRITTEN, _H_ERR, _H_RUNNING, _H_STOP = 0, 1, 2, 3
_H_TX_CLAIM, _H_TX_BLOCKS, _H_PUSH_MAX_NS, _H_GAP_MAX_NS = 4, 5, 6, 7
_H_NICE = 8  # the worker's nice value + 100 once it has set it (0: not yet)


def raise_priority(nice: int) -> int:
    """Run the calling thread (Linux: a nice value is per thread; elsewhere the process) at
    nice value *nice* when that is above its priority (a lower number) and the system allows
    it (root, CAP_SYS_NICE or an RLIMIT_NICE such as ``@audio - nice -10`` in limits.conf);
    returns the nice value it runs at.

    Why: the stream worker's TX thread only copies blocks, but when it is not scheduled for
    the milliseconds its device queue holds (3 pushes of 6 ms on a shared host) the DAC runs
    dry and the timeline must be measured again. A host busy demodulating four radios (and,
    with ``relaysec emulate``, playing their air) delays it that long; at a higher priority it
    is not (docs/radios.md, "Session 14"). SDR drivers do the same for their streaming threads
    (UHD's ``set_thread_priority_safe``). Threads started afterwards inherit it."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice < current:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    return os.getpriority(os.PRIO_PROCESS, 0)


def _mapped(path: str, dtype: type, offset: int, n: int) -> np.ndarray:
    """*n* values of *dtype* at byte *offset* of the shared file *path*, mapped read-write, as
    a plain ndarray (it keeps the mapping alive): a ``np.memmap`` subclass answers every
    scalar read of the header through Python (``__getitem__``, ``__array_finalize__``: ~8 us,
    22 000 reads in 8 s of a 4-radio trial), an ndarray in C."""
    return np.memmap(path, dtype, "r+", offset=offset, shape=(n,)).view(np.ndarray)


def _take_tx_block(parts: tuple[np.ndarray, ...], out: np.ndarray) -> np.ndarray | None:
    """The DAC codes of the claimed TX block *parts* (complex64 views of the ring: its two
    ends when the block wraps) in *out* (float64, two per sample: ``rint(x * TX_SCALE)``), or
    None when the block is silent; the parts are zeroed for the next lap of the ring.

    Converted from the ring itself (a copy of the block first, a bool cast to test it and a
    float64 temporary cost 89 -> 70 us a block, each TX push). A sample with any bit set but
    the sign (-0.0) counts as sound: it converts to the same zero codes."""
    codes = None
    if any(p.view(np.uint64).any() for p in parts):
        codes = out
        at = 0
        for p in parts:
            n = 2 * p.size
            np.multiply(p.view(np.float32), np.float64(TX_SCALE), out=codes[at:at + n])
            at += n
        np.rint(codes, out=codes)
    for p in parts:
        p[:] = 0
    return codes


def _rx_worker_main(uri: str, samples: int, kernel_buffers: int, timeout_ms: int,
                    path: str, ring: int, parent: int, tx_block: int = 0,
                    tx_kernel_buffers: int = 4,
                    tx_ring: int = 0, nice: int = 0) -> None:  # pragma: no cover - child
    """The stream worker process: its own libiio context; an RX buffer refilled back to back
    (every block converted to complex64 full scale into the RX ring) and, with *tx_block*, a
    TX buffer pushed back to back from the TX ring (blocks of *tx_block* samples taken at
    the claim counter, zeros where nothing was written). Shared file *path*: :data:`_HDR`
    int64 words, *ring* RX samples, *tx_ring* TX samples (complex64). Ends when asked, or
    when its parent process *parent* is gone."""
    import errno as _errno
    import signal
    import sys
    import threading

    with contextlib.suppress(ValueError):  # (not the main thread: a test drives it)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it, not a Ctrl-C
    hdr = _mapped(path, np.int64, 0, _HDR)
    data = _mapped(path, np.complex64, _HDR * 8, ring)
    txr = _mapped(path, np.complex64, _HDR * 8 + ring * 8, tx_ring) if tx_block else None

    def alive() -> bool:
        return not hdr[_H_STOP] and os.getppid() == parent and not hdr[_H_ERR]

    def fail(exc: BaseException) -> None:
        if not hdr[_H_STOP]:
            print(f"relaysec stream worker ({uri}): {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
        hdr[_H_ERR] = getattr(exc, "errno", None) or _errno.EIO

    def rx_loop(direct: _DirectBuffer) -> None:
        try:
            written = 0
            while alive():
                k = written % ring
                first = min(samples, ring - k)
                # converted straight into the ring (its two ends when the block wraps)
                direct.read_into((data[k:k + first],) if first == samples
                                 else (data[k:k + first], data[:samples - first]))
                written += samples
                hdr[_H_RX_WRITTEN] = written  # after the samples: x86 stores stay in order
        except BaseException as exc:
            fail(exc)

    try:
        import iio

        ctx = iio.Context(uri)
        ctx.set_timeout(timeout_ms)
        rx_dev = ctx.find_device("cf-ad9361-lpc")
        tx_dev = ctx.find_device("cf-ad9361-dds-core-lpc")
        if rx_dev is None or tx_dev is None:
            raise OSError(_errno.ENODEV, "no cf-ad9361-lpc / cf-ad9361-dds-core-lpc device")
        for name in ("voltage0", "voltage1"):
            rx_dev.find_channel(name, False).enabled = True
        rx_dev.set_kernel_buffers_count(kernel_buffers)
        rx_buf = iio.Buffer(rx_dev, samples)  # held here: the direct path holds it weakly
        rx = _DirectBuffer.wrap(rx_buf, rx_dev, output=False)
        tx = None
        if tx_block:
            for name in ("voltage0", "voltage1"):
                tx_dev.find_channel(name, True).enabled = True
            tx_dev.set_kernel_buffers_count(tx_kernel_buffers)
            tx_buf = iio.Buffer(tx_dev, tx_block, False)
            tx = _DirectBuffer.wrap(tx_buf, tx_dev, output=True)
        if rx is None or (tx_block and tx is None):
            raise OSError(_errno.EINVAL, "unexpected sample layout")
        reader = threading.Thread(target=rx_loop, args=(rx,), daemon=True)
        reader.start()
        # this thread pushes TX: its queue (3-4 blocks of 4-6 ms) runs dry first when the
        # host is busy, where RX has ~94 ms of kernel buffers. Linux sets a nice value per
        # thread, so the reader started above keeps the node's
        hdr[_H_NICE] = 100 + raise_priority(nice)
        hdr[_H_RUNNING] = 1
        if tx is not None and txr is not None:
            done = None
            codes64 = np.empty(2 * tx_block, np.float64)
            while alive():
                u0 = int(hdr[_H_TX_CLAIM])
                hdr[_H_TX_CLAIM] = u0 + tx_block  # claimed before read: writers stay clear
                k = u0 % tx_ring
                first = min(tx_block, tx_ring - k)
                parts = (txr[k:k + first],) if first == tx_block \
                    else (txr[k:k + first], txr[:tx_block - first])
                codes = _take_tx_block(parts, codes64)
                t0 = time.monotonic_ns()
                if done is not None:
                    hdr[_H_GAP_MAX_NS] = max(int(hdr[_H_GAP_MAX_NS]), t0 - done)
                tx.push(codes)
                done = time.monotonic_ns()
                hdr[_H_PUSH_MAX_NS] = max(int(hdr[_H_PUSH_MAX_NS]), done - t0)
                hdr[_H_TX_BLOCKS] += 1
        reader.join()
        del rx_buf
    except BaseException as exc:
        fail(exc)
    finally:
        hdr[_H_RUNNING] = 0


class _SharedTxRing:
    """The node's side of the stream worker's TX ring (:class:`hw.timeline.TxRing`): bursts
    are added at their TX sample; the worker claims a block, then reads and zeroes it."""

    def __init__(self, hdr: np.ndarray, data: np.ndarray, block: int) -> None:
        self._hdr, self._data, self.block = hdr, data, block
        self.size = data.size

    def claimed(self) -> int:
        """First TX sample the worker has not taken."""
        return int(self._hdr[_H_TX_CLAIM])

    def write(self, u: int, iq: np.ndarray) -> bool:
        """Add *iq* at TX sample *u*; False if the worker took any of it meanwhile (what it
        took goes out as it was: a partial burst, like one cut by a late host) or it lies
        beyond the ring."""
        n = iq.size
        if u + n > self.claimed() + self.size - self.block:
            return False
        k = u % self.size
        first = min(n, self.size - k)
        self._data[k:k + first] += iq[:first]
        if first < n:
            self._data[:n - first] += iq[first:]
        return self.claimed() <= u

    def clear(self) -> None:
        """Zero everything the worker has not claimed (it may be claiming the first block of
        it: that block then goes out partly zeroed, which is what clearing asks for)."""
        start = self.claimed()
        k = start % self.size
        n = self.size - self.block
        first = min(n, self.size - k)
        self._data[k:k + first] = 0
        if first < n:
            self._data[:n - first] = 0

    def sync(self, stats: Any) -> None:
        """The worker's TX counters into the timeline's *stats*."""
        stats.blocks = int(self._hdr[_H_TX_BLOCKS])
        stats.push_max_s = int(self._hdr[_H_PUSH_MAX_NS]) * 1e-9
        stats.gap_max_s = int(self._hdr[_H_GAP_MAX_NS]) * 1e-9

    def error(self) -> str | None:
        """Why the worker stopped (errno text), if it did."""
        err = int(self._hdr[_H_ERR])
        return None if not err else f"{os.strerror(err)} (errno {err})"


class _RxWorker:
    """A radio's streams in a process of its own (:func:`_rx_worker_main`): RX always, TX
    with ``tx_block`` (its ring is :attr:`tx`, which the timeline writes bursts into).

    Why: the node process demodulates every radio while holding the GIL most of the time
    (two thirds of it in a 4-radio trial); reader and pusher threads there get the GIL late,
    the device's RX queue (``kernel_buffers`` blocks, ~94 ms) overflows and its TX queue runs
    dry, which breaks the streaming timeline. The worker refills and pushes with the node's
    GIL out of the way and keeps :data:`RX_RING_S` of RX samples in a shared ring, so the
    node may fall that far behind without losing a sample. A worker that cannot keep up with
    the device still overflows or starves it (the cores' flags say so, as before).
    """

    def __init__(self, uri: str, samples: int, kernel_buffers: int, timeout_ms: int,
                 sample_rate: float, *, tx_block: int = 0, tx_kernel_buffers: int = 4,
                 nice: int = 0) -> None:
        import json
        import subprocess
        import sys
        import tempfile

        self.samples = samples
        self.ring = max(4 * samples, int(RX_RING_S * sample_rate) // samples * samples)
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, self.path = tempfile.mkstemp(prefix="relaysec-rx-", dir=folder)
        os.close(fd)
        self.tx_size = 0 if not tx_block else \
            max(8 * tx_block, int(TX_RING_S * sample_rate) // tx_block * tx_block)
        size = _HDR * 8 + (self.ring + self.tx_size) * 8
        with open(self.path, "r+b") as f:
            f.truncate(size)
        self._hdr = _mapped(self.path, np.int64, 0, _HDR)
        self._data = _mapped(self.path, np.complex64, _HDR * 8, self.ring)
        #: The TX ring the timeline writes bursts into (None: TX stays in the node process).
        self.tx: _SharedTxRing | None = None
        if tx_block:
            self.tx = _SharedTxRing(self._hdr, _mapped(
                self.path, np.complex64, _HDR * 8 + self.ring * 8, self.tx_size), tx_block)
        self.pos = 0      # samples taken from the ring
        self.lost = 0     # samples the node fell too far behind for (host-side loss)
        self._rate = float(sample_rate)
        # a fresh interpreter (no fork of a threaded libiio client, and unlike
        # multiprocessing's spawn it does not re-run the parent's __main__)
        args = json.dumps([uri, samples, kernel_buffers, timeout_ms, self.path, self.ring,
                           os.getpid(), tx_block, tx_kernel_buffers, self.tx_size, nice])
        code = "import json, sys; from hw.pluto_stream import _rx_worker_main; " \
               "_rx_worker_main(*json.loads(sys.argv[1]))"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in [_PROJECT_ROOT, os.environ.get("PYTHONPATH", "")] if p))
        self.proc = subprocess.Popen([sys.executable, "-c", code, args], env=env,
                                     stdin=subprocess.DEVNULL)

    @property
    def nice(self) -> int | None:
        """The nice value the worker runs at (None until it has started)."""
        v = int(self._hdr[_H_NICE])
        return None if not v else v - 100

    def wait_running(self, timeout_s: float) -> None:
        """Until the worker's RX buffer streams (raises :class:`RadioIOError` if it fails)."""
        deadline = time.monotonic() + timeout_s
        while not self._hdr[_H_RUNNING]:
            self._check()
            if time.monotonic() > deadline:
                raise RadioIOError(f"the RX worker did not start within {timeout_s:g} s")
            time.sleep(0.005)
        with contextlib.suppress(OSError):  # both have it mapped: nothing left behind on exit
            os.unlink(self.path)

    def _check(self) -> None:
        err = int(self._hdr[_H_ERR])
        if err:
            raise RadioIOError(f"the RX worker stopped: {os.strerror(err)} (errno {err})")
        if self.proc.poll() is not None and not self._hdr[_H_RUNNING]:
            raise RadioIOError(f"the RX worker exited (code {self.proc.returncode})")

    def read(self) -> tuple[np.ndarray, int]:
        """The next block (complex64) and the samples lost before it on the host (the node
        fell more than the ring behind: the oldest were overwritten)."""
        lost = 0
        safe = self.ring - 2 * self.samples  # the writer may be filling the block after hdr[0]
        while True:
            written = int(self._hdr[_H_RX_WRITTEN])
            if written - self.pos < self.samples:
                self._check()
                # sleep until the next block is due (at least 0.5 ms): no busy polling
                time.sleep(max(0.0005, (self.pos + self.samples - written) / self._rate))
                continue
            if written - self.pos > safe:  # overwritten, or about to be
                skip_to = written - self.ring // 2
                lost += skip_to - self.pos
                self.pos = skip_to
            k = self.pos % self.ring
            first = min(self.samples, self.ring - k)
            out = np.empty(self.samples, np.complex64)
            out[:first] = self._data[k:k + first]
            if first < self.samples:
                out[first:] = self._data[:self.samples - first]
            self.pos += self.samples
            if int(self._hdr[_H_RX_WRITTEN]) - (self.pos - self.samples) > safe:
                # overwritten while it was being copied
                lost += self.samples
                continue
            self.lost += lost
            return out, lost

    def catch_up(self) -> int:
        """Skip the whole blocks the ring holds unread; returns how many samples (a multiple of
        the block size, so later reads stay aligned with the writer's blocks)."""
        written = int(self._hdr[_H_RX_WRITTEN])
        n = max(0, (written - self.pos) // self.samples * self.samples)
        self.pos += n
        return n

    def drop(self) -> None:
        """Skip every sample the ring holds (the next read waits for a fresh block)."""
        self.pos = int(self._hdr[_H_RX_WRITTEN])

    def stop(self) -> None:
        """Ask the worker to stop, wait for it (its buffer closes with its context)."""
        self._hdr[_H_STOP] = 1
        try:
            self.proc.wait(timeout=3.0)
        except Exception:
            self.proc.terminate()
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=2.0)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


__all__ = [
    "RX_RING_S",
    "RX_SCALE",
    "TX_RING_S",
    "TX_SCALE",
    "raise_priority",
]
