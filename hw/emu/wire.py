"""The wire I/O of one iiod connection of the Pluto emulator: replies, payloads both ways, and
the stall timeouts that drop a client which stops reading a reply or sending a payload.

:class:`WireIO` is mixed into :class:`hw.emu.server._Handler` (which holds the socket, its
buffered reader and the server) beside :class:`hw.emu.buffers.BufferCommands`. Apart from
:mod:`hw.emu.server` (the server, its connections and the command loop) because it changes for
other reasons: how bytes cross the socket cheaply and how a stalled client is cut off, not which
commands there are or how connections are bounded.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from hw.emu.server import PlutoServer

#: SO_RCVTIMEO/SO_SNDTIMEO take a ``struct timeval`` here (Linux only).
_LINUX = sys.platform.startswith("linux")


@functools.lru_cache(maxsize=16)
def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1e6))


def set_stall_timeout(sock: socket.socket, option: int, seconds: float) -> None:
    """Bound how long one send/recv on ``sock`` may block (0 = forever); Linux only. A
    try/except rather than ``contextlib.suppress``: it runs twice per ``WRITEBUF`` payload,
    ~160 a second per radio (the context manager cost ~15 us of the two)."""
    if not _LINUX:
        return
    try:  # noqa: SIM105 - a per-payload path: no context-manager object
        sock.setsockopt(socket.SOL_SOCKET, option, _timeval(seconds))
    except OSError:
        pass


#: SO_RCVTIMEO's "no timeout" (a zero ``struct timeval``).
_NO_TIMEOUT = struct.pack("@ll", 0, 0)


class StalledError(ConnectionError):
    """The client stopped sending or receiving mid-transfer."""


class WireIO:
    """Replies and payloads of one connection (see the module doc)."""

    server: PlutoServer
    request: socket.socket
    rfile: BinaryIO
    client_address: Any

    @contextlib.contextmanager
    def _receiving(self) -> Iterator[None]:
        """While a payload is read: a client that stops sending for the stall timeout is
        dropped (between commands a connection may idle as long as it likes)."""
        set_stall_timeout(self.request, socket.SO_RCVTIMEO, self.server.stall_timeout_s)
        try:
            yield
        finally:
            set_stall_timeout(self.request, socket.SO_RCVTIMEO, 0)

    def _send(self, data: bytes | memoryview) -> None:
        """Send *data* whole (the socket's own ``sendall``: ``wfile.write`` added two Python
        calls per reply); a client that stops reading for the stall timeout is dropped."""
        try:
            self.request.sendall(data)
        except BlockingIOError:  # SO_SNDTIMEO expired: the client stopped reading
            self._stalled_reading()

    def _send_parts(self, head: bytes, body: memoryview) -> None:
        """Send *head* then *body* in one ``sendmsg`` (then ``sendall`` for what it left): a
        READBUF's header and samples, one system call and one wake-up of the client instead
        of two."""
        try:
            sent = self.request.sendmsg((head, body))
            if sent < len(head):
                self.request.sendall(memoryview(head)[sent:])
                sent = len(head)
            if sent - len(head) < len(body):
                self.request.sendall(body[sent - len(head):])
        except BlockingIOError:  # SO_SNDTIMEO expired: the client stopped reading
            self._stalled_reading()

    def _stalled_reading(self) -> None:
        self.server._warn("stalled_clients", "%s: client %s stopped reading a reply for %g s; "
                          "dropped it and released its buffers", self.server.name,
                          self.client_address[0], self.server.stall_timeout_s)
        raise StalledError("client stopped reading") from None

    def _short_payload(self, got: int, n: int) -> StalledError:
        """Count and log a payload that ended after *got* of *n* bytes; the error to raise."""
        self.server._warn("stalled_clients", "%s: client %s sent %d of %d payload bytes, then "
                          "closed or stalled for %g s; dropped it and released its buffers",
                          self.server.name, self.client_address[0], got, n,
                          self.server.stall_timeout_s)
        return StalledError(f"payload ended after {got}/{n} bytes")

    def _reply(self, value: int) -> None:
        self._send(b"%d\n" % value)

    def _payload(self, data: bytes) -> None:
        self._send(b"%d\n" % len(data) + data + b"\n")

    def _read_into(self, out: np.ndarray) -> None:
        """Fill ``out`` from the payload (``readinto``: no intermediate bytes object); a client
        that closes or stalls mid-payload is dropped, as in :meth:`_read_exact`. (No
        :meth:`_receiving` here: a generator's context manager per ``WRITEBUF`` chunk.)"""
        view = memoryview(out).cast("B")
        size = len(view)
        sock = self.request
        stall = self._stall_timeval()
        if stall is not None:
            try:  # noqa: SIM105 - per payload: no context-manager object
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, stall)
            except OSError:
                pass
        try:
            got = self.rfile.readinto(view) or 0  # all of it at once, as a rule
            while got and got < size:
                k = self.rfile.readinto(view[got:])
                if not k:
                    break
                got += k
        finally:
            if stall is not None:
                try:  # noqa: SIM105
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _NO_TIMEOUT)
                except OSError:
                    pass
        if got != size:
            raise self._short_payload(got, size)

    _stall_tv: bytes | None = None

    def _stall_timeval(self) -> bytes | None:
        """The server's stall timeout as the ``struct timeval`` SO_RCVTIMEO takes, packed once
        per connection (None off Linux): ``_read_into`` runs for every ``WRITEBUF`` payload,
        ~1000 a second on four streaming radios, and went through :func:`set_stall_timeout`
        (a call, a platform test and an ``lru_cache`` lookup) twice each."""
        tv = self._stall_tv
        if tv is None and _LINUX:
            tv = self._stall_tv = _timeval(self.server.stall_timeout_s)
        return tv

    def _read_exact(self, n: int) -> bytes:
        with self._receiving():
            data = self.rfile.read(n)
        if data is None or len(data) != n:
            raise self._short_payload(0 if data is None else len(data), n)
        return data
