"""Handover cost: security messages on the air and round trips, distributed vs centralized.

    python -m benchmarks.handover [--json PATH] [--loss P] [--seeds N]

Runs the ABS/ARS/AMS roles wired in memory (:mod:`stack.roles.memnet`, 1 ms per hop), lets
ARS-1, ARS-2 and the AMS (through ARS-1) enter, then hands the AMS over from ARS-1 to ARS-2 in
three variants:

* ``predistributed`` — distributed mode, the ABS sends AK Transfer to ARS-2 before the move;
* ``on_demand``      — distributed mode, ARS-2 asks the ABS (AK Request) when the AMS's
  re-entry AAI-RNG-REQ arrives;
* ``centralized``    — the baseline: the ARSs hold no AMS keys; ARS-2 relays the re-entry to
  the ABS, which answers end to end.

Every number is *measured* from the frame log of the in-memory network, never hard-coded: each
frame is split into MPDUs; control MPDUs (FID 0) are security/ranging messages; relay MPDUs
(FID 15, encrypted on the relay link) are opened with the relay link's TEK to find the AMS control
messages relayed inside (data MPDUs are not counted). The window starts at the first step of the
handover (AK pre-distribution, or the AMS's re-entry request) and ends when the network is quiet
again (context release to ARS-1 acknowledged), after a probe packet has crossed each way via
ARS-2.

* ``air_messages``: security messages transmitted in the window (each hop counts: a message
  relayed by an ARS counts on both links).
* ``per_link``: per link, messages each way and ``round_trips`` = direction changes of the
  message sequence on that link, rounded up to pairs (→← is one, →←→← two).
* ``round_trips_at_target``: security round trips the target needs with the ABS after the AMS's
  re-entry request reaches it and before it can answer (and protected data can flow) — the
  messages the target sends to the ABS between receiving AAI-RNG-REQ and sending AAI-RNG-RSP.
* ``reentry_to_rsp_hops``: time from that AAI-RNG-REQ to the AAI-RNG-RSP at 1 ms per hop.

With ``--loss P`` the same scenarios also run with that seeded frame loss on every link (both
ways) for ``--seeds`` seeds and report the mean message count (retransmissions included).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from itertools import pairwise
from typing import Any

from benchmarks._machine import announce
from stack import mpdu as mpdu_codec
from stack.mac import decapsulate_relay
from stack.pkm import messages as m
from stack.pkm.authenticator import BuiltinAuthenticator
from stack.roles import (
    AbsConfig,
    AbsRole,
    AmsConfig,
    AmsRole,
    ArsConfig,
    ArsRole,
    DataReceived,
    SecurityMode,
    Timers,
)
from stack.roles.framing import FID_CONTROL, FID_RELAY, mpdu_fid, split_frame
from stack.roles.ids import station_bytes
from stack.roles.memnet import Net

ABS, ARS1, ARS2, AMS = 0x0000BB000001, 0x0002AA000001, 0x0002AA000002, 0x001B11C9D50C
NAMES = {ABS: "ABS", ARS1: "ARS-1", ARS2: "ARS-2", AMS: "AMS"}
VARIANTS = {
    "predistributed": (SecurityMode.DISTRIBUTED, True),
    "on_demand": (SecurityMode.DISTRIBUTED, False),
    "centralized": (SecurityMode.CENTRALIZED, False),
}
BASELINE = "centralized"


def _cell(mode: SecurityMode, seed: int, loss: float):
    psk = {ARS1: bytes([0x11]) * 16, ARS2: bytes([0x12]) * 16, AMS: bytes([0x22]) * 16}
    timers = Timers(rto=0.2, max_retries=30)
    auth = BuiltinAuthenticator({station_bytes(k): v for k, v in psk.items()})
    roles = {
        ABS: AbsRole(AbsConfig(station_id=ABS, mode=mode, timers=timers,
                               relays=frozenset({ARS1, ARS2})), authenticator=auth,
                     rng=seed * 10 + 1),
        ARS1: ArsRole(ArsConfig(station_id=ARS1, psk=psk[ARS1], mode=mode, timers=timers),
                      rng=seed * 10 + 2),
        ARS2: ArsRole(ArsConfig(station_id=ARS2, psk=psk[ARS2], mode=mode, timers=timers),
                      rng=seed * 10 + 3),
        AMS: AmsRole(AmsConfig(station_id=AMS, psk=psk[AMS], timers=timers, abs_id=ABS),
                     rng=seed * 10 + 4),
    }
    net = Net(roles, loss=loss, seed=seed)
    roles[ARS1].attach(ABS, 0.0)
    roles[ARS2].attach(ABS, 0.0)
    net.settle(10.0)
    roles[AMS].attach(ARS1, net.now)
    net.settle(20.0)
    if roles[AMS].key_info() is None:
        raise RuntimeError("AMS entry did not complete")
    return net, roles


def _messages(frame: bytes, src: int, dst: int, roles: dict[int, Any]) -> list[str]:
    """Titles of the security messages in one frame (relayed ones opened on the relay link)."""
    out: list[str] = []
    for mp in split_frame(frame):
        fid = mpdu_fid(mp)
        if fid == FID_CONTROL:
            out.append(m.message_class(mp[2]).TITLE)
        elif fid == FID_RELAY:
            ars = roles[src] if src != ABS else roles[dst]
            link = ars.link
            hdr = mpdu_codec.parse_protected(mp)
            tek = next(t for t in (*link.sa.teks, link.sa.retired_tek)
                       if t is not None and t.eks == hdr.eks)
            _f, _e, _pn, payload = mpdu_codec.unseal(tek.key, stid=link.stid,
                                                     uplink=src != ABS, mpdu=mp)
            for _stid, inner in decapsulate_relay(payload):
                if mpdu_fid(inner) == FID_CONTROL:
                    out.append("relayed " + m.message_class(inner[2]).TITLE)
    return out


def _round_trips(directions: list[bool]) -> int:
    flips = sum(1 for a, b in pairwise(directions) if a != b)
    return (flips + 1) // 2 if directions else 0


def measure(variant: str, *, seed: int = 0, loss: float = 0.0) -> dict[str, Any]:
    """Run one handover variant and measure it from the frame log."""
    mode, predistribute = VARIANTS[variant]
    net, roles = _cell(mode, seed, loss)
    abs_, ams = roles[ABS], roles[AMS]
    start = len(net.log)
    if predistribute:
        abs_.prepare_handover(AMS, [ARS2], net.now)
        net.settle(2.0)
    ams.handover(ARS2, net.now)
    net.settle(5.0)
    if ams.serving != ARS2:
        raise RuntimeError(f"{variant}: handover did not complete")
    end = len(net.log)
    # a probe each way must cross via ARS-2 (protected data flows after the handover)
    for role in roles.values():
        role.events()
    ams.send_data(ABS, b"probe-up", net.now)
    abs_.send_data(AMS, b"probe-dn", net.now)
    net.settle(2.0)
    ok_up = any(isinstance(e, DataReceived) and e.via == ARS2 for e in abs_.events())
    ok_dn = any(isinstance(e, DataReceived) and e.via == ARS2 for e in ams.events())
    if loss == 0.0 and not (ok_up and ok_dn):
        raise RuntimeError(f"{variant}: no data via the target after the handover")

    per_link: dict[str, dict[str, Any]] = {}
    seq: dict[tuple[int, int], list[bool]] = {}
    titles: Counter[str] = Counter()
    t_req = t_rsp = None
    target_msgs: list[tuple[float, str]] = []
    for t, src, dst, frame in net.log[start:end]:
        msgs = _messages(frame, src, dst, roles)
        if not msgs:
            continue
        a, b = sorted((src, dst))
        key = f"{NAMES[a]}-{NAMES[b]}"
        entry = per_link.setdefault(key, {f"{NAMES[a]}->{NAMES[b]}": 0,
                                          f"{NAMES[b]}->{NAMES[a]}": 0})
        entry[f"{NAMES[src]}->{NAMES[dst]}"] += len(msgs)
        seq.setdefault((a, b), []).extend([src == a] * len(msgs))
        titles.update(msgs)
        if (src, dst) == (AMS, ARS2) and t_req is None and m.RngReq.TITLE in msgs:
            t_req = t
        if (src, dst) == (ARS2, AMS) and t_rsp is None and m.RngRsp.TITLE in msgs:
            t_rsp = t
        if (src, dst) == (ARS2, ABS):
            target_msgs += [(t, x) for x in msgs]
    for (a, b), dirs in seq.items():
        per_link[f"{NAMES[a]}-{NAMES[b]}"]["round_trips"] = _round_trips(dirs)
    if t_req is None or t_rsp is None:
        raise RuntimeError(f"{variant}: re-entry request/response not found in the log")
    at_target = [x for t, x in target_msgs if t_req <= t < t_rsp]
    return {
        "mode": mode.value,
        "predistributed": predistribute,
        "air_messages": sum(titles.values()),
        "round_trips_at_target": len(at_target),
        "target_requests": at_target,
        "reentry_to_rsp_hops": round((t_rsp - t_req) / 0.001),
        "per_link": per_link,
        "messages": dict(sorted(titles.items())),
        "data_via_target": bool(ok_up and ok_dn),
    }


def run(loss: float = 0.0, seeds: int = 0) -> dict[str, Any]:
    """All variants without loss; with ``loss``, also the mean over ``seeds`` lossy runs."""
    out: dict[str, Any] = {v: measure(v) for v in VARIANTS}
    if loss > 0 and seeds > 0:
        for v in VARIANTS:
            runs = [measure(v, seed=s + 1, loss=loss) for s in range(seeds)]
            out[v]["lossy"] = {
                "loss": loss, "seeds": list(range(1, seeds + 1)),
                "air_messages_mean": sum(r["air_messages"] for r in runs) / len(runs),
                "air_messages": [r["air_messages"] for r in runs],
                "completed": len(runs),
            }
    return out


def _table(res: dict[str, Any]) -> str:
    base = res[BASELINE]["air_messages"]
    rows = [f"{'variant':<15} {'air msgs':>8} {'vs base':>8} {'RTs@target':>10} "
            f"{'REQ->RSP hops':>13}  per link (a->b / b->a, round trips)"]
    for v, r in res.items():
        links = "; ".join(
            f"{k}: {'/'.join(str(x) for kk, x in d.items() if kk != 'round_trips')} "
            f"({d['round_trips']} RT)" for k, d in sorted(r["per_link"].items()))
        rows.append(f"{v:<15} {r['air_messages']:>8} {r['air_messages'] / base:>7.2f}x "
                    f"{r['round_trips_at_target']:>10} {r['reentry_to_rsp_hops']:>13}  {links}")
        if "lossy" in r:
            lo = r["lossy"]
            rows.append(f"{'':<15} with {lo['loss']:.0%} loss, {lo['completed']} seeds: "
                        f"{lo['air_messages_mean']:.1f} messages on average")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="PATH", help="write results as JSON here")
    ap.add_argument("--loss", type=float, default=0.0, help="also run with this frame loss")
    ap.add_argument("--seeds", type=int, default=5, help="seeds for the lossy runs")
    args = ap.parse_args(argv)
    info = announce()
    res = run(args.loss, args.seeds if args.loss > 0 else 0)
    print()
    print(_table(res))
    print(f"\nbaseline: {BASELINE} (the ARS holds no AMS keys); seeds: 0 (lossless)"
          + (f", 1..{args.seeds} at {args.loss:.0%} loss" if args.loss > 0 else ""))
    if args.json:
        out = {"benchmark": "handover", "machine": info, "baseline": BASELINE,
               "hop_time_s": 0.001, "seed": 0, **res}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
