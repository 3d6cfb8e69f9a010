"""Pluto backend against a fake with pyadi-iio's Pluto interface (no libiio needed)."""

from __future__ import annotations

import numpy as np
import pytest

from hw import pluto
from hw.errors import RadioClosedError, RadioConfigError, RadioIOError, RadioUnavailableError
from hw.pluto import TX_SCALE, PlutoConfig, PlutoRadio
from hw.radio import Radio
from tests.hw.fake_pluto import FakePluto


def make(**settings) -> tuple[PlutoRadio, FakePluto]:
    devs: list[FakePluto] = []

    def factory(uri: str) -> FakePluto:
        devs.append(FakePluto(uri))
        return devs[-1]

    r = PlutoRadio(settings.pop("uri", "ip:192.168.2.1"), factory=factory, **settings)
    return r, devs[0]


def test_configures_device_in_order_and_satisfies_protocol():
    r, dev = make(lo_hz=915e6, rx_gain_db=40, tx_gain_db=-5, kernel_buffers=8, rx_buffer_size=4096)
    assert isinstance(r, Radio)
    names = [c[0] for c in dev.calls]
    assert names[:2] == ["kernel_buffers", "timeout"]  # before any buffer exists
    assert names.index("gain_mode") < names.index("rx_gain")  # else pyadi ignores the gain
    assert dev.sample_rate == 2_800_000 and r.sample_rate == 2.8e6  # USB-2-safe default
    assert dev.rx_lo == dev.tx_lo == 915_000_000
    assert dev.rx_rf_bandwidth == dev.tx_rf_bandwidth == 2_800_000
    assert dev.gain_control_mode_chan0 == "manual" and dev.rx_hardwaregain_chan0 == 40
    assert dev.tx_hardwaregain_chan0 == -5
    assert dev.kernel_buffers == 8 and dev.rx_buffer_size == 4096
    assert dev.tx_cyclic_buffer is False
    assert dev.rx_enabled_channels == [0] and dev.tx_enabled_channels == [0]


def test_tx_scaling_to_int16_codes_and_clipping():
    r, dev = make()
    x = np.array([1.0 + 0j, -1.0 - 1.0j, 0.5 + 0.25j, 1.5 - 3.0j], np.complex64)
    r.transmit(x)
    codes = dev.tx_log[-1]
    assert codes[0] == TX_SCALE == 32752
    assert codes[1] == -32752 - 32752j  # never wraps in the int16 cast
    assert codes[2] == 16376 + 8188j
    assert codes[3] == 32752 - 32752j
    assert r.stats.clipped == 2 and r.stats.tx_bursts == 1 and r.stats.tx_samples == 4


def test_digital_loopback_round_trip_is_unity_scale():
    r, dev = make(rx_buffer_size=256)
    rng = np.random.default_rng(0)
    x = ((rng.random(300) - 0.5) + 1j * (rng.random(300) - 0.5)).astype(np.complex64)
    r.transmit(x)
    y = r.receive(300)
    assert y.dtype == np.complex64 and y.size == 300
    assert np.max(np.abs(y - x)) < 2 / 2048
    # the rest of the second 256-sample buffer is kept for the next call
    assert r.receive(212).size == 212 and dev.calls.count(("rx_buffer", 256)) == 1


def test_rx_full_scale_is_one():
    r, dev = make(rx_buffer_size=64)
    dev.air.append(np.full(64, 2047 * 16 * (1 + 1j)))
    y = r.receive(64)
    assert np.allclose(y, (2047 + 2047j) / 2048)
    assert r.stats.clipped == 128


def test_burst_length_change_recreates_tx_buffer():
    r, dev = make()
    r.transmit(np.zeros(100, np.complex64))
    r.transmit(np.zeros(100, np.complex64))
    assert dev.destroyed["tx"] == 0
    r.transmit(np.zeros(50, np.complex64))  # pyadi would raise without the destroy
    assert dev.destroyed["tx"] == 1 and len(dev.tx_log) == 3


def test_retune_flushes_stale_rx():
    r, dev = make(lo_hz=915e6, rx_buffer_size=128)
    dev.tag_lo = True
    assert r.receive(100)[0].real * 2048 == 915
    r.tune(lo_hz=2.4e9)
    assert dev.rx_lo == dev.tx_lo == 2_400_000_000
    y = r.receive(100)
    assert y[0].real * 2048 == 400  # 2400 MHz mod 2000: fresh buffer, not the 28 pending
    assert dev.destroyed["rx"] >= 1 and r.stats.dropped == 28


