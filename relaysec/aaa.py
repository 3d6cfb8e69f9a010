"""The ABS's AAA back end at run time: which authenticator the config asks for, and the UDP link
that moves a RADIUS back end's datagrams (``stack/`` does no I/O; docs/aaa.md).

:func:`make_authenticator` builds the :class:`~stack.pkm.authenticator.Authenticator` of
``[aaa]``: the embedded EAP-PSK server (``backend = "builtin"``) or a
:class:`~stack.pkm.radius_client.RadiusAuthenticator` with its :class:`RadiusLink`
(``"radius"``). The node runtime calls :meth:`RadiusLink.service` on every poll of the ABS node;
when an answer advanced a session, the node runs the role's timer so that it polls its sessions.

Time: RADIUS retransmissions run on the wall clock (a real server answers in real time). In a
simulation the simulated clock would race ahead of a real server, so there the link waits for
the answers of the requests it has just sent (``block``): the simulated clock stands still while
the AAA server thinks, and a round trip costs no simulated time beyond the frames around it.
"""

from __future__ import annotations

import functools
import logging
import select
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from relaysec.config_schema import Config, aaa_server
from stack.pkm.authenticator import Authenticator, BuiltinAuthenticator
from stack.pkm.nai import default_nai
from stack.pkm.radius_client import RadiusAuthenticator, RadiusSettings

log = logging.getLogger(__name__)

__all__ = ["EAP_FRAGMENT", "AaaSetup", "RadiusLink", "make_authenticator", "report_section",
           "station_identity", "summary_line", "tls_peer_factory"]

EAP_FRAGMENT = 300
"""Largest EAP packet we ask for (RADIUS Framed-MTU) and send (EAP-TLS fragments): an
EAP-Transfer must fit one control MPDU in a zone burst, also through an ARS."""

#: Stations named in the printed AAA line (all are in the JSON report).
MAX_SHOWN = 8


def station_identity(cfg: Config, st: Mapping[str, Any]) -> str | None:
    """The station's EAP identity (NAI): ``identity`` if configured; with ``aaa.backend =
    "radius"`` else ``<station id hex>@<aaa.realm>``; None (the 6-byte station id, the embedded
    AAA's default) otherwise."""
    if "identity" in st:
        return str(st["identity"])
    if cfg["aaa"]["backend"] == "radius":
        return default_nai(int(st["station_id"]), cfg["aaa"]["realm"])
    return None


class RadiusLink:
    """A connected UDP socket to the RADIUS server, moving :class:`RadiusAuthenticator`
    datagrams. ``block``: wait (up to the next retransmission deadline) for the answers of
    outstanding requests on each :meth:`service` -- for simulated time."""

    def __init__(self, auth: RadiusAuthenticator, host: str, port: int, *,
                 block: bool = False) -> None:
        self.auth = auth
        self.server = (host, port)
        self.block = block
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise OSError(f"AAA server {host}:{port}: cannot resolve ({exc.strerror})") from None
        family, _, _, _, addr = infos[0]
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.connect(addr)
        self.errors = 0           # send/receive errors (e.g. ICMP port unreachable)

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def _send(self, now: float) -> None:
        for d in self.auth.datagrams_to_send(now):
            try:
                self._sock.send(d)
            except OSError:
                self.errors += 1

    def _drain(self, now: float) -> bool:
        news = False
        while True:
            try:
                data = self._sock.recv(8192)
            except (BlockingIOError, InterruptedError):
                return news
            except OSError:        # ECONNREFUSED from an earlier send: the server is down
                self.errors += 1
                continue
            news |= self.auth.receive_datagram(data, now)

    def service(self, _sim_now: float | None = None) -> bool:
        """Send what is due, read what arrived, run retransmissions; True when a session has
        news -- an answer, or a request given up (the caller then runs the role's timer)."""
        now = time.monotonic()
        news = self.auth.timer(now)
        self._send(now)
        news |= self._drain(now)
        while self.block and self.auth.outstanding and not news:
            deadline = self.auth.next_deadline()
            wait = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
            select.select([self._sock], [], [], wait)
            now = time.monotonic()
            news = self._drain(now)
            news |= self.auth.timer(now)
            if self.auth.outstanding and not news:
                self._send(now)
            else:
                break
        self._send(time.monotonic())
        return news


