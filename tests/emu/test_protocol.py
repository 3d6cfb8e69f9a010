"""The iiod wire protocol of the emulator, byte for byte, with a raw socket client (no libiio)."""

from __future__ import annotations

import socket
import threading
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from hw.emu import PlutoServer


class Client:
    """A minimal iiod client speaking the protocol exactly as libiio 0.24 does."""

    def __init__(self, srv: PlutoServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        self.f = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str) -> int:
        self.send(line.encode() + b"\r\n")
        return self.integer()

    def integer(self) -> int:
        return int(self.f.readline())

    def exact(self, n: int) -> bytes:
        data = self.f.read(n)
        assert len(data) == n
        return data

    def close(self) -> None:
        self.f.close()
        self.sock.close()


@pytest.fixture
def client(emulator: PlutoServer):
    c = Client(emulator)
    yield c
    c.close()


def test_print_is_length_xml_newline_and_parses(client: Client) -> None:
    n = client.cmd("PRINT")
    xml = client.exact(n)
    assert client.exact(1) == b"\n"
    assert xml.startswith(b'<?xml version="1.0" encoding="utf-8"?><!DOCTYPE context [')
    root = ET.fromstring(xml)
    assert root.get("version-major") == "0" and len(root.get("version-git", "")) >= 7
    names = {d.get("id"): d.get("name") for d in root.iter("device")}
    assert names == {"iio:device0": "ad9361-phy", "iio:device1": "xadc",
                     "iio:device2": "cf-ad9361-dds-core-lpc", "iio:device3": "cf-ad9361-lpc"}
    assert b"value=" not in xml.split(b"]>", 1)[1].split(b"<device", 1)[1]  # no values served
    assert client.cmd("TIMEOUT 2500") == 0


def test_read_counts_the_nul_and_write_strips_it(client: Client) -> None:
    n = client.cmd("READ iio:device0 OUTPUT altvoltage0 frequency")
    assert client.exact(n + 1) == b"2400000000\0\n"
    client.send(b"WRITE iio:device0 OUTPUT altvoltage0 frequency 10\r\n915000000\0")
    assert client.integer() == 10
    n = client.cmd("read ad9361-phy OUTPUT altvoltage0 frequency")  # lower case, by name
    assert client.exact(n + 1) == b"915000000\0\n"
    n = client.cmd("READ iio:device0 DEBUG loopback")
    assert client.exact(n + 1) == b"0\0\n"
    n = client.cmd("READ iio:device3 BUFFER length_align_bytes")
    assert client.exact(n + 1) == b"8\0\n"


def test_errors_are_negative_errno(client: Client) -> None:
    assert client.cmd("FROB iio:device0") == -22
    assert client.cmd("ZPRINT") == -22  # zstd clients fall back to PRINT on this
    assert client.cmd("READ iio:device9 x") == -19
    assert client.cmd("READ iio:device0 nosuchattr") == -2
    assert client.cmd("READ iio:device0 INPUT voltage9 rf_bandwidth") == -2
    # channels are matched per direction: the LOs exist only as outputs
    assert client.cmd("READ iio:device0 INPUT altvoltage0 frequency") == -2
    client.send(b"WRITE iio:device0 OUTPUT altvoltage0 frequency 11\r\n9999999999\0")
    assert client.integer() == -22
    client.send(b"WRITE iio:device0 rx_path_rates 2\r\n1\0")
    assert client.integer() == -13  # read-only
    assert client.cmd("GETTRIG iio:device3") == -2
    assert client.cmd("SET iio:device3 BUFFERS_COUNT 0") == -22
    assert client.cmd("SET iio:device3 BUFFERS_COUNT 8") == 0
    assert client.cmd("READBUF iio:device3 16") == -9  # no buffer open


def test_empty_lines_get_no_reply(client: Client) -> None:
    client.send(b"\r\n\r\n")
    assert client.cmd("TIMEOUT 1000") == 0  # the next reply is TIMEOUT's, nothing queued before


