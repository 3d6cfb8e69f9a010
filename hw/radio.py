"""The radio interface every backend implements, its counters and shared sample helpers.

Modelled on srsRAN's radio abstraction: one small table of operations (transmit, receive, tune,
close) behind which the loopback medium and the ADALM-Pluto backend are interchangeable. The node
runtime only ever talks to :class:`Radio`.

Sample scale (binding for every backend): complex float samples whose I and Q each lie in
[-1.0, 1.0] are *full scale* of the AD9363's 12-bit converters. Code ``c`` (-2048..2047) of the
ADC is the float ``c / 2048``; on transmit, values beyond full scale are clipped per component
(and counted in :attr:`RadioStats.clipped`), as a real DAC would saturate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from typing_extensions import Self

import numpy as np

from hw.errors import RadioConfigError

#: One ADC/DAC code in float full-scale units (12-bit converter, codes -2048..2047).
LSB = 1.0 / 2048.0
#: Largest positive code in float units.
FULL_SCALE_MAX = 2047.0 / 2048.0


@dataclass
class RadioStats:
    """Counters a radio keeps for the runtime and reports.

    ``overflows``: receive-side events where samples were lost because the host did not read fast
    enough (or a transfer failed); ``underflows``: transmit-side starvation events; ``dropped``:
    samples lost in those events; ``clipped``: samples (I or Q component) that hit full scale on
    transmit or receive. The other fields count traffic.
    """

    overflows: int = 0
    underflows: int = 0
    dropped: int = 0
    clipped: int = 0
    tx_bursts: int = 0
    tx_samples: int = 0
    rx_calls: int = 0
    rx_samples: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict of the counters (for JSON reports)."""
        return asdict(self)


@dataclass(frozen=True)
class RadioCaps:
    """Optional abilities of a backend, declared so the runtime never has to probe for them.

    ``timed_tx``: ``transmit(iq, at=k)`` places the burst at local RX sample index ``k`` (the
    loopback medium); without it a burst leaves "now" (a Pluto: after USB and kernel-buffer
    latency) and ``at`` must be None. ``skip``: ``skip(n)`` advances the receive cursor without
    rendering samples (a simulation shortcut; elsewhere it receives and discards).
    ``retime``: ``retime(d)`` moves the radio's frame timing by ``d`` samples (the loopback
    medium: a simulated station keeping its frame aligned to its serving station's, as a 16m
    AMS does from the DL preamble; a real radio's stream is re-timed by the runtime instead).
    ``stream``: the radio is a :class:`StreamingRadio` (continuous TX and RX with a measured
    TX->RX offset, :mod:`hw.timeline`): ``transmit(iq, at=k)`` returns whether the burst was
    placed, :meth:`StreamingRadio.tx_horizon` says how early a burst must be handed over.
    """

    timed_tx: bool = False
    skip: bool = False
    retime: bool = False
    stream: bool = False


@runtime_checkable
class Radio(Protocol):
    """A half- or full-duplex baseband radio at a fixed sample rate.

    ``transmit`` queues one burst (complex64, full scale 1.0) at the radio's current transmit time
    (or, where ``caps.timed_tx``, at local sample ``at``); ``receive(n)`` returns the next ``n``
    received samples and advances the radio's sample clock; ``skip(n)`` lets ``n`` samples pass
    (without rendering them where ``caps.skip``);
    ``tune`` changes LO / rate / gains (backends may accept extra keyword arguments); ``close``
    releases the device and is idempotent. Radios are context managers.
    """

    sample_rate: float
    stats: RadioStats
    caps: RadioCaps

    def transmit(self, iq: np.ndarray, *, at: float | None = None) -> object: ...

    def receive(self, n: int) -> np.ndarray: ...

    def skip(self, n: int) -> None: ...

    def tune(
        self,
        *,
        lo_hz: float | None = None,
        sample_rate: float | None = None,
        rx_gain_db: float | None = None,
        tx_gain_db: float | None = None,
    ) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Radio: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class StreamingRadio(Radio, Protocol):
    """A :class:`Radio` whose ``caps.stream`` is set: TX and RX stream continuously and bursts
    are placed at RX-axis sample indexes (``transmit(iq, at=k)`` returns False when ``k`` is
    already past or the offset is being measured). Only the Pluto backend streams; the loopback
    medium places bursts directly (``caps.timed_tx``) and needs none of this."""

    def tx_horizon(self) -> int | None:
        """Earliest RX index a burst can still be placed at; None while the offset is measured."""
        ...

    def track(self, placed: int, heard: int) -> None:
        """An own burst placed at RX index *placed* was heard back at *heard*."""
        ...

    def take_rx_slip(self) -> int | None:
        """RX samples lost to overflows since the last call (0: none; None: not measurable),
        so the runtime can move positions it computed on the RX axis before the loss."""
        ...

    def catch_up(self) -> int:
        """Skip the RX backlog that piled up before the runtime's first read (setup of the
        other radios and of the node); returns the samples skipped. Not a loss: call it once,
        before any RX index is used."""
        ...

    def timeline_report(self) -> dict[str, float | int | None]:
        """The timeline's offset and counters (reports)."""
        ...