@dataclass
class AaaSetup:
    """The ABS's authenticator and, for RADIUS, the link the runtime services."""

    authenticator: Authenticator
    link: RadiusLink | None
    backend: str



def tls_peer_factory(st: Mapping[str, Any], identity: bytes) -> Callable[[], Any]:
    """A factory of EAP-TLS peers for station ``st`` (its ``cert``, ``key``, ``ca``,
    ``server_name``); one peer is made at once so that unreadable files fail at set-up
    (MalformedError), not at entry."""
    from stack.pkm.eap_tls import EapTlsPeer

    make = functools.partial(EapTlsPeer, identity, cert=st["cert"], key=st["key"], ca=st["ca"],
                             server_name=st["server_name"], fragment_size=EAP_FRAGMENT)
    make()
    return make


def make_authenticator(cfg: Config, psks: Mapping[bytes, bytes], *, rng: int | None,
                       wall: bool) -> AaaSetup:
    """The authenticator ``[aaa]`` asks for. ``psks``: station id bytes -> PSK (builtin).
    Raises OSError when the RADIUS server's address cannot be resolved."""
    aaa = cfg["aaa"]
    if aaa["backend"] == "builtin":
        return AaaSetup(BuiltinAuthenticator(psks, rng=rng), None, "builtin")
    host, port = aaa_server(aaa["server"])
    abs_st = next(s for s in cfg["stations"] if s["role"] == "abs")
    abs_id = int(abs_st["station_id"]).to_bytes(6, "big")
    settings = RadiusSettings(
        secret=aaa["secret"].encode(), timeout=float(aaa["timeout_s"]),
        retries=int(aaa["retries"]), nas_identifier=aaa["nas_identifier"],
        called_station_id="-".join(f"{b:02X}" for b in abs_id), realm=aaa["realm"],
        framed_mtu=EAP_FRAGMENT)
    identities = {int(s["station_id"]).to_bytes(6, "big"): ident for s in cfg["stations"]
                  if s["role"] != "abs" and (ident := station_identity(cfg, s)) is not None}
    auth = RadiusAuthenticator(settings, identities, rng=None)
    return AaaSetup(auth, RadiusLink(auth, host, port, block=not wall), "radius")


def report_section(cfg: Config) -> dict[str, Any]:
    """The report's ``aaa`` entry: back end, server (RADIUS), and per AMS/ARS the EAP identity
    and method it authenticates with (EAP-PSK or EAP-TLS, as configured). No secret."""
    aaa = cfg["aaa"]
    out: dict[str, Any] = {"backend": aaa["backend"]}
    if aaa["backend"] == "radius":
        out["server"] = aaa["server"]
        out["nas_identifier"] = aaa["nas_identifier"]
    out["stations"] = {
        st["name"]: {"identity": station_identity(cfg, st) or f"{int(st['station_id']):012x}",
                     "method": "EAP-TLS" if st.get("eap") == "tls" else "EAP-PSK"}
        for st in cfg["stations"] if st["role"] != "abs"}
    return out


def summary_line(section: Mapping[str, Any]) -> str:
    """One line naming the AAA back end and each station's EAP method (at most
    :data:`MAX_SHOWN` stations; the JSON report has all)."""
    where = (f"RADIUS server {section['server']}" if section["backend"] == "radius"
             else "embedded EAP-PSK server")
    rows = [f"{name} {row['method']} as {row['identity']}"
            for name, row in section["stations"].items()]
    more = f"; +{len(rows) - MAX_SHOWN} more" if len(rows) > MAX_SHOWN else ""
    return f"AAA: {section['backend']} ({where}): " + "; ".join(rows[:MAX_SHOWN]) + more
