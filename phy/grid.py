"""The resource grid: the single source of FFT size, CP, guard, DC, pilot and data indices.

Every other block (preamble, modem TX/RX, channel estimation) takes a :class:`ResourceGrid`; none
recomputes indices. Conventions (digest §1.2, §3.2):

* logical subcarrier ``k`` counts 0..NFFT-1 from the lower band edge; DC is ``k = NFFT/2`` and is
  always null; the FFT bin of ``k`` is ``(k - NFFT/2) mod NFFT``; ``freq_index = k - NFFT/2``.
* the used band (guards removed, DC removed) is ``n_pru`` contiguous 18-subcarrier PRUs;
  arrays of per-subcarrier values are always ordered along ``used_bins`` (lowest frequency first).
* tracking pilots: one per PRU per OFDM symbol, at position ``(9 + 6*l) mod 18`` inside the PRU for
  symbol ``l`` (three positions cycling; digest §3.2). ``l = 0`` is the header symbol, data
  symbols are ``l = 1, 2, ...``. Pilot values are BPSK from the PRBS ``1 + x^9 + x^11`` (16e pilot
  generator), boosted to amplitude 4/3.
* time domain: ``x = sqrt(NFFT) * ifft(X)`` so unit-power subcarriers give time power
  ``n_used / NFFT``; the CP is the last ``Ng`` samples of the useful symbol.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.fft as sp_fft

from phy.kernels import prbs, tx_burst
from phy.numerology import PRU_SUBCARRIERS, Profile, get_profile

try:  # the transform scipy.fft runs, without its per-call dispatch (see fft_rows)
    from scipy.fft._pocketfft.helper import _workers as _pocketfft_workers
    from scipy.fft._pocketfft.pypocketfft import c2c as _pocketfft_c2c
except ImportError:  # pragma: no cover - a SciPy that moved them: scipy.fft itself
    _pocketfft_c2c = _pocketfft_workers = None

PILOT_BOOST = 4.0 / 3.0
_NO_RAMP = np.zeros(0, np.float32)
_NO_FIR = np.ones(1, np.float32)
_PILOT_SEED = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=np.uint8)
_C64 = np.dtype(np.complex64)


class ResourceGrid:
    """Index bookkeeping and OFDM (de)modulation for one profile.

    Shapes: frequency-domain blocks are ``(n_sym, n_used)`` complex64 ordered along ``used_bins``;
    time-domain bursts are 1-D complex64 of ``n_sym * symbol_samples`` samples.
    """

    def __init__(self, profile: str | Profile) -> None:
        self.profile = get_profile(profile)
        p = self.profile
        self.nfft = p.nfft
        self.cp = p.cp
        self.symbol_samples = p.symbol_samples
        k = np.arange(p.left_guard, p.nfft - p.right_guard)
        k = k[k != p.nfft // 2]
        assert k.size == p.n_used
        self.used_k = k
        self.freq_index = (k - p.nfft // 2).astype(np.int64)
        self.used_bins = np.mod(self.freq_index, p.nfft).astype(np.int64)
        self.n_used = p.n_used
        n_neg = int(np.count_nonzero(self.freq_index < 0))
        self._neg_bins = slice(p.nfft - n_neg, p.nfft)
        self._pos_bins = slice(1, p.n_used - n_neg + 1)
        assert np.array_equal(np.r_[np.arange(p.nfft)[self._neg_bins],
                                    np.arange(p.nfft)[self._pos_bins]], self.used_bins)
        self.n_pru = p.n_pru
        self.n_pilot = p.n_pru
        self.n_data = p.n_used - p.n_pru
        pru_base = np.arange(p.n_pru) * PRU_SUBCARRIERS
        self._pilot_pos = np.stack(
            [pru_base + (9 + 6 * l) % PRU_SUBCARRIERS for l in range(3)]
        ).astype(np.int64)
        dpos = []
        for l in range(3):
            mask = np.ones(p.n_used, dtype=bool)
            mask[self._pilot_pos[l]] = False
            dpos.append(np.flatnonzero(mask))
        self._data_pos = np.stack(dpos).astype(np.int64)

    # ---- indices -------------------------------------------------------------------------
    def pilot_positions(self, l: int) -> np.ndarray:
        """Positions (into the used-subcarrier array) of the pilots of symbol ``l``."""
        return self._pilot_pos[l % 3]

    def data_positions(self, l: int) -> np.ndarray:
        """Positions (into the used-subcarrier array) of the data subcarriers of symbol ``l``."""
        return self._data_pos[l % 3]

    def pilot_values(self, n_sym: int) -> np.ndarray:
        """(n_sym, n_pilot) float32 BPSK pilot values (already boosted) for symbols 0..n_sym-1."""
        table = self._pilot_table
        if n_sym > table.shape[0]:
            self._extend_pilots(n_sym)
            table = self._pilot_table
        return table[:n_sym]

    @cached_property
    def _pilot_table(self) -> np.ndarray:
        return self._make_pilots(64)

    def _make_pilots(self, n_sym: int) -> np.ndarray:
        bits = prbs(_PILOT_SEED, 9, n_sym * self.n_pilot)
        return (PILOT_BOOST * (1.0 - 2.0 * bits.astype(np.float32))).reshape(n_sym, self.n_pilot)

    def _extend_pilots(self, n_sym: int) -> None:
        n = max(n_sym, 2 * self._pilot_table.shape[0])
        self.__dict__["_pilot_table"] = self._make_pilots(n)

    @cached_property
    def sym_pilot_pos(self) -> np.ndarray:
        """(3, n_pilot) pilot positions for l mod 3 = 0, 1, 2."""
        return self._pilot_pos

    @cached_property
    def sym_data_pos(self) -> np.ndarray:
        """(3, n_data) data positions for l mod 3 = 0, 1, 2."""
        return self._data_pos

    # ---- OFDM ----------------------------------------------------------------------------
    def ofdm_modulate(self, X: np.ndarray) -> np.ndarray:
        """(n_sym, n_used) frequency symbols -> 1-D time samples with CP (complex64)."""
        return self.add_cp(self.ofdm_bodies(np.atleast_2d(X)))

    def ofdm_bodies(self, X: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """(n_sym, n_used) frequency symbols -> (n_sym, NFFT) complex64 time symbols without
        CP (``sqrt(NFFT) ifft``, single precision); ``head`` (n_head, NFFT) full-band rows (e.g.
        the preamble's) go first."""
        n_head = 0 if head is None else head.shape[0]
        full = np.zeros((n_head + X.shape[0], self.nfft), dtype=np.complex64)
        if n_head:
            full[:n_head] = head
        full[n_head:, self.used_bins] = X
        return sp_fft.ifft(full, axis=1, norm="ortho", overwrite_x=True)

    def add_cp(self, bodies: np.ndarray, scale: float = 1.0, limit: bool = False
               ) -> np.ndarray:
        """(n_sym, NFFT) time symbols -> 1-D burst, CP before every body, times ``scale`` and,
        with ``limit``, every sample held to magnitude <= 1 (complex64)."""
        return tx_burst(np.ascontiguousarray(bodies, np.complex64), self.cp, _NO_RAMP,
                        _NO_RAMP, _NO_FIR, float(scale), bool(limit))

    def ofdm_demodulate(self, windows: np.ndarray, head: np.ndarray | None = None,
                        rows: int | None = None, *, overwrite: bool = False) -> np.ndarray:
        """(n_sym, NFFT) time windows (CP removed) -> (n_sym, n_used) complex64 frequency
        values (``fft_rows``, single precision, norm "ortho"); ``head`` (n_head, n_used) rows
        already in the frequency domain go first (one output array instead of a concatenation
        after); ``rows``: only the first ``rows`` windows are returned (the rest are padding,
        see :func:`fft_rows_padded`). ``overwrite``: complex64 ``windows`` may be used for the
        transform's output (the receiver gives its gathered windows up, saving a copy)."""
        F = fft_rows(np.asarray(windows, _C64), ortho=True, overwrite=overwrite)
        if rows is not None:
            F = F[:rows]
        n_head = 0 if head is None else head.shape[0]
        out = np.empty((n_head + F.shape[0], self.n_used), np.complex64)
        if n_head:
            out[:n_head] = head
        # the used bins are two contiguous runs (negative frequencies, then positive ones):
        # two slice copies cost a tenth of a fancy-index gather
        k = self._neg_bins.stop - self._neg_bins.start
        out[n_head:, :k] = F[:, self._neg_bins]
        out[n_head:, k:] = F[:, self._pos_bins]
        return out

    @cached_property
    def data_power(self) -> float:
        """Mean time-domain power of a data symbol before TX scaling."""
        return (self.n_data + self.n_pilot * PILOT_BOOST**2) / self.nfft


def fft_rows(x: np.ndarray, *, inverse: bool = False, ortho: bool = False,
             overwrite: bool = False) -> np.ndarray:
    """``scipy.fft.fft`` (``ifft`` with ``inverse``) of ``x`` along its last axis, ``norm``
    "ortho" or the default, the same values bit for bit: for a C-contiguous complex64 array
    the pocketfft transform that scipy.fft runs is called directly, which drops scipy's
    backend dispatch and argument handling (~9 us of a 12.5 us call for one 256-point row;
    a burst's receive path makes about six). ``overwrite``: ``x`` may be used for the output.
    Honours ``scipy.fft.set_workers``."""
    if (_pocketfft_c2c is None or x.dtype != _C64 or not x.flags.carray or x.ndim == 0
            or x.shape[-1] < 1):
        fn = sp_fft.ifft if inverse else sp_fft.fft
        return fn(x, norm="ortho" if ortho else None, overwrite_x=overwrite)
    # pocketfft's normalisation codes: 0 none, 1 by 1/sqrt(n), 2 by 1/n
    norm = 1 if ortho else (2 if inverse else 0)
    return _pocketfft_c2c(x, (x.ndim - 1,), not inverse, norm, x if overwrite else None,
                          _pocketfft_workers(None))  # scipy.fft.set_workers' value


def fft_rows_padded(n: int) -> int:
    """Rows to transform for ``n`` windows: pocketfft (scipy.fft) runs 4 rows at a time in
    vector registers and the 1-3 left over one by one at about twice the cost per row, so 2 or
    3 left over are cheaper padded to 4 (2048 points, one thread: 3 rows 37 us, 4 rows 27 us;
    7 rows 61 us, 8 rows 46 us); 1 left over is not (5 rows 38 us, 8 rows 46 us)."""
    return n + (4 - n % 4) % 4 if n % 4 >= 2 else n
