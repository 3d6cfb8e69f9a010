"""802.16m OFDMA numerology and the project's profiles (digest §1).

All profiles come from one description: a channel bandwidth, its sampling factor, FFT size, guard
split and cyclic-prefix fraction. The derived quantities follow the 16m rules of digest §1.1:

* ``Fs = floor(n * BW / 8000) * 8000`` with ``n = 28/25`` for the 5/10/20 MHz channels,
* subcarrier spacing ``df = Fs / NFFT`` (10.9375 kHz for every profile here),
* CP ``Ng = G * NFFT`` samples, symbol ``Ns = NFFT + Ng`` samples,
* symbols per 5 ms frame ``floor(5 ms / Ts)``.

Guards (digest §1.2): 512 -> 40/39, 1024 -> 80/79, 2048 -> 160/159; the used band is a whole number
of 18-subcarrier PRUs plus the null DC. ``P2.5`` (digest §1.4, non-standard) is the 5 MHz grid
halved: NFFT 256, Fs 2.8 MS/s, 12 PRUs, guards 20/19 — the profile for Pluto when USB 2
drops samples at 5.6 MS/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

from phy.errors import UnknownProfileError

PRU_SUBCARRIERS = 18
FRAME_SECONDS = 0.005


@dataclass(frozen=True)
class Profile:
    """One OFDM numerology. Frozen; all derived values are properties.

    Attributes:
        name: canonical profile name (one of :func:`profiles`).
        bandwidth_hz: nominal channel bandwidth.
        sampling_factor: 16m ``n`` (28/25 here).
        nfft: FFT size.
        cp_fraction: ``G`` (1/8 or 1/16).
        left_guard, right_guard: guard subcarriers at the lower / upper band edge.
        standard: True for the 16m channels, False for the project's P2.5.
    """

    name: str
    bandwidth_hz: float
    sampling_factor: Fraction
    nfft: int
    cp_fraction: Fraction
    left_guard: int
    right_guard: int
    standard: bool = True
    description: str = field(default="", compare=False)

    @cached_property
    def sample_rate(self) -> float:
        """Sampling rate in samples/s (16m rule, digest §1.1)."""
        return float((self.sampling_factor * Fraction(self.bandwidth_hz) / 8000).__floor__() * 8000)

    @property
    def subcarrier_spacing(self) -> float:
        return self.sample_rate / self.nfft

    @property
    def cp(self) -> int:
        """Cyclic prefix length in samples."""
        ng = self.cp_fraction * self.nfft
        assert ng.denominator == 1
        return int(ng)

    @property
    def symbol_samples(self) -> int:
        """Samples per OFDM symbol including the CP."""
        return self.nfft + self.cp

    @property
    def symbol_seconds(self) -> float:
        return self.symbol_samples / self.sample_rate

    @property
    def symbols_per_frame(self) -> int:
        """Whole OFDM symbols in a 5 ms frame (digest §1.1 frame budget)."""
        return int(FRAME_SECONDS * self.sample_rate) // self.symbol_samples

    @property
    def n_used(self) -> int:
        """Used subcarriers excluding DC."""
        return self.nfft - self.left_guard - self.right_guard - 1

    @property
    def n_pru(self) -> int:
        return self.n_used // PRU_SUBCARRIERS

    def __post_init__(self) -> None:
        if self.n_used != self.n_pru * PRU_SUBCARRIERS:
            raise ValueError(f"profile {self.name}: used band is not a whole number of PRUs")

    @cached_property
    def summary(self) -> str:
        return (
            f"{self.name}: NFFT {self.nfft}, Fs {self.sample_rate / 1e6:g} MS/s, "
            f"CP {self.cp} ({self.cp_fraction}), {self.n_pru} PRUs, "
            f"df {self.subcarrier_spacing / 1e3:g} kHz"
        )


_N16 = Fraction(28, 25)
# bandwidth -> (nfft, left guard, right guard)  [digest §1.2]
_CHANNELS: dict[float, tuple[int, int, int]] = {
    5e6: (512, 40, 39),
    10e6: (1024, 80, 79),
    20e6: (2048, 160, 159),
}


def _build() -> dict[str, Profile]:
    out: dict[str, Profile] = {}
    for bw, (nfft, lg, rg) in _CHANNELS.items():
        mhz = int(bw / 1e6)
        for g, suffix in ((Fraction(1, 8), ""), (Fraction(1, 16), "-cp16")):
            name = f"{mhz}MHz{suffix}"
            out[name] = Profile(name, bw, _N16, nfft, g, lg, rg, True,
                                f"802.16m {mhz} MHz channel, CP {g}")
    out["P2.5"] = Profile("P2.5", 2.5e6, _N16, 256, Fraction(1, 8), 20, 19, False,
                          "non-standard half-5MHz grid for Pluto over USB 2 (digest §1.4)")
    return out


_PROFILES = _build()
ALIASES: dict[str, str] = {"P5": "5MHz", "P10": "10MHz", "P20": "20MHz", "pluto": "P2.5"}


def profiles() -> list[str]:
    """Canonical profile names: the 16m 5/10/20 MHz channels (CP 1/8; ``-cp16`` for CP 1/16) and
    the Pluto-friendly ``P2.5``. Aliases accepted by :func:`get_profile`: see ``ALIASES``."""
    return list(_PROFILES)


def get_profile(name: str | Profile) -> Profile:
    """Look up a profile by name or alias (``"P5"``, ``"P10"``, ``"pluto"``)."""
    if isinstance(name, Profile):
        return name
    key = ALIASES.get(name, name) if isinstance(name, str) else None
    if key not in _PROFILES:
        raise UnknownProfileError(
            f"unknown PHY profile {name!r}; known: {', '.join(_PROFILES)} "
            f"(aliases: {', '.join(ALIASES)})"
        )
    return _PROFILES[key]
