"""Events the roles report (docs/roles.md §4): frozen dataclasses with identifiers, never keys."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    """Base class of every role event."""


@dataclass(frozen=True)
class KeysInstalled(Event):
    """A side installed AK-level keys or a new TEK for ``subject`` on the link to ``peer``."""

    subject: int
    peer: int
    stid: int
    akid: str
    cmac_key_count: int
    said: int
    counter_teks: tuple[int, ...]
    tx_eks: int
    cause: str


@dataclass(frozen=True)
class AkTransferred(Event):
    """ABS: the ARS acknowledged an AK Transfer. ARS: an AK was accepted and acknowledged."""

    ams: int
    ars: int
    akid: str
    cmac_key_count: int
    status: int = 0


@dataclass(frozen=True)
class HandoverComplete(Event):
    """The AMS re-entered at ``target`` with a new AK (reported by AMS, target and ABS)."""

    ams: int
    source: int | None
    target: int
    akid: str
    cmac_key_count: int


@dataclass(frozen=True)
class ContextReleased(Event):
    """``station`` (old serving station) dropped the AMS's key context."""

    ams: int
    station: int


@dataclass(frozen=True)
class DataReceived(Event):
    """Authenticated data from end station ``src``, arrived from neighbour ``via``."""

    src: int
    payload: bytes = field(repr=False)
    fid: int
    via: int


@dataclass(frozen=True)
class Rejected(Event):
    """Input from neighbour ``link`` was rejected (and counted) for ``reason``; nothing acted on."""

    reason: str
    link: int
    detail: str = ""


@dataclass(frozen=True)
class PeerLost(Event):
    """Retries of ``procedure`` towards ``peer`` ran out; the procedure was abandoned."""

    peer: int
    procedure: str


@dataclass(frozen=True)
class EntryFailed(Event):
    """Network entry (or re-authentication) of ``station`` failed for ``reason``."""

    station: int
    reason: str


@dataclass(frozen=True)
class Attached(Event):
    """An AMS/ARS finished network entry (keys installed) at ``via``."""

    station: int
    via: int
    stid: int


@dataclass(frozen=True)
class ControlSent(Event):
    """A control message was queued to neighbour ``peer`` (for sequence charts and audits).

    ``title`` names the message (for a relayed message, the message relayed); ``sealed``: it goes
    inside an AES-CCM relay MPDU (not visible on the air); ``relayed``: this station relays a
    message another station sent. Identifiers only, never message contents."""

    peer: int
    title: str
    sealed: bool = False
    relayed: bool = False
