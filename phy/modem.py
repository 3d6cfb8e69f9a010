"""The burst modem: bytes <-> complex baseband (digest §8 checklist).

Burst format (all symbols with normal CP, ``Ns = NFFT + Ng`` samples each)::

    [ S&C preamble ][ long preamble ][ header (l=0) ][ data l=1 ] ... [ data l=n ]

* header symbol: 9 bytes = ``0xA<<4 | mcs`` (version nibble + MCS index), payload length (16 bit),
  src (16 bit), dst (16 bit), CRC-16-CCITT over those 7 bytes; K=7 rate 1/2 coded (156 bits),
  repeated cyclically over the symbol's QPSK data subcarriers (>= 2.6x), XORed with a PRBS (so the
  repetition leaves no periodic, high-PAPR structure), interleaved, with pilots.
  The receiver learns the MCS from the header, so one ``BurstModem`` demodulates every MCS.
* data: payload + CRC-32 -> randomizer (seeded from src/dst) -> K=7 CC punctured to the MCS rate
  -> padding to whole symbols (PRBS bits) -> per-symbol interleaver -> Gray QAM -> data
  subcarriers; one boosted BPSK pilot per PRU per symbol.

Output scaling: subcarriers carry unit average power (pilots 4/3 amplitude), ``x = sqrt(NFFT)
ifft(X)``; the burst is shaped (raised-cosine ramps inside the CP and a length-keeping low-pass,
:mod:`phy.shaping`: no sample moves, the PSD at the Nyquist edge is >= 40 dB below the band) and
then scaled so that a data symbol has RMS ``tx_rms`` (default 0.25 of full
scale 1.0, i.e. -12 dBFS; OFDM peaks ~10-11 dB above RMS stay below the 12-bit DAC's clipping) and
any sample with ``|x| > 1`` is hard-limited to 1 (rare at the default). ``tx_rms=None`` returns
the unscaled unit-subcarrier-power signal (time-domain power ``n_used/NFFT``).

The transmit side and the sizes are here; the receive side (burst search, synchronisation,
estimation, equalisation) is :mod:`phy.modem_rx` and its decoding :mod:`phy.modem_decode`, mixed
into the classes below, and
the MCS ladder, header constants and coding pieces both sides use are :mod:`phy.modem_format`.
Their public names, and the private ones other modules import, are importable from here too.
"""

from __future__ import annotations

import logging
import math
import struct
from functools import lru_cache

import numpy as np

from phy import qam
from phy.crc import crc16, crc32
from phy.errors import PayloadTooLongError, PhyInputError
from phy.estimation import sfo_prior_var
from phy.fec import _MASK1, _MASK2
from phy.grid import ResourceGrid
from phy.interleaver import inverse_permutation
from phy.kernels import tx_encode_map
from phy.modem_decode import Burst as Burst
from phy.modem_decode import BurstReceiver
from phy.modem_decode import _decode_payload as _decode_payload
from phy.modem_decode import _rx_scatter_map as _rx_scatter_map
from phy.modem_format import HEADER_BYTES as HEADER_BYTES
from phy.modem_format import HEADER_VERSION, Mcs, _fec, _n_info, _pad_bits, get_mcs
from phy.modem_format import mcs_table as mcs_table
from phy.modem_rx import ReceiverCore
from phy.modem_rx import _robust_map as _robust_map
from phy.modem_rx import _Sync as _Sync
from phy.modem_rx import _Timing as _Timing
from phy.numerology import Profile, get_profile
from phy.randomizer import randomize, xor_sequence
from phy.shaping import TxShaper
from phy.sync import Preamble, fft_rows
from phy.tx_kernels import zone_air

log = logging.getLogger(__name__)

PREAMBLE_SYMBOLS = 2
DEFAULT_MAX_PAYLOAD = 8192
DEFAULT_TX_RMS = 0.25


