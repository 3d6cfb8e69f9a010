"""EAP-TLS Type-Data codec and peer (RFC 5216 / RFC 9190): :func:`stack.pkm.eap_tls.decode_tls`
and an :class:`~stack.pkm.eap_tls.EapTlsPeer` that has sent its ClientHello, fed ``data`` as the
Type-Data of the server's next request.

Invariants: decoded Type-Data re-encodes to the input; the peer only rejects with
``SecurityError``; it never reports success (no input can complete a TLS handshake with our
device against a CA whose key the fuzzer does not have) and never holds an MSK.
"""

from __future__ import annotations

import tempfile

from stack.errors import SecurityError
from stack.pkm.eap import EapCode, EapPacket
from stack.pkm.eap_tls import EAP_TLS, FLAG_L, FLAG_S, EapTlsPeer, decode_tls, encode_tls
from tests.fuzz._core import check

ALLOWED = (SecurityError,)

SERVER = "aaa.relaysec.test"
NAI = b"0c0000000101@relaysec.test"
_files: dict[str, str] = {}


def setup() -> None:
    """A lab PKI in a temporary directory (once per process)."""
    from relaysec.pki import init_pki

    pki = init_pki(tempfile.mkdtemp(prefix="fuzz-eap-tls-"), SERVER, {"AMS": NAI.decode()})
    dev = pki.devices["AMS"]
    _files.update(cert=str(dev.cert), key=str(dev.key), ca=str(pki.ca.cert))


def started() -> EapTlsPeer:
    """A peer that has answered the server's EAP-TLS Start with its ClientHello."""
    peer = EapTlsPeer(NAI, server_name=SERVER, fragment_size=300, **_files)
    peer.handle(EapPacket(EapCode.REQUEST, 0, EAP_TLS, encode_tls(FLAG_S)).encode())
    return peer


def one_input(data: bytes) -> None:
    """Feed ``data`` to the peer and to the Type-Data codec."""
    peer = started()
    if data:
        try:
            peer.handle(EapPacket(EapCode.REQUEST, 1, EAP_TLS, data[:4000]).encode())
        finally:
            result = peer.result
            check(result is None or not result.success, "success_from_noise", repr(result))
            check(peer.msk is None, "msk_from_noise", "")
    flags, total, body = decode_tls(data)
    again = (encode_tls(flags & ~FLAG_L, body, total) if flags & FLAG_L
             else encode_tls(flags, body))
    check(again == data, "not_canonical", f"flags={flags:#x}")
