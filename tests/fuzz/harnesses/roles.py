"""Stateful harness of the sans-I/O roles: a whole cell in memory, with the fuzzer on the air.

A cell of an ABS, two ARSs and an AMS (security mode DISTRIBUTED or CENTRALIZED, relay control
plain or inside the relay SA, ARQ off or on -- end to end, and per hop in distributed mode, as the
trial runs it) starts from a snapshot: nobody attached, both ARSs attached, the AMS
attached through ARS-1, or that plus its AK pre-distributed to ARS-2 for a handover. The input is a
program of up to :data:`MAX_OPS` operations on that cell:

* honest exchange (collect every role's frames, deliver them; or run the cell until it is quiet);
* the next frame in flight delivered, dropped, altered, truncated, duplicated, sent to another
  role, or held back;
* a frame from the history replayed (to its receiver or another one, as from any sender);
* raw bytes, or one MPDU (any FID, arbitrary payload, or an earlier MPDU with a byte changed)
  injected from any station to any role;
* time advanced (a little, to the next deadline, or by many seconds: TEK refresh and
  re-authentication deadlines) and every role's ``timer`` run;
* commands: data either way, entry (``attach``) at either ARS or the ABS, handover, AK
  pre-distribution, re-authentication.

Invariants: no exception escapes ``receive``, ``timer``, ``frames_to_send``, ``events`` or
``next_deadline`` (``ALLOWED`` is empty: the roles must never raise on input), commands raise only
:class:`stack.errors.SecurityError`, no per-role table (any dict, list, deque or set attribute,
and one level inside them) grows past :data:`TABLE_LIMIT` entries, and no (TEK, direction, PN) is
handed out twice (``stack.nonces``, where present).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections import Counter, deque
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from stack.arq import ArqParams
from stack.errors import SecurityError
from stack.pkm.authenticator import BuiltinAuthenticator
from stack.roles import Lifetimes, SecurityMode, Timers
from stack.roles.base import RoleBase
from stack.roles.ids import station_bytes
from stack.roles.memnet import Net
from tests.fuzz._core import Reader, Violation
from tests.roles import harness as cell

ALLOWED: tuple[type[BaseException], ...] = ()

# The roles catch a handler bug as ``internal_error`` so a node keeps running; the fuzzer must
# see it as the crash it is.
RoleBase.strict = True

ABS, ARS1, ARS2, AMS = cell.ABS, cell.ARS1, cell.ARS2, cell.AMS
STATIONS = (ABS, ARS1, ARS2, AMS)
TIMERS = Timers(rto=0.2, max_retries=4)
LIFETIMES = Lifetimes(ak=300.0, tek=30.0, pn_refresh=8)
MODES = (SecurityMode.DISTRIBUTED, SecurityMode.CENTRALIZED)
PHASES = ("empty", "ars_entered", "ams_entered", "ak_predistributed")
MAX_OPS = 48
MAX_AIR = 256
HISTORY = 48
SETTLE_STEPS = 100
TABLE_LIMIT = 64
COUNTER_LIMIT = 256
"""Counters are keyed by reason (and neighbour): bounded by the code, not by traffic."""
OPS = ("step", "deliver_next", "replay", "inject", "tick", "jump", "command", "settle",
       "step_capped", "collect")
"""Operation codes of a program (byte value modulo their number); ``make_corpus`` uses them."""
FATES = ("deliver", "drop", "alter", "truncate", "duplicate", "redirect", "delay")
COMMANDS = ("ams_data", "abs_data", "ams_attach", "ars_attach", "handover", "predistribute",
            "reauth", "ars_data")
INJECTIONS = ("raw", "mpdu", "altered_mpdu")
INJECT_FIDS = (0, 0, 0, 2, 3, 15, 1, 14)

ARQ = ArqParams(window=16, rto_initial=0.1, rto_min=0.02, rto_max=0.5, lifetime=3.0, purge=4.0,
                ack_delay=0.01)
"""ARQ of the cells with the ARQ bit set: a small window, so that a program reaches its edge."""

_snapshots: dict[tuple[int, int, bool, bool], bytes] = {}


def _cell(mode: SecurityMode, erc: bool) -> dict[int, Any]:
    """The role tests' standard cell (``tests.roles.harness.build``, kept in step with the
    roles), with a seeded authenticator so that every input replays exactly."""
    abs_, ars1, ars2, ams = cell.build(mode, TIMERS, LIFETIMES, erc)
    seeded = BuiltinAuthenticator({station_bytes(k): v for k, v in cell.PSK.items()}, rng=5)
    for name, value in list(vars(abs_).items()):
        if isinstance(value, BuiltinAuthenticator):
            setattr(abs_, name, seeded)
    return {ABS: abs_, ARS1: ars1, ARS2: ars2, AMS: ams}


def _snapshot(mode_i: int, phase: int, erc: bool, arq: bool = False) -> bytes:
    """The pickled cell after ``PHASES[phase]`` (built once per process)."""
    key = (mode_i, phase, erc, arq)
    if key not in _snapshots:
        roles = _cell(MODES[mode_i], erc)
        if arq:   # the ABS and the ARSs take per-hop from their mode; the AMS is told
            distributed = MODES[mode_i] == SecurityMode.DISTRIBUTED
            for sid, role in roles.items():
                role.configure_arq(ARQ, per_hop=sid != AMS or distributed)
        net = Net(roles)
        if phase >= 1:
            roles[ARS1].attach(ABS, 0.0)
            roles[ARS2].attach(ABS, 0.0)
            net.settle(5.0)
        if phase >= 2:
            roles[AMS].attach(ARS1, net.now)
            net.settle(5.0)
        if phase >= 3 and MODES[mode_i] == SecurityMode.DISTRIBUTED:
            roles[ABS].prepare_handover(AMS, [ARS2], net.now)
            net.settle(2.0)
        for role in roles.values():
            role.events()
        _snapshots[key] = pickle.dumps((roles, net.now))
    return _snapshots[key]


def setup() -> None:
    """Quiet the roles' logging and build every snapshot."""
    logging.getLogger("stack.roles").setLevel(logging.CRITICAL)
    for mode_i in range(len(MODES)):
        for phase in range(len(PHASES)):
            for erc in (False, True):
                for arq in (False, True):
                    _snapshot(mode_i, phase, erc, arq)


