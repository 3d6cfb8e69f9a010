"""PKMv3 and relay control messages: one declarative codec for sender and receiver.

Every message is a frozen, keyword-only dataclass; its class body is its field table (see
:mod:`stack.pkm.fields`). On the wire a message is ``code (1 byte) || fields``, fixed-width and
big-endian in declaration order (spec digest §5.2 [D]: relaysec does not use the standard's ASN.1
PER). The CMAC tuple ``CMAC_PN(3) || CMAC_VALUE(8)`` is *not* part of the codec: ``stack.cmac``
appends it after :meth:`Message.encode` and strips/checks it before :func:`decode`;
:func:`requires_cmac` says which messages must carry it.

Codes (docs/pkm.md has the full table):

* 0x01..0x08 — PKMv3 messages, numbering of digest §5.2 [D].
* 0xA0..0xAF — relay PKM, project-private: 0xA0 AK Transfer and 0xA1 AK Transfer ACK (digest §6.3),
  0xA2 AK Request, 0xA3 AMS Context Release, 0xA4 AMS Context Release ACK. (An AMS's control
  messages cross the relay link inside relay MPDUs, digest §6.4 — no envelope message is needed.)
* 0xB0..0xBF — project-private stand-ins for the AAI ranging messages: 0xB0 AAI-RNG-REQ,
  0xB1 AAI-RNG-RSP.

``decode(data)`` is strict: unknown code, truncated field, bad length field, out-of-range value,
reserved bits set, or trailing bytes all raise :class:`stack.errors.MalformedError` whose message
names the message and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, TypeVar

from stack.errors import MalformedError
from stack.pkm.fields import (
    Record,
    fixed,
    list_of,
    stid,
    sub,
    u8,
    u16,
    u32,
    var_bytes,
    when,
)

__all__ = [
    "MESSAGES",
    "AkRequest",
    "AkStatus",
    "AkTransfer",
    "AkTransferAck",
    "ContextRelease",
    "ContextReleaseAck",
    "CryptoSuite",
    "EapTransfer",
    "KeyAgreementMsg1",
    "KeyAgreementMsg2",
    "KeyAgreementMsg3",
    "Message",
    "RangingPurpose",
    "ReauthRequest",
    "ReleaseReason",
    "RngReq",
    "RngRsp",
    "RngStatus",
    "SaContext",
    "SaTekUpdate",
    "SecurityNegotiationParameters",
    "TekErrorCode",
    "TekInvalid",
    "TekReply",
    "TekRequest",
    "decode",
    "expects_cmac",
    "markdown_tables",
    "message_class",
    "requires_cmac",
]

M = TypeVar("M", bound="Message")


class CryptoSuite(IntEnum):
    """Data-encryption suite of an SA (1 byte) [D]."""

    AES_CCM_128 = 0x01  # AES-CCM, 128-bit key, 8-byte ICV, 13-byte nonce (digest §4.2)


class TekErrorCode(IntEnum):
    """TEK-Invalid error codes [D]."""

    UNKNOWN_EKS = 1
    UNKNOWN_SAID = 2
    PN_EXHAUSTED = 3


class AkStatus(IntEnum):
    """AK Transfer ACK status (digest §6.3)."""

    OK = 0
    UNWRAP_FAILED = 1
    UNKNOWN_AMS = 2


class RangingPurpose(IntEnum):
    """Why an AMS ranges [D]: first network entry, or re-entry at a handover target."""

    INITIAL_ENTRY = 0
    HANDOVER_REENTRY = 1


class RngStatus(IntEnum):
    """AAI-RNG-RSP status [D]."""

    SUCCESS = 0
    ABORT = 1  # refused (unknown AMS, no AK obtainable, bad CMAC_KEY_COUNT)
    RETRY = 2  # target is still fetching the AK; AMS retries after its timer
    RERANGE = 3  # the station holds no context for the AMS (it restarted): re-enter there


class ReleaseReason(IntEnum):
    """Why the ABS tells an RS to drop an AMS context [D]."""

    HANDOVER_COMPLETE = 0
    REAUTHENTICATION = 1
    DEREGISTRATION = 2


def _names(e: type[IntEnum]) -> dict[int, str]:
    return {m.value: m.name for m in e}


def record(cls: type[Any]) -> type[Any]:
    """Class decorator: a frozen keyword-only dataclass whose repr hides long byte fields."""
    return dataclass(frozen=True, kw_only=True, repr=False)(cls)


# ---- sub-records -----------------------------------------------------------------------------


@record
class SecurityNegotiationParameters(Record):
    """Security negotiation parameters of Key_Agreement MSG#2/#3 (fixed 6 bytes) [D].

    Modelled on the 16e TLV 25 sub-attributes (PKM version, authorization policy, MAC mode, PN
    window size, max SAs) as fixed fields."""

    pkm_version: int = u8("PKM version; 3 = PKMv3", choices={3: "PKMv3"})
    auth_policy: int = u8("authorization policy bitmap; bit 0 = EAP-based", max_value=0x01)
    mac_mode: int = u8("message authentication mode", choices={1: "CMAC"})
    pn_window_size: int = u16("replay window in PNs (digest default 64)")
    max_sas: int = u8("maximum number of SAs the sender supports")


@record
class SaTekUpdate(Record):
    """Per-SA entry of Key_Agreement MSG#3 (SA-TEK-Update): 9 bytes."""

    said: int = u8("SAID")
    crypto_suite: int = u8("data-encryption suite", choices=_names(CryptoSuite))
    counter_tek: int = u16("COUNTER_TEK of the first live TEK (the second is +1)")
    eks: int = u8("EKS = COUNTER_TEK mod 4", max_value=3)
    tek_lifetime: int = u32("TEK lifetime, seconds")

    def _validate(self) -> None:
        if self.eks != self.counter_tek % 4:
            raise self._bad("eks", f"EKS {self.eks} != COUNTER_TEK {self.counter_tek} mod 4")


