"""802.16m MPDU codec and AES-CCM protection (digest §4.1, §4.2).

Protected MPDU on the air::

    AGMH(2) | EKS(2 bits) PN(22 bits) (3) | ciphertext | ICV(8)

AGMH (2 bytes, big-endian): FID(4) | EH(1) | Length(11); Length counts the whole MPDU, AGMH
included, so an MPDU is at most 2047 bytes and a protected payload at most 2034 bytes.

AES-CCM with M = 8, L = 2, no AAD, and the 13-byte nonce of digest §4.2 [D]::

    AGMH(2) | STID(12 bits) << 4 | 3 zero bits | DIR(1 bit, 1 = UL) (2) | EKS/PN(3) | 0x00 * 6

Extended headers (EH = 1) are refused [D]: with no AAD the standard nonce does not authenticate
them, and nothing in relaysec needs them. Unprotected MPDUs (:func:`encode_plain`) are just
``AGMH | payload``.

:func:`seal` / :func:`unseal` are the low-level forms with an explicit TEK, EKS and PN;
:func:`protect` / :func:`unprotect` run them over a :class:`~stack.sa.SecurityAssociation`, which
chooses the TEK, hands out PNs and keeps the replay windows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from stack.crypto.ccm import ccm_decrypt, ccm_encrypt
from stack.errors import (
    IntegrityError,
    KeyLengthError,
    MalformedError,
    UnknownKeyError,
    require_bytes,
    require_uint,
)
from stack.sa import PN_MAX, SecurityAssociation

AGMH_LEN = 2
EKS_PN_LEN = 3
ICV_LEN = 8
NONCE_LEN = 13
MAX_MPDU_LEN = 0x7FF
"""Largest MPDU: the 11-bit Length field counts the whole MPDU."""
PROTECTED_OVERHEAD = AGMH_LEN + EKS_PN_LEN + ICV_LEN
"""Bytes a protected MPDU adds to its payload (13)."""
MAX_PROTECTED_PAYLOAD = MAX_MPDU_LEN - PROTECTED_OVERHEAD
"""Largest payload of one protected MPDU (2034 bytes)."""
MAX_PLAIN_PAYLOAD = MAX_MPDU_LEN - AGMH_LEN

SaLookup = Callable[[int, int], "SecurityAssociation | None"]
"""``(stid, fid) -> SecurityAssociation | None``: the receiver's SA table, supplied by the role."""


_uint = require_uint


@dataclass(frozen=True)
class Agmh:
    """Advanced generic MAC header: FID (4 bits), EH (1 bit), Length (11 bits, whole MPDU)."""

    fid: int
    eh: bool
    length: int

    def __post_init__(self) -> None:
        # store plain ints (numpy integers would overflow in the shifts of encode)
        object.__setattr__(self, "fid", require_uint(self.fid, 4, "FID"))
        object.__setattr__(self, "eh", bool(self.eh))
        object.__setattr__(self, "length", require_uint(self.length, 11, "AGMH Length"))

    def encode(self) -> bytes:
        """The two header bytes, big-endian."""
        return ((self.fid << 12) | (int(bool(self.eh)) << 11) | self.length).to_bytes(2, "big")


def decode_agmh(data: bytes) -> Agmh:
    """Parse the AGMH at the start of ``data`` (only the first two bytes are read)."""
    if len(data) < AGMH_LEN:
        raise MalformedError(f"MPDU shorter than its AGMH: {len(data)} bytes", reason="short_mpdu")
    word = int.from_bytes(bytes(data[:2]), "big")
    return Agmh(fid=word >> 12, eh=bool((word >> 11) & 1), length=word & 0x7FF)


def encode_eks_pn(eks: int, pn: int) -> bytes:
    """EKS(2 bits) | PN(22 bits), 3 bytes big-endian."""
    eks = require_uint(eks, 2, "EKS")
    pn = require_uint(pn, 22, "PN")
    return ((eks << 22) | pn).to_bytes(3, "big")


def decode_eks_pn(data: bytes) -> tuple[int, int]:
    """(EKS, PN) from the 3-byte EKS/PN field."""
    if len(data) != EKS_PN_LEN:
        raise MalformedError(f"EKS/PN field must be 3 bytes, got {len(data)}")
    word = int.from_bytes(bytes(data), "big")
    return word >> 22, word & PN_MAX


def nonce(agmh: bytes, *, stid: int, uplink: bool, eks_pn: bytes) -> bytes:
    """13-byte CCM nonce [D, digest §4.2]: AGMH | STID<<4 | DIR | EKS/PN | 6 zero bytes."""
    if len(agmh) != AGMH_LEN or len(eks_pn) != EKS_PN_LEN:
        raise MalformedError("nonce needs the 2-byte AGMH and the 3-byte EKS/PN field")
    stid = require_uint(stid, 12, "STID")
    return (
        bytes(agmh)
        + ((stid << 4) | int(bool(uplink))).to_bytes(2, "big")
        + bytes(eks_pn)
        + bytes(6)
    )


