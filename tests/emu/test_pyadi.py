"""pyadi-iio's ``adi.Pluto`` (over the real libiio C library) against the emulated Pluto."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.libiio

FS = 2_000_000


def _configure(sdr) -> None:
    sdr.sample_rate = FS
    sdr.rx_lo = 2_400_000_000
    sdr.tx_lo = 2_400_000_000
    sdr.rx_rf_bandwidth = 1_000_000
    sdr.tx_rf_bandwidth = 1_000_000
    sdr.gain_control_mode_chan0 = "manual"
    sdr.rx_hardwaregain_chan0 = 30
    sdr.tx_hardwaregain_chan0 = -10
    sdr.rx_buffer_size = 4096


def test_every_setter_reads_back(pluto) -> None:
    _configure(pluto)
    assert pluto.sample_rate == FS
    assert (pluto.rx_lo, pluto.tx_lo) == (2_400_000_000, 2_400_000_000)
    assert (pluto.rx_rf_bandwidth, pluto.tx_rf_bandwidth) == (1_000_000, 1_000_000)
    assert pluto.gain_control_mode_chan0 == "manual"
    assert pluto.rx_hardwaregain_chan0 == 30
    assert pluto.tx_hardwaregain_chan0 == -10
    pluto.tx_hardwaregain_chan0 = -20.3  # rounded to the 0.25 dB grid, as the driver does
    assert pluto.tx_hardwaregain_chan0 == -20.25
    pluto.rx_lo = 915_000_000
    assert pluto.rx_lo == 915_000_000
    pluto.loopback = 1
    assert pluto.loopback == 1
    # the rate propagates to the data devices and the path-rate strings
    assert pluto._get_iio_attr("voltage0", "sampling_frequency", False, pluto._rxadc) == FS
    assert pluto._get_iio_dev_attr_str("rx_path_rates").endswith(f"RXSAMP:{FS}")
    assert pluto._get_iio_dev_attr_str("tx_path_rates").endswith(f"TXSAMP:{FS}")


def test_low_rate_loads_and_enables_the_fir(pluto) -> None:
    pluto.sample_rate = 600_000
    assert pluto.sample_rate == 600_000
    assert pluto._get_iio_dev_attr_str("filter_fir_config") == "FIR Rx: 128,4 Tx: 128,4"
    assert pluto._get_iio_attr("out", "voltage_filter_fir_en", False) == 1


@pytest.mark.parametrize(("attr", "value"), [
    ("sample_rate", 100_000_000),
    ("rx_lo", 10_000_000_000),
    ("tx_lo", 100_000_000),
    ("tx_hardwaregain_chan0", 5),
    ("gain_control_mode_chan0", "turbo"),
])
def test_out_of_range_is_einval(pluto, attr: str, value: object) -> None:
    with pytest.raises(OSError) as info:
        setattr(pluto, attr, value)
    assert info.value.errno == 22


def test_ad9363a_clamps_the_rf_bandwidth_silently(pluto) -> None:
    pluto.rx_rf_bandwidth = 80_000_000
    pluto.tx_rf_bandwidth = 50_000
    assert (pluto.rx_rf_bandwidth, pluto.tx_rf_bandwidth) == (20_000_000, 200_000)


def test_kernel_block_count_belongs_to_the_device_it_is_set_on(pluto, emulator) -> None:
    pluto._rxadc.set_kernel_buffers_count(16)  # what pyadi users (and hw.pluto) do: RX only
    assert emulator.context.buffers_count == 16 and emulator.context.tx_buffers_count == 4
    pluto._txdac.set_kernel_buffers_count(8)
    assert emulator.context.buffers_count == 16 and emulator.context.tx_buffers_count == 8


def test_rx_gain_needs_manual_mode_on_the_device(pluto) -> None:
    # pyadi silently skips the write outside manual mode; the emulator refuses it like a driver
    pluto.gain_control_mode_chan0 = "slow_attack"
    with pytest.raises(OSError) as info:
        pluto._set_iio_attr("voltage0", "hardwaregain", False, 10)
    assert info.value.errno == 22


def test_cyclic_tone_loops_back_at_its_frequency(pluto) -> None:
    _configure(pluto)
    pluto.tx_cyclic_buffer = True
    n = np.arange(1024)
    pluto.tx(2**14 * np.exp(2j * np.pi * n / 16))
    x = pluto.rx()
    assert x.size == 4096
    freqs = np.fft.fftfreq(x.size, 1 / FS)
    assert freqs[np.argmax(np.abs(np.fft.fft(x)))] == pytest.approx(FS / 16)
    assert np.mean(np.abs(x)) == pytest.approx(1024, abs=3)  # 2**14 / 16, ~1 LSB noise
    y = pluto.rx()  # phase-continuous across refills
    ref = np.exp(2j * np.pi * (4096 + np.arange(4096)) / 16)
    assert np.abs(np.vdot(ref, y)) / (np.linalg.norm(y) * 64) > 0.99


def test_non_cyclic_pattern_round_trip(pluto) -> None:
    _configure(pluto)
    pluto.rx_buffer_size = 2048
    rng = np.random.default_rng(7)
    pattern = (rng.integers(-2**14, 2**14, 2048) + 1j * rng.integers(-2**14, 2**14, 2048))
    pluto.tx(pattern)
    x = pluto.rx()
    assert np.max(np.abs(x - np.round(pattern / 16))) < 8  # ~1 LSB noise, 12-bit rounding


def test_lo_offset_shifts_and_out_of_band_vanishes(pluto) -> None:
    _configure(pluto)
    pluto.tx_cyclic_buffer = True
    pluto.tx_lo = 2_400_250_000  # +250 kHz
    pluto.tx(np.full(1024, 2**14, dtype=complex))
    x = pluto.rx()
    freqs = np.fft.fftfreq(x.size, 1 / FS)
    assert freqs[np.argmax(np.abs(np.fft.fft(x)))] == pytest.approx(250_000)
    pluto.tx_lo = 2_450_000_000  # 50 MHz away: outside the 2 MS/s band
    assert np.max(np.abs(pluto.rx())) < 10


def test_kernel_buffers_and_timeout(pluto) -> None:
    pluto._rxadc.set_kernel_buffers_count(8)
    pluto.ctx.set_timeout(3000)
    _configure(pluto)
    assert pluto.rx().size == 4096
