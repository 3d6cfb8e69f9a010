"""The emulated ADALM-Pluto's device model, written for this project (no captured data).

It describes what the Linux ``ad9361`` driver and the FPGA cores of Pluto firmware expose over IIO,
as summarised in the spec digest ``pluto-iio.md`` (§6): the device names and ids, the channels
(with the driver's ``extend_name`` labels and the data devices' scan elements), the attributes and
how they are shared, a plausible power-on value for each, and the ``*_available`` strings that
:class:`hw.emu.ad9361.PlutoContext` checks writes against. Ranges are those of an AD9363.

The set is what pyadi-iio's ``adi.Pluto``, libiio's ``iio_info``/``iio_attr``/``iio_readdev``/
``iio_writedev`` and the project's radio backend use, plus the neighbouring attributes a user of
those tools expects to see (RF port selection, tracking loops, ENSM mode, calibration mode, the DDS
tone controls, a few XADC sensors). It is not a full copy of a board: there is no gain table, no
fast-lock profile store, and of the register maps only the HDL cores' status register
(``direct_reg_access`` of the two data devices, :mod:`hw.emu.registers`).

The path-rate strings and the FIR read-back start empty here: :class:`~hw.emu.ad9361.PlutoContext`
renders them from the clock chain it solves for :data:`SAMPLE_RATE` and from the loaded FIR.
"""

from __future__ import annotations

from hw.emu.context import BY_TYPE, Attr, ContextBuilder

PHY_ID, XADC_ID, TX_ID, RX_ID = "iio:device0", "iio:device1", "iio:device2", "iio:device3"

#: Power-on state of the model (AD9363A; what ``adi.Pluto`` would read before any setter).
SAMPLE_RATE = 30_720_000
RF_BANDWIDTH = 18_000_000
RX_LO = 2_400_000_000
TX_LO = 2_450_000_000  # 50 MHz above RX: a fresh emulator does not hear itself
RX_GAIN_DB = 71.0
TX_ATTEN_DB = -10.0
XO_HZ = 40_000_000

LO_RANGE = "[325000000 1 3800000000]"  # AD9363
RX_BW_RANGE = "[200000 1 56000000]"
TX_BW_RANGE = "[200000 1 40000000]"
RX_GAIN_RANGE = "[-3 1 71]"  # not LO dependent here (it is on the chip)
TX_GAIN_RANGE = "[-89.750000 0.250000 0.000000]"
RATE_RANGE_NO_FIR = "[2083333 1 61440000]"
XO_RANGE = f"[{XO_HZ - 8000} 1 {XO_HZ + 8000}]"  # +-200 ppm trim

GAIN_MODES = "manual fast_attack slow_attack hybrid"
RX_PORTS = ("A_BALANCED B_BALANCED C_BALANCED A_N A_P B_N B_P C_N C_P "
            "TX_MONITOR1 TX_MONITOR2 TX_MONITOR1_2")
TX_PORTS = "A B"
ENSM_MODES = "sleep wait alert fdd pinctrl pinctrl_fdd_indep"
CALIB_MODES = "auto manual manual_tx_quad tx_quad rf_dc_offs rssi_gain_step"
GOVERNORS = "nominal highest_osr"

#: XADC conversion constants (Zynq-7000 XADC: 12-bit codes, 3 V full scale on supply channels,
#: temperature in millidegrees = (raw + offset) * scale).
_XADC_TEMP_SCALE = "123.040771484"
_XADC_TEMP_OFFSET = "-2219"
_XADC_SUPPLY_SCALE = "0.732421875"


#: A data device's rates: the full rate and 1/8 of it (the FPGA's optional x8 decimator).
_DEC8_RATES = f"{SAMPLE_RATE} {SAMPLE_RATE // 8} "


def _db(value: float) -> str:
    return f"{value:.6f} dB"


def _xadc_raw(volts: float) -> str:
    return str(round(volts * 1000 / float(_XADC_SUPPLY_SCALE)))


