"""Shortcuts of the loopback medium's rendering against the general computation they skip:
the one whole-sample tap added in place (``_add_one_tap``) against ``fractional_fir`` +
``_filtered``, and the per-link taps kept for links whose taps never change."""

from __future__ import annotations

import numpy as np
import pytest

from hw.channels import fractional_fir
from hw.loopback import Medium
from hw.loopback_radio import _add_one_tap, _filtered


def _general(y: np.ndarray, x: np.ndarray, d: float, gain: complex, lo: int, j_lo: int,
             j_hi: int) -> None:
    h, first = fractional_fir(np.array([d]), np.array([gain]))
    y[j_lo:j_hi] += _filtered(x, h, first, lo, lo + j_hi - j_lo)


@pytest.mark.parametrize("seed", range(4))
def test_one_tap_in_place_equals_the_filter(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gains = [complex(0.3, -0.7), complex(-0.2, 0.0), complex(-0.0, -1.5), complex(1.0, -0.0),
             complex(-0.5, -0.5)]
    for _ in range(400):
        x = (rng.standard_normal(int(rng.integers(1, 300)))
             + 1j * rng.standard_normal(1)).astype(np.complex64)
        x[rng.integers(0, x.size)] = complex(-0.0, 0.0)
        n = 400
        y = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
        y[rng.integers(0, n, 40)] = complex(-0.0, -0.0)  # a zero's sign must come out the same
        d = int(rng.integers(-50, 50))
        j_lo = int(rng.integers(0, n))
        j_hi = int(rng.integers(j_lo, n + 1))
        lo = int(rng.integers(-350, 350))
        g = gains[int(rng.integers(len(gains)))] if rng.random() < 0.5 else \
            complex(rng.standard_normal(), rng.standard_normal())
        want = y.copy()
        _general(want, x, float(d), g, lo, j_lo, j_hi)
        got = y.copy()
        _add_one_tap(got, x, d, g, lo, j_lo, j_hi)
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("channel,fading", [("awgn", "block"), ("pedA", "none"),
                                            ("vehA", "static")])
def test_fixed_taps_are_kept_per_link_and_follow_set_link(channel: str, fading: str) -> None:
    m = Medium(1e6, seed=2)
    m.add_radio("a")
    m.add_radio("b")
    m.set_link("a", "b", snr_db=20, channel=channel, fading=fading)
    link = m.link("a", "b")
    assert link is not None
    first = m._taps_for(link, None)  # type: ignore[arg-type]
    again = m._taps_for(link, None)  # type: ignore[arg-type]
    assert again is first and not first.flags.writeable
    prof = link.profile
    if fading == "static":
        from hw.loopback import _stream

        want = prof.draw(_stream(link.key, 1 << 61)) * np.exp(1j * link.phase)
    else:
        want = np.sqrt(np.asarray(prof.powers)).astype(np.complex128) * np.exp(1j * link.phase)
    assert first.tobytes() == want.tobytes()
    m.set_link("a", "b", snr_db=20, channel="pedB", fading="none")  # a new link: new taps
    new = m.link("a", "b")
    assert new is not None and m._taps_for(new, None).size == new.profile.n_taps  # type: ignore[arg-type]


def test_kept_scaled_taps_follow_the_link_and_the_amplitude() -> None:
    """_snapshot keeps a fixed link's taps times its amplitude between windows: the product is
    the fresh one after the link changes, after the receiver's noise floor (the amplitude of an
    SNR link) changes, and a block-fading link's taps are drawn per burst as before."""
    m = Medium(1e6, seed=3)
    a, b = m.add_radio("a"), m.add_radio("b")
    m.set_link("a", "b", snr_db=20)
    a.transmit(np.full(100, 0.1, np.complex64), at=0.0)
    a.transmit(np.full(100, 0.1, np.complex64), at=200.0)

    def fresh(burst_index: int) -> np.ndarray:
        link = m.link("a", "b")
        assert link is not None
        burst = m._bursts[burst_index]
        return m._taps_for(link, burst) * m._link_amplitude(link, b)

    def taps() -> list[np.ndarray]:
        return [job[3] for job in b._snapshot(0, 400)]

    first = taps()
    assert len(first) == 2 and first[0] is first[1]  # one product for both bursts
    assert first[0].tobytes() == fresh(0).tobytes()
    assert taps()[0] is first[0]  # kept between windows
    m.set_link("a", "b", snr_db=10)
    assert taps()[0].tobytes() == fresh(0).tobytes() != first[0].tobytes()
    b.noise_dbfs -= 6.0
    assert taps()[0].tobytes() == fresh(0).tobytes()
    m.set_link("a", "b", snr_db=10, channel="pedA", fading="block")
    faded = taps()
    assert [t.tobytes() for t in faded] == [fresh(0).tobytes(), fresh(1).tobytes()]
    assert faded[0].tobytes() != faded[1].tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_resampler_blocks_equal_the_tap_by_tap_sum(seed: int) -> None:
    """The medium's resampler filters whole blocks of outputs (two FIRs, one per table row)
    where a block stays on one row; it must give the same band-limited interpolation as
    hw.channels.sample_at (numpy, tap by tap, the same table) to float32 rounding --
    at ppm clock offsets (the blocks), at steps far from 1 and at the ends of the burst
    (output by output), across a row change and a skipped or repeated input sample."""
    from hw import _medium
    from hw.channels import INTERP_HALF, _kernel_table, sample_at

    rng = np.random.default_rng(seed)
    table = _kernel_table(INTERP_HALF)
    for _ in range(12):
        nz = int(rng.integers(1, 3000))
        z = (rng.standard_normal(nz) + 1j * rng.standard_normal(nz)).astype(np.complex64)
        step = float(rng.choice([1 + 2e-5, 1 - 3.7e-5, 1 + 1e-3, 1.0, 0.5, 1.7])) \
            + float(rng.normal(0, 1e-6))
        n = int(rng.integers(1, 3500))
        p0 = float(rng.uniform(-200, 200))
        j_lo = int(rng.integers(0, n))
        j_hi = int(rng.integers(j_lo, n + 1))
        gain = complex(rng.standard_normal(), rng.standard_normal())
        th0, dth = float(rng.uniform(-3, 3)), float(rng.normal(0, 1e-2))
        y = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64) * 1e-3
        want = y.astype(np.complex128)
        j = np.arange(j_lo, j_hi)
        want[j_lo:j_hi] += (gain * np.exp(1j * (th0 + j * dth))
                            * sample_at(z, p0 + j * step).astype(np.complex128))
        got = y.copy()
        _medium.resample_rotate_add(got, z, p0, step, j_lo, j_hi, table, gain, th0, dth)
        err = np.abs(got - want)
        assert err.max() <= 2e-5 * abs(gain) * 4 + 1e-6, (step, err.max())
