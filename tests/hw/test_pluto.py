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


def test_tx_buffer_is_never_destroyed_while_a_burst_plays(monkeypatch):
    # destroying a TX buffer aborts the DMA (dmaengine_terminate_sync): a burst still playing
    # would be cut. Shorter bursts are padded; a longer one waits for the playout first.
    clock = [100.0]
    events: list[tuple] = []
    monkeypatch.setattr(pluto.time, "monotonic", lambda: clock[0])

    def sleep(s: float) -> None:
        events.append(("sleep", round(s, 6)))
        clock[0] += s

    monkeypatch.setattr(pluto, "_sleep", sleep)
    r, dev = make(sample_rate=1e6)
    orig = dev.tx_destroy_buffer

    def destroy() -> None:
        events.append(("destroy", round(clock[0], 6)))
        orig()

    monkeypatch.setattr(dev, "tx_destroy_buffer", destroy)
    r.transmit(np.full(1000, 0.5, np.complex64))  # plays for 1 ms from t=100
    r.transmit(np.full(500, 0.5, np.complex64))  # queued behind it, padded to 1000
    assert dev.destroyed["tx"] == 0 and [x.size for x in dev.tx_log] == [1000, 1000]
    assert np.all(dev.tx_log[1][500:] == 0) and np.all(dev.tx_log[1][:500] != 0)
    r.transmit(np.full(3000, 0.5, np.complex64))  # longer: new buffer after both have played
    assert events == [("sleep", 0.002), ("destroy", 100.002)]
    assert dev.destroyed["tx"] == 1 and dev.tx_log[-1].size == 3000
    clock[0] += 0.001  # 1 ms of the 3 ms burst has played when the radio closes
    r.close()
    assert events[-2:] == [("sleep", 0.002), ("destroy", 100.005)]


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


def test_hardware_overflow_and_underflow_flags_are_counted_and_cleared():
    r, dev = make(rx_buffer_size=256)
    assert r.xflow_flags
    dev.overflow_on_rx = {2, 3}  # the ADC core raises bit 2 during these transfers
    dev.underflow_on_tx = {1}  # the DAC core raises bit 0 during the first push
    r.receive(256 * 4)
    assert r.stats.overflows == 2 and dev._rxadc.regs[pluto.XFLOW_REG] == 0  # cleared (W1C)
    r.transmit(np.zeros(100, np.complex64))
    r.transmit(np.zeros(100, np.complex64))
    assert r.stats.underflows == 1 and dev._txdac.regs[pluto.XFLOW_REG] == 0
    assert r.stats.overflows == 2 and r.stats.dropped == 0  # flags alone lose no known count
    # a flag raised by the other core's bit is not mistaken for ours
    dev._rxadc.raise_flags(pluto.TX_UNDERFLOW_BIT)
    r.receive(256)
    assert r.stats.overflows == 2


def test_stale_flags_from_before_open_are_not_counted():
    devs = []

    def factory(uri):
        d = FakePluto(uri)
        d._rxadc.raise_flags(4)
        d._txdac.raise_flags(1)
        devs.append(d)
        return d

    r = PlutoRadio("ip:192.168.2.1", factory=factory, rx_buffer_size=256)
    r.receive(256)
    r.transmit(np.zeros(10, np.complex64))
    assert r.stats.overflows == 0 and r.stats.underflows == 0


def test_unreadable_flag_register_degrades_to_transfer_failures(caplog):
    devs = []

    def factory(uri):
        d = FakePluto(uri)
        d._rxadc.unreadable = True
        devs.append(d)
        return d

    with caplog.at_level("WARNING", logger="hw.pluto"):
        r = PlutoRadio("ip:192.168.2.1", factory=factory, rx_buffer_size=256)
    assert not r.xflow_flags and "0x80000088" in caplog.text
    r.receive(512)
    r.transmit(np.zeros(10, np.complex64))
    assert devs[0]._txdac.reads == 0  # given up after the first failure: no wasted round trips
    assert r.stats.overflows == 0


