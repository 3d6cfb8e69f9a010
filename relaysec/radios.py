"""Radio factories: the radios of a cell's stations, from the config.

A factory is called with the config, the stations built in this process and the modem's sample
rate, and returns ``{station name: radio}``; :func:`relaysec.cell.build_cell` takes one, so the
trial, ``relaysec node`` and the tests (which hand over radios of their own with :func:`given`)
assemble cells the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from relaysec.config import check_air_speed, link_params, redacted
from relaysec.config_schema import Config, ConfigError

if TYPE_CHECKING:
    from hw.loopback import Medium
    from hw.pluto import PlutoRadio
    from hw.radio import Radio
    from hw.sigmf import RecordingRadio

log = logging.getLogger(__name__)

Station = Mapping[str, Any]
#: ``factory(cfg, local_stations, sample_rate) -> {name: radio}``
RadioFactory = Callable[[Config, Sequence[Station], float], "dict[str, Radio]"]


class RadioSetupError(RuntimeError):
    """A radio cannot be opened or the config cannot drive it; the message says which."""


def air_clock(cfg: Config) -> Callable[[], float]:
    """The OTA runtime's clock: wall time scaled by ``schedule.ota_speed`` (rehearsals on a slow
    host run the air slower than real time: a wall-clock loopback medium, or emulated Plutos at
    ``relaysec emulate --speed`` the same; a real Pluto needs 1.0)."""
    speed = float(cfg["schedule"]["ota_speed"])
    if speed == 1.0:
        return time.monotonic
    return lambda: time.monotonic() * speed


class Loopback:
    """All stations of the config on one simulated medium (simulated clock, or the wall clock
    as an over-the-air rehearsal when *wall*); the medium stays reachable as :attr:`medium`."""

    def __init__(self, *, wall: bool) -> None:
        self.wall = wall
        self.medium: Medium | None = None

    def __call__(self, cfg: Config, local: Sequence[Station], fs: float) -> dict[str, Radio]:
        from hw.loopback import Medium, WallClock

        seed = int(cfg["seed"])
        clock = WallClock(fs, speed=float(cfg["schedule"]["ota_speed"])) if self.wall else "sim"
        medium = Medium(fs, seed=seed, ref_tx_dbfs=float(cfg["phy"]["tx_dbfs"]),
                        start_delay_max=float(cfg["channel"]["start_delay_us"]) * 1e-6 * fs,
                        clock=clock)
        rng = np.random.default_rng([seed, 0x7261646F])
        ch = cfg["channel"]
        wanted = {s["name"] for s in local}
        radios: dict[str, Radio] = {}
        for s in cfg["stations"]:
            ppm = float(rng.uniform(-1, 1) * ch["cfo_ppm"])
            # one crystal per radio: the sampling clock is off by the same ppm as the carrier
            sfo = ppm if ch["sfo_follows_cfo"] else float(rng.uniform(-1, 1) * ch["sfo_ppm"])
            radio = medium.add_radio(s["name"], ppm=ppm, sfo_ppm=sfo)
            if s["name"] in wanted:
                radios[s["name"]] = radio
        names = [s["name"] for s in cfg["stations"]]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                p = link_params(cfg, a, b)
                medium.set_link(a, b, snr_db=p["snr_db"], channel=p["channel"])
        self.medium = medium
        return radios


def plutos(cfg: Config, local: Sequence[Station], fs: float) -> dict[str, Radio]:
    """One ADALM-Pluto per station, at the station's ``uri`` (hw.pluto, pyadi-iio), each on its
    streaming timeline (:meth:`hw.pluto.PlutoRadio.start_stream`): TX and RX stream from here
    on and every radio has measured its TX->RX offset by hearing its own probe, so bursts are
    placed at exact samples."""
    try:
        from hw.pluto import PlutoRadio
    except ImportError as exc:
        raise RadioSetupError(f"the Pluto backend is not available: {exc}") from exc
    try:
        check_air_speed(cfg, local)
    except ConfigError as exc:
        raise RadioSetupError(str(exc)) from None
    p = cfg["pluto"]
    radios: dict[str, PlutoRadio] = {}

    def close_all() -> None:
        for r in radios.values():
            r.close()

    for s in local:
        if not s.get("uri"):
            close_all()
            raise RadioSetupError(
                f"station {s['name']} has no uri: set stations[].uri in the config or pass "
                "--uris (one per station, in config order)")
        try:
            radios[s["name"]] = PlutoRadio(
                s["uri"], sample_rate=fs, lo_hz=float(p["lo_hz"]),
                rf_bandwidth_hz=float(p["rf_bandwidth_hz"]), gain_mode=p["gain_mode"],
                rx_gain_db=float(p["rx_gain_db"]), tx_gain_db=float(p["tx_gain_db"]),
                rx_buffer_size=int(p["rx_buffer_size"]),
                kernel_buffers=int(p["kernel_buffers"]),
                tx_block_size=int(p["tx_block_size"]),
                tx_kernel_buffers=int(p["tx_kernel_buffers"]),
                rx_worker=bool(p.get("rx_worker", True)),
                stream_nice=int(p.get("stream_nice", -10)))
        except Exception as exc:
            close_all()
            raise RadioSetupError(f"{s['name']} ({s['uri']}): {exc}") from exc
    for name, radio in radios.items():
        try:
            tl = radio.start_stream()
        except Exception as exc:
            close_all()
            raise RadioSetupError(f"{name}: the streaming timeline did not start: {exc}") from exc
        log.info("%s: streaming, TX->RX offset %s samples", name, tl.offset)
    return dict(radios)


def given(radios: Mapping[str, Radio]) -> RadioFactory:
    """A factory handing over radios made elsewhere (tests; a shared wall-clock medium)."""

    def factory(cfg: Config, local: Sequence[Station], fs: float) -> dict[str, Radio]:
        missing = [s["name"] for s in local if s["name"] not in radios]
        if missing:
            raise RadioSetupError(f"no radio given for {', '.join(missing)}")
        return {s["name"]: radios[s["name"]] for s in local}

    return factory


def for_config(cfg: Config, *, wall: bool) -> RadioFactory:
    """The factory the config's ``backend`` names: Plutos, or the loopback medium."""
    return plutos if cfg["backend"] == "pluto" else Loopback(wall=wall)


def recording(radios: Mapping[str, Radio], cfg: Config, directory: str | Path,
              fs: float) -> dict[str, RecordingRadio]:
    """Wrap every radio so that all it receives goes to ``directory/<station>.sigmf-*``."""
    try:
        from hw.sigmf import RecordingRadio, SigMFRecorder
    except ImportError as exc:
        raise RadioSetupError(f"--record needs hw.sigmf: {exc}") from exc
    out = {}
    for name, radio in radios.items():
        rec = SigMFRecorder(Path(directory) / name.replace("/", "_"), sample_rate=fs,
                            frequency_hz=float(cfg["pluto"]["lo_hz"]), seed=int(cfg["seed"]),
                            config=redacted(cfg), radio=name,
                            hw="relaysec loopback" if cfg["backend"] == "loopback"
                            else "ADALM-Pluto",
                            description=f"relaysec trial, station {name}")
        out[name] = RecordingRadio(radio, rec)
    return out