@record
class SaContext(Record):
    """Per-SA entry of AK Transfer (digest §6.3): SAID(1) COUNTER_TEK(2) EKS(1) lifetime(4)."""

    said: int = u8("SAID")
    counter_tek: int = u16("current COUNTER_TEK")
    eks: int = u8("EKS = COUNTER_TEK mod 4 (low 2 bits)", max_value=3)
    tek_lifetime: int = u32("TEK lifetime remaining, seconds")

    def _validate(self) -> None:
        if self.eks != self.counter_tek % 4:
            raise self._bad("eks", f"EKS {self.eks} != COUNTER_TEK {self.counter_tek} mod 4")


# ---- messages --------------------------------------------------------------------------------

MESSAGES: dict[int, type[Message]] = {}
"""Registry: message code → message class."""


class Message(Record):
    """Base of every control message: ``CODE`` byte then the field table."""

    CODE: ClassVar[int]
    TITLE: ClassVar[str]
    DIRECTION: ClassVar[str]
    CMAC: ClassVar[bool] = False

    def encode(self) -> bytes:
        """Wire bytes: code followed by the fields (no CMAC tuple)."""
        return bytes([self.CODE]) + self.encode_body()

    @property
    def cmac_required(self) -> bool:
        """Whether this message must travel with a CMAC tuple (see :func:`requires_cmac`)."""
        return self.CMAC

    @classmethod
    def decode(cls: type[M], data: bytes) -> M:
        """Decode ``data`` as exactly this message type (strict)."""
        msg = decode(data)
        if not isinstance(msg, cls):
            raise MalformedError(
                f"expected {cls.__name__} (code {cls.CODE:#04x}), got {type(msg).__name__}",
                reason="malformed",
            )
        return msg


def message(code: int, title: str, direction: str, *, cmac: bool) -> Any:
    """Register a message class under ``code`` (and make it a record dataclass)."""

    def deco(cls: type[M]) -> type[M]:
        if code in MESSAGES:
            raise TypeError(f"message code {code:#04x} registered twice")
        cls.CODE = code
        cls.TITLE = title
        cls.DIRECTION = direction
        cls.CMAC = cmac
        cls = record(cls)
        cls.table()
        MESSAGES[code] = cls
        return cls

    return deco


@message(0x01, "PKMv3 Reauth-Request", "AMS→ABS (or serving ARS)", cmac=True)
class ReauthRequest(Message):
    """AMS asks for re-authentication (EAP follows over the encrypted control path). No fields."""


@message(0x02, "PKMv3 EAP-Transfer", "both", cmac=False)
class EapTransfer(Message):
    """Carries one EAP packet (RFC 3748) between AMS/ARS and the authenticator."""

    eap_payload: bytes = var_bytes("one EAP packet", len_bytes=2, min_len=4)