def test_clamped_settings_are_read_back_and_reported(caplog):
    with caplog.at_level("WARNING", logger="hw.pluto"):
        r, _dev = make(sample_rate=30e6, rf_bandwidth_hz=30e6)  # an AD9363A clamps to 20 MHz
    assert r.readback["rx_rf_bandwidth_hz"] == 20e6
    assert r.clamped["rx_rf_bandwidth_hz"] == (30e6, 20e6)
    assert r.clamped["tx_rf_bandwidth_hz"] == (30e6, 20e6)
    assert "rx_rf_bandwidth_hz" in caplog.text
    assert r.readback["sample_rate"] == 30e6 and r.readback["gain_mode"] == "manual"
    r.tune(rf_bandwidth_hz=10e6)
    assert r.clamped == {} and r.readback["tx_rf_bandwidth_hz"] == 10e6


def test_first_tx_latency_is_measured_by_a_timed_push(monkeypatch):
    clock = [5.0]
    monkeypatch.setattr(pluto.time, "monotonic", lambda: clock[0])
    r, dev = make()
    real_tx = dev.tx

    def slow_tx(data):  # the push crosses USB at ~18 MB/s (4 bytes a sample)
        clock[0] += np.asarray(data).size * 4 / 18e6
        real_tx(data)

    monkeypatch.setattr(dev, "tx", slow_tx)
    lat = r.measure_tx_latency()
    n = round(pluto.LATENCY_PROBE_S * 2.8e6)
    assert dev.tx_log[-1].size == n and not dev.tx_log[-1].any()  # zeros: nothing radiated
    assert lat == pytest.approx(n * 4 / 18e6) and lat > 0.015  # far above the old 5 ms guess
    assert r.tx_latency_s == lat and r.stats.tx_bursts == 0 and r.stats.tx_samples == 0
    # the probe's buffer is gone: the first burst is not padded to the probe's length
    assert dev.destroyed["tx"] == 1
    r.transmit(np.full(1000, 0.5, np.complex64))
    assert dev.tx_log[-1].size == 1000 and r.stats.tx_samples == 1000


def test_small_rx_buffer_for_the_rate_is_warned(caplog):
    from hw.pluto import safe_rx_buffer_size

    assert safe_rx_buffer_size(2.8e6) == 32768 and safe_rx_buffer_size(5.6e6) == 65536
    with caplog.at_level("WARNING", logger="hw.pluto"):
        PlutoConfig(sample_rate=2.8e6, rx_buffer_size=8192)
    assert "rx_buffer_size 8192" in caplog.text and "32768" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hw.pluto"):
        PlutoConfig(sample_rate=2.8e6, rx_buffer_size=32768)
    assert "rx_buffer_size" not in caplog.text


def test_pylibiio_1x_without_kernel_block_setter_still_opens(caplog):
    class Lib1Adc:  # the 1.x bindings have no set_kernel_buffers_count
        def __init__(self, core):
            self.reg_read, self.reg_write = core.reg_read, core.reg_write

    def factory(uri):
        d = FakePluto(uri)
        d._rxadc = Lib1Adc(d._rxadc)
        return d

    with caplog.at_level("WARNING", logger="hw.pluto"):
        r = PlutoRadio("ip:192.168.2.1", factory=factory, kernel_buffers=16)
    assert "kernel_buffers=16 ignored" in caplog.text
    assert r.receive(10).size == 10


