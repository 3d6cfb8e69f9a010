"""The receive-chain kernels rewritten for speed (issue 15) against the paths they replaced:
the naive twins, the cell-table demapper, the numpy preamble estimate and the linear matched
filter, on random inputs (hypothesis where the input space is wide)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft as sp_fft
from hypothesis import given, settings
from hypothesis import strategies as st

import phy
from phy import kernels, qam
from phy.estimation import noise_variance, preamble_ls
from phy.grid import ResourceGrid
from phy.sync import fine_timing, fine_timing_spectrum

from . import naive


def _cells_reference(z: np.ndarray, w: np.ndarray, bps: int) -> tuple[np.ndarray, np.ndarray]:
    """The cell-table max-log demapper (the kernel's generic path, in float64): per axis value
    the cell fixes each bit's nearest 0- and 1-level, LLR = w (alpha u + beta)."""
    alpha, beta, nearest, inv_cell = qam.demap_tables(bps // 2)
    nc = alpha.shape[0]
    u = np.stack([z.real, z.imag], axis=1).astype(np.float64)  # (n, 2)
    c = np.clip(np.floor(u * inv_cell).astype(np.int64) + nc // 2, 0, nc - 1)
    llr = w[:, None, None] * (alpha[c] * u[..., None] + beta[c])  # (n, 2, m)
    err = ((u - nearest[c]) ** 2).sum(axis=1)
    return llr.reshape(-1), err


@pytest.mark.parametrize("bps", [4, 6])
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 3.0), st.integers(1, 400))
@settings(max_examples=40, deadline=None)
def test_closed_form_demapper_equals_the_cell_tables(bps: int, seed: int, spread: float,
                                                     n: int) -> None:
    """16QAM/64QAM: the branch-free per-axis form gives the cell tables' LLRs and errors,
    including far outside the constellation, on the cell edges and at zero."""
    rng = np.random.default_rng(seed)
    z = (spread * (rng.normal(size=n) + 1j * rng.normal(size=n))).astype(np.complex64)
    # exact cell edges (the midpoints between levels), their neighbours and zero
    edges = np.unique(np.concatenate([[0.0], qam.axis_levels(bps // 2)]))
    mids = ((edges[1:] + edges[:-1]) / 2).astype(np.float32)
    k = min(n, mids.size)
    z[:k] = mids[:k] + 1j * mids[::-1][:k]
    w = rng.uniform(0.01, 50, n).astype(np.float32)
    got, err = qam.demodulate_with_error(z, w, bps)
    ref, ref_err = _cells_reference(z, w, bps)
    scale = w.repeat(bps) * (1.0 + np.abs(z).repeat(bps)) ** 2
    assert np.all(np.abs(got - ref) <= 1e-5 * scale)
    assert np.all(np.sign(got[np.abs(ref) > 1e-3 * scale]) ==
                  np.sign(ref[np.abs(ref) > 1e-3 * scale]))
    np.testing.assert_allclose(err, ref_err, rtol=1e-5, atol=1e-6)
    # and the naive brute-force max-log
    naive_llr = naive.demap_maxlog(z.astype(np.complex128), w.astype(np.float64),
                                   qam.constellation(bps))
    assert np.all(np.abs(got - naive_llr) <= 1e-5 * scale)


@pytest.mark.parametrize("bps", [4, 6])
def test_closed_form_demapper_scatters_like_the_identity_map(bps: int) -> None:
    """A scatter map (reversed order, some bits dropped) puts every LLR where plain
    demapping says and leaves the dropped slots alone."""
    rng = np.random.default_rng(bps)
    n = 97
    z = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(np.complex64)
    w = rng.uniform(0.1, 5, n).astype(np.float32)
    plain = qam.demodulate(z, w, bps)
    dest = np.arange(n * bps, dtype=np.int64)[::-1].copy()
    dest[::7] = -1
    out = np.full(n * bps, 123.0, np.float32)
    qam.demodulate_into(z, w, bps, dest, out)
    keep = dest >= 0
    assert np.array_equal(out[dest[keep]], plain[keep])
    assert np.all(out[np.setdiff1d(np.arange(n * bps), dest[keep])] == 123.0)


@given(st.integers(0, 2**32 - 1), st.integers(1, 70), st.floats(-0.5, 0.5),
       st.floats(-3.0, 3.0))
@settings(max_examples=40, deadline=None)
def test_phasor_table_is_the_complex_exponential(seed: int, n: int, step: float,
                                                 ph0: float) -> None:
    pr = np.empty(n)
    pi = np.empty(n)
    kernels._phasors(n, ph0, step, pr, pi)
    ref = np.exp(1j * (ph0 + step * np.arange(n)))
    np.testing.assert_allclose(pr + 1j * pi, ref, atol=1e-12)


@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.sampled_from([8, 37, 256, 512]),
       st.floats(-0.4, 0.4))
@settings(max_examples=30, deadline=None)
def test_gather_windows_equals_naive_any_length(seed: int, n_sym: int, nfft: int,
                                                w: float) -> None:
    rng = np.random.default_rng(seed)
    stride = nfft + nfft // 8
    r = (rng.normal(size=n_sym * stride + nfft + 50) +
         1j * rng.normal(size=n_sym * stride + nfft + 50)).astype(np.complex64)
    s0 = int(rng.integers(0, 50))
    got = kernels.gather_windows(r, s0, n_sym, stride, nfft, w)
    np.testing.assert_allclose(got, naive.gather_windows(r, s0, n_sym, stride, nfft, w),
                               rtol=1e-5, atol=1e-5)
    dw = rng.uniform(-1e-3, 1e-3, n_sym)
    got = kernels.gather_windows_ramp(r, s0, n_sym, stride, nfft, w, dw)
    np.testing.assert_allclose(got,
                               naive.gather_windows_ramp(r, s0, n_sym, stride, nfft, w, dw),
                               rtol=1e-5, atol=1e-5)


@given(st.integers(0, 2**32 - 1), st.sampled_from(["P2.5", "5MHz", "10MHz-cp16"]))
@settings(max_examples=20, deadline=None)
def test_equalize_equals_naive_across_the_dc_hole(seed: int, profile: str) -> None:
    """A real grid's frequency index (a hole at DC, two runs), weak and zero channel taps."""
    rng = np.random.default_rng(seed)
    g = ResourceGrid(profile)
    n_sym = 4
    Y = (rng.normal(size=(n_sym, g.n_used)) + 1j * rng.normal(size=(n_sym, g.n_used))).astype(
        np.complex64)
    H = (rng.normal(size=g.n_used) + 1j * rng.normal(size=g.n_used)).astype(np.complex64)
    H[rng.integers(0, g.n_used, 5)] = 0.0
    H[rng.integers(0, g.n_used, 5)] *= np.float32(1e-3)
    ls = np.arange(1, n_sym + 1)
    dpos = g.sym_data_pos[ls % 3]
    cpe, slope = rng.uniform(-3, 3, n_sym), rng.uniform(-0.01, 0.01, n_sym)
    fidx = g.freq_index.astype(np.float64)
    z, w = kernels.equalize(Y, H, dpos, cpe, slope, fidx, 0.7)
    with np.errstate(divide="ignore", invalid="ignore"):
        zr, wr = naive.equalize(Y, H, dpos, cpe, slope, fidx, 0.7)
    hd = np.abs(H[dpos].ravel())
    ok = hd > 1e-2  # 1/H of the weak taps is huge: compare those relatively
    weak = (hd > 0) & ~ok
    np.testing.assert_allclose(z[ok], zr[ok], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(z[weak], zr[weak], rtol=1e-3)
    # a zero tap: the kernel floors |H|^2 at 1e-30: a zero symbol of ~0 weight (naive: inf)
    assert np.all(z[hd == 0] == 0) and np.all(w[hd == 0] <= 1e-29)
    np.testing.assert_allclose(w, wr, rtol=1e-5, atol=1e-30)


@given(st.integers(0, 2**32 - 1), st.sampled_from(["P2.5", "5MHz", "20MHz"]),
       st.integers(-6, 6))
@settings(max_examples=25, deadline=None)
def test_diff_corr_equals_naive_and_picks_the_same_shift(seed: int, profile: str,
                                                         true_shift: int) -> None:
    rng = np.random.default_rng(seed)
    g = ResourceGrid(profile)
    pre = phy.BurstModem(profile).pre
    # a long symbol moved by an even number of bins, in noise
    Y = (0.3 * (rng.normal(size=g.nfft) + 1j * rng.normal(size=g.nfft))).astype(np.complex64)
    Y[(g.used_bins + 2 * true_shift) % g.nfft] += pre.long
    c = (np.conj(pre.long[:-1]) * pre.long[1:]).astype(np.complex64)
    shifts = np.arange(-6, 7, dtype=np.int64) * 2
    got = kernels.diff_corr(Y, g.used_bins, c, shifts)
    ref = naive.diff_corr(Y, g.used_bins, c, shifts)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * ref.max())
    assert shifts[int(np.argmax(got))] == 2 * true_shift == shifts[int(np.argmax(ref))]


@given(st.integers(0, 2**32 - 1), st.sampled_from(["P2.5", "5MHz", "20MHz"]))
@settings(max_examples=20, deadline=None)
def test_preamble_estimate_equals_the_numpy_estimate(seed: int, profile: str) -> None:
    rng = np.random.default_rng(seed)
    m = phy.BurstModem(profile)
    n = m.grid.n_used
    H = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(np.complex64)
    noise = 0.1 * (rng.normal(size=(2, n)) + 1j * rng.normal(size=(2, n)))
    rot = np.exp(1j * rng.uniform(-np.pi, np.pi))
    y_sc = (H * m.pre.sc * rot + noise[0]).astype(np.complex64)
    y_long = (H * m.pre.long + noise[1]).astype(np.complex64)
    h, r, total, nv = kernels.preamble_estimate(y_sc, y_long, m._long_inv, m._sc_inv, m._even,
                                                m._odd)
    h_ref, factor, phase = preamble_ls(y_sc, y_long, m._long_inv, m._sc_inv, m._even)
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
    assert np.angle(r) == pytest.approx(phase, abs=1e-6)
    assert total == pytest.approx(float(np.mean(np.abs(h_ref.astype(np.complex128)) ** 2)),
                                  rel=1e-5)
    assert nv == pytest.approx(noise_variance(y_sc, m._odd, 0.0), rel=1e-5)
    assert m._ls_noise_factor == pytest.approx(factor)


@given(st.integers(0, 2**32 - 1), st.sampled_from(["P2.5", "5MHz", "10MHz-cp16", "20MHz"]),
       st.integers(-1000, 1000), st.integers(-3, 3))
@settings(max_examples=30, deadline=None)
def test_spectrum_fine_timing_equals_the_linear_matched_filter(seed: int, profile: str,
                                                             frac_offset: int,
                                                             int_cfo: int) -> None:
    """The circular matched filter on the integer-CFO window's spectrum finds the same first
    path as the linear one over NFFT + 2 Ng samples: two echoes, noise, an integer CFO and
    any window start from a quarter CP late to most of a CP early."""
    rng = np.random.default_rng(seed)
    m = phy.BurstModem(profile)
    g = m.grid
    n, ng, ns = g.nfft, g.cp, g.symbol_samples
    x = m.modulate(rng.bytes(20), src=1, dst=2)
    h = np.zeros(ng // 4 + 1, np.complex64)
    h[0], h[ng // 8], h[ng // 4] = 1.0, 0.5 * np.exp(1j * rng.uniform(0, 6.3)), 0.3
    y = np.convolve(np.concatenate([np.zeros(3 * ns, np.complex64), x]), h)[: 3 * ns + x.size]
    k = np.arange(y.size)
    y = (y * np.exp(2j * np.pi * 2 * int_cfo * k / n)).astype(np.complex64)
    y += (0.02 * (rng.normal(size=y.size) + 1j * rng.normal(size=y.size))).astype(np.complex64)
    t_long = 3 * ns + ns + ng  # the long symbol's useful part (first path)
    d = int(np.clip(frac_offset * ng // 2000, -(ng // 4), ng - ng // 4))  # window vs t_long
    t0 = t_long - d  # the integer-CFO window's start (d samples early)
    Yl = np.fft.fft(y[t0: t0 + n]).astype(np.complex64)
    got = t0 + fine_timing_spectrum(Yl, 2 * int_cfo, g, m.pre, *m._timing_search)
    a = t_long - ng
    seg = (y[a: a + n + 2 * ng] * np.exp(-2j * np.pi * 2 * int_cfo * k[a: a + n + 2 * ng] / n))
    ref = a + fine_timing(seg.astype(np.complex64), m.pre)
    assert got == ref == t_long


@given(st.integers(0, 2**32 - 1), st.sampled_from(["P2.5", "5MHz", "20MHz"]),
       st.integers(1, 3), st.integers(40, 400))
@settings(max_examples=20, deadline=None)
def test_robust_combine_equals_demap_then_bincount(seed: int, profile: str, n_sym: int,
                                                   n_bits: int) -> None:
    """The header/A-MAP combiner gives the sums np.bincount gave over the demapper's LLRs
    (the same float32 products summed in float64 in the same order: equal), and the same
    per-symbol errors."""
    from phy.modem import _fec, _robust_map

    rng = np.random.default_rng(seed)
    g = ResourceGrid(profile)
    n = n_sym * g.n_data
    z = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(np.complex64)
    w = rng.uniform(0.1, 10, n).astype(np.float32)
    nco = _fec("1/2").coded_length(n_bits)
    dest, sign = _robust_map(2 * g.n_data, 2 * n, nco)
    llr, err = qam.demodulate_with_error(z, w, 2)
    ref = np.bincount(dest, weights=llr * sign, minlength=nco).astype(np.float32)
    alpha, beta, nearest, _ = qam.demap_tables(1)
    got, got_err = kernels.robust_combine(z, w, dest, sign, nco, alpha, beta, nearest)
    assert np.array_equal(got, ref)
    assert np.array_equal(got_err, err)


@pytest.mark.parametrize("profile", ["P2.5", "5MHz", "20MHz"])
def test_batched_presync_equals_one_candidate_at_a_time(profile: str) -> None:
    """The buffer-wide pre-synchronisation (all candidates' integer-CFO windows, fine-timing
    correlations, preamble windows and delay profiles each in one transform) gives every
    candidate the same synchronisation (timing, CFO, noise, channel, echo) as computing it
    alone, and the bursts decode."""
    from phy.sync import detect

    rng = np.random.default_rng(7)
    m = phy.BurstModem(profile, "16QAM-3/4")
    parts = []
    for _ in range(5):
        parts += [np.zeros(int(rng.integers(200, 900)), np.complex64),
                  m.modulate(rng.bytes(int(rng.integers(20, 400))), src=1, dst=2)]
    x = np.concatenate([*parts, np.zeros(300, np.complex64)])
    k = np.arange(x.size)
    x = (x * np.exp(2j * np.pi * 1.7e3 * k / m.sample_rate)).astype(np.complex64)
    x += (0.01 * (rng.normal(size=x.size) + 1j * rng.normal(size=x.size))).astype(np.complex64)
    cands = detect(x, m.grid)
    batch = m._presync(x, cands)
    assert len(batch) >= 5
    for cand, t in batch.items():
        alone = m._presync(x, [cand])[cand]
        assert (t.frac, t.ib, t.t_long) == (alone.frac, alone.ib, alone.t_long)
        np.testing.assert_allclose(t.Y, alone.Y, rtol=1e-6, atol=1e-6)
        a, b = m._sync(x, cand, t), m._sync(x, cand)
        assert (a is None) == (b is None)
        if a is not None:
            assert (a.start, a.cfo, a.sigma2, a.echo) == (b.start, b.cfo, b.sigma2, b.echo)
            np.testing.assert_allclose(a.H, b.H, rtol=1e-5, atol=1e-6)
    assert sum(b.crc_ok for b in m.demodulate(x)) == 5


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("ortho", [False, True])
def test_fft_rows_is_scipy_fft_bit_for_bit(inverse: bool, ortho: bool) -> None:
    """The direct pocketfft call gives scipy.fft's values exactly, for one row and batches
    (pocketfft's 4-row vector path and the rows left over), with and without overwriting its
    input, and arrays it does not take (complex128, a strided view) go through scipy.fft."""
    from phy.sync import fft_rows

    rng = np.random.default_rng(31)
    fn = sp_fft.ifft if inverse else sp_fft.fft
    norm = "ortho" if ortho else None
    for n in (1, 7, 256, 512, 2048):
        for shape in [(n,), (1, n), (3, n), (4, n), (5, n), (9, n)]:
            x = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
            want = fn(x, norm=norm)
            for overwrite in (False, True):
                got = fft_rows(x.copy(), inverse=inverse, ortho=ortho, overwrite=overwrite)
                assert got.dtype == want.dtype and got.shape == want.shape
                assert got.tobytes() == want.tobytes()
    x = rng.normal(size=(4, 512)) + 1j * rng.normal(size=(4, 512))
    assert fft_rows(x, inverse=inverse, ortho=ortho).tobytes() == fn(x, norm=norm).tobytes()
    v = x.astype(np.complex64)[:, ::2]
    assert fft_rows(v, inverse=inverse, ortho=ortho).tobytes() == fn(v, norm=norm).tobytes()


@pytest.mark.parametrize("profile", ["P2.5", "5MHz", "20MHz"])
def test_receiver_demodulate_is_the_grids_bit_for_bit(profile: str) -> None:
    """The receiver's OFDM demodulation (transform through fft_rows, into the input) gives
    ResourceGrid.ofdm_demodulate's values exactly, with head rows and padding rows dropped."""
    rng = np.random.default_rng(32)
    m = phy.BurstModem(profile)
    g = m.grid
    for n_sym, head, rows in [(1, 0, None), (3, 0, None), (4, 1, 3), (8, 2, 6), (5, 1, None)]:
        w = (rng.normal(size=(n_sym, g.nfft)) + 1j * rng.normal(size=(n_sym, g.nfft))
             ).astype(np.complex64)
        h = (rng.normal(size=(head, g.n_used)) + 1j * rng.normal(size=(head, g.n_used))
             ).astype(np.complex64) if head else None
        want = g.ofdm_demodulate(w, h, rows)
        got = m._demodulate(w.copy(), h, rows)
        assert got.shape == want.shape and got.tobytes() == want.tobytes()


def test_lmmse_gain_band_equals_the_numpy_gains_bit_for_bit() -> None:
    """The fused kernel keeps the same basis vectors and gives the same estimate, bit for bit,
    as the numpy gains, count and lmmse_band it replaced, also for the powers hostile input
    makes (zero, NaN, inf: no vector kept, a zero estimate, no warning and no exception)."""
    from phy.channel_kernels import lmmse_gain_band
    from phy.estimation import _geometry_of, _slepian_basis

    rng = np.random.default_rng(33)
    g = ResourceGrid("P2.5")
    _, _, _, pos, holes, k = _geometry_of(g.freq_index, g.nfft)
    cases = [(float(rng.uniform(1e-4, 10)), float(rng.uniform(1e-5, 1))) for _ in range(60)]
    cases += [(0.0, 0.0), (np.nan, 0.1), (np.inf, 0.1), (1.0, np.inf), (1e-3, 1e-30)]
    for i, (power, sigma2) in enumerate(cases):
        U, lam = _slepian_basis(k.size, g.nfft, (4, 6, 8, 12, 24)[i % 5])
        H = (rng.normal(size=g.n_used) + 1j * rng.normal(size=g.n_used)).astype(np.complex64)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            gains = lam * power / (lam * power + sigma2)
        r = int(np.count_nonzero(gains >= 1e-4))
        want = kernels.lmmse_band(U[:r], H, pos, holes, gains[:r], float(k[0]), 0.3)
        got = lmmse_gain_band(U, lam, power, sigma2, H, pos, holes, float(k[0]), 0.3)
        assert got.tobytes() == want.tobytes(), (power, sigma2)


@pytest.mark.parametrize("seed", range(4))
def test_cp_phase_equals_the_libm_angles_bit_for_bit(seed: int) -> None:
    """The drift phases computed in the kernel are the C library's atan2 (``math.atan2``,
    what numba calls), minus the advance, wrapped by numpy's remainder, bit for bit (on random
    buffers, advances and scales); numpy's own arctan2 within 4e-15. On a CPU with AVX-512
    numpy computes arctan2 with its SIMD routine, which differs from libm in the last bit
    (2 of 3 calls here on a Zen 4): this test compared with it and failed there."""
    import math

    from phy.sync_kernels import cp_phase

    rng = np.random.default_rng(seed)
    scale = [1e-6, 1.0, 1e3, 1.0][seed]
    r = (scale * (rng.normal(size=20_000) + 1j * rng.normal(size=20_000))).astype(np.complex64)
    for _ in range(200):
        n_sym, first = int(rng.integers(1, 20)), int(rng.integers(0, 500))
        a, adv = int(rng.integers(0, 20)), float(rng.uniform(-10, 10))
        c = kernels.cp_corr(r, first, n_sym, 288, 256, a, 32)
        angle = np.array([math.atan2(z.imag, z.real) for z in c])
        want = np.remainder(angle - adv + np.pi, 2 * np.pi) - np.pi
        got = cp_phase(r, first, n_sym, 288, 256, a, 32, adv)
        assert got.tobytes() == want.tobytes()
        near = np.remainder(np.arctan2(c.imag, c.real) - adv + np.pi, 2 * np.pi) - np.pi
        assert np.max(np.abs(got - near)) <= 4e-15


def test_fft_rows_a_row_does_not_depend_on_its_batch() -> None:
    """A window's transform is the same bit for bit alone and in any batch: the receiver pads
    batches to fours and takes the preamble's and the first A-MAP symbol's windows in one
    transform, and relies on this to give the values of separate transforms."""
    from phy.sync import fft_rows

    rng = np.random.default_rng(34)
    for n in (256, 512, 1024, 2048):
        X = (rng.normal(size=(13, n)) + 1j * rng.normal(size=(13, n))).astype(np.complex64)
        alone = np.stack([fft_rows(X[i: i + 1].copy(), ortho=True)[0] for i in range(13)])
        for lo, hi in [(0, 13), (0, 4), (1, 4), (2, 9), (5, 13), (3, 4)]:
            assert fft_rows(X[lo:hi].copy(), ortho=True).tobytes() == alone[lo:hi].tobytes()


@pytest.mark.parametrize("profile", ["P2.5", "5MHz"])
def test_long_symbol_timing_equals_the_two_steps(profile: str) -> None:
    """The single-window path gives integer_cfo_bins' shift and fine_timing_spectrum's delay
    for long-symbol windows at integer CFOs and timing offsets, with noise and an echo."""
    from phy.sync import fine_timing_spectrum, integer_cfo_bins, long_symbol_timing

    rng = np.random.default_rng(35)
    m = phy.BurstModem(profile)
    g = m.grid
    lo, hi = m._timing_search
    for _ in range(40):
        X = np.zeros(g.nfft, np.complex64)
        shift = int(rng.integers(-6, 7)) * 2
        X[(g.used_bins + shift) % g.nfft] = m.pre.long
        t = np.fft.ifft(X) * np.exp(-2j * np.pi * np.arange(g.nfft) * rng.integers(-20, 30)
                                    / g.nfft)
        noise = rng.normal(size=g.nfft) + 1j * rng.normal(size=g.nfft)
        t = t + 0.3 * np.roll(t, 3) + 0.05 * noise
        Yl = np.fft.fft(t).astype(np.complex64).reshape(1, g.nfft)
        ib = integer_cfo_bins(Yl[0], g, m.pre)
        d = fine_timing_spectrum(Yl[0].copy(), ib, g, m.pre, lo, hi)
        assert long_symbol_timing(Yl, g, m.pre, lo, hi) == (ib, d)
