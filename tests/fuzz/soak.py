"""Stateful role soak: a whole cell lives through entry, data, TEK refresh, handovers and
re-authentication, over and over, while an attacker on the air alters, truncates, replays,
cross-delivers and injects frames -- until a given number of hostile frames went in.

The coverage-guided role harness (``tests/fuzz/harnesses/roles.py``) explores states; this one
brings volume (issue 11: "a stateful role fuzz run of >= 10^6 mutated frames across all states
and both modes"). Invariants, checked throughout: no exception escapes a role (the roles run
``strict``), no table outgrows its cap, no (TEK, PN) is handed out twice; and at the end of each
round, with the attacker gone, the cell recovers: the AMS is attached, both ends of every link
hold the same keys, and traffic flows.

    python -m tests.fuzz.soak --frames 1000000            # the campaign (both modes, ~minutes)
    python -m tests.fuzz.soak --frames 20000 --seed 3     # a short one
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

from stack.errors import SecurityError
from stack.nonces import NonceMonitor, monitoring
from stack.roles import SecurityMode
from stack.roles.base import RoleBase
from stack.roles.framing import split_frame
from tests.roles.harness import ABS, AMS, ARS1, ARS2, enter_all, same_keys

STATIONS = (ABS, ARS1, ARS2, AMS)
TABLE_CAP = 1100  # every capped table's default cap (max_known_stations 1024) plus slack


class Attacker:
    """Hostile air: per frame, maybe altered or truncated; maybe followed by a replay (to its
    receiver or anyone) and by an injected frame (random bytes or an altered recorded MPDU)."""

    def __init__(self, net: Any, rng: np.random.Generator, p: float) -> None:
        self.net, self.rng, self.p = net, rng, p
        self.history: list[tuple[int, int, bytes]] = []
        self.count: Counter[str] = Counter()
        self.active = True

    def _alter(self, frame: bytes) -> bytes:
        b = bytearray(frame)
        for _ in range(1 + int(self.rng.integers(0, 3))):
            i = int(self.rng.integers(0, len(b)))
            b[i] ^= 1 << int(self.rng.integers(0, 8)) if self.rng.random() < 0.7 else \
                int(self.rng.integers(1, 256))
        return bytes(b)

    def __call__(self, src: int, dst: int, frame: bytes) -> list[bytes]:
        if not self.active:
            return [frame]
        rng, out = self.rng, [frame]
        if len(self.history) < 4096:
            self.history.append((src, dst, frame))
        else:
            self.history[int(rng.integers(0, 4096))] = (src, dst, frame)
        u = rng.random()
        if u < self.p:
            out = [self._alter(frame)]
            self.count["altered"] += 1
        elif u < 1.2 * self.p:
            out = [frame[: int(rng.integers(0, len(frame)))]]
            self.count["truncated"] += 1
        if rng.random() < self.p:  # a replay, to its own receiver (returned) or to anyone
            _s, _d, old = self.history[int(rng.integers(0, len(self.history)))]
            if rng.random() < 0.5:
                out.append(old)
            else:
                self._to(int(rng.choice(STATIONS)), int(rng.choice(STATIONS)), old)
            self.count["replayed"] += 1
        if rng.random() < self.p / 2:  # an injection from any station to any station
            _s, _d, old = self.history[int(rng.integers(0, len(self.history)))]
            mpdus = split_frame(old)
            inj = self._alter(mpdus[int(rng.integers(0, len(mpdus)))]) if rng.random() < 0.7 \
                else rng.bytes(int(rng.integers(1, 64)))
            self._to(int(rng.choice(STATIONS)), int(rng.choice(STATIONS)), inj)
            self.count["injected"] += 1
        return out

    def _to(self, src: int, dst: int, frame: bytes) -> None:
        if src != dst and dst in self.net.roles:
            self.net.roles[dst].receive(src, frame, self.net.now)

    @property
    def hostile(self) -> int:
        return sum(self.count.values())


def check_tables(net: Any) -> None:
    for sid, role in net.roles.items():
        size = role.state_size() if hasattr(role, "state_size") else {}
        big = {k: v for k, v in size.items() if v > TABLE_CAP}
        if big or len(role.rejections_by_link) > 1025:
            raise AssertionError(f"{sid:#x}: tables past their caps: {big}")


def recover(net: Any, mode: SecurityMode) -> None:
    """Attacker gone: whatever the soak left, the cell must come back to a working state."""
    abs_, ars1, ars2, ams = (net.roles[s] for s in STATIONS)
    net.settle(3.0)
    for ars in (ars1, ars2):
        if ars.phase != "operational":
            ars.attach(ABS, net.now)
    net.settle(5.0)
    if ams.phase != "operational":
        ams.attach(ARS1, net.now)
        net.settle(8.0)
    assert ams.phase == "operational", ("AMS did not recover", ams.phase)
    serving = net.roles[ams.serving]
    holder = serving if mode == SecurityMode.DISTRIBUTED or ams.serving == ABS else abs_
    assert same_keys(ams.key_info(), holder.key_info(AMS)), (
        "keys disagree", ams.key_info(), holder.key_info(AMS), abs_.via_of(AMS), ams.serving)
    for ars in (ars1, ars2):
        assert same_keys(ars.key_info(), abs_.key_info(ars.station_id))
    before_up = [e for e in net.of(ABS, _data_cls()) if e.src == AMS]
    before_down = net.of(AMS, _data_cls())
    ams.send_data(ABS, b"soak-up", net.now)
    abs_.send_data(AMS, b"soak-down", net.now)
    net.settle(0.5)
    up = [e.payload for e in net.of(ABS, _data_cls()) if e.src == AMS][len(before_up):]
    down = [e.payload for e in net.of(AMS, _data_cls())][len(before_down):]
    assert up == [b"soak-up"] and down == [b"soak-down"], (up, down)


def _data_cls() -> type:
    from stack.roles import DataReceived
    return DataReceived


def soak_round(mode: SecurityMode, enc: bool, seed: int, budget: int, p: float,
               stats: Counter[str]) -> None:
    """One cell, attacked until ``budget`` hostile frames went in, then recovered."""
    rng = np.random.default_rng(seed)
    net, abs_, ars1, ars2, ams = enter_all(mode, encrypt_relay_control=enc)
    net.keep_events = True
    attacker = Attacker(net, rng, p)
    net.tamper = attacker
    targets = [ARS2, ABS, ARS1]
    while attacker.hostile < budget:
        op = rng.random()
        if ams.link is not None and op < 0.5:
            for _ in range(int(rng.integers(1, 6))):
                ams.send_data(ABS, rng.bytes(int(rng.integers(1, 200))), net.now)
                with contextlib.suppress(SecurityError):  # no keys at the ABS end right now
                    abs_.send_data(AMS, rng.bytes(int(rng.integers(1, 200))), net.now)
        elif op < 0.6 and ams.link is not None:
            ams._start_refresh(net.now)
        elif op < 0.72 and ams.link is not None and ams._ho is None:
            with contextlib.suppress(SecurityError):  # e.g. busy: a key agreement is running
                if mode == SecurityMode.DISTRIBUTED and rng.random() < 0.5 and \
                        abs_.via_of(AMS) is not None:
                    abs_.prepare_handover(AMS, [targets[0]], net.now)
                ams.handover(targets[0], net.now)
            targets.append(targets.pop(0))
        elif op < 0.76 and ams.link is not None:
            ams.reauthenticate(net.now)
        elif op < 0.8 and ams.phase == "failed":
            ams.attach(ARS1, net.now)
        elif op < 0.82:
            for ars in (ars1, ars2):
                if ars.phase == "failed":
                    ars.attach(ABS, net.now)
        net.settle(float(rng.uniform(0.01, 0.6)))
        for r in (abs_, ars1, ars2, ams):
            r.events()
        net.events = {s: [] for s in STATIONS}
        net.log.clear()
        check_tables(net)
    attacker.active = False
    net.events = {s: [] for s in STATIONS}
    recover(net, mode)
    stats.update(attacker.count)
    stats["rounds"] += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="hostile frames in total")
    ap.add_argument("--round", type=int, default=25_000, help="hostile frames per cell")
    ap.add_argument("--p", type=float, default=0.3, help="attack probability per frame")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the counts here")
    args = ap.parse_args(argv)
    RoleBase.strict = True
    stats: Counter[str] = Counter()
    mon = NonceMonitor(name="soak")
    configs = [(m, e) for m in (SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED)
               for e in (False, True)]
    t0 = time.perf_counter()
    k = 0
    while sum(v for key, v in stats.items() if key != "rounds") < args.frames:
        mode, enc = configs[k % len(configs)]
        with monitoring(NonceMonitor(name=f"round {k}")) as round_mon:
            soak_round(mode, enc, args.seed * 100_000 + k, args.round, args.p, stats)
        round_mon.check()
        mon.seen += round_mon.seen
        k += 1
        done = sum(v for key, v in stats.items() if key != "rounds")
        print(f"round {k:3d} ({mode.value}, relay control {'sealed' if enc else 'clear'}): "
              f"{done} hostile frames so far, {time.perf_counter() - t0:.0f} s", flush=True)
    total = {**stats, "hostile_frames": sum(v for key, v in stats.items() if key != "rounds"),
             "pns_checked": mon.seen, "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(total))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(total, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