class _BurstCore(ReceiverCore):
    """What every burst format of this PHY shares (private; :class:`BurstModem` and
    :class:`phy.zone.ZoneModem` build on it): the preamble, the strongly coded QPSK blocks
    (header, A-MAP), OFDM mapping with pilots, output scaling, and on the receive side the burst
    search, synchronisation, channel and noise estimates, pilot tracking and equalisation.
    Symbol numbers ``l`` count from the first symbol after the preamble (``l = 0``)."""

    def __init__(self, profile: str | Profile, *, tx_rms: float | None,
                 max_payload: int, shaping: bool = True) -> None:
        self.profile = get_profile(profile)
        if tx_rms is not None and not (0.0 < float(tx_rms) <= 1.0):
            raise PhyInputError(f"tx_rms must be in (0, 1], got {tx_rms!r}")
        if not (0 < int(max_payload) <= 0xFFFF):
            raise PhyInputError(f"max_payload must be in 1..65535, got {max_payload!r}")
        self.tx_rms = tx_rms
        self.max_payload = int(max_payload)
        self.grid = ResourceGrid(self.profile)
        self.pre = Preamble.for_grid(self.grid)
        self.scale = 1.0 if tx_rms is None else float(tx_rms) / math.sqrt(self.grid.data_power)
        self.backoff = max(2, self.grid.cp // 8)
        self._sym_len = self.grid.symbol_samples
        self._fidx = self.grid.freq_index.astype(np.float64)
        self._pre_bins = np.zeros((2, self.grid.nfft), np.complex64)
        self._pre_bins[:, self.grid.used_bins] = np.stack([self.pre.sc, self.pre.long])
        # FFT bins of the data and pilot subcarriers of symbols l = 0, 1, 2 (mod 3)
        self._data_bins = [self.grid.used_bins[self.grid.data_positions(l)] for l in range(3)]
        self._pilot_bins = [self.grid.used_bins[self.grid.pilot_positions(l)] for l in range(3)]
        ng = self.grid.cp
        # delays (samples, in the FFT window) where the channel's taps may lie: fine timing puts
        # the first path at the back-off; earlier weak paths and the CP-long tail around it
        self._delay_search = (self.backoff - ng // 2, self.backoff + ng + ng // 8)
        # delays of the long symbol's start from the integer-CFO window (a quarter CP early):
        # +-Ng around the coarse position
        self._timing_search = (-(ng - ng // 4), ng + ng // 4)
        self._c_var = sfo_prior_var(self.grid.nfft, self._sym_len)
        even = np.flatnonzero(self.pre.even)
        self._even, self._odd = even, np.flatnonzero(~self.pre.even)
        self._long_inv = (1.0 / self.pre.long).astype(np.complex64)
        self._sc_inv = (1.0 / self.pre.sc[even]).astype(np.complex64)
        # mean noise variance of the LS estimate per subcarrier in units of sigma2 (the S&C
        # symbol's subcarriers averaged in: 1/3 there), as estimation.preamble_ls gives it
        n_u = self.grid.n_used
        self._ls_noise_factor = (even.size / 3.0 + (n_u - even.size)) / n_u
        self.shaper = TxShaper(self.grid, self.backoff) if shaping else None
        self._tables: dict[tuple[int, int] | bytes,
                           tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._trend_xs: dict[int, np.ndarray] = {}
        self._tx_grid: tuple[np.ndarray, np.ndarray] | None = None
        self._pre_bodies: np.ndarray | None = None  # the preamble's rows, transformed
        #: (n_bits, n_sym) of a robust block -> its encoder's tables (_robust_into)
        self._robust_tabs: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        self._front: tuple | None = None  # the receiver's tables (ReceiverCore._front_tables)

    @property
    def sample_rate(self) -> float:
        return self.profile.sample_rate

    def _tx_grid_for(self, n_sym: int) -> tuple[np.ndarray, np.ndarray]:
        """The FFT bins of a burst of at least ``n_sym`` symbols after the preamble, with the
        preamble and every symbol's pilots placed and zeros on the data subcarriers
        (complex64, rows ``PREAMBLE_SYMBOLS + l``), and the flat index into it of each data
        subcarrier in transmit order (int64). One table, grown when a longer burst comes:
        a shorter burst's are its first rows and indices (the pilots are one sequence)."""
        hit = self._tx_grid
        if hit is not None and hit[0].shape[0] >= PREAMBLE_SYMBOLS + n_sym:
            return hit
        g = self.grid
        n = max(n_sym, 16, 0 if hit is None else 2 * (hit[0].shape[0] - PREAMBLE_SYMBOLS))
        full = np.zeros((PREAMBLE_SYMBOLS + n, g.nfft), np.complex64)
        full[:PREAMBLE_SYMBOLS] = self._pre_bins
        pv = g.pilot_values(n)
        for r in range(3):
            full[PREAMBLE_SYMBOLS + r::3, self._pilot_bins[r]] = pv[r::3]
        data_bins = np.stack(self._data_bins)[np.arange(n) % 3]  # (n, n_data)
        idx = ((PREAMBLE_SYMBOLS + np.arange(n, dtype=np.int64))[:, None] * g.nfft
               + data_bins).ravel()
        full.setflags(write=False)
        idx.setflags(write=False)
        self._tx_grid = (full, idx)
        return full, idx

    # ---- TX ------------------------------------------------------------------------------
    def _robust_symbols(self, bits: np.ndarray, n_sym: int) -> np.ndarray:
        """A strongly coded block (header, A-MAP): ``bits`` K=7 rate-1/2 coded, the code word
        repeated cyclically over ``n_sym`` QPSK symbols, XORed with a PRBS (repetition alone
        gives periodic, high-PAPR symbols that the output limiter would clip) and interleaved
        per symbol. Returns (n_sym, n_data) complex64."""
        bits = np.asarray(bits, np.uint8)
        out = np.empty((n_sym, self.grid.n_data), np.complex64)
        self._robust_into(np.packbits(bits), bits.size, out)
        return out

    def _robust_into(self, data: np.ndarray, n_bits: int, out: np.ndarray) -> None:
        """:meth:`_robust_symbols` of the first ``n_bits`` bits of ``data`` (uint8, MSB
        first) into ``out`` ((n_sym, n_data) complex64, C-contiguous rows)."""
        n_sym = out.shape[0]
        tabs = self._robust_tabs.get((n_bits, n_sym))
        if tabs is None:
            # encode, repeat, scramble, interleave and map in one kernel (_robust_tx_map: the
            # code-word bit each transmitted bit carries and the PRBS bit on it)
            code = _fec("1/2")
            src, pad = _robust_tx_map(2 * self.grid.n_data, n_sym, code.coded_length(n_bits))
            tabs = (code.input_positions(n_bits), src, pad)
            if len(self._robust_tabs) < 256:
                self._robust_tabs[(n_bits, n_sym)] = tabs
        tx_encode_map(data, n_bits, _NONE, _MASK1, _MASK2, tabs[0], _NONE, tabs[1], tabs[2], 2,
                      _QPSK, out.reshape(-1))

    def _to_air(self, qsyms: np.ndarray) -> np.ndarray:
        """(n_sym, n_data) data-subcarrier symbols of ``l = 0 ..`` -> the scaled, limited
        complex64 burst: preamble, then each symbol with its pilots, placed straight into the
        FFT bins, one inverse FFT of all symbols, then CP, shaping, scale and limiter in one
        kernel (:meth:`phy.shaping.TxShaper.burst`)."""
        g = self.grid
        n_sym = qsyms.shape[0]
        template, data_idx = self._tx_grid_for(n_sym)
        scale, limit = (1.0, False) if self.tx_rms is None else (self.scale, True)
        sh = self.shaper
        if sh is not None:   # the whole chain in one compiled call (phy.tx_kernels)
            if self._pre_bodies is None:
                self._pre_bodies = fft_rows(self._pre_bins.copy(), inverse=True, ortho=True)
            return zone_air(self._pre_bodies, template, data_idx,
                            np.ascontiguousarray(qsyms, np.complex64).reshape(-1), g.cp,
                            sh.up, sh.down, sh.fir, scale, limit)
        full = template[:PREAMBLE_SYMBOLS + n_sym].copy()
        full.reshape(-1)[data_idx[:n_sym * g.n_data]] = qsyms.reshape(-1)
        bodies = fft_rows(full, inverse=True, ortho=True, overwrite=True)
        return g.add_cp(bodies, scale, limit)


class BurstModem(BurstReceiver, _BurstCore):
    """OFDM burst modulator/demodulator for one profile; TX uses ``mcs``, RX decodes any MCS.

    Args:
        profile: profile name or alias (``phy.profiles()``), default ``"5MHz"`` (digest P5).
        mcs: MCS name for ``modulate`` (``phy.mcs_table()``).
        tx_rms: RMS of a data symbol at the output (full scale 1.0), or None for no scaling.
        shaping: window and low-pass the output (:mod:`phy.shaping`); False gives the bare
            OFDM symbols (structure tests, measuring what shaping costs).
        max_payload: largest payload in bytes (default 8192: keeps the SFO timing drift of a
            25 ppm offset under ~2.5 samples, inside the FFT-window back-off).
    """

    def __init__(self, profile: str | Profile = "5MHz", mcs: str = "QPSK-1/2", *,
                 tx_rms: float | None = DEFAULT_TX_RMS,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, shaping: bool = True) -> None:
        prof = get_profile(profile)
        self.mcs = get_mcs(mcs)
        super().__init__(prof, tx_rms=tx_rms, max_payload=max_payload, shaping=shaping)

    def __repr__(self) -> str:
        return f"BurstModem(profile={self.profile.name!r}, mcs={self.mcs.name!r})"

    # ---- sizes ---------------------------------------------------------------------------
    def _ncbps(self, mcs: Mcs) -> int:
        return self.grid.n_data * mcs.bits_per_symbol

    def data_symbols(self, n_bytes: int, mcs: str | None = None) -> int:
        """Number of data OFDM symbols for an ``n_bytes`` payload."""
        m = self.mcs if mcs is None else get_mcs(mcs)
        return -(-_coded_bits(n_bytes, m) // self._ncbps(m))

    def burst_samples(self, n_bytes: int, mcs: str | None = None) -> int:
        """Length in samples of the burst carrying ``n_bytes`` (preamble + header + data)."""
        if not (0 <= n_bytes <= self.max_payload):
            raise PayloadTooLongError(f"payload of {n_bytes} bytes; max is {self.max_payload}")
        return (PREAMBLE_SYMBOLS + 1 + self.data_symbols(n_bytes, mcs)) * self._sym_len

    def burst_seconds(self, n_bytes: int, mcs: str | None = None) -> float:
        return self.burst_samples(n_bytes, mcs) / self.sample_rate

    # ---- TX ------------------------------------------------------------------------------
    def _header_bits(self, mcs: Mcs, length: int, src: int, dst: int) -> np.ndarray:
        body = struct.pack(">BHHH", (HEADER_VERSION << 4) | mcs.index, length, src, dst)
        hdr = body + struct.pack(">H", crc16(body))
        return np.unpackbits(np.frombuffer(hdr, np.uint8))

    def modulate(self, payload: bytes, *, src: int = 0, dst: int = 0) -> np.ndarray:
        """Payload bytes -> complex64 burst samples (see the module doc for format and scale)."""
        payload = _check_payload(payload)
        _check_address("src", src)
        _check_address("dst", dst)
        if len(payload) > self.max_payload:
            raise PayloadTooLongError(
                f"payload of {len(payload)} bytes does not fit one burst (max {self.max_payload})")
        mcs = self.mcs
        g = self.grid
        ncbps = self._ncbps(mcs)
        n_coded = _coded_bits(len(payload), mcs)
        n_sym = -(-n_coded // ncbps)
        syms = np.empty((1 + n_sym, g.n_data), np.complex64)
        # header symbol (QPSK, repeated rate-1/2 code)
        syms[0] = self._robust_symbols(self._header_bits(mcs, len(payload), int(src), int(dst)),
                                       1)[0]
        # data symbols: coded, padded to whole symbols, each symbol's bits interleaved (one
        # gather of the whole block) and mapped, straight into their rows
        _encode_into(syms[1:].reshape(-1), payload, mcs, int(src), int(dst),
                     _burst_gather(n_sym, ncbps, mcs.bits_per_symbol),
                     _pad_bits(n_sym * ncbps - n_coded))
        return self._to_air(syms)


# ---- shared pieces of the data path (BurstModem and phy.zone) ------------------------------
@lru_cache(maxsize=64)
def _robust_tx_map(ncb: int, n_sym: int, nco: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of the ``n_sym * ncb`` transmitted bits of a robust block (interleaved order):
    the bit of the ``nco``-bit code word it carries (the code word repeated cyclically) and
    the PRBS bit that scrambles it there, so that ``code[src] ^ pad`` is
    ``interleave(resize(code, n_sym * ncb) ^ pad_bits(n_sym * ncb), ncb, 2)`` in one gather
    (the transmit twin of :func:`phy.modem_rx._robust_map`). Read-only."""
    inv = inverse_permutation(ncb, 2)
    pos = (np.arange(n_sym, dtype=np.int64)[:, None] * ncb + inv[None, :]).ravel()
    src = pos % nco
    pad = _pad_bits(n_sym * ncb)[pos]
    src.setflags(write=False)
    pad.setflags(write=False)
    return src, pad


def _coded_bits(n_bytes: int, mcs: Mcs) -> int:
    """Coded bits of an ``n_bytes`` payload at ``mcs`` (before padding)."""
    return _fec(mcs.code_rate).coded_length(_n_info(n_bytes))


_NONE = np.zeros(0, np.uint8)
_NONE.setflags(write=False)
_QPSK = qam.constellation(2)


@lru_cache(maxsize=256)
def _burst_gather(n_sym: int, ncbps: int, bps: int) -> np.ndarray:
    """The per-symbol interleaver of ``n_sym`` data symbols as one gather over the padded
    coded block (symbol ``l``'s bits ``l * ncbps + inv``). int64, read-only."""
    g = (np.arange(n_sym, dtype=np.int64)[:, None] * ncbps
         + inverse_permutation(ncbps, bps)[None, :]).ravel()
    g.setflags(write=False)
    return g


def _encode_into(out: np.ndarray, payload: bytes, mcs: Mcs, src: int, dst: int,
                 gather: np.ndarray, pad: np.ndarray) -> None:
    """:func:`_encode_payload`, then the ``pad`` bits after the coded ones, the interleaving
    ``gather`` and the mapping at ``mcs``, into ``out`` (complex64, ``gather.size / bps``
    points) in one kernel (:func:`phy.kernels.tx_encode_map`)."""
    data = np.frombuffer(payload + struct.pack(">I", crc32(payload)), np.uint8)
    n_info = 8 * data.size
    bps = mcs.bits_per_symbol
    tx_encode_map(data, n_info, xor_sequence(src, dst, n_info), _MASK1, _MASK2,
                  _fec(mcs.code_rate).input_positions(n_info), pad, gather, _NONE, bps,
                  qam.constellation(bps), out)


def _encode_payload(payload: bytes, mcs: Mcs, src: int, dst: int) -> np.ndarray:
    """payload + CRC-32 (big-endian) -> randomizer seeded from (src, dst) -> K=7 CC punctured to
    the MCS rate: the coded bits (uint8), before padding and interleaving."""
    info = np.unpackbits(np.frombuffer(payload + struct.pack(">I", crc32(payload)), np.uint8))
    return _fec(mcs.code_rate).encode(randomize(info, src, dst))


def _check_payload(payload: object) -> bytes:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise PhyInputError(f"payload must be bytes, got {type(payload).__name__}")
    return bytes(payload)


def _check_address(name: str, v: object) -> int:
    """A 16-bit station address (src, dst, STID), else :class:`PhyInputError`."""
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= v <= 0xFFFF:
        raise PhyInputError(f"{name} must be an int in 0..65535, got {v!r}")
    return int(v)
