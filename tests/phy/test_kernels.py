"""numba kernels against their naive twins (tests/phy/naive.py) on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phy
from phy import kernels, qam, sync_kernels
from phy.fec import FEC, PUNCTURE, ConvCode, conv_encode

from . import naive


@given(st.integers(0, 2**15 - 1), st.integers(0, 300))
@settings(max_examples=40, deadline=None)
def test_prbs_equals_naive(seed_val: int, n: int) -> None:
    seed = np.array([(seed_val >> i) & 1 for i in range(15)], np.uint8)
    assert np.array_equal(kernels.prbs(seed, 14, n), naive.prbs(seed, 14, n))
    s11 = seed[:11].copy()
    assert np.array_equal(kernels.prbs(s11, 9, n), naive.prbs(s11, 9, n))


def test_prbs_is_maximal_length() -> None:
    seq = kernels.prbs(np.array([1] + [0] * 14, np.uint8), 14, 2 * 32767)
    assert np.array_equal(seq[:32767], seq[32767:])
    assert int(seq[:32767].sum()) == 16384  # m-sequence balance


@given(st.lists(st.integers(0, 1), min_size=0, max_size=200))
@settings(max_examples=40, deadline=None)
def test_encoder_equals_naive(bits: list[int]) -> None:
    b = np.array(bits, np.uint8)
    assert np.array_equal(conv_encode(b), naive.conv_encode(b))


def test_viterbi_equals_naive_on_random_llrs() -> None:
    rng = np.random.default_rng(10)
    for trial in range(6):
        n = int(rng.integers(7, 120))
        # LLRs on a 1/8 grid: float32 and float64 sums are exact, so ties break identically
        llr = (np.round(rng.normal(0, 2.0, 2 * n) * 8) / 8).astype(np.float32)
        if trial % 2:
            llr[rng.random(2 * n) < 0.3] = 0.0  # punctured positions give exact ties
        got = kernels.viterbi_k7(llr, kernels.BFLY_SX, kernels.BFLY_SY)
        assert np.array_equal(got, naive.viterbi(llr)), trial


def test_viterbi_long_bursts_and_argument_checks() -> None:
    """Long bursts exercise the metric normalisation of the vector recursion (every second
    step) over thousands of steps; odd lengths the single trailing step."""
    rng = np.random.default_rng(13)
    for n in (1, 2, 3, 2501, 3000):
        llr = (np.round(rng.normal(0, 3.0, 2 * n) * 8) / 8).astype(np.float32)
        got = kernels.viterbi_k7(llr, kernels.BFLY_SX, kernels.BFLY_SY)
        assert np.array_equal(got, naive.viterbi(llr)), n
    with pytest.raises(ValueError, match="32 butterfly signs"):
        kernels.viterbi_k7(llr, kernels.BFLY_SX[:16], kernels.BFLY_SY)
    strided = np.zeros(4 * 50, np.float32)[::2]  # a non-contiguous view decodes like a copy
    strided[:] = np.round(rng.normal(0, 2.0, 100) * 8) / 8
    assert np.array_equal(kernels.viterbi_k7(strided, kernels.BFLY_SX, kernels.BFLY_SY),
                          naive.viterbi(np.ascontiguousarray(strided)))


@given(st.sampled_from(list(PUNCTURE)), st.integers(0, 40_000))
@settings(max_examples=200, deadline=None)
def test_coded_length_by_arithmetic_equals_the_punctured_stream(rate: str, n_info: int) -> None:
    code = ConvCode(rate)
    assert code.coded_length(n_info) == code.encode(np.zeros(n_info, np.uint8)).size


def test_the_puncturing_cache_keeps_recent_sizes_and_stays_bounded() -> None:
    from phy.fec import MASK_CACHE

    code = ConvCode("3/4")
    first = code.input_positions(100)
    for n in range(1000, 1000 + MASK_CACHE + 10):
        code.input_positions(n)
    assert len(code._mask_cache) == MASK_CACHE
    assert 100 not in code._mask_cache                   # the oldest went first ...
    assert code.input_positions(1000 + MASK_CACHE + 9) is code.input_positions(
        1000 + MASK_CACHE + 9)                            # ... recent ones stay
    assert np.array_equal(code.input_positions(100), first)


@pytest.mark.parametrize("rate", list(PUNCTURE))
def test_punctured_code_decodes_noiseless(rate: str) -> None:
    rng = np.random.default_rng(11)
    code = ConvCode(rate)
    bits = rng.integers(0, 2, 997).astype(np.uint8)
    coded = code.encode(bits)
    assert coded.size == code.coded_length(997)
    assert coded.size / (997 + 6) == pytest.approx(1 / code.rate, rel=0.01)
    llr = (1.0 - 2.0 * coded).astype(np.float32)
    assert np.array_equal(code.decode(llr, 997), bits)
    assert isinstance(code, FEC)  # the modem only talks to the protocol
    pos = code.input_positions(997)
    assert pos.size == coded.size and int(pos.max()) < code.input_size(997)
    assert np.unique(pos).size == pos.size


@pytest.mark.parametrize("bps", [2, 4, 6])
def test_demapper_equals_naive(bps: int) -> None:
    rng = np.random.default_rng(12 + bps)
    z = (rng.normal(size=3000) + 1j * rng.normal(size=3000)).astype(np.complex64) * 0.8
    w = rng.uniform(0.1, 10, 3000).astype(np.float32)
    got = qam.demodulate(z, w, bps)
    ref = naive.demap_maxlog(z.astype(np.complex128), w.astype(np.float64), qam.constellation(bps))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bps", [2, 4, 6])
def test_demapper_error_output_is_distance_to_nearest_point(bps: int) -> None:
    rng = np.random.default_rng(30 + bps)
    z = (rng.normal(size=500) + 1j * rng.normal(size=500)).astype(np.complex64)
    _, err = qam.demodulate_with_error(z, np.ones(z.size, np.float32), bps)
    ref = np.min(np.abs(z[:, None].astype(np.complex128) - qam.constellation(bps)[None, :]) ** 2,
                 axis=1)
    np.testing.assert_allclose(err, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mcs", ["QPSK-1/2", "16QAM-3/4", "64QAM-2/3", "64QAM-5/6"])
def test_fused_demap_scatter_equals_deinterleave_then_depuncture(mcs: str) -> None:
    """The receiver's one-pass map (demap -> FEC input buffer) equals the two-step path:
    deinterleave the demapped LLRs, drop the padding, depuncture into the mother stream."""
    from phy.interleaver import deinterleave
    from phy.modem import _fec, _rx_scatter_map

    modem = phy.BurstModem("P2.5", mcs)
    m = modem.mcs
    n_bytes = 137
    n_info = 8 * (n_bytes + 4)
    ncbps = modem.grid.n_data * m.bits_per_symbol
    n_sym = modem.data_symbols(n_bytes)
    rng = np.random.default_rng(40)
    n = n_sym * modem.grid.n_data
    z = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(np.complex64)
    w = rng.uniform(0.1, 10, n).astype(np.float32)
    fec = _fec(m.code_rate)
    llr = deinterleave(qam.demodulate(z, w, m.bits_per_symbol), ncbps, m.bits_per_symbol)
    ref = np.zeros(fec.input_size(n_info), np.float32)
    ref[fec.input_positions(n_info)] = llr[: fec.coded_length(n_info)]
    got = np.zeros_like(ref)
    qam.demodulate_into(z, w, m.bits_per_symbol,
                        _rx_scatter_map(ncbps, m.bits_per_symbol, m.code_rate, n_info), got)
    assert np.array_equal(got, ref)
    assert np.array_equal(fec.decode_buffer(got, n_info),
                          fec.decode(llr[: fec.coded_length(n_info)], n_info))


def test_demodulate_into_rejects_a_map_past_the_buffer() -> None:
    z = np.zeros(4, np.complex64)
    w = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="past the end"):
        qam.demodulate_into(z, w, 2, np.arange(8, dtype=np.int64), np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="weights"):
        qam.demodulate_into(z, w[:3], 2, np.arange(8, dtype=np.int64), np.zeros(8, np.float32))


def test_equalize_equals_naive() -> None:
    rng = np.random.default_rng(14)
    n_sym, n_used = 5, 72
    Y = (rng.normal(size=(n_sym, n_used)) + 1j * rng.normal(size=(n_sym, n_used))).astype(
        np.complex64)
    H = (rng.normal(size=n_used) + 1j * rng.normal(size=n_used)).astype(np.complex64)
    dpos = np.stack([np.sort(rng.choice(n_used, 68, replace=False)) for _ in range(n_sym)])
    cpe, slope = rng.uniform(-3, 3, n_sym), rng.uniform(-0.05, 0.05, n_sym)
    fidx = (np.arange(n_used) - 36).astype(np.float64)
    z, w = kernels.equalize(Y, H, dpos, cpe, slope, fidx, 2.5)
    zr, wr = naive.equalize(Y, H, dpos, cpe, slope, fidx, 2.5)
    np.testing.assert_allclose(z, zr, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(w, wr, rtol=1e-5)


@pytest.mark.parametrize("bps", [2, 4, 6])
def test_qam_roundtrip_gray_and_unit_energy(bps: int) -> None:
    pts = qam.constellation(bps)
    assert np.mean(np.abs(pts) ** 2) == pytest.approx(1.0, rel=1e-6)
    # Gray: nearest neighbours differ in exactly one bit
    dmin = np.min(np.abs(pts[1:] - pts[0]))
    for a in range(pts.size):
        for b in range(pts.size):
            if a != b and abs(abs(pts[a] - pts[b]) - dmin) < 1e-6:
                assert bin(a ^ b).count("1") == 1
    rng = np.random.default_rng(bps)
    bits = rng.integers(0, 2, bps * 500).astype(np.uint8)
    syms = qam.modulate(bits, bps)
    llr = qam.demodulate(syms, np.ones(syms.size, np.float32), bps)
    assert np.array_equal((llr < 0).astype(np.uint8), bits)


def test_gather_windows_equals_naive() -> None:
    rng = np.random.default_rng(15)
    r = (rng.normal(size=20000) + 1j * rng.normal(size=20000)).astype(np.complex64)
    for s0, n_sym, stride, nfft, w in [(0, 3, 576, 512, 0.07), (1234, 10, 1152, 1024, -0.3),
                                       (5, 1, 288, 256, 0.0)]:
        got = kernels.gather_windows(r, s0, n_sym, stride, nfft, w)
        ref = naive.gather_windows(r, s0, n_sym, stride, nfft, w)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_smooth_channel_equals_naive() -> None:
    rng = np.random.default_rng(16)
    from phy.grid import ResourceGrid

    for prof in ("P2.5", "5MHz"):
        fidx = ResourceGrid(prof).freq_index.astype(np.float64)
        H = (rng.normal(size=fidx.size) + 1j * rng.normal(size=fidx.size)).astype(np.complex64)
        H *= np.exp(1j * 0.05 * fidx).astype(np.complex64)
        for width in (1, 5, 7):
            got = kernels.smooth_channel(H, fidx, width)
            np.testing.assert_allclose(got, naive.smooth_channel(H, fidx, width), rtol=1e-4,
                                       atol=1e-5)


def test_track_phase_equals_naive() -> None:
    rng = np.random.default_rng(17)
    from phy.grid import ResourceGrid

    g = ResourceGrid("5MHz")
    n_sym = 9
    fidx = g.freq_index.astype(np.float64)
    ls = np.arange(n_sym, dtype=np.int64)
    pos = g.sym_pilot_pos[ls % 3]
    val = g.pilot_values(n_sym)
    H = (rng.normal(size=g.n_used) + 1j * rng.normal(size=g.n_used)).astype(np.complex64)
    ph = 0.3 * ls[:, None] + 0.002 * (ls[:, None] + 1) * fidx[None, :]
    X = np.zeros((n_sym, g.n_used), np.complex64)
    X[np.arange(n_sym)[:, None], pos] = val
    Y = (X * H * np.exp(1j * ph) + 0.05 * (rng.normal(size=X.shape)
                                            + 1j * rng.normal(size=X.shape))).astype(np.complex64)
    cpe, bl, c = kernels.track_phase(Y, H, ls, pos, val, fidx)
    cpe_r, bl_r, c_r = naive.track_phase(Y, H, ls, pos, val, fidx)
    np.testing.assert_allclose(cpe, cpe_r, atol=1e-5)
    np.testing.assert_allclose(bl, bl_r, atol=1e-7)
    assert c == pytest.approx(c_r, abs=1e-8)
    assert c == pytest.approx(0.002, abs=2e-4)  # the drift model recovers the injected slope


def test_track_phase_wls_equals_naive_and_finds_the_drift() -> None:
    rng = np.random.default_rng(27)
    from phy.grid import ResourceGrid

    g = ResourceGrid("5MHz")
    n_sym = 40
    fidx = g.freq_index.astype(np.float64)
    ls = np.arange(n_sym, dtype=np.int64)
    pos = g.sym_pilot_pos[ls % 3]
    val = g.pilot_values(n_sym)
    H = (rng.normal(size=g.n_used) + 1j * rng.normal(size=g.n_used)).astype(np.complex64)
    c_true = 0.0006  # edge phase 0.0006 * 40 * 216 = 5.2 rad by the last symbol: must not wrap
    ph = 0.3 * ls[:, None] + c_true * (ls[:, None] + 1) * fidx[None, :]
    X = np.zeros((n_sym, g.n_used), np.complex64)
    X[np.arange(n_sym)[:, None], pos] = val
    Y = (X * H * np.exp(1j * ph) + 0.05 * (rng.normal(size=X.shape)
                                            + 1j * rng.normal(size=X.shape))).astype(np.complex64)
    args = (Y, H, ls, pos, val, fidx, 0.005)
    cpe, bl, c = kernels.track_phase_wls(*args, 1.0)
    cpe_r, bl_r, c_r = naive.track_phase_wls(*args, 1.0)
    np.testing.assert_allclose(cpe, cpe_r, atol=1e-5)
    np.testing.assert_allclose(bl, bl_r, atol=1e-7)
    assert c == pytest.approx(c_r, rel=1e-6)
    assert c == pytest.approx(c_true, rel=1e-3)
    # a strong prior (a clock offset of ~0 expected) pins the drift to 0
    assert abs(kernels.track_phase_wls(*args, 1e-16)[2]) < 1e-3 * c_true


def test_shrink_project_equals_naive() -> None:
    rng = np.random.default_rng(28)
    q, _ = np.linalg.qr(rng.normal(size=(50, 7)))
    U = np.ascontiguousarray(q.T)
    v = rng.normal(size=50) + 1j * rng.normal(size=50)
    g = rng.random(7)
    np.testing.assert_allclose(kernels.shrink_project(U, v, g), naive.shrink_project(U, v, g),
                               atol=1e-12)
    ramp = np.exp(-1j * 0.07 * (np.arange(50) - 20.0))
    np.testing.assert_allclose(kernels.shrink_project_ramp(U, v, g, -20.0, 0.07),
                               ramp * naive.shrink_project(U, v * np.conj(ramp), g), atol=1e-9)


def test_pdp_window_and_lmmse_band_equal_naive() -> None:
    rng = np.random.default_rng(32)
    h = ((rng.normal(size=512) + 1j * rng.normal(size=512)) * 0.01).astype(np.complex64)
    h[3] = 1.0
    h[510] = 0.2  # delay -2, inside the search range
    h[40] = 0.05  # outside it
    for rel, floor in ((1e-3, 1e-6), (0.1, 1e-6), (1e-3, 10.0)):  # the last: nothing passes
        assert kernels.pdp_window(h, -8, 20, rel, floor) == naive.pdp_window(h, -8, 20, rel,
                                                                               floor)
    assert kernels.pdp_window(h, -8, 20, 1e-3, 1e-6) == (-2, 3)
    q, _ = np.linalg.qr(rng.normal(size=(60, 9)))
    U = np.ascontiguousarray(q.T)
    pos = np.delete(np.arange(60), 25)
    H = (rng.normal(size=59) + 1j * rng.normal(size=59)).astype(np.complex64)
    holes = np.array([25])
    g = rng.random(9)
    np.testing.assert_allclose(kernels.lmmse_band(U, H, pos, holes, g, -25.0, 0.05),
                               naive.lmmse_band(U, H, pos, holes, g, -25.0, 0.05), atol=1e-5)


@pytest.mark.parametrize("profile", ["5MHz", "P2.5", "10MHz-cp16"])
def test_tx_burst_equals_naive(profile: str) -> None:
    """CP, window ramps with overlap-add, tail ramp, the 33-tap low-pass, scale and limiter
    against concatenation + np.convolve; also bare (no ramps, one unit tap), and a level hot
    enough that the limiter acts on some samples."""
    from phy.grid import ResourceGrid
    from phy.shaping import TxShaper

    rng = np.random.default_rng(30)
    g = ResourceGrid(profile)
    sh = TxShaper(g, max(2, g.cp // 8))
    bodies = ((rng.normal(size=(7, g.nfft)) + 1j * rng.normal(size=(7, g.nfft))) * 0.3
              ).astype(np.complex64)
    for up, down, h, scale, limit in [(sh.up, sh.down, sh.fir, 1.0, False),
                                      (sh.up, sh.down, sh.fir, 2.5, True),
                                      # 11 and 7 taps: the FIR's four-tap passes and the
                                      # one-tap ones after them
                                      (sh.up, sh.down, np.ascontiguousarray(sh.fir[11:-11]),
                                       1.0, False),
                                      (sh.up, sh.down, np.ascontiguousarray(sh.fir[13:-13]),
                                       1.0, False),
                                      (sh.up[:0], sh.up[:0], np.ones(1, np.float32), 0.7, True)]:
        got = kernels.tx_burst(bodies, g.cp, up, down, h, scale, limit)
        want = naive.tx_burst(bodies, g.cp, up, down, h, scale, limit)
        assert got.dtype == np.complex64 and got.size == 7 * g.symbol_samples
        np.testing.assert_allclose(got, want, atol=2e-6)
        if limit:
            assert np.max(np.abs(got)) <= 1.0 + 1e-6
    assert np.count_nonzero(np.abs(kernels.tx_burst(bodies, g.cp, sh.up, sh.down, sh.fir, 2.5,
                                                    True)) > 0.9999) > 10
    # the bare burst is CP + body, exactly
    bare = g.add_cp(bodies).reshape(7, -1)
    assert np.array_equal(bare[:, g.cp:], bodies)
    assert np.array_equal(bare[:, :g.cp], bodies[:, -g.cp:])


def test_sum_iq_is_the_float64_sum_and_flags_non_finite() -> None:
    rng = np.random.default_rng(31)
    r = (rng.normal(size=100_003) + 1j * rng.normal(size=100_003) + 0.01).astype(np.complex64)
    assert kernels.sum_iq(r) == pytest.approx(np.sum(r.astype(np.complex128)), rel=1e-12)
    for bad in (np.nan, np.inf, -np.inf):
        s = r.copy()
        s[77_777] = complex(0.0, bad)
        assert not np.isfinite(kernels.sum_iq(s))


def test_phase_trend_equals_unwrap_and_least_squares() -> None:
    rng = np.random.default_rng(29)
    for n in (2, 3, 7, 40):
        x = np.arange(n, dtype=np.float64) - 2.0
        ph = np.angle(np.exp(1j * (0.9 * x + 0.3 * rng.normal(size=n))))  # wraps on the way
        want = np.polyfit(x, np.unwrap(ph), 1)[0]
        assert kernels.phase_trend(ph, x) == pytest.approx(want, abs=1e-9)


def test_diff_corr_equals_naive() -> None:
    rng = np.random.default_rng(18)
    from phy.grid import ResourceGrid

    g = ResourceGrid("P2.5")
    Y = (rng.normal(size=g.nfft) + 1j * rng.normal(size=g.nfft)).astype(np.complex64)
    c = (rng.normal(size=g.n_used - 1) + 1j * rng.normal(size=g.n_used - 1)).astype(np.complex64)
    shifts = np.arange(-6, 7, dtype=np.int64) * 2
    np.testing.assert_allclose(kernels.diff_corr(Y, g.used_bins, c, shifts),
                               naive.diff_corr(Y, g.used_bins, c, shifts), rtol=1e-4)


def test_sc_blocks_equals_naive() -> None:
    rng = np.random.default_rng(13)
    for n, lag, blk in [(1000, 64, 8), (4096, 256, 16), (100, 128, 8), (300, 128, 16)]:
        r = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(np.complex64)
        p, e = kernels.sc_blocks(r, lag, blk)
        pr, er = naive.sc_blocks(r, lag, blk)
        assert p.shape == pr.shape and e.shape == er.shape
        np.testing.assert_allclose(p, pr, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(e, er, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(kernels.sc_metric(r, lag, blk), naive.sc_metric(r, lag, blk),
                                   rtol=1e-4, atol=1e-6)
    silent = np.zeros(2000, np.complex64)
    silent[700:900] = 1 + 1j
    np.testing.assert_allclose(kernels.sc_metric(silent, 128, 16),
                               naive.sc_metric(silent, 128, 16), atol=1e-9)


def test_sc_plateaus_equals_naive() -> None:
    """Every run above the threshold gives its plateau's middle, rounded as Python rounds
    (half to even: the plateaus are drawn from a few levels, so ties and .5 centres occur)."""
    rng = np.random.default_rng(21)
    for _ in range(300):
        n = int(rng.integers(0, 120))
        M = rng.choice([0.0, 0.2, 0.3, 0.31, 0.5, 0.8, 0.9, 1.0], size=n)
        blk, ng = int(rng.choice([2, 4, 8])), int(rng.choice([8, 9, 32]))
        want = naive.sc_plateaus(M, 0.3, blk, ng)
        assert sync_kernels.sc_plateaus(M, 0.3, blk, ng).tolist() == want
    assert sync_kernels.sc_plateaus(np.array([0.5, 0.5]), 0.3, 1, 2).tolist() == [0]  # 0.5 -> 0


def test_viterbi_long_block_with_large_llrs_keeps_metrics_bounded() -> None:
    """The float32 path metrics are renormalised every other step: a long block (odd length)
    with LLR magnitudes like those of a 60 dB SNR link still decodes to the sent bits."""
    rng = np.random.default_rng(12)
    bits = rng.integers(0, 2, 20_001).astype(np.uint8)
    code = ConvCode("5/6")
    coded = code.encode(bits)
    llr = ((1.0 - 2.0 * coded) * 5e4 + rng.normal(0, 2e4, coded.size)).astype(np.float32)
    assert np.array_equal(code.decode(llr, bits.size), bits)


def test_randomizer_table_equals_the_lfsr() -> None:
    """Every seed's PRBS is a slice of one m-sequence table: equal to the LFSR kernel for
    random stations and lengths, at the table's length limit and past it; every non-zero
    register state is in the table exactly once."""
    from phy import randomizer

    rng = np.random.default_rng(33)
    _, state = randomizer._msequence()
    assert state[0] == -1 and np.unique(state[1:]).size == (1 << 15) - 1
    for n in (0, 1, 157, 65_568, randomizer._SPAN, randomizer._SPAN + 1, 100_000):
        src, dst = (int(v) for v in rng.integers(0, 1 << 16, 2))
        seed = randomizer.seed_for(src, dst)
        assert np.array_equal(randomizer.sequence(seed, n), kernels.prbs(seed, 14, n))
    bits = rng.integers(0, 2, 5000).astype(np.uint8)
    assert np.array_equal(randomizer.randomize(randomizer.randomize(bits, 7, 9), 7, 9), bits)
    assert not np.array_equal(randomizer.randomize(bits, 7, 9), randomizer.randomize(bits, 9, 7))


def test_cp_corr_and_gather_windows_ramp_equal_naive() -> None:
    rng = np.random.default_rng(34)
    r = (rng.normal(size=6000) + 1j * rng.normal(size=6000)).astype(np.complex64)
    np.testing.assert_allclose(kernels.cp_corr(r, 37, 8, 576, 512, 20, 64),
                               naive.cp_corr(r, 37, 8, 576, 512, 20, 64), rtol=1e-9)
    dw = rng.normal(size=8) * 1e-3
    got = kernels.gather_windows_ramp(r, 91, 8, 576, 512, 0.013, dw)
    np.testing.assert_allclose(got, naive.gather_windows_ramp(r, 91, 8, 576, 512, 0.013, dw),
                               atol=2e-5)
    # no ramp: exactly the plain gather
    np.testing.assert_allclose(kernels.gather_windows_ramp(r, 91, 8, 576, 512, 0.013,
                                                           np.zeros(8)),
                               kernels.gather_windows(r, 91, 8, 576, 512, 0.013), atol=1e-6)


@given(st.sampled_from([2, 4, 6]), st.integers(0, 400), st.integers(0, 2**32 - 1))
def test_qam_modulate_is_the_constellation_at_each_label(bps: int, n_sym: int, seed: int) -> None:
    """phy.qam.modulate (one compiled pass, kernels.qam_map) gives the constellation point of
    each group's label, the group's first bit the label's MSB -- as the integer matrix product
    it replaced computed it."""
    bits = np.random.default_rng(seed).integers(0, 2, n_sym * bps).astype(np.uint8)
    labels = bits.reshape(-1, bps) @ (1 << np.arange(bps - 1, -1, -1))
    want = qam.constellation(bps)[labels]
    got = qam.modulate(bits, bps)
    assert got.dtype == np.complex64 and np.array_equal(got, want)
    assert np.array_equal(qam.modulate(bits.astype(np.int64).tolist(), bps), want)
    if n_sym:
        with pytest.raises(ValueError, match="whole"):
            qam.modulate(bits[:-1], bps)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(phy.mcs_table())), st.integers(0, 300), st.integers(0, 0xFFFF),
       st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1))
def test_tx_encode_map_is_the_transmit_chain_it_fuses(mcs_name: str, n_bytes: int, src: int,
                                                      dst: int, seed: int) -> None:
    """phy.kernels.tx_encode_map (via phy.modem._encode_into) gives exactly what the numpy
    chain gives: CRC, randomizer, K=7 code punctured to the rate (_encode_payload), the
    padding bits, an interleaving gather, then qam.modulate -- for an allocation's RU gather
    and for a BurstModem's per-symbol one; and a robust block equals its definition."""
    from phy import modem
    from phy.modem_format import _pad_bits, get_mcs
    from phy.zone_format import _ru_gather

    rng = np.random.default_rng(seed)
    m = get_mcs(mcs_name)
    bps = m.bits_per_symbol
    payload = rng.bytes(n_bytes)
    coded = modem._encode_payload(payload, m, src, dst)
    ru = 18 * bps                                   # an allocation of whole RUs
    cap = -(-coded.size // ru) * ru
    ncbps = 48 * bps                                # whole data symbols of a burst
    n_sym = -(-coded.size // ncbps)
    for gather in (_ru_gather(cap, bps), modem._burst_gather(n_sym, ncbps, bps)):
        pad = _pad_bits(gather.size - coded.size)
        want = qam.modulate(np.concatenate([coded, pad])[gather], bps)
        out = np.full(gather.size // bps, np.nan, np.complex64)
        modem._encode_into(out, payload, m, src, dst, gather, pad)
        assert np.array_equal(out, want)
    bits = rng.integers(0, 2, 8 * n_bytes + 3).astype(np.uint8)   # any length, not bytes
    for n_sym in (1, 3):
        bm = _robust_modem()
        ncb = 2 * bm.grid.n_data
        code = modem._fec("1/2").encode(bits)
        src_idx, scramble = modem._robust_tx_map(ncb, n_sym, code.size)
        want = qam.modulate(code[src_idx] ^ scramble, 2).reshape(n_sym, -1)
        assert np.array_equal(bm._robust_symbols(bits, n_sym), want)


_ROBUST: list = []


def _robust_modem() -> phy.BurstModem:
    if not _ROBUST:
        _ROBUST.append(phy.BurstModem("P2.5", shaping=False, tx_rms=None))
    return _ROBUST[0]


def test_tx_encode_map_refuses_indices_past_its_arrays() -> None:
    """An index past the mother code or the coded bits is a ValueError, never a read outside
    the arrays (numba does not check bounds)."""
    from phy.fec import _MASK1, _MASK2

    none = np.zeros(0, np.uint8)
    data = np.zeros(4, np.uint8)
    pts = qam.constellation(2)
    out = np.empty(8, np.complex64)
    ok = np.arange(16, dtype=np.int64)
    kernels.tx_encode_map(data, 32, none, _MASK1, _MASK2, np.arange(76, dtype=np.int64), none,
                          ok, none, 2, pts, out)
    with pytest.raises(ValueError, match="puncturing"):
        kernels.tx_encode_map(data, 32, none, _MASK1, _MASK2, np.array([76], np.int64), none,
                              ok[:2], none, 2, pts, out)
    with pytest.raises(ValueError, match="gather"):
        kernels.tx_encode_map(data, 32, none, _MASK1, _MASK2, np.arange(8, dtype=np.int64),
                              none, ok, none, 2, pts, out)
    with pytest.raises(ValueError, match="shorter"):
        kernels.tx_encode_map(data, 40, none, _MASK1, _MASK2, ok, none, ok, none, 2, pts, out)
