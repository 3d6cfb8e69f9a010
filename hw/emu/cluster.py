"""Start several emulated Plutos sharing one simulated air, in-process.

``start_emulators(3, EmulatorConfig(sample_rate=2.8e6, snr_db=25))`` is a context manager yielding
an :class:`EmulatorCluster` whose ``uris`` are ``ip:127.0.0.1:PORT`` strings ready for
``adi.Pluto(uri)`` / ``hw.pluto.PlutoRadio(uri)`` / ``relaysec trial --backend pluto --uris ...``.
``relaysec emulate`` is the same thing as a command.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import numbers
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from hw.emu.ad9361 import MAX_RATE, PlutoContext, rate_floor, solve_clock_chain
from hw.emu.air import USB_BYTES_PER_S, USB_JITTER_MS, USB_OVERHEAD_MS, Air, MediumPath
from hw.emu.errors import EmulatorConfigError, IioError
from hw.emu.server import (
    DEFAULT_MAX_BUFFER_SAMPLES,
    DEFAULT_MAX_CLIENTS,
    PlutoServer,
    check_max_buffer_samples,
    check_max_clients,
)
from hw.errors import RadioConfigError
from hw.loopback import Medium, WallClock
from hw.sigmf import SigMFRecorder

log = logging.getLogger(__name__)

#: Most radios one cluster serves (every pair is a link, so the air costs O(n^2)).
MAX_RADIOS = 32
#: The AD9363's LO range (``frequency_available`` of the device model), Hz.
LO_MIN_HZ, LO_MAX_HZ = 325_000_000, 3_800_000_000
#: Bounds of the wall-clock speed factor.
MAX_SPEED = 10.0
#: Bounds of a link's SNR and of the reference gains (dB): beyond them the numbers overflow or
#: mean nothing.
DB_LIMIT = 200.0
#: Largest crystal error accepted (ppm); a Pluto's XO is specified at 25 ppm.
MAX_PPM = 1000.0
#: Fading modes of ``hw.loopback.Medium.set_link``.
FADING_MODES = ("block", "static", "none")


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
    ``usb_mb_per_s``/``usb_overhead_ms``: the USB 2.0 model on the wall clock (MB/s each way,
    0 = instant; a fixed cost per transfer), by default the 18 MB/s measured host->Pluto
    (plutosdr-fw #61): a zone-sized push of 98 k samples takes ~22 ms to reach the air;
    ``usb_jitter_ms``: mean of an exponential extra delay per transfer (host scheduling, USB
    frame timing; docs/emulator.md "Timing model" gives the sources and why these defaults).
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
    max_clients: int = DEFAULT_MAX_CLIENTS
    max_buffer_samples: int = DEFAULT_MAX_BUFFER_SAMPLES
    usb_mb_per_s: float = USB_BYTES_PER_S / 1e6
    usb_overhead_ms: float = USB_OVERHEAD_MS
    usb_jitter_ms: float = USB_JITTER_MS

    def as_dict(self) -> dict[str, object]:
        """Plain dict (for SigMF metadata and reports)."""
        return asdict(self)

    def check(self, n: int) -> None:
        """Validate every field for a cluster of ``n`` radios; raises
        :class:`EmulatorConfigError` naming the first bad field (``radios`` for ``n``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise EmulatorConfigError("radios", f"needs at least one radio, got {n!r}")
        if n > MAX_RADIOS:
            raise EmulatorConfigError("radios", f"must be at most {MAX_RADIOS}, got {n}")
        _check_rate(self.sample_rate)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) \
                or self.seed < 0:
            raise EmulatorConfigError("seed", f"must be an integer >= 0, got {self.seed!r}")
        if self.clock not in ("wall", "sim"):
            raise EmulatorConfigError("clock", f"must be 'wall' or 'sim', got {self.clock!r}")
        speed = _finite("speed", self.speed)
        if not 0 < speed <= MAX_SPEED:
            raise EmulatorConfigError("speed", f"must be in (0, {MAX_SPEED:g}] (a wall-clock "
                                      f"factor, 1 = real time), got {self.speed!r}")
        for name in ("snr_db", "self_snr_db", "rx_gain_ref_db", "tx_gain_ref_db"):
            value = getattr(self, name)
            if value is not None and abs(_finite(name, value)) > DB_LIMIT:
                raise EmulatorConfigError(name, f"must lie within +-{DB_LIMIT:g} dB, got {value!r}")
        from hw.channels import channel_profile

        try:
            channel_profile(self.channel)
        except RadioConfigError as exc:
            raise EmulatorConfigError("channel", f"is not a channel model: {exc}") from None
        if self.fading not in FADING_MODES:
            raise EmulatorConfigError("fading", f"must be one of {', '.join(FADING_MODES)}, got "
                                      f"{self.fading!r}")
        ppms = list(self.ppm) if isinstance(self.ppm, tuple) else [self.ppm]
        if isinstance(self.ppm, tuple) and len(ppms) != n:
            raise EmulatorConfigError("ppm", f"needs one value for all radios or one per radio "
                                      f"({n}), got {len(ppms)}")
        for v in ppms:
            if abs(_finite("ppm", v)) > MAX_PPM:
                raise EmulatorConfigError("ppm", f"must lie within +-{MAX_PPM:g} ppm, got {v!r}")
        lo = _finite("lo_hz", self.lo_hz)
        if not LO_MIN_HZ <= lo <= LO_MAX_HZ:
            raise EmulatorConfigError("lo_hz", f"must lie in [{LO_MIN_HZ}, {LO_MAX_HZ}] Hz (the "
                                      f"AD9363 LO range), got {self.lo_hz!r}")
        try:
            if ipaddress.ip_address(self.host).version != 4:
                raise ValueError
        except ValueError:
            raise EmulatorConfigError("host", "must be an IPv4 address such as 127.0.0.1 (libiio "
                                      f"tries only the first address a name resolves to), got "
                                      f"{self.host!r}") from None
        port = self.base_port
        if isinstance(port, bool) or not isinstance(port, int) or not (
                port == 0 or 1 <= port <= 65536 - n):
            raise EmulatorConfigError("base_port", f"must be 0 (any free ports) or a port from 1 "
                                      f"to {65536 - n} ({n} consecutive ports), got {port!r}")
        names = list(self.names) or [f"pluto{i}" for i in range(n)]
        if len(names) != n or len(set(names)) != n or not all(
                isinstance(x, str) and x for x in names):
            raise EmulatorConfigError("names", f"needs {n} distinct radio names, got {names}")
        if self.record_dir is not None:
            d = Path(self.record_dir)
            if not d.is_dir() or not os.access(d, os.W_OK | os.X_OK):
                raise EmulatorConfigError("record_dir", f"must be a writable directory, got "
                                          f"{self.record_dir!r}")
        check_max_clients(self.max_clients)
        check_max_buffer_samples(self.max_buffer_samples)
        usb = _finite("usb_mb_per_s", self.usb_mb_per_s)
        if not 0 <= usb <= 1000:
            raise EmulatorConfigError("usb_mb_per_s", f"must be in [0, 1000] MB/s (0 = no USB "
                                      f"model), got {self.usb_mb_per_s!r}")
        overhead = _finite("usb_overhead_ms", self.usb_overhead_ms)
        if not 0 <= overhead <= 1000:
            raise EmulatorConfigError("usb_overhead_ms", f"must be in [0, 1000] ms, got "
                                      f"{self.usb_overhead_ms!r}")
        jitter = _finite("usb_jitter_ms", self.usb_jitter_ms)
        if not 0 <= jitter <= 1000:
            raise EmulatorConfigError("usb_jitter_ms", f"must be in [0, 1000] ms, got "
                                      f"{self.usb_jitter_ms!r}")


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise EmulatorConfigError(name, f"must be a finite number, got {value!r}")
    return float(value)


