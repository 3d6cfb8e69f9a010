"""PlutoRadio through the real client stack (pyadi-iio -> pylibiio -> libiio 0.2x C library)
against the project's Pluto emulator (hw.emu, libiio network protocol) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import numpy as np
import pytest

from hw.pluto import PlutoRadio

pytestmark = pytest.mark.libiio


@pytest.fixture
def server():
    # the libiio marker makes a missing client stack a skip on a dev box and a failure in CI
    from hw.emu.server import PlutoServer

    srv = PlutoServer().start()
    yield srv
    srv.close()


def test_round_trip_scaling_and_retune(server):
    with PlutoRadio(server.uri, rx_buffer_size=4096, lo_hz=2.4e9, rx_gain_db=20) as r:
        x = (0.5 * np.exp(2j * np.pi * 0.01 * np.arange(4096))).astype(np.complex64)
        r.transmit(x)
        y = r.receive(6000)
        # digital-loopback scale: TX full scale 1.0 comes back as 1.0 (12-bit ADC)
        assert abs(np.median(np.abs(y[:4096])) - 0.5) < 0.01
        r.tune(lo_hz=915e6, sample_rate=2.0e6)
        assert r.sample_rate == 2.0e6
        assert r.receive(1000).size == 1000
        with pytest.raises(Exception, match="outside"):
            r.tune(lo_hz=9e9)
    assert r.closed


def test_device_clamps_are_read_back(server):
    # an AD9363A clamps the RF bandwidth to 20 MHz and an RX gain below its LO band's table
    with PlutoRadio(server.uri, lo_hz=915e6, rx_gain_db=-3, sample_rate=30e6,
                    rf_bandwidth_hz=30e6) as r:
        assert r.clamped["rx_rf_bandwidth_hz"] == (30e6, 20e6)
        assert r.clamped["tx_rf_bandwidth_hz"] == (30e6, 20e6)
        assert r.clamped["rx_gain_db"] == (-3.0, -1.0)
        assert r.readback["rx_lo_hz"] == 915e6 and "sample_rate" not in r.clamped
        r.tune(rf_bandwidth_hz=10e6, rx_gain_db=10)
        assert r.clamped == {}


def test_lo_beyond_the_reported_range_is_a_config_error(server):
    from hw.errors import RadioConfigError

    with pytest.raises(RadioConfigError, match="this Pluto reports"):
        PlutoRadio(server.uri, lo_hz=5e9, extended_range=True)


def test_direct_libiio_path_is_bit_exact_with_pyadis():
    """Streaming transfers skip pyadi's per-block conversions (hw.pluto_stream._DirectBuffer: one
    libiio C call and one numpy pass per block): the samples are the same as pyadi's path
    gives, negative codes sign-extended, both ways."""
    from hw.emu.datapath import LocalLoop
    from hw.emu.server import PlutoServer
    from hw.pluto import TX_SCALE, _DirectBuffer

    rng = np.random.default_rng(7)
    n = 4096
    x = (rng.uniform(-0.95, 0.95, n) + 1j * rng.uniform(-0.95, 0.95, n)).astype(np.complex64)
    dac = np.rint(x.view(np.float32).astype(np.float64) * TX_SCALE)  # what the DAC gets
    expect = (np.clip(np.rint(dac / 32768 * 2048), -2048, 2047) / 2048).astype(np.float32)
    with PlutoServer(data=LocalLoop(noise_lsb=0)).start() as srv, \
            PlutoRadio(srv.uri, rx_buffer_size=n, lo_hz=2.4e9) as r:
        r.transmit(x)                       # pyadi creates and pushes the TX buffer
        first = r.receive(n)                # pyadi creates and reads the RX buffer
        assert r._rx_direct is None
        np.testing.assert_array_equal(first.view(np.float32), expect)
        tx = _DirectBuffer.wrap(r.device._txbuf, r.device._txdac, output=True)
        assert tx is not None
        tx.push(dac)                        # the same codes, straight into libiio's buffer
        second = r.receive(n)               # now through the direct path
        assert r._rx_direct is not None and r._rx_direct.buf is r.device._rxbuf
        np.testing.assert_array_equal(second.view(np.float32), expect)
        assert (expect < 0).any()
        tx.push(dac)                        # read into two parts (a ring's two ends)
        a, b = np.empty(1000, np.complex64), np.empty(n - 1000, np.complex64)
        r._rx_direct.read_into((a, b))
        np.testing.assert_array_equal(np.concatenate([a, b]).view(np.float32), expect)
        tx.push(None)                       # a block of zeros
        assert not r.receive(n).any()
        r.flush()                           # pyadi drops the buffer: so does the direct path
        assert r.receive(n).size == n       # a new RX buffer opens (no EBUSY)


@contextlib.contextmanager
def _fake_worker(pos: int) -> Iterator[object]:
    """An _RxWorker over a 16-sample ring of 4-sample blocks in a temporary file (samples
    0..15), read position *pos*, its process always alive: the ring logic without a device."""
    import os
    import tempfile

    from hw.pluto import _HDR, _RxWorker

    class Proc:
        def poll(self):
            return None

    w = _RxWorker.__new__(_RxWorker)
    w.samples, w.ring, w.pos, w.lost, w._rate = 4, 16, pos, 0, 1e6
    fd, w.path = tempfile.mkstemp()
    os.close(fd)
    try:
        w._hdr = np.memmap(w.path, np.int64, "w+", shape=(_HDR,))
        w._data = np.memmap(w.path, np.complex64, "r+", offset=_HDR * 8, shape=(16,))
        w.proc = Proc()
        w._data[:] = np.arange(16)
        yield w
    finally:
        os.unlink(w.path)


def test_rx_worker_ring_counts_what_the_node_fell_behind():
    """The RX worker's host ring (hw.pluto_stream._RxWorker.read): blocks come out in order;
    when the node falls more than the ring behind, the overwritten samples are reported as
    lost, exactly, and reading resumes on whole blocks."""
    with _fake_worker(0) as w:
        w._hdr[0] = 8                       # two blocks written
        block, lost = w.read()
        assert lost == 0 and list(block.real) == [0, 1, 2, 3]
        w._hdr[0] = 40                      # the writer went 2.5 rings further
        block, lost = w.read()
        assert lost == 40 - 16 // 2 - 4     # skipped to half a ring behind the writer
        assert w.pos == 40 - 16 // 2 + 4 and w.lost == lost
        assert list(block.real) == [float(k % 16) for k in range(32, 36)]
        w._hdr[1] = 5                       # the worker reports an I/O error
        w._hdr[0] = w.pos
        with pytest.raises(Exception, match="RX worker stopped"):
            w.read()


def test_rx_worker_catch_up_skips_whole_blocks_and_reports_no_loss():
    """_RxWorker.catch_up skips every whole block the ring holds unread (what piled up during
    setup) and reading goes on from the writer's next block with nothing counted lost."""
    with _fake_worker(4) as w:
        w._hdr[0] = 42                      # the writer went 2.5 rings ahead (mid-block)
        assert w.catch_up() == 36 and w.pos == 40
        w._hdr[0] = 44
        block, lost = w.read()
        assert lost == 0 and w.lost == 0
        assert list(block.real) == [float(k % 16) for k in range(40, 44)]
        assert w.catch_up() == 0


