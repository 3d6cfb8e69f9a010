"""Per-link MCS selection from measured SNR and CRC outcomes (802.16m link adaptation).

One :class:`LinkAdaptation` per directed link, sans-I/O: the runtime calls
:meth:`LinkAdaptation.observe` with the receiver's ``phy.Burst.snr_db`` and CRC result of every
burst on the link, and reads :attr:`LinkAdaptation.mcs` before the next transmission. Control
messages and the MAP always go at :data:`ROBUST_MCS`.

The rule, in dB throughout:

* the SNR is smoothed by an EWMA **in dB** (a fade pulls it down by its dB depth, so it errs on
  the robust side; a linear average would hardly notice one deep fade);
* an outer loop (OLLA) adds ``olla_up_db`` to a penalty on every CRC failure and takes
  ``olla_down_db`` off on every success, within ``[0, olla_max_db]``; the *effective* SNR is the
  smoothed SNR minus the penalty, so a link worse than AWGN (fading, interference) learns its
  offset (the failure rate settles near ``olla_down_db / (olla_up_db + olla_down_db)`` when the
  table is optimistic, and the penalty decays to 0 when it is not);
* MCS ``m`` is usable when ``threshold[m] + margin <= effective SNR``, where ``threshold`` is the
  Es/N0 of PER 1 % for a 500-byte burst in AWGN (``relaysec/data/mcs_thresholds.json``, measured
  by ``benchmarks/mcs_thresholds.py``);
* **down at once**: when the current MCS fails ``down_margin_db``, go to the highest MCS that
  passes it; **up with hysteresis**: climb to the highest MCS that has passed ``up_margin_db`` on
  each of the last ``up_after`` consecutive observations;
* always within ``[min_mcs, max_mcs]``; before the first observation, ``start_mcs``.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from typing import Any

import phy

#: Control messages and the MAP always use the most robust MCS of the ladder.
ROBUST_MCS: str = phy.mcs_table()[0]

THRESHOLDS_FORMAT = "relaysec.mcs_thresholds/1"
_THRESHOLDS_RESOURCE = "data/mcs_thresholds.json"


class ThresholdTableError(ValueError):
    """The MCS threshold file is missing, malformed or inconsistent with the MCS ladder."""


# ---- the threshold table -------------------------------------------------------------------

def _finite(x: object) -> bool:
    """A finite real number (numpy scalars included), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _row(values: Mapping[str, object], where: str) -> dict[str, float]:
    """``{mcs: snr_db}`` for the whole ladder, finite and increasing, in ladder order."""
    ladder = phy.mcs_table()
    missing = [m for m in ladder if m not in values]
    if missing:
        raise ThresholdTableError(f"MCS threshold table {where} lacks {', '.join(missing)}")
    unknown = sorted(set(values) - set(ladder))
    if unknown:
        raise ThresholdTableError(f"MCS threshold table {where} has unknown MCS "
                                  f"{', '.join(map(str, unknown))}")
    row: dict[str, float] = {}
    for m in ladder:
        v = values[m]
        if not _finite(v):
            raise ThresholdTableError(
                f"MCS threshold table {where}: {m} snr_db is {v!r}, not a finite number")
        row[m] = float(v)  # type: ignore[arg-type]
    for lo, hi in itertools.pairwise(ladder):
        if not row[lo] < row[hi]:
            raise ThresholdTableError(
                f"MCS threshold table {where}: thresholds not increasing along the ladder "
                f"({lo} {row[lo]} dB, {hi} {row[hi]} dB)")
    return row


def parse_thresholds(doc: object, source: str = "<thresholds>") -> dict[str, dict[str, float]]:
    """Validate a threshold document (the JSON written by ``benchmarks/mcs_thresholds.py``) and
    return ``{profile name: {mcs name: snr_db}}`` for every profile a table applies to.

    Raises :class:`ThresholdTableError` naming ``source`` and the first problem found."""
    def bad(why: str) -> ThresholdTableError:
        return ThresholdTableError(f"MCS threshold table {source}: {why}")

    if not isinstance(doc, dict):
        raise bad("top level is not a JSON object")
    if doc.get("format") != THRESHOLDS_FORMAT:
        raise bad(f"format is {doc.get('format')!r}, expected {THRESHOLDS_FORMAT!r}")
    tables = doc.get("tables")
    if not isinstance(tables, dict) or not tables:
        raise bad("'tables' is missing or empty")
    known = set(phy.profiles())
    out: dict[str, dict[str, float]] = {}
    for name, table in tables.items():
        where = f"tables[{name!r}]"
        if not isinstance(table, dict):
            raise bad(f"{where} is not an object")
        applies = table.get("applies_to")
        if not isinstance(applies, list) or not applies:
            raise bad(f"{where}.applies_to is missing or empty")
        mcs = table.get("mcs")
        if not isinstance(mcs, dict):
            raise bad(f"{where}.mcs is missing")
        for m, e in mcs.items():
            if not isinstance(e, dict):
                raise bad(f"{where}.mcs[{m!r}] is not an object with 'snr_db'")
        row = _row({m: e.get("snr_db") for m, e in mcs.items()}, f"{source}: {where}.mcs")
        for p in applies:
            if p not in known:
                raise bad(f"{where}.applies_to names unknown profile {p!r}")
            if p in out:
                raise bad(f"profile {p!r} has more than one table")
            out[p] = row
    return out


