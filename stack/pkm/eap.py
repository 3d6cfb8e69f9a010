"""EAP packet codec (RFC 3748 §4) and the authentication result type.

``EapPacket.decode`` is strict: the Length field must equal the number of bytes given (no
lower-layer padding is accepted), Success/Failure are exactly 4 bytes, Request/Response carry a
Type byte.

The EAP-PSK method (RFC 4764) lives in :mod:`stack.pkm.eap_psk`; its peer and server conversations
are re-exported here as ``EapPskPeer`` / ``EapPskServer`` for convenience.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from stack.errors import MalformedError

__all__ = [
    "MSK_LEN",
    "AuthResult",
    "AuthSession",
    "EapCode",
    "EapPacket",
    "EapType",
]

MSK_LEN = 64
"""Every EAP method used here exports a 64-byte MSK (RFC 3748 §7.10); the PMK is its last 20 B."""


class EapCode(IntEnum):
    """EAP packet codes (RFC 3748 §4)."""

    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class EapType(IntEnum):
    """EAP method types used here (IANA registry)."""

    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    PSK = 47


@dataclass(frozen=True)
class EapPacket:
    """One EAP packet. ``type``/``data`` only for Request/Response (``None``/``b""`` otherwise)."""

    code: int
    identifier: int
    type: int | None = None
    data: bytes = b""

    def __post_init__(self) -> None:
        if self.code not in tuple(EapCode):
            raise MalformedError(f"EAP: unknown code {self.code}", reason="malformed")
        if not 0 <= self.identifier <= 255:
            raise MalformedError(f"EAP: identifier {self.identifier} outside 0..255",
                                 reason="malformed")
        if self.code in (EapCode.REQUEST, EapCode.RESPONSE):
            if self.type is None or not 1 <= self.type <= 255:
                raise MalformedError("EAP: Request/Response needs a type 1..255",
                                     reason="malformed")
            if len(self.data) > 0xFFFF - 5:
                raise MalformedError(f"EAP: type data too long ({len(self.data)} bytes)",
                                     reason="malformed")
        elif self.type is not None or self.data:
            raise MalformedError("EAP: Success/Failure carry no type or data", reason="malformed")

    def encode(self) -> bytes:
        """Wire bytes: Code(1) Identifier(1) Length(2) [Type(1) Type-Data]."""
        if self.type is None:
            return bytes([self.code, self.identifier]) + (4).to_bytes(2, "big")
        length = 5 + len(self.data)
        return (bytes([self.code, self.identifier]) + length.to_bytes(2, "big")
                + bytes([self.type]) + self.data)

    @classmethod
    def decode(cls, data: bytes) -> EapPacket:
        """Parse one EAP packet; MalformedError on any inconsistency."""
        data = bytes(data)
        if len(data) < 4:
            raise MalformedError(f"EAP: packet of {len(data)} bytes is shorter than the 4-byte "
                                 "header", reason="malformed")
        code, ident = data[0], data[1]
        length = int.from_bytes(data[2:4], "big")
        if length != len(data):
            raise MalformedError(f"EAP: Length field {length} != packet size {len(data)}",
                                 reason="malformed")
        if code in (EapCode.SUCCESS, EapCode.FAILURE):
            if length != 4:
                raise MalformedError(f"EAP: Success/Failure must be 4 bytes, got {length}",
                                     reason="malformed")
            return cls(code, ident)
        if code in (EapCode.REQUEST, EapCode.RESPONSE):
            if length < 5:
                raise MalformedError("EAP: Request/Response without a Type byte",
                                     reason="malformed")
            return cls(code, ident, data[4], data[5:])
        raise MalformedError(f"EAP: unknown code {code}", reason="malformed")

    def __repr__(self) -> str:
        t = "" if self.type is None else f", type={self.type}, data=<{len(self.data)} B>"
        return f"EapPacket(code={self.code}, identifier={self.identifier}{t})"


@dataclass(frozen=True)
class AuthResult:
    """Outcome of one EAP conversation. ``msk``/``emsk`` only on success; repr hides them.

    ``reason`` is ``"ok"`` on success, else a short machine-readable cause (``bad_mac_p``,
    ``bad_mac_s``, ``bad_pchannel``, ``unknown_peer``, ``identity_mismatch``, ``eap_failure``,
    ``peer_failure``, ``server_failure``)."""

    success: bool
    peer_id: bytes
    reason: str
    msk: bytes | None = field(default=None, repr=False)
    emsk: bytes | None = field(default=None, repr=False)
    method: str = "EAP-PSK"

    def __post_init__(self) -> None:
        if self.success != (self.msk is not None):
            raise ValueError("AuthResult: an MSK exactly when successful")
        if self.msk is not None and len(self.msk) != MSK_LEN:
            raise ValueError(f"AuthResult: MSK must be {MSK_LEN} bytes")

    def __repr__(self) -> str:
        return (f"AuthResult(success={self.success}, peer_id={self.peer_id.hex()}, "
                f"reason={self.reason!r}, method={self.method!r})")


class AuthSession(ABC):
    """Authenticator side of one EAP conversation with one peer (see
    :mod:`stack.pkm.authenticator`).

    * ``pending`` — the EAP request to send now and to resend on the caller's retransmission
      timer; None once the conversation is over (or while a back end is thinking).
    * ``handle(eap_response) -> (reply | None, result | None)`` — feed one EAP response from the
      peer. Malformed/out-of-state packets raise a :mod:`stack.errors` exception and change
      nothing. ``reply`` is the next request, or the final EAP-Success/Failure.
    * ``poll() -> (reply | None, result | None)`` — replies that became ready without a new
      response (an asynchronous back end such as RADIUS); the built-in one always returns
      ``(None, None)``. Roles call it from ``timer()``.
    * ``result`` — the :class:`AuthResult`, None until known.
    """

    peer_id: bytes
    result: AuthResult | None

    @property
    @abstractmethod
    def pending(self) -> bytes | None: ...

    @abstractmethod
    def handle(self, eap: bytes) -> tuple[bytes | None, AuthResult | None]: ...

    @abstractmethod
    def poll(self) -> tuple[bytes | None, AuthResult | None]: ...


def __getattr__(name: str) -> Any:
    # Lazy re-export (PEP 562): eap_psk imports this module, so a top-level import would cycle.
    if name in ("EapPskPeer", "EapPskServer"):
        from stack.pkm import eap_psk

        return getattr(eap_psk, name)
    raise AttributeError(name)
