"""The emulator against hostile or careless clients (issue 11): each finding of the attack review
is a regression test here. Raw sockets on 127.0.0.1 only; no libiio needed."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from hw.emu import Air, LocalLoop, MediumPath, PlutoContext, PlutoServer
from hw.emu import datapath as datapath_mod
from hw.emu.errors import IioError
from hw.emu.server import DEFAULT_TIMEOUT_MS, MAX_LINE
from hw.loopback import ManualClock, Medium
from relaysec.cli import main
from tests.emu.test_protocol import Client

ROOT = Path(__file__).resolve().parents[2]
RX, TX = "iio:device3", "iio:device2"


class Raw(Client):
    """test_protocol's iiod client, optionally with a small receive buffer (a client that stops
    reading), and able to tell when the server hung up."""

    def __init__(self, srv: PlutoServer, *, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", srv.port))
        self.f = self.sock.makefile("rb")

    def at_eof(self) -> bool:
        """True when the server closed the connection (EOF or reset)."""
        try:
            return self.f.read(1) == b""
        except ConnectionResetError:
            return True


@pytest.fixture
def clients(emulator: PlutoServer) -> Iterator[Callable[..., Raw]]:
    """Factory of raw clients of :func:`emulator`, all closed at the end."""
    made: list[Raw] = []

    def make(**kwargs: object) -> Raw:
        made.append(Raw(emulator, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for c in made:
        c.close()


def _eventually(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


# ------------------------------------------------------------------ oversized READBUF / memory
def test_oversized_readbuf_is_refused_without_allocating(emulator: PlutoServer,
                                                         clients: Callable[..., Raw]) -> None:
    """Finding: a 400 MB READBUF made the emulator allocate 2.45 GB."""
    c = clients()
    assert c.cmd(f"OPEN {RX} 1024 00000003") == 0  # 1024 samples x 2 channels x 2 bytes
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        assert c.cmd(f"READBUF {RX} 400000000") == -errno.EINVAL
        assert c.cmd(f"READBUF {RX} 4100") == -errno.EINVAL  # one sample more than opened
        assert c.cmd(f"OPEN {TX} 1024 00000003") == 0
        assert c.cmd(f"WRITEBUF {TX} 400000000") == -errno.EINVAL  # no go-ahead, no payload
        assert c.cmd("OPEN iio:device2 1 00000003") == -errno.EBUSY
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"an oversized request allocated {peak} bytes"
    assert emulator.stats.oversized_requests == 3
    assert c.cmd(f"READBUF {RX} 4096") == 4096  # the connection still works, exactly the buffer
    assert c.f.readline() == b"00000003\n" and len(c.f.read(4096)) == 4096


def test_open_beyond_the_buffer_limit_is_enomem_without_allocating(
        clients: Callable[..., Raw]) -> None:
    c = clients()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        assert c.cmd(f"OPEN {RX} 100000000 00000003") == -errno.ENOMEM
        assert c.cmd(f"OPEN {RX} {(1 << 22) + 1} 00000001") == -errno.ENOMEM
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert c.cmd(f"OPEN {RX} {1 << 22} 00000001") == 0  # the limit itself is fine


def test_readbuf_memory_is_bounded_by_the_opened_buffer() -> None:
    """A full READBUF costs a fixed multiple of the buffer the client opened (the data path's
    ~40 B/sample; the wire conversion goes in chunks), whatever it asks for."""
    n = 1 << 18
    with PlutoServer(data=LocalLoop(seed=1), max_buffer_samples=n) as srv:
        c = Raw(srv)
        try:
            assert c.cmd(f"OPEN {RX} {n} 00000003") == 0
            assert c.cmd(f"OPEN {TX} {n + 1} 00000003") == -errno.ENOMEM
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                assert c.cmd(f"READBUF {RX} {4 * n}") == 4 * n
                assert c.f.readline() == b"00000003\n"
                got = 0
                while got < 4 * n:  # read in slices: the test's own copy stays small
                    got += len(c.f.read(min(1 << 16, 4 * n - got)))
                peak = tracemalloc.get_traced_memory()[1] - before
            finally:
                tracemalloc.stop()
        finally:
            c.close()
    assert peak < 48 * n + (2 << 20), f"{peak / n:.1f} bytes per sample"


# ------------------------------------------------------------------ buffers released
def test_a_client_gone_after_an_oversized_read_releases_its_buffer(
        emulator: PlutoServer, clients: Callable[..., Raw]) -> None:
    """Finding: after the 400 MB read the RX buffer stayed held and every OPEN got EBUSY."""
    a, b = clients(), clients()
    assert a.cmd(f"OPEN {RX} 4096 00000003") == 0
    assert a.cmd(f"READBUF {RX} 400000000") == -errno.EINVAL
    a.send(f"READBUF {RX} 16384\r\n".encode())  # and leave without reading the answer
    a.close()
    assert _eventually(lambda: b.cmd(f"OPEN {RX} 4096 00000003") == 0)  # EBUSY until released
    assert _eventually(lambda: emulator.active_connections == 1)


def test_a_client_that_stops_reading_is_dropped_and_releases_its_buffer() -> None:
    with PlutoServer(data=LocalLoop(seed=1), stall_timeout_s=0.3) as srv:
        a = Raw(srv, rcvbuf=4096)
        b = Raw(srv)
        try:
            assert a.cmd(f"OPEN {RX} 262144 00000003") == 0
            a.send(f"READBUF {RX} 1048576\r\n".encode() * 8)  # 8 MB it never reads
            assert b.cmd(f"OPEN {RX} 1024 00000003") == -errno.EBUSY  # held while a is alive
            assert _eventually(lambda: not srv.busy(srv.context.device(RX)), timeout=10)
            assert b.cmd(f"OPEN {RX} 1024 00000003") == 0
            assert srv.stats.stalled_clients == 1
        finally:
            a.close()
            b.close()


def test_a_client_that_stalls_mid_payload_is_dropped_and_releases_its_buffer() -> None:
    with PlutoServer(data=LocalLoop(seed=1), stall_timeout_s=0.3) as srv:
        a, b = Raw(srv), Raw(srv)
        try:
            assert a.cmd(f"OPEN {TX} 1024 00000003") == 0
            assert a.cmd(f"WRITEBUF {TX} 4096") == 0  # go ahead
            a.send(b"\0" * 100)  # ... and then nothing more, connection left open
            assert _eventually(lambda: not srv.busy(srv.context.device(TX)), timeout=5)
            assert b.cmd(f"OPEN {TX} 1024 00000003") == 0
            assert srv.stats.stalled_clients == 1
            assert a.at_eof()
        finally:
            a.close()
            b.close()


# ------------------------------------------------------------------ per-client TIMEOUT
@pytest.fixture
def paced() -> Iterator[PlutoServer]:
    """A radio whose RX takes real time: 1 MS/s, each READBUF waits for its air (bounded by the
    connection's timeout), so how long a READBUF takes shows the timeout it used."""
    srv = PlutoServer(data=LocalLoop(seed=1, paced=True))
    srv.context.preset(sample_rate=1_000_000)
    with srv:
        yield srv


N_PACED = 500_000  # 0.5 s of air at 1 MS/s


def _timed_read(c: Raw) -> float:
    if c.cmd(f"OPEN {RX} {N_PACED} 00000003") != 0:
        raise AssertionError("OPEN failed")
    t0 = time.monotonic()
    assert c.cmd(f"READBUF {RX} {4 * N_PACED}") == 4 * N_PACED
    c.f.readline()
    c.f.read(4 * N_PACED)
    elapsed = time.monotonic() - t0
    assert c.cmd(f"CLOSE {RX}") == 0
    return elapsed


def test_one_clients_timeout_is_not_anothers(paced: PlutoServer) -> None:
    """Finding: one client's TIMEOUT became every other client's timeout."""
    b = Raw(paced)  # never announces a timeout (like a libiio buffer connection)
    assert b.cmd(f"GETTRIG {RX}") == -errno.ENOENT  # b is being served
    a = Raw(paced)
    try:
        assert a.cmd("TIMEOUT 1") == 0  # after b connected: b keeps the default
        assert _timed_read(b) >= 0.45  # waited for the whole 0.5 s of air
        a.close()  # a client that has left changes nothing either
        assert _eventually(lambda: paced.active_connections == 1)  # the server saw it leave
        late = Raw(paced)
        try:
            assert _timed_read(late) >= 0.45
        finally:
            late.close()
        own = Raw(paced)
        try:
            assert own.cmd("TIMEOUT 2500") == 0
            other = Raw(paced)
            assert other.cmd("TIMEOUT 1") == 0
            other.close()
            assert _timed_read(own) >= 0.45  # its own announcement is its own
            assert own.cmd("TIMEOUT 50") == 0  # the control: a short timeout is visible
            assert _timed_read(own) < 0.4
        finally:
            own.close()
    finally:
        a.close()
        b.close()


def test_timeout_inheritance_stays_within_one_host(paced: PlutoServer) -> None:
    """libiio announces TIMEOUT on its context connection only; its buffer connections (same
    host, opened later) must use it. No other host, and no closed connection, changes it."""
    a = Raw(paced)
    try:
        assert a.cmd("TIMEOUT 200") == 0
        assert paced.timeout_for("127.0.0.1") == 200
        assert paced.timeout_for("192.0.2.7") == DEFAULT_TIMEOUT_MS  # another host: untouched
        buffer_conn = Raw(paced)  # connects after the announcement, as libiio's does
        try:
            assert _timed_read(buffer_conn) < 0.4  # used 0.8 x 200 ms, not the default
        finally:
            buffer_conn.close()
        assert a.cmd(f"TIMEOUT {3_600_000 + 1}") == -errno.EINVAL
        assert a.cmd("TIMEOUT -5") == -errno.EINVAL
    finally:
        a.close()
    assert _eventually(lambda: paced.timeout_for("127.0.0.1") == DEFAULT_TIMEOUT_MS)


# ------------------------------------------------------------------ line length
def test_a_long_line_is_refused_never_split(emulator: PlutoServer,
                                            clients: Callable[..., Raw]) -> None:
    """Finding: a line over 4096 bytes was executed as two commands (its tail a WRITE here)."""
    c = clients()
    tail = b"WRITE iio:device0 OUTPUT altvoltage0 frequency 10\r\n915000000\0"
    c.send(b"A" * MAX_LINE + tail)
    assert c.integer() == -errno.EINVAL
    assert c.at_eof()  # no resync possible: the connection ends
    assert emulator.context.settings().rx_lo == 2_400_000_000  # the tail never ran
    assert emulator.stats.long_lines == 1


def test_line_length_boundary(clients: Callable[..., Raw]) -> None:
    c = clients()
    line = b"TIMEOUT 1000" + b" " * (MAX_LINE - 14) + b"\r\n"
    assert len(line) == MAX_LINE
    c.send(line)
    assert c.integer() == 0  # exactly MAX_LINE bytes, line end included: served
    c.send(b" " + line)
    assert c.integer() == -errno.EINVAL
    assert c.at_eof()


def test_an_unterminated_line_is_never_executed(emulator: PlutoServer,
                                                clients: Callable[..., Raw]) -> None:
    c = clients()
    c.send(f"SET {RX} BUFFERS_COUNT 9".encode())  # no line end, then the client hangs up
    c.sock.shutdown(socket.SHUT_WR)
    assert c.at_eof()
    assert emulator.context.buffers_count == 4


def test_buffers_count_is_bounded(clients: Callable[..., Raw]) -> None:
    c = clients()
    assert c.cmd(f"SET {RX} BUFFERS_COUNT 64") == 0
    assert c.cmd(f"SET {RX} BUFFERS_COUNT 65") == -errno.EINVAL
    assert c.cmd(f"SET {RX} BUFFERS_COUNT 1000000000") == -errno.EINVAL


# ------------------------------------------------------------------ connection cap
def test_connections_beyond_the_cap_are_refused_cleanly() -> None:
    """Finding: connections were unbounded (one thread each)."""
    with PlutoServer(data=LocalLoop(seed=1), max_clients=3) as srv:
        held = [Raw(srv) for _ in range(3)]
        try:
            for c in held:
                assert c.cmd("TIMEOUT 1000") == 0
            extra = Raw(srv)
            try:
                assert extra.integer() == -errno.EBUSY  # unsolicited answer, then closed
                assert extra.at_eof()
            finally:
                extra.close()
            assert srv.stats.refused_connections == 1
            assert srv.active_connections == 3
            held.pop().close()
            assert _eventually(lambda: srv.active_connections == 2)
            again = Raw(srv)
            held.append(again)
            assert again.cmd("TIMEOUT 1000") == 0  # a freed slot serves again
        finally:
            for c in held:
                c.close()


def test_the_cap_is_validated() -> None:
    from hw.emu.errors import EmulatorConfigError

    for bad in (0, -1, 5000, True, 2.5):
        with pytest.raises(EmulatorConfigError, match="max_clients"):
            PlutoServer(max_clients=bad)  # type: ignore[arg-type]
    with pytest.raises(EmulatorConfigError, match="max_buffer_samples"):
        PlutoServer(max_buffer_samples=1 << 30)


# ------------------------------------------------------------------ TX floods, cyclic pauses
def _medium_path(clock: object) -> tuple[Medium, MediumPath, MediumPath]:
    m = Medium(1_000_000, seed=1, clock=clock, rx_backlog=3e6,  # type: ignore[arg-type]
               start_delay_max=0)
    air = Air(m)
    a, b = MediumPath(m.add_radio("a"), air), MediumPath(m.add_radio("b"), air)
    m.set_link("a", "b", snr_db=30)
    ctx = PlutoContext.default()
    ctx.preset(sample_rate=1_000_000, lo_hz=2_400_000_000)
    for p in (a, b):
        p.configure(ctx.settings())
    return m, a, b


def test_cyclic_tx_left_running_does_not_render_the_whole_pause() -> None:
    """A cyclic buffer left on for a minute before anyone reads: the reader gets its window
    (tone heard), and the emulator does not allocate a minute of air to get there."""
    clock = ManualClock()
    m, a, b = _medium_path(clock)
    try:
        clock.set(1000)
        tone = (0.2 * np.exp(2j * np.pi * np.arange(1024) / 16)).astype(np.complex64)
        a.tx(tone, cyclic=True, max_wait_s=1)
        clock.set(60_000_000)  # a minute later, a client opens RX
        tracemalloc.start()
        try:
            b.start_rx()
            x = b.rx(4096, max_wait_s=1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 << 20, f"{peak / 1e6:.0f} MB for a 4096-sample read"
        spec = np.abs(np.fft.fft(x)) ** 2
        assert np.argmax(spec) == 4096 // 16  # the tone, at fs/16
    finally:
        m.close()


def test_tx_pushes_beyond_the_queue_fail_instead_of_piling_up() -> None:
    clock = ManualClock()
    m, a, _b = _medium_path(clock)
    try:
        block = np.zeros(10_000, np.complex64)
        a.set_kernel_buffers(4)
        with pytest.raises(IioError) as exc:
            for _ in range(20):  # each push may wait at most 1 ms: the queue cannot drain
                a.tx(block, cyclic=False, max_wait_s=0.001)
        assert exc.value.errno == errno.ETIMEDOUT and "TX queue full" in str(exc.value)
        for _ in range(3):  # with time to drain, pushes wait (the clock jumps) and go through
            a.tx(block, cyclic=False, max_wait_s=1.0)
    finally:
        m.close()


def test_tx_flood_on_the_sim_clock_and_local_loop_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import hw.emu.air as air_mod

    monkeypatch.setattr(air_mod, "TX_QUEUE_MAX_SAMPLES", 50_000)
    m, a, _b = _medium_path("sim")
    try:
        with pytest.raises(IioError) as exc:
            for _ in range(10):
                a.tx(np.zeros(10_000, np.complex64), cyclic=False, max_wait_s=1)
        assert exc.value.errno == errno.ENOBUFS
    finally:
        m.close()
    monkeypatch.setattr(datapath_mod, "LOCAL_QUEUE_MAX_SAMPLES", 50_000)
    loop = LocalLoop()
    with pytest.raises(IioError) as exc:
        for _ in range(10):
            loop.tx(np.zeros(10_000, np.complex64), cyclic=False, max_wait_s=1)
    assert exc.value.errno == errno.ENOBUFS
    loop.configure(PlutoContext.default().settings())
    loop.rx(50_000, max_wait_s=1)  # a reader drains it; pushes go through again
    loop.tx(np.zeros(10_000, np.complex64), cyclic=False, max_wait_s=1)


# ------------------------------------------------------------------ relaysec emulate flags
BAD_FLAGS = [
    (["--sample-rate", "0"], "--sample-rate"),  # finding: 0 silently meant the default
    (["--sample-rate", "-1"], "--sample-rate"),
    (["--sample-rate", "nan"], "--sample-rate"),
    (["--sample-rate", "1000"], "--sample-rate"),
    (["--sample-rate", "2500000.5"], "--sample-rate"),
    (["--radios", "0"], "--radios"),
    (["--radios", "100000"], "--radios"),
    (["--base-port", "70000"], "--base-port"),
    (["--base-port", "-3"], "--base-port"),
    (["--host", "localhost"], "--host"),
    (["--host", "999.1.1.1"], "--host"),
    (["--seed", "-1"], "--seed"),
    (["--snr", "nan"], "--snr"),
    (["--snr", "1e300"], "--snr"),
    (["--self-snr", "inf"], "--self-snr"),
    (["--channel", "moon"], "--channel"),
    (["--ppm", "1", "2"], "--ppm"),
    (["--ppm", "1e9"], "--ppm"),
    (["--profile", "P99"], "--profile"),
    (["--lo", "1"], "--lo"),
    (["--lo", "inf"], "--lo"),
    (["--speed", "0"], "--speed"),
    (["--speed", "-1"], "--speed"),
    (["--speed", "1e9"], "--speed"),
    (["--max-clients", "0"], "--max-clients"),
    (["--max-buffer-samples", "1"], "--max-buffer-samples"),
]


@pytest.mark.parametrize(("argv", "flag"), BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_emulate_rejects_each_bad_flag_by_name(argv: list[str], flag: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "--radios", "3", *argv]) == 2
    out = capsys.readouterr()
    assert out.out == ""  # no URIs: nothing was started
    assert flag in out.err and "Traceback" not in out.err, out.err


@pytest.mark.parametrize(("argv", "flag"), [
    (["--seed", "x"], "--seed"), (["--clock", "moon"], "--clock"),
    (["--radios", "2.5"], "--radios"), (["--max-clients", "many"], "--max-clients")])
def test_emulate_unparsable_flags_exit_2_naming_the_flag(
        argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["emulate", *argv])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


def test_emulate_creates_the_record_dir_only_when_every_flag_is_valid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "rec"
    assert main(["emulate", "--record", str(target), "--speed", "0"]) == 2
    assert not target.exists()
    (tmp_path / "file").write_text("x")
    assert main(["emulate", "--record", str(tmp_path / "file")]) == 2
    assert "--record" in capsys.readouterr().err


def test_emulate_sample_rate_zero_as_a_command() -> None:
    """The reported case end to end: exit 2, a message naming the flag, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "relaysec", "emulate", "--sample-rate", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "--sample-rate" in proc.stderr and "Traceback" not in proc.stderr


def test_a_line_of_unicode_only_whitespace_is_ignored(clients: Callable[..., Raw]) -> None:
    # Found by the iiod fuzz harness: bytes.strip() keeps \x1c-\x1f, str.split() drops them,
    # so the line split into no token at all and the server died on tokens[0].
    c = clients()
    c.send(b"\x1c\x1d\x1e\x1f\r\n")
    assert c.cmd("TIMEOUT 1000") == 0  # still serving, the odd line got no reply
