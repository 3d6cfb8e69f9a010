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
