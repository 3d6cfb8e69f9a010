"""An emulated ADALM-Pluto behind libiio's network protocol (iiod), for CI and lab rehearsals.

The unmodified libiio C library, pylibiio and pyadi-iio talk to :class:`PlutoServer` exactly as to a
Pluto at ``ip:192.168.2.1``: ``adi.Pluto("ip:127.0.0.1:PORT")``, every setter, ``tx()``/``rx()``,
and ``iio_info``/``iio_attr``/``iio_readdev``/``iio_writedev`` all work. Several emulated radios
can share one simulated air (:func:`start_emulators`).

Public API:

- :class:`PlutoServer` — one emulated radio (attribute model + data path + TCP server).
- :class:`PlutoContext` — the AD9361 attribute model (range checks, rate propagation, XML).
- :class:`LocalLoop` — stand-alone data path (TX cabled to RX of the same radio).
- :func:`start_emulators` / :func:`create_emulators` with :class:`EmulatorConfig` — N emulated
  radios on one shared medium (:class:`EmulatorCluster`: ``.uris``, ``.medium``, ``.servers``).
- :class:`MediumPath` / :class:`Air` — a radio's buffers on a ``hw.loopback.Medium``.

See ``docs/emulator.md``.
"""

from __future__ import annotations

from hw.emu.ad9361 import PlutoContext, Settings
from hw.emu.air import Air, MediumPath
from hw.emu.cluster import EmulatorCluster, EmulatorConfig, create_emulators, start_emulators
from hw.emu.datapath import DataPath, LocalLoop
from hw.emu.errors import EmulatorConfigError, EmulatorError, IioError
from hw.emu.server import PlutoServer

__all__ = [
    "Air",
    "DataPath",
    "EmulatorCluster",
    "EmulatorConfig",
    "EmulatorConfigError",
    "EmulatorError",
    "IioError",
    "LocalLoop",
    "MediumPath",
    "PlutoContext",
    "PlutoServer",
    "Settings",
    "create_emulators",
    "start_emulators",
]