def _monitor() -> AbstractContextManager[Any]:
    try:
        from stack.nonces import monitoring
    except ImportError:  # the nonce monitor is optional here
        return nullcontext(None)
    return monitoring(name="fuzz-roles")


def _size(value: object) -> int | None:
    if isinstance(value, (dict, list, deque, set, frozenset)):
        return len(value)
    return None


def _tables(role: object) -> dict[str, tuple[int, int]]:
    """Size and limit of every container attribute of ``role``, and one level inside."""
    out: dict[str, tuple[int, int]] = {}
    for name, value in vars(role).items():
        n = _size(value)
        if n is None:
            continue
        limit = COUNTER_LIMIT if isinstance(value, Counter) else TABLE_LIMIT
        if name == "_heap":  # the deadline heap: compacted to at most 2 x live requests + 33
            limit = 3 * TABLE_LIMIT + 64
        out[name] = (n, limit)
        if isinstance(value, dict):
            inner = list(value.values())
            total = sum(_size(v) or 0 for v in inner)
            if total:
                out[f"{name}[*]"] = (total, TABLE_LIMIT * 4)
            for v in inner:
                if hasattr(v, "__dict__") and not isinstance(v, type):
                    for k2, v2 in vars(v).items():
                        n2 = _size(v2)
                        if n2 is not None:
                            key = f"{name}[*].{k2}"
                            prev = out.get(key, (0, TABLE_LIMIT))[0]
                            out[key] = (max(prev, n2), TABLE_LIMIT)
    return out


