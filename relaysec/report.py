"""Trial reports: the ten-second summary, the message sequence chart, JSON and PNG plots.

The trial produces one plain ``dict`` (the JSON report, see :func:`validate_report` for the keys
every report has) plus a :class:`Trace` with the per-burst series that only the plots need. This
module only formats; it decides nothing about pass or fail.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED_KEYS = ("ok", "bytes", "phases", "links", "security", "handover")


@dataclass(frozen=True)
class MscEntry:
    """One arrow of the message sequence chart: at simulated/wall time *t*, *src* → *dst*."""

    t: float
    src: str
    dst: str
    label: str
    note: str = ""


@dataclass
class Trace:
    """Per-burst series behind the plots (not part of the JSON)."""

    # link name -> list of (time, snr_db, crc_ok)
    bursts: dict[str, list[tuple[float, float, bool]]] = field(default_factory=dict)
    # link name -> equalised data symbols (complex), capped per link
    constellations: dict[str, np.ndarray] = field(default_factory=dict)
    max_points: int = 4000

    def add_burst(self, link: str, t: float, snr_db: float, crc_ok: bool) -> None:
        self.bursts.setdefault(link, []).append((t, snr_db, crc_ok))

    def add_symbols(self, link: str, symbols: np.ndarray) -> None:
        have = self.constellations.get(link)
        if have is not None and have.size >= self.max_points:
            return
        sym = np.asarray(symbols, dtype=np.complex64).ravel()
        merged = sym if have is None else np.concatenate([have, sym])
        self.constellations[link] = merged[: self.max_points]


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` if *report* lacks a key the JSON contract promises."""
    for key in REQUIRED_KEYS:
        if key not in report:
            raise ValueError(f"report lacks {key!r}")
    for key in ("sent", "delivered", "lost", "corrupted"):
        if key not in report["bytes"]:
            raise ValueError(f"report.bytes lacks {key!r}")
    for ph in report["phases"]:
        if "name" not in ph or "ok" not in ph:
            raise ValueError("each phase needs name and ok")
    for name, link in report["links"].items():
        for key in ("per", "snr_db", "goodput_bps"):
            if key not in link:
                raise ValueError(f"link {name} lacks {key!r}")
    for key in ("mode", "interruption_s"):
        if key not in report["handover"]:
            raise ValueError(f"report.handover lacks {key!r}")


