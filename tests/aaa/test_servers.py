"""Against real AAA implementations (Debian's hostapd and eapol_test), on free local ports with
generated configurations in temporary directories.

* the project's EAP-PSK peer through its RADIUS back end to hostapd's EAP server: MSKs equal;
* the full trial with ``aaa.backend = "radius"`` against hostapd, in both security modes;
* wrong shared secret, unknown user (Access-Reject), server down: each ends the entry with its
  reason, after the configured tries;
* wpa_supplicant's EAP-PSK peer (``eapol_test``) against the project's EAP-PSK server and RADIUS
  answer codec: wpa_supplicant derives the MSK our MS-MPPE keys carry.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from relaysec.aaa import make_authenticator, report_section, summary_line
from relaysec.aaa_servers import write_hostapd
from relaysec.cell import station_psk
from relaysec.config import load_config
from relaysec.trial import run_trial
from stack.pkm.eap import AuthResult, EapCode, EapPacket
from stack.pkm.eap_psk import EapPskPeer
from tests.aaa.memserver import MemRadiusServer
from tests.aaa.servers import free_udp_port, hostapd, need
from tests.trial.helpers import FAST

SECRET = "hostapd-test-secret"


def _cfg(port: int, *extra: tuple[str, Any], secret: str = SECRET) -> dict[str, Any]:
    return load_config(overrides=[*FAST, ("aaa.backend", "radius"), ("aaa.secret", secret),
                                  ("aaa.server", f"127.0.0.1:{port}"), ("aaa.timeout_s", 0.2),
                                  ("aaa.retries", 2), *extra])


def _authenticate(cfg: dict[str, Any], name: str, *, psk: bytes | None = None,
                  limit_s: float = 5.0) -> tuple[AuthResult | None, EapPskPeer, Any]:
    """One station's EAP-PSK conversation through the RADIUS back end of ``cfg`` (wall clock)."""
    setup = make_authenticator(cfg, {}, rng=None, wall=True)
    auth, link = setup.authenticator, setup.link
    assert link is not None
    st = next(s for s in cfg["stations"] if s["name"] == name)
    sid = int(st["station_id"]).to_bytes(6, "big")
    peer = EapPskPeer(auth.identity_of(sid).encode(), psk or station_psk(cfg, st), rng=11)
    session = auth.start(sid)
    end = time.monotonic() + limit_s
    try:
        while session.result is None and time.monotonic() < end:
            link.service()
            out, _ = session.poll()
            if out is None:
                time.sleep(0.005)
                continue
            if EapPacket.decode(out).code == EapCode.REQUEST:
                reply, _ = peer.handle(out)
                session.handle(reply)
            elif session.result is not None and session.result.success:
                peer.handle(out)   # EAP-Success confirms the peer's result
    finally:
        link.close()
    return session.result, peer, auth


def test_eap_psk_peer_with_hostapd_gets_the_servers_msk(tmp_path: Path) -> None:
    port = free_udp_port()
    cfg = _cfg(port)
    with hostapd(cfg, tmp_path):
        result, peer, auth = _authenticate(cfg, "AMS")
    assert result is not None and result.success, result
    assert result.method == "EAP-PSK" and result.msk == peer.msk and peer.confirmed
    assert auth.dropped == {} and auth.stats["retransmissions"] == 0
    assert "CTRL-EVENT-EAP-SUCCESS" in (tmp_path / "server.log").read_text()


def test_hostapd_rejects_a_wrong_psk(tmp_path: Path) -> None:
    port = free_udp_port()
    cfg = _cfg(port)
    with hostapd(cfg, tmp_path):
        result, peer, _auth = _authenticate(cfg, "AMS", psk=bytes(16))
    assert result is not None and not result.success and result.reason == "access_reject"
    assert peer.msk is None or not peer.confirmed


def test_unknown_station_is_rejected_with_the_reason(tmp_path: Path) -> None:
    port = free_udp_port()
    cfg = _cfg(port, ("stations", [
        {"name": "ABS", "role": "abs", "station_id": 0xBB0000000001},
        {"name": "AMS", "role": "ams", "station_id": 0x0C0000000101, "serving": "ABS"}]))
    with hostapd(cfg, tmp_path):
        other = _cfg(port, ("stations", [
            {"name": "ABS", "role": "abs", "station_id": 0xBB0000000001},
            {"name": "AMS", "role": "ams", "station_id": 0x0C00000001FF, "serving": "ABS"}]))
        result, _peer, auth = _authenticate(other, "AMS")
    assert result is not None and result.reason == "access_reject"
    assert auth.stats["answers"] >= 1


