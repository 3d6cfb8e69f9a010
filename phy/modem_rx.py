"""The receive steps every burst format of this PHY shares: burst search, synchronisation,
carrier-offset, channel and noise estimates, pilot tracking, equalisation and the robust (header,
A-MAP) blocks (the format and the transmit side: :mod:`phy.modem`).

One mixin, :class:`ReceiverCore` (mixed into ``phy.modem._BurstCore``, which holds the state it
names, so shared by :class:`phy.BurstModem` and :class:`phy.zone.ZoneModem`): it finds bursts
and turns a preamble and the symbols after it into equalised subcarriers and robust-block bits.
The BurstModem's own decoding of a burst's header and data (``BurstReceiver``, ``Burst``) is
:mod:`phy.modem_decode`, whose names stay importable from here. Kept apart from the transmitter
because receiving changes for different reasons (estimation, speed) than the format and its
transmission. :mod:`phy.modem` re-exports the public names and the private ones other modules
import.
"""
from __future__ import annotations

import cmath
import math
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple, Protocol, TypeVar

import numpy as np

from phy import qam
from phy.errors import PhyInputError
from phy.estimation import PDP_NOISE_DB, PDP_REL_DB, _geometry_of, lmmse_estimate
from phy.grid import ResourceGrid, fft_rows_padded
from phy.interleaver import inverse_permutation
from phy.kernels import (
    equalize,
    gather_windows,
    phase_trend,
    preamble_estimate,
    sum_iq,
    track_phase_wls,
)
from phy.modem_format import _fec, _pad_bits
from phy.numerology import Profile
from phy.shaping import window_length
from phy.sync import (
    FIRST_PATH_DB,
    INT_CFO_MAX_BINS,
    Preamble,
    _int_cfo_tables,
    _timing_tables,
    detect,
    detect_in,
)
from phy.sync_kernels import cp_phase

_MAX_SNR_DB = 60.0
_PREAMBLE_ROWS = 16
"""Most FFT windows the preamble's transform takes (S&C, long, then the burst's symbols, as
many as the buffer holds; at least 3): a zone burst of the default scenario is 8-12 symbols
long (longer ones take the rest in a transform of their own). A short burst's header, A-MAP
and data windows then come from the preamble's one transform (each later symbol is a row of
the same gather at the same carrier offset): the transforms they save cost more than the rows
a beacon or the buffer's tail leaves unused."""
_CP_GUARD = 6
"""CP samples left out after the echoes and the transmit ramp (the transmit low-pass's taps
beyond 6 samples are a few per cent)."""
_CP_MIN = 12
"""Fewest clean CP samples worth measuring a symbol's phase drift on."""
_DRIFT_MIN_ICI = 1e-3
"""Drift interference (of the signal power) below which the CP measurement is not trusted: a
strong echo that reaches into a short CP (2 us on CP 1/16) reads as a ~0.07 rad drift, 4e-4."""
_DRIFT_MAX_SNR_DB = 40.0
"""Above this SNR a symbol's phase drift is judged as at this SNR: no MCS needs more, and the
transmit low-pass leaves the short CPs (P2.5, CP 1/16) a few milliradians short of cyclic."""


class _Located(Protocol):
    """A burst found in a buffer: where it starts and how long it is (samples)."""

    @property
    def start(self) -> int: ...

    @property
    def n_samples(self) -> int: ...


_Found = TypeVar("_Found", bound=_Located)


class _Sync(NamedTuple):
    """What the preamble tells about one burst: where it starts (sample of the S&C symbol's
    CP), the carrier offset (Hz), the channel ``H`` (n_used,), the noise variance, the SNR, and
    the FFT windows ``Y`` (n_rows, n_used) of the S&C symbol, the long symbol, the first
    symbol after the preamble (``l = 0``) and the symbols after it that the buffer held, up to
    :data:`_PREAMBLE_ROWS` rows (at least 3): row ``2 + l`` is symbol ``l`` at this carrier
    offset; ``sc_phase``: the S&C symbol's common phase
    relative to the long symbol's (the phase trend's point at ``l = -2``; the long symbol is
    ``l = -1``, phase 0); ``echo``: samples after the first path that the channel's delay
    window reaches (how much of each CP is inter-symbol interference). A named tuple: built
    once per burst, where a frozen dataclass's per-field ``object.__setattr__`` cost
    microseconds."""

    start: int
    cfo: float
    H: np.ndarray
    sigma2: float
    snr_db: float
    Y: np.ndarray
    sc_phase: float = 0.0
    echo: float = 0.0


