"""Fractional-delay interpolation (against an exact FFT delay) and window-split invariance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.channels import (
    INTERP_HALF,
    apply_taps,
    fractional_fir,
    interp_kernel,
    phase_noise,
    sample_at,
)
from hw.loopback import Medium


def periodic_signal(n: int, occupancy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = np.zeros(n, complex)
    k = int(occupancy / 2 * n)
    idx = np.r_[1:k, n - k : n]
    spec[idx] = np.exp(2j * np.pi * rng.random(idx.size))
    return spec


@given(st.floats(0.0, 1.0), st.integers(0, 3))
@settings(max_examples=25, deadline=None)
def test_fractional_delay_matches_exact_fft_delay(d, seed):
    n = 2048
    spec = periodic_signal(n, 0.86, seed)
    x = np.fft.ifft(spec) * np.sqrt(n)
    ref = np.fft.ifft(spec * np.exp(-2j * np.pi * np.fft.fftfreq(n) * d)) * np.sqrt(n)
    xxx = np.r_[x, x, x]
    h, first = fractional_fir([d], [1.0])
    y_fir = np.convolve(xxx, h)[n - first : 2 * n - first]
    y_gather = sample_at(xxx, np.arange(n) - d + n)
    for y in (y_fir, y_gather):
        err = np.mean(np.abs(y - ref) ** 2) / np.mean(np.abs(ref) ** 2)
        assert 10 * np.log10(err + 1e-30) < -58


def test_kernel_is_exact_on_integers_and_zero_outside():
    t = np.arange(-INTERP_HALF - 3, INTERP_HALF + 4, dtype=float)
    k = interp_kernel(t)
    assert k[t == 0] == 1.0 and np.all(np.abs(k[t != 0]) < 1e-15)
    h, first = fractional_fir([3.0, 5.0], [1.0, 0.5j])
    assert first == 3 and np.array_equal(h, [1.0, 0, 0.5j])


def test_sample_at_outside_support_is_zero():
    y = sample_at(np.ones(10, np.complex64), np.array([-100.0, -12.5, 22.5, 1e6, 4.0]))
    assert np.all(y[:4] == 0) and abs(y[4] - 1) < 1e-6


@given(st.lists(st.integers(1, 3000), min_size=1, max_size=6), st.booleans())
@settings(max_examples=15, deadline=None)
def test_any_window_split_gives_identical_samples(splits, sfo):
    def run(parts):
        m = Medium(1e6, seed=3)
        a = m.add_radio("a", ppm=30.0 if sfo else 0.0)
        b = m.add_radio("b")
        m.set_link("a", "b", snr_db=10, channel="pedA")
        rng = np.random.default_rng(0)
        a.transmit((0.1 * rng.standard_normal(2500)).astype(np.complex64))
        a.transmit((0.1 * rng.standard_normal(700)).astype(np.complex64), at=4000)
        return np.concatenate([b.receive(k) for k in parts])

    total = sum(splits)
    assert np.array_equal(run(splits), run([total]))


@given(st.lists(st.floats(-3.0, 40.0), min_size=1, max_size=6), st.integers(0, 5))
@settings(max_examples=30, deadline=None)
def test_fractional_fir_matches_the_exact_kernel(delays, seed):
    """The tabulated FIR (cheap per burst) equals the direct kernel sum to ~1e-6."""
    rng = np.random.default_rng(seed)
    gains = rng.standard_normal(len(delays)) + 1j * rng.standard_normal(len(delays))
    h, first = fractional_fir(delays, gains)
    m = np.arange(first - 3, first + h.size + 3, dtype=float)
    exact = (interp_kernel(m[None, :] - np.asarray(delays)[:, None]) * gains[:, None]).sum(0)
    padded = np.r_[np.zeros(3), h, np.zeros(3)]
    assert np.max(np.abs(padded - exact)) < 1e-5 * max(1.0, np.abs(gains).sum())


def test_apply_taps_is_the_fractional_fir_with_the_input_length():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=3000) + 1j * rng.normal(size=3000)).astype(np.complex64)
    x[:200] = 0
    x[-200:] = 0
    d = np.array([0.0, 7.3, 19.0])
    g = np.array([1.0, 0.5j, -0.2])
    y = apply_taps(x, d, g)
    h, first = fractional_fir(d, g)
    full = np.convolve(x, h)
    assert y.size == x.size
    np.testing.assert_allclose(y[200:2800], full[200 - first: 2800 - first], atol=1e-5)
    # a pure integer delay is an exact shift
    np.testing.assert_allclose(apply_taps(x, np.array([5.0]), np.ones(1))[5:], x[:-5], atol=1e-6)


def test_phase_noise_has_the_stated_level():
    """Wiener phase: the increment over m samples has variance m * 4 pi^2 f^2 L(f) / fs, i.e.
    the single-sideband level at 10 kHz is the one asked for (within 10 %, 200 k samples); a PLL
    corner bounds the phase's variance."""
    fs = 5.6e6
    rng = np.random.default_rng(4)
    ph = phase_noise(200_000, fs, -70.0, rng)
    q = 4 * np.pi**2 * 1e8 * 1e-7 / fs
    for m in (1, 64, 576):
        inc = ph[m:] - ph[:-m]
        assert np.var(inc) == pytest.approx(m * q, rel=0.1)
    held = phase_noise(400_000, fs, -70.0, rng, corner_hz=1e3)
    free = phase_noise(400_000, fs, -70.0, rng)
    assert np.var(held) < 0.1 * np.var(free - free.mean())
    assert phase_noise(0, fs, -70.0, rng).size == 0