def load_thresholds(path: str | None = None) -> dict[str, dict[str, float]]:
    """Read and validate the threshold file (default: the one shipped in ``relaysec/data``)."""
    try:
        if path is None:
            source = f"relaysec/{_THRESHOLDS_RESOURCE}"
            text = resources.files("relaysec").joinpath(_THRESHOLDS_RESOURCE).read_text("utf-8")
        else:
            source = path
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ThresholdTableError(f"MCS threshold table {source}: cannot read: {e}") from e
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise ThresholdTableError(f"MCS threshold table {source}: not JSON: {e}") from e
    return parse_thresholds(doc, source)


_cache: dict[str, dict[str, float]] | None = None


def thresholds(profile: str = "P2.5") -> dict[str, float]:
    """``{mcs: snr_db}`` of the shipped table for ``profile`` (name or alias), ladder order:
    the ``phy.Burst.snr_db`` at which a 500-byte burst has PER 1 % in AWGN."""
    global _cache
    if _cache is None:
        _cache = load_thresholds()
    name = phy.get_profile(profile).name
    if name not in _cache:
        raise ThresholdTableError(f"MCS threshold table has no entry for profile {name!r} "
                                  f"(covers {', '.join(sorted(_cache))})")
    return dict(_cache[name])


# ---- configuration -------------------------------------------------------------------------

def _bits(mcs: str) -> Fraction:
    """Information bits per data subcarrier of ``mcs``."""
    m = phy.get_mcs(mcs)
    return m.bits_per_symbol * Fraction(m.code_rate)


def _mcs_index(field: str, value: object) -> int:
    ladder = phy.mcs_table()
    if not isinstance(value, str) or value not in ladder:
        raise ValueError(f"{field}: unknown MCS {value!r}; known: {', '.join(ladder)}")
    return ladder.index(value)


@dataclass(frozen=True)
class LinkAdaptationConfig:
    """Tuning of :class:`LinkAdaptation`; every value is checked (``ValueError`` names it).

    Attributes:
        alpha: EWMA weight of a new SNR observation, in dB, ``0 < alpha <= 1`` (1 = no
            smoothing). The receiver's estimate scatters by 0.2-0.5 dB per burst.
        up_margin_db: margin over the threshold an MCS needs before the link climbs to it.
        down_margin_db: margin under which the link leaves its MCS at once
            (``<= up_margin_db``; the difference is the hysteresis band).
        up_after: consecutive observations an MCS must pass ``up_margin_db`` before a climb.
        olla_up_db / olla_down_db: penalty added on a CRC failure / removed on a success.
        olla_max_db: bound of the penalty.
        start_mcs: MCS before any observation.
        min_mcs / max_mcs: floor and ceiling of the choice.
        skip_dominated: never choose an MCS that carries no more bits per subcarrier than a
            more robust one (64QAM-1/2 carries 3, like 16QAM-3/4, and needs 1.2-1.4 dB more).
    """

    alpha: float = 0.3
    up_margin_db: float = 1.0
    down_margin_db: float = 0.0
    up_after: int = 4
    olla_up_db: float = 1.0
    olla_down_db: float = 0.02
    olla_max_db: float = 10.0
    start_mcs: str = ROBUST_MCS
    min_mcs: str = ROBUST_MCS
    max_mcs: str = phy.mcs_table()[-1]
    skip_dominated: bool = True

    def __post_init__(self) -> None:
        for name in ("alpha", "up_margin_db", "down_margin_db", "olla_up_db", "olla_down_db",
                     "olla_max_db"):
            if not _finite(getattr(self, name)):
                raise ValueError(f"{name}: must be a finite number, got {getattr(self, name)!r}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha: must be in (0, 1], got {self.alpha!r}")
        if self.down_margin_db > self.up_margin_db:
            raise ValueError(f"down_margin_db: must be <= up_margin_db ({self.up_margin_db}), "
                             f"got {self.down_margin_db!r}")
        if not isinstance(self.up_after, int) or isinstance(self.up_after, bool) \
                or self.up_after < 1:
            raise ValueError(f"up_after: must be an int >= 1, got {self.up_after!r}")
        for name in ("olla_up_db", "olla_down_db", "olla_max_db"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)!r}")
        lo = _mcs_index("min_mcs", self.min_mcs)
        hi = _mcs_index("max_mcs", self.max_mcs)
        start = _mcs_index("start_mcs", self.start_mcs)
        if lo > hi:
            raise ValueError(f"max_mcs: {self.max_mcs} is below min_mcs {self.min_mcs}")
        if not isinstance(self.skip_dominated, bool):
            raise ValueError(f"skip_dominated: must be a bool, got {self.skip_dominated!r}")
        if not lo <= start <= hi:
            raise ValueError(f"start_mcs: {self.start_mcs} is outside "
                             f"[{self.min_mcs}, {self.max_mcs}]")


