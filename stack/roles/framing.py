"""How the roles put messages into MPDUs and MPDUs into frames (docs/roles.md §5).

* A *frame* is what one burst carries to one neighbour: MPDUs back to back, each delimited by the
  11-bit Length of its 2-byte AGMH (digest §4.1).
* FID 0 MPDUs carry one control message (``stack.pkm.messages``), plain; messages that need it end
  with the CMAC tuple of ``stack.cmac``.
* FID 2..14 MPDUs carry transport data, protected with the link's primary SA (``stack.mpdu``).
* FID 15 MPDUs are relay MPDUs on the ABS↔ARS link, protected with the ARS's SA [D]; their payload
  is a list of items ``AMS STID (12 bits) | 4 zero bits (2 bytes) || one AMS MPDU`` (digest §6.4,
  codec in ``stack.mac``).

This is the one place the roles parse MPDU framing: the constants come from the codecs that own
them (``stack.mpdu``, ``stack.mac``, ``stack.cmac``), and every accessor checks its input and
raises :class:`stack.errors.MalformedError` with a reason -- never ``IndexError``.
"""

from __future__ import annotations

from itertools import pairwise

from stack.cmac import CMAC_TUPLE_LEN, CONTROL_FID, split_cmac
from stack.errors import MalformedError
from stack.mac import RELAY_FID
from stack.mpdu import AGMH_LEN, MAX_MPDU_LEN
from stack.pkm import messages as m

FID_CONTROL = CONTROL_FID
FID_RELAY = RELAY_FID
FIRST_DATA_FID = 2
LAST_DATA_FID = 14
DATA_FIDS: frozenset[int] = frozenset(range(FIRST_DATA_FID, LAST_DATA_FID + 1))
"""Transport FIDs, protected with the link's primary SA."""

__all__ = [
    "AGMH_LEN", "CMAC_TUPLE_LEN", "DATA_FIDS", "FID_CONTROL", "FID_RELAY", "FIRST_DATA_FID",
    "LAST_DATA_FID", "MAX_MPDU_LEN", "RELAY_MANAGEMENT_CODES", "agmh", "control_message",
    "control_mpdu", "frame_bounds", "mpdu_fid", "plain_mpdu", "plain_payload", "signed_body",
    "split_frame",
]


RELAY_MANAGEMENT_CODES: frozenset[int] = frozenset({
    m.AkTransfer.CODE, m.AkTransferAck.CODE, m.AkRequest.CODE, m.ContextRelease.CODE,
    m.ContextReleaseAck.CODE})
"""AK Transfer, AK Transfer ACK, AK Request, Context Release and its ACK: the control messages the
ABS and an ARS exchange about AMS key contexts. With ``encrypt_relay_control`` they travel inside
a relay MPDU under the ARS's own SA (item STID = the ARS's STID), CMAC tuple included (digest
§6.3: "additionally AES-CCM-encrypted under the ARS's primary-SA TEK")."""


def agmh(fid: int, length: int, eh: int = 0) -> bytes:
    """The 2-byte AGMH: FID(4) | EH(1) | Length(11) of the whole MPDU."""
    if not 0 <= fid <= 15:
        raise MalformedError(f"FID must be 4 bits, got {fid}")
    if not AGMH_LEN <= length <= MAX_MPDU_LEN:
        raise MalformedError(f"MPDU length {length} outside {AGMH_LEN}..{MAX_MPDU_LEN}")
    return ((fid << 12) | ((eh & 1) << 11) | length).to_bytes(2, "big")


def mpdu_fid(mpdu: bytes) -> int:
    """FID of an MPDU (first 4 bits of its AGMH)."""
    if len(mpdu) < AGMH_LEN:
        raise MalformedError("MPDU shorter than its AGMH", reason="malformed")
    return mpdu[0] >> 4


def plain_mpdu(fid: int, payload: bytes) -> bytes:
    """An unprotected MPDU: AGMH followed by ``payload``."""
    return agmh(fid, AGMH_LEN + len(payload)) + bytes(payload)


def plain_payload(mpdu: bytes) -> bytes:
    """Payload of an unprotected MPDU (the AGMH Length must cover it exactly)."""
    if len(frame_bounds(mpdu)) != 2:
        raise MalformedError("expected exactly one MPDU", reason="malformed")
    return bytes(mpdu[AGMH_LEN:])


def control_mpdu(message: bytes) -> bytes:
    """A FID 0 MPDU around one encoded control message (with its CMAC tuple if any)."""
    return plain_mpdu(FID_CONTROL, message)


def control_message(mpdu: bytes) -> tuple[type[m.Message], bytes]:
    """The message class and bytes (CMAC tuple included) of a FID 0 MPDU.

    An MPDU with no payload, or a code no message has, is malformed -- checked here once, so no
    handler ever indexes an empty payload.
    """
    data = plain_payload(mpdu)
    if not data:
        raise MalformedError("control MPDU without a message", reason="malformed")
    return m.message_class(data[0]), data


def signed_body(data: bytes) -> bytes:
    """The message of ``message || CMAC tuple`` without the (unchecked) tuple.

    Only for reading which key would verify it (e.g. the CMAC_KEY_COUNT of a handover RNG-REQ);
    nothing read this way may be acted on before the tuple is verified.
    """
    return split_cmac(data)[0]


def frame_bounds(frame: bytes) -> list[int]:
    """MPDU boundaries of a frame by its AGMH Length fields: ``[0, end_1, ..., len(frame)]``.

    Strict: an empty frame, trailing bytes or a Length running past the end are malformed.
    """
    total = len(frame)
    if not total:
        raise MalformedError("empty frame", reason="malformed")
    bounds = [0]
    pos = 0
    while pos < total:
        if total - pos < AGMH_LEN:
            raise MalformedError(f"{total - pos} trailing bytes after the last MPDU",
                                 reason="malformed")
        length = ((frame[pos] << 8) | frame[pos + 1]) & MAX_MPDU_LEN
        if length < AGMH_LEN or pos + length > total:
            raise MalformedError(
                f"MPDU at offset {pos}: Length {length} does not fit the {total}-byte frame",
                reason="malformed")
        pos += length
        bounds.append(pos)
    return bounds


def split_frame(frame: bytes) -> list[bytes]:
    """Split a frame into its MPDUs by the AGMH Length fields; strict (see :func:`frame_bounds`)."""
    data = bytes(frame)
    bounds = frame_bounds(data)
    return [data[a:b] for a, b in pairwise(bounds)]