def test_a_radio_read_late_catches_up_without_a_loss_and_still_places_exactly(monkeypatch):
    """A stream not read for longer than the worker's ring (the node still being set up)
    catches up: no overflow, nothing dropped, no RX break -- and the offset moved by exactly
    the samples skipped, so a probe placed at RX index k is still heard at k. Without the
    catch-up the same wait reads as a loss (the control)."""
    import hw.pluto_stream as pluto_stream
    from hw.emu import EmulatorConfig, start_emulators
    from tests.emu.realtime import probe_error, realtime_slot

    monkeypatch.setattr(pluto_stream, "RX_RING_S", 0.01)   # the ring: its minimum, 4 blocks
    with realtime_slot(), start_emulators(2, EmulatorConfig(speed=0.25)) as cluster:
        radios = [PlutoRadio(uri, rx_buffer_size=16384, kernel_buffers=8,
                             tx_block_size=11200, tx_kernel_buffers=6) for uri in cluster.uris]
        try:
            tls = [r.start_stream(calibrate_s=10.0) for r in radios]
            time.sleep(1.5)            # 4 blocks of 16384 at 0.7 MS/s are 94 ms: overrun
            control, r = radios
            control.receive(16384)
            assert control.stats.overflows == 1 and control.stats.dropped > 0  # the old way
            skipped = r.catch_up()
            assert skipped >= 16384 and skipped % 16384 == 0
            tl = tls[1]
            err = probe_error(r, tl)
            if tl.stats.underflows or r.stats.overflows:
                pytest.skip("the host starved the stream during the test (load)")
            assert r.stats.dropped == 0 and tl.stats.rx_breaks == 0
            assert tl.stats.rx_skipped == skipped
            assert err is not None and abs(err) <= 2, err
        finally:
            for x in radios:
                x.close()


