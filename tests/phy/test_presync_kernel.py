"""The receiver's compiled front end (:func:`phy.presync_kernels.presync`) against the path it
replaced: per candidate, the S&C phase, the long window's transform, the integer-CFO search and
fine timing, the preamble's windows, the LS estimate and the delay window, step by step in
Python with ``scipy.fft`` (:func:`_step_by_step`). Bit for bit at 256 points, where rocket-fft
and scipy.fft agree exactly; at 512 points and more the same timing and offsets with windows
and estimates equal to float32 rounding."""

from __future__ import annotations

import math

import numpy as np
import pytest

import phy
from phy.estimation import delay_profile_input, delay_window_of
from phy.grid import fft_rows
from phy.kernels import gather_windows
from phy.modem_rx import _MAX_SNR_DB, _PREAMBLE_ROWS
from phy.sync import detect, fractional_cfo, long_symbol_timing


def _step_by_step(m: phy.BurstModem, r: np.ndarray, cand: int) -> tuple | None:
    """One candidate through the former Python path: None when too close to the end, else
    (frac, ib, t_long, Y or None, (H, rot, power, sigma2, window) or None)."""
    g = m.grid
    n, ng, ns = g.nfft, g.cp, m._sym_len
    fs = m.profile.sample_rate
    coarse = max(cand, 0)
    if coarse + 3 * ns + 2 * ng > r.size:
        return None
    t0 = coarse + ns + ng - ng // 4
    frac = fractional_cfo(r, coarse + ng // 2, g)
    Yl = fft_rows(gather_windows(r, t0, 1, 0, n, 2 * np.pi * frac / fs), overwrite=True)
    ib, d = long_symbol_timing(Yl, g, m.pre, *m._timing_search)
    t_long = t0 + d
    if not (t_long - ns - ng >= 0 and t_long + 2 * ns - ng <= r.size):
        return frac, ib, t_long, None, None
    fit = (r.size - n - t_long + ns + m.backoff) // ns + 1
    rows = max(3, min(_PREAMBLE_ROWS, fit))
    df = g.profile.subcarrier_spacing
    Y = g.ofdm_demodulate(gather_windows(r, t_long - ns - m.backoff, rows, ns, n,
                                         2 * np.pi * (frac + ib * df) / fs))
    h, rot, total, noise = phy.kernels.preamble_estimate(Y[0], Y[1], m._long_inv, m._sc_inv,
                                                         m._even, m._odd)
    if not math.isfinite(total) or total <= 0.0:
        return frac, ib, t_long, Y, None
    sigma2 = max(noise, total * 10 ** (-_MAX_SNR_DB / 10))
    if not (math.isfinite(sigma2) and sigma2 > 0.0):
        return frac, ib, t_long, Y, None
    F = fft_rows(delay_profile_input(h, g.freq_index, n).reshape(1, n), overwrite=True)
    win = delay_window_of(F[0], g.freq_index, n, sigma2 * m._ls_noise_factor,
                          *m._delay_search)
    return frac, ib, t_long, Y, (h, complex(rot), total, sigma2, win)


def _buffer(m: phy.BurstModem, seed: int) -> np.ndarray:
    """Five bursts of random lengths at a 1.7 kHz carrier offset, with noise, silence between
    them and a burst cut short at the end (a candidate near the end)."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(5):
        parts += [np.zeros(int(rng.integers(200, 900)), np.complex64),
                  m.modulate(rng.bytes(int(rng.integers(20, 400))), src=1, dst=2)]
    cut = m.modulate(rng.bytes(50), src=1, dst=2)
    x = np.concatenate([*parts, np.zeros(300, np.complex64), cut[: 3 * m._sym_len]])
    x = (x * np.exp(2j * np.pi * 1.7e3 * np.arange(x.size) / m.sample_rate)).astype(np.complex64)
    x += (0.01 * (rng.normal(size=x.size) + 1j * rng.normal(size=x.size))).astype(np.complex64)
    return x


@pytest.mark.parametrize("profile", ["P2.5", "5MHz", "10MHz", "20MHz"])
def test_presync_equals_the_step_by_step_path(profile: str) -> None:
    m = phy.BurstModem(profile, "16QAM-3/4")
    exact = m.grid.nfft == 256
    for seed in (1, 2):
        r = _buffer(m, seed)
        cands = detect(r, m.grid)
        # every detected candidate, and starts the detector did not give: too close to the
        # end, windows past the end, silence (no usable estimate), negative
        extra = [r.size - 3 * m._sym_len, r.size - 4 * m._sym_len, 50, -40]
        got = m._presync(r, cands + extra)
        states = set()
        for cand in dict.fromkeys(cands + extra):
            want = _step_by_step(m, r, cand)
            if want is None:
                assert cand not in got
                states.add("skipped")
                continue
            t = got[cand]
            assert (t.frac, t.ib, t.t_long) == want[:3]
            assert (t.Y is None) == (want[3] is None)
            assert (t.est is None) == (want[4] is None)
            if t.Y is None:
                states.add("timed")
                continue
            if exact:
                assert t.Y.tobytes() == want[3].tobytes()
            else:
                np.testing.assert_allclose(t.Y, want[3], rtol=1e-5, atol=1e-6)
            if t.est is None:
                states.add("windowed")
                continue
            states.add("estimated")
            H, rot, power, sigma2, win = t.est
            if exact:
                assert H.tobytes() == want[4][0].tobytes()
                assert (rot, power, sigma2, win) == want[4][1:]
            else:
                np.testing.assert_allclose(H, want[4][0], rtol=1e-5, atol=1e-6)
                assert abs(rot - want[4][1]) <= 1e-5 * abs(want[4][1])
                np.testing.assert_allclose([power, sigma2], want[4][2:4], rtol=1e-5)
                assert np.abs(np.subtract(win, want[4][4])).max() <= 1.0
        assert {"skipped", "estimated"} <= states
    assert sum(b.crc_ok for b in m.demodulate(_buffer(m, 1))) == 5


@pytest.mark.parametrize("profile", ["P2.5", "10MHz"])
def test_presync_of_a_burst_cut_at_the_start_has_no_windows(profile: str) -> None:
    """A burst whose first CP the buffer missed: the long symbol is found a CP before the
    buffer could give the S&C symbol's window, so the candidate keeps its timing and offsets
    only (the windows would start before the buffer), as the step-by-step path."""
    m = phy.BurstModem(profile)
    ng = m.grid.cp
    x = m.modulate(b"cut at the start", src=1, dst=2)[ng:]
    r = np.concatenate([x, np.zeros(500, np.complex64)])
    got = m._presync(r, [0])[0]
    want = _step_by_step(m, r, 0)
    assert got.Y is None and want[3] is None
    assert (got.frac, got.ib, got.t_long) == want[:3]
    assert got.t_long - m._sym_len - ng < 0


def test_presync_of_silence_has_no_estimate() -> None:
    """A candidate over zeros gets its timing and windows but no estimate (zero power), as the
    step-by-step path; the receiver then finds no burst there."""
    m = phy.BurstModem("P2.5")
    r = np.zeros(20 * m._sym_len, np.complex64)
    got = m._presync(r, [100])[100]
    want = _step_by_step(m, r, 100)
    assert got.Y is not None and got.est is None and want[4] is None
    assert (got.frac, got.ib, got.t_long) == want[:3]
    assert m._sync(r, 100, got) is None


def test_presync_takes_each_candidate_once_and_keeps_their_order() -> None:
    m = phy.BurstModem("P2.5")
    r = _buffer(m, 3)
    cands = detect(r, m.grid)
    got = m._presync(r, cands[::-1] + cands)
    assert list(got) == [c for c in cands[::-1] if c in got]
    assert m._presync(r, []) == {}
