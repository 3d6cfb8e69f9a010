"""The payload kernels (:mod:`phy.payload_kernels`: demapping through the scatter map, the EVM
sums, Viterbi and derandomising in one call) against the steps they fuse, called one by one as
the receiver did before, for every Viterbi decoder and every MCS."""

from __future__ import annotations

import numpy as np
import pytest

import phy
from phy import payload_kernels, qam
from phy.fec import ConvCode
from phy.modem_decode import _read_only, _rx_scatter_map
from phy.modem_format import _n_info, get_mcs
from phy.randomizer import randomize, xor_sequence


@pytest.mark.parametrize(("decoder", "layout"),
                         [("int16", "lanes"), ("int16", "wide"), ("float", "lanes")])
@pytest.mark.parametrize("mcs", ["QPSK-1/2", "16QAM-3/4", "64QAM-5/6"])
def test_payload_decode_equals_the_steps(decoder: str, layout: str, mcs: str) -> None:
    """Noisy constellation points through a burst's scatter map: the same bits as demapping,
    Viterbi and derandomising one by one; the EVM sums to float32 rounding."""
    kernel = payload_kernels.decoder_kernel(decoder, layout)
    m = phy.BurstModem("5MHz", mcs)
    mc = get_mcs(mcs)
    code = ConvCode(mc.code_rate, decoder=decoder)
    rng = np.random.default_rng(43)
    for length in (1, 57, 400):
        n_info = _n_info(length)
        dest = _rx_scatter_map(m._ncbps(mc), mc.bits_per_symbol, mc.code_rate, n_info)
        n_z = dest.size // mc.bits_per_symbol
        pts = qam.constellation(mc.bits_per_symbol)
        z = (pts[rng.integers(0, pts.size, n_z)]
             + 0.15 * (rng.normal(size=n_z) + 1j * rng.normal(size=n_z))).astype(np.complex64)
        w = rng.uniform(0.5, 20.0, n_z).astype(np.float32)
        n_buf = code.input_size(n_info)
        alpha, beta, nearest, inv_cell = qam.demap_tables(mc.bits_per_symbol // 2)
        bits, e_num, e_den = kernel(z, w, alpha, beta, nearest, inv_cell, dest, n_buf, n_info,
                                    _read_only(xor_sequence(3, 4, n_info)))
        buf = np.zeros(n_buf, np.float32)
        err = qam.demodulate_into(z, w, mc.bits_per_symbol, dest, buf)
        want = randomize(code.decode_buffer(buf, n_info), 3, 4)
        assert bits.dtype == np.uint8 and bits.tobytes() == want.tobytes()
        np.testing.assert_allclose([e_num, e_den], [np.dot(err, w), w.sum()], rtol=1e-5)


def test_a_scatter_map_past_the_decoder_input_is_refused() -> None:
    """The kernels do not bounds-check: the map is proved to fit first."""
    from phy.modem_decode import _decode_payload

    mc = get_mcs("QPSK-1/2")
    n_info = _n_info(10)
    dest = np.full(40, ConvCode("1/2").input_size(n_info), np.int64)
    with pytest.raises(phy.PhyInputError):
        _decode_payload(np.zeros(20, np.complex64), np.ones(20, np.float32), mc, 10, 1, 2, dest)