# ---- the per-link state machine ------------------------------------------------------------

class LinkAdaptation:
    """MCS choice for one directed link (see the module doc for the rule).

    Args:
        config: tuning; default :class:`LinkAdaptationConfig()`.
        profile: which threshold table (``phy.profiles()`` name or alias).
        table: thresholds ``{mcs: snr_db}`` for every MCS of the ladder instead of the shipped
            table (tests, other burst sizes); must increase along the ladder.
    """

    def __init__(self, config: LinkAdaptationConfig | None = None, *, profile: str = "P2.5",
                 table: Mapping[str, float] | None = None) -> None:
        self.config = config if config is not None else LinkAdaptationConfig()
        row = thresholds(profile) if table is None else _row(table, "given as table=")
        self._ladder = phy.mcs_table()
        self._thr: list[float] = [row[m] for m in self._ladder]
        c = self.config
        self._lo = self._ladder.index(c.min_mcs)
        self._hi = self._ladder.index(c.max_mcs)
        self._choices = [self._lo]  # the floor, then each MCS that carries more than the last
        for i in range(self._lo + 1, self._hi + 1):
            more = _bits(self._ladder[i]) > _bits(self._ladder[self._choices[-1]])
            if more or not c.skip_dominated:
                self._choices.append(i)
        self.reset()

    def reset(self) -> None:
        """Forget every observation (e.g. after a handover): back to ``start_mcs``."""
        self._idx = self._ladder.index(self.config.start_mcs)
        self._snr: float | None = None
        self._penalty = 0.0
        self._recent: collections.deque[int] = collections.deque(maxlen=self.config.up_after)
        self.observations = 0
        self.changes = 0

    def __repr__(self) -> str:
        snr = "None" if self._snr is None else f"{self._snr:.2f}"
        return (f"LinkAdaptation(mcs={self.mcs!r}, snr_db={snr}, "
                f"penalty_db={self._penalty:.2f})")

    @property
    def mcs(self) -> str:
        """The MCS to transmit data with now."""
        return self._ladder[self._idx]

    @property
    def snr_db(self) -> float | None:
        """The smoothed SNR (dB), ``None`` before the first observation."""
        return self._snr

    @property
    def penalty_db(self) -> float:
        """The outer-loop penalty (dB) now subtracted from the smoothed SNR."""
        return self._penalty

    @property
    def effective_snr_db(self) -> float | None:
        """Smoothed SNR minus the outer-loop penalty, ``None`` before the first observation."""
        return None if self._snr is None else self._snr - self._penalty

    def table(self) -> dict[str, float]:
        """The thresholds this link uses, ``{mcs: snr_db}``."""
        return dict(zip(self._ladder, self._thr, strict=True))

    def _best(self, eff: float, margin: float) -> int:
        """Highest MCS in ``[min_mcs, max_mcs]`` (dominated ones skipped) with
        ``threshold + margin <= eff``, else the floor."""
        best = self._lo
        for i in self._choices:
            if self._thr[i] + margin <= eff:
                best = i
        return best

    def observe(self, snr_db: float, crc_ok: bool) -> str:
        """Account one received burst on this link; returns the MCS to use now."""
        if not _finite(snr_db):
            raise ValueError(f"snr_db: must be a finite number, got {snr_db!r}")
        c = self.config
        x = float(snr_db)
        self._snr = x if self._snr is None else self._snr + c.alpha * (x - self._snr)
        if crc_ok:
            self._penalty = max(0.0, self._penalty - c.olla_down_db)
        else:
            self._penalty = min(c.olla_max_db, self._penalty + c.olla_up_db)
        self.observations += 1
        eff = self._snr - self._penalty
        new = self._idx
        if self._thr[self._idx] + c.down_margin_db > eff and self._idx > self._lo:
            new = min(self._idx, self._best(eff, c.down_margin_db))
            self._recent.clear()
        else:
            self._recent.append(self._best(eff, c.up_margin_db))
            if len(self._recent) == c.up_after and min(self._recent) > self._idx:
                new = min(self._recent)
                self._recent.clear()
        if new != self._idx:
            self._idx = new
            self.changes += 1
        return self.mcs


__all__ = [
    "ROBUST_MCS",
    "LinkAdaptation",
    "LinkAdaptationConfig",
    "ThresholdTableError",
    "load_thresholds",
    "parse_thresholds",
    "thresholds",
]
