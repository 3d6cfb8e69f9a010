"""RADIUS authenticator back end: EAP relayed to an AAA server (RFC 2865, RFC 3579). Sans-I/O.

:class:`RadiusAuthenticator` is an :class:`~stack.pkm.authenticator.Authenticator`: the ABS role
calls ``start(peer_id)`` and talks to the returned :class:`RadiusSession` exactly as to a
built-in one. The difference is time: a session's ``handle(eap)`` only queues an Access-Request
and returns ``(None, None)``; the server's answer comes later and ``poll()`` yields it (the next
EAP request, or EAP-Success/Failure with the :class:`AuthResult`).

The datagrams are the node runtime's to move (``relaysec.aaa``)::

    for d in auth.datagrams_to_send(now): sock.send(d)
    auth.receive_datagram(sock.recv(4096), now)      # never raises; drops are counted
    auth.timer(now)                                  # retransmissions, giving up
    auth.next_deadline()

Requests: one RADIUS identifier per outstanding request (at most 256 at once; more wait in a
bounded queue), a fresh random Request Authenticator per request, a Message-Authenticator on
every request, the State of the last Access-Challenge echoed. A request is resent unchanged
(same identifier and authenticator, RFC 5080 §2.2.1) after ``timeout``, ``timeout * 2``, ...
up to ``retries`` times; then the session fails with ``aaa_timeout`` -- or ``aaa_unauthentic``
when answers did come but failed authentication (a wrong shared secret looks like that).

Answers: matched by identifier, then authenticated by the Response Authenticator and the
Message-Authenticator (required on every answer). Anything else -- unknown identifier, an
answer to a request already answered (reordered or replayed), a forgery, garbage -- is dropped
and counted in :attr:`RadiusAuthenticator.dropped` by reason; it changes no session.
Access-Accept: MSK = MS-MPPE-Recv-Key || MS-MPPE-Send-Key (RFC 2548, decrypted with the shared
secret and the request's authenticator; RFC 3748 §7.10 / RFC 5216 §2.3 usage).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from stack.errors import IntegrityError, MalformedError, ProtocolError, SecurityError
from stack.pkm import radius as r
from stack.pkm.authenticator import Authenticator
from stack.pkm.eap import MSK_LEN, AuthResult, AuthSession, EapCode, EapPacket, EapType
from stack.pkm.eap_psk import RngLike, _rand_source
from stack.pkm.nai import check_nai, check_realm, default_nai

__all__ = ["METHOD_NAMES", "RadiusAuthenticator", "RadiusSession", "RadiusSettings"]

log = logging.getLogger("stack.pkm.radius")

METHOD_NAMES: dict[int, str] = {4: "EAP-MD5", 13: "EAP-TLS", 21: "EAP-TTLS", 25: "PEAP",
                                47: "EAP-PSK", 52: "EAP-PWD"}
"""Names of EAP method types, for the result and the report."""


def _fmt_id(peer_id: bytes) -> str:
    """Station id as RFC 3580 §3.20/3.21 style text: ``00-00-BB-00-00-01``."""
    return "-".join(f"{b:02X}" for b in peer_id)


@dataclass(frozen=True)
class RadiusSettings:
    """What the back end needs to reach its AAA server. ``secret`` never shows in a repr.

    ``retries``: resends of a request after its first transmission (so ``retries + 1`` tries);
    the n-th resend waits ``timeout * 2**(n-1)`` (at most ``max_timeout``) after the previous.
    ``realm``: identities of stations without a configured one are ``<id hex>@<realm>``."""

    secret: bytes = field(repr=False)
    timeout: float = 1.0
    retries: int = 3
    max_timeout: float = 8.0
    nas_identifier: str = "relaysec-abs"
    called_station_id: str = ""
    realm: str = "relaysec.test"
    framed_mtu: int | None = None
    max_waiting: int = 1024
    """Requests queued while all 256 identifiers are in use; past that a session fails at once
    with ``aaa_busy`` (a bound on what a stranger starting entries can make us hold)."""

    def __post_init__(self) -> None:
        if not isinstance(self.secret, (bytes, bytearray)) or not self.secret:
            raise MalformedError("RADIUS: the shared secret must be non-empty bytes")
        object.__setattr__(self, "secret", bytes(self.secret))
        if not self.timeout > 0 or not self.max_timeout >= self.timeout:
            raise MalformedError("RADIUS: timeout must be > 0 and max_timeout >= timeout")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) \
                or not 0 <= self.retries <= 100:
            raise MalformedError(f"RADIUS: retries must be an int 0..100, got {self.retries!r}")
        for name in ("nas_identifier", "called_station_id"):
            v = getattr(self, name)
            if not isinstance(v, str) or len(v.encode()) > r.MAX_ATTR_VALUE:
                raise MalformedError(f"RADIUS: {name} must be text of at most 253 bytes")
        if not self.nas_identifier:
            raise MalformedError("RADIUS: nas_identifier must not be empty")
        check_realm(self.realm)
        if self.framed_mtu is not None and not 64 <= self.framed_mtu <= 65535:
            raise MalformedError("RADIUS: framed_mtu must be 64..65535")
        if not self.max_waiting >= 1:
            raise MalformedError("RADIUS: max_waiting must be >= 1")

    def interval(self, tries: int) -> float:
        """Seconds to wait for an answer after the ``tries``-th transmission (1 = first)."""
        return min(self.timeout * 2 ** (tries - 1), self.max_timeout)


@dataclass(eq=False)
class _Request:
    """One Access-Request: outstanding under ``ident`` once it holds one."""

    session: RadiusSession
    attributes: tuple[tuple[int, bytes], ...]
    ident: int = -1
    ra: bytes = b""
    raw: bytes = b""
    tries: int = 0
    deadline: float | None = None     # None: (re)send at the next datagrams_to_send
    unauthentic: int = 0              # answers under this identifier that failed authentication


class RadiusAuthenticator(Authenticator):
    """EAP authenticator relaying every conversation to one RADIUS server (see module doc).

    ``identities``: station id bytes -> EAP identity (NAI); others use ``settings.realm``.
    ``rng``: seed or Generator for Request Authenticators and EAP identifiers (None: the OS
    CSPRNG). ``request_identity``: ask the peer for its identity (EAP-Request/Identity) instead
    of answering the server's first question with the configured one."""

    def __init__(self, settings: RadiusSettings, identities: Mapping[bytes, str] | None = None,
                 *, rng: RngLike = None, request_identity: bool = False) -> None:
        self.settings = settings
        self._identities = {bytes(k): check_nai(v) for k, v in (identities or {}).items()}
        self._rand = _rand_source(rng)
        self.request_identity = request_identity
        self._outstanding: dict[int, _Request] = {}
        self._waiting: deque[_Request] = deque()
        self._next_ident = self._rand(1)[0]
        self.stats: Counter[str] = Counter()
        """``requests`` (first transmissions), ``retransmissions``, ``answers`` (authentic),
        ``timeouts`` (requests given up), ``busy`` (refused: queue full)."""
        self.dropped: Counter[str] = Counter()
        """Datagrams dropped, by reason: ``unknown_identifier`` (no request outstanding under it:
        late, reordered or replayed answers), ``malformed``, ``not_answer``,
        ``bad_response_authenticator``, ``no_message_authenticator``,
        ``bad_message_authenticator``."""

    def __repr__(self) -> str:
        return (f"RadiusAuthenticator(nas_identifier={self.settings.nas_identifier!r}, "
                f"outstanding={len(self._outstanding)}, waiting={len(self._waiting)})")

    def identity_of(self, peer_id: bytes) -> str:
        """The EAP identity (NAI) used for station ``peer_id``."""
        peer_id = bytes(peer_id)
        nai = self._identities.get(peer_id)
        if nai is None:
            nai = default_nai(int.from_bytes(peer_id, "big"), self.settings.realm)
        return nai

    def start(self, peer_id: bytes) -> AuthSession:
        peer_id = bytes(peer_id)
        if len(peer_id) != 6:
            raise MalformedError(f"RADIUS: station id must be 6 bytes, got {len(peer_id)}")
        return RadiusSession(self, peer_id, self.identity_of(peer_id).encode(),
                             self._rand(1)[0], request_identity=self.request_identity)

    # -- the runtime's side -----------------------------------------------------------------
    @property
    def outstanding(self) -> int:
        """Requests sent and not yet answered or given up."""
        return len(self._outstanding)

    def busy(self) -> bool:
        """Whether any request is outstanding or waiting (the runtime may wait for answers)."""
        return bool(self._outstanding or self._waiting)

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Access-Requests to transmit now: new ones (given a free identifier) and resends."""
        self._admit()
        out = []
        for req in self._outstanding.values():
            if req.deadline is None:
                req.tries += 1
                req.deadline = now + self.settings.interval(req.tries)
                self.stats["requests" if req.tries == 1 else "retransmissions"] += 1
                out.append(req.raw)
        return out

    def receive_datagram(self, data: bytes, now: float) -> bool:
        """Consume one datagram from the server; True when it answered a request (a session
        has news for ``poll``). Never raises: what is not an authentic answer is counted."""
        data = bytes(data)
        req = self._outstanding.get(data[1]) if len(data) >= 2 else None
        if req is None:
            self.dropped["unknown_identifier" if len(data) >= r.HEADER_LEN else "malformed"] += 1
            return False
        try:
            pkt = r.verify_answer(data, req.ra, self.settings.secret)
        except IntegrityError as exc:
            req.unauthentic += 1
            self.dropped[exc.reason] += 1
            return False
        except SecurityError as exc:
            self.dropped[exc.reason] += 1
            return False
        del self._outstanding[req.ident]
        self.stats["answers"] += 1
        req.session._on_answer(pkt, req.ra)
        self._admit()
        return True

    def timer(self, now: float) -> bool:
        """Resend requests whose answer is overdue; give up on those out of tries. True when a
        session failed for it (news for ``poll``)."""
        news = False
        for ident, req in list(self._outstanding.items()):
            if req.deadline is None or req.deadline > now:
                continue
            if req.tries > self.settings.retries:
                del self._outstanding[ident]
                self.stats["timeouts"] += 1
                req.session._on_timeout(req.tries, req.unauthentic)
                news = True
            else:
                req.deadline = None   # resent by the next datagrams_to_send
        self._admit()
        return news

    def next_deadline(self) -> float | None:
        """When :meth:`timer` has work next (None: nothing outstanding)."""
        times = [q.deadline for q in self._outstanding.values() if q.deadline is not None]
        return min(times) if times else None

    # -- sessions' side ---------------------------------------------------------------------
    def _submit(self, req: _Request) -> bool:
        if len(self._waiting) >= self.settings.max_waiting:
            self.stats["busy"] += 1
            return False
        self._waiting.append(req)
        self._admit()
        return True

    def _admit(self) -> None:
        """Give waiting requests free identifiers (one identifier per outstanding request)."""
        while self._waiting and len(self._outstanding) < 256:
            req = self._waiting.popleft()
            while self._next_ident in self._outstanding:
                self._next_ident = (self._next_ident + 1) & 0xFF
            req.ident, self._next_ident = self._next_ident, (self._next_ident + 1) & 0xFF
            req.ra = self._rand(16)
            req.raw = r.encode_request(req.ident, req.ra, req.attributes, self.settings.secret)
            self._outstanding[req.ident] = req


class RadiusSession(AuthSession):
    """One peer's EAP conversation relayed to the RADIUS server (an :class:`AuthSession`).

    States: ``wait_server`` (an Access-Request is outstanding; ``pending`` is None),
    ``wait_peer`` (``pending`` is the server's EAP request for the peer), ``done``."""

    def __init__(self, owner: RadiusAuthenticator, peer_id: bytes, identity: bytes, ident: int,
                 *, request_identity: bool) -> None:
        self.peer_id = peer_id
        self.identity = identity
        self.result: AuthResult | None = None
        self._owner = owner
        self._pending: bytes | None = None
        self._pending_ident = ident
        self._last_response_ident = ident
        self._state_attr: bytes | None = None
        self._ready: tuple[bytes | None, AuthResult | None] = (None, None)
        self.method: str | None = None
        self.round_trips = 0
        if request_identity:
            self._state = "wait_peer"
            self._pending = EapPacket(EapCode.REQUEST, ident, EapType.IDENTITY).encode()
        else:  # the ABS knows who ranged: answer the server's first question for the peer
            self._state = "wait_server"
            self._forward(EapPacket(EapCode.RESPONSE, ident, EapType.IDENTITY,
                                    identity).encode())

    def __repr__(self) -> str:
        return f"RadiusSession(peer_id={self.peer_id.hex()}, state={self._state})"

    @property
    def pending(self) -> bytes | None:
        return self._pending

    def poll(self) -> tuple[bytes | None, AuthResult | None]:
        ready, self._ready = self._ready, (None, None)
        return ready

    def handle(self, eap: bytes) -> tuple[bytes | None, AuthResult | None]:
        pkt = EapPacket.decode(eap)
        if self._state != "wait_peer":
            raise ProtocolError(f"EAP: response while {self._state}", reason="eap_unexpected")
        if pkt.code != EapCode.RESPONSE:
            raise ProtocolError(f"EAP: authenticator received code {pkt.code}",
                                reason="eap_unexpected")
        if pkt.identifier != self._pending_ident:
            raise ProtocolError(f"EAP: response identifier {pkt.identifier}, expected "
                                f"{self._pending_ident}", reason="eap_unexpected")
        if pkt.type == EapType.IDENTITY and self.round_trips == 0:
            self.identity = pkt.data   # the peer named itself (request_identity)
        self._last_response_ident = pkt.identifier
        self._pending = None
        self._state = "wait_server"
        self._forward(bytes(eap))
        return None, None

    # -- called by the authenticator --------------------------------------------------------
    def _forward(self, eap: bytes) -> None:
        st = self._owner.settings
        attrs: list[tuple[int, bytes]] = [
            (r.Attr.USER_NAME, self.identity or b"?"),
            (r.Attr.NAS_IDENTIFIER, st.nas_identifier.encode()),
            (r.Attr.CALLING_STATION_ID, _fmt_id(self.peer_id).encode()),
        ]
        if st.called_station_id:
            attrs.append((r.Attr.CALLED_STATION_ID, st.called_station_id.encode()))
        if st.framed_mtu is not None:
            attrs.append((r.Attr.FRAMED_MTU, st.framed_mtu.to_bytes(4, "big")))
        attrs.extend(r.eap_attributes(eap))
        if self._state_attr is not None:
            attrs.append((r.Attr.STATE, self._state_attr))
        self.round_trips += 1
        if not self._owner._submit(_Request(self, tuple(attrs))):
            self._finish(False, "aaa_busy")

    def _finish(self, success: bool, reason: str, msk: bytes | None = None,
                eap: bytes | None = None) -> None:
        self._state = "done"
        self._pending = None
        self.result = AuthResult(success, self.peer_id, reason, msk=msk,
                                 method=self.method or "EAP")
        code = EapCode.SUCCESS if success else EapCode.FAILURE
        reply = eap if eap is not None else EapPacket(code, self._last_response_ident).encode()
        self._ready = (reply, self.result)

    def _on_timeout(self, tries: int, unauthentic: int) -> None:
        if self._state == "done":
            return
        if unauthentic:
            log.warning("RADIUS: no authentic answer for %s after %d tries; %d answers failed "
                        "authentication (is the shared secret the server's?)",
                        self.identity.decode(errors="replace"), tries, unauthentic)
            self._finish(False, "aaa_unauthentic")
        else:
            log.warning("RADIUS: no answer from the AAA server for %s after %d tries",
                        self.identity.decode(errors="replace"), tries)
            self._finish(False, "aaa_timeout")

    def _on_answer(self, pkt: r.RadiusPacket, ra: bytes) -> None:
        if self._state != "wait_server":
            return
        try:
            eap_raw = pkt.eap_message()
            eap = None if eap_raw is None else EapPacket.decode(eap_raw)
        except MalformedError:
            self._finish(False, "bad_answer")
            return
        if pkt.code == r.RadiusCode.ACCESS_CHALLENGE:
            if eap is None or eap.code != EapCode.REQUEST or eap_raw is None:
                self._finish(False, "bad_answer")
                return
            if eap.type not in (EapType.IDENTITY, EapType.NOTIFICATION, EapType.NAK):
                self.method = METHOD_NAMES.get(int(eap.type or 0), f"EAP-{eap.type}")
            self._state_attr = pkt.first(r.Attr.STATE)
            self._pending, self._pending_ident = eap_raw, eap.identifier
            self._state = "wait_peer"
            self._ready = (eap_raw, None)
        elif pkt.code == r.RadiusCode.ACCESS_ACCEPT:
            if eap is not None and eap.code != EapCode.SUCCESS:
                self._finish(False, "bad_answer")
                return
            msk = self._msk(pkt, ra)
            if msk is None:
                self._finish(False, "no_msk")
                return
            self._finish(True, "ok", msk=msk, eap=eap_raw)
        else:  # Access-Reject
            fail = eap_raw if eap is not None and eap.code == EapCode.FAILURE else None
            self._finish(False, "access_reject", eap=fail)

    def _msk(self, pkt: r.RadiusPacket, ra: bytes) -> bytes | None:
        """MS-MPPE-Recv-Key || MS-MPPE-Send-Key, each 32 bytes (None when absent or bad)."""
        recv = pkt.vendor(r.MICROSOFT, r.MS_MPPE_RECV_KEY)
        send = pkt.vendor(r.MICROSOFT, r.MS_MPPE_SEND_KEY)
        if len(recv) != 1 or len(send) != 1:
            return None
        secret = self._owner.settings.secret
        try:
            msk = (r.mppe_decrypt(recv[0], secret, ra) + r.mppe_decrypt(send[0], secret, ra))
        except MalformedError:
            return None
        return msk if len(msk) == MSK_LEN else None
