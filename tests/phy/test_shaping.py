"""Transmit shaping: the spectrum at the Nyquist edge, what shaping costs, PAPR and clipping."""

from __future__ import annotations

import numpy as np
import pytest

import phy
from phy import spectrum
from phy.modem import DEFAULT_TX_RMS


def _bursts(profile: str, n: int, payload: int, shaping: bool, tx_rms: float | None = None,
            seed: int = 0) -> tuple[list[np.ndarray], phy.BurstModem]:
    rng = np.random.default_rng(seed)
    mods = {m: phy.BurstModem(profile, m, tx_rms=tx_rms, shaping=shaping)
            for m in ("QPSK-1/2", "16QAM-3/4", "64QAM-5/6")}
    names = list(mods)
    out = [mods[names[i % 3]].modulate(rng.bytes(payload)) for i in range(n)]
    return out, mods[names[0]]


@pytest.mark.parametrize("profile", phy.profiles())
def test_psd_at_the_nyquist_edge_is_40db_below_the_band(profile: str) -> None:
    """Every profile, 30 bursts back to back: <= -40 dB with shaping; the same bursts without
    it are above -37 dB (so the measurement would see a missing filter)."""
    shaped, m = _bursts(profile, 30, 600, True)
    bare, _ = _bursts(profile, 30, 600, False)
    assert spectrum.psd_edge_db(np.concatenate(shaped), m.grid) <= -40.0
    assert spectrum.psd_edge_db(np.concatenate(bare), m.grid) > -37.0


@pytest.mark.parametrize("profile", ["5MHz", "5MHz-cp16", "P2.5", "20MHz"])
def test_shaping_keeps_every_length_and_symbol_and_costs_little(profile: str) -> None:
    """Same length as the unshaped burst (and as ``burst_samples``), the same symbols in every
    FFT window (transmit EVM below -45 dB), and the burst decodes noiselessly."""
    rng = np.random.default_rng(1)
    for mcs in ("QPSK-1/2", "64QAM-5/6"):
        m = phy.BurstModem(profile, mcs)
        bare = phy.BurstModem(profile, mcs, shaping=False)
        data = rng.bytes(777)
        x, y = m.modulate(data), bare.modulate(data)
        assert x.size == y.size == m.burst_samples(777)
        assert spectrum.tx_evm_db(x, y, m.grid, m.backoff) < -45.0
        buf = np.concatenate([np.zeros(300, np.complex64), x, np.zeros(300, np.complex64)])
        (b,) = m.demodulate(buf)
        assert b.crc_ok and b.payload == data and b.start == 300 and b.n_samples == x.size


def test_papr_ccdf_and_the_limiter() -> None:
    """5 MHz, 150 bursts: per-symbol PAPR rarely above 11 dB and never above the limiter's
    12.04 dB (full scale over the default data RMS) by more than a few tenths, so at the default
    level at most a handful of samples per million clip; at a 6 dB hotter level the limiter acts
    and holds every sample to full scale."""
    bursts, m = _bursts("5MHz", 150, 1000, True)
    papr = np.concatenate([spectrum.symbol_papr_db(b, m.grid) for b in bursts])
    tail = spectrum.ccdf(papr, np.array([10.0, 11.0, 12.5]))
    assert 1e-3 < tail[0] < 0.1 and tail[1] < 0.01 and tail[2] == 0.0
    scale = phy.BurstModem("5MHz").scale
    clip = spectrum.clip_fraction(np.concatenate(bursts) * np.float32(scale))
    assert clip < 5e-6
    assert 20 * np.log10(1 / DEFAULT_TX_RMS) == pytest.approx(12.04, abs=0.01)
    hot, _ = _bursts("5MHz", 20, 1000, True, tx_rms=0.5)
    h = np.concatenate(hot)
    assert np.max(np.abs(h)) <= 1.0 + 1e-6
    assert np.count_nonzero(np.abs(h) > 0.999) > 0


def test_stored_lowpass_taps_are_the_design_for_every_profile() -> None:
    """The taps a run uses without scipy.signal (phy._lowpass_taps) equal a fresh
    Parks-McClellan design for every built-in profile, and the stored module is what
    ``taps_module`` writes today (so a change of the design parameters fails here)."""
    from pathlib import Path

    from phy import _lowpass_taps, shaping
    from phy.grid import ResourceGrid

    keys = {(g.nfft, int(g.freq_index.max())) for g in map(ResourceGrid, phy.profiles())}
    assert set(_lowpass_taps.TAPS) == keys
    for key in keys:
        stored = shaping.lowpass(*key)
        np.testing.assert_allclose(stored, shaping.design_lowpass(*key), rtol=0, atol=1e-7)
        assert stored.dtype == np.float32 and abs(float(stored.sum()) - 1.0) < 1e-5
    source = Path(_lowpass_taps.__file__).read_text()
    assert source == shaping.taps_module()


def test_lowpass_designs_a_grid_it_has_no_taps_for() -> None:
    """A grid outside the built-in profiles gets a designed filter, not a stored one."""
    from phy import shaping

    h = shaping.lowpass(384, 160)
    assert h.shape == (shaping.FIR_TAPS,) and not h.flags.writeable
    np.testing.assert_array_equal(h, shaping.design_lowpass(384, 160))
