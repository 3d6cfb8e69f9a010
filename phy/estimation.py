"""Channel estimation, noise estimation, pilot tracking and equalisation (digest §2.3, §3.2).

* channel: LS on the long symbol and the S&C symbol's even subcarriers (:func:`preamble_ls`),
  then LMMSE smoothing along frequency sized to the delay spread (:func:`lmmse_channel`): the
  delay window the channel occupies is measured from the LS estimate's power-delay profile, and
  the LS estimate is projected onto the discrete prolate spheroidal (Slepian) basis of a uniform
  delay profile over that window, each basis coefficient shrunk by its Wiener factor
  ``lambda P / (lambda P + sigma^2)``. In AWGN the window is a few samples wide and the estimate
  averages over the whole band; under Ped-B it widens to the channel's ~4 us and the estimate
  follows the channel's frequency selectivity without the bias of a fixed moving average;
* noise variance from the S&C symbol's null (odd) subcarriers;
* per data symbol: the pilot phase slope (timing drift from the sampling-clock offset) and
  the common phase error; slopes are fitted to the drift model ``b_l = c * (l + 1)`` (time
  since the long symbol, one parameter over the whole burst) by weighted least squares on the
  pilot phases (weights ``|H|^2 / sigma^2``) under a prior of a +-50 ppm clock offset, so a
  short burst, whose pilots cannot measure the drift, does not rotate its band edges by noise;
  the CPE is taken per symbol;
* one-tap zero-forcing equalisation with per-subcarrier LLR weights ``|H|^2 / sigma^2``.
"""

from __future__ import annotations

import cmath
import math
from functools import lru_cache

import numpy as np

from phy import kernels
from phy.channel_kernels import lmmse_gain_band
from phy.sync import fft_rows

SMOOTH_WIDTH = 7
SFO_PRIOR_PPM = 50.0
"""Sampling-clock offset the pilot tracking expects at most (two +-25 ppm clocks)."""
PDP_REL_DB = 30.0
"""Delay taps more than this below the strongest are not part of the channel's window."""
PDP_NOISE_DB = 10.0
"""...nor are taps less than this above the noise floor of the delay profile."""
PDP_MARGIN = 1.0
"""Samples added on each side of the detected delay window."""


