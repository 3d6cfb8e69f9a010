"""Entry through an ARS with a real AAA server: EAP-PSK (hostapd) beside EAP-TLS 1.2 and 1.3
(FreeRADIUS), one run, table + JSON.

Per method: the EAP conversation of the AMS through the RADIUS back end (EAP round trips, EAP
bytes each way, RADIUS round trips; measured with the real server, no air), and the default
trial's AMS entry through ARS-1 on the simulated air (the ``ams_entry`` phase: simulated time and
5 ms frames, and the EAP-Transfers the AMS sent). EAP-TLS packets are at most
``relaysec.aaa.EAP_FRAGMENT`` bytes so that each fits one control MPDU in a zone burst.

Run: ``python -m benchmarks.aaa_entry [--json PATH]`` (needs Debian's hostapd and freeradius).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from relaysec.aaa import EAP_FRAGMENT, make_authenticator, station_identity
from relaysec.aaa_lab import private_server
from relaysec.cell import station_psk
from relaysec.config import load_config
from relaysec.trial import run_trial
from stack.pkm.eap import EapCode, EapPacket

METHODS = (("EAP-PSK", "hostapd", "1.3"), ("EAP-TLS 1.2", "freeradius", "1.2"),
           ("EAP-TLS 1.3", "freeradius", "1.3"))


def _peer(cfg: dict[str, Any], st: dict[str, Any]) -> Any:
    ident = (station_identity(cfg, st) or "").encode()
    if st.get("eap") == "tls":
        from stack.pkm.eap_tls import EapTlsPeer

        return EapTlsPeer(ident, cert=st["cert"], key=st["key"], ca=st["ca"],
                          server_name=st["server_name"], fragment_size=EAP_FRAGMENT)
    from stack.pkm.eap_psk import EapPskPeer

    return EapPskPeer(ident, station_psk(cfg, st))


def conversation(cfg: dict[str, Any]) -> dict[str, Any]:
    """The AMS's EAP conversation through the RADIUS back end of ``cfg`` (wall clock)."""
    st = next(s for s in cfg["stations"] if s["name"] == "AMS")
    setup = make_authenticator(cfg, {}, rng=None, wall=True)
    auth, link = setup.authenticator, setup.link
    assert link is not None
    peer = _peer(cfg, st)
    session = auth.start(int(st["station_id"]).to_bytes(6, "big"))
    down = up = trips = 0
    t0 = time.perf_counter()
    try:
        while session.result is None and time.perf_counter() - t0 < 20:
            link.service()
            out, _ = session.poll()
            if out is None:
                time.sleep(0.001)
                continue
            down += len(out)
            if EapPacket.decode(out).code == EapCode.REQUEST:
                reply, _ = peer.handle(out)
                up += len(reply)
                trips += 1
                session.handle(reply)
            else:
                peer.handle(out)
    finally:
        link.close()
    ok = session.result is not None and session.result.success
    return {"ok": ok, "eap_round_trips": trips, "eap_bytes_down": down, "eap_bytes_up": up,
            "radius_round_trips": session.round_trips, "wall_ms": (time.perf_counter() - t0) * 1e3}


def main(argv: list[str] | None = None) -> int:
    """Measure every method; print the table, write JSON when asked."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.aaa_entry")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    rows = []
    for name, server, tls_max in METHODS:
        cfg = load_config(overrides=[("report.progress", False)])
        with private_server(cfg, server, tls_max=tls_max) as run_cfg:
            conv = conversation(run_cfg)
            report, _ = run_trial(run_cfg)
        phase = next(p for p in report["phases"] if p["name"] == "ams_entry")
        sim_ms = (phase["t_end"] - phase["t_start"]) * 1e3
        frame_ms = float(run_cfg["phy"]["frame_ms"])
        rows.append({"method": name, "server": server, **conv, "trial_ok": report["ok"],
                     "entry_ms": sim_ms, "entry_frames": round(sim_ms / frame_ms),
                     "ams_eap_transfers": report["control_messages"]["AMS"].get(
                         "PKMv3 EAP-Transfer", 0)})
    head = (f"{'method':12} {'server':10} {'EAP RTs':>7} {'down B':>7} {'up B':>6} "
            f"{'RADIUS RTs':>10} {'entry ms':>8} {'frames':>6} {'AMS EAP-Tr':>10}")
    print(head)
    for r in rows:
        print(f"{r['method']:12} {r['server']:10} {r['eap_round_trips']:7d} "
              f"{r['eap_bytes_down']:7d} {r['eap_bytes_up']:6d} {r['radius_round_trips']:10d} "
              f"{r['entry_ms']:8.0f} {r['entry_frames']:6d} {r['ams_eap_transfers']:10d}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"eap_fragment": EAP_FRAGMENT, "rows": rows}, fh, indent=2)
    return 0 if all(r["ok"] and r["trial_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
