"""Several emulated Plutos on one simulated air (hw.loopback.Medium), through pyadi-iio."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hw.emu import EmulatorConfig, start_emulators
from hw.emu.errors import EmulatorError

pytestmark = pytest.mark.libiio

FS = 2_800_000


def _setup(sdr, *, buffer: int = 8192) -> None:
    sdr.sample_rate = FS
    sdr.rx_lo = 2_400_000_000
    sdr.tx_lo = 2_400_000_000
    sdr.gain_control_mode_chan0 = "manual"
    sdr.rx_hardwaregain_chan0 = 30  # the reference gains: links have their configured SNR
    sdr.tx_hardwaregain_chan0 = -10
    sdr.rx_buffer_size = buffer


def _tone_snr_db(x: np.ndarray, freq: float) -> tuple[float, float]:
    spec = np.abs(np.fft.fft(x)) ** 2
    k = int(np.argmax(spec))
    peak = float(np.fft.fftfreq(x.size, 1 / FS)[k])
    return peak, 10 * np.log10(spec[k] / (spec.sum() - spec[k]))


def _tone(n: int = 1024) -> np.ndarray:
    # -15 dBFS RMS (the medium's reference level) in pyadi's int16 units
    return 0.178 * 2**15 * np.exp(2j * np.pi * np.arange(n) / 16)


def _close(*sdrs) -> None:
    for s in sdrs:
        s.tx_destroy_buffer()
        s.rx_destroy_buffer()


@pytest.mark.parametrize("clock", ["sim", "wall"])
def test_radio_a_is_heard_by_b_and_by_itself(clock: str) -> None:
    import adi

    cfg = EmulatorConfig(sample_rate=FS, clock=clock, snr_db=25, self_snr_db=40, seed=4)
    with start_emulators(3, cfg) as cluster:
        a, b, c = (adi.Pluto(u) for u in cluster.uris)
        try:
            for s in (a, b, c):
                _setup(s)
            a.tx_cyclic_buffer = True
            a.tx(_tone())
            for sdr, snr in ((a, 40), (b, 25), (c, 25)):
                sdr.rx()
                peak, measured = _tone_snr_db(sdr.rx(), FS / 16)
                assert peak == pytest.approx(FS / 16)
                assert measured == pytest.approx(snr, abs=2.5)  # tone bin vs the rest: SNR
        finally:
            _close(a, b, c)


def test_non_cyclic_burst_lands_once_on_the_wall_clock() -> None:
    import adi

    cfg = EmulatorConfig(sample_rate=FS, clock="wall", snr_db=30, seed=5)
    with start_emulators(2, cfg) as cluster:
        a, b = (adi.Pluto(u) for u in cluster.uris)
        try:
            _setup(a)
            _setup(b, buffer=4096)
            b._rxadc.set_kernel_buffers_count(64)  # 94 ms of queue: survives a loaded test box
            b.rx()  # B's capture runs from here on, at the sample rate
            a.tx(_tone(2000))
            # ~50 ms of air: the burst lands once even when this host delays the push by tens
            # of ms (12 buffers, ~17 ms, missed it once in CI under load)
            power = np.concatenate([np.abs(b.rx()) ** 2 for _ in range(36)])
            loud = power > 10 * np.median(power)
            assert 1500 < np.count_nonzero(loud) < 2500  # the 2000-sample burst, once
        finally:
            _close(a, b)


def test_wall_clock_paces_the_reader() -> None:
    import adi

    cfg = EmulatorConfig(sample_rate=FS, clock="wall", seed=6)
    with start_emulators(1, cfg) as cluster:
        sdr = adi.Pluto(cluster.uris[0])
        try:
            _setup(sdr, buffer=2**16)
            sdr.rx()
            t0 = time.monotonic()
            for _ in range(10):
                sdr.rx()
            elapsed = time.monotonic() - t0
            # never faster than the air (no upper bound): ten buffers take at least nine buffers
            # of air time -- one may already have been filling when the clock started (it ran
            # 0.6 buffer ahead once with five reads against a five-buffer bound)
            assert elapsed >= 0.9 * 9 * 2**16 / FS
        finally:
            _close(sdr)


def test_rate_mismatch_refuses_buffers_clearly() -> None:
    import adi

    with start_emulators(1, EmulatorConfig(sample_rate=FS, clock="sim")) as cluster:
        sdr = adi.Pluto(cluster.uris[0])
        try:
            assert sdr.sample_rate == FS  # preset to the air's rate
            sdr.sample_rate = 4_000_000
            with pytest.raises(OSError):
                sdr.rx()
        finally:
            _close(sdr)


def test_too_long_buffer_is_completed_with_noise_not_a_stall() -> None:
    import adi

    cfg = EmulatorConfig(sample_rate=FS, clock="wall", speed=1.0, seed=7)
    with start_emulators(1, cfg) as cluster:
        sdr = adi.Pluto(cluster.uris[0])
        try:
            _setup(sdr, buffer=2**20)  # 0.37 s of air
            sdr.ctx.set_timeout(400)  # server may wait 0.8 * 200 ms per request
            x = sdr.rx()  # a 0.37 s wait would exceed the 0.4 s client timeout: EPIPE
            assert x.size == 2**20
            assert cluster.servers[0].data.late_samples > 0
        finally:
            _close(sdr)


def test_config_errors() -> None:
    with pytest.raises(EmulatorError):
        start_emulators(0).__enter__()
    with pytest.raises(EmulatorError):
        start_emulators(2, EmulatorConfig(sample_rate=2.5e6 + 0.5)).__enter__()
    with pytest.raises(EmulatorError):
        start_emulators(2, EmulatorConfig(names=("x", "x"))).__enter__()


def _path_on_manual_clock(kernel_buffers: int = 4):
    from hw.emu import Air, MediumPath, PlutoContext
    from hw.loopback import ManualClock, Medium

    clock = ManualClock()
    m = Medium(1_000_000, seed=1, clock=clock, rx_backlog=1e9, start_delay_max=0)
    radio = m.add_radio("r")
    path = MediumPath(radio, Air(m))
    ctx = PlutoContext.default()
    ctx.preset(sample_rate=1_000_000, lo_hz=2_400_000_000)
    path.configure(ctx.settings())
    path.set_kernel_buffers(kernel_buffers)
    return clock, radio, path


def test_kernel_queue_overflow_keeps_old_blocks_then_gaps() -> None:
    clock, radio, path = _path_on_manual_clock(4)
    clock.set(10_000)
    path.start_rx()  # capture starts now
    assert radio.time == 10_000
    path.rx(1000, max_wait_s=1)
    assert radio.time == 11_000 and radio.stats.overflows == 0
    clock.set(50_000)  # the reader slept: 39 blocks behind, the queue holds 4
    for _ in range(4):  # the 4 queued (old) blocks come first, contiguous
        before = radio.time
        path.rx(1000, max_wait_s=1)
        assert radio.time == before + 1000
    assert radio.stats.overflows == 1 and radio.stats.dropped == 50_000 - 15_000
    path.rx(1000, max_wait_s=1)  # then the stream resumes where the DMA restarted
    assert radio.time == 51_000


def test_bounded_wait_completes_with_noise() -> None:
    _clock, radio, path = _path_on_manual_clock()
    path.start_rx()
    x = path.rx(3_000_000, max_wait_s=0.5)  # 3 s of air, only 0.5 s may be waited for
    assert x.size == 3_000_000 and x.dtype == np.complex64
    assert 2_400_000 <= path.late_samples <= 2_500_100
    assert radio.time == 3_000_000


def test_sounding_span_is_first_to_last_non_zero_sample() -> None:
    """hw.emu.air._sounding (what a DMA block hands the medium) against np.flatnonzero on the
    components: +-0 silent, denormals, NaN and any other value sounding, on random blocks."""
    from hw.emu.air import _sounding

    rng = np.random.default_rng(7)
    values = np.array([0.0, -0.0, 1e-40, -3.0, 0.5, np.nan], np.float32)
    for _ in range(3000):
        n = int(rng.integers(1, 200))
        f = np.zeros(2 * n, np.float32)
        for _ in range(int(rng.integers(0, 4))):
            f[rng.integers(0, 2 * n)] = rng.choice(values)
        iq = f.view(np.complex64)
        nz = np.flatnonzero(f)
        want = None if not nz.size else (int(nz[0]) // 2, int(nz[-1]) // 2 + 1)
        assert _sounding(iq) == want


def _sounding_numpy(iq: np.ndarray) -> tuple[int, int] | None:
    """The numpy implementation hw.emu.air._sounding had before its compiled scan (oracle)."""
    nz = (iq.view(np.uint64) & np.uint64(0x7FFF_FFFF_7FFF_FFFF)) != 0
    a = int(nz.argmax())
    if not nz[a]:
        return None
    return a, iq.size - int(nz[::-1].argmax())


def test_sounding_scan_equals_the_numpy_mask_it_replaced() -> None:
    """The compiled scan from both ends (hw._medium.nonzero_span) against the old mask + argmax:
    all zeros, -0.0 components, a single sample at either end, random blocks, read-only
    blocks (an all-zero push's shared zeros)."""
    from hw.emu.air import _sounding

    n = 16800
    cases = [np.zeros(n, np.complex64), np.full(n, complex(-0.0, -0.0), np.complex64),
             np.zeros(1, np.complex64), np.ones(1, np.complex64)]
    for at in (0, 1, n - 2, n - 1):
        for value in (complex(1e-3, 0), complex(0, -1e-3), complex(-0.0, 5), complex(1e-45, 0)):
            x = np.full(n, complex(-0.0, 0.0), np.complex64)
            x[at] = value
            cases.append(x)
    rng = np.random.default_rng(11)
    for _ in range(300):
        x = np.zeros(int(rng.integers(1, 3000)), np.complex64)
        hits = rng.integers(0, x.size, int(rng.integers(0, 3)))
        x[hits] = rng.standard_normal(hits.size) + 1j * rng.standard_normal(hits.size)
        x[rng.integers(0, x.size)] = complex(-0.0, -0.0) if rng.random() < 0.5 else x[0]
        cases.append(x)
    frozen = np.zeros(n, np.complex64)
    frozen[7] = 1
    frozen.setflags(write=False)
    cases.append(frozen)
    for x in cases:
        assert _sounding(x) == _sounding_numpy(x)


def test_shared_zero_blocks_are_known_silent_and_bounded() -> None:
    """An all-zero WRITEBUF's shared read-only block is recognised without a scan (by identity:
    an equal array of zeros is scanned as before), one block per size, at most a few sizes."""
    from hw.emu.air import _sounding
    from hw.emu.buffers import _ZEROS_KEPT, _zeros, is_shared_zeros

    z = _zeros(16800)
    assert z is _zeros(16800) and is_shared_zeros(z) and _sounding(z) is None
    copy = np.zeros(16800, np.complex64)
    assert not is_shared_zeros(copy) and _sounding(copy) is None
    copy.setflags(write=False)
    assert not is_shared_zeros(copy)
    assert not is_shared_zeros(np.zeros((2, 8400), np.complex64))
    for n in range(1, 3 * _ZEROS_KEPT):
        assert is_shared_zeros(_zeros(n))
    assert not is_shared_zeros(z)  # dropped from the few kept: scanned, still silent
    assert _sounding(z) is None