class _World:
    """The cell, the frames in flight, the history and the simulated clock."""

    def __init__(self, roles: dict[int, Any], now: float) -> None:
        self.roles = roles
        self.now = now
        self.air: deque[tuple[int, int, bytes]] = deque()
        self.history: deque[tuple[int, int, bytes]] = deque(maxlen=HISTORY)

    # -- the calls that must never raise ------------------------------------------------------
    def deliver(self, src: int, dst: int, frame: bytes) -> None:
        """``receive`` at ``dst`` (must not raise)."""
        role = self.roles.get(dst)
        if role is not None:
            role.receive(src, frame, self.now)

    def collect(self, max_bytes: int | None = None) -> int:
        """Every role's ``frames_to_send`` into the air and the history; returns how many."""
        n = 0
        for sid, role in self.roles.items():
            for dst, frame in role.frames_to_send(self.now, max_bytes):
                self.history.append((sid, dst, frame))
                if len(self.air) < MAX_AIR:
                    self.air.append((sid, dst, frame))
                n += 1
        return n

    def timers(self) -> None:
        """Every role's ``timer``."""
        for role in self.roles.values():
            role.timer(self.now)

    def next_deadline(self) -> float | None:
        """The earliest deadline of any role."""
        dls = [d for r in self.roles.values() if (d := r.next_deadline()) is not None]
        return min(dls) if dls else None

    def drain(self) -> None:
        """Every role's ``events``."""
        for role in self.roles.values():
            role.events()

    # -- honest exchange ----------------------------------------------------------------------
    def step(self, max_bytes: int | None = None) -> bool:
        """One honest hop: collect everything, deliver everything; True if anything was sent."""
        sent = self.collect(max_bytes)
        while self.air:
            self.deliver(*self.air.popleft())
        self.now += 0.001
        return bool(sent)

    def settle(self, horizon: float) -> None:
        """Run the cell honestly (hops, then deadlines) until quiet or ``horizon`` seconds."""
        end = self.now + horizon
        for _ in range(SETTLE_STEPS):
            if self.step():
                continue
            nxt = self.next_deadline()
            if nxt is None or nxt > end:
                return
            self.now = max(self.now, nxt)
            self.timers()

    # -- checks -------------------------------------------------------------------------------
    def check_tables(self) -> None:
        """Raise a ``table_growth`` violation for any table past its bound."""
        for sid, role in self.roles.items():
            for name, (n, limit) in _tables(role).items():
                if n > limit:
                    raise Violation(f"table_growth:{type(role).__name__}.{name}",
                                    f"{n} entries at station {sid:012x}")


def _mutate(r: Reader, frame: bytes) -> bytes:
    if not frame:
        return r.blob(64)
    b = bytearray(frame)
    for _ in range(1 + r.below(3)):
        b[r.below(len(b))] ^= r.u8() or 1
    return bytes(b)


def _mpdus(frame: bytes) -> list[bytes]:
    """MPDUs of a frame as the roles cut it (best effort: stops at the first bad Length)."""
    out, pos = [], 0
    while pos + 2 <= len(frame):
        n = int.from_bytes(frame[pos : pos + 2], "big") & 0x7FF
        if n < 2 or pos + n > len(frame):
            break
        out.append(frame[pos : pos + n])
        pos += n
    return out


def _agmh_mpdu(fid: int, payload: bytes) -> bytes:
    payload = payload[:2000]
    return ((fid << 12) | (len(payload) + 2)).to_bytes(2, "big") + payload


def _deliver_next(w: _World, r: Reader) -> None:
    if not w.air:
        w.collect()
    if not w.air:
        return
    src, dst, frame = w.air.popleft()
    fate = FATES[r.below(len(FATES))]
    if fate == "deliver":
        w.deliver(src, dst, frame)
    elif fate == "alter":
        w.deliver(src, dst, _mutate(r, frame))
        STATS["altered"] += 1
    elif fate == "truncate":
        w.deliver(src, dst, frame[: r.below(len(frame) + 1)])
        STATS["truncated"] += 1
    elif fate == "duplicate":
        w.deliver(src, dst, frame)
        w.deliver(src, dst, frame)
        STATS["duplicated"] += 1
    elif fate == "redirect":
        w.deliver(src, r.pick(STATIONS), frame)  # type: ignore[arg-type]
        STATS["redirected"] += 1
    elif fate == "delay" and len(w.air) < MAX_AIR:
        w.air.append((src, dst, frame))
    # "drop": gone


def _inject(w: _World, r: Reader) -> None:
    src, dst = r.pick(STATIONS), r.pick(STATIONS)
    how = INJECTIONS[r.below(len(INJECTIONS))]
    if how == "raw":
        frame = r.blob(300)
    elif how == "mpdu":
        fid = r.pick(INJECT_FIDS)
        frame = _agmh_mpdu(fid, r.blob(200))  # type: ignore[arg-type]
    else:
        units = [u for _s, _d, f in w.history for u in _mpdus(f)]
        if not units:
            return
        frame = _mutate(r, units[r.below(len(units))])
    w.deliver(src, dst, frame)  # type: ignore[arg-type]
    STATS["injected"] += 1