def test_tune_validates_before_touching_device():
    r, dev = make()
    n = len(dev.calls)
    with pytest.raises(RadioConfigError, match="lo"):
        r.tune(lo_hz=10e9)
    with pytest.raises(RadioConfigError, match="manual"):
        r.tune(rx_gain_db=10, gain_mode="slow_attack")
    with pytest.raises(RadioConfigError, match="unknown"):
        r.tune(colour="blue")
    with pytest.raises(RadioConfigError, match="cannot change"):
        r.tune(uri="ip:1.2.3.4")
    assert len(dev.calls) == n
    r.tune(tx_lo_hz=2.41e9, rx_gain_db=20, sample_rate=5.6e6)
    assert dev.tx_lo == 2_410_000_000 and dev.rx_lo == 2_400_000_000
    assert dev.rx_hardwaregain_chan0 == 20 and dev.sample_rate == 5_600_000
    assert r.sample_rate == 5.6e6


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"sample_rate": 100e3}, "sample_rate"),
        ({"sample_rate": 100e6}, "sample_rate"),
        ({"lo_hz": 6e9}, "extended_range"),
        ({"rf_bandwidth_hz": 80e6}, "rf_bandwidth"),
        ({"tx_gain_db": -100}, "tx_gain"),
        ({"rx_gain_db": 80}, "rx_gain"),
        ({"gain_mode": "auto"}, "gain_mode"),
        ({"rx_buffer_size": 10}, "rx_buffer_size"),
        ({"kernel_buffers": 0}, "kernel_buffers"),
        ({"uri": "192.168.2.1"}, "uri"),
        ({"uri": "ip:localhost"}, "127.0.0.1"),
        ({"bogus": 1}, "accepted"),
    ],
)
def test_config_validation(settings, match):
    with pytest.raises(RadioConfigError, match=match):
        PlutoConfig.from_mapping(settings)


def test_extended_range_allows_6ghz():
    assert PlutoConfig(lo_hz=5.8e9, extended_range=True).effective_rx_lo_hz == 5.8e9


def test_close_destroys_buffers_and_silences_tx():
    r, dev = make()
    r.transmit(np.zeros(10, np.complex64))
    r.receive(10)
    with r:
        pass
    assert dev.destroyed == {"tx": 1, "rx": 1}
    assert dev.dds_on is False and dev.tx_hardwaregain_chan0 == -89.75
    r.close()  # idempotent
    with pytest.raises(RadioClosedError):
        r.receive(1)
    with pytest.raises(RadioClosedError):
        r.transmit(np.zeros(1, np.complex64))


def test_rx_failure_is_counted_and_buffer_recreated():
    r, dev = make(rx_buffer_size=64)
    r.receive(10)
    dev.rx_fail = 1
    with pytest.raises(RadioIOError, match="Broken pipe"):
        r.receive(100)
    assert r.stats.overflows == 1 and dev.destroyed["rx"] == 1
    assert r.receive(64).size == 64


def test_device_rejection_becomes_radio_error():
    def factory(uri):
        d = FakePluto(uri)
        d._rxadc.set_kernel_buffers_count = lambda n: (_ for _ in ()).throw(OSError(16, "busy"))
        return d

    with pytest.raises(RadioIOError, match="kernel buffer"):
        PlutoRadio("ip:10.0.0.1", factory=factory)


def test_missing_stack_gives_one_clear_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_iio(name, *a, **k):
        if name in ("iio", "adi"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_iio)
    with pytest.raises(RadioUnavailableError, match=r"pylibiio==0\.25") as ei:
        PlutoRadio("ip:192.168.2.1")
    assert ei.value.reason == "no_pylibiio"


def test_no_device_message(monkeypatch):
    pytest.importorskip("adi")
    import adi

    def boom(uri):
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(adi, "Pluto", boom)
    with pytest.raises(RadioUnavailableError, match="relaysec doctor") as ei:
        PlutoRadio("ip:192.0.2.1")
    assert ei.value.reason == "no_device"


def test_hw_does_not_import_upper_layers():
    import pathlib
    import re

    root = pathlib.Path(pluto.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+(stack|phy|relaysec)\b", text, re.M), path


def test_rx_gain_limit_follows_the_lo_band():
    from hw.pluto import PlutoConfig, rx_gain_range

    assert rx_gain_range(915e6) == (-1.0, 73.0)
    assert rx_gain_range(2.4e9) == (-3.0, 71.0)
    assert rx_gain_range(5.8e9) == (-10.0, 62.0)
    PlutoConfig(lo_hz=915e6, rx_gain_db=73)  # allowed below 1.3 GHz
    with pytest.raises(RadioConfigError, match="above the 71 dB"):
        PlutoConfig(lo_hz=2.4e9, rx_gain_db=73)
    with pytest.raises(RadioConfigError, match="above the 62 dB"):
        PlutoConfig(lo_hz=5.8e9, rx_gain_db=65, extended_range=True)