def _phy_rx_shared() -> list[Attr]:
    """Attributes the driver shares between all input voltage channels of ``ad9361-phy``."""
    return [
        Attr("rf_bandwidth", str(RF_BANDWIDTH), BY_TYPE),
        Attr("rf_bandwidth_available", RX_BW_RANGE, BY_TYPE),
        Attr("sampling_frequency", str(SAMPLE_RATE), BY_TYPE),
        Attr("sampling_frequency_available", RATE_RANGE_NO_FIR, BY_TYPE),
        Attr("filter_fir_en", "0", BY_TYPE),
        Attr("gain_control_mode_available", GAIN_MODES, BY_TYPE),
        Attr("rf_port_select_available", RX_PORTS, BY_TYPE),
        Attr("bb_dc_offset_tracking_en", "1", BY_TYPE),
        Attr("rf_dc_offset_tracking_en", "1", BY_TYPE),
        Attr("quadrature_tracking_en", "1", BY_TYPE),
    ]


def _phy_tx_shared() -> list[Attr]:
    """Attributes the driver shares between all output voltage channels of ``ad9361-phy``."""
    return [
        Attr("rf_bandwidth", str(RF_BANDWIDTH), BY_TYPE),
        Attr("rf_bandwidth_available", TX_BW_RANGE, BY_TYPE),
        Attr("sampling_frequency", str(SAMPLE_RATE), BY_TYPE),
        Attr("sampling_frequency_available", RATE_RANGE_NO_FIR, BY_TYPE),
        Attr("filter_fir_en", "0", BY_TYPE),
        Attr("rf_port_select_available", TX_PORTS, BY_TYPE),
    ]


def _lo(freq: int) -> list[Attr]:
    return [Attr("frequency", str(freq)), Attr("frequency_available", LO_RANGE),
            Attr("powerdown", "0"), Attr("external", "0"),
            Attr("fastlock_store", "0"), Attr("fastlock_load", "0")]


