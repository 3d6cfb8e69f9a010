"""The iiod command parser of the Pluto emulator (``hw.emu.server``), without any network I/O.

Input: the bytes a libiio client would send on one connection (command lines, WRITE payloads,
WRITEBUF sample data). A fresh emulated Pluto (its power-on context and a local TX->RX loop) and one
connection handler are built per input; the handler reads the input from memory and writes its
answers to memory -- no socket is bound, connected or listened on (the handler gets an in-memory
stand-in for its connected socket).

The handler turns every exception into a protocol answer itself (``-errno``), so nothing escapes
it; what the harness catches is its *internal error* path -- an exception other than ``IioError``
or a closed connection, which it logs with ``log.exception`` and answers ``-EIO``. Each such log
record is re-raised here with its original traceback: that is a finding.
"""

from __future__ import annotations

import io
import logging

from hw.emu.ad9361 import PlutoContext
from hw.emu.datapath import LocalLoop
from hw.emu.server import MAX_LINE, PlutoServer, _Handler
from hw.errors import RadioError

ALLOWED = (RadioError,)


class _Unbound(PlutoServer):
    """A PlutoServer that never binds or listens (only its state and handlers are used)."""

    def server_bind(self) -> None:
        """No socket is bound."""
        return None

    def server_activate(self) -> None:
        """Nor listened on."""
        return None


class _Internal(logging.Handler):
    """Collects the exceptions the server logs as internal errors."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the exception of an error record."""
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


_internal = _Internal()
_template: PlutoContext | None = None


def setup() -> None:
    """Hook the server's logger; build one power-on context to check that it builds."""
    global _template
    log = logging.getLogger("hw.emu.server")
    log.addHandler(_internal)
    log.propagate = False
    log.setLevel(logging.ERROR)
    _template = PlutoContext.default()


class _MemorySocket:
    """Just enough of a connected socket for ``socketserver.StreamRequestHandler``: reads come
    from the input, writes are collected, socket options are accepted and ignored."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.sent = bytearray()

    def makefile(self, mode: str = "r", buffering: int | None = None) -> io.BufferedIOBase:
        """The input, as the handler's read file."""
        return io.BufferedReader(io.BytesIO(self._data))

    def sendall(self, data: bytes) -> None:
        """Collect what the server writes."""
        self.sent += data

    def settimeout(self, value: float | None) -> None:
        """Accepted and ignored."""
        return None

    def setsockopt(self, *args: object) -> None:
        """Accepted and ignored."""
        return None

    def close(self) -> None:
        """Nothing to close."""
        return None


def _serve(data: bytes) -> bytes:
    """One connection's worth of ``data`` through a fresh server's handler (setup, handle and
    finish, as ``socketserver`` runs them); returns what the server wrote back."""
    server = _Unbound(PlutoContext.default(), LocalLoop(seed=1), name="fuzz")
    sock = _MemorySocket(data)
    try:
        _Handler(sock, ("127.0.0.1", 40000), server)  # type: ignore[arg-type]
        return bytes(sock.sent)
    finally:
        server.server_close()
        server.data.close()


def one_input(data: bytes) -> None:
    """Serve ``data`` as one client connection; re-raise any internal error of the server."""
    _internal.errors.clear()
    _serve(data[: 64 * MAX_LINE])
    if _internal.errors:
        raise _internal.errors[0]
