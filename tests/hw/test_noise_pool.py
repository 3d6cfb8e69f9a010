"""Pooled receiver noise (``Medium(noise_pool=...)``, the emulator's): the same power and
whiteness as the per-sample ziggurat, a function of (radio, sample index) only, far cheaper."""

from __future__ import annotations

import numpy as np
import pytest

from hw import _medium
from hw.errors import RadioConfigError
from hw.loopback import Medium


def _noise(medium: Medium, name: str, k0: int, n: int) -> np.ndarray:
    return medium.radios[name]._noise(k0, n, 0.01)


def test_pooled_noise_has_the_power_asked_for_and_is_white() -> None:
    m = Medium(1e6, seed=3, noise_pool=1 << 16)
    m.add_radio("a")
    x = _noise(m, "a", 0, 1 << 19).astype(np.complex128)
    assert np.mean(np.abs(x) ** 2) == pytest.approx(1e-4, rel=0.01)  # sigma^2, complex
    assert abs(np.mean(x)) < 1e-4
    assert np.var(x.real) == pytest.approx(np.var(x.imag), rel=0.02)
    p = np.vdot(x, x).real
    for lag in (1, 2, 7, 4095, 4096, 4097, 70000):  # within a block, across block edges
        assert abs(np.vdot(x[:-lag], x[lag:])) / p < 0.01


def test_pooled_noise_depends_on_radio_and_sample_only() -> None:
    m = Medium(1e6, seed=3, noise_pool=1 << 16)
    m.add_radio("a")
    m.add_radio("b")
    whole = _noise(m, "a", 500, 20000)
    parts = np.concatenate([_noise(m, "a", 500 + a, b - a)
                            for a, b in ((0, 1), (1, 3596), (3596, 4096), (4096, 20000))])
    assert np.array_equal(whole, parts)
    again = Medium(1e6, seed=3, noise_pool=1 << 16)
    again.add_radio("a")
    assert np.array_equal(whole, _noise(again, "a", 500, 20000))
    other = _noise(m, "b", 500, 20000)
    assert abs(np.vdot(whole, other)) / np.vdot(whole, whole).real < 0.05


def test_pooled_noise_kernel_reads_blocks_of_the_pool_in_eight_orientations() -> None:
    pool = np.arange(1, 17, dtype=np.float32).astype(np.complex64) * (1 + 2j)
    out = np.empty(3 << _medium.POOL_BLOCK_BITS, np.complex64)
    _medium.pooled_noise(out, pool, np.uint64(7), 0, 1.0)
    block = 1 << _medium.POOL_BLOCK_BITS
    for b in range(3):
        seg = out[b * block:(b + 1) * block]
        # one orientation per block: every sample is a pool value turned the same way
        ratio = seg / pool[np.searchsorted(np.abs(pool), np.abs(seg) - 1e-3)]
        assert np.allclose(ratio, ratio[0], atol=1e-5)
        assert np.isclose(abs(ratio[0]), 1)  # turned (and maybe conjugated), not scaled


def test_noise_pool_must_be_a_power_of_two() -> None:
    with pytest.raises(RadioConfigError, match="power of two"):
        Medium(1e6, noise_pool=1000)
    assert Medium(1e6).noise_pool_samples() is None


def test_the_emulator_medium_is_sample_aligned_with_pooled_noise() -> None:
    from hw.emu import EmulatorConfig
    from hw.emu.cluster import create_emulators

    cluster = create_emulators(2, EmulatorConfig(clock="sim"))
    try:
        medium = cluster.servers[0].data.medium
        assert medium.noise_pool and medium.sample_aligned
        assert all(float(r.start_delay).is_integer() for r in medium.radios.values())
    finally:
        cluster.close()


def _pooled_noise_scalar():
    """The scalar loop hw._medium.pooled_noise had before its vectorised runs (oracle)."""
    import numba

    from hw._medium import _GOLDEN, POOL_BLOCK_BITS, _splitmix

    @numba.njit
    def oracle(out, pool, key, k0, scale):  # pragma: no cover - compiled
        mask = pool.shape[0] - 1
        n = out.shape[0]
        j = 0
        while j < n:
            k = k0 + j
            b = k >> POOL_BLOCK_BITS
            h = _splitmix(key + np.uint64(b + 1) * _GOLDEN)
            off = int(h & np.uint64(mask))
            turn = int((h >> np.uint64(60)) & np.uint64(3))
            conj = -1.0 if (h >> np.uint64(63)) else 1.0
            cr = scale if turn == 0 else (-scale if turn == 2 else 0.0)
            ci = scale if turn == 1 else (-scale if turn == 3 else 0.0)
            end = min(n, ((b + 1) << POOL_BLOCK_BITS) - k0)
            base = off + k0 - (b << POOL_BLOCK_BITS)
            for i in range(j, end):
                v = pool[(base + i) & mask]
                re = v.real
                im = v.imag * conj
                out[i] = complex(re * cr - im * ci, re * ci + im * cr)
            j = end

    return oracle


def test_pooled_noise_equals_the_scalar_loop_bit_for_bit() -> None:
    """The vectorised runs against the scalar loop they replaced: windows across block edges
    and the pool's end, every turn and conjugation, pool samples of +-0 (signed zeros), scales
    that underflow or are large."""
    oracle = _pooled_noise_scalar()
    pool = np.empty(1 << 13, np.complex64)
    _medium.gaussian_noise(pool, np.uint64(5), 0, 1.0)
    pool[:64:3] = complex(0.0, -0.0)
    pool[1:64:3] = complex(-0.0, 0.0)
    pool[-5:] = complex(-0.0, -0.0)
    rng = np.random.default_rng(4)
    for _ in range(300):
        k0 = int(rng.integers(0, 1 << 20))
        n = int(rng.choice([1, 3, 4095, 4096, 4097, 20000]))
        scale = float(rng.choice([0.01, 1.0, 3e5, 1e-320, 0.0]))
        key = np.uint64(int(rng.integers(0, 1 << 62)))
        want = np.empty(n, np.complex64)
        got = np.empty(n, np.complex64)
        oracle(want, pool, key, k0, scale)
        _medium.pooled_noise(got, pool, key, k0, scale)
        assert got.tobytes() == want.tobytes()
