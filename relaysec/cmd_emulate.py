"""``relaysec emulate``: emulated ADALM-Plutos on local ports, sharing one simulated air.

Prints one libiio URI per radio (``ip:127.0.0.1:PORT``, one a line, then nothing else on stdout)
and serves until interrupted (Ctrl-C / SIGTERM). Point pyadi-iio, ``iio_info``, ``relaysec node``
or ``relaysec trial --backend pluto --uris ...`` at them: they drive the unmodified libiio client
exactly as with hardware, and the air advances with the wall clock at the sample rate.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from hw.emu import EmulatorConfig, create_emulators


def _profile_rate(profile: str) -> int:
    import phy

    return round(phy.get_profile(profile).sample_rate)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator configuration the flags describe."""
    rate = args.sample_rate if args.sample_rate else _profile_rate(args.profile)
    return EmulatorConfig(
        sample_rate=round(rate),
        seed=args.seed,
        clock=args.clock,
        speed=args.speed,
        snr_db=args.snr,
        self_snr_db=args.self_snr,
        channel=args.channel,
        ppm=tuple(args.ppm) if args.ppm and len(args.ppm) > 1 else (
            args.ppm[0] if args.ppm else 0.0),
        lo_hz=args.lo,
        host=args.host,
        base_port=args.base_port,
        record_dir=args.record,
    )


def run(args: argparse.Namespace) -> int:
    """Start the radios, print their URIs, serve until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
        cluster = create_emulators(args.radios, cfg)
    except Exception as exc:  # bad flags, port in use, ...
        print(f"relaysec emulate: {exc}", file=sys.stderr)
        return 2
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
    p.add_argument("-v", "--verbose", action="store_true", help="log connections and settings")
    p.set_defaults(func=run)
