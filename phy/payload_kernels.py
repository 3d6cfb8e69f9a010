"""numba kernels that decode a coded payload (a burst's data, a zone allocation) from its
equalised symbols in one call: max-log demapping scattered into the decoder's input (the
deinterleaving and depuncturing composed in the scatter map), the EVM sums, the Viterbi decoder
and the derandomising XOR.

Those were a handful of compiled steps with numpy calls and Python checks between them
(``phy.modem_decode._decode_payload``), which cost about as much as the demapping
(docs/phy.md, "Session 17"); every allocation a node receives goes through them. What the
Python side still does is checking the scatter map, and the CRC.

One kernel per Viterbi decoder (:func:`decoder_kernel`), as :mod:`phy.robust_kernels`, so only
the decoder that runs here is compiled; and as there, :data:`DEPS_SHA256` pins the files of the
kernels linked in (numba keys a cache on the caller's file only).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from phy.kernels import demap_maxlog
from phy.viterbi_float import BFLY_SX, BFLY_SY, viterbi_k7
from phy.viterbi_kernels import viterbi_k7_simd
from phy.viterbi_lanes import viterbi_k7_simd_lanes

DEPS_SHA256 = {
    "kernels.py": "7c129f91a4a5bb44e371e499522955bae16648db627e2e718eecad91a6e34cc2",
    "viterbi_float.py": "cd3aa071fb5477669c5008c388719dc0faecb7a46d52ffad0feef7d192a2e566",
    "viterbi_kernels.py": "0a1a53adea803af4b6916de874da5eb5805f60eb1ce85e6e2264baf12fb95db6",
    "viterbi_lanes.py": "abce8d678595ae700e46fba4c4511a3564642067c89651ab7ae45dd554de7c71",
}
"""SHA-256 of the files whose kernels these link in (see the module doc)."""


@njit(cache=True, nogil=True, inline="always")
def _llrs(z, w, alpha, beta, nearest, inv_cell, dest, n_buf):  # pragma: no cover - numba
    """The decoder's input (float32 ``n_buf``, zero where punctured) and the EVM sums (squared
    error to the nearest point weighted by each symbol's LLR weight, and the weights;
    float64)."""
    buf = np.zeros(n_buf, dtype=np.float32)
    err = demap_maxlog(z, w, alpha, beta, nearest, inv_cell, dest, buf)
    e_num = 0.0
    e_den = 0.0
    for i in range(err.size):
        e_num += np.float64(err[i]) * np.float64(w[i])
        e_den += np.float64(w[i])
    return buf, e_num, e_den


@njit(cache=True, nogil=True, inline="always")
def _xor(bits, xseq, n_info):  # pragma: no cover - numba
    """The first ``n_info`` decoded bits XOR the randomizer's sequence ``xseq``."""
    out = np.empty(n_info, dtype=np.uint8)
    for i in range(n_info):
        out[i] = bits[i] ^ xseq[i]
    return out


@njit(cache=True, nogil=True)
def payload_decode_lanes(z, w, alpha, beta, nearest, inv_cell, dest, n_buf, n_info,
                         xseq):  # pragma: no cover - numba
    """Decode a payload with the int16 Viterbi decoder in the 128-bit-lane layout.

    ``z`` complex64 symbols, ``w`` float32 weights, the demapper tables of their QAM
    (``phy.qam.demap_tables``), ``dest`` the scatter map into the ``n_buf``-LLR decoder input
    (checked by the caller: every index below ``n_buf``), ``n_info`` the information bits,
    ``xseq`` the randomizer's first ``n_info`` bits (uint8). Returns (bits uint8, EVM
    numerator, EVM denominator)."""
    buf, e_num, e_den = _llrs(z, w, alpha, beta, nearest, inv_cell, dest, n_buf)
    return _xor(viterbi_k7_simd_lanes(buf), xseq, n_info), e_num, e_den


@njit(cache=True, nogil=True)
def payload_decode_wide(z, w, alpha, beta, nearest, inv_cell, dest, n_buf, n_info,
                        xseq):  # pragma: no cover - numba
    """:func:`payload_decode_lanes` with the int16 decoder's wide (AVX-512BW) layout."""
    buf, e_num, e_den = _llrs(z, w, alpha, beta, nearest, inv_cell, dest, n_buf)
    return _xor(viterbi_k7_simd(buf), xseq, n_info), e_num, e_den


@njit(cache=True, nogil=True)
def payload_decode_float(z, w, alpha, beta, nearest, inv_cell, dest, n_buf, n_info,
                         xseq):  # pragma: no cover - numba
    """:func:`payload_decode_lanes` with the float32 Viterbi decoder."""
    buf, e_num, e_den = _llrs(z, w, alpha, beta, nearest, inv_cell, dest, n_buf)
    return _xor(viterbi_k7(buf, BFLY_SX, BFLY_SY), xseq, n_info), e_num, e_den


def decoder_kernel(decoder: str, layout: str):
    """The payload kernel for a code's ``decoder`` (``"int16"``/``"float"``) and the int16
    decoder's ``layout`` (``"lanes"``/``"wide"``, :func:`phy.viterbi.simd_layout`)."""
    if decoder == "float":
        return payload_decode_float
    return payload_decode_wide if layout == "wide" else payload_decode_lanes
