"""A node's zone demodulation in a process of its own, for the over-the-air loop.

:class:`relaysec.ota.OtaNetwork` serves every local node from one thread; with several nodes
on a small host that thread is the limit (its ``main_loop.busy`` reads ~90 % with four
emulated Plutos at full speed on two cores, docs/radios.md "Session 15"). With
``schedule.ota_demod_workers`` each node's demodulation -- the PHY's share of that thread --
runs in a :class:`DemodWorker` instead, in parallel with the other nodes' and the loop's own
work. Only the demodulation moves: the loop still decides which windows to scan, and it
applies the results (duplicate check, frame attribution, MAC, roles, timing) in order.

How samples cross: the loop writes each pass's buffer into a ring in shared memory (the copy
it made anyway to join its chunks) and sends the worker the ring position and the windows to
scan; the worker demodulates them in place and sends the zone bursts back (``phy.ZoneRx``
values, small). A ring region stays untouched until the worker has answered for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections import deque
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

#: Samples the shared ring holds (16 MiB of complex64: 0.75 s of air at 2.8 MS/s).
RING_SAMPLES = 1 << 21

#: Nice value the worker asks for: above the node's and the radios' stream workers (a stream
#: starved of CPU underflows and loses bursts; a demodulation a few ms later loses nothing).
WORKER_NICE = 5

#: Seconds a new worker may take to import the PHY and load its compiled kernels.
START_TIMEOUT_S = 60.0


class DemodError(RuntimeError):
    """The demodulation worker failed (its exception's text), or is gone."""


_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker_main(fd: int, shm_name: str, ring: int, profile: str,
                 nice: int = 0) -> None:  # pragma: no cover - its own process
    """The worker process: demodulate the windows it is sent, answer in order."""
    conn = Connection(fd)
    shm = shared_memory.SharedMemory(name=shm_name)
    # the parent owns the segment: this process must not unlink it when it exits
    from multiprocessing import resource_tracker
    with contextlib.suppress(Exception):
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)    # the radios' stream workers come first: a late burst is lost
    try:
        buf = np.ndarray((ring,), np.complex64, buffer=shm.buf)
        import phy

        modem = phy.ZoneModem(profile)
        # compile/load the receive path now, not on the first burst
        modem.demodulate(np.zeros(4096, np.complex64), me={1})
        conn.send(("ready", os.getpid()))
        while True:
            msg = conn.recv()
            if msg is None:
                break
            seq, off, windows, me = msg
            try:
                out = [(a, modem.demodulate(buf[off + a: off + b], me=me)) for a, b in windows]
                conn.send((seq, out, time.process_time()))
            except Exception as exc:  # handed to the loop, which raises it
                conn.send((seq, DemodError(f"{type(exc).__name__}: {exc}"), 0.0))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        shm.close()