def test_pluto_factory_starts_every_radio_streaming_and_leaves_the_config_alone(monkeypatch):
    """relaysec.radios.plutos opens each station's Pluto with the [pluto] keys (the streaming
    timeline's TX block and kernel blocks included) and starts its stream; the measurement stays
    in the radio (nothing is written into the config any more)."""
    import copy
    from types import SimpleNamespace

    from relaysec.config import load_config
    from relaysec.radios import RadioSetupError, plutos
    from tests.emu.conftest import LAB

    monkeypatch.setattr(pluto, "_open_pyadi", FakePluto)
    started: list[str] = []
    monkeypatch.setattr(PlutoRadio, "start_stream", lambda self, **kw: started.append(
        self.config.uri) or SimpleNamespace(offset=1234))
    cfg = load_config(LAB)
    before = copy.deepcopy(cfg)
    radios = plutos(cfg, cfg["stations"], 2.8e6)
    try:
        assert len(radios) == 3
        assert started == [s["uri"] for s in cfg["stations"]]
        assert cfg == before
        p = cfg["pluto"]
        assert all(r.config.tx_block_size == p["tx_block_size"]
                   and r.config.tx_kernel_buffers == p["tx_kernel_buffers"]
                   and r.config.rx_buffer_size == p["rx_buffer_size"] for r in radios.values())
        assert not any(r.config.uri.startswith("usb:") for r in radios.values())
    finally:
        for r in radios.values():
            r.close()

    closed: list[str] = []
    monkeypatch.setattr(PlutoRadio, "close", lambda self: closed.append(self.config.uri))

    def deaf(self, **kw):
        raise pluto.RadioIOError("did not hear its own probe")

    monkeypatch.setattr(PlutoRadio, "start_stream", deaf)
    with pytest.raises(RadioSetupError, match="ABS: the streaming timeline did not start: did "
                       "not hear its own probe"):
        plutos(cfg, cfg["stations"], 2.8e6)
    assert sorted(closed) == sorted(s["uri"] for s in cfg["stations"])   # every radio closed


SCAN = {
    "usb:1.5.5": "0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)), serial=104473dc5993aa",
    "usb:1.7.5": "0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)), serial=10447354119bbb",
}


def test_serial_uri_resolves_to_the_current_usb_address():
    from hw.errors import RadioUnavailableError
    from hw.pluto import resolve_serial_uri

    assert resolve_serial_uri("serial:9bbb", lambda: SCAN) == "usb:1.7.5"
    assert resolve_serial_uri("serial:104473DC5993AA", lambda: SCAN) == "usb:1.5.5"
    assert resolve_serial_uri("ip:192.168.2.1", lambda: SCAN) == "ip:192.168.2.1"
    with pytest.raises(RadioConfigError, match="matches 2 Plutos"):
        resolve_serial_uri("serial:a", lambda: {**SCAN, "usb:1.9.5": "x, serial=ffa"})
    with pytest.raises(RadioUnavailableError, match="no Pluto with serial ending 'cccc'"):
        resolve_serial_uri("serial:cccc", lambda: SCAN)
    PlutoConfig(uri="serial:9bbb")
    with pytest.raises(RadioConfigError, match="serial"):
        PlutoConfig(uri="serial:")


def test_lo_outside_what_the_device_reports_is_refused_with_the_reason():
    devs = []

    def factory(uri):
        devs.append(FakePluto(uri))
        return devs[-1]

    # the config allows 5.8 GHz with extended_range, but this AD9363A still reports 325-3800 MHz
    with pytest.raises(RadioConfigError, match=r"5800 MHz is outside the 325-3800 MHz this Pluto "
                       r"reports \(frequency_available, chip ad9363a\); the extended range"):
        PlutoRadio("ip:192.168.2.1", factory=factory, lo_hz=5.8e9, extended_range=True)
    assert not [c for c in devs[0].calls if c[0] in ("rx_lo", "tx_lo")]  # nothing written
    r = PlutoRadio("ip:192.168.2.1", factory=factory, lo_hz=2.4e9, extended_range=True)
    assert r.ranges["lo"] == (325e6, 3.8e9) and r.ranges["chip"] == "ad9363a"
    with pytest.raises(RadioConfigError, match="outside the 325-3800 MHz"):
        r.tune(lo_hz=100e6)
    assert r.config.lo_hz == 2.4e9
    # with the AD9364 setting the device reports the wide range and the LO is accepted
    wide = FakePluto()
    wide.available = {**FakePluto.available, ("altvoltage0", "frequency_available", True):
                      "[70000000 1 6000000000]"}
    wide.ctx.attrs["ad9361-phy,model"] = "ad9364"
    wide.rx_lo = wide.tx_lo = 2.4e9  # (the fake's own setter range is the AD9363's)
    assert PlutoRadio("ip:192.168.2.1", factory=lambda u: wide, lo_hz=2.4e9,
                      extended_range=True).ranges["lo"] == (70e6, 6e9)
