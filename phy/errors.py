"""Exceptions raised by the PHY.

Every error the modem raises on bad input is a :class:`PhyError`; callers that feed it radio buffers
can catch that one class. A buffer that simply holds no decodable burst is *not* an error:
``BurstModem.demodulate`` returns an empty list for it.
"""

from __future__ import annotations


class PhyError(Exception):
    """Base class of all PHY errors. ``reason`` is a short machine-readable tag."""

    reason: str = "phy_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class PhyInputError(PhyError, ValueError):
    """Malformed input: wrong dtype or shape, non-finite samples, out-of-range fields."""

    reason = "bad_input"


class PayloadTooLongError(PhyInputError):
    """The payload does not fit in one burst (see ``BurstModem.max_payload``)."""

    reason = "payload_too_long"


class UnknownProfileError(PhyError, KeyError):
    """The profile name is not one of ``phy.profiles()`` (or an alias)."""

    reason = "unknown_profile"

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownMcsError(PhyError, KeyError):
    """The MCS name is not one of ``phy.mcs_table()``."""

    reason = "unknown_mcs"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
