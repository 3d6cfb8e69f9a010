"""Role configuration: security mode, retransmission timers, key lifetimes, per-role settings.

Plain frozen dataclasses; PSKs are hidden from ``repr``. See docs/roles.md §2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from stack.arq import ArqParams
from stack.errors import KeyLengthError, MalformedError
from stack.roles.ids import check_station_id


class SecurityMode(str, Enum):
    """Where the AMS's keys live when it is served by an access RS (digest §6.2)."""

    DISTRIBUTED = "distributed"  # the ARS receives the AK and terminates the AMS's SA
    CENTRALIZED = "centralized"  # the ARS holds no AMS keys; AMS MPDUs are protected end to end


@dataclass(frozen=True)
class Timers:
    """Retransmission policy shared by every request/response exchange.

    A request is sent, then resent every ``rto * backoff**k`` seconds (capped at ``max_rto``)
    until answered; after ``max_retries`` resends the procedure fails with a ``PeerLost`` event.
    """

    rto: float = 0.2
    max_retries: int = 12
    backoff: float = 1.0
    max_rto: float = 2.0

    def __post_init__(self) -> None:
        if not self.rto > 0 or self.max_retries < 0 or self.backoff < 1.0:
            raise MalformedError("Timers need rto > 0, max_retries >= 0, backoff >= 1")

    def interval(self, attempt: int) -> float:
        """Wait after the ``attempt``-th transmission (1-based)."""
        return min(self.rto * self.backoff ** (attempt - 1), max(self.max_rto, self.rto))

    @functools.cached_property
    def give_up_after(self) -> float:
        """Total time a request may stay unanswered before the procedure fails (computed once:
        the roles ask for it on hot paths)."""
        return sum(self.interval(k) for k in range(1, self.max_retries + 2))


@dataclass(frozen=True)
class Lifetimes:
    """Key lifetimes (seconds) and the margins at which keys are renewed.

    ``tek_refresh_margin``/``reauth_margin`` are fractions of the lifetime: a TEK is refreshed when
    less than ``tek_refresh_margin * tek`` seconds of it remain, the AK re-authenticated when less
    than ``reauth_margin * ak`` remain. ``pn_refresh`` is the PN at which a TEK update starts
    (digest §4.2: 2**21).
    """

    ak: float = 3600.0
    tek: float = 600.0
    tek_refresh_margin: float = 0.2
    reauth_margin: float = 0.1
    pn_refresh: int = 1 << 21

    def __post_init__(self) -> None:
        if not (self.ak > 0 and self.tek > 0):
            raise MalformedError("lifetimes must be positive")
        if not (0 < self.tek_refresh_margin < 1 and 0 < self.reauth_margin < 1):
            raise MalformedError("lifetime margins must lie in (0, 1)")
        if not 1 <= self.pn_refresh <= (1 << 22) - 2:
            raise MalformedError("pn_refresh must lie in 1 .. 2**22-2")


def _check_psk(psk: bytes) -> bytes:
    if not isinstance(psk, (bytes, bytearray)) or len(psk) != 16:
        raise KeyLengthError("EAP-PSK key must be 16 bytes")
    return bytes(psk)


@dataclass(frozen=True)
class AbsConfig:
    """Configuration of the base station role."""

    station_id: int
    mode: SecurityMode = SecurityMode.DISTRIBUTED
    timers: Timers = field(default_factory=Timers)
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    first_stid: int = 0x010
    said: int = 1
    encrypt_relay_control: bool = False  # relay management inside the ARS's SA (docs/roles.md §5)
    relays: frozenset[int] = frozenset()
    """Station ids allowed to act as access RSs (relay MPDUs, AK Transfer, AK Request). Any
    other station, authenticated or not, is treated as an AMS: it never receives AK material."""
    max_half_open: int = 512
    """Entry attempts in progress at once, in total (the oldest attempt whose peer never
    answered is evicted first)."""
    max_half_open_per_via: int = 128
    """Entry attempts in progress through one access station (an ARS, or the ABS itself)."""
    max_attempts_per_station: int = 4
    """Entry attempts in progress for one station id (also the number of AMSID*s MSG#1 is
    offered under, docs/threat-model.md)."""
    entry_timeout: float | None = None
    """Seconds after which an unfinished entry attempt is dropped (None: three times the
    retransmission span, ``Timers.give_up_after``)."""
    arq: ArqParams | None = None
    """ARQ on the data connections with every AMS/ARS, end to end (docs/roles.md §11); None:
    off. Every station of the cell must agree."""

    def __post_init__(self) -> None:
        check_station_id(self.station_id)
        object.__setattr__(self, "mode", SecurityMode(self.mode))
        object.__setattr__(self, "relays", frozenset(check_station_id(r) for r in self.relays))
        for name in ("max_half_open", "max_half_open_per_via", "max_attempts_per_station"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MalformedError(f"AbsConfig.{name} must be an int >= 1, got {v!r}")
        if self.entry_timeout is not None and not self.entry_timeout > 0:
            raise MalformedError("AbsConfig.entry_timeout must be > 0")

    def entry_timeout_for(self, timers: Timers) -> float:
        """The entry timeout in force with ``timers``."""
        return self.entry_timeout if self.entry_timeout is not None else 3 * timers.give_up_after


@dataclass(frozen=True)
class SubscriberConfig:
    """Configuration shared by the ARS and the AMS (both enter the network as an AMS would)."""

    station_id: int
    psk: bytes = field(repr=False)
    timers: Timers = field(default_factory=Timers)
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    abs_id: int | None = None  # the network's ABS id, used to name the data source at an AMS
    identity: bytes | None = None
    """EAP identity (an NAI, EAP-PSK's ID_P); None: the 6-byte station id."""
    eap_peer: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    """Factory of the EAP peer for each entry (e.g. an EAP-TLS peer); None: EAP-PSK with
    ``psk`` and ``identity``."""
    arq: ArqParams | None = None
    """ARQ on this station's data connections with the ABS (docs/roles.md §11); None: off."""

    def __post_init__(self) -> None:
        check_station_id(self.station_id)
        object.__setattr__(self, "psk", _check_psk(self.psk))


@dataclass(frozen=True)
class AmsConfig(SubscriberConfig):
    """Configuration of a mobile station role."""


@dataclass(frozen=True)
class ArsConfig(SubscriberConfig):
    """Configuration of an access relay station role."""

    mode: SecurityMode = SecurityMode.DISTRIBUTED
    encrypt_relay_control: bool = False  # must match AbsConfig.encrypt_relay_control
    max_ranging_per_s: float = 50.0
    """Initial-ranging requests relayed to the ABS per second, on average (token bucket)."""
    ranging_burst: int = 20
    """... and at most this many at once."""
    max_known_stations: int = 1024
    """Stations whose initial-ranging AMSID*s (and rate-limit state) the ARS remembers."""
    max_pending_handovers: int = 64
    """Handover requests waiting for an AK, and handover AKs waiting for their AMS."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "mode", SecurityMode(self.mode))
        if not self.max_ranging_per_s > 0:
            raise MalformedError("ArsConfig.max_ranging_per_s must be > 0")
        for name in ("ranging_burst", "max_known_stations", "max_pending_handovers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MalformedError(f"ArsConfig.{name} must be an int >= 1, got {v!r}")