def test_streaming_rx_runs_in_a_worker_process_and_stops_with_the_radio():
    """start_stream hands RX to a process of its own on an ip: URI: the probe placed at RX
    index k is still heard at k (the worker's samples are the device's stream), and close()
    ends the worker and removes its ring."""
    import os

    from hw.emu import EmulatorConfig, start_emulators
    from tests.emu.realtime import probe_error, realtime_slot

    with realtime_slot(), start_emulators(1, EmulatorConfig(speed=0.25)) as cluster:
        r = PlutoRadio(cluster.uris[0], rx_buffer_size=16384, kernel_buffers=8,
                       tx_block_size=11200, tx_kernel_buffers=6, stream_nice=-5)
        try:
            tl = r.start_stream(calibrate_s=10.0)
            worker = r._rx_worker
            assert worker is not None and worker.proc.poll() is None
            assert r.device._rxbuf is None       # the node holds no RX buffer of its own
            # the priority asked for where the system allows it (root), else the node's
            want = -5 if os.geteuid() == 0 else os.getpriority(os.PRIO_PROCESS, 0)
            assert worker.nice == want == r.timeline_report()["worker_nice"]
            assert os.getpriority(os.PRIO_PROCESS, worker.proc.pid) == want
            err = probe_error(r, tl)
            if tl.stats.underflows or tl.stats.rx_breaks:
                pytest.skip("the host starved the stream during the test (load)")
            assert err is not None and abs(err) <= 2, err
        finally:
            r.close()
        assert worker.proc.poll() is not None and not os.path.exists(worker.path)


def test_raise_priority_asks_only_for_more_and_says_what_it_got():
    """hw.pluto_stream.raise_priority (stream workers, relaysec emulate), in a child process:
    a nice value below the process's own is set where the system allows it and left as it
    was where not; one above it (less priority) is never asked for."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import os; from hw.pluto_stream import raise_priority as r; os.nice(5); "
            "a = r(10); b = r(2); print(a, b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(Path(__file__).parents[2])).stdout.split()
    a, b = int(out[0]), int(out[1])
    assert a == 5            # 10 is less priority than the 5 it runs at: not asked for
    # root may raise it; another user only as far as its RLIMIT_NICE allows (else unchanged)
    assert b == 2 if os.geteuid() == 0 else b in (2, 5)


def test_a_claimed_tx_block_converts_from_the_ring_as_a_copy_did():
    """The stream worker's TX block (hw.pluto_stream._take_tx_block) from the ring's two ends:
    the codes the former copy-then-convert gave (rint of x * TX_SCALE in float64), None for a
    silent block (-0.0 included in the codes' sense: all zero), the ring zeroed behind it."""
    from hw.pluto_stream import TX_SCALE, _take_tx_block

    rng = np.random.default_rng(3)
    out = np.empty(2 * 100, np.float64)
    for split in (100, 37, 1):
        ring = (rng.uniform(-1, 1, 200) + 1j * rng.uniform(-1, 1, 200)).astype(np.complex64)
        ring[150:] = 0
        block = np.concatenate([ring[100 - split:100], ring[:100 - split]])
        want = np.rint(block.view(np.float32).astype(np.float64) * TX_SCALE)
        parts = (ring[100 - split:100], ring[:100 - split]) if split < 100 else (ring[:100],)
        codes = _take_tx_block(parts, out)
        assert codes is not None
        np.testing.assert_array_equal(codes, want)
        assert not ring[:100].any()
    silent = np.zeros(100, np.complex64)
    assert _take_tx_block((silent,), out) is None
    silent[3] = np.complex64(complex(-0.0, 0.0))
    codes = _take_tx_block((silent,), out)
    assert codes is not None and not codes.any()
