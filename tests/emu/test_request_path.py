"""Per-request work the emulator now does once: a buffer's wire layout worked out at OPEN, a
connection's stall timeout packed once, against what each request computed before."""

from __future__ import annotations

import socket
import types

import numpy as np
import pytest

from hw.emu import PlutoContext
from hw.emu import wire as wire_mod
from hw.emu.buffers import _bytes_per_sample, _OpenBuffer


@pytest.mark.parametrize("dev,mask", [("iio:device3", 3), ("iio:device3", 1),
                                      ("iio:device3", 2), ("iio:device2", 3)])
def test_open_buffer_layout_is_what_each_request_computed(dev: str, mask: int) -> None:
    d = PlutoContext.default().device(dev)
    scan = [c for c in d.scan_channels() if c.scan_index is not None]
    chans = [c for i, c in enumerate(scan) if mask >> i & 1]
    buf = _OpenBuffer(d, 1024, mask, 1, False, chans, _bytes_per_sample(chans))
    cols = [0 if c.scan_index == 0 else 1 for c in buf.channels]  # what READBUF/WRITEBUF did
    assert buf.cols == cols and buf.pair == (cols == [0, 1])
    assert buf.mask_line == buf.mask_text().encode() + b"\n"


class _Conn(wire_mod.WireIO):
    def __init__(self, sock: socket.socket) -> None:
        self.request = sock
        self.rfile = sock.makefile("rb")
        self.server = types.SimpleNamespace(stall_timeout_s=2.5, _warn=lambda *a: None,
                                            name="t")
        self.client_address = ("127.0.0.1", 0)


def test_read_into_sets_and_clears_the_stall_timeout_and_reads_split_payloads() -> None:
    a, b = socket.socketpair()
    try:
        conn = _Conn(b)
        assert conn._stall_timeval() == wire_mod._timeval(2.5)
        calls: list[bytes] = []
        real = b.setsockopt
        conn.request = types.SimpleNamespace(  # type: ignore[assignment]
            setsockopt=lambda lvl, opt, val: (calls.append(val), real(lvl, opt, val)))
        out = np.empty(3000, "<i2")
        data = np.arange(3000, dtype="<i2").tobytes()
        a.sendall(data[:1000])
        a.sendall(data[1000:])
        conn._read_into(out)
        assert out.tobytes() == data
        assert calls == [wire_mod._timeval(2.5), wire_mod._timeval(0)]
        a.sendall(data[:10])
        a.shutdown(socket.SHUT_WR)  # the client goes away mid-payload
        with pytest.raises(wire_mod.StalledError, match="10/6000"):
            conn._read_into(out)
        assert b.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) == wire_mod._timeval(0)
    finally:
        a.close()
        b.close()
