"""Resource-grid properties: CP is the symbol tail, pilots sit at the declared indices."""

from __future__ import annotations

import numpy as np
import pytest

import phy
from phy.grid import PILOT_BOOST, ResourceGrid
from phy.interleaver import deinterleave, interleave, inverse_permutation, invert, permutation


@pytest.mark.parametrize("profile", phy.profiles())
def test_index_counts_match_digest(profile: str) -> None:
    g = ResourceGrid(profile)
    p = g.profile
    assert g.n_used == 18 * g.n_pru
    assert g.n_pilot == g.n_pru and g.n_data == 17 * g.n_pru
    assert 0 not in g.used_bins  # DC null
    assert g.used_k.min() == p.left_guard and g.used_k.max() == p.nfft - p.right_guard - 1
    for l in range(3):
        pos = g.pilot_positions(l)
        assert np.array_equal(pos, np.arange(g.n_pru) * 18 + (9 + 6 * l) % 18)
        assert np.intersect1d(pos, g.data_positions(l)).size == 0
        assert np.union1d(pos, g.data_positions(l)).size == g.n_used


@pytest.mark.parametrize("profile", ["5MHz", "10MHz-cp16", "P2.5"])
def test_cp_equals_symbol_tail_and_pilots_in_burst(profile: str) -> None:
    modem = phy.BurstModem(profile, "16QAM-1/2", tx_rms=None, shaping=False)
    g = modem.grid
    x = modem.modulate(bytes(range(256)) * 4, src=1, dst=2)
    ns, ng, n = g.symbol_samples, g.cp, g.nfft
    syms = x.reshape(-1, ns)
    assert np.allclose(syms[:, :ng], syms[:, -ng:], atol=1e-6)
    F = np.fft.fft(syms[:, ng:], axis=1) / np.sqrt(n)
    # guards and DC empty in every symbol
    used = np.zeros(n, bool)
    used[g.used_bins] = True
    assert np.max(np.abs(F[:, ~used])) < 1e-4
    # S&C symbol: only even subcarriers; two identical halves in time
    assert np.allclose(syms[0, ng:ng + n // 2], syms[0, ng + n // 2:], atol=1e-6)
    # header + data symbols carry the pilot values at the declared positions
    Fu = F[2:, g.used_bins]
    pv = g.pilot_values(Fu.shape[0])
    for l in range(Fu.shape[0]):
        np.testing.assert_allclose(Fu[l, g.pilot_positions(l)], pv[l], atol=1e-4)
    assert set(np.unique(np.abs(pv))) == {np.float32(PILOT_BOOST)}


@pytest.mark.parametrize("ncpc", [2, 4, 6])
def test_interleaver_is_a_permutation_and_inverts(ncpc: int) -> None:
    for ndata in (204, 408, 816, 1632):
        ncbps = ndata * ncpc
        j = permutation(ncbps, ncpc)
        assert np.array_equal(np.sort(j), np.arange(ncbps))
        x = np.arange(3 * ncbps)
        assert np.array_equal(deinterleave(interleave(x, ncbps, ncpc), ncbps, ncpc), x)
    j = permutation(816, 2)
    assert int(j[1] - j[0]) == 816 // 16  # 5 MHz QPSK: d = 16, adjacent bits 51 positions apart


@pytest.mark.parametrize("ncpc", [2, 4, 6])
def test_inverse_permutation_gathers_what_the_interleaver_scatters(ncpc: int) -> None:
    """``x[inverse_permutation]`` is ``interleave(x)`` (the gather the modem's index maps are
    built from), read-only; :func:`invert` undoes any permutation."""
    for ndata in (204, 408, 816):
        ncbps = ndata * ncpc
        x = np.random.default_rng(ncbps).integers(0, 2, ncbps)
        inv = inverse_permutation(ncbps, ncpc)
        assert np.array_equal(x[inv], interleave(x, ncbps, ncpc))
        assert not inv.flags.writeable
    perm = np.random.default_rng(3).permutation(97)
    inv = invert(perm)
    assert np.array_equal(inv[perm], np.arange(97)) and np.array_equal(perm[inv], np.arange(97))


def test_interleaver_depth_follows_the_digest_on_the_16m_profiles() -> None:
    """d = 16 (digest §4.3) for every MCS of the 5/10/20 MHz profiles; P2.5, where the 16e
    formula is no permutation with d = 16, falls back to d = 12."""
    from phy.interleaver import depth

    for prof in ("5MHz", "5MHz-cp16", "10MHz", "20MHz", "20MHz-cp16"):
        nd = ResourceGrid(phy.get_profile(prof)).n_data
        assert [depth(nd * c, c) for c in (2, 4, 6)] == [16, 16, 16], prof
    nd = ResourceGrid(phy.get_profile("P2.5")).n_data
    assert [depth(nd * c, c) for c in (2, 4, 6)] == [12, 12, 12]
    with pytest.raises(ValueError, match="neither"):
        depth(100, 2)
    # 16QAM (s = 2): within each group of d input bits the 16e rule alternates the bit's
    # position inside the QAM symbol (MSB/LSB swap on every other column block)
    ncbps = 1632
    j = permutation(ncbps, 4)
    m = (ncbps // 16) * (np.arange(ncbps) % 16) + np.arange(ncbps) // 16
    assert np.array_equal(j // 2, m // 2)
    assert np.any(j != m)


def test_tdl_tables_and_impulse_response_power() -> None:
    from phy import channel as ch

    assert ch.TDL["pedB"][0] == (0, 200, 800, 1200, 2300, 3700)
    assert set(ch.TDL) == {"pedA", "pedB", "vehA", "vehB"}
    rng = np.random.default_rng(8)
    p = np.mean([np.sum(np.abs(ch.tdl_impulse_response("pedB", 5.6e6, rng)) ** 2)
                 for _ in range(400)])
    assert p == pytest.approx(1.0, rel=0.15)