@message(0x03, "PKMv3 Key_Agreement-MSG#1", "ABS→AMS", cmac=True)
class KeyAgreementMsg1(Message):
    """ABS starts the 3-way key agreement for a new AK (digest §5.1)."""

    nonce_abs: bytes = fixed(8, "NONCE_ABS, fresh per agreement")
    akid: bytes = fixed(8, "AKID of the AK being confirmed")
    key_lifetime: int = u32("AK lifetime, seconds")


@message(0x04, "PKMv3 Key_Agreement-MSG#2", "AMS→ABS", cmac=True)
class KeyAgreementMsg2(Message):
    """AMS answers MSG#1: echoes NONCE_ABS, adds its nonce and its capabilities."""

    nonce_abs: bytes = fixed(8, "NONCE_ABS echoed from MSG#1")
    nonce_ams: bytes = fixed(8, "NONCE_AMS, fresh per agreement")
    akid: bytes = fixed(8, "AKID")
    security_params: SecurityNegotiationParameters = sub(
        SecurityNegotiationParameters, "AMS capabilities")


@message(0x05, "PKMv3 Key_Agreement-MSG#3", "ABS→AMS", cmac=True)
class KeyAgreementMsg3(Message):
    """ABS confirms: echoes both nonces, lists the SAs and their starting TEK state."""

    nonce_abs: bytes = fixed(8, "NONCE_ABS")
    nonce_ams: bytes = fixed(8, "NONCE_AMS echoed from MSG#2")
    akid: bytes = fixed(8, "AKID")
    sa_tek_updates: tuple[SaTekUpdate, ...] = list_of(SaTekUpdate, "SA-TEK-Update, one per SA")
    security_params: SecurityNegotiationParameters = sub(
        SecurityNegotiationParameters, "parameters the ABS selected")


@message(0x06, "PKMv3 TEK-Request", "AMS→ABS/ARS", cmac=True)
class TekRequest(Message):
    """Ask for the next TEK of an SA (no key material is ever sent: TEKs are derived)."""

    said: int = u8("SAID")


@message(0x07, "PKMv3 TEK-Reply", "ABS/ARS→AMS", cmac=True)
class TekReply(Message):
    """Announce the new COUNTER_TEK/EKS of an SA; both sides derive the TEK from the AK."""

    said: int = u8("SAID")
    counter_tek: int = u16("new COUNTER_TEK")
    eks: int = u8("EKS = COUNTER_TEK mod 4", max_value=3)
    tek_lifetime: int = u32("TEK lifetime, seconds")

    def _validate(self) -> None:
        if self.eks != self.counter_tek % 4:
            raise self._bad("eks", f"EKS {self.eks} != COUNTER_TEK {self.counter_tek} mod 4")


@message(0x08, "PKMv3 TEK-Invalid", "both", cmac=True)
class TekInvalid(Message):
    """Tell the peer its EKS (or SAID) is unknown; the peer restarts from TEK-Request."""

    said: int = u8("SAID")
    error_code: int = u8("why", choices=_names(TekErrorCode))


@message(0xA0, "PKMv3 AK Transfer", "ABS→ARS", cmac=True)
class AkTransfer(Message):
    """The ABS hands an AMS's AK and key context to an access RS (digest §6.3, exact layout).

    CMAC tuple with CMAC_KEY_D of the *ARS's* AK context."""

    transaction_id: int = u8("matches the ACK; new per transfer")
    ams_stid: int = stid("STID of the AMS the AK belongs to")
    amsid_star: bytes = fixed(6, "AMSID*")
    akid: bytes = fixed(8, "AKID of the transferred AK")
    ak_sn: int = u8("AK SN = 0b0000 || PMK_SN", max_value=0x0F)
    ak_lifetime: int = u32("AK lifetime remaining, seconds")
    cmac_key_count: int = u16("CMAC_KEY_COUNT used in this AK")
    sa_context: tuple[SaContext, ...] = list_of(SaContext, "TEK state per SA")
    wrapped_ak: bytes = fixed(32, "RFC5649-Wrap(KEK_ARS, AK)")


@message(0xA1, "PKMv3 AK Transfer ACK", "ARS→ABS", cmac=True)
class AkTransferAck(Message):
    """ARS acknowledges an AK Transfer (CMAC with the ARS's CMAC_KEY_U)."""

    transaction_id: int = u8("transaction id of the AK Transfer")
    ams_stid: int = stid("STID of the AMS")
    akid: bytes = fixed(8, "AKID from the AK Transfer")
    status: int = u8("result", choices=_names(AkStatus))