@lru_cache(maxsize=32)
def _geometry(nfft: int, k_first: int, k_last: int, n: int
              ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
    """Per-grid constants of the estimator (read-only): the FFT bins of the used subcarriers,
    the Hann taper and its energy, the used subcarriers' positions in the contiguous band
    ``k_first .. k_last``, the holes of that band (DC) and its frequency indices."""
    k = np.arange(k_first, k_last + 1)
    used = np.ones(k.size, bool)
    used[k == 0] = False
    if int(used.sum()) != n:
        raise ValueError("freq_index must be a contiguous band with at most the DC hole")
    pos = np.flatnonzero(used)
    bins = np.mod(k[pos], nfft)
    w = np.hanning(n + 2)[1:-1].astype(np.float32)
    out = (bins, w, float(np.sum(w.astype(np.float64) ** 2)), pos, np.flatnonzero(~used),
           k.astype(np.float64))
    for a in out:
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    return out


def _geometry_of(freq_index: np.ndarray, nfft: int) -> tuple:
    return _geometry(int(nfft), int(freq_index[0]), int(freq_index[-1]), int(freq_index.size))


def delay_window(H_ls: np.ndarray, freq_index: np.ndarray, nfft: int, sigma2: float,
                 lo: int, hi: int) -> tuple[float, float]:
    """The delay window ``(t0, t1)`` (samples) the channel occupies, from the power-delay profile
    of the LS estimate ``H_ls`` (Hann-tapered along the band against leakage) searched over
    delays ``lo .. hi``: taps above both ``PDP_REL_DB`` below the peak and ``PDP_NOISE_DB`` above
    the noise floor (the taper's main lobe widens each path by about 2 NFFT/n samples on each side),
    widened by ``PDP_MARGIN`` (:func:`phy.channel_kernels.pdp_window` on the profile)."""
    # |IFFT(v)| = |FFT(conj v)| / nfft, and only tap powers matter: the forward transform
    # (pocketfft's backward one took half as long again), the noise floor scaled to match
    h = fft_rows(delay_profile_input(H_ls, freq_index, nfft), overwrite=True)
    return delay_window_of(h, freq_index, nfft, sigma2, lo, hi)


def delay_profile_input(H_ls: np.ndarray, freq_index: np.ndarray, nfft: int) -> np.ndarray:
    """The NFFT-point spectrum whose forward FFT is :func:`delay_window`'s delay profile: the
    Hann-tapered, conjugated LS estimate at its bins (complex64). Several estimates' rows can
    be transformed in one call (pocketfft's batches are cheaper per row)."""
    bins, w, _, _, _, _ = _geometry_of(freq_index, nfft)
    return kernels.place_conj(np.ascontiguousarray(H_ls, np.complex64), bins, w, int(nfft))


def delay_window_of(h: np.ndarray, freq_index: np.ndarray, nfft: int, sigma2: float,
                    lo: int, hi: int) -> tuple[float, float]:
    """:func:`delay_window` from the forward FFT ``h`` of :func:`delay_profile_input`."""
    ww = _geometry_of(freq_index, nfft)[2]
    first, last = kernels.pdp_window(h, int(lo), int(hi), 10 ** (-PDP_REL_DB / 10),
                                     sigma2 * ww * 10 ** (PDP_NOISE_DB / 10))
    # the taper's main lobe (+-2 NFFT/n samples) already widens the taps found
    return float(first) - PDP_MARGIN, float(last) + PDP_MARGIN


def _span_bucket(span: float) -> int:
    """Round a window width up to a coarse grid (so only a few bases are ever computed)."""
    s = max(4, math.ceil(span))
    q = max(1, 1 << max(0, int(s).bit_length() - 3))
    return -(-s // q) * q


def dpss(m: int, w: float, r: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``r`` discrete prolate spheroidal sequences of length ``m`` and half-bandwidth
    ``w`` (cycles per sample) most concentrated in the band, as rows (r, m) of unit norm,
    and their concentration ratios (r,) (energy in ``|f| < w`` over total), largest first.

    The sequences are the eigenvectors of Slepian's tridiagonal matrix that commutes with
    the band-limiting kernel (diagonal ``((m - 1 - 2n) / 2)^2 cos(2 pi w)``, off-diagonal
    ``n (m - n) / 2``), a well-conditioned O(m r) problem; each ratio is then the quadratic
    form of the kernel ``sin(2 pi w (i - j)) / (pi (i - j))`` (``2w`` on the diagonal),
    evaluated through the sequence's autocorrelation. The same result as
    ``scipy.signal.windows.dpss(m, m w, r, return_ratios=True)`` up to each sequence's sign
    (tests/phy/test_estimation.py), without importing scipy.signal (~1 s) into every run.
    """
    from scipy.linalg import eigh_tridiagonal  # ~50 ms, and only for a new basis

    n = np.arange(m, dtype=np.float64)
    diag = ((m - 1 - 2 * n) / 2.0) ** 2 * np.cos(2 * np.pi * w)
    off = n[1:] * (m - n[1:]) / 2.0
    _, v = eigh_tridiagonal(diag, off, select="i", select_range=(m - r, m - 1))
    seqs = np.ascontiguousarray(v[:, ::-1].T)  # largest eigenvalue first
    nf = 1 << (2 * m - 1).bit_length()
    spec = np.fft.rfft(seqs, nf, axis=1)
    acf = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, nf, axis=1)[:, :m]
    lag = np.arange(1, m, dtype=np.float64)
    kernel = np.concatenate([[2.0 * w], 2.0 * np.sin(2 * np.pi * w * lag) / (np.pi * lag)])
    return seqs, acf @ kernel


@lru_cache(maxsize=64)
def _slepian_basis(m: int, nfft: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvectors (r, m) and eigenvalues (r,) of the correlation ``sinc(dk span / nfft)`` of
    ``m`` adjacent subcarriers under a uniform delay profile ``span`` samples wide (unit
    diagonal): the DPSS of half-bandwidth ``span / (2 nfft)``, eigenvalues ``ratio nfft /
    span``, largest first; kept while the eigenvalue exceeds 1e-6 of the largest."""
    w = span / (2.0 * nfft)
    r = min(m, int(np.ceil(2 * m * w)) + 12)
    vecs, ratios = dpss(m, w, r)
    lam = ratios / (2 * w)
    order = np.argsort(-lam, kind="stable")  # largest first (the tail can come out of order)
    order = order[lam[order] > 1e-6 * lam.max()]
    vecs = np.ascontiguousarray(vecs[order]).astype(np.float64)
    lam = lam[order]
    vecs.setflags(write=False)
    lam.setflags(write=False)
    return vecs, lam


def lmmse_channel(H_ls: np.ndarray, freq_index: np.ndarray, nfft: int, sigma2: float,
                  lo: int, hi: int) -> np.ndarray:
    """LMMSE estimate (n_used,) complex64 of the channel from its LS estimate ``H_ls`` (noise
    ``sigma2`` per subcarrier) under a uniform delay profile over the window
    :func:`delay_window` finds in ``lo .. hi`` (see the module doc). The DC gap in
    ``freq_index`` is filled by its neighbours' mean for the projection and dropped after
    (:func:`phy.channel_kernels.lmmse_band`)."""
    return lmmse_estimate(H_ls, freq_index, nfft, sigma2, lo, hi)[0]


def lmmse_estimate(H_ls: np.ndarray, freq_index: np.ndarray, nfft: int, sigma2: float,
                   lo: int, hi: int, window: tuple[float, float] | None = None
                   ) -> tuple[np.ndarray, tuple[float, float]]:
    """:func:`lmmse_channel` and the delay window ``(t0, t1)`` it assumed (samples in the FFT
    window), which also tells how much of a symbol's CP the channel's echoes reach.
    ``window``: that window when already found (:func:`delay_window_of`), else found here."""
    H_ls = np.asarray(H_ls, np.complex64)
    t0, t1 = (delay_window(H_ls, freq_index, nfft, sigma2, lo, hi) if window is None
              else window)
    _, _, _, pos, holes, k = _geometry_of(freq_index, nfft)
    U, lam = _slepian_basis(k.size, nfft, _span_bucket(t1 - t0))
    power = max(float(np.vdot(H_ls, H_ls).real) / H_ls.size - sigma2, 1e-3 * sigma2)
    # the gains, the basis vectors worth keeping and the projection in one kernel; a window
    # of NaN/inf samples (hostile IQ) gives no finite gain: no basis vector is kept and the
    # estimate is zero, without a RuntimeWarning
    est = lmmse_gain_band(U, lam, float(power), float(sigma2), H_ls, pos, holes, float(k[0]),
                          np.pi * (t0 + t1) / nfft)
    return est, (t0, t1)


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
    itself is applied by :func:`phy.channel_kernels.equalize`.
    """
    cpe, bl, c = kernels.track_phase(
        np.ascontiguousarray(Y, np.complex64), np.ascontiguousarray(H, np.complex64),
        np.ascontiguousarray(ls, np.int64), np.ascontiguousarray(pil_pos, np.int64),
        np.ascontiguousarray(pil_val, np.float32), np.ascontiguousarray(freq_index, np.float64))
    return cpe, bl, float(c)


def sfo_prior_var(nfft: int, symbol_samples: int, ppm: float = SFO_PRIOR_PPM) -> float:
    """Prior variance of the drift ``c`` (rad per subcarrier per symbol) for a clock offset
    uniform in +-``ppm``: ``c_max^2 / 3`` with ``c_max = 2 pi Ns ppm 1e-6 / NFFT``."""
    c_max = 2 * np.pi * symbol_samples * ppm * 1e-6 / nfft
    return c_max * c_max / 3


def track_phase_mmse(Y: np.ndarray, H: np.ndarray, ls: np.ndarray, pil_pos: np.ndarray,
                     pil_val: np.ndarray, freq_index: np.ndarray, sigma2: float,
                     c_var: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The pilot phase model with the drift ``c`` fitted by weighted least squares on the pilot
    phases (weights ``|H|^2 / sigma2``: a pilot in a fade counts for little) under a zero-mean
    prior of variance ``c_var`` (:func:`sfo_prior_var`), i.e. the MMSE drift: unbiased where the
    burst is long enough to measure it, no slope where the pilots cannot tell one from noise
    (:func:`phy.track_kernels.track_phase_wls`). Returns ``(cpe, slope, c)`` as
    :func:`track_phase`."""
    cpe, bl, c = kernels.track_phase_wls(
        np.ascontiguousarray(Y, np.complex64), np.ascontiguousarray(H, np.complex64),
        np.ascontiguousarray(ls, np.int64), np.ascontiguousarray(pil_pos, np.int64),
        np.ascontiguousarray(pil_val, np.float32), np.ascontiguousarray(freq_index, np.float64),
        float(sigma2), float(c_var))
    return cpe, bl, float(c)


def preamble_ls(Y_sc: np.ndarray, Y_long: np.ndarray, long_inv: np.ndarray,
                sc_inv: np.ndarray, even: np.ndarray) -> tuple[np.ndarray, float, float]:
    """LS channel estimate from both preamble symbols and its mean noise factor.

    The long symbol gives ``Y/X`` on every used subcarrier (noise ``sigma2``); the S&C symbol
    adds its even subcarriers at twice the power, so there ``(Y_l X_l* + Y_s X_s*) / 3`` has
    noise ``sigma2 / 3``. The S&C symbol is first rotated by the common phase between the two
    symbols' estimates (residual carrier offset over one symbol, phase noise). ``long_inv``:
    ``1 / X_long`` (n_used,); ``sc_inv``: ``1 / X_sc`` on the S&C's subcarriers ``even`` (their
    positions). Returns the estimate (n_used,) complex64, the mean noise variance per
    subcarrier in units of ``sigma2`` (2/3 when half the subcarriers are combined) and the S&C
    symbol's common phase relative to the long symbol (radians; one more point of the burst's
    phase trend, a symbol before the long one)."""
    h = np.asarray(Y_long, np.complex64) * long_inv
    he = np.asarray(Y_sc, np.complex64)[even] * sc_inv
    hl = h[even]
    rot = complex(np.vdot(hl, he))  # sum conj(h_long) h_sc
    if abs(rot) > 0:
        he *= np.complex64(np.conj(rot) / abs(rot))
    h[even] = (hl + np.float32(2.0) * he) * np.float32(1.0 / 3.0)
    phase = cmath.phase(rot) if cmath.isfinite(rot) else 0.0
    return h, (even.size / 3.0 + (h.size - even.size)) / h.size, phase


def noise_variance(Y_sc: np.ndarray, odd: np.ndarray, floor: float) -> float:
    """Complex noise variance per subcarrier from the S&C symbol's null subcarriers (positions
    ``odd``)."""
    v = Y_sc[odd]
    return max(float(np.vdot(v, v).real) / max(v.size, 1), floor)
