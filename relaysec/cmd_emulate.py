"""``relaysec emulate``: emulated ADALM-Plutos on local ports, sharing one simulated air.

Prints one libiio URI per radio (``ip:127.0.0.1:PORT``, one a line, then nothing else on stdout)
and serves until interrupted (Ctrl-C / SIGTERM). Point pyadi-iio, ``iio_info``, ``relaysec node``
or ``relaysec trial --backend pluto --uris ...`` at them: they drive the unmodified libiio client
exactly as with hardware, and the air advances with the wall clock at the sample rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import signal
import sys
import threading
from pathlib import Path

from hw.emu import EmulatorConfig, create_emulators
from hw.emu.air import USB_BYTES_PER_S, USB_JITTER_MS, USB_OVERHEAD_MS
from hw.emu.errors import EmulatorConfigError
from hw.emu.server import DEFAULT_MAX_BUFFER_SAMPLES, DEFAULT_MAX_CLIENTS

#: The flag of each configuration field, so an error names what the user typed.
FLAGS = {
    "radios": "--radios", "sample_rate": "--sample-rate", "profile": "--profile",
    "seed": "--seed", "clock": "--clock", "speed": "--speed", "snr_db": "--snr",
    "self_snr_db": "--self-snr", "channel": "--channel", "ppm": "--ppm", "lo_hz": "--lo",
    "host": "--host", "base_port": "--base-port", "record_dir": "--record",
    "max_clients": "--max-clients", "max_buffer_samples": "--max-buffer-samples",
    "usb_mb_per_s": "--usb-mb-per-s", "usb_overhead_ms": "--usb-overhead-ms",
    "usb_jitter_ms": "--usb-jitter-ms",
}


def _profile_rate(profile: str) -> int:
    import phy

    try:
        return round(phy.get_profile(profile).sample_rate)
    except phy.UnknownProfileError as exc:
        raise EmulatorConfigError("profile", f"is not a PHY profile: {exc.args[0]}") from None


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator configuration the flags describe, validated.

    Raises :class:`~hw.emu.errors.EmulatorConfigError` whose ``field`` maps to the flag
    through :data:`FLAGS`.
    """
    profile_rate = _profile_rate(args.profile)  # a bad --profile is an error even when unused
    rate = profile_rate if args.sample_rate is None else args.sample_rate  # 0 is not "default"
    ppm: float | tuple[float, ...] = 0.0
    if args.ppm:
        ppm = tuple(args.ppm) if len(args.ppm) > 1 else args.ppm[0]
    cfg = EmulatorConfig(
        sample_rate=rate,
        seed=args.seed,
        clock=args.clock,
        speed=args.speed,
        snr_db=args.snr,
        self_snr_db=args.self_snr,
        channel=args.channel,
        ppm=ppm,
        lo_hz=args.lo,
        host=args.host,
        base_port=args.base_port,
        max_clients=args.max_clients,
        max_buffer_samples=args.max_buffer_samples,
        usb_mb_per_s=args.usb_mb_per_s,
        usb_overhead_ms=args.usb_overhead_ms,
        usb_jitter_ms=args.usb_jitter_ms,
    )
    cfg.check(args.radios)
    if args.record is None:
        return cfg
    if not Path(args.record).exists():  # created only once every other flag is valid
        try:
            Path(args.record).mkdir(parents=True)
        except OSError as exc:
            raise EmulatorConfigError("record_dir", f"cannot be created: {exc}") from None
    cfg = dataclasses.replace(cfg, record_dir=args.record)
    cfg.check(args.radios)
    return cfg


