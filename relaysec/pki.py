"""A lab PKI for EAP-TLS (``relaysec pki init DIR``): a CA, an AAA server certificate and one
device certificate per configured AMS/ARS, made with ``cryptography`` (ECDSA P-256, SHA-256).

Files: ``ca.pem`` / ``ca.key``, ``server.pem`` / ``server.key`` (DNS SAN = the server name),
``device-<station>.pem`` / ``.key`` (subject CN and an email-style SAN = the station's NAI).
Private keys are written unencrypted, mode 0600 -- a lab PKI, not a deployment one.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Issued", "Pki", "init_pki", "load_pki"]


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """What :func:`init_pki` wrote: the CA, the server and each station's device certificate."""

    ca: Issued
    server: Issued
    devices: dict[str, Issued]


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(path, 0o600)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "relaysec lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
           issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, san: x509.GeneralName | None,
           usage: list[x509.ObjectIdentifier], days: int, not_before: dt.datetime
           ) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_before + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                          False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def init_pki(directory: str | Path, server_name: str, stations: dict[str, str], *,
             days: int = 825, not_before: dt.datetime | None = None) -> Pki:
    """Write a CA, a server certificate for ``server_name`` and a device certificate per
    ``{station name: NAI}`` into ``directory`` (made if needed). ``not_before``/``days``: the
    validity (tests make expired certificates with them)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    start = not_before or (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("relaysec lab CA")
    ca_cert = _issue("relaysec lab CA", ca_key, ca_name, ca_key, ca=True, san=None, usage=[],
                     days=days + 1, not_before=start)

    def save(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
        out = Issued(d / f"{stem}.pem", d / f"{stem}.key")
        out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(out.key, key)
        return out

    ca = save("ca", ca_cert, ca_key)
    skey = ec.generate_private_key(ec.SECP256R1())
    server = save("server", _issue(server_name, skey, ca_name, ca_key, ca=False,
                                   san=x509.DNSName(server_name),
                                   usage=[ExtendedKeyUsageOID.SERVER_AUTH], days=days,
                                   not_before=start), skey)
    devices = {}
    for name, nai in stations.items():
        k = ec.generate_private_key(ec.SECP256R1())
        devices[name] = save(f"device-{name}", _issue(nai, k, ca_name, ca_key, ca=False,
                                          san=x509.RFC822Name(nai),
                                          usage=[ExtendedKeyUsageOID.CLIENT_AUTH], days=days,
                                          not_before=start), k)
    return Pki(ca, server, devices)


def load_pki(directory: str | Path, stations: dict[str, str], *, create: bool = False,
             server_name: str = "aaa.relaysec.test") -> Pki:
    """The PKI :func:`init_pki` wrote in ``directory`` (``create``: write one when there is
    none). ConfigError naming the file when one is missing."""
    from relaysec.config_schema import ConfigError

    d = Path(directory)
    if create and not (d / "ca.pem").exists():
        return init_pki(d, server_name, stations)

    def issued(stem: str) -> Issued:
        out = Issued(d / f"{stem}.pem", d / f"{stem}.key")
        for p in (out.cert, out.key):
            if not p.is_file():
                raise ConfigError(f"PKI {str(d)!r}: {p.name} missing (relaysec pki init)")
        return out

    if not (d / "ca.pem").is_file():
        raise ConfigError(f"PKI {str(d)!r}: ca.pem missing (relaysec pki init)")
    ca = Issued(d / "ca.pem", d / "ca.key")   # the CA's key is not needed to serve
    return Pki(ca, issued("server"), {name: issued(f"device-{name}") for name in stations})
