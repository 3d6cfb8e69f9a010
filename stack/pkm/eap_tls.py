"""EAP-TLS peer (RFC 5216 with TLS 1.2, RFC 9190 with TLS 1.3) over a memory BIO. Sans-I/O.

The TLS engine is pyOpenSSL (OpenSSL): a client ``Connection`` without a socket, fed and drained
through its memory BIO, and ``export_keying_material`` for the keys::

    TLS 1.2 (RFC 5216 §2.3):  Key_Material = TLS-PRF(master, "client EAP encryption",
                                                     client.random || server.random)[0..127]
                              (= the RFC 5705 exporter with that label and no context)
    TLS 1.3 (RFC 9190 §2.3):  Key_Material = TLS-Exporter("EXPORTER_EAP_TLS_Key_Material",
                                                          0x0D, 128)
    MSK = Key_Material[0..63]    EMSK = Key_Material[64..127]

EAP-TLS Type-Data: Flags(1) [TLS Message Length(4) when L] TLS data. Flags: L (0x80) length
included, M (0x40) more fragments, S (0x20) start. A TLS message longer than
``fragment_size`` goes out in fragments (the first with L and the total length, all but the last
with M); the server acknowledges each with an empty EAP-TLS request, and we acknowledge each of
its fragments with an empty response (RFC 5216 §2.1.5).

The server certificate must chain to the configured CA and name ``server_name`` (a DNS SAN);
otherwise the handshake fails with reason ``tls_untrusted``, ``tls_expired`` or
``tls_wrong_name``, and the TLS alert goes to the server.
"""

from __future__ import annotations

from stack.errors import MalformedError, ProtocolError
from stack.pkm.eap import AuthResult, EapCode, EapPacket, EapType

__all__ = ["EAP_TLS", "FLAG_L", "FLAG_M", "FLAG_S", "EapTlsPeer", "decode_tls", "encode_tls"]

EAP_TLS = 13
FLAG_L, FLAG_M, FLAG_S = 0x80, 0x40, 0x20
MAX_TLS_MESSAGE = 1 << 16
"""Largest TLS message (flight) reassembled from fragments: bounds what a server makes us hold."""

_X509_TIME = (9, 10)   # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED


def encode_tls(flags: int, data: bytes = b"", total: int | None = None) -> bytes:
    """EAP-TLS Type-Data: Flags [Length] data (Length only with ``total``, which sets L)."""
    if total is not None:
        return bytes([flags | FLAG_L]) + total.to_bytes(4, "big") + data
    return bytes([flags]) + data


def decode_tls(data: bytes) -> tuple[int, int | None, bytes]:
    """``(flags, total length or None, TLS data)``; MalformedError on a short or inconsistent
    Type-Data (reserved flag bits, L without 4 length bytes, a length beyond the bound)."""
    data = bytes(data)
    if not data:
        raise MalformedError("EAP-TLS: empty Type-Data", reason="malformed")
    flags = data[0]   # the five reserved bits are ignored on receipt (RFC 5216 §3.1)
    if flags & FLAG_L:
        if len(data) < 5:
            raise MalformedError("EAP-TLS: L flag without a 4-byte length", reason="malformed")
        total = int.from_bytes(data[1:5], "big")
        if total > MAX_TLS_MESSAGE or total < len(data) - 5:
            raise MalformedError(f"EAP-TLS: TLS Message Length {total} impossible",
                                 reason="malformed")
        return flags, total, data[5:]
    return flags, None, data[1:]


