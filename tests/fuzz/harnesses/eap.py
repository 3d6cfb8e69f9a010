"""EAP packet codec (RFC 3748 §4): :meth:`stack.pkm.eap.EapPacket.decode`.

Input: the packet bytes. Invariants: a decoded packet re-encodes to exactly the input (the decoder
accepts no padding, so it is canonical), fields are in range, repr never fails and never shows the
type data; the EAP-PSK Type-Data codec (``decode_psk``) round-trips on what it accepts, and the
built-in authenticator's session for an unknown peer only rejects with ``SecurityError``.
"""

from __future__ import annotations

from stack.errors import SecurityError
from stack.pkm.authenticator import BuiltinAuthenticator
from stack.pkm.eap import EapCode, EapPacket, EapType
from stack.pkm.eap_psk import decode_psk, encode_psk
from tests.fuzz._core import check

ALLOWED = (SecurityError,)

_auth: BuiltinAuthenticator | None = None


def setup() -> None:
    """An authenticator that knows nobody (its sessions answer EAP-Failure)."""
    global _auth
    _auth = BuiltinAuthenticator({}, rng=1)


def one_input(data: bytes) -> None:
    """Decode ``data`` as one EAP packet and check it."""
    pkt = EapPacket.decode(data)
    check(pkt.encode() == data, "not_canonical", repr(pkt))
    check(0 <= pkt.identifier <= 255 and pkt.code in tuple(EapCode), "bad_fields", repr(pkt))
    text = repr(pkt)
    check(len(pkt.data) < 4 or pkt.data.hex() not in text, "repr_shows_data", text)
    assert _auth is not None
    session = _auth.start(b"\x00" * 6)
    reply, result = session.handle(data)
    check(reply is None and result is not None and not result.success, "rejected_session", "")
    if pkt.type == EapType.PSK:
        msg = decode_psk(pkt.data)
        check(encode_psk(msg) == pkt.data, "psk_not_canonical", type(msg).__name__)