def _check_tek(tek: object) -> bytes:
    if not isinstance(tek, (bytes, bytearray, memoryview)):
        raise KeyLengthError(f"TEK must be bytes, got {type(tek).__name__}")
    if len(tek) != 16:
        raise KeyLengthError(f"TEK must be 16 bytes, got {len(tek)}")
    return bytes(tek)


@dataclass(frozen=True)
class MpduHeader:
    """The clear part of a protected MPDU: AGMH fields and EKS/PN."""

    fid: int
    length: int
    eks: int
    pn: int


def _check_framing(mpdu: bytes) -> Agmh:
    """AGMH of a whole MPDU after the checks common to plain and protected MPDUs."""
    if len(mpdu) > MAX_MPDU_LEN:
        raise MalformedError(
            f"MPDU of {len(mpdu)} bytes exceeds the {MAX_MPDU_LEN}-byte maximum", reason="long_mpdu"
        )
    agmh = decode_agmh(mpdu)
    if agmh.length != len(mpdu):
        raise MalformedError(
            f"AGMH Length {agmh.length} does not match the {len(mpdu)}-byte MPDU",
            reason="bad_length",
        )
    if agmh.eh:
        raise MalformedError("extended headers (EH = 1) are not supported", reason="unsupported_eh")
    return agmh


def parse_protected(mpdu: bytes) -> MpduHeader:
    """Check the framing of a protected MPDU and return its clear header; no crypto.

    Raises :class:`MalformedError` with reason ``short_mpdu``, ``long_mpdu``, ``bad_length`` or
    ``unsupported_eh``.
    """
    mpdu = require_bytes(mpdu, "MPDU")
    agmh = _check_framing(mpdu)
    if len(mpdu) < PROTECTED_OVERHEAD:
        raise MalformedError(
            f"protected MPDU of {len(mpdu)} bytes is shorter than AGMH+EKS/PN+ICV "
            f"({PROTECTED_OVERHEAD})",
            reason="short_mpdu",
        )
    eks, pn = decode_eks_pn(mpdu[AGMH_LEN : AGMH_LEN + EKS_PN_LEN])
    return MpduHeader(fid=agmh.fid, length=agmh.length, eks=eks, pn=pn)


def seal(
    tek: bytes, *, stid: int, fid: int, eks: int, pn: int, uplink: bool, payload: bytes
) -> bytes:
    """Build a protected MPDU: AGMH | EKS/PN | CCM(TEK, nonce, payload) (ciphertext | ICV).

    Low level: the caller guarantees that {TEK, direction, PN} is never reused (use
    :func:`protect` with an SA for that).
    """
    tek = _check_tek(tek)
    payload = require_bytes(payload, "payload")
    stid = require_uint(stid, 12, "STID")
    if len(payload) > MAX_PROTECTED_PAYLOAD:
        raise MalformedError(
            f"payload of {len(payload)} bytes exceeds {MAX_PROTECTED_PAYLOAD} (11-bit Length)",
            reason="long_mpdu",
        )
    return _seal(lambda n, p: ccm_encrypt(tek, n, p), stid, fid, eks, pn, uplink, payload)


def _seal(encrypt: Callable[[bytes, bytes], bytes], stid: int, fid: int, eks: int, pn: int,
          uplink: bool, payload: bytes) -> bytes:
    """:func:`seal` of checked arguments with ``encrypt(nonce, payload)`` (ciphertext | ICV)."""
    agmh = Agmh(fid=fid, eh=False, length=len(payload) + PROTECTED_OVERHEAD).encode()
    eks_pn = encode_eks_pn(eks, pn)
    n = nonce(agmh, stid=stid, uplink=uplink, eks_pn=eks_pn)
    return agmh + eks_pn + encrypt(n, payload)


def unseal(tek: bytes, *, stid: int, uplink: bool, mpdu: bytes) -> tuple[int, int, int, bytes]:
    """Check and decrypt a protected MPDU; returns (FID, EKS, PN, payload).

    Raises :class:`MalformedError` for bad framing and :class:`IntegrityError` (``bad_icv``)
    when the ICV does not verify (wrong TEK, station, direction, or any altered bit).
    Replay is not checked here (that needs SA state: see :func:`unprotect`).
    """
    tek = _check_tek(tek)
    return _unseal(lambda n, c: ccm_decrypt(tek, n, c), require_uint(stid, 12, "STID"),
                   uplink, bytes(mpdu), parse_protected(mpdu))


