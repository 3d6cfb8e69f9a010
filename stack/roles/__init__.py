"""ABS, ARS and AMS roles as sans-I/O state machines (docs/roles.md)."""

from stack.roles.abs import AbsRole
from stack.roles.ams import AmsRole
from stack.roles.ars import ArsRole
from stack.roles.base import MAX_PAYLOAD
from stack.roles.config import AbsConfig, AmsConfig, ArsConfig, Lifetimes, SecurityMode, Timers
from stack.roles.events import (
    AkTransferred,
    Attached,
    ContextReleased,
    ControlSent,
    DataReceived,
    EntryFailed,
    Event,
    HandoverComplete,
    KeysInstalled,
    PeerLost,
    Rejected,
)
from stack.roles.link import KeyInfo

__all__ = [
    "MAX_PAYLOAD", "AbsConfig", "AbsRole", "AkTransferred", "AmsConfig", "AmsRole", "ArsConfig",
    "ArsRole", "Attached", "ContextReleased", "ControlSent", "DataReceived", "EntryFailed", "Event",
    "HandoverComplete", "KeyInfo", "KeysInstalled", "Lifetimes", "PeerLost", "Rejected",
    "SecurityMode", "Timers",
]
