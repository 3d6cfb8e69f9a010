"""Exceptions of the radio layer (``hw``).

Every failure a radio backend reports is a :class:`RadioError`; the subclasses let callers react
to the kind of failure (fix the configuration, install something, reconnect) without parsing
messages. Each exception has a short ``reason`` string, stable for counting and tests.
"""

from __future__ import annotations


class RadioError(Exception):
    """Base class of every error raised by ``hw``."""

    reason: str = "radio_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class RadioConfigError(RadioError, ValueError):
    """A configuration value or argument is invalid; raised before any device is touched."""

    reason = "bad_config"


class RadioUnavailableError(RadioError):
    """The backend cannot be used here: a library is missing or no device answers."""

    reason = "unavailable"


class RadioClosedError(RadioError):
    """The radio was used after ``close()``."""

    reason = "closed"


class RadioIOError(RadioError):
    """A transfer to or from the device failed (timeout, broken pipe, lost device)."""

    reason = "io_error"


__all__ = [
    "RadioClosedError",
    "RadioConfigError",
    "RadioError",
    "RadioIOError",
    "RadioUnavailableError",
]
