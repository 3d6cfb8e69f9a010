"""``relaysec replay CAPTURE.sigmf-meta``: decode a SigMF capture offline and list its bursts.

Runs the burst modem (``phy.BurstModem``) over the recorded IQ and prints every burst found
(sample index, time, source -> destination station, MCS, payload length, CRC, SNR, CFO, EVM), and,
when the recording carries burst annotations from the live run, how many of them were found again.
The profile comes from ``--profile``, else from the recorded run configuration, else from the
sample rate. Exit status: 0 when the capture was decoded, 1 when it could not be read (missing,
a directory, not SigMF, not UTF-8, a sample rate no profile runs at), 2 for a bad option
(an unknown ``--profile``, ``--chunk-s`` out of range).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

import numpy as np

from hw.sigmf import RecordingError, read_recording
from relaysec.paths import number_in

#: Longest decoding chunk (seconds of IQ held at once).
MAX_CHUNK_S = 60.0


def _profile_for(rec_config: dict[str, Any], sample_rate: float, explicit: str | None) -> str:
    import phy

    if explicit:
        return explicit
    if not isinstance(rec_config, dict):   # the capture's own metadata: any JSON at all
        rec_config = {}
    phy_cfg = rec_config.get("phy") if isinstance(rec_config.get("phy"), dict) else {}
    for candidate in (phy_cfg.get("profile"), rec_config.get("profile")):
        if isinstance(candidate, str) and candidate in phy.profiles():
            return candidate
    matches = [p for p in phy.profiles() if phy.get_profile(p).sample_rate == sample_rate]
    if not matches:
        raise ValueError(f"no phy profile runs at {sample_rate:g} S/s; pass --profile")
    return matches[0]


def decode(samples: np.ndarray, modem: Any, *, chunk: int) -> list[Any]:
    """All bursts in ``samples``, decoding in overlapping chunks (starts are absolute)."""
    overlap = modem.burst_samples(modem.max_payload) + 1024
    found: dict[int, Any] = {}
    pos = 0
    n = samples.size
    while pos < n:
        end = min(n, pos + chunk + overlap)
        for b in modem.demodulate(samples[pos:end]):
            start = pos + int(b.start)
            # a burst that does not fit before the overlap region is decoded by the next chunk
            if end < n and start >= pos + chunk:
                continue
            if all(abs(start - s) > 16 for s in found):
                found[start] = dataclasses.replace(b, start=start)
        if end == n:
            break
        pos += chunk
    return [found[k] for k in sorted(found)]


def run(args: argparse.Namespace) -> int:
    """Decode the capture and print what was found."""
    import phy

    if args.profile is not None and args.profile not in phy.profiles():
        print(f"relaysec replay: error: --profile {args.profile!r} is not a phy profile "
              f"(known: {', '.join(phy.profiles())})", file=sys.stderr)
        return 2
    try:
        rec = read_recording(args.capture)
    except (RecordingError, OSError, ValueError) as exc:
        print(f"relaysec replay: {str(args.capture)!r}: {exc}", file=sys.stderr)
        return 1
    if not (isinstance(rec.sample_rate, float) and np.isfinite(rec.sample_rate)
            and rec.sample_rate > 0):
        print(f"relaysec replay: {str(args.capture)!r}: invalid sample rate "
              f"{rec.sample_rate!r}", file=sys.stderr)
        return 1

    try:
        profile = _profile_for(rec.config, rec.sample_rate, args.profile)
        if phy.get_profile(profile).sample_rate != rec.sample_rate:
            raise ValueError(f"profile {profile} runs at {phy.get_profile(profile).sample_rate:g}"
                             f" S/s but the capture is at {rec.sample_rate:g} S/s")
        modem = phy.BurstModem(profile)
    except (ValueError, phy.PhyError) as exc:
        print(f"relaysec replay: {exc}", file=sys.stderr)
        return 1
    chunk = max(int(args.chunk_s * rec.sample_rate), 4 * modem.burst_samples(modem.max_payload))
    bursts = decode(rec.samples, modem, chunk=chunk)
    annotated = [a for a in rec.annotations if a.get("core:label", "burst") == "burst"]
    matched = sum(1 for a in annotated if any(
        abs(b.start - int(a["core:sample_start"])) <= 32 for b in bursts))
    if args.json:
        out = {
            "capture": str(args.capture), "radio": rec.radio, "seed": rec.seed,
            "sample_rate": rec.sample_rate, "frequency_hz": rec.frequency_hz,
            "datetime": rec.datetime, "samples": int(rec.samples.size), "profile": profile,
            "annotated_bursts": len(annotated), "annotated_found": matched,
            "bursts": [{"start": int(b.start), "time_s": b.start / rec.sample_rate,
                        "src": int(b.src), "dst": int(b.dst), "mcs": str(b.mcs),
                        "length": len(b.payload), "crc_ok": bool(b.crc_ok),
                        "snr_db": float(b.snr_db), "cfo_hz": float(b.cfo_hz),
                        "evm_db": float(b.evm_db)} for b in bursts],
        }
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{rec.radio or 'capture'}: {rec.samples.size} samples "
          f"({rec.samples.size / rec.sample_rate:.3f} s) at {rec.sample_rate / 1e6:g} MS/s, "
          f"LO {rec.frequency_hz / 1e6:g} MHz, recorded {rec.datetime}, seed {rec.seed}, "
          f"profile {profile}")
    print(f"{'sample':>10} {'time_s':>9} {'src':>14} {'dst':>14} {'mcs':>10} {'bytes':>6} "
          f"{'crc':>4} {'snr_dB':>7} {'cfo_Hz':>8} {'evm_dB':>7}")
    for b in bursts:
        print(f"{b.start:>10} {b.start / rec.sample_rate:>9.4f} {b.src:>#14x} {b.dst:>#14x} "
              f"{b.mcs!s:>10} {len(b.payload):>6} {'ok' if b.crc_ok else 'BAD':>4} "
              f"{b.snr_db:>7.1f} {b.cfo_hz:>8.0f} {b.evm_db:>7.1f}")
    good = sum(1 for b in bursts if b.crc_ok)
    print(f"{len(bursts)} bursts, {good} with a good CRC", end="")
    if annotated:
        print(f"; {matched} of {len(annotated)} bursts annotated in the live run found again")
    else:
        print()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``replay`` sub-command."""
    p = subparsers.add_parser("replay", help="decode a SigMF capture offline and list its bursts",
                              description=__doc__)
    p.add_argument("capture", help="CAPTURE.sigmf-meta (or .sigmf-data, or the base name)")
    p.add_argument("--profile", default=None, help="phy profile (default: from the capture)")
    p.add_argument("--chunk-s", type=number_in(0.0, MAX_CHUNK_S, unit="s"), default=0.5,
                   help="decode in chunks of this many seconds (memory bound; at most "
                   f"{MAX_CHUNK_S:g})")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
