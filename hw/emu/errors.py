"""Exceptions of the Pluto emulator.

:class:`IioError` carries a positive errno; the protocol server answers it as ``-errno``, which
libiio turns into ``OSError(errno)`` in the client (e.g. ``[Errno 22] Invalid argument``).
"""

from __future__ import annotations

import errno as _errno

try:  # hw.errors belongs to the radio backends; derive from its base when it exists.
    from hw.errors import RadioConfigError as _ConfigBase
    from hw.errors import RadioError as _Base
except ImportError:  # pragma: no cover - only before hw.errors lands
    _Base = Exception  # type: ignore[assignment,misc]
    _ConfigBase = ValueError  # type: ignore[assignment,misc]


class EmulatorError(_Base):  # type: ignore[misc,valid-type]
    """Base class of every error raised by :mod:`hw.emu`."""

    reason = "emulator"


class EmulatorConfigError(EmulatorError, _ConfigBase):  # type: ignore[misc,valid-type]
    """A setting of the emulator is invalid; raised before anything listens.

    ``field`` names the setting (an :class:`~hw.emu.cluster.EmulatorConfig` field or a
    :class:`~hw.emu.server.PlutoServer` argument), ``problem`` says what is wrong with it; the
    message is ``"<field> <problem>"``, so a command line can name its own flag instead.
    """

    reason = "bad_config"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


class IioError(EmulatorError):
    """An IIO operation failed with ``errno`` (sent to the client as ``-errno``)."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(f"{message} ({_errno.errorcode.get(errno, errno)})")
        self.errno = errno
        self.reason = "iio_" + _errno.errorcode.get(errno, str(errno)).lower()


def einval(message: str) -> IioError:
    """Invalid value (out of range, malformed): ``EINVAL``."""
    return IioError(_errno.EINVAL, message)


def enoent(message: str) -> IioError:
    """No such device, channel or attribute: ``ENOENT``."""
    return IioError(_errno.ENOENT, message)
