"""An in-memory RADIUS server for tests: EAP-PSK (the project's ``EapPskServer``) behind RFC 2865 /
RFC 3579 framing built with ``stack.pkm.radius``, with switches for the faults the back end must
survive (no answer, wrong secret, Access-Reject, forged answers). Not a product: real servers
(hostapd, FreeRADIUS) are tested in ``tests/aaa/test_servers.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from stack.pkm import radius as r
from stack.pkm.eap import EapCode, EapPacket, EapType
from stack.pkm.eap_psk import EapPskServer
from stack.pkm.radius_client import RadiusAuthenticator


class MemRadiusServer:
    """EAP-PSK users by identity (``{nai: psk}``), shared ``secret``.

    ``silent``: answer nothing. ``answer_secret``: sign answers with this secret instead (a
    server configured with another secret). ``reject_all``: Access-Reject every request.
    ``seen``: every request received (decoded)."""

    def __init__(self, users: dict[bytes, bytes], secret: bytes, *, seed: int = 7) -> None:
        self.users = users
        self.secret = secret
        self.answer_secret = secret
        self.silent = False
        self.reject_all = False
        self.wrong_msk = False   # Access-Accept carries an MSK the peer does not share
        self.seen: list[r.RadiusPacket] = []
        self._sessions: dict[bytes, EapPskServer] = {}
        self._state_ids = itertools.count(1)
        self._seed = seed
        self.answers: dict[tuple[int, bytes], bytes] = {}   # (id, RA) -> answer (duplicates)

    def handle(self, datagram: bytes) -> bytes | None:
        """The answer to one Access-Request datagram (None: dropped or silent)."""
        try:
            req = r.verify_request(datagram, self.secret)
        except Exception:
            return None     # RFC 3579 §3.2: silently discard
        self.seen.append(req)
        if self.silent:
            return None
        key = (req.identifier, req.authenticator)
        if key in self.answers:       # a retransmission: the same answer again
            return self.answers[key]
        ans = self._answer(req)
        self.answers[key] = ans
        return ans

    def _reply(self, req: r.RadiusPacket, code: int, attrs: list[tuple[int, bytes]]) -> bytes:
        return r.encode_answer(code, req.identifier, req.authenticator, tuple(attrs),
                               self.answer_secret)

    def _answer(self, req: r.RadiusPacket) -> bytes:
        eap = EapPacket.decode(req.eap_message() or b"")
        if self.reject_all:
            return self._reply(req, r.RadiusCode.ACCESS_REJECT, list(r.eap_attributes(
                EapPacket(EapCode.FAILURE, eap.identifier).encode())))
        state = req.first(r.Attr.STATE)
        if state is None:
            assert eap.type == EapType.IDENTITY, "first request carries the identity"
            psk = self.users.get(eap.data)
            if psk is None:
                return self._reply(req, r.RadiusCode.ACCESS_REJECT, list(r.eap_attributes(
                    EapPacket(EapCode.FAILURE, eap.identifier).encode())))
            state = b"st%d" % next(self._state_ids)
            sess = EapPskServer(eap.data, psk, server_id=b"mem-aaa", rng=self._seed)
            self._sessions[state] = sess
            return self._challenge(req, sess.pending or b"", state)
        sess = self._sessions[state]
        reply, result = sess.handle(req.eap_message() or b"")
        assert reply is not None
        if result is None:
            return self._challenge(req, reply, state)
        if not result.success:
            return self._reply(req, r.RadiusCode.ACCESS_REJECT, list(r.eap_attributes(reply)))
        assert result.msk is not None
        msk = result.msk[:-1] + bytes([result.msk[-1] ^ 1]) if self.wrong_msk else result.msk
        ra = req.authenticator
        vsa = b"".join(bytes([t, 2 + len(v)]) + v for t, v in (
            (r.MS_MPPE_RECV_KEY, r.mppe_encrypt(msk[:32], self.answer_secret, ra, b"\x81\x01")),
            (r.MS_MPPE_SEND_KEY, r.mppe_encrypt(msk[32:], self.answer_secret, ra, b"\x82\x02"))))
        return self._reply(req, r.RadiusCode.ACCESS_ACCEPT, [
            *r.eap_attributes(reply),
            (r.Attr.VENDOR_SPECIFIC, r.MICROSOFT.to_bytes(4, "big") + vsa)])

    def _challenge(self, req: r.RadiusPacket, eap: bytes, state: bytes) -> bytes:
        return self._reply(req, r.RadiusCode.ACCESS_CHALLENGE,
                           [*r.eap_attributes(eap), (r.Attr.STATE, state)])


def pump(auth: RadiusAuthenticator, server: MemRadiusServer, now: float,
         wire: Callable[[bytes], list[bytes]] | None = None) -> bool:
    """Move datagrams both ways once (``wire`` may drop, alter or duplicate answers); True when
    a session got news."""
    news = False
    auth.timer(now)
    for d in auth.datagrams_to_send(now):
        ans = server.handle(d)
        if ans is None:
            continue
        for a in (wire(ans) if wire is not None else [ans]):
            news |= auth.receive_datagram(a, now)
    return news