class EapTlsPeer:
    """EAP peer running EAP-TLS (the AMS / ARS side), like :class:`~stack.pkm.eap_psk.EapPskPeer`:
    ``handle(eap) -> (reply | None, result | None)``; ``result`` is provisional until EAP-Success
    (``confirmed``). PEM paths: ``cert`` (device certificate, chain allowed), ``key``, ``ca``
    (trust anchor for the server). ``max_version``: ``"1.2"`` to refuse TLS 1.3."""

    def __init__(self, identity: bytes, *, cert: str, key: str, ca: str, server_name: str,
                 fragment_size: int = 1000, max_version: str | None = None) -> None:
        from OpenSSL import SSL

        self._SSL = SSL
        self.identity = bytes(identity)
        self.server_name = server_name
        if not 64 <= fragment_size <= 16384:
            raise MalformedError("EAP-TLS: fragment_size must be 64..16384")
        self.fragment_size = fragment_size
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        if max_version is not None:
            versions = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
            if max_version not in versions:
                raise MalformedError("EAP-TLS: max_version must be '1.2' or '1.3'")
            ctx.set_max_proto_version(versions[max_version])
        try:
            ctx.use_certificate_chain_file(cert)
            ctx.use_privatekey_file(key)
            ctx.check_privatekey()
            ctx.load_verify_locations(ca)
        except SSL.Error as exc:
            raise MalformedError(f"EAP-TLS: cannot load the device certificate, key or CA "
                                 f"({type(exc).__name__})") from None
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        self._ctx = ctx
        self._conn: SSL.Connection | None = None
        self._in = bytearray()
        self._in_total: int | None = None
        self._out = b""
        self._cert_problem: str | None = None
        self._last_request: bytes | None = None
        self._last_response: bytes | None = None
        self.result: AuthResult | None = None
        self.confirmed = False
        self.tls_version: str | None = None

    def __repr__(self) -> str:
        return f"EapTlsPeer(identity={self.identity!r}, tls={self.tls_version})"

    @property
    def msk(self) -> bytes | None:
        """The 64-byte MSK after a successful handshake, else None."""
        return self.result.msk if self.result is not None else None

    # -- certificate checks ---------------------------------------------------------------------
    def _verify(self, conn: object, cert: object, errno: int, depth: int, ok: int) -> bool:
        if not ok:
            self._cert_problem = ("tls_expired" if errno in _X509_TIME
                                  else "tls_untrusted")
            return False
        if depth == 0 and not self._names_server(cert):
            self._cert_problem = "tls_wrong_name"
            return False
        return True

    def _names_server(self, cert: object) -> bool:
        from cryptography import x509

        c = cert.to_cryptography()  # type: ignore[attr-defined]
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        want = self.server_name.lower()
        for name in san.get_values_for_type(x509.DNSName):
            name = name.lower()
            if name == want or (name.startswith("*.") and want.count(".") >= 2
                                and want.split(".", 1)[1] == name[2:]):
                return True
        return False

    # -- EAP ------------------------------------------------------------------------------------
    def _respond(self, req_raw: bytes, ident: int, type_data: bytes,
                 eap_type: int = EAP_TLS) -> bytes:
        out = EapPacket(EapCode.RESPONSE, ident, eap_type, type_data).encode()
        self._last_request, self._last_response = req_raw, out
        return out

    def _fail(self, reason: str) -> AuthResult:
        self.result = AuthResult(False, self.identity, reason, method="EAP-TLS")
        return self.result

    def _next_fragment(self) -> bytes:
        """Type-Data of the next outgoing fragment (L and the total on the first one)."""
        first = not self._sending
        chunk, self._out = self._out[: self.fragment_size], self._out[self.fragment_size :]
        more = FLAG_M if self._out else 0
        self._sending = bool(self._out)
        if first and more:
            return encode_tls(more, chunk, total=len(chunk) + len(self._out))
        return encode_tls(more, chunk)

    _sending = False

    def handle(self, eap: bytes) -> tuple[bytes | None, AuthResult | None]:
        """Consume one EAP packet from the authenticator (see the class docstring)."""
        raw = bytes(eap)
        pkt = EapPacket.decode(raw)
        if pkt.code == EapCode.SUCCESS:
            if self.result is not None and self.result.success:
                self.confirmed = True
                return None, self.result
            raise ProtocolError("EAP: Success before the TLS handshake completed",
                                reason="eap_unexpected")
        if pkt.code == EapCode.FAILURE:
            if self.confirmed:
                raise ProtocolError("EAP: Failure after EAP-Success", reason="eap_unexpected")
            if self.result is None or self.result.success:
                self._fail("eap_failure")
            return None, self.result
        if pkt.code != EapCode.REQUEST:
            raise ProtocolError("EAP: peer received a Response", reason="eap_unexpected")
        if raw == self._last_request and self._last_response is not None:
            return self._last_response, self.result
        if pkt.type == EapType.IDENTITY:
            return self._respond(raw, pkt.identifier, self.identity, EapType.IDENTITY), None
        if pkt.type == EapType.NOTIFICATION:
            return self._respond(raw, pkt.identifier, b"", EapType.NOTIFICATION), None
        if pkt.type != EAP_TLS:   # Legacy Nak naming our method (RFC 3748 §5.3.1)
            return self._respond(raw, pkt.identifier, bytes([EAP_TLS]), EapType.NAK), None
        flags, total, data = decode_tls(pkt.data)
        if flags & FLAG_S:
            return self._start(raw, pkt.identifier), None
        if self._conn is None:
            raise ProtocolError("EAP-TLS: data before the start", reason="eap_unexpected")
        if self._sending and not data and not flags & (FLAG_L | FLAG_M):
            return self._respond(raw, pkt.identifier, self._next_fragment()), None
        if total is not None and not self._in:
            self._in_total = total
        self._in += data
        if len(self._in) > MAX_TLS_MESSAGE:
            raise MalformedError("EAP-TLS: reassembled message too long", reason="malformed")
        if flags & FLAG_M:
            return self._respond(raw, pkt.identifier, encode_tls(0)), None   # ACK
        if self._in_total is not None and len(self._in) != self._in_total:
            raise MalformedError("EAP-TLS: fragments do not add up to the TLS Message Length",
                                 reason="malformed")
        message, self._in, self._in_total = bytes(self._in), bytearray(), None
        return self._respond(raw, pkt.identifier, self._step(message)), self.result

    def _start(self, raw: bytes, ident: int) -> bytes:
        SSL = self._SSL
        self._conn = SSL.Connection(self._ctx, None)
        self._conn.set_connect_state()
        self._conn.set_tlsext_host_name(self.server_name.encode())
        self._in, self._in_total, self._sending = bytearray(), None, False
        self.result, self.confirmed, self._cert_problem = None, False, None
        return self._respond(raw, ident, self._step(b""))

    def _step(self, incoming: bytes) -> bytes:
        """Feed one TLS message, run the handshake, return the Type-Data to answer with."""
        SSL = self._SSL
        conn = self._conn
        assert conn is not None
        if incoming:
            conn.bio_write(incoming)
        try:
            conn.do_handshake()
            done = True
        except SSL.WantReadError:
            done = False
        except SSL.Error:
            self._fail(self._cert_problem or "tls_handshake")
            done = False
        if done:
            try:   # TLS 1.3: tickets and the one-byte commitment message (RFC 9190 §2.5)
                conn.recv(16384)
            except (SSL.WantReadError, SSL.ZeroReturnError):
                pass
            except SSL.Error:
                self._fail("tls_handshake")
            if self.result is None:
                self._keys(conn)
        out = b""
        while True:
            try:
                chunk = conn.bio_read(65536)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            out += chunk
        if not out:
            return encode_tls(0)   # nothing to say: acknowledge (end of the handshake)
        self._out, self._sending = out, False
        return self._next_fragment()

    def _keys(self, conn: object) -> None:
        version = conn.get_protocol_version_name()  # type: ignore[attr-defined]
        self.tls_version = version
        if version == "TLSv1.3":
            km = conn.export_keying_material(  # type: ignore[attr-defined]
                b"EXPORTER_EAP_TLS_Key_Material", 128, bytes([EAP_TLS]))
        else:
            km = conn.export_keying_material(b"client EAP encryption", 128)  # type: ignore[attr-defined]
        self.result = AuthResult(True, self.identity, "ok", msk=km[:64], emsk=km[64:],
                                 method="EAP-TLS")