def _fail(message: str) -> int:
    print(f"relaysec emulate: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Start the radios, print their URIs, serve until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
    except EmulatorConfigError as exc:
        return _fail(f"{FLAGS.get(exc.field, exc.field)} {exc.problem}")
    if not ipaddress.ip_address(cfg.host).is_loopback:
        print(f"relaysec emulate: warning: listening on {cfg.host}, not loopback: any host "
              "that reaches it can drive these radios (the protocol has no authentication)",
              file=sys.stderr)
    try:
        cluster = create_emulators(args.radios, cfg)
    except OSError as exc:  # port in use, address not on this host, ...
        return _fail(f"cannot listen on {cfg.host} (--host/--base-port): {exc}")
    except Exception as exc:  # anything else: a message, never a traceback
        return _fail(f"{type(exc).__name__}: {exc}")
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    old = signal.signal(signal.SIGTERM, _stop)
    try:
        for uri in cluster.uris:
            print(uri)
        sys.stdout.flush()
        print(f"relaysec emulate: {len(cluster)} emulated Plutos at "
              f"{cfg.sample_rate / 1e6:g} MS/s ({cfg.clock} clock, seed {cfg.seed}, "
              f"SNR {cfg.snr_db:g} dB, {cfg.channel}); Ctrl-C stops", file=sys.stderr)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        cluster.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``emulate`` sub-command."""
    p = subparsers.add_parser(
        "emulate", help="serve emulated ADALM-Plutos (libiio network protocol) on local ports",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--radios", type=int, default=3, help="number of radios (default 3)")
    p.add_argument("--base-port", type=int, default=0,
                   help="first TCP port, then consecutive ones (default: any free ports)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated air")
    p.add_argument("--snr", type=float, default=30.0,
                   help="SNR in dB of every link at the reference TX level and gains")
    p.add_argument("--self-snr", type=float, default=None,
                   help="SNR of each radio hearing itself (default: --snr)")
    p.add_argument("--channel", default="awgn", help="awgn, pedA, pedB, vehA or vehB")
    p.add_argument("--ppm", type=float, nargs="+", default=None,
                   help="crystal error per radio (one value for all, or one per radio)")
    p.add_argument("--sample-rate", type=float, default=None,
                   help="air sample rate in S/s (default: the --profile's)")
    p.add_argument("--profile", default="P2.5", help="phy profile giving the default rate")
    p.add_argument("--lo", type=float, default=2.4e9, help="initial LO of every radio (Hz)")
    p.add_argument("--clock", choices=("wall", "sim"), default="wall",
                   help="wall: the air follows the wall clock (rehearsal); sim: only reads "
                        "advance it")
    p.add_argument("--speed", type=float, default=1.0,
                   help="wall clock speed factor (e.g. 0.5 = half speed)")
    p.add_argument("--record", metavar="DIR", default=None,
                   help="record what each radio's clients received as SigMF (DIR/pluto0...)")
    p.add_argument("--max-clients", type=int, default=DEFAULT_MAX_CLIENTS, metavar="N",
                   help="connections each radio serves at once; more are refused with EBUSY "
                        f"(default {DEFAULT_MAX_CLIENTS})")
    p.add_argument("--max-buffer-samples", type=int, default=DEFAULT_MAX_BUFFER_SAMPLES,
                   metavar="N", help="largest buffer a client may open, in samples; larger "
                   f"ones get ENOMEM (default {DEFAULT_MAX_BUFFER_SAMPLES})")
    p.add_argument("--usb-mb-per-s", type=float, default=USB_BYTES_PER_S / 1e6, metavar="MB",
                   help="USB 2.0 model: MB/s each way (default %(default)g, measured host->Pluto "
                        "in plutosdr-fw #61; 0 = no USB model)")
    p.add_argument("--usb-overhead-ms", type=float, default=USB_OVERHEAD_MS, metavar="MS",
                   help="USB model: fixed cost per transfer (default %(default)g ms)")
    p.add_argument("--usb-jitter-ms", type=float, default=USB_JITTER_MS, metavar="MS",
                   help="USB model: mean random extra delay per transfer (default %(default)g "
                        "ms; docs/emulator.md, timing model)")
    p.add_argument("-v", "--verbose", action="store_true", help="log connections and settings")
    p.set_defaults(func=run)
