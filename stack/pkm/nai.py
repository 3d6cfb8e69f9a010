"""Network Access Identifiers (RFC 7542) as EAP identities of stations.

A station's EAP identity is an NAI, ``<station id as 12 hex digits>@<realm>`` unless configured
otherwise. It is the EAP-Response/Identity, the RADIUS User-Name and EAP-PSK's ID_P, so it must
fit one RADIUS attribute and a hostapd/FreeRADIUS users file line.
"""

from __future__ import annotations

import re

from stack.errors import MalformedError

__all__ = ["MAX_NAI", "check_nai", "check_realm", "default_nai"]

MAX_NAI = 253
"""One RADIUS attribute value (RFC 7542 §2.2 recommends support for at least 253 octets)."""

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_USER = re.compile(r"^[\x21-\x7e]+$")


def check_realm(realm: str) -> str:
    """``realm`` if it is a DNS-style realm (labels of letters, digits and '-', dot-separated),
    else MalformedError."""
    if not isinstance(realm, str) or not realm or len(realm) > MAX_NAI:
        raise MalformedError("realm must be a non-empty string of at most 253 characters")
    if not all(_LABEL.match(label) for label in realm.split(".")):
        raise MalformedError(f"realm {realm!r} is not dot-separated labels of letters, digits "
                             "and '-'")
    return realm


def check_nai(nai: str) -> str:
    """``nai`` if it is a usable identity: printable ASCII without spaces or '"', at most 253
    bytes, at most one '@' with a valid realm after it; else MalformedError."""
    if not isinstance(nai, str) or not nai:
        raise MalformedError("an EAP identity (NAI) must be a non-empty string")
    if len(nai.encode()) > MAX_NAI or not _USER.match(nai) or '"' in nai:
        raise MalformedError(f"EAP identity {nai!r}: printable ASCII without spaces or '\"', "
                             f"at most {MAX_NAI} bytes")
    user, at, realm = nai.partition("@")
    if at:
        if not user or "@" in realm:
            raise MalformedError(f"EAP identity {nai!r}: one user part, one '@', one realm")
        check_realm(realm)
    return nai


def default_nai(station_id: int, realm: str) -> str:
    """``<station id hex>@<realm>``, the identity of a station without a configured one."""
    if isinstance(station_id, bool) or not isinstance(station_id, int) \
            or not 0 < station_id < 1 << 48:
        raise MalformedError(f"station id must be an int in 1..2**48-1, got {station_id!r}")
    return f"{station_id:012x}@{check_realm(realm)}"
