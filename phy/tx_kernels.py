"""numba kernel of the transmitter's last steps: a burst's data-subcarrier symbols into the FFT
bins beside the pilots, the inverse transform of every symbol, then cyclic prefix, ramps,
low-pass, scale and limiter (:func:`phy.kernels.tx_burst`), in one call
(:meth:`phy.modem._BurstCore._to_air`).

Before, that was a copy of the pilot template, a numpy scatter, a pocketfft call and the shaping
kernel, with the preamble's two constant rows transformed again in every burst. Here the
preamble's transformed rows are computed once (by ``scipy.fft``, as before) and copied, and the
symbols' rows are transformed by rocket-fft (``numpy.fft`` in numba, on the pocketfft that
``scipy.fft`` runs). At 256 points (profile P2.5) the burst equals the former path's bit for
bit; at 512 points and more rocket-fft's build differs from scipy's in the last bits of some
rows (as in :mod:`phy.presync_kernels`; tests/phy/test_tx_kernel.py pins both).

numba keys a cache on this file only, and the kernel links in :func:`phy.kernels.tx_burst`:
:data:`DEPS_SHA256` pins that file (tests/phy/test_kernel_pins.py).
"""

from __future__ import annotations

import numpy as np
import rocket_fft  # noqa: F401 - registers numpy.fft for numba (the transform below)
from numba import njit

from phy.kernels import tx_burst

DEPS_SHA256 = {
    "kernels.py": "7c129f91a4a5bb44e371e499522955bae16648db627e2e718eecad91a6e34cc2",
}
"""SHA-256 of the files whose kernels this module's kernel links in (see the module doc)."""


@njit(cache=True, nogil=True)
def zone_air(pre_bodies: np.ndarray, template: np.ndarray, data_idx: np.ndarray,
             q: np.ndarray, cp: int, up: np.ndarray, down: np.ndarray, h: np.ndarray,
             scale: float, limit: bool) -> np.ndarray:  # pragma: no cover - numba
    """The shaped burst of the preamble (its transformed rows *pre_bodies*, (P, NFFT)) and
    ``n = q.size // n_data`` symbols (*data_idx* holds ``n_data`` indexes a row, for every
    row of *template* after the preamble's): row ``P + l`` of *template* (the FFT bins with
    pilots, zeros on the data subcarriers) with symbol *l*'s values of *q* written at
    *data_idx* (flat indexes into *template*, transmit order), inverse-transformed (unitary),
    then :func:`phy.kernels.tx_burst` with *cp*, *up*, *down*, *h*, *scale*, *limit*.
    complex64 ``((P + n) * (NFFT + cp),)``. Raises ValueError for sizes that do not fit."""
    p, nfft = pre_bodies.shape
    n_rows = template.shape[0]
    if template.shape[1] != nfft:
        raise ValueError("zone_air: the template's rows are not the preamble's length")
    if n_rows <= p or data_idx.size % (n_rows - p):
        raise ValueError("zone_air: the data indexes are not whole rows of the template")
    n_data = data_idx.size // (n_rows - p)
    n_q = q.size
    if n_data == 0 or n_q == 0 or n_q % n_data or n_q // n_data > n_rows - p:
        raise ValueError("zone_air: the symbol values are not 1.. template rows of data")
    n = n_q // n_data
    bins = np.empty((n, nfft), dtype=np.complex64)
    for l in range(n):
        src = template[p + l]
        dst = bins[l]
        for k in range(nfft):
            dst[k] = src[k]
    flat = bins.reshape(n * nfft)
    base = p * nfft
    for k in range(n_q):
        j = data_idx[k] - base
        if j < 0 or j >= n * nfft:
            raise ValueError("zone_air: a data index is outside the burst's symbols")
        flat[j] = q[k]
    tx = np.fft.ifft(bins, norm="ortho")
    bodies = np.empty((p + n, nfft), dtype=np.complex64)
    for l in range(p):
        src = pre_bodies[l]
        dst = bodies[l]
        for k in range(nfft):
            dst[k] = src[k]
    for l in range(n):
        src = tx[l]
        dst = bodies[p + l]
        for k in range(nfft):
            dst[k] = src[k]
    return tx_burst(bodies, cp, up, down, h, scale, limit)
