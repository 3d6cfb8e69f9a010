"""The authenticator interface the ABS role talks to, and the built-in EAP-PSK back end.

The ABS role never runs an EAP method itself: for every station that enters it calls
``authenticator.start(peer_id)`` and gets an :class:`~stack.pkm.eap.AuthSession`, sends
``session.pending`` (inside PKMv3 EAP-Transfer), resends it on its retransmission timer, feeds each
EAP response to ``session.handle(...)`` and, once ``result`` is known, takes ``result.msk`` (64 B)
into the PKMv3 key hierarchy. What sits behind ``start`` is the back end's business:

* :class:`BuiltinAuthenticator` — the embedded AAA: a table of per-station EAP-PSK keys; sessions
  are :class:`~stack.pkm.eap_psk.EapPskServer` objects answering synchronously.
* :class:`~stack.pkm.radius_client.RadiusAuthenticator` — EAP relayed to a RADIUS server
  (hostapd, FreeRADIUS). Its ``start(peer_id)`` answers the server's first question with the
  station's NAI and returns a session whose ``pending`` is None until the server's first
  Access-Challenge arrives; ``handle(eap)`` wraps the response in an Access-Request
  (EAP-Message, Message-Authenticator, the State of the last challenge) and returns
  ``(None, None)``. The node runtime moves the datagrams (``relaysec.aaa``; ``stack/`` does no
  I/O) and when an answer arrives ``poll()`` yields the next request (Access-Challenge), or
  EAP-Success + an :class:`AuthResult` whose MSK is MS-MPPE-Recv-Key ‖ MS-MPPE-Send-Key
  (Access-Accept, RFC 2548 / RFC 3748 §7.10), or EAP-Failure (Access-Reject, no answer). The ABS
  role calls ``poll()`` for its sessions in EAP from its ``timer()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from stack.errors import KeyLengthError
from stack.pkm.eap import AuthResult, AuthSession, EapCode, EapPacket
from stack.pkm.eap_psk import PSK_LEN, EapPskServer, RngLike, _rand_source

__all__ = ["AuthResult", "AuthSession", "Authenticator", "BuiltinAuthenticator"]


class Authenticator(ABC):
    """Back-end-neutral EAP authenticator: one :class:`AuthSession` per peer conversation."""

    @abstractmethod
    def start(self, peer_id: bytes) -> AuthSession:
        """Begin authenticating ``peer_id`` (its EAP identity, the 6-byte station id here).
        Starting again for the same peer abandons the previous conversation."""


class _RejectedSession(AuthSession):
    """Conversation for a peer without credentials: EAP-Failure at once, failed result."""

    def __init__(self, peer_id: bytes, ident: int) -> None:
        self.peer_id = peer_id
        self.result = AuthResult(False, peer_id, "unknown_peer")
        self._failure: bytes | None = EapPacket(EapCode.FAILURE, ident).encode()

    @property
    def pending(self) -> bytes | None:
        return self._failure

    def handle(self, eap: bytes) -> tuple[bytes | None, AuthResult | None]:
        EapPacket.decode(eap)  # malformed input still raises MalformedError
        return None, self.result

    def poll(self) -> tuple[bytes | None, AuthResult | None]:
        return None, None

    def __repr__(self) -> str:
        return f"_RejectedSession(peer_id={self.peer_id.hex()})"


class BuiltinAuthenticator(Authenticator):
    """Embedded AAA holding per-station EAP-PSK keys (``{peer_id: 16-byte PSK}``).

    ``server_id`` is EAP-PSK's ID_S; ``rng`` (seed or Generator, None = OS CSPRNG) draws RAND_S
    and EAP identifiers; ``request_identity`` adds the optional EAP-Request/Identity round trip
    (off by default: the ABS already knows the station id from ranging). ``identities``: the
    EAP identity (ID_P, e.g. an NAI) of stations that do not use their 6-byte id."""

    def __init__(self, psks: Mapping[bytes, bytes], *, server_id: bytes = b"relaysec-aaa",
                 rng: RngLike = None, request_identity: bool = False,
                 identities: Mapping[bytes, bytes] | None = None) -> None:
        table: dict[bytes, bytes] = {}
        for peer, psk in psks.items():
            if len(psk) != PSK_LEN:
                raise KeyLengthError(f"PSK for peer {bytes(peer).hex()} must be {PSK_LEN} bytes, "
                                     f"got {len(psk)}")
            table[bytes(peer)] = bytes(psk)
        self._psks = table
        self._identities = {bytes(k): bytes(v) for k, v in (identities or {}).items()}
        self.server_id = bytes(server_id)
        self._deterministic = rng is not None
        self._rand = _rand_source(rng)
        self.request_identity = request_identity

    def __repr__(self) -> str:
        return f"BuiltinAuthenticator({len(self._psks)} peers, server_id={self.server_id!r})"

    def __contains__(self, peer_id: bytes) -> bool:
        return bytes(peer_id) in self._psks

    def start(self, peer_id: bytes) -> AuthSession:
        peer_id = bytes(peer_id)
        psk = self._psks.get(peer_id)
        if psk is None:
            return _RejectedSession(peer_id, self._rand(1)[0])
        # Seeded: each session gets a deterministic stream drawn from ours; else the OS CSPRNG.
        session_rng = int.from_bytes(self._rand(8), "big") if self._deterministic else None
        return EapPskServer(self._identities.get(peer_id, peer_id), psk,
                            server_id=self.server_id, rng=session_rng,
                            request_identity=self.request_identity)
