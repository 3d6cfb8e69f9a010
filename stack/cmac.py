"""The 802.16m CMAC tuple that protects control messages (digest §3.1).

On the air a protected control message is ``message || CMAC_PN(3) || CMAC_VALUE(8)`` with::

    CMAC_VALUE = Truncate(AES-CMAC(CMAC_KEY_x,
                     AKID(8) || CMAC_PN_x(3) || STID(12 bits)|FID(4 bits) (2) || 24 zero bits (3)
                     || message), 64)

``CMAC_KEY_x`` is CMAC_KEY_U for uplink (AMS→ABS, ARS→ABS, AMS→ARS) and CMAC_KEY_D for downlink.
Truncate keeps the rightmost 8 bytes [D]. CMAC_PN is a 24-bit counter per direction per AK
context; the first protected message carries CMAC_PN 1, a receiver accepts only a CMAC_PN above
the last one it accepted in that direction, and a sender never wraps (it must re-key first).

Pure functions (:func:`append_cmac`, :func:`check_cmac`) plus two tiny state holders:
:class:`CmacPnCounter` (sender side) and :class:`CmacVerifier` (receiver side, replay state).
"""

from __future__ import annotations

import hmac

from stack.crypto.primitives import aes_cmac
from stack.errors import (
    IntegrityError,
    KeyExhaustedError,
    KeyLengthError,
    MalformedError,
    ReplayError,
    require_bytes,
    require_uint,
)
from stack.keys import AkContext

CMAC_PN_LEN = 3
CMAC_VALUE_LEN = 8
CMAC_TUPLE_LEN = CMAC_PN_LEN + CMAC_VALUE_LEN
"""Bytes appended to a protected control message: CMAC_PN(3) || CMAC_VALUE(8)."""
CMAC_PN_MAX = 0xFFFFFF
"""Largest CMAC_PN; a sender that would exceed it must derive new CMAC keys (new AK) first."""
CONTROL_FID = 0


def _check_ids(stid: int, fid: int) -> tuple[int, int]:
    return require_uint(stid, 12, "STID"), require_uint(fid, 4, "FID")


def _check_pn(pn: int) -> int:
    return require_uint(pn, 24, "CMAC_PN")


def cmac_prefix(akid: bytes, pn: int, stid: int, fid: int = CONTROL_FID) -> bytes:
    """The one-block prefix AKID(8) || CMAC_PN(3) || STID|FID(2) || 0(3) fed to AES-CMAC."""
    stid, fid = _check_ids(stid, fid)
    pn = _check_pn(pn)
    if not isinstance(akid, (bytes, bytearray, memoryview)) or len(akid) != 8:
        got = len(akid) if isinstance(akid, (bytes, bytearray, memoryview)) else type(akid).__name__
        raise KeyLengthError(f"AKID must be 8 bytes, got {got}")
    return bytes(akid) + pn.to_bytes(3, "big") + ((stid << 4) | fid).to_bytes(2, "big") + bytes(3)


def cmac_value(
    msg: bytes, ctx: AkContext, *, uplink: bool, pn: int, stid: int, fid: int = CONTROL_FID
) -> bytes:
    """CMAC_VALUE (8 bytes, rightmost of the AES-CMAC) of ``msg`` under ``ctx`` (digest §3.1)."""
    full = aes_cmac(
        ctx.cmac_key(uplink=uplink),
        cmac_prefix(ctx.akid, pn, stid, fid) + require_bytes(msg, "control message"),
    )
    return full[-CMAC_VALUE_LEN:]


def append_cmac(
    msg: bytes, ctx: AkContext, *, uplink: bool, pn: int, stid: int, fid: int = CONTROL_FID
) -> bytes:
    """Return ``msg || CMAC_PN(3) || CMAC_VALUE(8)`` — the message with its CMAC tuple appended.

    ``pn`` must come from the sender's :class:`CmacPnCounter` for this direction and AK context.
    """
    pn = _check_pn(pn)
    if pn == 0:
        raise MalformedError("CMAC_PN 0 is never sent; the first protected message carries 1")
    msg = require_bytes(msg, "control message")
    return (
        msg + pn.to_bytes(3, "big") + cmac_value(msg, ctx, uplink=uplink, pn=pn, stid=stid, fid=fid)
    )


def split_cmac(msg_with_tuple: bytes) -> tuple[bytes, int, bytes]:
    """Split ``message || CMAC_PN || CMAC_VALUE`` into (message, CMAC_PN, CMAC_VALUE) unchecked."""
    data = require_bytes(msg_with_tuple, "control message")
    if len(data) < CMAC_TUPLE_LEN:
        raise MalformedError(
            f"control message shorter than its {CMAC_TUPLE_LEN}-byte CMAC tuple: {len(data)} bytes",
            reason="short_cmac_tuple",
        )
    body = data[:-CMAC_TUPLE_LEN]
    pn = int.from_bytes(data[-CMAC_TUPLE_LEN:-CMAC_VALUE_LEN], "big")
    return body, pn, data[-CMAC_VALUE_LEN:]


