"""``relaysec doctor --latency``: measure a radio's streaming timeline before trusting it.

Opens the radio, starts its streaming timeline (:meth:`hw.pluto.PlutoRadio.start_stream`: the
TX->RX offset is measured there by hearing a probe), then for a few seconds places the probe at
exact RX-axis samples and finds it again in its own RX stream. What comes out:

* the TX->RX offset (samples, ms) and how often the stream broke (TX underflow, RX overflow):
  on a healthy host, never;
* the placement error of every probe heard (heard - placed, samples): the jitter the OTA guards
  must cover (0 on a continuous stream; a few samples is the detector's resolution);
* the TX lead: how far ahead of the newest RX sample read a burst must be handed over, which
  with the RX buffer's duration sets how many frames a UL grant needs over the air;
* suggested ``schedule.ota_guard_ms`` / ``ota_frame_ms`` / ``ota_grant_delay`` for this host.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Zones of the default three-station frame (ABS DL, two DL-access, UL-access, UL-relay ...).
DEFAULT_ZONES = 7
#: The smallest OTA frame the suggestion goes down to (ms): the issue's target.
MIN_FRAME_MS = 20.0
#: Guard floor (ms): multipath spread and the burst detector's own few samples.
MIN_GUARD_MS = 0.1


@dataclass
class LatencyReport:
    """What :func:`measure_latency` found (JSON-ready through :meth:`as_dict`)."""

    uri: str
    sample_rate: float
    offset: int | None = None             # TX->RX offset, samples
    calibrate_s: float = 0.0              # time the first offset measurement took
    placed: int = 0                       # probes placed
    heard: int = 0                        # probes heard back
    errors: list[int] = field(default_factory=list)   # heard - placed, samples
    lead_ms: list[float] = field(default_factory=list)  # TX horizon - newest RX sample read
    underflows: int = 0
    rx_breaks: int = 0
    late: int = 0
    rx_buffer_ms: float = 0.0
    push_max_ms: float = 0.0
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """The stream held (no underflow, no overflow) and every probe came back in place."""
        return (self.problem is None and self.offset is not None and self.heard > 0
                and self.underflows == 0 and self.rx_breaks == 0
                and self.jitter_samples <= 4)

    @property
    def jitter_samples(self) -> int:
        """Largest |heard - placed| (samples); 0 when nothing was heard."""
        return max((abs(e) for e in self.errors), default=0)

    def suggestion(self, zones: int = DEFAULT_ZONES) -> dict[str, float | int]:
        """``schedule.ota_*`` values for this host: guards twice the jitter (at least
        :data:`MIN_GUARD_MS`), the frame as short as :data:`MIN_FRAME_MS` allows with them,
        and the grant delay covering RX buffering, the TX lead and 8 ms of processing."""
        jitter_ms = self.jitter_samples / self.sample_rate * 1e3
        guard = max(MIN_GUARD_MS, round(2 * jitter_ms + 0.05, 2))
        frame = max(math.ceil(MIN_FRAME_MS), math.ceil(zones * guard * 4))
        lead = float(np.percentile(self.lead_ms, 99)) if self.lead_ms else 0.0
        loop = self.rx_buffer_ms + lead + 8.0
        return {"ota_guard_ms": guard, "ota_frame_ms": frame,
                "ota_grant_delay": max(1, math.ceil(loop / frame)),
                "ota_build_ahead_ms": 8.0}

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(ok=self.ok, jitter_samples=self.jitter_samples, suggestion=self.suggestion())
        return d


def measure_latency(uri: str, *, seconds: float = 3.0, sample_rate: float = 2.8e6,
                    every_s: float = 0.05, radio_factory: Callable[..., Any] | None = None,
                    **settings: Any) -> LatencyReport:
    """Measure the streaming timeline of the radio at *uri* for *seconds* (see module doc).
    *radio_factory(uri, sample_rate=..., **settings)* defaults to :class:`hw.pluto.PlutoRadio`.
    Never raises for a radio problem: it is reported in ``problem``."""
    if radio_factory is None:
        from hw.pluto import PlutoRadio

        radio_factory = PlutoRadio
    rep = LatencyReport(uri, float(sample_rate))
    try:
        radio = radio_factory(uri, sample_rate=sample_rate, **settings)
    except Exception as exc:
        rep.problem = f"cannot open {uri}: {exc}"
        return rep
    try:
        t0 = time.monotonic()
        try:
            tl = radio.start_stream()
        except Exception as exc:
            rep.problem = str(exc)
            return rep
        rep.calibrate_s = time.monotonic() - t0
        rep.offset = tl.offset
        rep.rx_buffer_ms = radio.config.rx_buffer_size / sample_rate * 1e3
        _probe_loop(radio, tl, rep, seconds=seconds, every=round(every_s * sample_rate))
        st = tl.stats
        rep.underflows, rep.rx_breaks, rep.late = st.underflows, st.rx_breaks, st.late
        rep.push_max_ms = st.push_max_s * 1e3
        if tl.offset is not None:
            rep.offset = tl.offset
    finally:
        radio.close()
    return rep


def _probe_loop(radio: Any, tl: Any, rep: LatencyReport, *, seconds: float,
                every: int) -> None:
    """Read RX, place a probe every *every* samples, match each probe heard to its placement."""
    probe = tl.probe
    chunk = radio.config.rx_buffer_size
    index = 0                      # public RX index of the next sample read
    pending: list[int] = []
    next_at = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        iq = radio.receive(chunk)
        h = radio.tx_horizon()
        if h is not None:
            rep.lead_ms.append((h - (index + iq.size)) / rep.sample_rate * 1e3)
            if h >= next_at:
                at = h + chunk // 4
                if radio.transmit(probe, at=at):
                    pending.append(at)
                    rep.placed += 1
                next_at = at + every
        k = tl._find_probe(iq)
        if k is not None and pending:
            heard = index + k
            placed = min(pending, key=lambda p: abs(p - heard))
            if abs(heard - placed) < every // 2:
                pending.remove(placed)
                rep.heard += 1
                rep.errors.append(heard - placed)
        index += iq.size


def format_latency(rep: LatencyReport) -> str:
    """The report as the doctor prints it: one line per figure, a verdict, and what to do."""
    fs = rep.sample_rate
    lines = [f"latency check of {rep.uri} at {fs / 1e6:g} MS/s"]
    if rep.problem is not None:
        lines.append(f"[FAIL] {rep.problem}")
        lines.append("       fix: run `relaysec doctor --uri URI` first; an antenna (or a cable "
                     "with 30-40 dB of attenuation) on each port lets the radio hear itself")
        return "\n".join(lines)
    off = rep.offset if rep.offset is not None else 0
    lines.append(f"  TX->RX offset   {off} samples ({off / fs * 1e3:.3f} ms), measured in "
                 f"{rep.calibrate_s * 1e3:.0f} ms")
    errs = np.asarray(rep.errors) if rep.errors else np.zeros(1)
    lines.append(f"  probes          {rep.placed} placed, {rep.heard} heard back; placement "
                 f"error max {rep.jitter_samples} samples ({rep.jitter_samples / fs * 1e6:.1f} "
                 f"us), mean {float(np.mean(errs)):+.1f}")
    if rep.lead_ms:
        lines.append(f"  TX lead         median {np.median(rep.lead_ms):.1f} ms, p99 "
                     f"{np.percentile(rep.lead_ms, 99):.1f} ms (hand bursts over this early); "
                     f"RX buffer {rep.rx_buffer_ms:.1f} ms")
    lines.append(f"  stream          {rep.underflows} TX underflows, {rep.rx_breaks} RX "
                 f"overflows, {rep.late} late, longest push {rep.push_max_ms:.1f} ms")
    if rep.ok:
        s = rep.suggestion()
        lines.append("  suggest         " + " ".join(f"--set schedule.{k}={v}"
                                                     for k, v in s.items()))
    else:
        lines.append("  suggest         nothing until the stream holds (the figures above "
                     "include its breaks)")
    if rep.ok:
        lines.append("latency check: ok")
    else:
        lines.append("latency check: FAILED")
        if rep.underflows or rep.rx_breaks:
            lines.append("  fix: the stream broke: the host missed a TX refill or an RX read. "
                         "Close CPU-heavy programs, raise pluto.tx_kernel_buffers (TX queue) "
                         "and pluto.kernel_buffers (RX), or use a bigger pluto.tx_block_size; "
                         "check `dmesg` for USB resets")
        if rep.heard == 0:
            lines.append("  fix: no probe came back: raise tx_gain_db/rx_gain_db or put "
                         "antennas on both ports")
        elif rep.jitter_samples > 4:
            lines.append("  fix: probes came back off their place: samples were lost; as above")
    return "\n".join(lines)


__all__ = ["LatencyReport", "format_latency", "measure_latency"]
