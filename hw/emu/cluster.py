"""Start several emulated Plutos sharing one simulated air, in-process.

``start_emulators(3, EmulatorConfig(sample_rate=2.8e6, snr_db=25))`` is a context manager yielding
an :class:`EmulatorCluster` whose ``uris`` are ``ip:127.0.0.1:PORT`` strings ready for
``adi.Pluto(uri)`` / ``hw.pluto.PlutoRadio(uri)`` / ``relaysec trial --backend pluto --uris ...``.
``relaysec emulate`` is the same thing as a command.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from hw.emu.ad9361 import PlutoContext
from hw.emu.air import Air, MediumPath
from hw.emu.errors import EmulatorError
from hw.emu.server import PlutoServer
from hw.loopback import Medium, WallClock
from hw.sigmf import SigMFRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulated radios and their shared air are set up.

    ``sample_rate``: the air's rate (S/s, an integer the AD9361 accepts); each radio starts
    configured at it. ``clock``: ``"wall"`` (the air advances with the wall clock at
    ``sample_rate * speed``; the realistic rehearsal) or ``"sim"`` (the air advances only when
    radios read: fast, for unit tests with one reader at a time). ``snr_db``/``channel``/
    ``fading``: every link between two radios; ``self_snr_db``: each radio hearing its own TX
    (a cabled or nearby TX/RX pair), default = ``snr_db``. ``ppm``: crystal error of each radio
    (CFO and SFO), one value per radio or a single value for all. ``base_port``: first TCP port
    (``0`` = any free ports). ``names``: radio names (default ``pluto0..``). ``record_dir``:
    record what each radio's clients received as SigMF (``DIR/NAME.sigmf-*``, no annotations).
    """

    sample_rate: float = 2_800_000
    seed: int = 0
    clock: str = "wall"
    speed: float = 1.0
    snr_db: float = 30.0
    self_snr_db: float | None = None
    channel: str = "awgn"
    fading: str = "block"
    ppm: float | tuple[float, ...] = 0.0
    lo_hz: float = 2.4e9
    host: str = "127.0.0.1"
    base_port: int = 0
    names: tuple[str, ...] = ()
    rx_gain_ref_db: float = 30.0
    tx_gain_ref_db: float = -10.0
    record_dir: str | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain dict (for SigMF metadata and reports)."""
        return asdict(self)


@dataclass
class EmulatorCluster:
    """Running emulated radios: their servers, the shared medium and the URIs."""

    config: EmulatorConfig
    medium: Medium
    air: Air
    servers: list[PlutoServer]

    @property
    def uris(self) -> list[str]:
        """``ip:HOST:PORT`` of each radio, in order."""
        return [s.uri for s in self.servers]

    def __iter__(self) -> Iterator[str]:
        return iter(self.uris)

    def __len__(self) -> int:
        return len(self.servers)

    def close(self) -> None:
        """Stop every server and the medium (idempotent)."""
        for s in self.servers:
            s.close()
        self.medium.close()


def _serial(name: str, seed: int) -> str:
    return hashlib.sha256(f"relaysec-emu/{seed}/{name}".encode()).hexdigest()[:34]


def create_emulators(n: int, config: EmulatorConfig | None = None) -> EmulatorCluster:
    """Start ``n`` emulated Plutos on one medium (caller closes the cluster)."""
    cfg = config or EmulatorConfig()
    if n < 1:
        raise EmulatorError(f"need at least one radio, got {n}")
    rate = round(cfg.sample_rate)
    if rate != cfg.sample_rate:
        raise EmulatorError(f"sample_rate must be a whole number of S/s, got {cfg.sample_rate}")
    names = list(cfg.names) or [f"pluto{i}" for i in range(n)]
    if len(names) != n or len(set(names)) != n:
        raise EmulatorError(f"need {n} distinct radio names, got {names}")
    ppms = list(cfg.ppm) if isinstance(cfg.ppm, tuple) else [cfg.ppm] * n
    if len(ppms) != n:
        raise EmulatorError(f"need {n} ppm values, got {len(ppms)}")
    if cfg.clock == "wall":
        clock: object = WallClock(rate, speed=cfg.speed)
    elif cfg.clock == "sim":
        clock = "sim"
    else:
        raise EmulatorError(f"clock must be 'wall' or 'sim', got {cfg.clock!r}")
    # rx_backlog: the medium's own overflow guard must not pre-empt the kernel-queue model
    medium = Medium(rate, seed=cfg.seed, clock=clock,  # type: ignore[arg-type]
                    rx_backlog=3.0 * rate)
    air = Air(medium)
    servers: list[PlutoServer] = []
    try:
        radios = [medium.add_radio(name, lo_hz=cfg.lo_hz, ppm=p)
                  for name, p in zip(names, ppms, strict=True)]
        self_snr = cfg.snr_db if cfg.self_snr_db is None else cfg.self_snr_db
        for i, a in enumerate(names):
            medium.set_link(a, a, snr_db=self_snr, channel=cfg.channel, fading=cfg.fading)
            for b in names[i + 1:]:
                medium.set_link(a, b, snr_db=cfg.snr_db, channel=cfg.channel, fading=cfg.fading)
        for i, (name, radio) in enumerate(zip(names, radios, strict=True)):
            ctx = PlutoContext.default()
            ctx.context_attrs = [(k, _serial(name, cfg.seed) if k == "hw_serial" else v)
                                 for k, v in ctx.context_attrs]
            recorder = None
            if cfg.record_dir is not None:
                recorder = SigMFRecorder(
                    Path(cfg.record_dir) / name, sample_rate=rate, frequency_hz=cfg.lo_hz,
                    seed=cfg.seed, config=cfg.as_dict(), radio=name,
                    hw="relaysec emulated ADALM-Pluto (hw.emu)",
                    description=f"what the clients of emulated radio {name} received")
            path = MediumPath(radio, air, seed=cfg.seed + i, rx_gain_ref_db=cfg.rx_gain_ref_db,
                              tx_gain_ref_db=cfg.tx_gain_ref_db, recorder=recorder)
            port = cfg.base_port + i if cfg.base_port else 0
            srv = PlutoServer(ctx, path, host=cfg.host, port=port, name=name)
            ctx.preset(sample_rate=rate, lo_hz=int(cfg.lo_hz))
            servers.append(srv.start())
    except Exception:
        for s in servers:
            s.close()
        medium.close()
        raise
    log.info("emulated Plutos %s at %s", names, [s.uri for s in servers])
    return EmulatorCluster(cfg, medium, air, servers)


@contextmanager
def start_emulators(n: int, config: EmulatorConfig | None = None) -> Iterator[EmulatorCluster]:
    """Context manager: ``n`` emulated Plutos on one air; yields the cluster (``.uris``)."""
    cluster = create_emulators(n, config)
    try:
        yield cluster
    finally:
        cluster.close()
