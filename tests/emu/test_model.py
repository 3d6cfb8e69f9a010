"""The AD9361 attribute model: range checks, FIR rules, rate propagation (no libiio needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw.emu.ad9361 import (
    MAX_RATE,
    PHY,
    RX_DEV,
    TX_DEV,
    PlutoContext,
    parse_fir_config,
    rate_floor,
    solve_clock_chain,
)
from hw.emu.errors import IioError

FIR_128_DEC4 = "RX 3 GAIN -6 DEC 4\nTX 3 GAIN 0 INT 4\n" + "".join(
    f"{i},{-i}\n" for i in range(128))


def _write(ctx: PlutoContext, attr: str, value: str, chan: str | None = None,
           output: bool = False, kind: str = "attr") -> None:
    dev = ctx.device(PHY)
    ch = dev.channel(chan, output) if chan else None
    ctx.write_attr(dev, kind, attr, value, ch)


def _rate(ctx: PlutoContext, value: int) -> None:
    _write(ctx, "sampling_frequency", str(value), "voltage0")


def _errno(fn, *args, **kwargs) -> int:
    with pytest.raises(IioError) as info:
        fn(*args, **kwargs)
    return info.value.errno


def test_clock_chain_at_30_72_msps_is_the_drivers() -> None:
    chain = solve_clock_chain(30_720_000)
    assert chain.rx_path_rates() == (
        "BBPLL:983040000 ADC:245760000 R2:122880000 R1:61440000 RF:30720000 RXSAMP:30720000")
    assert chain.tx_path_rates() == (
        "BBPLL:983040000 DAC:122880000 T2:122880000 T1:61440000 TF:30720000 TXSAMP:30720000")


def test_published_rate_floors() -> None:
    assert rate_floor(1) == 2_083_333  # the no-FIR sampling_frequency_available floor
    assert rate_floor(4) == 520_833  # pyadi refuses below 521e3 itself
    solve_clock_chain(2_083_333)
    with pytest.raises(IioError):
        solve_clock_chain(2_083_332)
    solve_clock_chain(520_833, 4)


@given(st.integers(min_value=rate_floor(1), max_value=MAX_RATE))
def test_any_rate_in_range_is_accepted_and_propagates(rate: int) -> None:
    ctx = PlutoContext.default()
    _rate(ctx, rate)
    assert ctx.get(PHY, "sampling_frequency", chan="voltage0") == str(rate)
    assert ctx.get(PHY, "sampling_frequency", chan="voltage0", output=True) == str(rate)
    for dev, out in ((RX_DEV, False), (TX_DEV, True)):
        assert ctx.get(dev, "sampling_frequency", chan="voltage0", output=out) == str(rate)
    assert ctx.get(PHY, "tx_path_rates").endswith(f"TXSAMP:{rate}")
    rates = dict(kv.split(":") for kv in ctx.get(PHY, "rx_path_rates").split())
    assert 25e6 * (1 - 1e-6) <= int(rates["ADC"]) <= 640e6
    assert ctx.settings().sample_rate == rate


@given(st.one_of(st.integers(min_value=1, max_value=rate_floor(1) - 1),
                 st.integers(min_value=MAX_RATE + 1, max_value=10**10)))
def test_rates_out_of_range_are_einval_and_change_nothing(rate: int) -> None:
    ctx = PlutoContext.default()
    before = dict(ctx.values)
    assert _errno(_rate, ctx, rate) == 22
    assert ctx.values == before


def test_fir_lowers_the_floor_and_reads_back() -> None:
    ctx = PlutoContext.default()
    assert _errno(_rate, ctx, 600_000) == 22
    assert _errno(_write, ctx, "voltage_filter_fir_en", "1", "out") == 22  # nothing loaded
    _write(ctx, "filter_fir_config", FIR_128_DEC4)
    assert ctx.get(PHY, "filter_fir_config") == "FIR Rx: 128,4 Tx: 128,4"
    _rate(ctx, 3_000_000)
    _write(ctx, "voltage_filter_fir_en", "1", "out")
    assert ctx.get(PHY, "filter_fir_en", chan="voltage0") == "1"
    assert ctx.get(PHY, "sampling_frequency_available", chan="voltage0") == "[520833 1 61440000]"
    _rate(ctx, 600_000)
    assert ctx.settings().sample_rate == 600_000
    assert _errno(_write, ctx, "voltage_filter_fir_en", "0", "out") == 22  # 600 kS/s needs it
    _rate(ctx, 3_000_000)
    _write(ctx, "voltage_filter_fir_en", "0", "out")
    assert ctx.get(PHY, "voltage_filter_fir_en", chan="out") == "0"


def test_fir_taps_must_fit_the_clock_chain() -> None:
    ctx = PlutoContext.default()
    _write(ctx, "filter_fir_config", FIR_128_DEC4)
    _rate(ctx, 61_440_000)
    # at 61.44 MS/s with decimation 4 the DAC runs only 4x the rate: 64 taps max on TX
    assert _errno(_write, ctx, "voltage_filter_fir_en", "1", "out") == 22


@pytest.mark.parametrize("text", [
    "RX 3 GAIN -6 DEC 4\n" + "1,1\n" * 128,  # no TX line
    "RX 3 GAIN -6 DEC 3\nTX 3 GAIN 0 INT 4\n" + "1,1\n" * 128,  # decimation 3
    "RX 3 GAIN -6 DEC 4\nTX 3 GAIN 0 INT 4\n" + "1,1\n" * 120,  # not a multiple of 16
    "RX 3 GAIN -6 DEC 4\nTX 3 GAIN 0 INT 4\n" + "1,1\n" * 144,  # too many
    "RX 3 GAIN -6 DEC 4\nTX 3 GAIN 0 INT 4\n" + "40000,1\n" * 128,  # not int16
    "RX 3 GAIN -6 DEC 4\nTX 3 GAIN 0 INT 4\n" + "a,b\n" * 128,
])
def test_bad_fir_configs_are_rejected(text: str) -> None:
    with pytest.raises(IioError):
        parse_fir_config(text)


def test_gains_modes_and_lo_ranges() -> None:
    ctx = PlutoContext.default()
    assert _errno(_write, ctx, "hardwaregain", "10", "voltage0") == 22  # AGC mode
    assert _errno(_write, ctx, "gain_control_mode", "turbo", "voltage0") == 22
    _write(ctx, "gain_control_mode", "manual", "voltage0")
    _write(ctx, "hardwaregain", "10.4", "voltage0")
    assert ctx.get(PHY, "hardwaregain", chan="voltage0") == "10.000000 dB"
    assert _errno(_write, ctx, "hardwaregain", "72", "voltage0") == 22
    _write(ctx, "hardwaregain", "-33.1", "voltage0", True)
    assert ctx.get(PHY, "hardwaregain", chan="voltage0", output=True) == "-33.000000 dB"
    assert _errno(_write, ctx, "hardwaregain", "0.5", "voltage0", True) == 22
    _write(ctx, "frequency", "325000000", "altvoltage0", True)
    assert _errno(_write, ctx, "frequency", "324999999", "altvoltage0", True) == 22
    assert _errno(_write, ctx, "frequency", "3800000001", "altvoltage1", True) == 22
    assert _errno(_write, ctx, "frequency", "2.4e9", "altvoltage1", True) == 22
    # an AD9363A clamps its RF bandwidth to 200 kHz-20 MHz silently (no EINVAL), whatever
    # rf_bandwidth_available says
    _write(ctx, "rf_bandwidth", "56000001", "voltage0")
    assert ctx.get(PHY, "rf_bandwidth", chan="voltage0") == "20000000"
    _write(ctx, "rf_bandwidth", "100000", "voltage0", True)
    assert ctx.get(PHY, "rf_bandwidth", chan="voltage0", output=True) == "200000"
    assert _errno(_write, ctx, "rf_bandwidth", "2e6", "voltage0") == 22  # still an integer
    assert _errno(_write, ctx, "loopback", "3", kind="debug") == 22
    _write(ctx, "loopback", "2", kind="debug")
    s = ctx.settings()
    assert (s.rx_gain_db, s.tx_gain_db, s.rx_lo, s.loopback) == (10, -33, 325_000_000, 2)


def test_shared_sysfs_files_share_values() -> None:
    ctx = PlutoContext.default()
    _write(ctx, "rf_bandwidth", "1000000", "voltage0")
    # in_voltage_rf_bandwidth is also visible through the phy's voltage2 input channel
    assert ctx.get(PHY, "rf_bandwidth", chan="voltage2") == "1000000"


def test_settings_listeners_fire_on_change_only() -> None:
    ctx = PlutoContext.default()
    seen = []
    ctx.listeners.append(seen.append)
    _write(ctx, "frequency", "915000000", "altvoltage0", True)
    _write(ctx, "calib_mode", "auto")  # no RF setting changed
    assert [s.rx_lo for s in seen] == [915_000_000]


def test_xml_is_valid_against_its_dtd_shape() -> None:
    ctx = PlutoContext.default()
    root = ET.fromstring(ctx.to_xml())
    assert {"name", "version-major", "version-minor", "version-git", "description"} <= set(
        root.attrib)
    for el in root.iter():
        assert "value" not in el.attrib or el.tag == "context-attribute"
    rx = next(d for d in root.iter("device") if d.get("name") == RX_DEV)
    scans = [(c.get("id"), c.find("scan-element").get("format")) for c in rx.iter("channel")]
    assert scans == [("voltage0", "le:S12/16>>0"), ("voltage1", "le:S12/16>>0")]


def test_rx_gain_table_follows_the_lo_band() -> None:
    ctx = PlutoContext.default()
    _write(ctx, "gain_control_mode", "manual", "voltage0")
    _write(ctx, "frequency", "915000000", "altvoltage0", True)
    assert ctx.get(PHY, "hardwaregain_available", chan="voltage0") == "[-1 1 73]"
    _write(ctx, "hardwaregain", "73", "voltage0")  # allowed below 1.3 GHz
    _write(ctx, "frequency", "2400000000", "altvoltage0", True)
    assert ctx.get(PHY, "hardwaregain_available", chan="voltage0") == "[-3 1 71]"
    assert ctx.get(PHY, "hardwaregain", chan="voltage0") == "71.000000 dB"  # lowered with it
    assert _errno(_write, ctx, "hardwaregain", "72", "voltage0") == 22  # above: refused
    _write(ctx, "hardwaregain", "-10", "voltage0")  # below: clamped silently
    assert ctx.get(PHY, "hardwaregain", chan="voltage0") == "-3.000000 dB"