def _check_rate(value: object) -> int:
    rate = _finite("sample_rate", value)
    if rate <= 0 or rate != round(rate):
        raise EmulatorConfigError("sample_rate", f"must be a positive whole number of S/s, got "
                                  f"{value!r}")
    rate_i = round(rate)
    if not rate_floor(4) <= rate_i <= MAX_RATE:
        raise EmulatorConfigError("sample_rate", f"must lie in [{rate_floor(4)}, {MAX_RATE}] S/s "
                                  f"(what the AD9363 runs, with its FIR), got {value!r}")
    decimation = 1 if rate_i >= rate_floor(1) else 4  # preset() loads a /4 FIR below
    try:
        solve_clock_chain(rate_i, decimation)
    except IioError as exc:
        raise EmulatorConfigError("sample_rate", f"{value!r} has no AD9363 clock chain "
                                  f"({exc.args[0]})") from None
    return rate_i


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


def _warm_medium() -> None:
    """Load the medium's compiled kernels now: on the wall clock the first READBUF would
    otherwise pay it (~0.5 s from numba's cache) while the air runs on, and the radio's
    first reads would overflow its kernel queue."""
    try:
        from hw import _medium
    except ImportError:  # an older medium without compiled kernels: nothing to load
        return
    _medium.warm_up()


def create_emulators(n: int, config: EmulatorConfig | None = None) -> EmulatorCluster:
    """Start ``n`` emulated Plutos on one medium (caller closes the cluster)."""
    cfg = config or EmulatorConfig()
    cfg.check(n)  # EmulatorConfigError (an EmulatorError) naming the bad field
    rate = round(cfg.sample_rate)
    names = list(cfg.names) or [f"pluto{i}" for i in range(n)]
    ppms = list(cfg.ppm) if isinstance(cfg.ppm, tuple) else [cfg.ppm] * n
    clock: object = WallClock(rate, speed=cfg.speed) if cfg.clock == "wall" else "sim"
    if cfg.clock == "wall":
        _warm_medium()
    # rx_backlog: the medium's own overflow guard must not pre-empt the kernel-queue model;
    # on the wall clock Air.update_backlog sizes it (and what the medium keeps) from the queues
    # sample-aligned: at equal rates (no ppm) bursts land on whole samples of every receiver
    # and are added as they are, not interpolated per receiver (a quarter of the emulator's
    # CPU in a trial: a 24-tap filter over every burst sample, four receivers); receiver noise
    # from a pool (~2 ns a sample instead of ~12: every sample of four streams in real time)
    medium = Medium(rate, seed=cfg.seed, clock=clock,  # type: ignore[arg-type]
                    rx_backlog=3.0 * rate, sample_aligned=True, noise_pool=1 << 18)
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
                              tx_gain_ref_db=cfg.tx_gain_ref_db, recorder=recorder,
                              usb_bytes_per_s=cfg.usb_mb_per_s * 1e6,
                              usb_overhead_s=cfg.usb_overhead_ms * 1e-3,
                              usb_jitter_s=cfg.usb_jitter_ms * 1e-3)
            port = cfg.base_port + i if cfg.base_port else 0
            srv = PlutoServer(ctx, path, host=cfg.host, port=port, name=name,
                              max_clients=cfg.max_clients,
                              max_buffer_samples=cfg.max_buffer_samples)
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
