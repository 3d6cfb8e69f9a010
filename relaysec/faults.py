"""Faults on purpose (``[[faults]]`` in the trial config): lost bursts, link outages and station
restarts on the simulated air, each with what it cost and when the cell recovered.

* ``{kind = "burst_loss", link = "A->B" | "A<->B" | "*", p}``: each burst (one frame from A to
  B in a zone) is dropped with probability *p* (seeded: the same seed drops the same bursts).
* ``{kind = "outage", link = ..., at_s, for_s}``: nothing crosses the link from *at_s* for
  *for_s* seconds of the run's clock.
* ``{kind = "restart", station, at_s}``: the station (an ARS or an AMS) loses all its state at
  *at_s*, as a crashed and restarted node process does, and enters the network again by
  itself; its peers find out from the traffic (docs/trial.md, "Faults").

Lost bursts are made by a :data:`relaysec.node.FrameTap` -- the frame is taken from the zone
burst before modulation -- so the MAC and the roles see exactly what a burst lost on the air
does to them. Fault injection lives here and in the trial, never in the roles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("burst_loss", "outage", "restart")
_KEYS: dict[str, dict[str, tuple[type, ...]]] = {
    "burst_loss": {"kind": (str,), "link": (str,), "p": (int, float)},
    "outage": {"kind": (str,), "link": (str,), "at_s": (int, float), "for_s": (int, float)},
    "restart": {"kind": (str,), "station": (str,), "at_s": (int, float)},
}


class FaultConfigError(ValueError):
    """A ``[[faults]]`` entry that cannot be run (named by its index and key)."""


def parse_link(link: str, names: Sequence[str]) -> tuple[str, str, bool] | None:
    """``"A->B"`` -> (A, B, False); ``"A<->B"`` -> (A, B, True); ``"*"`` -> None (every link)."""
    if link == "*":
        return None
    both = "<->" in link
    parts = link.split("<->" if both else "->")
    if len(parts) != 2 or not all(parts):
        raise FaultConfigError(f"link {link!r} must be 'A->B', 'A<->B' or '*'")
    a, b = (p.strip() for p in parts)
    for n in (a, b):
        if n not in names:
            raise FaultConfigError(f"link {link!r}: {n!r} is not a station")
    if a == b:
        raise FaultConfigError(f"link {link!r} names one station twice")
    return a, b, both


def validate_faults(faults: Any, stations: Sequence[Mapping[str, Any]]) -> None:
    """Check every ``[[faults]]`` entry; raise :class:`FaultConfigError` naming the first bad
    key."""
    if not isinstance(faults, list):
        raise FaultConfigError("faults must be an array of tables")
    names = [s["name"] for s in stations]
    roles = {s["name"]: s["role"] for s in stations}
    for i, f in enumerate(faults):
        where = f"faults[{i}]"
        if not isinstance(f, dict):
            raise FaultConfigError(f"{where} must be a table")
        kind = f.get("kind")
        if kind not in KINDS:
            raise FaultConfigError(f"{where}.kind must be one of {', '.join(KINDS)}, "
                                   f"got {kind!r}")
        keys = _KEYS[kind]
        for key, value in f.items():
            if key not in keys:
                raise FaultConfigError(f"unknown config key '{where}.{key}' for {kind}")
            if not isinstance(value, keys[key]) or isinstance(value, bool):
                raise FaultConfigError(f"{where}.{key} has the wrong type")
        for key in keys:
            if key not in f:
                raise FaultConfigError(f"{where}.{key} is missing")
        try:
            if "link" in f:
                parse_link(f["link"], names)
        except FaultConfigError as exc:
            raise FaultConfigError(f"{where}.{exc}") from None
        if kind == "burst_loss" and not 0.0 <= float(f["p"]) <= 0.9:
            raise FaultConfigError(f"{where}.p must lie in 0..0.9")
        if "at_s" in f and not 0.0 <= float(f["at_s"]) <= 86400.0:
            raise FaultConfigError(f"{where}.at_s must lie in 0..86400 s")
        if "for_s" in f and not 0.0 < float(f["for_s"]) <= 86400.0:
            raise FaultConfigError(f"{where}.for_s must lie in (0, 86400] s")
        if kind == "restart" and roles.get(f["station"]) not in ("ars", "ams"):
            raise FaultConfigError(f"{where}.station must name an ARS or an AMS "
                                   f"(restarting the ABS is not modelled)")


@dataclass
class Fault:
    """One configured fault and what it did."""

    index: int
    kind: str
    spec: dict[str, Any]
    link: tuple[str, str, bool] | None = None
    dropped_bursts: int = 0
    dropped_bytes: int = 0
    bursts_seen: int = 0
    fired_at: float | None = None
    recovered_at: float | None = None
    note: str = ""

    def hits(self, tx: str, dst: str) -> bool:
        if self.link is None:
            return True
        a, b, both = self.link
        return (tx, dst) == (a, b) or (both and (tx, dst) == (b, a))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, **{k: v for k, v in self.spec.items()
                                                     if k != "kind"}}
        if self.kind != "restart":
            out.update(bursts_seen=self.bursts_seen, dropped_bursts=self.dropped_bursts,
                       dropped_bytes=self.dropped_bytes)
        out.update(fired_at_s=self.fired_at, recovered_at_s=self.recovered_at)
        if self.fired_at is not None and self.recovered_at is not None:
            out["recovery_s"] = self.recovered_at - self.fired_at
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class FaultPlan:
    """The faults of a run: a frame tap for lost bursts and outages, restarts due by time.

    *clock*: the run's time (seconds); *stretch*: scales ``at_s``/``for_s`` like every other
    time constant over the air; *seed*: which bursts ``burst_loss`` drops (deterministic)."""

    faults: list[Fault]
    clock: Callable[[], float]
    seed: int = 0
    stretch: float = 1.0
    inner: Callable[[str, str, bytes], list[bytes]] | None = None
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, 0xFA17])

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], clock: Callable[[], float], *,
                    stretch: float = 1.0,
                    inner: Callable[[str, str, bytes], list[bytes]] | None = None) -> FaultPlan:
        names = [s["name"] for s in cfg["stations"]]
        faults = []
        for i, f in enumerate(cfg.get("faults", [])):
            link = parse_link(f["link"], names) if "link" in f else None
            faults.append(Fault(i, f["kind"], dict(f), link))
        return cls(faults, clock, int(cfg["seed"]), stretch, inner)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def tap(self, tx: str, dst: str, frame: bytes) -> list[bytes]:
        """:data:`relaysec.node.FrameTap`: the frames that actually go on the air."""
        frames = [frame] if self.inner is None else self.inner(tx, dst, frame)
        now = self.clock()
        for f in self.faults:
            if f.kind == "restart" or not f.hits(tx, dst):
                continue
            if f.kind == "outage":
                t0 = float(f.spec["at_s"]) * self.stretch
                if not t0 <= now < t0 + float(f.spec["for_s"]) * self.stretch:
                    continue
                f.fired_at = t0 if f.fired_at is None else f.fired_at
                drop = True
            else:
                drop = bool(self.rng.random() < float(f.spec["p"]))
            f.bursts_seen += len(frames)
            if drop:
                f.dropped_bursts += len(frames)
                f.dropped_bytes += sum(map(len, frames))
                return []
        return frames

    def due_restarts(self, now: float) -> list[Fault]:
        """Restarts whose time has come (each fires once)."""
        out = []
        for f in self.faults:
            if f.kind == "restart" and f.fired_at is None and \
                    now >= float(f.spec["at_s"]) * self.stretch:
                f.fired_at = now
                out.append(f)
        return out

    def outage_end(self, f: Fault) -> float:
        return (float(f.spec["at_s"]) + float(f.spec["for_s"])) * self.stretch

    def report(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self.faults]