def test_readbuf_is_header_mask_and_exact_bytes(emulator: PlutoServer) -> None:
    rx, tx = Client(emulator), Client(emulator)
    try:
        # the model's power-on LOs are 50 MHz apart: put TX on the RX LO, or nothing is heard
        tx.send(b"WRITE iio:device0 OUTPUT altvoltage1 frequency 11\r\n2400000000\0")
        assert tx.integer() == 11
        assert tx.cmd("OPEN iio:device2 256 00000003") == 0
        tone = (np.round(2**14 * np.exp(2j * np.pi * np.arange(256) / 8)))
        words = np.stack([tone.real, tone.imag], axis=1).astype("<i2").tobytes()
        assert tx.cmd(f"WRITEBUF iio:device2 {len(words)}") == 0  # go ahead
        tx.send(words)
        assert tx.integer() == len(words)
        assert rx.cmd("OPEN iio:device3 256 00000003") == 0
        assert rx.cmd("OPEN iio:device3 256 00000003") == -16  # already open here
        assert rx.cmd("READBUF iio:device3 1024") == 1024
        assert rx.f.readline() == b"00000003\n"
        iq = np.frombuffer(rx.exact(1024), "<i2").reshape(-1, 2)
        assert np.max(np.abs(iq[:, 0] - np.round(tone.real / 16))) <= 6
        assert rx.cmd("READBUF iio:device3 1023") == -22  # not whole samples
        assert rx.cmd("OPEN iio:device3 1 00000001") == -16
        assert rx.cmd("CLOSE iio:device3") == 0
        assert rx.cmd("OPEN iio:device3 64 00000001") == 0  # I only: 2 bytes per sample
        assert rx.cmd("READBUF iio:device3 128") == 128
        assert rx.f.readline() == b"00000001\n"
        assert len(rx.exact(128)) == 128
        rx.send(b"CLOSE iio:device3\r\n")
        assert rx.integer() == 0
        rx.send(b"\r\nEXIT\r\n")
        assert rx.f.read(1) == b""  # server closed the connection
    finally:
        rx.close()
        tx.close()


def test_a_second_connection_cannot_open_a_busy_device(emulator: PlutoServer) -> None:
    a, b = Client(emulator), Client(emulator)
    try:
        assert a.cmd("OPEN iio:device3 64 00000003") == 0
        assert b.cmd("OPEN iio:device3 64 00000003") == -16
        a.close()  # a dropped connection releases its buffers
        for _ in range(100):
            if not emulator.busy(emulator.context.device("iio:device3")):
                break
            threading.Event().wait(0.01)
        assert b.cmd("OPEN iio:device3 64 00000003") == 0
    finally:
        b.close()


def test_many_concurrent_connections(emulator: PlutoServer) -> None:
    results: list[bytes] = []

    def worker() -> None:
        c = Client(emulator)
        try:
            for _ in range(20):
                n = c.cmd("READ iio:device0 INPUT voltage0 rf_bandwidth")
                results.append(c.exact(n + 1))
        finally:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [b"18000000\0\n"] * 160


class _SpyPath:
    """A data path that records what WRITEBUF handed it (and when the request arrived)."""

    def __init__(self) -> None:
        self.pushed: list[tuple[np.ndarray, float | None]] = []
        self.rx_data = np.zeros(0, np.complex64)

    def configure(self, settings: object) -> None:
        return None

    def attach_registers(self, rx: object, tx: object) -> None:
        return None

    def set_kernel_buffers(self, count: int, *, output: bool = False) -> None:
        return None

    def start_rx(self) -> None:
        return None

    def rx(self, n: int, *, max_wait_s: float, started: float | None = None) -> np.ndarray:
        return self.rx_data[:n]

    def tx(self, iq: np.ndarray, *, cyclic: bool, max_wait_s: float,
           started: float | None = None) -> None:
        self.pushed.append((iq.copy(), started))

    def stop_tx(self) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.mark.parametrize("mask,cols", [("00000003", (0, 1)), ("00000001", (0,)),
                                       ("00000002", (1,))])
def test_writebuf_payload_is_converted_exactly_and_stamped(mask: str, cols: tuple[int, ...]
                                                           ) -> None:
    """The payload is read into a reused buffer and converted in place (int16 / 32768), in
    chunks for large pushes, for I+Q, I only and Q only; the path gets the monotonic time the
    WRITEBUF line arrived, which its USB model counts from."""
    import time

    spy = _SpyPath()
    with PlutoServer(data=spy) as srv:  # type: ignore[arg-type]
        c = Client(srv)
        try:
            n = 70_000  # more than one 64 k-sample conversion chunk
            rng = np.random.default_rng(3)
            words = rng.integers(-32768, 32767, (n, len(cols)), endpoint=True).astype("<i2")
            assert c.cmd(f"OPEN iio:device2 {n} {mask}") == 0
            for _ in range(2):  # the second push reuses the connection's receive buffer
                before = time.monotonic()
                assert c.cmd(f"WRITEBUF iio:device2 {words.nbytes}") == 0
                c.send(words.tobytes())
                assert c.integer() == words.nbytes
                iq, started = spy.pushed[-1]
                assert started is not None and before <= started <= time.monotonic()
                comp = iq.view(np.float32).reshape(n, 2)
                for i, col in enumerate(cols):
                    np.testing.assert_array_equal(comp[:, col], words[:, i] / np.float32(32768))
                for col in {0, 1} - set(cols):
                    assert not comp[:, col].any()
                words = words[::-1].copy()
        finally:
            c.close()


