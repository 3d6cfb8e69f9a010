"""The ABS's per-station state (docs/roles.md §6, docs/threat-model.md): half-open entry attempts
(:class:`Entry`) kept apart from authenticated stations (:class:`Context`), and the small records
the ABS role keeps about AK Transfers in flight and the senders of control messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from stack.keys import AkContext
from stack.pkm import messages as m
from stack.roles.ids import fmt_station
from stack.roles.link import Link


class EntryPhase(str, Enum):
    """Where a half-open entry (or re-authentication) attempt stands at the ABS."""

    EAP = "eap"                      # EAP conversation running; nothing authenticated yet
    KEY_AGREEMENT = "key_agreement"  # EAP succeeded; MSG#1 sent, waiting for a verified MSG#2
    AK_TRANSFER = "ak_transfer"      # MSG#2 verified; AK Transfer to the access RS outstanding


@dataclass(eq=False, repr=False)
class Entry:
    """One half-open entry or re-authentication attempt of a station (never trusted before EAP
    succeeded and MSG#2 verified; never touches the station's :class:`Context`)."""

    serial: int
    station: int
    stid: int
    via: int
    amsid_star: bytes
    started: float
    session: Any
    reauth: bool = False
    phase: EntryPhase = EntryPhase.EAP
    rsp: bytes | None = None              # the initial RNG-RSP, resent for a duplicate request
    pmk: bytes | None = None
    pmk_sn: int = 0
    nonce_abs: bytes | None = None
    candidates: tuple[Link, ...] = ()     # MSG#1 candidates: one AK per AMSID* of the station
    link: Link | None = None              # the candidate MSG#2 verified under
    nonce_ams: bytes | None = None
    msg3: m.KeyAgreementMsg3 | None = None
    transferred_to: int | None = None     # access RS that acknowledged this entry's AK
    answered: bool = False                # the peer answered its EAP (evicted last)

    def key(self, what: str) -> tuple[str, int]:
        """Retransmission key of ``what`` (``eap``/``ka``) for this attempt."""
        return (what, self.serial)

    def __repr__(self) -> str:
        return (f"Entry(serial={self.serial}, station={fmt_station(self.station)}, "
                f"stid={self.stid:#x}, via={fmt_station(self.via)}, phase={self.phase.value})")


@dataclass(eq=False, repr=False)
class Context:
    """An authenticated station: PMK, current AK context (``link``) and where it is attached.

    ``count`` (CMAC_KEY_COUNT) only rises; an AK context is derived once per (target, count)
    (``ho_links``) and never re-installed, so no (TEK, PN) is ever used twice.
    """

    station: int
    stid: int
    via: int
    amsid_star: bytes
    pmk: bytes = field(repr=False)
    pmk_sn: int
    count: int
    link: Link
    relay: bool
    ho_rsp: bytes | None = None
    ho_req: bytes | None = field(default=None, repr=False)  # the re-entry request ho_rsp answers
    ho_links: dict[tuple[int, int], Link] = field(default_factory=dict)
    ho_verified: dict[tuple[int, int], bytes] = field(default_factory=dict)
    ka: tuple[bytes, bytes, m.KeyAgreementMsg3] | None = None  # last agreement, for a lost MSG#3
    expires: float = float("inf")  # end of the AK (PMK) lifetime; handovers keep it

    def __repr__(self) -> str:
        return (f"Context(station={fmt_station(self.station)}, stid={self.stid:#x}, "
                f"via={fmt_station(self.via)}, count={self.count}, relay={self.relay})")


@dataclass(eq=False)
class _AkTx:
    """An AK Transfer waiting for its ACK."""

    station: int
    stid: int
    ctx: AkContext = field(repr=False)
    then: Callable[[float], None] | None = field(default=None, repr=False)
    serial: int | None = None  # the entry it belongs to (None: a context's handover AK)


@dataclass(frozen=True)
class _Sender:
    """Who a control message came from: the station, the access station it came through, and
    whether it arrived sealed in a relay SA (relay management with ``encrypt_relay_control``)."""

    station: int       # -1: a relayed message for a STID we have not assigned
    via: int
    direct: bool
    stid: int | None = None
    sealed: bool = False


def _victim(entries: Iterable[Entry]) -> Entry:
    """The attempt to evict when a cap is reached: the oldest whose peer never answered (a
    spoofed station never does), else the oldest. So a flood of spoofed entries evicts
    itself, and an attempt whose peer is talking to us completes."""
    entries = list(entries)
    return next((x for x in entries if not x.answered), entries[0])
