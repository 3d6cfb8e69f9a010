"""How the roles put messages into MPDUs and MPDUs into frames (docs/roles.md §5).

* A *frame* is what one burst carries to one neighbour: MPDUs back to back, each delimited by the
  11-bit Length of its 2-byte AGMH (digest §4.1).
* FID 0 MPDUs carry one control message (``stack.pkm.messages``), plain; messages that need it end
  with the CMAC tuple of ``stack.cmac``.
* FID 2..14 MPDUs carry transport data, protected with the link's primary SA (``stack.mpdu``).
* FID 15 MPDUs are relay MPDUs on the ABS↔ARS link, protected with the ARS's SA [D]; their payload
  is a list of items ``AMS STID (12 bits) | 4 zero bits (2 bytes) || one AMS MPDU`` (digest §6.4).
"""

from __future__ import annotations

from stack.errors import MalformedError

FID_CONTROL = 0
FID_RELAY = 15
FIRST_DATA_FID = 2
LAST_DATA_FID = 14
AGMH_LEN = 2
MAX_MPDU_LEN = 0x7FF
DATA_FIDS: frozenset[int] = frozenset(range(FIRST_DATA_FID, LAST_DATA_FID + 1))
"""Transport FIDs, protected with the link's primary SA."""


RELAY_MANAGEMENT_CODES: frozenset[int] = frozenset({0xA0, 0xA1, 0xA2, 0xA3, 0xA4})
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
        raise MalformedError("MPDU shorter than its AGMH")
    return mpdu[0] >> 4


def plain_mpdu(fid: int, payload: bytes) -> bytes:
    """An unprotected MPDU: AGMH followed by ``payload``."""
    return agmh(fid, AGMH_LEN + len(payload)) + bytes(payload)


def plain_payload(mpdu: bytes) -> bytes:
    """Payload of an unprotected MPDU (the AGMH length must match exactly)."""
    split = split_frame(mpdu)
    if len(split) != 1:
        raise MalformedError("expected exactly one MPDU")
    return bytes(mpdu[AGMH_LEN:])


def control_mpdu(message: bytes) -> bytes:
    """A FID 0 MPDU around one encoded control message (with its CMAC tuple if any)."""
    return plain_mpdu(FID_CONTROL, message)


def split_frame(frame: bytes) -> list[bytes]:
    """Split a frame into its MPDUs by the AGMH Length fields; strict (no trailing bytes)."""
    data = bytes(frame)
    out: list[bytes] = []
    pos = 0
    if not data:
        raise MalformedError("empty frame")
    while pos < len(data):
        if len(data) - pos < AGMH_LEN:
            raise MalformedError(f"{len(data) - pos} trailing bytes after the last MPDU")
        length = int.from_bytes(data[pos : pos + 2], "big") & MAX_MPDU_LEN
        if length < AGMH_LEN or pos + length > len(data):
            raise MalformedError(
                f"MPDU at offset {pos}: Length {length} does not fit the {len(data)}-byte frame"
            )
        out.append(data[pos : pos + length])
        pos += length
    return out
