"""Exceptions raised by the security sublayer.

Every rejection of input carries a short machine-readable ``reason`` (used to count rejections per
link and per cause) and a human message saying what was wrong. Messages never contain key material.
The ``require_*`` helpers at the end are the shared input checks that raise these errors.
"""

from __future__ import annotations

import numbers


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


class NonceReuseError(SecurityError):
    """A sender used one (TEK, direction, PN), i.e. one CCM nonce, twice (``stack.nonces``)."""

    reason = "nonce_reuse"


class ProtocolError(SecurityError):
    """A message is well formed but not acceptable in the current protocol state."""

    reason = "protocol"


def require_bytes(data: object, what: str) -> bytes:
    """``data`` as ``bytes`` if it is bytes-like, else :class:`MalformedError` naming ``what``.

    Refuses ``int`` (``bytes(5)`` would silently make five zero bytes) and ``str``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedError(f"{what} must be bytes, got {type(data).__name__}")
    return bytes(data)


def require_uint(value: object, bits: int, what: str) -> int:
    """``value`` as ``int`` if it is an integer (numpy too, not bool) of ``bits`` unsigned bits.

    Otherwise :class:`MalformedError` naming ``what``, the allowed range and the value (these are
    header fields and counters, never key material).
    """
    if type(value) is not int:  # fast path for plain ints: this runs per MPDU
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise MalformedError(f"{what} must be an int, got {type(value).__name__}")
        value = int(value)
    if not 0 <= value < (1 << bits):
        raise MalformedError(f"{what} must fit in {bits} bits (0..{(1 << bits) - 1}), got {value}")
    return value
