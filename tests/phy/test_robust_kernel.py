"""The robust-block kernels (:mod:`phy.robust_kernels`: a header's or A-MAP's pilot tracking,
equalisation, repetition combining and Viterbi decoding in one call) against the four steps
they fuse, called one by one as the receiver did before, for every Viterbi decoder."""

from __future__ import annotations

import numpy as np
import pytest

import phy
from phy import qam, robust_kernels
from phy.fec import ConvCode
from phy.kernels import equalize, robust_combine, track_phase_wls
from phy.modem_rx import _robust_map


@pytest.mark.parametrize(("decoder", "layout"),
                         [("int16", "lanes"), ("int16", "wide"), ("float", "lanes")])
@pytest.mark.parametrize("skip", [0, 1])
def test_robust_decode_equals_the_steps(decoder: str, layout: str, skip: int) -> None:
    """Random QPSK-like windows on a random channel: the same bits and CPE as the steps, the
    EVM sums to float32 rounding (the steps summed them in float32)."""
    kernel = robust_kernels.decoder_kernel(decoder, layout)
    m = phy.ZoneModem("P2.5")
    g = m.grid
    rng = np.random.default_rng(41 + skip)
    code = ConvCode("1/2", decoder=decoder)
    for n_sym, n_bits in [(1, 80), (3, 200), (4, 400)]:
        ls = np.arange(n_sym, dtype=np.int64)
        pos, val, dpos = m._sym_tables(ls)
        H = (rng.normal(size=g.n_used) + 1j * rng.normal(size=g.n_used)).astype(np.complex64)
        Y = (H * (rng.choice([-1, 1], size=(n_sym, g.n_used))
                  + 1j * rng.choice([-1, 1], size=(n_sym, g.n_used))) / np.sqrt(2)
             + 0.3 * (rng.normal(size=(n_sym, g.n_used))
                      + 1j * rng.normal(size=(n_sym, g.n_used)))).astype(np.complex64)
        sigma2 = 0.09
        n_llr = 2 * (n_sym - skip) * g.n_data
        nco = code.coded_length(n_bits)
        dest, sign = _robust_map(2 * g.n_data, n_llr, nco)
        alpha, beta, nearest, _ = qam.demap_tables(1)
        bits, e_num, e_den, cpe, bl = kernel(Y, H, ls, pos, val, m._fidx, sigma2, m._c_var, skip,
                                             dpos, dest, sign, nco, alpha, beta, nearest,
                                             n_bits)
        c0, b0, _ = track_phase_wls(Y, H, ls, pos, val, m._fidx, sigma2, m._c_var)
        z, w = equalize(np.ascontiguousarray(Y[skip:]), H, dpos[skip:], c0[skip:], b0[skip:],
                        m._fidx, 1.0 / sigma2)
        comb, err = robust_combine(z, w, dest, sign, nco, alpha, beta, nearest)
        want = code.decode_buffer(comb, n_bits)
        assert bits.dtype == np.uint8 and bits.tobytes() == want.tobytes()
        assert cpe.tobytes() == c0.tobytes() and bl.tobytes() == b0.tobytes()
        np.testing.assert_allclose([e_num, e_den], [np.dot(err, w), w.sum()], rtol=1e-5)
