"""Station identities used by the roles: 48-bit station ids and 12-bit STIDs (docs/roles.md §1)."""

from __future__ import annotations

from stack.errors import MalformedError

STATION_ID_BITS = 48
STID_BITS = 12


def check_station_id(value: object, what: str = "station id") -> int:
    """Return ``value`` if it is a 48-bit station id (1 .. 2**48-1), else raise MalformedError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 48:
        raise MalformedError(f"{what} must be an int in 1..2**48-1, got {value!r}")
    return value


def check_stid(value: object, what: str = "STID") -> int:
    """Return ``value`` if it is an assigned 12-bit STID (1 .. 4095), else raise MalformedError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 12:
        raise MalformedError(f"{what} must be an int in 1..4095, got {value!r}")
    return value


def station_bytes(station_id: int) -> bytes:
    """The 6-byte big-endian form of a station id (MAC address / BSID) used in key derivations."""
    return check_station_id(station_id).to_bytes(6, "big")


def station_from_bytes(data: bytes) -> int:
    """Inverse of :func:`station_bytes`."""
    if len(data) != 6:
        raise MalformedError(f"station id must be 6 bytes, got {len(data)}")
    return check_station_id(int.from_bytes(data, "big"))


def fmt_station(station_id: int) -> str:
    """Colon-separated hex of a station id, for logs and event text (``00:00:bb:00:00:01``)."""
    return ":".join(f"{b:02x}" for b in station_id.to_bytes(6, "big"))
