"""The emulator's USB 2.0 model: a TX block reaches the air only after crossing USB at the
measured host->Pluto rate, so the first-push latency hw.pluto measures is the hardware's."""

from __future__ import annotations

import pytest

from hw.emu import EmulatorConfig, EmulatorConfigError, start_emulators


def test_usb_model_settings_are_checked():
    for bad in ({"usb_mb_per_s": -1}, {"usb_mb_per_s": float("nan")}, {"usb_overhead_ms": 5e3}):
        with pytest.raises(EmulatorConfigError):
            EmulatorConfig(**bad).check(1)
    EmulatorConfig(usb_mb_per_s=0).check(1)  # 0: no USB model


@pytest.mark.libiio
def test_first_push_takes_the_usb_transfer_time():
    from hw.pluto import LATENCY_PROBE_S, PlutoRadio

    fs = 2_800_000
    n = round(LATENCY_PROBE_S * fs)  # a zone-sized push, ~98 k samples
    cfg = EmulatorConfig(sample_rate=fs, clock="wall", seed=2)
    with start_emulators(1, cfg) as cluster, PlutoRadio(cluster.uris[0], sample_rate=fs) as r:
        lat = r.measure_tx_latency()
    # 4 bytes a sample at 18 MB/s (plutosdr-fw #61): ~22 ms, far above the old 5 ms guess
    assert lat >= n * 4 / 18e6 * 0.98
    assert lat < 0.5


def _usb_path(usb_bytes_per_s: float):
    """A radio on a medium whose clock jumps when slept on (rate 1 MS/s, no jitter)."""
    from hw.emu import Air, MediumPath, PlutoContext
    from hw.loopback import ManualClock, Medium

    class Clock(ManualClock):
        rate = 1_000_000.0  # medium samples per wall second, as WallClock has

    clock = Clock()
    m = Medium(1_000_000, seed=1, clock=clock, start_delay_max=0)
    path = MediumPath(m.add_radio("r"), Air(m), usb_bytes_per_s=usb_bytes_per_s)
    m.set_link("r", "r", snr_db=30.0)  # the radio hears itself
    ctx = PlutoContext.default()
    ctx.preset(sample_rate=1_000_000, lo_hz=2_400_000_000)
    path.configure(ctx.settings())
    return clock, m, path


def test_usb_transfer_counts_from_the_request_not_from_the_emulators_own_work():
    """A block reaches the air when its transfer, begun when the WRITEBUF line arrived, ends:
    time the emulator spent receiving and converting the payload is inside the modelled
    transfer (10 ms for 10 000 samples at 4 MB/s), not added to it."""
    import time

    import numpy as np

    block = np.full(10_000, 0.1 + 0.1j, np.complex64)
    clock, m, path = _usb_path(4e6)
    clock.set(100_000)
    path.tx(block, cyclic=False, max_wait_s=1, started=time.monotonic() - 0.008)
    assert abs(m.bursts()[0].start - (100_000 - 8_000 + 10_000)) < 200
    clock, m, path = _usb_path(4e6)  # the same push stamped now: the whole 10 ms from here
    clock.set(100_000)
    path.tx(block, cyclic=False, max_wait_s=1)
    assert abs(m.bursts()[0].start - 110_000) < 1


def test_medium_keeps_only_the_past_air_a_kernel_queue_can_ask_for():
    """The wall-clock medium's overflow guard and burst memory follow the deepest kernel
    queue (twice it, at least 0.5 s): every read scans the bursts kept, so keeping seconds
    of streamed air for nobody made every read slower; a reader inside its queue still
    hears what was sent."""
    import numpy as np

    clock, m, path = _usb_path(0)
    assert m.rx_backlog == 500_000 and m.retention == 0
    path.set_kernel_buffers(16)
    clock.set(10_000)
    path.start_rx()
    path.rx(32768, max_wait_s=1)
    assert m.rx_backlog == 2 * 17 * 32768
    burst = np.full(1000, 0.2, np.complex64)
    path.tx(burst, cyclic=False, max_wait_s=1)      # on the air at 42 768
    clock.set(42_768 + 10 * 32768)                  # the reader lags 10 blocks: inside its queue
    y = np.concatenate([path.rx(32768, max_wait_s=1) for _ in range(2)])
    assert np.abs(y).max() > 10 * np.median(np.abs(y))  # heard, although 0.12 s old
    clock.set(42_768 + 2 * 17 * 32768 + 100_000)    # now older than any queue: forgotten
    path.rx(32768, max_wait_s=1)
    assert not [b for b in m.bursts() if b.source == "r"]


def test_the_emulators_own_late_reply_is_not_the_clients_underflow():
    """A streaming client pushes again as soon as its push is answered. When the emulator's
    thread wakes late to answer (a loaded host), the next push follows that much later; the
    emulator gives that delay back, so the block still plays right after the previous one,
    as on a Pluto. A client that was not waiting on the reply gets no credit."""
    import time

    import numpy as np

    from hw.emu.registers import TX_UNDERFLOW, CoreRegisters

    block = np.full(10_000, 0.1 + 0.1j, np.complex64)   # 10 ms of air, 10 ms over USB

    def run(oversleep: float, gap: float) -> int:
        clock, _m, path = _usb_path(4e6)
        clock.sleep_until = lambda t: clock.set(max(clock.now(), t + oversleep))  # type: ignore
        regs = CoreRegisters()
        path.attach_registers(CoreRegisters(), regs)
        clock.set(100_000)
        path.tx(block, cyclic=False, max_wait_s=1, started=time.monotonic())  # 110 000-120 000
        clock.set(clock.now() + gap)
        path.tx(block, cyclic=False, max_wait_s=1, started=time.monotonic())
        return regs.flags() & TX_UNDERFLOW

    assert not run(0, 0)            # answered on time, pushed at once: back to back
    assert not run(3_000, 0)        # answered 3 ms late: the block still follows on time
    assert run(0, 3_000)            # the client itself 3 ms late: the DAC ran dry
    assert run(3_000, 30_000)       # pushed 30 ms after a late answer: not waiting on it


def test_a_reader_that_keeps_up_gets_its_block_one_transfer_after_the_window():
    """RX: a block crosses USB once it is complete on the device and the host asked for it.
    A reader waiting for the air gets it one transfer after its window ends (10 000 samples at
    4 MB/s: 10 ms), as from a Pluto; a reader behind (the block is long complete) gets it one
    transfer after it asked."""
    import time

    clock, _m, path = _usb_path(4e6)
    path.start_rx()                                   # capture starts at 0
    path.rx(10_000, max_wait_s=1, started=time.monotonic())
    assert abs(clock.now() - (10_000 + 10_000)) < 50  # window end + transfer
    clock.set(200_000)                                # the reader fell behind (queue: 4 blocks)
    asked = clock.now()
    path.rx(10_000, max_wait_s=1, started=time.monotonic())
    assert abs(clock.now() - (asked + 10_000)) < 50   # asked + transfer