class _Timing(NamedTuple):
    """What :meth:`ReceiverCore._presync` finds for a candidate: the fractional CFO (Hz), the
    integer CFO (bins), the sample where the long symbol's useful part starts, and the
    preamble's FFT windows (S&C, long, header and the symbols after it the buffer holds, as
    ``_Sync.Y``; None when not taken)."""

    frac: float
    ib: int
    t_long: int
    Y: np.ndarray | None
    est: tuple | None = None
    """(LS estimate, S&C phase sum, channel power, noise variance, delay window) or None."""


class ReceiverCore:
    """The receive side every burst format of this PHY shares (mixed into
    ``phy.modem._BurstCore``, which holds the state named below): the burst search,
    synchronisation, channel and noise estimates, pilot tracking and equalisation, and the
    decoding of the strongly coded QPSK blocks (header, A-MAP). Symbol numbers ``l`` count from
    the first symbol after the preamble (``l = 0``)."""

    profile: Profile
    grid: ResourceGrid
    pre: Preamble
    backoff: int
    _sym_len: int
    _fidx: np.ndarray
    _delay_search: tuple[int, int]
    _timing_search: tuple[int, int]
    _c_var: float
    _even: np.ndarray
    _odd: np.ndarray
    _long_inv: np.ndarray
    _sc_inv: np.ndarray
    _ls_noise_factor: float
    _tables: dict[tuple[int, int] | bytes, tuple[np.ndarray, np.ndarray, np.ndarray]]
    _front: tuple | None
    _trend_xs: dict[int, np.ndarray]

    # ---- RX ------------------------------------------------------------------------------
    def _scan(self, iq: np.ndarray,
              decode_at: Callable[[np.ndarray, int, _Timing | None], _Found | None],
              known: Sequence[tuple[int, int]] = (),
              starts: Sequence[tuple[int, int]] | None = None) -> list[_Found]:
        """Validate ``iq``, remove its mean (receiver DC offset) and call ``decode_at(r, coarse,
        timing)`` for every preamble candidate not inside a burst already found, in buffer
        order; ``timing`` is the candidate's :meth:`_presync` result (None: not computed).
        ``known``: ``(start, end)`` samples of bursts decoded before (a receiver scanning
        overlapping buffers): a candidate from a CP before one's start to its end is not
        decoded again. ``starts``: ``(lo, hi)`` samples where a burst may start (None:
        anywhere): preambles are searched there only (:func:`phy.sync.detect_in`)."""
        spans = _spans("known", known, 1)
        where = None if starts is None else _spans("starts", starts, 0)
        r, total = _validate_iq(iq)
        if r.size < 3 * self._sym_len:
            return []
        # Receiver DC offset (LO leakage): the bursts carry nothing at DC, so the buffer mean is
        # the offset. Left in, a DC term is perfectly periodic (it fools the S&C detector) and
        # after CFO removal it becomes a tone between bins that leaks into every subcarrier.
        dc = total / r.size
        if abs(dc) > 0.0:
            r = r - np.complex64(dc)
        out: list[_Found] = []
        consumed = -1
        cands = detect(r, self.grid) if where is None else detect_in(r, self.grid, where)
        if spans:
            ng = self.grid.cp
            cands = [c for c in cands if not any(a - ng <= c < b - ng for a, b in spans)]
        timing = self._presync(r, cands)
        for cand in cands:
            if cand < consumed:
                continue
            b = decode_at(r, cand, timing.get(cand))
            if b is not None:
                out.append(b)
                consumed = b.start + b.n_samples - self.grid.cp
        return out

    def _windows(self, r: np.ndarray, first: int, n_sym: int, cfo: float,
                 head: np.ndarray | None = None) -> np.ndarray:
        """FFT windows (CP skipped, back-off applied) of n_sym symbols starting at sample
        ``first`` (burst-symbol CP start), CFO-derotated, -> (n_sym, n_used); ``head`` rows
        (frequency domain) go first."""
        g = self.grid
        fs = self.profile.sample_rate
        s0 = first + g.cp - self.backoff
        ns = self._sym_len
        # a few more windows when that makes a cheaper transform (fft_rows_padded), if the
        # buffer holds them (their values are dropped)
        n_fft = fft_rows_padded(n_sym)
        if s0 + (n_fft - 1) * ns + g.nfft > r.size:
            n_fft = n_sym
        w = gather_windows(r, s0, n_fft, ns, g.nfft, 2 * np.pi * cfo / fs)
        return self._demodulate(w, head, n_sym)

    def _demodulate(self, windows: np.ndarray, head: np.ndarray | None = None,
                    rows: int | None = None) -> np.ndarray:
        """:meth:`phy.grid.ResourceGrid.ofdm_demodulate` of complex64 ``windows`` (n_sym, NFFT),
        with the transform written over ``windows``, which the caller gives up."""
        return self.grid.ofdm_demodulate(windows, head, rows, overwrite=True)

    def _presync(self, r: np.ndarray, cands: list[int]) -> dict[int, _Timing]:
        """Fractional CFO, integer CFO (bins), the long symbol's start and, where the buffer
        holds them, the preamble's windows and estimates (what :meth:`_sync` begins with) of
        every candidate, in one compiled call (:func:`phy.presync_kernels.presync`: the S&C
        phase, the integer-CFO search, fine timing, the preamble's windows, the LS estimate,
        the noise and the delay window, one candidate after the other). Candidates too close
        to the buffer's end are left out."""
        from phy.presync_kernels import SKIPPED, WINDOWED, presync

        if not cands:
            return {}
        cs = np.fromiter(dict.fromkeys(cands), np.int64)  # each candidate once, in order
        ints, reals, Y, H = presync(r, cs, *self._front_tables())
        out: dict[int, _Timing] = {}
        for i, (cand, (st, ib, t_long, first, rows), (frac, rr, ri, power, sigma2, w0, w1)) in \
                enumerate(zip(cs.tolist(), ints.tolist(), reals.tolist(), strict=True)):
            if st == SKIPPED:
                continue
            y = est = None
            if st >= WINDOWED:
                y = Y[first: first + rows]
                if st > WINDOWED:
                    est = (H[i], complex(rr, ri), power, sigma2, (w0, w1))
            out[cand] = _Timing(frac, ib, t_long, y, est)
        return out

    def _front_tables(self) -> tuple:
        """The receiver's constants and tables as :func:`phy.presync_kernels.presync` takes
        them (after ``r`` and the candidates), made on the first receive."""
        if self._front is None:
            g, n = self.grid, self.grid.nfft
            n_neg = int(np.count_nonzero(g.freq_index < 0))  # the used bins below DC
            shifts, c = _int_cfo_tables(self.pre.long, INT_CFO_MAX_BINS)
            x_shifted = np.empty((shifts.size, n), np.complex64)
            taps = np.zeros(0, np.int64)
            for i, sh in enumerate(shifts.tolist()):
                x_shifted[i], taps = _timing_tables(self.pre, g, *self._timing_search, sh)
            bins, taper, energy = _geometry_of(g.freq_index, n)[:3]
            geom = np.array([n, g.cp, self._sym_len, self.backoff, _PREAMBLE_ROWS, n_neg,
                             self._timing_search[0], n // 16, *self._delay_search], np.int64)
            consts = np.array([self.profile.sample_rate, g.profile.subcarrier_spacing,
                               10 ** (FIRST_PATH_DB / 10), 10 ** (-_MAX_SNR_DB / 10),
                               self._ls_noise_factor, 10 ** (-PDP_REL_DB / 10), energy,
                               10 ** (PDP_NOISE_DB / 10)])
            # writable copies: a read-only array is another numba type (a second compile)
            self._front = tuple(np.array(a) for a in (
                geom, consts, g.used_bins, shifts, c, x_shifted, taps, self._long_inv,
                self._sc_inv, self._even, self._odd, bins.astype(np.int64), taper))
        return self._front

    def _preamble_estimate(self, Y: np.ndarray
                           ) -> tuple[np.ndarray, complex, float, float] | None:
        """From the preamble's windows ``Y`` (S&C, long, ...): the LS estimate, the S&C
        symbol's common phase (as a complex sum), the mean channel power and the noise
        variance (floored 60 dB below the power); None when those are not finite and positive
        (extreme sample values: no burst to decode)."""
        H_ls, rot, total, noise = preamble_estimate(Y[0], Y[1], self._long_inv, self._sc_inv,
                                                    self._even, self._odd)
        if not math.isfinite(total) or total <= 0.0:
            return None
        sigma2 = max(noise, total * 10 ** (-_MAX_SNR_DB / 10))
        if not (math.isfinite(sigma2) and sigma2 > 0.0):
            return None
        return H_ls, complex(rot), total, sigma2

    def _sync(self, r: np.ndarray, coarse: int,
              timing: _Timing | None = None) -> _Sync | None:
        """Timing, CFO, channel and noise from the preamble at candidate ``coarse``; None when
        there is no usable preamble there (or the burst's first 3 symbols leave the buffer).
        ``timing``: the candidate's :meth:`_presync` result, else computed here."""
        g = self.grid
        n, ng, ns = g.nfft, g.cp, self._sym_len
        coarse = max(coarse, 0)
        if coarse + 3 * ns + 2 * ng > r.size:
            return None
        if timing is None:
            timing = self._presync(r, [coarse]).get(coarse)
            if timing is None:
                return None
        frac, ib, t_long, Y, _ = timing
        cfo = frac + ib * g.profile.subcarrier_spacing
        start = t_long - ns - ng
        if start < 0 or start + 3 * ns > r.size:
            return None
        if Y is None:
            Y = self._windows(r, start, 3, cfo)
        # LS estimate, common phase of the S&C symbol, channel power, noise (one kernel:
        # estimation.preamble_ls and estimation.noise_variance as a single pass), and the
        # channel's delay window when _presync found them
        if timing.est is not None:
            H_ls, rot, _, sigma2, win = timing.est
        else:
            e = self._preamble_estimate(Y)
            if e is None:
                return None  # extreme sample values (overflow to inf): no burst to decode here
            H_ls, rot, _, sigma2 = e
            win = None
        noise_factor = self._ls_noise_factor
        sc_phase = cmath.phase(rot) if cmath.isfinite(rot) else 0.0
        H, (_, t1) = lmmse_estimate(H_ls, g.freq_index, n, sigma2 * noise_factor,
                                    *self._delay_search, window=win)
        sig = _mean_power(H)
        if not (math.isfinite(sig) and sig > 0.0):
            return None
        return _Sync(int(start), float(cfo), H, sigma2, 10 * math.log10(sig / sigma2), Y,
                     sc_phase, max(0.0, t1 - self.backoff))

    def _track(self, Y: np.ndarray, H: np.ndarray, ls: np.ndarray, sigma2: float
               ) -> tuple[np.ndarray, np.ndarray, float]:
        """Pilot phase model (CPE, slope per symbol, drift) of symbols ``ls`` (any increasing
        subset of the burst: the drift model counts time by ``l``); the drift is the MMSE
        estimate under the clock-offset prior given the noise variance ``sigma2``
        (:func:`phy.estimation.track_phase_mmse`, whose kernel is called directly)."""
        pos, val, _ = self._sym_tables(ls)
        cpe, bl, c = track_phase_wls(_c(Y, np.complex64), _c(H, np.complex64),
                                     _c(ls, np.int64), pos, val, self._fidx, float(sigma2),
                                     self._c_var)
        return cpe, bl, float(c)

    def _sym_tables(self, ls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pilot positions, pilot values and data positions of symbols ``ls`` (rows per
        symbol, int64 / float32 / int64), kept per symbol set (header, header + data, data;
        a zone's header, MAP and allocations' symbols): a gather of every row per burst
        otherwise."""
        l0, n = int(ls[0]), int(ls.size)
        # a run of consecutive symbols by its ends; any other set (a zone's data symbols
        # after a gap) by its numbers as int64 bytes
        key: tuple[int, int] | bytes = ((l0, n) if int(ls[-1]) - l0 == n - 1
                                        else ls.astype(np.int64, copy=False).tobytes())
        hit = self._tables.get(key)
        if hit is None:
            g = self.grid
            hit = (g.sym_pilot_pos[ls % 3], g.pilot_values(int(ls[-1]) + 1)[ls],
                   g.sym_data_pos[ls % 3])
            if len(self._tables) >= 256:
                self._tables.clear()
            # left writable (and not written): a read-only array is another numba type, and
            # the uncached tables of other symbol sets would compile every kernel again
            self._tables[key] = hit
        return hit

    def _equalise(self, Y: np.ndarray, H: np.ndarray, sigma2: float, ls: np.ndarray,
                  cpe: np.ndarray, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Data subcarriers of symbols ``ls`` -> (z, w) flattened in transmit order."""
        dpos = self._sym_tables(ls)[2]
        return equalize(_c(Y, np.complex64), H, dpos, _c(cpe, np.float64),
                        _c(slope, np.float64), self._fidx, 1.0 / sigma2)

    def _robust_decode(self, Y: np.ndarray, H: np.ndarray, sigma2: float, ls: np.ndarray,
                       n_bits: int, skip: int = 0
                       ) -> tuple[np.ndarray, float, float, np.ndarray]:
        """Decode the strongly coded QPSK block (header, A-MAP) in the windows ``Y`` of
        symbols ``ls``: track the pilots of all of them, equalise all but the first ``skip``,
        combine the repeated code word's LLRs and Viterbi-decode ``n_bits`` bits, in one
        compiled call (:mod:`phy.robust_kernels`). Returns (bits, the EVM's numerator and
        denominator: squared error to the nearest QPSK point weighted by the LLR weights, and
        the weights; the CPE of every symbol of ``ls``)."""
        pos, val, dpos = self._sym_tables(ls)
        n_llr = 2 * (ls.size - skip) * dpos.shape[1]
        nco = _fec("1/2").coded_length(n_bits)
        dest, sign = _robust_map(2 * self.grid.n_data, n_llr, nco)
        if dest.size != n_llr:  # the kernel does not bounds-check: whole symbols only
            raise PhyInputError(f"{n_llr // 2} symbols are not whole robust-block symbols")
        alpha, beta, nearest, _ = qam.demap_tables(1)
        bits, e_num, e_den, cpe, _ = _robust_kernel()(
            _c(Y, np.complex64), _c(H, np.complex64), _c(ls, np.int64), pos, val, self._fidx,
            float(sigma2), self._c_var, skip, dpos, dest, sign, nco, alpha, beta, nearest,
            n_bits)
        return bits, e_num, e_den, cpe

    def _trend_x(self, n: int) -> np.ndarray:
        """``[-2, -1, 0, 1, .., n-1]`` as float64 (not to be written): the symbol numbers of the S&C
        symbol, the long symbol and ``n`` symbols from the header on, for :meth:`_refine_cfo`."""
        x = self._trend_xs.get(n)
        if x is None:
            x = np.arange(-2, n, dtype=np.float64)  # writable, as other callers' (numba type)
            if len(self._trend_xs) >= 256:
                self._trend_xs.clear()
            self._trend_xs[n] = x
        return x

    def _refine_cfo(self, cfo: float, cpe: np.ndarray, ls: np.ndarray) -> float:
        """The carrier offset refined by the trend of the per-symbol CPE over symbols ``ls``."""
        trend = phase_trend(np.ascontiguousarray(cpe, np.float64),
                            np.ascontiguousarray(ls, np.float64))  # LS slope, rad/symbol
        return cfo + trend * self.profile.sample_rate / (2 * np.pi * self._sym_len)

    def _ici_matters(self, dcfo: float, snr_db: float) -> bool:
        """Whether a carrier-offset error ``dcfo`` (Hz) costs more than 0.2 dB: its
        inter-carrier interference ``(pi dcfo / df)^2 / 3`` (of the signal) above 5 % of the
        noise at ``snr_db``."""
        eps = math.pi * dcfo / self.profile.subcarrier_spacing
        return eps * eps / 3.0 * 10 ** (min(snr_db, _MAX_SNR_DB) / 10) > 0.05

    def _phase_drift(self, r: np.ndarray, first: int, n_sym: int, cfo: float, snr_db: float,
                     echo: float) -> np.ndarray | None:
        """Per symbol (``n_sym`` from the one whose CP starts at ``first``), the slope in
        rad/sample of the phase noise's drift across its FFT window, measured as the phase
        between the CP's interference-free samples and the body samples they copy (over NFFT
        samples, the carrier offset ``cfo`` taken out); None when the drift's inter-carrier
        interference (a ramp of total phase D leaves ``D^2 / 12`` of the signal power in the
        other subcarriers) would cost less than 0.2 dB at ``snr_db`` (5 % of the noise, as
        :meth:`_ici_matters`), or the CP leaves too few clean samples. Removing the ramp
        leaves about half the interference of a Wiener phase (a bridge between the ends)."""
        g = self.grid
        # the CP's first samples carry the previous symbol's echoes and the transmit ramp
        a = math.ceil(echo) + window_length(g) + _CP_GUARD
        if g.cp - a < _CP_MIN:
            return None
        # the angles less the carrier's advance, wrapped to [-pi, pi)
        d = cp_phase(r, first, n_sym, self._sym_len, g.nfft, a, g.cp,
                     2 * np.pi * cfo * g.nfft / self.profile.sample_rate)
        snr = 10 ** (min(snr_db, _DRIFT_MAX_SNR_DB) / 10)
        rho = snr * g.n_used / g.nfft  # per-sample SNR
        noise = (1.0 / rho + 0.5 / rho**2) / (g.cp - a)  # variance of each measured angle
        ici = max(float(np.dot(d, d)) / d.size - noise, 0.0) / 12.0
        if ici * snr <= 0.05 or ici <= _DRIFT_MIN_ICI:
            return None
        return d / g.nfft

    def _sfo_ppm(self, slope: float) -> float:
        """Sampling-clock offset from the fitted pilot slope drift (rad/subcarrier/symbol):
        ``c = -2 pi (drift samples per symbol) / NFFT``."""
        return -slope * self.grid.nfft / (2 * np.pi * self._sym_len) * 1e6


@lru_cache(maxsize=1)
def _robust_kernel() -> Callable[..., tuple]:
    """The robust-block kernel for the Viterbi decoder the rate-1/2 code uses here (imported
    on the first receive: compiling only that decoder's kernel)."""
    from phy.robust_kernels import decoder_kernel
    from phy.viterbi import simd_layout

    return decoder_kernel(_fec("1/2").decoder, simd_layout())


def _c(x: np.ndarray, dtype: type) -> np.ndarray:
    """``x`` as a C-contiguous array of ``dtype``, converted only when it is not one already
    (np.ascontiguousarray costs a call even then)."""
    if x.dtype == dtype and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(x, dtype)


def _mean_power(x: np.ndarray) -> float:
    """Mean ``|x|^2`` of a complex vector (one BLAS dot product, no temporaries)."""
    return float(np.vdot(x, x).real) / max(x.size, 1)


@lru_cache(maxsize=64)
def _robust_map(ncb: int, n_llr: int, nco: int) -> tuple[np.ndarray, np.ndarray]:
    """For the ``n_llr`` demapped LLRs of a robust block (whole symbols of ``ncb`` bits): the
    place in the ``nco``-bit code word each one adds to (its position after the per-symbol
    deinterleaver, modulo ``nco``: the repetitions) and the +-1 that undoes the scrambling
    there. One ``bincount`` then combines the repetitions (no deinterleaving pass). Read-only."""
    inv = inverse_permutation(ncb, 2)
    pos = (np.arange(n_llr // ncb, dtype=np.int64)[:, None] * ncb + inv[None, :]).ravel()
    dest = pos % nco
    sign = _robust_sign(n_llr)[pos]
    dest.setflags(write=False)
    sign.setflags(write=False)
    return dest, sign


@lru_cache(maxsize=64)
def _robust_sign(n: int) -> np.ndarray:
    """+-1 (float32) undoing the PRBS scrambling of the first ``n`` bits of a robust block."""
    out = (1.0 - 2.0 * _pad_bits(n)).astype(np.float32)
    out.setflags(write=False)
    return out


def _spans(name: str, spans: object, min_len: int) -> list[tuple[int, int]]:
    """``spans`` as a list of ``(a, b)`` int pairs with ``b - a >= min_len``, else
    :class:`PhyInputError` naming the argument ``name``."""
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Iterable):
        raise PhyInputError(f"{name} must be a sequence of (a, b) pairs, got {spans!r}")
    out = []
    for span in spans:
        if not (isinstance(span, tuple) and len(span) == 2
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                        for v in span) and span[1] - span[0] >= min_len):
            raise PhyInputError(f"{name} spans are (a, b) ints with b - a >= {min_len}, "
                                f"got {span!r}")
        out.append((int(span[0]), int(span[1])))
    return out


def _validate_iq(iq: object) -> tuple[np.ndarray, complex]:
    """``iq`` as a contiguous complex64 array and the float64 sum of its samples (one pass that
    also proves every sample finite), else :class:`PhyInputError`."""
    if not isinstance(iq, np.ndarray):
        raise PhyInputError(f"iq must be a numpy array, got {type(iq).__name__}")
    if iq.ndim != 1:
        raise PhyInputError(f"iq must be 1-D, got shape {iq.shape}")
    if iq.dtype.kind != "c":  # np.issubdtype(dtype, np.complexfloating), a call cheaper
        raise PhyInputError(f"iq must be complex64/complex128 samples, got dtype {iq.dtype}")
    r = np.ascontiguousarray(iq, dtype=np.complex64)
    total = sum_iq(r)
    # a float64 sum of float32 values is finite exactly when every value is
    if not (math.isfinite(total.real) and math.isfinite(total.imag)):
        bad = int(np.count_nonzero(~np.isfinite(r.view(np.float32)).reshape(-1, 2).all(axis=1)))
        raise PhyInputError(f"iq contains {bad} non-finite (NaN/inf) samples")
    return r, total