def test_wrong_shared_secret_fails_after_the_tries(tmp_path: Path) -> None:
    port = free_udp_port()
    with hostapd(_cfg(port), tmp_path):
        t0 = time.monotonic()
        result, _peer, auth = _authenticate(_cfg(port, secret="not-the-servers"), "AMS")
        took = time.monotonic() - t0
    # hostapd drops requests whose Message-Authenticator does not verify: no answer at all
    assert result is not None and result.reason == "aaa_timeout"
    assert auth.stats["requests"] == 1 and auth.stats["retransmissions"] == 2
    assert 0.2 + 0.4 + 0.8 - 0.05 <= took < 3.0


def test_server_down_fails_after_the_tries() -> None:
    port = free_udp_port()   # nobody listens there
    result, _peer, auth = _authenticate(_cfg(port), "AMS")
    assert result is not None and result.reason == "aaa_timeout"
    assert auth.stats["timeouts"] == 1 and auth.stats["retransmissions"] == 2


@pytest.mark.parametrize("mode", ["distributed", "centralized"])
def test_trial_with_hostapd_as_aaa(tmp_path: Path, mode: str) -> None:
    port = free_udp_port()
    cfg = _cfg(port, ("security.mode", mode))
    with hostapd(cfg, tmp_path):
        report, _ = run_trial(cfg)
    assert report["ok"], report["reason"]
    log = (tmp_path / "server.log").read_text()
    assert log.count("CTRL-EVENT-EAP-SUCCESS") == 3     # ARS-1, ARS-2, AMS
    section = report_section(cfg)
    assert section["backend"] == "radius" and section["stations"]["AMS"] == {
        "identity": "0c0000000101@relaysec.test", "method": "EAP-PSK"}
    assert "AAA: radius" in summary_line(section) and SECRET not in str(section)


def test_trial_with_the_server_down_fails_entry_with_the_reason() -> None:
    port = free_udp_port()
    cfg = _cfg(port, ("aaa.timeout_s", 0.05), ("aaa.retries", 1),
               ("security.entry_attempts", 1), ("timeouts.entry_s", 1.0))
    report, _ = run_trial(cfg)
    assert not report["ok"]
    assert report["phases"][0]["name"] == "ars_entry" and not report["phases"][0]["ok"]
    assert any("EntryFailed" in e and "aaa_timeout" in e for e in report["events"])


def test_hostapd_files_hide_their_secrets(tmp_path: Path) -> None:
    cfg = _cfg(1812)
    files = write_hostapd(cfg, tmp_path)
    for name in ("users", "clients"):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0
    users = (tmp_path / "users").read_text()
    assert '"0c0000000101@relaysec.test"\tPSK\t' + station_psk(
        cfg, cfg["stations"][3]).hex() in users
    assert SECRET not in files.shell() and SECRET not in files.config.read_text()


# -- eapol_test (wpa_supplicant's peer) against the project's EAP-PSK server ------------------


@contextmanager
def _udp_server(server: MemRadiusServer) -> Iterator[int]:
    """Serve ``server`` (the project's EapPskServer behind our RADIUS codec) on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            answer = server.handle(data)
            if answer is not None:
                sock.sendto(answer, addr)

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        th.join(2)
        sock.close()


def test_eapol_test_peer_against_our_eap_psk_server(tmp_path: Path) -> None:
    exe = need("eapol_test", "eapoltest")
    identity, psk = "0c0000000101@relaysec.test", bytes(range(16))
    server = MemRadiusServer({identity.encode(): psk}, b"eapol-secret")
    conf = tmp_path / "peer.conf"
    conf.write_text("network={\n key_mgmt=IEEE8021X\n eap=PSK\n"
                    f' identity="{identity}"\n password={psk.hex()}\n}}\n')
    with _udp_server(server) as port:
        out = subprocess.run([exe, "-c", str(conf), "-a", "127.0.0.1", "-p", str(port),
                              "-s", "eapol-secret", "-t", "10"], capture_output=True,
                             text=True, timeout=30)
    assert "MPPE keys OK: 1  mismatch: 0" in out.stdout or \
        "MPPE keys OK: 1 mismatch: 0" in out.stdout, out.stdout[-1500:]
    assert out.stdout.rstrip().endswith("SUCCESS") and out.returncode == 0


def test_peer_naks_a_method_it_is_not_configured_for(tmp_path: Path) -> None:
    """Legacy Nak (RFC 3748 §5.3.1): the user may use MD5 or PSK and hostapd proposes MD5 first;
    the EAP-PSK peer answers with a Nak naming PSK and the conversation goes on with EAP-PSK."""
    port = free_udp_port()
    cfg = _cfg(port)
    with hostapd(cfg, tmp_path, methods="MD5,PSK"):
        result, peer, _auth = _authenticate(cfg, "AMS")
    log = (tmp_path / "server.log").read_text()
    assert "method=4" in log and "method=47" in log          # MD5 proposed, then PSK
    assert result is not None and result.success and result.method == "EAP-PSK"
    assert result.msk == peer.msk