def split_links(
    links: Mapping[str, Mapping[str, Any]], receivers: Iterable[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split per-link figures (``"SRC->DST"`` → :meth:`relaysec.node.LinkStats.summary`) into
    the links table and the links that were only transmitted on.

    * A station's own "link" (``ARS-1->ARS-1``) is dropped: it is a station hearing its own burst
      (over the air every radio does, which is how the OTA runtime learns its TX latency), an
      undecodable one attributed to the zone's owner — not a link.
    * A link whose receiver is not among *receivers* (a node report: the receiver runs on another
      host) and on which nothing was received here goes to the second dict with its transmit
      counts only: its PER is known only at the far end, so a "PER 1.000" row would be false.
    * A link whose receiver is local keeps its row even when nothing arrived: that is a real loss.
    """
    local = set(receivers)
    table: dict[str, Any] = {}
    tx_only: dict[str, Any] = {}
    for name, lk in links.items():
        src, _, dst = name.partition("->")
        if src == dst:
            continue
        if dst not in local and not lk.get("bursts_rx") and not lk.get("crc_fail"):
            tx_only[name] = {k: lk[k] for k in ("bursts_tx", "control_bursts") if k in lk}
        else:
            table[name] = dict(lk)
    return table, tx_only


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating,)):
        return _json_safe(float(obj))
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def to_json(report: Mapping[str, Any]) -> str:
    """The report as JSON text (NaN/inf written as null, keys sorted for stable diffs)."""
    validate_report(report)
    return json.dumps(_json_safe(dict(report)), indent=2, sort_keys=True) + "\n"


def write_json(report: Mapping[str, Any], path: str | Path) -> None:
    """Write :func:`to_json` to *path*; its directory must exist (none is created: a typo in
    the path is an error, not a new directory tree). Raises ``OSError`` when it cannot be
    written."""
    Path(path).write_text(to_json(report), encoding="utf-8")


def insecure_line(report: Mapping[str, Any]) -> str | None:
    """The warning line of a report whose keys were drawn from the seed over radios, else
    None."""
    what = report.get("insecure")
    if not what:
        return None
    return (f"insecure: {what} — every key, nonce and protocol random came from seed "
            f"{report.get('seed')} (--insecure-deterministic-keys): anyone with the config can "
            "recompute them; for debugging only")


def _fmt_rate(bps: float | None) -> str:
    if bps is None or not math.isfinite(bps):
        return "-"
    if bps >= 1e6:
        return f"{bps / 1e6:.2f} Mb/s"
    return f"{bps / 1e3:.1f} kb/s"


def _fmt(x: float | None, spec: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def _arq_fault_lines(report: Mapping[str, Any]) -> list[str]:
    """The ARQ line (what recovering losses cost) and one line per configured fault."""
    lines = []
    arq = report.get("arq")
    if arq:
        lines.append(
            f"ARQ      {arq['sdus']} SDUs in {arq['blocks_sent']} blocks: {arq['retransmissions']} "
            f"retransmitted ({arq['retransmitted_bytes']} B, "
            f"{100 * arq['retransmitted_share']:.1f} % of the bytes sent), "
            f"{arq['duplicates_dropped']} duplicates dropped, {arq['discarded']} discarded "
            f"at their lifetime")
        fb = arq.get("feedback")
        if fb:
            lines.append(f"         feedback: {fb['piggybacked']} piggybacked on data blocks, "
                         f"{fb['mpdus']} in MPDUs of their own")
        if arq.get("per_hop"):
            hop, e2e = arq["layers"]["hop"], arq["layers"]["e2e"]
            lines.append(
                f"         per hop (distributed mode): {hop['retransmissions']} of "
                f"{hop['blocks_sent']} hop blocks retransmitted, {e2e['retransmissions']} of "
                f"{e2e['blocks_sent']} end to end")
    soak = report.get("soak")
    if soak:
        grew = {f"{n}.{k}": v for n, r in soak["roles"].items() for k, v in r.items()
                if k != "heap" and v["last"] > max(v["first"], v["mid"], 8)}
        lines.append(
            f"Soak     {soak['seconds']:g} s: {soak.get('handovers', 0)} handovers, "
            f"{soak['keys_installed'].get('tek_refresh', 0)} TEK installs by refresh, "
            f"{soak['keys_installed'].get('reauth', 0)} re-authentications, {soak['faults']} "
            f"faults; memory {soak['rss_kb']['first'] // 1024}->{soak['rss_kb']['mid'] // 1024}"
            f"->{soak['rss_kb']['last'] // 1024} MiB (start/mid/end); role tables "
            + ("flat" if not grew else "grew: " + ", ".join(
                f"{k} {v['mid']}->{v['last']}" for k, v in list(grew.items())[:4])))
    faults = report.get("faults") or []
    if len(faults) > 12:
        kinds: dict[str, int] = {}
        for f in faults:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
        stuck = sum(1 for f in faults if f["kind"] != "burst_loss"
                    and f.get("fired_at_s") is not None and f.get("recovery_s") is None)
        lines.append("Faults   " + ", ".join(f"{k} {v}" for k, v in kinds.items())
                     + f"; not recovered: {stuck}")
        faults = []
    for f in faults:
        what = {"burst_loss": f"burst_loss {f.get('link')} p={f.get('p')}",
                "outage": f"outage {f.get('link')} at {f.get('at_s')} s for {f.get('for_s')} s",
                "restart": f"restart {f.get('station')} at {f.get('at_s')} s"}[f["kind"]]
        cost = (f"{f['dropped_bursts']}/{f['bursts_seen']} bursts dropped "
                f"({f['dropped_bytes']} B)" if "dropped_bursts" in f else "all state lost")
        rec = f.get("recovery_s")
        when = ("" if f["kind"] == "burst_loss" else
                f"; recovered {rec * 1e3:.0f} ms after it" if rec is not None else
                "; NOT recovered" if f.get("fired_at_s") is not None else "; never fired")
        lines.append(f"Fault    {what}: {cost}{when}")
    return lines


def sim_pace(timing: Mapping[str, Any]) -> float | None:
    """Simulated air seconds per wall-clock second of a run on the simulated clock, after the
    numba warm-up (``sim_s / (wall_s - warmup_s)``); None over the air or when unknown. Issue 15
    asks >= 3 for the default trial."""
    if not timing.get("simulated_clock") or timing.get("sim_s") is None:
        return None
    wall = float(timing.get("wall_s", 0.0)) - float(timing.get("warmup_s", 0.0))
    return float(timing["sim_s"]) / wall if wall > 0 else None


def summary_text(report: Mapping[str, Any]) -> str:
    """The summary a person reads in ten seconds: verdict, phases, bytes, links, security."""
    lines = []
    verdict = "PASS" if report["ok"] else "FAIL"
    head = f"relaysec trial: {verdict}"
    if not report["ok"] and report.get("reason"):
        head += f" — {report['reason']}"
    lines.append(head)
    warning = insecure_line(report)
    if warning:
        lines.append(warning)
    meta = []
    for key in ("backend", "security_mode", "seed"):
        if key in report:
            meta.append(f"{key.replace('_', ' ')} {report[key]}")
    if "timing" in report:
        t = report["timing"]
        meta.append(f"wall {t.get('wall_s', 0):.1f} s (numba warm-up {t.get('warmup_s', 0):.1f} s)")
        if t.get("sim_s") is not None:
            meta.append(f"air time {t['sim_s']:.2f} s")
            pace = sim_pace(t)
            if pace is not None:
                meta.append(f"simulated at {pace:.1f}x real time after warm-up")
    if meta:
        lines.append("  " + ", ".join(meta))
    lines.append("")
    lines.append("Phases")
    for ph in report["phases"]:
        mark = "ok  " if ph["ok"] else "FAIL"
        dur = ""
        if ph.get("t_start") is not None and ph.get("t_end") is not None:
            dur = f"{(ph['t_end'] - ph['t_start']) * 1e3:8.0f} ms"
        detail = f"  {ph['detail']}" if ph.get("detail") else ""
        lines.append(f"  [{mark}] {ph['name']:<22}{dur}{detail}")
    b = report["bytes"]
    lines.append("")
    lines.append(
        f"Payload  sent {b['sent']} B, delivered {b['delivered']} B, lost {b['lost']} B, "
        f"corrupted {b['corrupted']} B"
        + (f", duplicates {b['duplicates']}" if b.get("duplicates") else "")
    )
    lines += _arq_fault_lines(report)
    lines += _per_ams_lines(report)
    links = report["links"]
    if links:
        lines.append("")
        lines.append(f"  {'link':<18}{'bursts':>7}{'PER':>8}{'SNR dB':>8}{'EVM dB':>8}"
                     f"{'goodput':>13}{'rejected':>9}")
        for name, lk in links.items():
            lines.append(
                f"  {name:<18}{lk.get('bursts_tx', 0):>7}{_fmt(lk['per'], '.3f'):>8}"
                f"{_fmt(lk['snr_db'], '.1f'):>8}{_fmt(lk.get('evm_db'), '.1f'):>8}"
                f"{_fmt_rate(lk['goodput_bps']):>13}{lk.get('rejected', 0):>9}"
            )
    tx_only = report.get("links_tx_only") or {}
    if tx_only:
        lines.append("  sent only (PER is measured at the receiver): " + ", ".join(
            f"{k} {v.get('bursts_tx', 0)} bursts" for k, v in tx_only.items()))
    lines += _radio_lines(report)
    sec = report["security"]
    rej = sec.get("rejections", {})
    lines.append("")
    text = "Security rejections: " + (
        ", ".join(f"{k} {v}" for k, v in sorted(rej.items())) if rej else "none")
    stale = sec.get("in_flight_at_handover") or {}
    n_stale, n_all = sum(stale.values()), sum(rej.values())
    if n_stale:
        who = report.get("handover", {}).get("source", "the old relay")
        text += (f" ({'all' if n_stale == n_all else n_stale} from {who} after the AMS left "
                 "it: frames in flight at the handover, expected, never delivered)")
    lines.append(text)
    if sec.get("keys"):
        keys = sec["keys"]
        more = f"; ... and {len(keys) - 8} more (JSON report: security.keys)" \
            if len(keys) > 8 else ""
        lines.append("Keys: " + "; ".join(keys[:8]) + more)
    n = sec.get("nonces")
    if n:
        lines.append(f"Nonces: {n['sent']} PNs sent in {n['streams']} (TEK, direction) streams, "
                     f"{n['reused']} reused" + ("" if not n["reused"] else
                                               " — " + "; ".join(n["first_reuses"][:2])))
    ho = report["handover"]
    if ho.get("mode"):
        inter, switch = ho.get("interruption_s"), ho.get("switch_s")
        txt = "-" if inter is None else f"{inter * 1e3:.0f} ms"
        if switch is not None:
            txt += f" (switch to the target {switch * 1e3:.0f} ms)"
        who = (f"{ho.get('source', '?')} -> {ho.get('target', '?')}"
               if ho.get("movers", 1) == 1 else f"{ho['movers']} AMSs moved together")
        lines.append(
            f"Handover: {who}, mode {ho['mode']}, "
            f"AK pre-distribution {'on' if ho.get('predistributed') else 'off'}, "
            f"interruption {txt}" + ("" if ho.get("movers", 1) == 1 else " (worst)")
        )
    return "\n".join(lines)


STREAM_BREAKS_HINT = 10
"""Stream breaks (underflows + overflows, all radios) from which a failed trial's summary says
the host did not keep up, and what to do."""

LOOP_BUSY_HINT = 0.9
"""Share of its time the main loop serving the local nodes was busy from which a failed
trial's summary says this host is the limit for these nodes at this air speed."""


def _radio_lines(report: Mapping[str, Any]) -> list[str]:
    """Per radio: overflows (RX samples lost), underflows (TX ran dry), dropped and clipped
    samples. Shown over Plutos, or whenever a radio lost samples. A failed trial whose streams
    broke often gets a hint: the usual cause is a host too busy for the air's pace (four
    emulated Plutos and their nodes on two cores), not the protocol."""
    radios = report.get("radios") or {}
    lossy = any(r.get("overflows") or r.get("underflows") for r in radios.values())
    if not radios or (report.get("backend") != "pluto" and not lossy):
        return []
    out = ["", "Radios   " + "; ".join(
        f"{name}: overflows {r.get('overflows', 0)}, underflows {r.get('underflows', 0)}, "
        f"dropped {r.get('dropped', 0)}, clipped {r.get('clipped', 0)}"
        for name, r in radios.items())]
    loop = report.get("main_loop") or {}
    if loop.get("busy") is not None:
        passes = loop.get("pass_ms") or {}
        out.append(f"Host     main loop busy {100 * loop['busy']:.0f} % of the time"
                   + (f", on a core {100 * loop['cpu']:.0f} %" if loop.get("cpu") is not None
                      else "")
                   + (f" (demodulation passes: median {passes['median']:.1f} ms, 90th "
                      f"percentile {passes['p90']:.1f} ms, longest {passes['max']:.1f} ms)"
                      if passes else ""))
        if not report.get("ok", True) and loop["busy"] >= LOOP_BUSY_HINT:
            out.append(
                f"Hint: the one loop that serves every node here was busy {100 * loop['busy']:.0f}"
                " % of the time: this host cannot process these nodes at this air speed (their "
                "UL grants come late and zone bursts are skipped). Run fewer nodes per host "
                "(relaysec node, one per host), or slow the air down on both sides.")
    breaks = sum(int(r.get("overflows") or 0) + int(r.get("underflows") or 0)
                 for r in radios.values())
    if not report.get("ok", True) and breaks >= STREAM_BREAKS_HINT:
        out.append(
            f"Hint: the radio streams broke {breaks} times (underflow: TX not refilled in time; "
            "overflow: RX not read in time): this host did not keep up with the air. With "
            "emulated Plutos, slow the air down on both sides (relaysec emulate --speed 0.5, "
            "and --set schedule.ota_speed=0.5 here); with real Plutos, give each node a core "
            "of its own and check it with relaysec doctor --latency URI (docs/radios.md, "
            "\"Lab guide\").")
    return out


def _per_ams_lines(report: Mapping[str, Any], limit: int = 16) -> list[str]:
    """The per-AMS table (when the cell has more than one AMS) and the cell line."""
    rows = report.get("per_ams") or {}
    cell = report.get("cell") or {}
    if len(rows) <= 1:
        return []
    out = ["", f"  {'AMS':<14}{'served by':<18}{'delivered':>11}{'lost':>8}{'corrupt':>8}"
           f"{'goodput':>13}  {'MCS':<10}{'HO gap':>8}"]
    for name, r in list(rows.items())[:limit]:
        path = r.get("served_by", "?")
        if r.get("now_served_by") and r["now_served_by"] != path:
            path += f"->{r['now_served_by']}"
        gap = r.get("interruption_s")
        out.append(f"  {name:<14}{path:<18}{r['delivered']:>11}{r['lost']:>8}"
                   f"{r['corrupted']:>8}{_fmt_rate(r.get('goodput_bps')):>13}  "
                   f"{r.get('mcs', '-')!s:<10}"
                   f"{'-' if gap is None else f'{gap * 1e3:.0f} ms':>8}")
    if len(rows) > limit:
        out.append(f"  ... and {len(rows) - limit} more AMSs (JSON report: per_ams)")
    jain = cell.get("jain")
    out.append(f"  cell: {len(rows)} AMSs, goodput {_fmt_rate(cell.get('goodput_bps'))}, "
               f"Jain fairness {_fmt(jain, '.3f')}")
    return out


def msc_text(entries: Sequence[MscEntry], stations: Sequence[str], *, width: int = 14,
             gap_s: float = 0.05) -> str:
    """A text message sequence chart: one column per station, one row per message, ``*`` for
    an event at a station. A quiet spell longer than *gap_s* (data only) is shown as one line.

    ::

              ABS           ARS-1         AMS
         30.0  |------------>|             |   AK Transfer (in relay MPDU)
        ...    (368 ms without security messages)
    """
    if not entries:
        return "(no security messages)"
    col = {s: i for i, s in enumerate(stations)}
    header = " " * 10 + "".join(f"{s:<{width}}" for s in stations)
    rows = [header]
    last: float | None = None
    for e in entries:
        if e.src not in col or e.dst not in col:
            continue
        if last is not None and e.t - last > gap_s:
            rows.append(f"{'...':>8}  ({(e.t - last) * 1e3:.0f} ms without security messages)")
        last = e.t
        a, b = col[e.src], col[e.dst]
        cells = [" " * width for _ in stations]
        line = list("".join(cells))
        for i in range(len(stations)):
            line[i * width] = "|"
        lo, hi = min(a, b), max(a, b)
        if lo == hi:
            line[lo * width] = "*"
        else:
            for x in range(lo * width + 1, hi * width):
                line[x] = "-"
            if b > a:
                line[hi * width - 1] = ">"
            else:
                line[lo * width + 1] = "<"
        label = e.label + (f" [{e.note}]" if e.note else "")
        rows.append(f"{e.t * 1e3:8.1f}  " + "".join(line).rstrip() + "   " + label)
    return "\n".join(rows)


def write_plots(report: Mapping[str, Any], trace: Trace, directory: str | Path) -> list[Path]:
    """PNG plots: one constellation per link, and SNR / PER over time for all links.

    Returns the files written. *directory* is created if missing, but not its parents.
    matplotlib is imported here only (Agg backend, no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(exist_ok=True)
    written: list[Path] = []
    for link, sym in sorted(trace.constellations.items()):
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(sym.real, sym.imag, s=2, alpha=0.4)
        lk = report["links"].get(link, {})
        ax.set_title(f"{link}  EVM {_fmt(lk.get('evm_db'), '.1f')} dB")
        ax.set_xlabel("I")
        ax.set_ylabel("Q")
        ax.set_aspect("equal")
        ax.grid(True, alpha=0.3)
        p = out / f"constellation_{_slug(link)}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    if trace.bursts:
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
        for link, series in sorted(trace.bursts.items()):
            arr = np.array([(t, s, ok) for t, s, ok in series], dtype=float)
            ax1.plot(arr[:, 0], arr[:, 1], ".", ms=3, label=link)
            # PER over a sliding window of 20 bursts
            fail = 1.0 - arr[:, 2]
            k = min(20, len(fail))
            per = np.convolve(fail, np.ones(k) / k, mode="same")
            ax2.plot(arr[:, 0], per, label=link)
        for ph in report["phases"]:
            if ph.get("t_start") is not None:
                for ax in (ax1, ax2):
                    ax.axvline(ph["t_start"], color="grey", lw=0.5, ls=":")
        ax1.set_ylabel("SNR (dB)")
        ax2.set_ylabel("PER (20-burst window)")
        ax2.set_xlabel("time (s)")
        ax1.legend(fontsize=7, ncol=2)
        ax1.grid(True, alpha=0.3)
        ax2.grid(True, alpha=0.3)
        p = out / "snr_per_over_time.png"
        fig.tight_layout()
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written


def _slug(name: str) -> str:
    name = name.replace("->", "_to_")
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name).strip("_")