@message(0xA2, "AK Request (project-private)", "ARS→ABS", cmac=True)
class AkRequest(Message):
    """Handover without pre-distribution: a target RS that got an AMS's re-entry AAI-RNG-REQ asks
    the ABS for the AK for that CMAC_KEY_COUNT, forwarding the request itself: the ABS derives
    the AK it would transfer, verifies the request's CMAC under it (so only the AMS's own request
    to *this* RS unlocks the AK, never the RS's word alone) and answers with AK Transfer (same
    transaction id), or stays silent when it refuses (the RS then answers the AMS with
    AAI-RNG-RSP status ABORT)."""

    transaction_id: int = u8("echoed in the AK Transfer that answers")
    ams_stid: int = stid("STID from the AMS's AAI-RNG-REQ")
    cmac_key_count: int = u16("CMAC_KEY_COUNT from the AMS's AAI-RNG-REQ")
    rng_req: bytes = var_bytes("the AMS's handover AAI-RNG-REQ, CMAC tuple included: the ABS "
                               "verifies it under the AK it would transfer before sending it",
                               len_bytes=1, min_len=1)


@message(0xA3, "AMS Context Release (project-private)", "ABS→ARS", cmac=True)
class ContextRelease(Message):
    """Handover confirm to the old serving RS: drop the AMS's AK context identified by AKID (so
    a late release can never delete a newer context)."""

    transaction_id: int = u8("matches the ACK")
    ams_stid: int = stid("STID of the AMS at the old RS")
    akid: bytes = fixed(8, "AKID of the context to drop")
    reason: int = u8("why", choices=_names(ReleaseReason))


@message(0xA4, "AMS Context Release ACK (project-private)", "ARS→ABS", cmac=True)
class ContextReleaseAck(Message):
    """The old RS confirms it deleted the AMS context."""

    transaction_id: int = u8("transaction id of the release")
    ams_stid: int = stid("STID of the AMS")


def _initial(v: Mapping[str, Any]) -> bool:
    return v.get("purpose") == RangingPurpose.INITIAL_ENTRY


def _handover(v: Mapping[str, Any]) -> bool:
    return v.get("purpose") == RangingPurpose.HANDOVER_REENTRY


@message(0xB0, "AAI-RNG-REQ (project encoding)", "AMS→ABS/ARS", cmac=True)
class RngReq(Message):
    """Ranging request. Initial entry: carries AMSID and NONCE_AMS (for AMSID*), no CMAC.
    Handover re-entry: carries the STID and serving station id, and is CMAC-protected with the
    keys of the *new* AK (target id, incremented CMAC_KEY_COUNT) — proving AK possession."""

    purpose: int = u8("initial entry / handover re-entry", choices=_names(RangingPurpose))
    cmac_key_count: int = u16("CMAC_KEY_COUNT the AMS uses for the target's AK")
    target_id: bytes = fixed(6, "48-bit id of the station the AMS attaches to (ABSID/RS id)")
    amsid: bytes | None = when(_initial, fixed(6, "AMSID (MAC address)"), "purpose = 0")
    nonce_ams: bytes | None = when(_initial, fixed(6, "NONCE_AMS for AMSID*"), "purpose = 0")
    stid: int | None = when(_handover, stid("STID at the serving station"), "purpose = 1")
    serving_id: bytes | None = when(_handover, fixed(6, "48-bit id of the old serving station"),
                                    "purpose = 1")

    @property
    def cmac_required(self) -> bool:
        return self.purpose == RangingPurpose.HANDOVER_REENTRY


@message(0xB1, "AAI-RNG-RSP (project encoding)", "ABS/ARS→AMS", cmac=True)
class RngRsp(Message):
    """Ranging response: status and the STID assigned (initial) or confirmed (re-entry).
    CMAC-protected for a successful handover re-entry (the target proves it holds the new AK);
    initial-entry responses and refusals carry no CMAC (no shared AK exists), so an initial
    response echoes the request's AMSID *and* NONCE_AMS: the AMS accepts it only for the
    attempt in progress (a replayed response of an earlier attempt is ``stale_rng_rsp``)."""

    purpose: int = u8("echo of the request's purpose", choices=_names(RangingPurpose))
    status: int = u8("result", choices=_names(RngStatus))
    stid: int = stid("STID assigned / confirmed (0 when refused)")
    amsid: bytes | None = when(_initial, fixed(6, "AMSID echoed from the request"),
                               "purpose = 0")
    nonce_ams: bytes | None = when(_initial, fixed(6, "NONCE_AMS echoed from the request"),
                                   "purpose = 0")
    request_cmac: bytes | None = when(
        _handover, fixed(11, "CMAC tuple of the re-entry request answered"), "purpose = 1")

    @property
    def cmac_required(self) -> bool:
        return (self.purpose == RangingPurpose.HANDOVER_REENTRY
                and self.status == RngStatus.SUCCESS)


