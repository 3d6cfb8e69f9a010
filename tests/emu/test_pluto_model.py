"""The project-authored Pluto device model (hw.emu.pluto_model) and the context builder."""

from __future__ import annotations

import re

import pytest

from hw.emu.ad9361 import PHY, RX_DEV, TX_DEV, PlutoContext
from hw.emu.context import (
    BY_ALL,
    BY_DIR,
    BY_TYPE,
    SEPARATE,
    Attr,
    ContextBuilder,
    IioContext,
    sysfs_filename,
)

RANGE = re.compile(r"^\[(\S+) (\S+) (\S+)\]$")

#: What pyadi-iio's adi.Pluto, iio_info and the project's radio backend touch (digest §6):
#: (device, channel or None, output, attribute).
NEEDED = [
    (PHY, "voltage0", False, a) for a in (
        "sampling_frequency", "sampling_frequency_available", "rf_bandwidth",
        "rf_bandwidth_available", "gain_control_mode", "gain_control_mode_available",
        "hardwaregain", "hardwaregain_available", "rf_port_select", "rf_port_select_available",
        "filter_fir_en")
] + [
    (PHY, "voltage0", True, a) for a in (
        "sampling_frequency", "rf_bandwidth", "rf_bandwidth_available", "hardwaregain",
        "hardwaregain_available", "rf_port_select", "rf_port_select_available")
] + [
    (PHY, lo, True, a) for lo in ("altvoltage0", "altvoltage1")
    for a in ("frequency", "frequency_available", "powerdown")
] + [
    (PHY, "out", False, "voltage_filter_fir_en"),
    *((PHY, None, False, a) for a in (
        "filter_fir_config", "tx_path_rates", "rx_path_rates", "ensm_mode",
        "ensm_mode_available", "calib_mode", "xo_correction", "trx_rate_governor")),
    *((RX_DEV, f"voltage{i}", False, a) for i in (0, 1)
      for a in ("sampling_frequency", "sampling_frequency_available", "calibscale")),
    *((TX_DEV, f"voltage{i}", True, a) for i in (0, 1)
      for a in ("sampling_frequency", "sampling_frequency_available")),
    *((TX_DEV, f"altvoltage{i}", True, a) for i in range(4)
      for a in ("raw", "frequency", "scale", "phase", "sampling_frequency")),
]


@pytest.mark.parametrize(("share", "expected"), [
    (SEPARATE, "out_altvoltage0_RX_LO_frequency"),
    (BY_TYPE, "out_altvoltage_frequency"),
    (BY_DIR, "out_frequency"),
    (BY_ALL, "frequency"),
])
def test_sysfs_filenames_follow_the_iio_naming_rules(share: str, expected: str) -> None:
    assert sysfs_filename("altvoltage0", True, "RX_LO", "frequency", share) == expected


def test_sysfs_filename_needs_a_typed_channel_id() -> None:
    assert sysfs_filename("voltage12", False, None, "raw", SEPARATE) == "in_voltage12_raw"
    with pytest.raises(ValueError, match="give a filename"):
        sysfs_filename("out", False, None, "voltage_filter_fir_en", SEPARATE)
    with pytest.raises(ValueError, match="sharing"):
        sysfs_filename("voltage0", False, None, "raw", "sideways")


def test_builder_shares_files_and_refuses_contradictions() -> None:
    b = ContextBuilder("network", "test")
    dev = b.device("iio:device0", "chip")
    dev.channel("voltage0", output=False, attrs=[Attr("rate", "5", BY_TYPE), Attr("raw", "1")])
    dev.channel("voltage1", output=False, attrs=[Attr("rate", "5", BY_TYPE), Attr("raw", "2")])
    with pytest.raises(ValueError, match="shares a file"):
        dev.channel("voltage2", output=False, attrs=[Attr("rate", "6", BY_TYPE)])
    with pytest.raises(ValueError, match="twice"):
        dev.channel("voltage0", output=False, attrs=[])
    dev.channel("voltage0", output=True, attrs=[Attr("rate", "7", BY_TYPE)])  # other direction
    with pytest.raises(ValueError, match="twice"):
        b.device("iio:device0", "again")
    ctx = b.build(IioContext)
    ctx.set("chip", "rate", "9", chan="voltage1")
    assert ctx.get("chip", "rate", chan="voltage0") == "9"  # one file, one value
    assert ctx.get("chip", "rate", chan="voltage0", output=True) == "7"
    assert ctx.get("chip", "raw", chan="voltage0") == "1"
    assert b.build(IioContext).get("chip", "rate", chan="voltage0") == "5"  # fresh copy


@pytest.mark.parametrize(("dev", "chan", "output", "attr"), NEEDED)
def test_the_model_has_what_the_clients_use(dev: str, chan: str | None, output: bool,
                                            attr: str) -> None:
    ctx = PlutoContext.default()
    assert isinstance(ctx.get(dev, attr, chan=chan, output=output), str)


def test_initial_values_satisfy_their_available_lists() -> None:
    ctx = PlutoContext.default()
    checked = 0
    for dev in ctx.devices:
        tables = [(None, dev.attrs)] + [(ch, ch.attrs) for ch in dev.channels]
        for ch, table in tables:
            for name, attr in table.items():
                if not name.endswith("_available") or name[:-10] not in table:
                    continue
                value = ctx.values[table[name[:-10]].key].removesuffix(" dB")
                avail = ctx.values[attr.key].strip()
                m = RANGE.match(avail)
                if m:
                    lo, _, hi = (float(x) for x in m.groups())
                    assert lo <= float(value) <= hi, (dev.id, ch and ch.id, name)
                elif dev.name == PHY:  # data devices list rates, not choices
                    assert value in avail.split(), (dev.id, ch and ch.id, name)
                checked += 1
    assert checked >= 12


def test_data_devices_stream_in_the_pluto_formats() -> None:
    ctx = PlutoContext.default()
    for name, fmt, output in ((RX_DEV, "le:S12/16>>0", False), (TX_DEV, "le:S16/16>>0", True)):
        dev = ctx.device(name)
        scan = dev.scan_channels()[:2]
        assert [(c.id, c.scan_index, c.format, c.output) for c in scan] == [
            ("voltage0", 0, fmt, output), ("voltage1", 1, fmt, output)]
        assert set(dev.buffer_attrs) == {"data_available", "length_align_bytes", "watermark"}
    assert [c.name for c in ctx.device(TX_DEV).channels if c.id.startswith("altvoltage")] == [
        "TX1_I_F1", "TX1_I_F2", "TX1_Q_F1", "TX1_Q_F2"]
    assert [d.id for d in ctx.devices] == [f"iio:device{i}" for i in range(4)]


def test_each_default_context_is_independent() -> None:
    a, b = PlutoContext.default(), PlutoContext.default(description="second")
    dev = a.device(PHY)
    a.write_attr(dev, "attr", "frequency", "915000000", dev.channel("altvoltage0", True))
    assert b.settings().rx_lo == 2_400_000_000
    assert (a.description, b.description) == ("relaysec emulated ADALM-Pluto", "second")
