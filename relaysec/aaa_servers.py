"""Configurations for real AAA servers serving the configured stations (``relaysec aaa ...``).

:func:`write_hostapd` writes a hostapd RADIUS server (no radio, no root configuration touched):
``hostapd.conf``, ``clients`` (the ABS's address and the shared secret) and ``users`` (one
EAP-PSK user per configured AMS/ARS: its NAI and its PSK). The files holding the secret and the
PSKs are created readable by their owner only. Nothing secret is printed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from relaysec.aaa import EAP_FRAGMENT, station_identity
from relaysec.config_schema import Config, ConfigError, aaa_server
from relaysec.pki import Pki

__all__ = ["FREERADIUS_CONF", "ServerFiles", "hostapd_users", "write_freeradius", "write_hostapd"]

FREERADIUS_CONF = Path("/etc/freeradius/3.0")
"""Debian's FreeRADIUS configuration, copied (read only) as the base of a private one."""


@dataclass(frozen=True)
class ServerFiles:
    """What was written: the main configuration file and the command that starts the server."""

    config: Path
    command: list[str]

    def shell(self) -> str:
        """The command as one shell line."""
        return " ".join(shlex.quote(c) for c in self.command)


def _private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (created so, never widened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def hostapd_users(cfg: Config, psk_of: Mapping[str, bytes] | None = None, *,
                  methods: str = "PSK") -> str:
    """hostapd ``eap_user_file`` text: ``"<NAI>"  <methods>  <32 hex digits>`` per AMS and ARS
    (identities as the stations present them, :func:`relaysec.aaa.station_identity` with the
    RADIUS back end). ``methods``: what the server may use, in the order it proposes them
    (e.g. ``"MD5,PSK"``: a peer configured for PSK answers MD5 with a Legacy Nak)."""
    if not re.fullmatch(r"[A-Z0-9-]+(,[A-Z0-9-]+)*", methods):
        raise ConfigError(f"hostapd EAP methods must be a comma-separated list, got {methods!r}")
    from relaysec.cell import station_psk

    radius_cfg = {**cfg, "aaa": {**cfg["aaa"], "backend": "radius"}}
    lines = ["# relaysec: one EAP-PSK user per station (identity, methods, 16-byte PSK)"]
    for st in cfg["stations"]:
        if st["role"] == "abs":
            continue
        nai = station_identity(radius_cfg, st)
        psk = (psk_of or {}).get(st["name"]) or station_psk(cfg, st)
        lines.append(f'"{nai}"\t{methods}\t{psk.hex()}')
    return "\n".join(lines) + "\n"


def write_hostapd(cfg: Config, directory: str | Path, *, client: str = "127.0.0.1/32",
                  methods: str = "PSK", tls: Pki | None = None,
                  fragment_size: int | None = None) -> ServerFiles:
    """Write a hostapd RADIUS/EAP server for the stations of ``cfg`` into ``directory`` (made if
    needed), listening on the port of ``aaa.server``, accepting ``client`` (an address/prefix)
    with ``aaa.secret``. Returns the files and the start command. ConfigError without a
    secret."""
    secret = cfg["aaa"]["secret"]
    if not secret:
        raise ConfigError("config key 'aaa.secret' must be set: the server and the ABS share it")
    if any(c in secret for c in "\r\n\t ") or "#" in secret:
        raise ConfigError("config key 'aaa.secret': hostapd's clients file cannot hold spaces, "
                          "tabs, line breaks or '#' in a secret")
    _host, port = aaa_server(cfg["aaa"]["server"])
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    users, clients, conf = d / "users", d / "clients", d / "hostapd.conf"
    _private(users, hostapd_users(cfg, methods=methods))
    _private(clients, f"{client} {secret}\n")
    lines = [
        "# relaysec: hostapd as a standalone RADIUS server with its EAP server (no radio)",
        "driver=none",
        "interface=none",
        "logger_stdout=-1",
        "logger_stdout_level=2",
        "eap_server=1",
        f"eap_user_file={users.resolve()}",
        f"radius_server_clients={clients.resolve()}",
        f"radius_server_auth_port={port}",
    ]
    if tls is not None:   # EAP-TLS: the server's certificate and the CA of the devices
        lines += [f"ca_cert={tls.ca.cert.resolve()}", f"server_cert={tls.server.cert.resolve()}",
                  f"private_key={tls.server.key.resolve()}"]
    if tls is not None or fragment_size is not None:   # EAP-TLS fragments the server sends
        lines.append(f"fragment_size={int(fragment_size or EAP_FRAGMENT)}")
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    exe = shutil.which("hostapd") or "/usr/sbin/hostapd"
    return ServerFiles(conf, [exe, str(conf.resolve())])


def describe(cfg: Config, files: ServerFiles, server: str, methods: str = "EAP-PSK"
             ) -> list[str]:
    """Human lines for the CLI: what was written, how to start it, what to set in relaysec."""
    n = sum(1 for s in cfg["stations"] if s["role"] != "abs")
    lines = [
        f"wrote a {server} RADIUS server for {n} stations ({methods}) in {files.config.parent}",
        f"start it with:  {files.shell()}",
        f"then run:       relaysec trial --set aaa.backend=radius --set "
        f"aaa.server={cfg['aaa']['server']} --set aaa.secret=...   (the secret you configured)",
    ]
    if "TLS" in methods:
        lines.append("                with eap = \"tls\", cert, key, ca and server_name per "
                     "station ([[stations]]; relaysec pki init prints them)")
    return lines


def _sub(path: Path, pattern: str, repl: str, *, count: int = 0) -> None:
    """Replace ``pattern`` (a regex, multiline) in ``path``; ConfigError when it is absent."""
    text = path.read_text(encoding="utf-8")
    new, n = re.subn(pattern, repl, text, count=count, flags=re.M)
    if n == 0:
        raise ConfigError(f"FreeRADIUS configuration {path.name}: {pattern!r} not found "
                          "(an unexpected FreeRADIUS version?)")
    path.write_text(new, encoding="utf-8")


def write_freeradius(cfg: Config, directory: str | Path, tls: Pki, *, tls_max: str = "1.3",
                     base: Path = FREERADIUS_CONF, client: str = "127.0.0.1") -> ServerFiles:
    """A private FreeRADIUS (EAP-TLS) for the stations of ``cfg`` in ``directory``: Debian's
    configuration copied and changed only where docs/aaa.md says (no privilege drop, one client
    with ``aaa.secret``, one virtual server listening on 127.0.0.1 at the port of ``aaa.server``,
    the inner-tunnel listener on the next port, EAP-TLS by default with the lab PKI's server
    certificate and CA, TLS up to ``tls_max``, the device certificate's CN checked against the
    User-Name). Start: ``freeradius -f -X -d DIR`` (its debug
    log prints "Ready to process requests" when up). ConfigError without a secret or base."""
    secret = cfg["aaa"]["secret"]
    if not secret or any(c in secret for c in '"\\\r\n'):
        raise ConfigError("config key 'aaa.secret' must be set, without quotes, backslashes or "
                          "line breaks (FreeRADIUS's clients.conf holds it)")
    if tls_max not in ("1.2", "1.3"):
        raise ConfigError(f"TLS version {tls_max!r}: '1.2' or '1.3'")
    if not (base / "radiusd.conf").is_file():
        raise ConfigError(f"no FreeRADIUS configuration at {base} (apt-get install freeradius)")
    _host, port = aaa_server(cfg["aaa"]["server"])
    d = Path(directory) / "raddb"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(base, d, symlinks=True)
    _sub(d / "radiusd.conf", r"^(\s*)(user|group) = freerad", r"\1#\2 = freerad")
    _private(d / "clients.conf",
             f'client relaysec {{\n\tipaddr = {client}\n\tsecret = "{secret}"\n}}\n')
    (d / "sites-enabled" / "default").unlink()
    (d / "sites-enabled" / "relaysec").write_text(
        "# relaysec: EAP only, on one local port\n"
        "server relaysec {\n"
        f"\tlisten {{\n\t\ttype = auth\n\t\tipaddr = 127.0.0.1\n\t\tport = {port}\n\t}}\n"
        "\tauthorize {\n\t\teap {\n\t\t\tok = return\n\t\t}\n\t}\n"
        "\tauthenticate {\n\t\teap\n\t}\n"
        "\tpost-auth {\n\t}\n"
        "}\n", encoding="utf-8")
    inner = port + 1 if port < 65535 else port - 1
    _sub(d / "sites-available" / "inner-tunnel", r"^(\s*)port = 18120", rf"\g<1>port = {inner}")
    eap = d / "mods-available" / "eap"
    _sub(eap, r"^(\s*)default_eap_type = md5", r"\1default_eap_type = tls", count=1)
    _sub(eap, r"^(\s*)private_key_password = .*$", r'\1private_key_password = ""')
    for key, path in (("private_key_file", tls.server.key), ("certificate_file", tls.server.cert),
                      ("ca_file", tls.ca.cert)):
        _sub(eap, rf"^(\s*){key} = .*$", rf"\g<1>{key} = {path.resolve()}")
    _sub(eap, r'^(\s*)tls_max_version = "1.2"', rf'\1tls_max_version = "{tls_max}"')
    # a device certificate proves only the identity it names: CN must equal the User-Name
    _sub(eap, r"^(\s*)#\s*check_cert_cn = %\{User-Name\}", r"\1check_cert_cn = %{User-Name}")
    exe = shutil.which("freeradius") or "/usr/sbin/freeradius"
    return ServerFiles(d / "radiusd.conf", [exe, "-f", "-X", "-d", str(d.resolve())])