def pluto_builder(description: str = "relaysec emulated ADALM-Pluto") -> ContextBuilder:
    """The Pluto model as a :class:`ContextBuilder` (``.build(cls)`` makes a context)."""
    b = ContextBuilder("network", description)
    (b.context_attr("hw_model", "ADALM-Pluto (relaysec emulation, Z7010-AD9363A)")
      .context_attr("hw_model_variant", "0")
      .context_attr("hw_serial", "relaysec-emulated-pluto")
      .context_attr("fw_version", "v0.38-relaysec-emu")
      .context_attr("ad9361-phy,model", "ad9363a")
      .context_attr("ad9361-phy,xo_correction", str(XO_HZ)))

    # -- iio:device0, the transceiver's control device ----------------------------------------
    phy = b.device(PHY_ID, "ad9361-phy")
    phy.channel("voltage0", output=False, attrs=[
        Attr("hardwaregain", _db(RX_GAIN_DB)),
        Attr("hardwaregain_available", RX_GAIN_RANGE),
        Attr("gain_control_mode", "slow_attack"),
        Attr("rf_port_select", "A_BALANCED"),
        Attr("rssi", "98.25 dB"),
        *_phy_rx_shared(),
    ])
    # the auxiliary ADC input: a second input voltage channel seeing the shared RX files
    phy.channel("voltage2", output=False, attrs=[
        Attr("raw", "1530"), Attr("scale", "0.305250"), Attr("offset", "0"),
        *_phy_rx_shared(),
    ])
    phy.channel("voltage0", output=True, attrs=[
        Attr("hardwaregain", _db(TX_ATTEN_DB)),
        Attr("hardwaregain_available", TX_GAIN_RANGE),
        Attr("rf_port_select", "A"),
        Attr("rssi", "0.00 dB"),
        *_phy_tx_shared(),
    ])
    phy.channel("altvoltage0", output=True, name="RX_LO", attrs=_lo(RX_LO))
    phy.channel("altvoltage1", output=True, name="TX_LO", attrs=_lo(TX_LO))
    phy.channel("temp0", output=False, attrs=[Attr("input", "38250")])
    # the odd "out" channel (in_out_voltage_filter_fir_en): enables the RX and TX FIR together
    phy.channel("out", output=False, attrs=[
        Attr("voltage_filter_fir_en", "0", filename="in_out_voltage_filter_fir_en")])
    phy.attrs(
        calib_mode="auto", calib_mode_available=CALIB_MODES,
        ensm_mode="fdd", ensm_mode_available=ENSM_MODES,
        filter_fir_config="",  # rendered from the loaded FIR
        rx_path_rates="", tx_path_rates="",  # rendered from the clock chain
        trx_rate_governor="nominal", trx_rate_governor_available=GOVERNORS,
        xo_correction=str(XO_HZ), xo_correction_available=XO_RANGE,
    )
    phy.debug_attrs(loopback="0", bist_prbs="0", bist_tone="0 0 0 0")

    # -- iio:device1, the Zynq's XADC (sensors; read-only) -------------------------------------
    xadc = b.device(XADC_ID, "xadc")
    xadc.channel("temp0", output=False, attrs=[
        Attr("raw", "2600"), Attr("offset", _XADC_TEMP_OFFSET),
        Attr("scale", _XADC_TEMP_SCALE)])
    for index, (label, volts) in enumerate((("vccint", 1.0), ("vccaux", 1.8),
                                             ("vccbram", 1.0))):
        xadc.channel(f"voltage{index}", output=False, name=label, attrs=[
            Attr("raw", _xadc_raw(volts)), Attr("scale", _XADC_SUPPLY_SCALE)])

    # -- iio:device2, the TX DMA/DDS core ------------------------------------------------------
    tx = b.device(TX_ID, "cf-ad9361-dds-core-lpc")
    for index in (0, 1):
        tx.channel(f"voltage{index}", output=True, scan=(index, "le:S16/16>>0"), attrs=[
            Attr("calibphase", "0.000000"), Attr("calibscale", "1.000000"),
            Attr("sampling_frequency", str(SAMPLE_RATE), BY_TYPE),
            Attr("sampling_frequency_available", _DEC8_RATES, BY_TYPE)])
    # four DDS tone generators: I and Q of TX1, two tones each (pyadi's dds_* properties)
    for index, (label, phase) in enumerate((("TX1_I_F1", "90000"), ("TX1_I_F2", "90000"),
                                            ("TX1_Q_F1", "0"), ("TX1_Q_F2", "0"))):
        tx.channel(f"altvoltage{index}", output=True, name=label, attrs=[
            Attr("raw", "1"), Attr("frequency", "1000000" if index % 2 == 0 else "2000000"),
            Attr("scale", "0.250000"), Attr("phase", phase),
            Attr("sampling_frequency", str(SAMPLE_RATE), BY_TYPE)])
    tx.buffer_attrs(data_available="0", length_align_bytes="8", watermark="2048")
    tx.debug_attrs(direct_reg_access="0x0")  # the core's registers (hw.emu.registers)

    # -- iio:device3, the RX DMA core ----------------------------------------------------------
    rx = b.device(RX_ID, "cf-ad9361-lpc")
    for index in (0, 1):
        rx.channel(f"voltage{index}", output=False, scan=(index, "le:S12/16>>0"), attrs=[
            Attr("calibbias", "0"), Attr("calibphase", "0.000000"),
            Attr("calibscale", "1.000000"),
            Attr("sampling_frequency", str(SAMPLE_RATE), BY_TYPE),
            Attr("sampling_frequency_available", _DEC8_RATES, BY_TYPE)])
    rx.buffer_attrs(data_available="0", length_align_bytes="8", watermark="2048")
    rx.debug_attrs(direct_reg_access="0x0")
    return b