def check_cmac(
    msg_with_tuple: bytes,
    ctx: AkContext,
    *,
    uplink: bool,
    stid: int,
    fid: int = CONTROL_FID,
    last_pn: int,
) -> tuple[bytes, int]:
    """Verify the CMAC tuple at the end of a control message; return (message, CMAC_PN).

    The digest is checked first, then the CMAC_PN against ``last_pn`` (the last CMAC_PN accepted
    in this direction under this AK context; 0 before any). Raises :class:`MalformedError`
    (``short_cmac_tuple``), :class:`IntegrityError` (``bad_cmac``) or :class:`ReplayError`
    (``cmac_replay``). Nothing of a rejected message is returned. The caller records the
    returned PN as its new ``last_pn`` (or uses :class:`CmacVerifier`, which does).
    """
    last_pn = _check_pn(last_pn)
    body, pn, value = split_cmac(msg_with_tuple)
    expect = cmac_value(body, ctx, uplink=uplink, pn=pn, stid=stid, fid=fid)
    if not hmac.compare_digest(expect, value):
        raise IntegrityError(
            f"CMAC digest check failed ({'UL' if uplink else 'DL'}, {ctx!r})", reason="bad_cmac"
        )
    if pn <= last_pn:
        raise ReplayError(
            f"CMAC_PN {pn} not above the last accepted {last_pn} ({'UL' if uplink else 'DL'})",
            reason="cmac_replay",
        )
    return body, pn


class CmacPnCounter:
    """Sender-side CMAC_PN for one direction of one AK context: 1, 2, … up to 0xFFFFFF.

    Create a new counter whenever a new AK context (new CMAC keys) is installed.
    """

    __slots__ = ("_last",)

    def __init__(self, last: int = 0) -> None:
        last = _check_pn(last)
        self._last = last

    @property
    def last(self) -> int:
        """The CMAC_PN most recently handed out (0 before the first)."""
        return self._last

    @property
    def exhausted(self) -> bool:
        """True when no CMAC_PN is left: derive a new AK (CMAC_KEY_COUNT update / re-auth)."""
        return self._last >= CMAC_PN_MAX

    def next(self) -> int:
        """The next CMAC_PN to send; raises :class:`KeyExhaustedError` instead of wrapping."""
        if self._last >= CMAC_PN_MAX:
            raise KeyExhaustedError(
                "CMAC_PN space exhausted; derive new CMAC keys before sending",
                reason="cmac_pn_exhausted",
            )
        self._last += 1
        return self._last

    def __repr__(self) -> str:
        return f"CmacPnCounter(last={self._last})"


class CmacVerifier:
    """Receiver-side CMAC check with replay state for one direction of one AK context."""

    __slots__ = ("_last", "ctx", "uplink")

    def __init__(self, ctx: AkContext, *, uplink: bool, last_pn: int = 0) -> None:
        last_pn = _check_pn(last_pn)
        self.ctx = ctx
        self.uplink = uplink
        self._last = last_pn

    @property
    def last_pn(self) -> int:
        """The last accepted CMAC_PN (0 before any)."""
        return self._last

    def verify(self, msg_with_tuple: bytes, *, stid: int, fid: int = CONTROL_FID) -> bytes:
        """Check digest and CMAC_PN; on success record the PN and return the message body."""
        body, pn = check_cmac(
            msg_with_tuple, self.ctx, uplink=self.uplink, stid=stid, fid=fid, last_pn=self._last
        )
        self._last = pn
        return body

    def __repr__(self) -> str:
        return f"CmacVerifier({self.ctx!r}, {'UL' if self.uplink else 'DL'}, last_pn={self._last})"


class CmacSigner:
    """Sender-side helper: one direction of one AK context, owning its :class:`CmacPnCounter`."""

    __slots__ = ("counter", "ctx", "uplink")

    def __init__(
        self, ctx: AkContext, *, uplink: bool, counter: CmacPnCounter | None = None
    ) -> None:
        self.ctx = ctx
        self.uplink = uplink
        self.counter = counter if counter is not None else CmacPnCounter()

    def protect(self, msg: bytes, *, stid: int, fid: int = CONTROL_FID) -> bytes:
        """Append the CMAC tuple with the next CMAC_PN of this direction."""
        _check_ids(stid, fid)
        return append_cmac(
            msg, self.ctx, uplink=self.uplink, pn=self.counter.next(), stid=stid, fid=fid
        )

    def __repr__(self) -> str:
        return f"CmacSigner({self.ctx!r}, {'UL' if self.uplink else 'DL'}, {self.counter!r})"
