"""Exceptions raised by the security sublayer.

Every rejection of input carries a short machine-readable ``reason`` (used to count rejections per
link and per cause) and a human message saying what was wrong. Messages never contain key material.
"""

from __future__ import annotations


class SecurityError(Exception):
    """Base class of every error raised by :mod:`stack`."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class MalformedError(SecurityError, ValueError):
    """Input bytes do not parse: short, over-long, bad length, unknown code, trailing bytes."""

    reason = "malformed"


class KeyLengthError(SecurityError, ValueError):
    """A key, nonce or identifier has the wrong size."""

    reason = "key_length"


class IntegrityError(SecurityError):
    """An ICV, CMAC digest or key-wrap integrity check failed (forged or corrupted input)."""

    reason = "integrity"


class ReplayError(SecurityError):
    """A PN or CMAC_PN was already seen or lies behind the replay window."""

    reason = "replay"


class UnknownKeyError(SecurityError):
    """No key for the input: unknown SA, EKS, STID, AKID or station context."""

    reason = "unknown_key"


class KeyExhaustedError(SecurityError):
    """A key may not be used any more: PN space exhausted or lifetime over. Re-key first."""

    reason = "key_exhausted"


class ProtocolError(SecurityError):
    """A message is well formed but not acceptable in the current protocol state."""

    reason = "protocol"