def test_writebuf_zero_chunks_are_skipped_and_all_zero_pushes_shared() -> None:
    """A streaming client pushes mostly zeros: a chunk of zeros is not converted (the block
    starts at zero) and an all-zero push hands the path one shared read-only block; a push
    with samples only past its first 64 k-sample chunk converts exactly."""
    spy = _SpyPath()
    with PlutoServer(data=spy) as srv:  # type: ignore[arg-type]
        c = Client(srv)
        try:
            n = 70_000
            words = np.zeros((n, 2), "<i2")
            words[66_000:66_010] = [[-32768, 32767]] * 10
            assert c.cmd(f"OPEN iio:device2 {n} 00000003") == 0
            for w in (np.zeros_like(words), words, np.zeros_like(words)):
                assert c.cmd(f"WRITEBUF iio:device2 {w.nbytes}") == 0
                c.send(w.tobytes())
                assert c.integer() == w.nbytes
            first, second, third = (iq for iq, _ in spy.pushed)
            assert first.shape == (n,) and not first.any() and not third.any()
            comp = second.view(np.float32).reshape(n, 2)
            np.testing.assert_array_equal(comp, words / np.float32(32768))
        finally:
            c.close()
    from hw.emu.buffers import _zeros

    z = _zeros(n)
    assert z is _zeros(n) and not z.flags.writeable and not z.any()


@pytest.mark.parametrize("mask,cols", [("00000003", [0, 1]), ("00000001", [0]),
                                       ("00000002", [1])])
def test_readbuf_codes_are_rounded_and_clipped_exactly(mask: str, cols: list[int]) -> None:
    """READBUF sends round(x * 2048) clipped to the 12-bit range, converted in place in
    reused buffers over several chunks, for I+Q, I only and Q only."""
    spy = _SpyPath()
    n = 70_000
    rng = np.random.default_rng(5)
    spy.rx_data = (rng.uniform(-1.3, 1.3, n) + 1j * rng.uniform(-1.3, 1.3, n)).astype(np.complex64)
    # exact halves of a code (rounded to even), the clip edges and beyond
    spy.rx_data[:8] = np.array([0.5, 1.5, -0.5, -2.5, 2047.5, -2048.5, 2047.49, -2049.0],
                               np.float32) / np.float32(2048) * (1 + 1j)
    expect = np.clip(np.rint(spy.rx_data.view(np.float32).reshape(n, 2) * np.float32(2048)),
                     -2048, 2047).astype("<i2")[:, cols]
    with PlutoServer(data=spy) as srv:  # type: ignore[arg-type]
        c = Client(srv)
        try:
            assert c.cmd(f"OPEN iio:device3 {n} {mask}") == 0
            for _ in range(2):
                nbytes = 2 * len(cols) * n
                assert c.cmd(f"READBUF iio:device3 {nbytes}") == nbytes
                assert c.f.readline() == mask.encode() + b"\n"
                got = np.frombuffer(c.exact(nbytes), "<i2").reshape(n, len(cols))
                np.testing.assert_array_equal(got, expect)
        finally:
            c.close()


def test_writebuf_converts_the_span_between_zeros_exactly() -> None:
    """An I+Q push is converted only from its first to its last non-zero sample (a streaming
    client's block is zeros around a burst): the block equals the whole conversion, for
    bursts at either end, one component only, extreme codes, within and across the 64 k
    chunks."""
    spy = _SpyPath()
    n = 70_000
    rng = np.random.default_rng(5)
    blocks = []
    for a, b in ((0, 1), (n - 1, n), (0, n), (100, 101), (65_000, 66_000), (65_535, 65_537),
                 (3, 16_000)):
        w = np.zeros((n, 2), "<i2")
        w[a:b] = rng.integers(-32768, 32767, (b - a, 2), endpoint=True)
        w[a, 0] = 0  # the first sample sounds in Q only
        w[a, 1] = -32768
        w[b - 1, 1] = 0  # the last in I only
        w[b - 1, 0] = 1
        blocks.append(w)
    with PlutoServer(data=spy) as srv:  # type: ignore[arg-type]
        c = Client(srv)
        try:
            assert c.cmd(f"OPEN iio:device2 {n} 00000003") == 0
            for w in blocks:
                assert c.cmd(f"WRITEBUF iio:device2 {w.nbytes}") == 0
                c.send(w.tobytes())
                assert c.integer() == w.nbytes
        finally:
            c.close()
    for w, (iq, _) in zip(blocks, spy.pushed, strict=True):
        want = (w / np.float32(32768)).astype(np.float32)
        assert np.array_equal(iq.view(np.float32).reshape(n, 2), want)
        assert np.array_equal(np.signbit(iq.view(np.float32)), np.signbit(want.ravel()))