class ClosingContext:
    """Mixin for backends: ``with radio:`` closes the radio on exit, whatever happened inside."""

    def close(self) -> None:  # pragma: no cover - every backend defines its own
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


GAIN_MODES = ("manual", "slow_attack", "fast_attack", "hybrid")


@dataclass(frozen=True)
class RadioConfig:
    """RF settings common to every backend (validated on construction).

    ``lo_hz`` sets both LOs unless ``tx_lo_hz``/``rx_lo_hz`` override one; ``rf_bandwidth_hz``
    ``None`` follows the sample rate; ``tx_gain_db`` is an attenuation (<= 0) as on the AD9363.
    Backend-specific limits (LO range, gain range) are checked by the backend's own config.
    """

    sample_rate: float = 2.8e6
    lo_hz: float = 2.4e9
    tx_lo_hz: float | None = None
    rx_lo_hz: float | None = None
    rf_bandwidth_hz: float | None = None
    gain_mode: str = "manual"
    rx_gain_db: float = 30.0
    tx_gain_db: float = -10.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "lo_hz"):
            value = getattr(self, name)
            if not _is_positive_number(value):
                raise RadioConfigError(f"{name} must be a positive number of Hz, got {value!r}")
        for name in ("tx_lo_hz", "rx_lo_hz", "rf_bandwidth_hz"):
            value = getattr(self, name)
            if value is not None and not _is_positive_number(value):
                raise RadioConfigError(
                    f"{name} must be a positive number of Hz or None, got {value!r}"
                )
        if self.gain_mode not in GAIN_MODES:
            raise RadioConfigError(
                f"gain_mode must be one of {', '.join(GAIN_MODES)}, got {self.gain_mode!r}"
            )
        for name in ("rx_gain_db", "tx_gain_db"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value):
                raise RadioConfigError(f"{name} must be a finite number of dB, got {value!r}")
        if self.tx_gain_db > 0:
            raise RadioConfigError(
                f"tx_gain_db is an attenuation and must be <= 0 dB, got {self.tx_gain_db}"
            )

    @property
    def effective_tx_lo_hz(self) -> float:
        """Transmit LO in Hz (``tx_lo_hz`` or ``lo_hz``)."""
        return float(self.tx_lo_hz if self.tx_lo_hz is not None else self.lo_hz)

    @property
    def effective_rx_lo_hz(self) -> float:
        """Receive LO in Hz (``rx_lo_hz`` or ``lo_hz``)."""
        return float(self.rx_lo_hz if self.rx_lo_hz is not None else self.lo_hz)

    @property
    def effective_rf_bandwidth_hz(self) -> float:
        """Analog filter bandwidth in Hz (``rf_bandwidth_hz`` or the sample rate)."""
        return float(self.rf_bandwidth_hz if self.rf_bandwidth_hz is not None else self.sample_rate)


def _is_positive_number(value: object) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and bool(np.isfinite(value))
        and float(value) > 0
    )


def as_iq(iq: object, *, what: str = "iq") -> np.ndarray:
    """Validate a burst and return it as a 1-D complex64 array (no copy when already one).

    Raises :class:`RadioConfigError` for non-1-D, non-numeric, or non-finite input: a NaN sent to
    a DAC is a bug upstream, never something to transmit.
    """
    arr = np.asarray(iq)
    if arr.ndim != 1:
        raise RadioConfigError(
            f"{what} must be a 1-D array of complex samples, got shape {arr.shape}"
        )
    if arr.dtype.kind not in "fciu" or arr.dtype.kind == "b":
        raise RadioConfigError(f"{what} must hold numbers, got dtype {arr.dtype}")
    out = np.ascontiguousarray(arr, dtype=np.complex64)
    if out.size and not np.isfinite(out.view(np.float32)).all():
        raise RadioConfigError(f"{what} contains NaN or infinite samples")
    return out


def check_count(n: object, *, what: str = "n") -> int:
    """Validate a sample count (non-negative int) and return it as int."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise RadioConfigError(f"{what} must be a non-negative integer sample count, got {n!r}")
    return int(n)


def quantise_12bit(iq: np.ndarray) -> tuple[np.ndarray, int]:
    """Round each component to the 12-bit grid and clip at full scale.

    Returns ``(samples, n_clipped)`` where ``samples`` is complex64 on the grid ``k / 2048`` with
    ``k`` in [-2048, 2047] and ``n_clipped`` counts components that were beyond full scale.
    """
    comp = np.asarray(iq, dtype=np.complex64).view(np.float32)
    codes = np.rint(comp * np.float32(2048.0))
    n_clipped = int(np.count_nonzero((codes > 2047.0) | (codes < -2048.0)))
    np.clip(codes, -2048.0, 2047.0, out=codes)
    codes *= np.float32(LSB)
    return codes.view(np.complex64), n_clipped


__all__ = [
    "FULL_SCALE_MAX",
    "GAIN_MODES",
    "LSB",
    "Radio",
    "RadioConfig",
    "RadioStats",
    "StreamingRadio",
    "as_iq",
    "check_count",
    "quantise_12bit",
]
