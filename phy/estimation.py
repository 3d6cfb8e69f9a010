"""Channel estimation, noise estimation, pilot tracking and equalisation (digest §2.3, §3.2).

* LS on the long symbol, smoothed along frequency by a 7-bin moving average after removing the
  mean phase slope (the timing back-off and delay spread), edges normalised;
* noise variance from the S&C symbol's null (odd) subcarriers;
* per data symbol: the pilot phase slope (timing drift from the sampling-clock offset) and
  the common phase error; slopes are fitted to the drift model ``b_l = c * (l + 1)`` (time
  since the long symbol, one parameter over the whole burst), the CPE is taken per symbol;
* one-tap zero-forcing equalisation with per-subcarrier LLR weights ``|H|^2 / sigma^2``.
"""

from __future__ import annotations

import numpy as np

from phy import kernels

SMOOTH_WIDTH = 7


def smooth_channel(H: np.ndarray, freq_index: np.ndarray, width: int = SMOOTH_WIDTH) -> np.ndarray:
    """Moving-average smoothing of an LS estimate along frequency (see module doc)."""
    return kernels.smooth_channel(np.ascontiguousarray(H, np.complex64),
                                  np.ascontiguousarray(freq_index, np.float64), int(width))


def track_phase(Y: np.ndarray, H: np.ndarray, ls: np.ndarray, pil_pos: np.ndarray,
                pil_val: np.ndarray, freq_index: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """Estimate the per-symbol pilot phase model ``phase_l(k) = cpe_l + slope_l * k``.

    Y: (n_sym, n_used) received; H: (n_used,) channel; ls: (n_sym,) symbol numbers l (header 0);
    pil_pos / pil_val: (n_sym, n_pilot) positions and values. Returns ``(cpe, slope, c)``:
    per-symbol CPE (radians; its trend over symbols is the residual CFO), per-symbol slope
    (radians per subcarrier) and the fitted drift ``c`` (slope per symbol). The correction
    itself is applied by :func:`phy.kernels.equalize`.
    """
    cpe, bl, c = kernels.track_phase(
        np.ascontiguousarray(Y, np.complex64), np.ascontiguousarray(H, np.complex64),
        np.ascontiguousarray(ls, np.int64), np.ascontiguousarray(pil_pos, np.int64),
        np.ascontiguousarray(pil_val, np.float32), np.ascontiguousarray(freq_index, np.float64))
    return cpe, bl, float(c)


def noise_variance(Y_sc: np.ndarray, even: np.ndarray, floor: float) -> float:
    """Complex noise variance per subcarrier from the S&C symbol's null subcarriers."""
    odd = Y_sc[~even]
    return max(float(np.mean(odd.real**2 + odd.imag**2)), floor)