class DemodWorker:
    """One node's demodulation process and its shared sample ring (see the module doc)."""

    def __init__(self, profile: str, *, ring_samples: int = RING_SAMPLES,
                 nice: int = WORKER_NICE) -> None:
        self.ring = int(ring_samples)
        self._shm = shared_memory.SharedMemory(create=True, size=self.ring * 8)
        self._buf = np.ndarray((self.ring,), np.complex64, buffer=self._shm.buf)
        # a fresh interpreter (no fork of a threaded process; unlike multiprocessing's spawn
        # it does not re-run the parent's __main__), a socket pair for the messages
        ours, theirs = socket.socketpair()
        args = json.dumps([theirs.fileno(), self._shm.name, self.ring, profile, nice])
        code = ("import json, sys; from relaysec.demod_worker import _worker_main; "
                "_worker_main(*json.loads(sys.argv[1]))")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in [_PROJECT_ROOT, os.environ.get("PYTHONPATH", "")] if p))
        self._proc = subprocess.Popen([sys.executable, "-c", code, args], env=env,
                                      stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
        theirs.close()
        self._conn = Connection(ours.detach())
        self._head = 0
        self._seq = 0
        # (seq, ring start, end, the caller's tag) of each pass not answered yet
        self._pending: deque[tuple[int, int, int, Any]] = deque()
        self._ready = False
        self.cpu_s = 0.0        # the worker's process CPU time, as last reported

    def ready(self) -> bool:
        """Whether the worker has loaded the PHY and takes passes (no waiting; raises
        :class:`DemodError` if it failed to start)."""
        if not self._ready and (self._conn.poll(0) or self._proc.poll() is not None):
            self.wait_ready(0.0)
        return self._ready

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the worker has loaded the PHY (raises :class:`DemodError` if it fails)."""
        if self._ready:
            return
        if not self._conn.poll(timeout_s):
            raise DemodError(f"the demodulation worker did not start within {timeout_s:g} s"
                             + ("" if self._proc.poll() is None
                                else f" (it exited, code {self._proc.returncode})"))
        try:
            msg = self._conn.recv()
        except EOFError:
            raise DemodError("the demodulation worker exited while starting") from None
        if not (isinstance(msg, tuple) and msg[0] == "ready"):
            raise DemodError(f"the demodulation worker said {msg!r} instead of ready")
        self._ready = True

    def _free_from(self, n: int) -> int | None:
        """Where ``n`` samples can be written without touching a region still pending (the
        ring's head, or its start when they do not fit before its end); None: not now."""
        start = self._head if self._head + n <= self.ring else 0
        end = start + n
        for _seq, a, b, _tag in self._pending:
            if a < end and start < b:
                return None
        return start

    def submit(self, buf: np.ndarray, windows: list[tuple[int, int]],
               me: frozenset[int], tag: Any = None) -> int | None:
        """Queue the demodulation of ``buf[a:b]`` for each window ``(a, b)`` with the
        addresses ``me``; ``tag`` comes back with the answer (:meth:`results`). Returns the
        pass's sequence number, or None when the ring has no room (the worker is that far
        behind: collect its results first)."""
        if buf.size > self.ring:
            raise ValueError(f"a pass of {buf.size} samples does not fit the "
                             f"{self.ring}-sample ring")
        start = self._free_from(buf.size)
        if start is None:
            return None
        self._buf[start: start + buf.size] = buf
        self._head = start + buf.size
        self._seq += 1
        self._pending.append((self._seq, start, start + buf.size, tag))
        self._conn.send((self._seq, start, windows, me))
        return self._seq

    @property
    def pending(self) -> int:
        """Passes sent and not answered yet."""
        return len(self._pending)

    def results(self, wait_s: float = 0.0) -> list[tuple[Any, list[tuple[int, Any]]]]:
        """The answers that have arrived, in order: ``(tag, [(window start, [ZoneRx])])``
        with the tag the pass was submitted with; waits up to ``wait_s`` for the first one.
        Raises :class:`DemodError` for a failed pass or a dead worker."""
        out = []
        timeout = wait_s
        while self._pending and self._conn.poll(timeout):
            timeout = 0.0
            try:
                seq, res, cpu = self._conn.recv()
            except EOFError:
                raise DemodError("the demodulation worker is gone") from None
            if isinstance(res, Exception):
                raise res
            want, _a, _b, tag = self._pending.popleft()
            if seq != want:
                raise DemodError(f"the demodulation worker answered pass {seq}, not {want}")
            self.cpu_s = cpu
            out.append((tag, res))
        if self._pending and self._proc.poll() is not None:
            raise DemodError(f"the demodulation worker exited (code {self._proc.returncode})")
        return out

    def close(self) -> None:
        """Stop the worker and free the ring (idempotent)."""
        if self._proc is not None:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(None)
            try:
                self._proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                self._proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=2.0)
            self._proc = None  # type: ignore[assignment]
            self._conn.close()
        if self._shm is not None:
            self._buf = None  # type: ignore[assignment]
            self._shm.close()
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
            self._shm = None  # type: ignore[assignment]


__all__ = ["RING_SAMPLES", "DemodError", "DemodWorker"]
