"""Against theory (digest §5.1, §5.2): uncoded QAM BER through the OFDM grid with perfect sync,
and the K=7 rate-1/2 soft Viterbi BER near 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import erfc

from phy import qam
from phy.channel import awgn
from phy.fec import ConvCode
from phy.grid import ResourceGrid


def _q(x: float) -> float:
    return 0.5 * erfc(x / np.sqrt(2))


def _ber_theory(bps: int, ebn0_db: float) -> float:
    g = 10 ** (ebn0_db / 10)
    if bps == 2:
        return _q(np.sqrt(2 * g))
    m = 2**bps
    return (4 / bps) * (1 - 1 / np.sqrt(m)) * _q(np.sqrt(3 * bps * g / (m - 1)))


@pytest.mark.parametrize(("bps", "ebn0_db"), [(2, 6.8), (4, 10.5), (6, 14.8)])
def test_uncoded_ber_within_half_db_of_closed_form(bps: int, ebn0_db: float) -> None:
    """~1e-3 operating point, >= 300 000 bits (>= 300 errors expected): the measured BER maps
    back to an Eb/N0 on the closed-form curve within 0.5 dB of the simulated one."""
    rng = np.random.default_rng(100 + bps)
    g = ResourceGrid("5MHz")
    n_sym = -(-300_000 // (g.n_used * bps))
    bits = rng.integers(0, 2, n_sym * g.n_used * bps).astype(np.uint8)
    X = qam.modulate(bits, bps).reshape(n_sym, g.n_used)
    x = g.ofdm_modulate(X)
    es_n0 = 10 ** (ebn0_db / 10) * bps
    y = awgn(x, 1.0 / es_n0, rng)  # unit-power subcarriers: noise per bin = time variance
    Y = g.ofdm_demodulate(y.reshape(n_sym, -1)[:, g.cp:])
    llr = qam.demodulate(Y.ravel(), np.ones(Y.size, np.float32), bps)
    ber = float(np.mean((llr < 0).astype(np.uint8) != bits))
    equiv = brentq(lambda e: _ber_theory(bps, e) - ber, -5, 30)
    assert abs(equiv - ebn0_db) < 0.5, (ber, equiv)
    assert abs(equiv - ebn0_db) < 0.2  # the digest's tighter gate (§8.5) holds too


# digest §5.2: measured unquantised soft Viterbi, zero-terminated blocks, BPSK/AWGN
_REF_DB = np.array([3.0, 4.0, 4.5])
_REF_LOG_BER = np.log10([4.0e-4, 2.15e-5, 2.2e-6])


def test_k7_rate_half_ber_near_1e4_within_1db_of_reference() -> None:
    """Eb/N0 3.5 dB (reference ~9e-5): 10 blocks x 100 000 bits, ~90 errors expected, so the
    BER is known to +-25 % (about +-0.1 dB on this curve)."""
    rng = np.random.default_rng(7)
    code = ConvCode("1/2")
    ebn0_db = 3.5
    sigma = np.sqrt(1 / (2 * 0.5 * 10 ** (ebn0_db / 10)))
    errors = total = 0
    for _ in range(10):
        bits = rng.integers(0, 2, 100_000).astype(np.uint8)
        s = 1.0 - 2.0 * code.encode(bits)
        y = (s + sigma * rng.standard_normal(s.size)).astype(np.float32)
        errors += int(np.count_nonzero(code.decode(y, bits.size) != bits))
        total += bits.size
    ber = errors / total
    assert errors > 20
    equiv = float(np.interp(-np.log10(ber), -_REF_LOG_BER, _REF_DB))
    assert 1e-5 < ber < 1e-3
    assert abs(equiv - ebn0_db) < 1.0, (ber, equiv)
