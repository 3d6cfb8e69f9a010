"""An iiod (libiio network protocol) server that makes an emulated Pluto look like hardware.

Speaks the ASCII protocol of libiio 0.24/0.25's network backend (``iiod-client.c``): ``PRINT``
(context XML), ``TIMEOUT``, ``VERSION``, ``READ``/``WRITE`` of device, channel, debug and buffer
attributes, ``GETTRIG``/``SETTRIG``, ``SET … BUFFERS_COUNT``, and the buffer commands ``OPEN``,
``READBUF``, ``WRITEBUF``, ``CLOSE``, ``EXIT``. Unknown commands get ``-22`` (what iiod's parser
answers, and what zstd-enabled clients rely on for their ``ZPRINT`` fallback). Empty lines get no
reply (the client sends one after every ``CLOSE``).

libiio opens one control connection per context and one more connection per buffer, so a ``tx``
plus an ``rx`` means three sockets at once: every connection gets its own thread, and the shared
state (attribute values, open buffers) sits behind locks. Nothing here waits for data: the data
path answers within the connection's timeout (see :mod:`hw.emu.datapath`).

Hostile or careless clients are bounded (``docs/emulator.md``, "Hostile clients"): a buffer is
at most ``max_buffer_samples`` samples and ``READBUF``/``WRITEBUF`` at most the buffer the
connection opened (else ``-EINVAL``, before anything is allocated); buffers are converted in
chunks; a command line longer than :data:`MAX_LINE` is answered ``-EINVAL`` and the connection
closed (the protocol cannot resync after it); at most ``max_clients`` connections are served (the
next one gets ``-EBUSY`` and is closed); a client that stops reading a reply or sending a payload
for ``stall_timeout_s`` is dropped; ``TIMEOUT`` belongs to the connection that sent it, and a
connection that never sends one (libiio's buffer connections) inherits only from its own host's
open connections. A dropped connection always releases its buffers.

The buffer commands and their sample conversion (``SET … BUFFERS_COUNT``, ``OPEN``,
``READBUF``, ``WRITEBUF``, ``CLOSE``) are :class:`hw.emu.buffers.BufferCommands`, mixed into the
connection handler here with the wire I/O (replies, payloads, stall timeouts:
:class:`hw.emu.wire.WireIO`); this module keeps the server, its connections, the command loop
and the other commands.

Wire-format details (exact byte counts) are in ``docs/emulator.md`` and the spec digest
``pluto-iio.md``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO

from hw.emu.ad9361 import RX_DEV, TX_DEV, PlutoContext, Settings
from hw.emu.buffers import (  # noqa: F401 - re-exported: they lived here before
    _CHUNK,
    _FORMAT_RE,
    MAX_BUFFERS_COUNT,
    BufferCommands,
    _bytes_per_sample,
    _OpenBuffer,
)
from hw.emu.context import KIND_ATTR, KIND_BUFFER, KIND_DEBUG, VERSION_GIT, Channel, Device
from hw.emu.datapath import DataPath, LocalLoop
from hw.emu.errors import EmulatorConfigError, IioError, einval
from hw.emu.wire import WireIO, set_stall_timeout

log = logging.getLogger(__name__)

#: Longest single wait the server allows itself when the client sent no TIMEOUT (ms); libiio's
#: default client timeout is 5000 ms and it sends ``TIMEOUT 2500`` right after ``PRINT``.
DEFAULT_TIMEOUT_MS = 2500
#: Largest ``TIMEOUT`` accepted (ms): an hour, the client-side bound ``hw.pluto`` enforces.
MAX_TIMEOUT_MS = 3_600_000
#: Longest command line, line end included (bytes). Longer lines are refused, never split.
MAX_LINE = 4096
#: How much of an over-long line is read (and dropped) before answering, so the answer is not
#: lost to a TCP reset; the connection is closed after it either way.
_DISCARD_MAX = 1 << 20
#: Connections one emulated radio serves at once (a libiio context uses 1 + one per buffer).
DEFAULT_MAX_CLIENTS = 16
#: Largest buffer (samples) a client may OPEN. The data path needs about 40 bytes per sample
#: while answering a READBUF, so 4 Mi samples is ~160 MB at most per radio.
DEFAULT_MAX_BUFFER_SAMPLES = 1 << 22
#: Upper bound of ``max_buffer_samples`` (the largest ``rx_buffer_size`` ``hw.pluto`` accepts).
MAX_BUFFER_SAMPLES = 1 << 24
#: A client that makes no progress reading a reply or sending a payload for this long is dropped.
DEFAULT_STALL_TIMEOUT_S = 30.0


@dataclass(eq=False)
class _Connection:
    host: str
    timeout_ms: int | None = None  # what this connection's client sent with TIMEOUT
    announced: int = 0  # order of that announcement among the server's (0: none)
    inherited_ms: int | None = None  # its host's latest open announcement when it connected
    buffers: dict[str, _OpenBuffer] = field(default_factory=dict)

    @property
    def effective_timeout_ms(self) -> int:
        """Its own TIMEOUT, else the inherited one, else :data:`DEFAULT_TIMEOUT_MS`."""
        for ms in (self.timeout_ms, self.inherited_ms):
            if ms is not None:
                return ms
        return DEFAULT_TIMEOUT_MS


@dataclass
class ServerStats:
    """What a server refused or cut off (counts since start)."""

    refused_connections: int = 0  #: connections over ``max_clients``, answered -EBUSY
    long_lines: int = 0  #: command lines over :data:`MAX_LINE`, answered -EINVAL and closed
    oversized_requests: int = 0  #: OPEN/READBUF/WRITEBUF beyond the bounds, refused
    stalled_clients: int = 0  #: dropped mid-transfer (no progress for ``stall_timeout_s``,
    #: or gone in the middle of a payload)


class PlutoServer(socketserver.ThreadingTCPServer):
    """A TCP server for one emulated Pluto (``context`` + ``data`` path), thread per connection.

    Bind port 0 to get a free port (see :attr:`uri`). :meth:`start` serves in a daemon thread;
    :meth:`close` stops serving, drops every client and closes the data path.
    """

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, context: PlutoContext | None = None, data: DataPath | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, name: str = "pluto",
                 max_clients: int = DEFAULT_MAX_CLIENTS,
                 max_buffer_samples: int = DEFAULT_MAX_BUFFER_SAMPLES,
                 stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S) -> None:
        self.max_clients = check_max_clients(max_clients)
        self.max_buffer_samples = check_max_buffer_samples(max_buffer_samples)
        if isinstance(stall_timeout_s, bool) or not isinstance(stall_timeout_s, (int, float)) \
                or not 0 < stall_timeout_s <= 3600:
            raise EmulatorConfigError("stall_timeout_s",
                                      f"must be in (0, 3600] seconds, got {stall_timeout_s!r}")
        self.stall_timeout_s = float(stall_timeout_s)
        self.context = context if context is not None else PlutoContext.default()
        self.data: DataPath = data if data is not None else LocalLoop()
        self.name = name
        self.stats = ServerStats()
        self._buf_lock = threading.Lock()
        self._busy: dict[str, object] = {}  # device id -> owning connection
        self._clients: set[socket.socket] = set()
        self._conns: set[_Connection] = set()  # open connections (TIMEOUT inheritance)
        self._accepted: dict[socket.socket, _Connection] = {}  # accepted, handler not started
        self._announcements = 0
        self._active = 0  # connections admitted and not yet finished (the cap counts these)
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self.context.description = (f"relaysec emulated ADALM-Pluto {name} "
                                    f"(libiio network protocol, {VERSION_GIT})")
        self.data.configure(self.context.settings())
        self.data.attach_registers(self.context.registers[RX_DEV], self.context.registers[TX_DEV])
        self.context.listeners.append(self._on_settings)
        super().__init__((host, port), _Handler)

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The TCP port actually bound."""
        return int(self.server_address[1])

    @property
    def uri(self) -> str:
        """The libiio URI of this emulated radio, e.g. ``ip:127.0.0.1:30431``."""
        return f"ip:{self.server_address[0]}:{self.port}"

    def start(self) -> PlutoServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve_forever, kwargs={
                "poll_interval": 0.05}, name=f"iiod-{self.name}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, disconnect clients, close the data path. Idempotent."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._buf_lock:
            clients = list(self._clients)
        for s in clients:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.server_close()
        self.data.close()

    def __enter__(self) -> PlutoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_settings(self, settings: Settings) -> None:
        self.data.configure(settings)

    def _warn(self, key: str, message: str, *args: object) -> None:
        """Count one refusal in :attr:`stats` (field ``key``); log the first of each kind as a
        warning, later ones at debug."""
        with self._buf_lock:
            setattr(self.stats, key, getattr(self.stats, key) + 1)
            first = key not in self._warned
            self._warned.add(key)
        log.log(logging.WARNING if first else logging.DEBUG, message, *args)

    # ------------------------------------------------------------------ connections
    @property
    def active_connections(self) -> int:
        """Connections being served now."""
        with self._buf_lock:
            return self._active

    def process_request(self, request: socket.socket,  # type: ignore[override]
                        client_address: tuple[str, int]) -> None:
        """Serve the connection in its own thread, or refuse it (``-EBUSY``) when full."""
        with self._buf_lock:
            full = self._active >= self.max_clients
            if not full:
                self._active += 1
        if full:
            self._warn("refused_connections", "%s: refused a connection from %s: already "
                       "serving %d (max_clients); answered -EBUSY and closed", self.name,
                       client_address[0], self.max_clients)
            with contextlib.suppress(OSError):
                request.send(b"%d\n" % -errno.EBUSY, getattr(socket, "MSG_DONTWAIT", 0))
            self.shutdown_request(request)
            return
        # Registered here, in accept order, not in the handler thread: a connection inherits
        # what was announced before it connected, never what a later one announces first.
        conn = self._register(str(client_address[0]))
        with self._buf_lock:
            self._accepted[request] = conn
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._unregister(conn)
            with self._buf_lock:
                self._accepted.pop(request, None)
                self._active -= 1
            raise

    def process_request_thread(self, request: socket.socket,  # type: ignore[override]
                               client_address: tuple[str, int]) -> None:
        """Run the handler; the connection stops counting against the cap when it ends."""
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            with self._buf_lock:
                self._active -= 1
                orphan = self._accepted.pop(request, None)  # the handler never started
            if orphan is not None:
                self._unregister(orphan)

    def _register(self, host: str) -> _Connection:
        """A new connection from ``host``: it inherits that host's latest open TIMEOUT."""
        with self._buf_lock:
            conn = _Connection(host, inherited_ms=self._inherited(host))
            self._conns.add(conn)
        return conn

    def _unregister(self, conn: _Connection) -> None:
        with self._buf_lock:
            self._conns.discard(conn)

    def _inherited(self, host: str) -> int | None:
        # caller holds _buf_lock
        best: _Connection | None = None
        for c in self._conns:
            if c.host == host and c.timeout_ms is not None and (
                    best is None or c.announced > best.announced):
                best = c
        return None if best is None else best.timeout_ms

    def _announce(self, conn: _Connection, ms: int) -> None:
        with self._buf_lock:
            self._announcements += 1
            conn.timeout_ms, conn.announced = ms, self._announcements

    def timeout_for(self, host: str) -> int:
        """The TIMEOUT (ms) a new connection from ``host`` would use if it announced none.

        libiio announces its timeout on a context's first connection only, and its buffer
        connections keep the value the context had when they were opened. So a connection
        that never sent ``TIMEOUT`` takes the latest one announced by a still-open
        connection from the same host, at the moment it connected; a client on another host,
        or one that has disconnected, never changes it. Without any: :data:`DEFAULT_TIMEOUT_MS`.
        """
        with self._buf_lock:
            ms = self._inherited(host)
        return DEFAULT_TIMEOUT_MS if ms is None else ms

    # ------------------------------------------------------------------ buffers
    def acquire(self, dev: Device, owner: object) -> None:
        with self._buf_lock:
            if self._busy.get(dev.id, owner) is not owner:
                raise IioError(errno.EBUSY, f"{dev.id}: buffer already open")
            self._busy[dev.id] = owner

    def release(self, dev: Device, owner: object, buf: _OpenBuffer) -> None:
        with self._buf_lock:
            if self._busy.get(dev.id) is owner:
                del self._busy[dev.id]
        if buf.channels and buf.channels[0].output and buf.cyclic:
            self.data.stop_tx()

    def busy(self, dev: Device) -> bool:
        with self._buf_lock:
            return dev.id in self._busy


