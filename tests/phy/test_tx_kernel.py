"""The transmitter's last steps in one compiled call (phy.tx_kernels.zone_air) against the
step-by-step path it replaced, kept here as the oracle: the pilot template copied, the data
symbols scattered into it, every row (preamble included) inverse-transformed by scipy's
pocketfft, then the shaping kernel."""

from __future__ import annotations

import numpy as np
import pytest

from phy import profiles
from phy.grid import fft_rows
from phy.modem import PREAMBLE_SYMBOLS
from phy.tx_kernels import zone_air
from phy.zone import Allocation, Grant, ZoneModem


def _oracle(zm: ZoneModem, qsyms: np.ndarray) -> np.ndarray:
    g = zm.grid
    n_sym = qsyms.shape[0]
    template, data_idx = zm._tx_grid_for(n_sym)
    full = template[:PREAMBLE_SYMBOLS + n_sym].copy()
    full.reshape(-1)[data_idx[:n_sym * g.n_data]] = qsyms.reshape(-1)
    bodies = fft_rows(full, inverse=True, ortho=True, overwrite=True)
    return zm.shaper.burst(bodies, zm.scale, True)


@pytest.mark.parametrize("profile", sorted(profiles()))
def test_the_compiled_chain_equals_the_steps(profile: str) -> None:
    """Random symbols of 1, 2, 7 and 40 rows (the template grows past 16): bit for bit at 256
    points, to float32 rounding at 512 and more (rocket-fft's build, see the module doc)."""
    zm = ZoneModem(profile, tx_rms=0.25)
    rng = np.random.default_rng(5)
    for n_sym in (1, 2, 7, 40, 3):
        q = (rng.standard_normal((n_sym, zm.grid.n_data))
             + 1j * rng.standard_normal((n_sym, zm.grid.n_data))).astype(np.complex64)
        got = zm._to_air(q)
        want = _oracle(zm, q)
        assert got.dtype == np.complex64 and got.shape == want.shape
        if zm.grid.nfft == 256:
            assert np.array_equal(got, want)
        else:
            assert np.allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())


def test_a_zone_burst_is_the_steps_bit_for_bit_at_p25() -> None:
    """Through ZoneModem.modulate: a beacon and a burst with allocations and grants."""
    zm = ZoneModem("P2.5", tx_rms=0.25)
    rng = np.random.default_rng(6)
    cases = [([], []), ([Allocation(5, rng.bytes(300), "16QAM-1/2"),
                         Allocation(6, rng.bytes(40), "QPSK-1/2")],
                        [Grant(7, 0, 4, "QPSK-1/2")])]
    seen: list[np.ndarray] = []
    real = zm._to_air

    def spy(q: np.ndarray) -> np.ndarray:
        seen.append(q.copy())
        return real(q)

    for allocs, grants in cases:
        got = zm.modulate(allocs, src=1, grants=grants, queue_report=50)
        zm._to_air = spy  # type: ignore[method-assign]
        try:
            assert np.array_equal(zm.modulate(allocs, src=1, grants=grants, queue_report=50),
                                  got)
        finally:
            del zm._to_air
        assert np.array_equal(got, _oracle(zm, seen.pop()))


def test_sizes_that_do_not_fit_are_refused() -> None:
    zm = ZoneModem("P2.5", tx_rms=0.25)
    template, idx = zm._tx_grid_for(4)
    pre = fft_rows(zm._pre_bins.copy(), inverse=True, ortho=True)
    sh = zm.shaper
    n_data = zm.grid.n_data
    ok = np.zeros(2 * n_data, np.complex64)
    zone_air(pre, template, idx, ok, zm.grid.cp, sh.up, sh.down, sh.fir, 1.0, False)
    for bad in (np.zeros(0, np.complex64), np.zeros(n_data + 1, np.complex64),
                np.zeros((template.shape[0] - 1) * n_data, np.complex64)):
        with pytest.raises(ValueError, match="zone_air"):
            zone_air(pre, template, idx, bad, zm.grid.cp, sh.up, sh.down, sh.fir, 1.0, False)
    with pytest.raises(ValueError, match="zone_air"):
        zone_air(pre, template, idx[:-1], ok, zm.grid.cp, sh.up, sh.down, sh.fir, 1.0, False)
