"""Test helpers for trials: fast settings and an attacker on the simulated air (test-only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from relaysec.config import load_config

#: Settings that keep a full trial to a couple of seconds: few packets, short TEK life.
FAST = [
    ("traffic.packets_per_direction", 8),
    ("security.tek_lifetime_s", 0.3),
    ("traffic.drain_frames", 10),
    ("report.progress", False),
]


def fast_config(*extra: tuple[str, Any]) -> dict[str, Any]:
    return load_config(overrides=[*FAST, *extra])


class Attacker:
    """A FrameTap: an adversary on the air who can modulate. For frames on the chosen links it
    flips one random bit in a fraction of them (re-modulated, so the CRC is valid and only the
    security layer can notice) and replays earlier frames verbatim. Deterministic from the seed.
    """

    def __init__(self, seed: int, *, links: set[tuple[str, str]], flip: float, replay: float):
        self.rng = np.random.default_rng(seed)
        self.links = links
        self.flip = flip
        self.replay = replay
        self.history: dict[tuple[str, str], list[bytes]] = {}
        self.flipped = 0
        self.replayed = 0
        self.active = True

    def __call__(self, tx: str, dst: str, frame: bytes) -> list[bytes]:
        key = (tx, dst)
        if key not in self.links or not self.active:
            return [frame]
        out = [frame]
        if self.rng.random() < self.flip:
            bad = bytearray(frame)
            bit = int(self.rng.integers(0, 8 * len(bad)))
            bad[bit // 8] ^= 1 << (bit % 8)
            out = [bytes(bad)]
            self.flipped += 1
        past = self.history.setdefault(key, [])
        if past and self.rng.random() < self.replay:
            out.append(past[int(self.rng.integers(0, len(past)))])
            self.replayed += 1
        past.append(frame)
        return out