# ---- module-level API ------------------------------------------------------------------------


def message_class(code: int) -> type[Message]:
    """The class registered for ``code``; MalformedError if none."""
    try:
        return MESSAGES[code]
    except KeyError:
        raise MalformedError(f"unknown control message code {code:#04x}",
                             reason="malformed") from None


def decode(data: bytes) -> Message:
    """Decode one control message (without CMAC tuple). Strict: see module docstring."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedError(f"expected bytes, got {type(data).__name__}", reason="malformed")
    buf = memoryview(bytes(data))
    if len(buf) == 0:
        raise MalformedError("empty control message (no code byte)", reason="malformed")
    cls = message_class(buf[0])
    msg, end = cls.decode_from(buf, 1)
    if end != len(buf):
        raise MalformedError(
            f"{cls.__name__}: {len(buf) - end} trailing bytes after the last field "
            f"(message is {end} bytes)", reason="malformed")
    return msg


def requires_cmac(msg: Message | type[Message]) -> bool:
    """Whether ``msg`` travels with the CMAC tuple of digest §3.1 (appended by ``stack.cmac``).

    For a class, answers for its usual case; AAI-RNG-REQ/RSP depend on the instance (purpose and
    status), so pass the instance when you have one."""
    if isinstance(msg, Message):
        return msg.cmac_required
    return msg.CMAC


def expects_cmac(data: bytes) -> bool:
    """Whether received control-message bytes should end with a CMAC tuple, decided from the
    leading bytes only (before the tuple is checked and stripped): the code byte, and for
    AAI-RNG-REQ its purpose (byte 1), for AAI-RNG-RSP its purpose and status (bytes 1-2).
    Agrees with :func:`requires_cmac` on the decoded message. MalformedError if the code is
    unknown or the bytes are too short to tell."""
    if len(data) == 0:
        raise MalformedError("empty control message (no code byte)", reason="malformed")
    cls = message_class(data[0])
    if cls is RngReq:
        if len(data) < 2:
            raise MalformedError("RngReq.purpose: truncated", reason="malformed")
        return data[1] == RangingPurpose.HANDOVER_REENTRY
    if cls is RngRsp:
        if len(data) < 3:
            raise MalformedError("RngRsp.status: truncated", reason="malformed")
        return data[1] == RangingPurpose.HANDOVER_REENTRY and data[2] == RngStatus.SUCCESS
    return cls.CMAC


def _cmac_note(cls: type[Message]) -> str:
    if cls is RngReq:
        return "handover re-entry only"
    if cls is RngRsp:
        return "successful re-entry only"
    return "yes" if cls.CMAC else "no"


def markdown_tables() -> str:
    """The message table and one field table per message/sub-record, generated from the field
    tables themselves (docs/pkm.md embeds this text; a test keeps the two in step)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| code | class | message | direction | CMAC tuple |", "|---|---|---|---|---|"]
    for code, cls in sorted(MESSAGES.items()):
        lines.append(f"| 0x{code:02X} | `{cls.__name__}` | {cls.TITLE} | {cls.DIRECTION} | "
                     f"{_cmac_note(cls)} |")
    records: list[type[Record]] = [MESSAGES[c] for c in sorted(MESSAGES)]
    records += [SecurityNegotiationParameters, SaTekUpdate, SaContext]
    for cls in records:
        code = getattr(cls, "CODE", None)
        head = f"0x{code:02X} `{cls.__name__}`" if code is not None else f"`{cls.__name__}`"
        lines += ["", f"#### {head}", ""]
        rows = cls.field_docs()
        if not rows:
            lines.append("(no fields: the code byte only)")
            continue
        lines += ["| field | format | meaning |", "|---|---|---|"]
        lines += [f"| `{n}` | {cell(fmt)} | {cell(doc)} |" for n, fmt, doc in rows]
    return "\n".join(lines) + "\n"
