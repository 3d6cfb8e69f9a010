"""A genie-aided reference decoder: what a receiver with perfect synchronisation and CSI decodes.

It is the yardstick of ``benchmarks/per.py`` and of the PER tests: the same burst, the same
channel and noise, decoded once by :class:`phy.BurstModem` (which must find, synchronise and
estimate everything itself) and once by :class:`ReferenceReceiver`, which is told the burst's
start, MCS, length and addresses, the channel's exact frequency response, the noise variance and
(under phase noise) each symbol's common phase. It then runs the modem's own back end -- the
zero-forcing equaliser with exact max-log LLR weights ``|H|^2 / sigma^2``, the demapper,
deinterleaver, depuncturer, unquantised Viterbi, derandomiser and CRC -- so the PER difference
between the two is exactly the cost of detection, synchronisation and estimation.

Channel convention: a burst whose samples start at buffer index ``start`` reaches the receiver
through taps ``(delay_l, gain_l)`` (delays in samples, relative to ``start``); the receiver's
FFT window of each symbol starts ``backoff`` samples before the end of that symbol's CP, so the
frequency response seen on subcarrier ``k`` is ``sum_l gain_l exp(-2j pi k (delay_l + backoff)
/ NFFT)`` times the modem's TX scale (:func:`window_response`).
"""

from __future__ import annotations

import numpy as np

from phy.kernels import equalize, gather_windows
from phy.modem import BurstModem, _decode_payload, _n_info, _rx_scatter_map, get_mcs


def window_response(modem: BurstModem, delays: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """The complex gain each used subcarrier sees (n_used,) complex64 through taps ``gains`` at
    ``delays`` (samples), for the modem's FFT window placement and TX scale."""
    g = modem.grid
    d = np.asarray(delays, np.float64) + modem.backoff
    ph = np.exp(-2j * np.pi * np.outer(g.freq_index, d) / g.nfft)
    h = (ph * np.asarray(gains, np.complex128)[None, :]).sum(axis=1)  # no BLAS for 6 taps
    return (h * modem.scale).astype(np.complex64)


def common_phases(phase: np.ndarray, modem: BurstModem, start: int, n_sym: int) -> np.ndarray:
    """Per-symbol common phase error of a phase-noise process ``phase`` (radians per buffer
    sample) over the FFT windows of symbols ``l = 0 .. n_sym - 1`` of a burst at ``start``: the
    angle of the window mean of ``exp(j phase)`` (what ideal CPE knowledge removes; the rest of
    the phase noise is inter-carrier interference no one-tap receiver undoes)."""
    g = modem.grid
    ns = g.symbol_samples
    out = np.empty(n_sym)
    for l in range(n_sym):
        s0 = start + (2 + l) * ns + g.cp - modem.backoff
        out[l] = np.angle(np.mean(np.exp(1j * phase[s0: s0 + g.nfft])))
    return out


class ReferenceReceiver:
    """Decode one :class:`phy.BurstModem` burst with ideal synchronisation and ideal CSI.

    Args:
        modem: the modem whose format (profile, TX scale, back-off) the burst follows.
    """

    def __init__(self, modem: BurstModem) -> None:
        self.modem = modem

    def decode(self, iq: np.ndarray, start: int, *, mcs: str, length: int, src: int, dst: int,
               H: np.ndarray, sigma2: float, cpe: np.ndarray | None = None
               ) -> tuple[bytes, bool]:
        """The payload and CRC result of the burst at ``start`` in ``iq``.

        ``H``: (n_used,) true response (:func:`window_response`); ``sigma2``: true complex noise
        variance per subcarrier (= time-domain variance); ``cpe``: optional true common phase
        per symbol after the preamble (header first, :func:`common_phases`)."""
        m = self.modem
        g = m.grid
        mc = get_mcs(mcs)
        n_sym = m.data_symbols(length, mc.name)
        ns = g.symbol_samples
        r = np.ascontiguousarray(iq, np.complex64)
        s0 = start + 3 * ns + g.cp - m.backoff
        Y = g.ofdm_demodulate(gather_windows(r, s0, n_sym, ns, g.nfft, 0.0))
        ls = np.arange(1, n_sym + 1)
        ph = np.zeros(n_sym) if cpe is None else np.asarray(cpe, np.float64)[1: n_sym + 1]
        z, wgt = equalize(np.ascontiguousarray(Y, np.complex64),
                          np.ascontiguousarray(H, np.complex64), g.sym_data_pos[ls % 3],
                          np.ascontiguousarray(ph), np.zeros(n_sym), g.freq_index.astype(
                              np.float64), 1.0 / float(sigma2))
        dest = _rx_scatter_map(g.n_data * mc.bits_per_symbol, mc.bits_per_symbol, mc.code_rate,
                               _n_info(length))
        payload, ok, _ = _decode_payload(z, wgt, mc, length, src, dst, dest)
        return payload, ok