class _Handler(BufferCommands, WireIO, socketserver.StreamRequestHandler):
    """One client connection: read command lines, answer them, in order."""

    server: PlutoServer
    rfile: BinaryIO
    _started: float | None = None

    def setup(self) -> None:
        with self.server._buf_lock:
            conn = self.server._accepted.pop(self.request, None)
            self.server._clients.add(self.request)
        self.conn = conn if conn is not None else self.server._register(
            str(self.client_address[0]))
        super().setup()
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # a reply the client stops reading cannot hold this thread (and its buffers) forever
        set_stall_timeout(self.request, socket.SO_SNDTIMEO, self.server.stall_timeout_s)

    def finish(self) -> None:
        for buf in list(self.conn.buffers.values()):
            self.server.release(buf.device, self.conn, buf)
        self.conn.buffers.clear()
        self.server._unregister(self.conn)
        with self.server._buf_lock:
            self.server._clients.discard(self.request)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        commands = {
            "PRINT": self._print, "ZPRINT": self._unknown, "VERSION": self._version,
            "TIMEOUT": self._timeout, "READ": self._read, "WRITE": self._write,
            "GETTRIG": self._gettrig, "SETTRIG": self._settrig, "SET": self._set,
            "OPEN": self._open, "CLOSE": self._close, "READBUF": self._readbuf,
            "WRITEBUF": self._writebuf, "HELP": self._unknown,
        }
        while True:
            try:
                line = self.rfile.readline(MAX_LINE)
            except OSError:
                return
            if not line:
                return
            self._started = time.monotonic()  # a data transfer's timing model counts from here
            if not line.endswith(b"\n"):
                if len(line) >= MAX_LINE:
                    self._refuse_long_line()
                # else: the connection ended mid-line; a partial command is never executed
                return
            text = line.strip().decode("ascii", "replace")
            tokens = text.split()  # also splits on \x1c-\x1f, which bytes.strip() keeps
            if not tokens:
                continue  # empty (or whitespace-only) lines get no reply
            cmd = tokens[0].upper()
            if cmd == "EXIT":
                return
            try:
                commands.get(cmd, self._unknown)(tokens[1:])
            except IioError as exc:
                log.debug("%s: %s -> %s", self.server.name, text, exc)
                try:
                    self._reply(-exc.errno)
                except OSError:
                    return
            except (ConnectionError, OSError, EOFError) as exc:
                log.debug("%s: connection ended during %s: %s", self.server.name, cmd, exc)
                return
            except Exception:  # a bug in the emulator: tell the client (EIO) and keep serving
                log.exception("%s: internal error while serving %r", self.server.name, text)
                try:
                    self._reply(-errno.EIO)
                except OSError:
                    return

    def _refuse_long_line(self) -> None:
        """A line over MAX_LINE: drop it (bounded), answer -EINVAL, end the connection.

        The rest of the line is never executed: it may be a command's tail or a payload the
        line announced, and the protocol has no framing to resync on, so the connection ends.
        """
        self.server._warn("long_lines", "%s: client %s sent a command line longer than %d bytes; "
                          "answered -EINVAL and closed the connection", self.server.name,
                          self.client_address[0], MAX_LINE)
        dropped = MAX_LINE
        with contextlib.suppress(OSError, ValueError), self._receiving():
            while dropped < _DISCARD_MAX:
                more = self.rfile.readline(min(1 << 16, _DISCARD_MAX - dropped))
                if not more or more.endswith(b"\n"):
                    break
                dropped += len(more)
        with contextlib.suppress(OSError):
            self._reply(-errno.EINVAL)

    def _oversized(self, exc: IioError) -> IioError:
        """Count and log (first one as a warning) a request beyond the bounds; returns it."""
        self.server._warn("oversized_requests", "%s: client %s: %s", self.server.name,
                          self.client_address[0], exc)
        return exc

    # ------------------------------------------------------------------ commands
    def _unknown(self, args: list[str]) -> None:
        self._reply(-errno.EINVAL)

    def _print(self, args: list[str]) -> None:
        self._payload(self.server.context.to_xml())

    def _version(self, args: list[str]) -> None:
        from hw.emu.context import VERSION_MAJOR, VERSION_MINOR
        self._send(f"{VERSION_MAJOR}.{VERSION_MINOR}.{VERSION_GIT[:7]}\n".encode())

    def _timeout(self, args: list[str]) -> None:
        try:
            ms = int(args[0])
        except (IndexError, ValueError):
            raise einval("TIMEOUT needs a number of milliseconds") from None
        if not 0 <= ms <= MAX_TIMEOUT_MS:
            raise einval(f"TIMEOUT {ms} ms outside [0, {MAX_TIMEOUT_MS}]")
        # 0 is libiio's "no timeout"; the server still bounds its waits, by the default
        self.server._announce(self.conn, ms if ms > 0 else DEFAULT_TIMEOUT_MS)
        self._reply(0)

    @property
    def _max_wait_s(self) -> float:
        # The client waits 2x what it tells us (it sends TIMEOUT ms/2); stay well inside it.
        return 0.8 * self.conn.effective_timeout_ms / 1000.0

    def _target(self, args: list[str]) -> tuple[Device, str, Channel | None, str]:
        """Parse ``dev [DEBUG|BUFFER|INPUT chn|OUTPUT chn] attr``."""
        ctx = self.server.context
        if len(args) < 2:
            raise einval("missing device or attribute")
        dev = ctx.device(args[0])
        rest = args[1:]
        if len(rest) == 1:
            return dev, KIND_ATTR, None, rest[0]
        sel = rest[0].upper()
        if len(rest) == 2 and sel in ("DEBUG", "BUFFER"):
            return dev, KIND_DEBUG if sel == "DEBUG" else KIND_BUFFER, None, rest[1]
        if len(rest) == 3 and sel in ("INPUT", "OUTPUT"):
            return dev, KIND_ATTR, dev.channel(rest[1], sel == "OUTPUT"), rest[2]
        raise einval(f"cannot parse attribute address {' '.join(args)!r}")

    def _read(self, args: list[str]) -> None:
        dev, kind, chan, attr = self._target(args)
        value = self.server.context.read_attr(dev, kind, attr, chan)
        self._payload(value.encode() + b"\0")  # a real iiod counts the NUL

    def _write(self, args: list[str]) -> None:
        if len(args) < 3:
            raise einval("WRITE needs an attribute address and a length")
        try:
            length = int(args[-1])
        except ValueError:
            raise einval("WRITE length is not a number") from None
        if not 0 <= length <= 1 << 20:
            raise einval(f"WRITE length {length} out of range")
        data = self._read_exact(length)  # always consume the payload, even on bad addresses
        dev, kind, chan, attr = self._target(args[:-1])
        value = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        self.server.context.write_attr(dev, kind, attr, value, chan)
        self._reply(length)

    def _gettrig(self, args: list[str]) -> None:
        self.server.context.device(args[0] if args else "")
        self._reply(-errno.ENOENT)  # no Pluto device has a trigger

    def _settrig(self, args: list[str]) -> None:
        self.server.context.device(args[0] if args else "")
        self._reply(0 if len(args) == 1 else -errno.ENODEV)


def check_max_clients(value: object) -> int:
    """``max_clients`` as an int in [1, 1024], or :class:`EmulatorConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
        raise EmulatorConfigError("max_clients", f"must be an integer in [1, 1024], got {value!r}")
    return value


def check_max_buffer_samples(value: object) -> int:
    """``max_buffer_samples`` as an int in [64, MAX_BUFFER_SAMPLES], or an error."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 64 <= value <= MAX_BUFFER_SAMPLES:
        raise EmulatorConfigError(
            "max_buffer_samples", f"must be an integer in [64, {MAX_BUFFER_SAMPLES}], "
            f"got {value!r}")
    return value
