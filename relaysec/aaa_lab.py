"""A private AAA server for one run (``relaysec trial --aaa freeradius|hostapd``).

:func:`private_server` starts the server on a free local port with a fresh random shared secret
and generated files in a temporary directory (nothing under /etc is written), yields the config
the run must use, and stops the server afterwards:

* ``freeradius`` -- every AMS and ARS on EAP-TLS with a fresh lab PKI (FreeRADIUS has no
  EAP-PSK), TLS up to 1.3;
* ``hostapd`` -- every AMS and ARS on EAP-PSK with its configured PSK.

A missing program is a :class:`AaaLabError` saying which Debian package to install.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from relaysec.aaa import station_identity
from relaysec.aaa_servers import write_freeradius, write_hostapd
from relaysec.config_schema import Config, validate
from relaysec.pki import init_pki

__all__ = ["SERVERS", "AaaLabError", "private_server"]

SERVERS = {"freeradius": "freeradius", "hostapd": "hostapd"}
"""Server name -> Debian package."""
_READY = {"freeradius": "Ready to process requests", "hostapd": None}


class AaaLabError(RuntimeError):
    """The private AAA server cannot run; the message says why and what to install."""


def _program(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}"
                                  if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
    if path is None:
        raise AaaLabError(f"{name} is not installed: apt-get install {SERVERS[name]} "
                          "(Debian/Ubuntu; ./bootstrap --test installs it as root)")
    return path


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def udp_bound(port: int) -> bool:
    """Whether something listens on UDP *port* (read from /proc/net/udp*)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(int(r.split()[1].rsplit(":", 1)[1], 16) == port for r in rows):
            return True
    return False


def lab_config(cfg: Config, server: str, directory: Path, port: int) -> tuple[Config, Any]:
    """The run's config: RADIUS to 127.0.0.1:``port`` with a fresh secret; with FreeRADIUS
    every AMS/ARS on EAP-TLS with a new PKI in ``directory`` (returned), else EAP-PSK."""
    out = {**cfg, "aaa": {**cfg["aaa"], "backend": "radius", "server": f"127.0.0.1:{port}",
                          "secret": os.urandom(16).hex()}}
    stations = [dict(s) for s in cfg["stations"]]
    pki = None
    if server == "freeradius":
        pki = init_pki(directory / "pki", "aaa.relaysec.test",
                       {s["name"]: station_identity(out, s) or "" for s in stations
                        if s["role"] != "abs"})
        for s in stations:
            if s["role"] != "abs":
                dev = pki.devices[s["name"]]
                s.update(eap="tls", cert=str(dev.cert), key=str(dev.key), ca=str(pki.ca.cert),
                         server_name="aaa.relaysec.test")
    else:
        for s in stations:
            for key in ("eap", "cert", "key", "ca", "server_name"):
                s.pop(key, None)
    out["stations"] = stations
    validate(out)
    return out, pki


@contextmanager
def running(command: list[str], port: int, cwd: Path, *, timeout: float = 10.0,
            ready_line: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server's ``command`` until the block ends; ready once UDP ``port`` is bound (and,
    with ``ready_line``, that text was printed). Output goes to ``cwd/server.log``, whose tail
    an :class:`AaaLabError` quotes when the server exits or is not ready within ``timeout``."""
    log_path = cwd / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            end = time.monotonic() + timeout
            while not (udp_bound(port) and (ready_line is None or ready_line in
                                             log_path.read_text(errors="replace"))):
                if proc.poll() is not None or time.monotonic() > end:
                    why = (f"exited with {proc.returncode}" if proc.poll() is not None
                           else f"not ready on port {port} after {timeout} s")
                    raise AaaLabError(f"{Path(command[0]).name} {why}:\n"
                                      + log_path.read_text(errors="replace")[-2000:])
                time.sleep(0.05)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def private_server(cfg: Config, server: str, *, timeout: float = 30.0,
                   tls_max: str = "1.3") -> Iterator[Config]:
    """Run ``server`` ("freeradius" or "hostapd") for the stations of ``cfg`` while the block
    runs; yields the config that uses it. ``tls_max``: FreeRADIUS's highest TLS version.
    AaaLabError when it cannot start."""
    if server not in SERVERS:
        raise AaaLabError(f"unknown AAA server {server!r} (freeradius or hostapd)")
    _program(server)
    with tempfile.TemporaryDirectory(prefix="relaysec-aaa-") as tmp:
        d = Path(tmp)
        port = free_udp_port()
        run_cfg, pki = lab_config(cfg, server, d, port)
        if server == "freeradius":
            files = write_freeradius(run_cfg, d, pki, tls_max=tls_max)
        else:
            files = write_hostapd(run_cfg, d)
        with running(files.command, port, d, timeout=timeout, ready_line=_READY[server]):
            yield run_cfg
