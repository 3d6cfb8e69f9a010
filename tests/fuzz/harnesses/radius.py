"""RADIUS codec and back end (RFC 2865/3579/2548): :func:`stack.pkm.radius.decode`,
:func:`~stack.pkm.radius.verify_answer` and :meth:`RadiusAuthenticator.receive_datagram`.

Input: one datagram from "the server". Invariants: a decoded packet re-encodes to its bytes up to
Length (the decoder is canonical apart from padding), and its repr shows no attribute value;
``verify_answer`` accepts only what carries a valid Response Authenticator and exactly one valid
Message-Authenticator; a :class:`RadiusAuthenticator` with one outstanding request (fixed seed,
so the seeds' genuine answers match its identifier and authenticator) never raises, counts every
datagram it drops, and a session it advances holds an MSK only after an Access-Accept that
verifies.
"""

from __future__ import annotations

import hashlib
import hmac

from stack.errors import SecurityError
from stack.pkm import radius as r
from stack.pkm.radius_client import RadiusAuthenticator, RadiusSettings
from tests.fuzz._core import check

ALLOWED = (SecurityError,)

SECRET = b"fuzz-radius-secret"
STATION = bytes.fromhex("0c0000000101")
SEED = 41


def new_client() -> tuple[RadiusAuthenticator, object, bytes]:
    """A back end with one Access-Request outstanding; returns it, the session, the request."""
    auth = RadiusAuthenticator(RadiusSettings(secret=SECRET, timeout=1.0, retries=1), rng=SEED)
    session = auth.start(STATION)
    (request,) = auth.datagrams_to_send(0.0)
    return auth, session, request


def _reencode(pkt: r.RadiusPacket) -> bytes:
    attrs = b"".join(bytes([t, len(v) + 2]) + v for t, v in pkt.attributes)
    return (bytes([pkt.code, pkt.identifier]) + (20 + len(attrs)).to_bytes(2, "big")
            + pkt.authenticator + attrs)


def one_input(data: bytes) -> None:
    """Feed ``data`` to the decoder, the answer check and a back end."""
    auth, session, request = new_client()
    before = sum(auth.dropped.values())
    news = auth.receive_datagram(data, 0.5)
    dropped = sum(auth.dropped.values()) - before
    check(news != (dropped == 1), "drop_not_counted", f"news={news} dropped={dropped}")
    result = session.result  # type: ignore[attr-defined]
    if result is not None and result.success:
        pkt = r.decode(data)
        check(pkt.code == r.RadiusCode.ACCESS_ACCEPT, "success_without_accept", repr(pkt))
    pkt = r.decode(data)
    n = int.from_bytes(data[2:4], "big")
    check(_reencode(pkt) == data[:n], "not_canonical", repr(pkt))
    text = repr(pkt)
    for _t, v in pkt.attributes:
        check(len(v) < 4 or v.hex() not in text, "repr_shows_value", text)
    ra = request[4:20]
    ans = r.verify_answer(data, ra, SECRET)
    body = data[:n]
    want = hashlib.md5(body[:4] + ra + body[20:] + SECRET).digest()
    check(hmac.compare_digest(want, ans.authenticator), "forged_accepted", repr(ans))
    check(len(ans.values(r.Attr.MESSAGE_AUTHENTICATOR)) == 1, "no_ma_accepted", repr(ans))
