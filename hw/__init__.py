"""Radios: the :class:`~hw.radio.Radio` interface and its backends.

- :mod:`hw.loopback` — a simulated medium shared by any number of radios (deterministic).
- :mod:`hw.pluto` — ADALM-Pluto over pyadi-iio; :mod:`hw.pluto_config` its configuration and
  opening (``import adi`` happens only there, lazily).
- :mod:`hw.pluto_stream` — a Pluto's streaming plumbing: the stream worker process, its rings.
- :mod:`hw.pluto_streaming` — PlutoRadio's streaming-timeline methods (a mixin);
  :mod:`hw.pluto_flags` — the AD9361 cores' sticky overflow/underflow flag bits.
- :mod:`hw.doctor` — environment checks behind ``relaysec doctor``.

``hw`` never imports ``stack``, ``phy`` or ``relaysec``.
"""

from hw.errors import (
    RadioClosedError,
    RadioConfigError,
    RadioError,
    RadioIOError,
    RadioUnavailableError,
)
from hw.loopback import LoopbackRadio, ManualClock, Medium, WallClock
from hw.pluto import PlutoConfig, PlutoRadio  # imports no libiio until a radio is opened
from hw.radio import Radio, RadioCaps, RadioConfig, RadioStats

__all__ = [
    "LoopbackRadio",
    "ManualClock",
    "Medium",
    "PlutoConfig",
    "PlutoRadio",
    "Radio",
    "RadioCaps",
    "RadioClosedError",
    "RadioConfig",
    "RadioConfigError",
    "RadioError",
    "RadioIOError",
    "RadioStats",
    "RadioUnavailableError",
    "WallClock",
]