def _command(w: _World, r: Reader) -> None:
    roles = w.roles
    abs_, ams = roles[ABS], roles[AMS]
    what = COMMANDS[r.below(len(COMMANDS))]
    try:
        if what == "ams_data":
            ams.send_data(ABS, r.blob(64), w.now)
        elif what == "abs_data":
            abs_.send_data(r.pick((AMS, ARS1, ARS2)), r.blob(64), w.now)
        elif what == "ams_attach":
            ams.attach(r.pick((ARS1, ARS2, ABS)), w.now)
        elif what == "ars_attach":
            roles[r.pick((ARS1, ARS2))].attach(ABS, w.now)
        elif what == "handover":
            ams.handover(r.pick((ARS2, ARS1, ABS)), w.now)
        elif what == "predistribute":
            if abs_.via_of(AMS) is not None:
                abs_.prepare_handover(AMS, [r.pick((ARS2, ARS1))], w.now)
        elif what == "reauth":
            roles[r.pick((AMS, ARS1, ARS2))].reauthenticate(w.now)
        else:
            roles[r.pick((ARS1, ARS2))].send_data(ABS, r.blob(64), w.now)
    except SecurityError:
        pass


def _run(w: _World, r: Reader) -> None:
    for _ in range(MAX_OPS):
        if not r.remaining:
            break
        op = OPS[r.below(len(OPS))]
        if op == "step":
            w.step()
        elif op == "deliver_next":
            _deliver_next(w, r)
        elif op == "replay" and w.history:
            src, dst, frame = w.history[r.below(len(w.history))]
            if r.flag():
                src, dst = r.pick(STATIONS), r.pick(STATIONS)
            w.deliver(src, dst, frame)  # type: ignore[arg-type]
            STATS["replayed"] += 1
        elif op == "inject":
            _inject(w, r)
        elif op == "tick":
            w.now += 0.005 * (1 + r.u8())
            w.timers()
        elif op == "jump":
            nxt = w.next_deadline()
            w.now = max(w.now, nxt if nxt is not None and r.flag() else w.now + r.u8())
            w.timers()
        elif op == "command":
            _command(w, r)
        elif op == "settle":
            w.settle(0.5 + r.u8() / 16)
        elif op == "step_capped":
            w.step(max_bytes=2047)
        else:
            w.collect()
        w.drain()
        w.check_tables()


def one_input(data: bytes) -> None:
    """Restore the snapshot the input names and run its program."""
    r = Reader(data)
    head = r.u8()
    mode_i, phase, erc, arq = head & 1, (head >> 1) % len(PHASES), bool(head & 8), bool(head & 16)
    roles, now = pickle.loads(_snapshot(mode_i, phase, erc, arq))
    w = _World(roles, now)
    with _monitor() as mon:
        _run(w, r)
        w.settle(1.0)
        w.drain()
        w.check_tables()
    if mon is not None and mon.reused:
        raise Violation("nonce_reuse", mon.describe())
    _check_keys_agree(roles)
    STATS["executions"] += 1
    if _STATS_PATH and STATS["executions"] % 200 == 0:
        _dump_stats()


def _check_keys_agree(roles: dict[int, Any]) -> None:
    """Both ends of every link that name the same AK hold the same keys: same CMAC keys, and the
    same TEK for every COUNTER_TEK both hold (key check values; nothing else is compared)."""
    abs_ = roles[ABS]
    pairs = [(roles[s], abs_, s, None) for s in (ARS1, ARS2)]
    ams = roles[AMS]
    if ams.serving is not None:
        serving = roles.get(ams.serving)
        if serving is not None:
            pairs.append((ams, serving, AMS, None))
    for sub, srv, sid, _ in pairs:
        a, b = sub.key_info(), srv.key_info(sid)
        if a is None or b is None or a.akid != b.akid:
            continue
        common = set(a.counter_teks) & set(b.counter_teks)
        ka = dict(zip(a.counter_teks, a.kcv_teks, strict=True))
        kb = dict(zip(b.counter_teks, b.kcv_teks, strict=True))
        if (a.kcv_cmac_u, a.kcv_cmac_d) != (b.kcv_cmac_u, b.kcv_cmac_d) or \
                any(ka[c] != kb[c] for c in common):
            raise Violation("keys_disagree", f"link of {sid:#x}: {a} vs {b}")


STATS: Counter[str] = Counter()
"""Hostile frames this process delivered, by kind, and executions (for campaign reports)."""
_STATS_PATH = os.environ.get("RELAYSEC_FUZZ_STATS", "")


def _dump_stats() -> None:
    with open(_STATS_PATH, "w", encoding="utf-8") as f:
        json.dump(dict(STATS), f)
