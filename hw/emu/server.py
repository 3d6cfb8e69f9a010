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

Wire-format details (exact byte counts) are in ``docs/emulator.md`` and the spec digest
``pluto-iio.md``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from hw.emu.ad9361 import PlutoContext, Settings
from hw.emu.context import KIND_ATTR, KIND_BUFFER, KIND_DEBUG, VERSION_GIT, Channel, Device
from hw.emu.datapath import DataPath, LocalLoop
from hw.emu.errors import IioError, einval

log = logging.getLogger(__name__)

_FORMAT_RE = re.compile(r"^(le|be):([sSuU])(\d+)/(\d+)(?:X(\d+))?>>(\d+)$")
#: Longest single wait the server allows itself when the client sent no TIMEOUT (ms); libiio's
#: default client timeout is 5000 ms and it sends ``TIMEOUT 2500`` right after ``PRINT``.
DEFAULT_TIMEOUT_MS = 2500
MAX_LINE = 4096


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

    def mask_text(self) -> str:
        words = [(self.mask >> (32 * i)) & 0xFFFFFFFF for i in range(self.mask_words)]
        return "".join(f"{w:08x}" for w in reversed(words))


@dataclass
class _Connection:
    timeout_ms: int | None = None  # what this connection's client sent with TIMEOUT
    buffers: dict[str, _OpenBuffer] = field(default_factory=dict)


class PlutoServer(socketserver.ThreadingTCPServer):
    """A TCP server for one emulated Pluto (``context`` + ``data`` path), thread per connection.

    Bind port 0 to get a free port (see :attr:`uri`). :meth:`start` serves in a daemon thread;
    :meth:`close` stops serving, drops every client and closes the data path.
    """

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, context: PlutoContext | None = None, data: DataPath | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, name: str = "pluto") -> None:
        self.context = context if context is not None else PlutoContext.default()
        self.data: DataPath = data if data is not None else LocalLoop()
        self.name = name
        self._buf_lock = threading.Lock()
        self._busy: dict[str, object] = {}  # device id -> owning connection
        self._clients: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        #: Latest TIMEOUT any client sent: buffer connections inherit their context's timeout
        #: on the client side without necessarily announcing it, so they use this one.
        self.timeout_ms = DEFAULT_TIMEOUT_MS
        self.context.description = (f"relaysec emulated ADALM-Pluto {name} "
                                    f"(libiio network protocol, {VERSION_GIT})")
        self.data.configure(self.context.settings())
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


class _Handler(socketserver.StreamRequestHandler):
    """One client connection: read command lines, answer them, in order."""

    server: PlutoServer
    rfile: BinaryIO

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server._buf_lock:
            self.server._clients.add(self.request)
        self.conn = _Connection()

    def finish(self) -> None:
        for buf in list(self.conn.buffers.values()):
            self.server.release(buf.device, self.conn, buf)
        self.conn.buffers.clear()
        with self.server._buf_lock:
            self.server._clients.discard(self.request)
        with contextlib.suppress(OSError):
            super().finish()

    # ------------------------------------------------------------------ I/O
    def _send(self, data: bytes) -> None:
        self.wfile.write(data)

    def _reply(self, value: int) -> None:
        self._send(b"%d\n" % value)

    def _payload(self, data: bytes) -> None:
        self._send(b"%d\n" % len(data) + data + b"\n")

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
            text = line.strip().decode("ascii", "replace")
            if not text:
                continue  # empty lines get no reply
            tokens = text.split()
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
        self.conn.timeout_ms = ms if ms > 0 else DEFAULT_TIMEOUT_MS
        self.server.timeout_ms = self.conn.timeout_ms
        self._reply(0)

    @property
    def _max_wait_s(self) -> float:
        # The client waits 2x what it tells us (it sends TIMEOUT ms/2); stay well inside it.
        ms = self.conn.timeout_ms if self.conn.timeout_ms is not None else self.server.timeout_ms
        return 0.8 * ms / 1000.0

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

    def _read_exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if data is None or len(data) != n:
            raise EOFError(f"connection closed after {0 if data is None else len(data)}/{n} bytes")
        return data

    def _gettrig(self, args: list[str]) -> None:
        self.server.context.device(args[0] if args else "")
        self._reply(-errno.ENOENT)  # no Pluto device has a trigger

    def _settrig(self, args: list[str]) -> None:
        self.server.context.device(args[0] if args else "")
        self._reply(0 if len(args) == 1 else -errno.ENODEV)

    def _set(self, args: list[str]) -> None:
        if len(args) != 3 or args[1].upper() != "BUFFERS_COUNT":
            raise einval("only SET <dev> BUFFERS_COUNT <n> is supported")
        dev = self.server.context.device(args[0])
        try:
            count = int(args[2])
        except ValueError:
            raise einval("BUFFERS_COUNT is not a number") from None
        if count < 1:
            raise einval("BUFFERS_COUNT must be >= 1")
        if self.server.busy(dev):
            raise IioError(errno.EBUSY, f"{dev.id}: buffer active")
        self.server.context.buffers_count = count
        self.server.data.set_kernel_buffers(count)
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
        return buf, nbytes

    def _readbuf(self, args: list[str]) -> None:
        buf, nbytes = self._buffer(args, output=False)
        n = nbytes // buf.sample_size
        iq = self.server.data.rx(n, max_wait_s=self._max_wait_s)
        codes = np.clip(np.rint(np.asarray(iq, np.complex64).view(np.float32) * 2048.0),
                        -2048, 2047).astype("<i2").reshape(n, 2)
        cols = [codes[:, 0] if c.scan_index == 0 else codes[:, 1] for c in buf.channels]
        data = np.stack(cols, axis=1).astype("<i2").tobytes()
        self._send(b"%d\n" % nbytes + buf.mask_text().encode() + b"\n" + data)

    def _writebuf(self, args: list[str]) -> None:
        buf, nbytes = self._buffer(args, output=True)
        if buf.cyclic and buf.pushed:
            raise IioError(errno.EBUSY, "cyclic buffer already pushed")
        self._reply(0)
        data = self._read_exact(nbytes)
        n = nbytes // buf.sample_size
        words = np.frombuffer(data, "<i2").reshape(n, len(buf.channels)).astype(np.float32)
        iq = np.zeros(n, np.complex64)
        for i, ch in enumerate(buf.channels):
            if ch.scan_index == 0:
                iq.real = words[:, i] / 32768.0
            else:
                iq.imag = words[:, i] / 32768.0
        self.server.data.tx(iq, cyclic=buf.cyclic, max_wait_s=self._max_wait_s)
        buf.pushed = True
        self._reply(nbytes)
