"""numba kernels that decode a robust block (a burst's header, a zone's A-MAP: QPSK, rate 1/2,
repeated across the symbols) from its FFT windows in one call: pilot tracking, equalisation,
demapping with the repetitions combined, and the Viterbi decoder.

Those were four compiled steps with some twenty Python-level ones between them, which cost
about as much as the steps (docs/phy.md, "Session 17"), and every zone burst a node hears has
one or two blocks. The same kernels now run back to back; what the Python side still does is
the block's tables (kept per size) and reading the bits.

One kernel per Viterbi decoder (:func:`decoder_kernel` picks the one the rate-1/2 code uses:
the int16 decoder in this CPU's layout, or the float one), so only the decoder that runs here
is ever compiled. numba caches a kernel by the hash of its own file only, and these link in
kernels of other files: :data:`DEPS_SHA256` pins them, and a test fails until the pin is
updated (which changes this file, and so its cache key).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from phy.channel_kernels import equalize
from phy.kernels import robust_combine
from phy.track_kernels import track_phase_wls
from phy.viterbi_float import BFLY_SX, BFLY_SY, viterbi_k7
from phy.viterbi_kernels import viterbi_k7_simd
from phy.viterbi_lanes import viterbi_k7_simd_lanes

DEPS_SHA256 = {
    "channel_kernels.py": "5915eb7348ed6e3bb4e039c90b4c56398eeb62eb1b9e208e78965d5eb21ae8ce",
    "kernels.py": "7c129f91a4a5bb44e371e499522955bae16648db627e2e718eecad91a6e34cc2",
    "track_kernels.py": "67160321a5be1bc12299f44b348ad94c730cddcc9d4f1df0dca1a655a2ec8b67",
    "viterbi_float.py": "cd3aa071fb5477669c5008c388719dc0faecb7a46d52ffad0feef7d192a2e566",
    "viterbi_kernels.py": "0a1a53adea803af4b6916de874da5eb5805f60eb1ce85e6e2264baf12fb95db6",
    "viterbi_lanes.py": "abce8d678595ae700e46fba4c4511a3564642067c89651ab7ae45dd554de7c71",
}
"""SHA-256 of the files whose kernels these link in (see the module doc)."""


@njit(cache=True, nogil=True, inline="always")
def _llrs(Y, H, ls, pos, val, fidx, sigma2, c_var, skip, dpos, dest, sign, nco, alpha, beta,
          nearest):  # pragma: no cover - numba
    """The block's combined LLRs (float32 ``nco``), its EVM sums (squared error to the
    nearest QPSK point weighted by each symbol's LLR weight, and the weights; float64) and
    the pilot phase model (CPE, slope per symbol) of all of ``ls``; the first ``skip``
    symbols are tracked but not equalised (a zone's header, tracked with its A-MAP)."""
    cpe, bl, _ = track_phase_wls(Y, H, ls, pos, val, fidx, sigma2, c_var)
    z, w = equalize(Y[skip:], H, dpos[skip:], cpe[skip:], bl[skip:], fidx, 1.0 / sigma2)
    comb, err = robust_combine(z, w, dest, sign, nco, alpha, beta, nearest)
    e_num = 0.0
    e_den = 0.0
    for i in range(err.size):
        e_num += np.float64(err[i]) * np.float64(w[i])
        e_den += np.float64(w[i])
    return comb, e_num, e_den, cpe, bl


@njit(cache=True, nogil=True)
def robust_decode_lanes(Y, H, ls, pos, val, fidx, sigma2, c_var, skip, dpos, dest, sign, nco,
                        alpha, beta, nearest, n_bits):  # pragma: no cover - numba
    """Decode a robust block with the int16 Viterbi decoder in the 128-bit-lane layout.

    ``Y`` (n_sym, n_used) complex64 windows of symbols ``ls`` (int64), ``H`` the channel,
    ``pos``/``val``/``dpos`` the symbols' pilot positions, pilot values and data positions
    (rows), ``fidx`` the subcarriers' frequency indices, ``sigma2`` the noise variance,
    ``c_var`` the drift prior, ``skip`` the symbols left out of the block, ``dest``/``sign``
    the repetition map (``phy.modem_rx._robust_map``) of the ``nco``-bit code word, the QPSK
    demapper tables, ``n_bits`` the information bits. Returns (bits uint8 ``n_bits``, EVM
    numerator, EVM denominator, CPE per symbol, slope per symbol)."""
    comb, e_num, e_den, cpe, bl = _llrs(Y, H, ls, pos, val, fidx, sigma2, c_var, skip, dpos,
                                        dest, sign, nco, alpha, beta, nearest)
    return viterbi_k7_simd_lanes(comb)[:n_bits], e_num, e_den, cpe, bl


@njit(cache=True, nogil=True)
def robust_decode_wide(Y, H, ls, pos, val, fidx, sigma2, c_var, skip, dpos, dest, sign, nco,
                       alpha, beta, nearest, n_bits):  # pragma: no cover - numba
    """:func:`robust_decode_lanes` with the int16 decoder's wide (AVX-512BW) layout."""
    comb, e_num, e_den, cpe, bl = _llrs(Y, H, ls, pos, val, fidx, sigma2, c_var, skip, dpos,
                                        dest, sign, nco, alpha, beta, nearest)
    return viterbi_k7_simd(comb)[:n_bits], e_num, e_den, cpe, bl


@njit(cache=True, nogil=True)
def robust_decode_float(Y, H, ls, pos, val, fidx, sigma2, c_var, skip, dpos, dest, sign, nco,
                        alpha, beta, nearest, n_bits):  # pragma: no cover - numba
    """:func:`robust_decode_lanes` with the float32 Viterbi decoder."""
    comb, e_num, e_den, cpe, bl = _llrs(Y, H, ls, pos, val, fidx, sigma2, c_var, skip, dpos,
                                        dest, sign, nco, alpha, beta, nearest)
    return viterbi_k7(comb, BFLY_SX, BFLY_SY)[:n_bits], e_num, e_den, cpe, bl


def decoder_kernel(decoder: str, layout: str):
    """The robust-block kernel for a rate-1/2 code's ``decoder`` (``"int16"``/``"float"``) and
    the int16 decoder's ``layout`` (``"lanes"``/``"wide"``, :func:`phy.viterbi.simd_layout`)."""
    if decoder == "float":
        return robust_decode_float
    return robust_decode_wide if layout == "wide" else robust_decode_lanes
