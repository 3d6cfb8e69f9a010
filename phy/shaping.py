"""Transmit spectrum shaping: symbol windowing inside the CP and a length-keeping low-pass.

Without shaping, every OFDM symbol starts and ends abruptly and the spectrum of the edge
subcarriers falls only as 1/f^2: the PSD at the Nyquist edge is just 21-30 dB below the used
band (the guard band is 7.8 % of the FFT on every profile; P2.5 has only 20 guard bins). Two steps,
neither of which changes a burst's length or any symbol's position (the MAC plans zones in
symbols and the simulator, emulator and Pluto paths depend on burst lengths):

1. **Windowing (WOLA inside the CP)**: each symbol's first ``W = Ng / 8`` samples (the start
   of its CP) rise on a raised-cosine ramp, and the previous symbol's cyclic continuation
   (the first ``W`` samples of its body), falling on the mirrored ramp, is added there. The
   receiver's FFT window starts ``Ng - backoff`` samples into a symbol, and ``W <= backoff
   <= Ng - W``, so in a channel shorter than ``Ng - backoff - W`` samples no FFT window sees a
   ramp. The last ``backoff`` samples of a burst (never inside an FFT window) fall on a ramp
   too, so the burst does not end abruptly.
2. **Low-pass FIR**: a 33-tap linear-phase equiripple low-pass, flat over the used band plus
   half a subcarrier (ripple ~1e-3), stop band from 0.49 fs to fs/2, applied centred ("same"
   alignment), so the burst keeps its length and no sample moves. What it removes lies between
   the band edge and Nyquist; its in-band cost (with the windowing's) is measured as the
   transmit EVM against the unshaped burst (``benchmarks/modem.py --spectrum``).

The result, measured by ``python -m benchmarks.modem --spectrum``: the PSD at the Nyquist edge
is at least 40 dB below the in-band PSD on every profile.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from phy.grid import ResourceGrid
from phy.kernels import tx_burst

FIR_TAPS = 33
FIR_STOP = 0.49
"""Start of the low-pass stop band (fraction of the sample rate)."""
_FIR_WEIGHTS = (100.0, 1.0)
"""Equiripple weights (pass band, stop band): the windowing already puts the Nyquist edge
28-50 dB down, so the filter buys the rest with a pass band flat to ~1e-3 (a ripple the
receiver's delay-limited channel estimate would not follow shows as EVM)."""


def window_length(grid: ResourceGrid) -> int:
    """Samples of the raised-cosine ramp at each symbol start (``Ng / 8``, at least 2)."""
    return max(2, grid.cp // 8)


@lru_cache(maxsize=16)
def _ramp(n: int) -> np.ndarray:
    """Rising raised-cosine ramp of ``n`` samples (float32, ends short of 0 and 1)."""
    t = (np.arange(n) + 0.5) / n
    out = (np.sin(0.5 * np.pi * t) ** 2).astype(np.float32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=16)
def lowpass(nfft: int, max_freq_index: int) -> np.ndarray:
    """The 33-tap transmit low-pass (float32, symmetric) for a grid whose highest used
    subcarrier is ``max_freq_index``: pass band to that subcarrier plus half a spacing."""
    from scipy.signal import remez  # scipy.signal costs ~1 s to import: when needed

    edge = (max_freq_index + 0.5) / nfft
    h = remez(FIR_TAPS, [0.0, edge, FIR_STOP, 0.5], [1.0, 0.0], weight=list(_FIR_WEIGHTS),
              fs=1.0)
    h = (h / np.sum(h)).astype(np.float32)  # unit DC gain
    h.setflags(write=False)
    return h


class TxShaper:
    """Windowing + low-pass for the bursts of one grid (see the module doc).

    Args:
        grid: the resource grid.
        backoff: the receiver's FFT-window back-off in samples (the burst's last ``backoff``
            samples are ramped down).
    """

    def __init__(self, grid: ResourceGrid, backoff: int) -> None:
        self.grid = grid
        self.w = window_length(grid)
        self.backoff = int(backoff)
        if not self.w <= grid.cp - self.backoff:
            raise ValueError("the window ramp must leave the FFT window alone")
        self.fir = lowpass(grid.nfft, int(grid.freq_index.max()))
        self.up = _ramp(self.w)
        self.down = np.ascontiguousarray(_ramp(self.backoff)[::-1])

    def burst(self, bodies: np.ndarray, scale: float, limit: bool) -> np.ndarray:
        """The shaped burst from the symbols' IFFT outputs ``bodies`` (n_sym, NFFT) complex64:
        CP, ramps, low-pass, then times ``scale`` and, with ``limit``, every sample held to
        magnitude <= 1 (:func:`phy.kernels.tx_burst`). complex64 (n_sym * (NFFT + Ng),)."""
        return tx_burst(bodies, self.grid.cp, self.up, self.down, self.fir, scale, limit)