def _unseal(
    decrypt: Callable[[bytes, bytes], bytes], stid: int, uplink: bool, mpdu: bytes,
    hdr: MpduHeader
) -> tuple[int, int, int, bytes]:
    """:func:`unseal` of an MPDU whose header ``hdr`` was already parsed and checked, with
    ``decrypt(nonce, ciphertext | ICV)`` (raising :class:`IntegrityError` or ``InvalidTag``)."""
    eks_pn = mpdu[AGMH_LEN : AGMH_LEN + EKS_PN_LEN]
    n = nonce(mpdu[:AGMH_LEN], stid=stid, uplink=uplink, eks_pn=eks_pn)
    try:
        payload = decrypt(n, mpdu[AGMH_LEN + EKS_PN_LEN :])
    except (IntegrityError, InvalidTag):
        raise IntegrityError(
            f"MPDU ICV check failed (STID {stid:#x}, FID {hdr.fid}, EKS {hdr.eks}, PN {hdr.pn})",
            reason="bad_icv",
        ) from None
    return hdr.fid, hdr.eks, hdr.pn, payload


def protect(
    sa: SecurityAssociation,
    *,
    stid: int,
    fid: int,
    uplink: bool,
    payload: bytes,
    now: float | None = None,
) -> bytes:
    """Seal ``payload`` with the SA's current TEK and its next PN for this direction."""
    payload = require_bytes(payload, "payload")
    if len(payload) > MAX_PROTECTED_PAYLOAD:  # check before a PN is consumed
        raise MalformedError(
            f"payload of {len(payload)} bytes exceeds {MAX_PROTECTED_PAYLOAD} (11-bit Length)",
            reason="long_mpdu",
        )
    stid = require_uint(stid, 12, "STID")
    require_uint(fid, 4, "FID")
    tek, pn = sa.next_pn(uplink, now=now)
    cipher = tek.cipher   # the TEK's AES-CCM, keyed once (arguments checked above)
    return _seal(lambda n, p: cipher.encrypt(n, p, None), stid, fid, tek.eks, pn, uplink,
                 payload)


def unprotect(
    sa: SecurityAssociation,
    *,
    stid: int,
    uplink: bool,
    mpdu: bytes,
    now: float | None = None,
) -> tuple[int, int, int, bytes]:
    """Verify, replay-check and decrypt an MPDU of ``sa``; returns (FID, EKS, PN, payload).

    Order: framing (:class:`MalformedError`), TEK by EKS (:class:`UnknownKeyError`
    ``unknown_eks`` / :class:`KeyExhaustedError` ``tek_expired``), replay window
    (:class:`ReplayError` ``pn_replay`` / ``pn_window``), ICV (:class:`IntegrityError`
    ``bad_icv``); only then is the PN recorded. A rejected MPDU changes no state.
    """
    hdr = parse_protected(mpdu)  # once: the decrypt below reuses it
    tek = sa.check_replay(hdr.eks, hdr.pn, uplink, now=now)
    cipher = tek.cipher
    result = _unseal(lambda n, c: cipher.decrypt(n, c, None), require_uint(stid, 12, "STID"),
                     uplink, bytes(mpdu), hdr)
    sa.check_and_record(hdr.eks, hdr.pn, uplink, now=now)
    return result


def unprotect_lookup(
    lookup: SaLookup,
    *,
    stid: int,
    uplink: bool,
    mpdu: bytes,
    now: float | None = None,
) -> tuple[int, int, int, bytes]:
    """:func:`unprotect` with the SA found by ``lookup(stid, FID of the MPDU)``.

    The receive path for one MPDU when the caller holds a table of SAs rather than the SA itself
    (:func:`stack.mac.open_burst` is the burst form). Raises :class:`UnknownKeyError`
    (``unknown_sa``) when no SA protects that STID and FID, after the framing checks and before
    any crypto; otherwise as :func:`unprotect`.
    """
    stid = require_uint(stid, 12, "STID")
    hdr = parse_protected(mpdu)
    sa = lookup(stid, hdr.fid)
    if sa is None:
        raise UnknownKeyError(
            f"no security association for STID {stid:#x} FID {hdr.fid}", reason="unknown_sa"
        )
    return unprotect(sa, stid=stid, uplink=uplink, mpdu=mpdu, now=now)


def encode_plain(fid: int, payload: bytes) -> bytes:
    """Unprotected MPDU: AGMH | payload (e.g. FID 0 control before keys exist)."""
    payload = require_bytes(payload, "payload")
    if len(payload) > MAX_PLAIN_PAYLOAD:
        raise MalformedError(
            f"payload of {len(payload)} bytes exceeds {MAX_PLAIN_PAYLOAD} (11-bit Length)",
            reason="long_mpdu",
        )
    return Agmh(fid=fid, eh=False, length=len(payload) + AGMH_LEN).encode() + payload


def decode_plain(mpdu: bytes) -> tuple[int, bytes]:
    """(FID, payload) of an unprotected MPDU, with the same framing checks as protected ones."""
    mpdu = require_bytes(mpdu, "MPDU")
    return _check_framing(mpdu).fid, mpdu[AGMH_LEN:]
