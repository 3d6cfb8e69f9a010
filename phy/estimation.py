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

SMOOTH_WIDTH = 7


def smooth_channel(H: np.ndarray, freq_index: np.ndarray, width: int = SMOOTH_WIDTH) -> np.ndarray:
    """Moving-average smoothing of an LS estimate along frequency (see module doc)."""
    adj = np.diff(freq_index) == 1
    prod = H[1:] * np.conj(H[:-1])
    slope = float(np.angle(np.sum(prod[adj])))
    ramp = np.exp(1j * slope * freq_index.astype(np.float64))
    Hr = H * np.conj(ramp)
    ker = np.ones(width)
    num = np.convolve(Hr, ker, mode="same")
    den = np.convolve(np.ones(H.size), ker, mode="same")
    return (num / den * ramp).astype(np.complex64)


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
    rows = np.arange(Y.shape[0])[:, None]
    Zp = Y[rows, pil_pos] * np.conj(H[pil_pos]) * pil_val
    k = freq_index[pil_pos].astype(np.float64)
    diff = Zp[:, 1:] * np.conj(Zp[:, :-1])
    dk = np.diff(k, axis=1)
    s = np.sum(diff, axis=1)  # pilot spacing dk is 18 (19 across DC)
    b = np.angle(s) / np.mean(dk)
    wgt = np.abs(s)
    x = ls.astype(np.float64) + 1.0
    den = float(np.sum(wgt * x * x))
    c = float(np.sum(wgt * b * x) / den) if den > 0 else 0.0
    bl = c * x
    a = np.angle(np.sum(Zp * np.exp(-1j * bl[:, None] * k), axis=1))
    return a, bl, c


def noise_variance(Y_sc: np.ndarray, even: np.ndarray, floor: float) -> float:
    """Complex noise variance per subcarrier from the S&C symbol's null subcarriers."""
    odd = Y_sc[~even]
    return max(float(np.mean(odd.real**2 + odd.imag**2)), floor)
