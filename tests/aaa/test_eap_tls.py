"""EAP-TLS (stack.pkm.eap_tls) with the lab PKI (relaysec.pki) against real servers through the
RADIUS back end: hostapd (TLS 1.2, fragments both ways), FreeRADIUS (TLS 1.2 and 1.3),
wpa_supplicant's peer against the generated FreeRADIUS, and certificates that must be refused."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from relaysec.aaa import make_authenticator
from relaysec.config import load_config
from relaysec.pki import Pki, init_pki
from stack.errors import MalformedError
from stack.pkm.eap import AuthResult, EapCode, EapPacket
from stack.pkm.eap_tls import FLAG_L, FLAG_M, EapTlsPeer, decode_tls, encode_tls
from tests.aaa.servers import free_udp_port, freeradius, hostapd, need

SERVER = "aaa.relaysec.test"
NAI = "0c0000000101@relaysec.test"
SID = (0x0C0000000101).to_bytes(6, "big")


def _cfg(port: int) -> dict[str, Any]:
    return load_config(overrides=[("aaa.backend", "radius"), ("aaa.secret", "tls-secret"),
                                  ("aaa.server", f"127.0.0.1:{port}"), ("aaa.timeout_s", 0.5),
                                  ("aaa.retries", 2)])


def _peer(pki: Pki, **kw: Any) -> EapTlsPeer:
    dev = pki.devices["AMS"]
    kw.setdefault("server_name", SERVER)
    return EapTlsPeer(NAI.encode(), cert=str(dev.cert), key=str(dev.key),
                      ca=str(kw.pop("ca", pki.ca.cert)), **kw)


def _converse(cfg: dict[str, Any], peer: EapTlsPeer, limit_s: float = 10.0, *,
              sid: bytes = SID) -> tuple[AuthResult | None, int]:
    """Run the peer (as station ``sid``) through the RADIUS back end of ``cfg``; returns the
    result and the RADIUS round trips."""
    setup = make_authenticator(cfg, {}, rng=None, wall=True)
    auth, link = setup.authenticator, setup.link
    assert link is not None
    session = auth.start(sid)
    end = time.monotonic() + limit_s
    try:
        while session.result is None and time.monotonic() < end:
            link.service()
            out, _ = session.poll()
            if out is None:
                time.sleep(0.002)
                continue
            if EapPacket.decode(out).code == EapCode.REQUEST:
                reply, _ = peer.handle(out)
                session.handle(reply)
            else:
                peer.handle(out)
    finally:
        link.close()
    return session.result, session.round_trips  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"), SERVER, {"AMS": NAI})


def test_eap_tls_with_hostapd_fragmented_both_ways(tmp_path: Path, pki: Pki) -> None:
    port = free_udp_port()
    cfg = _cfg(port)
    peer = _peer(pki, fragment_size=200)
    with hostapd(cfg, tmp_path, methods="TLS", tls=pki, fragment_size=300):
        result, trips = _converse(cfg, peer)
    assert result is not None and result.success and result.method == "EAP-TLS"
    assert result.msk == peer.msk and peer.confirmed and peer.tls_version == "TLSv1.2"
    assert trips > 8            # the flights went in several fragments each way


@pytest.mark.parametrize("tls_max, version", [("1.2", "TLSv1.2"), ("1.3", "TLSv1.3")])
def test_eap_tls_with_freeradius(tmp_path: Path, pki: Pki, tls_max: str, version: str) -> None:
    port = free_udp_port()
    cfg = _cfg(port)
    peer = _peer(pki)
    with freeradius(cfg, tmp_path, pki, tls_max=tls_max):
        result, _ = _converse(cfg, peer)
    assert result is not None and result.success, result
    assert peer.tls_version == version and result.msk == peer.msk and peer.confirmed


def test_eapol_test_against_the_generated_freeradius(tmp_path: Path, pki: Pki) -> None:
    exe = need("eapol_test", "eapoltest")
    port = free_udp_port()
    cfg = _cfg(port)
    dev = pki.devices["AMS"]
    conf = tmp_path / "peer.conf"
    conf.write_text(f'network={{\n key_mgmt=IEEE8021X\n eap=TLS\n identity="{NAI}"\n'
                    f' ca_cert="{pki.ca.cert}"\n client_cert="{dev.cert}"\n'
                    f' private_key="{dev.key}"\n domain_suffix_match="{SERVER}"\n}}\n')
    with freeradius(cfg, tmp_path, pki):
        out = subprocess.run([exe, "-c", str(conf), "-a", "127.0.0.1", "-p", str(port),
                              "-s", "tls-secret", "-t", "15"], capture_output=True, text=True,
                             timeout=60)
    assert "MPPE keys OK: 1  mismatch: 0" in out.stdout or \
        "MPPE keys OK: 1 mismatch: 0" in out.stdout, out.stdout[-1500:]
    assert out.stdout.rstrip().endswith("SUCCESS")


def test_untrusted_server_is_refused(tmp_path: Path, pki: Pki) -> None:
    other = init_pki(tmp_path / "other", SERVER, {"AMS": NAI})
    port = free_udp_port()
    cfg = _cfg(port)
    peer = _peer(pki, ca=other.ca.cert)
    with hostapd(cfg, tmp_path, methods="TLS", tls=pki):
        result, _ = _converse(cfg, peer)
    assert peer.result is not None and peer.result.reason == "tls_untrusted"
    assert result is not None and not result.success and peer.msk is None


def test_wrong_server_name_is_refused(tmp_path: Path, pki: Pki) -> None:
    port = free_udp_port()
    cfg = _cfg(port)
    peer = _peer(pki, server_name="evil.relaysec.test")
    with hostapd(cfg, tmp_path, methods="TLS", tls=pki):
        result, _ = _converse(cfg, peer)
    assert peer.result is not None and peer.result.reason == "tls_wrong_name"
    assert result is not None and not result.success


def test_expired_server_certificate_is_refused(tmp_path: Path) -> None:
    old = init_pki(tmp_path / "old", SERVER, {"AMS": NAI}, days=1,
                   not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
    port = free_udp_port()
    cfg = _cfg(port)
    peer = _peer(old)
    with hostapd(cfg, tmp_path, methods="TLS", tls=old):
        result, _ = _converse(cfg, peer)
    assert peer.result is not None and peer.result.reason == "tls_expired"
    assert result is not None and not result.success


def test_type_data_codec() -> None:
    assert encode_tls(FLAG_M, b"abc", total=10) == bytes([FLAG_L | FLAG_M, 0, 0, 0, 10]) + b"abc"
    assert decode_tls(bytes([FLAG_L, 0, 0, 0, 3]) + b"abc") == (FLAG_L, 3, b"abc")
    assert decode_tls(b"\x00") == (0, None, b"")
    for bad in (b"", bytes([FLAG_L, 0, 0]), bytes([FLAG_L, 0, 0, 0, 1]) + b"ab",
                bytes([FLAG_L, 0x7F, 0, 0, 0])):
        with pytest.raises(MalformedError):
            decode_tls(bad)


def test_peer_naks_other_methods_and_refuses_bad_files(tmp_path: Path, pki: Pki) -> None:
    peer = _peer(pki)
    reply, _ = peer.handle(EapPacket(EapCode.REQUEST, 3, 47, b"\x00" * 17).encode())
    nak = EapPacket.decode(reply or b"")
    assert (nak.type, nak.data) == (3, bytes([13]))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(MalformedError, match="certificate"):
        EapTlsPeer(b"x", cert=str(bad), key=str(bad), ca=str(bad), server_name=SERVER)


def tls_config(port: int, pki_dir: Path, *extra: tuple[str, Any]) -> dict[str, Any]:
    """The default cell with every AMS and ARS on EAP-TLS (a lab PKI in ``pki_dir``)."""
    from relaysec.aaa import station_identity
    from tests.trial.helpers import FAST

    base = _cfg(port)
    stations = [dict(s) for s in base["stations"]]
    lab = init_pki(pki_dir, SERVER, {s["name"]: station_identity(base, s) or ""
                                     for s in stations if s["role"] != "abs"})
    for s in stations:
        if s["role"] != "abs":
            dev = lab.devices[s["name"]]
            s.update(eap="tls", cert=str(dev.cert), key=str(dev.key), ca=str(lab.ca.cert),
                     server_name=SERVER)
    cfg = load_config(overrides=[*FAST, ("aaa.backend", "radius"), ("aaa.secret", "tls-secret"),
                                 ("aaa.server", f"127.0.0.1:{port}"), ("stations", stations),
                                 *extra])
    cfg["_pki"] = lab   # for the server (not a config key: set after validation)
    return cfg


@pytest.mark.parametrize("mode", ["distributed", "centralized"])
def test_trial_with_every_station_on_eap_tls_through_freeradius(tmp_path: Path,
                                                                mode: str) -> None:
    from relaysec.aaa import report_section
    from relaysec.trial import run_trial

    port = free_udp_port()
    cfg = tls_config(port, tmp_path / "pki", ("security.mode", mode))
    lab = cfg.pop("_pki")
    with freeradius(cfg, tmp_path, lab, tls_max="1.3"):
        report, _ = run_trial(cfg)
    assert report["ok"], report["reason"]
    log = (tmp_path / "server.log").read_text()
    assert log.count("Sent Access-Accept") == 3 and "TLS 1.3" in log
    assert {r["method"] for r in report_section(cfg)["stations"].values()} == {"EAP-TLS"}


def test_trial_with_eap_tls_through_hostapd(tmp_path: Path) -> None:
    from relaysec.trial import run_trial

    port = free_udp_port()
    cfg = tls_config(port, tmp_path / "pki")
    lab = cfg.pop("_pki")
    with hostapd(cfg, tmp_path, methods="TLS", tls=lab):
        report, _ = run_trial(cfg)
    assert report["ok"], report["reason"]
    assert (tmp_path / "server.log").read_text().count("CTRL-EVENT-EAP-SUCCESS") == 3


def test_eap_tls_config_is_checked(tmp_path: Path) -> None:
    from relaysec.config_schema import ConfigError

    stations = [{"name": "ABS", "role": "abs", "station_id": 1},
                {"name": "A", "role": "ams", "station_id": 2, "serving": "ABS", "eap": "tls"}]
    with pytest.raises(ConfigError, match="cert, key, ca, server_name"):
        load_config(overrides=[("aaa.backend", "radius"), ("aaa.secret", "x"),
                               ("stations", stations)])
    stations[1].update(cert="c", key="k", ca="a", server_name="s")
    with pytest.raises(ConfigError, match=r"aaa\.backend"):
        load_config(overrides=[("stations", stations)])
    stations[1]["eap"] = "ttls"
    with pytest.raises(ConfigError, match=r"stations\[1\]\.eap"):
        load_config(overrides=[("stations", stations)])
    stations[1]["eap"] = "psk"
    with pytest.raises(ConfigError, match=r"stations\[1\]\.cert"):
        load_config(overrides=[("stations", stations)])


def test_unreadable_device_files_fail_at_setup(tmp_path: Path) -> None:
    from relaysec.aaa import tls_peer_factory

    st = {"cert": str(tmp_path / "none.pem"), "key": "k", "ca": "c", "server_name": SERVER}
    with pytest.raises(MalformedError, match="certificate"):
        tls_peer_factory(st, b"x@y.test")


def test_reassembly_is_bounded(pki: Pki) -> None:
    from stack.pkm.eap_tls import FLAG_S, MAX_TLS_MESSAGE

    peer = _peer(pki)
    reply, _ = peer.handle(EapPacket(EapCode.REQUEST, 0, 13, encode_tls(FLAG_S)).encode())
    assert reply is not None          # the ClientHello
    with pytest.raises(MalformedError, match="too long"):
        for i in range(MAX_TLS_MESSAGE // 1000 + 2):
            ack, _ = peer.handle(EapPacket(EapCode.REQUEST, (i + 1) & 0xFF, 13,
                                           encode_tls(FLAG_M, b"x" * 1000)).encode())
            assert EapPacket.decode(ack or b"").data == b"\x00"   # each fragment acknowledged


def test_one_server_offering_tls_then_psk_serves_both_kinds_of_station(tmp_path: Path,
                                                                       pki: Pki) -> None:
    """hostapd proposes EAP-TLS first to every user (methods "TLS,PSK"): a TLS station takes it,
    a PSK station answers with a Legacy Nak naming PSK and completes EAP-PSK."""
    from relaysec.cell import station_psk
    from stack.pkm.eap_psk import EapPskPeer

    port = free_udp_port()
    cfg = _cfg(port)
    tls_peer = _peer(pki)
    ams = next(s for s in cfg["stations"] if s["name"] == "AMS")
    psk_peer = EapPskPeer(NAI.encode(), station_psk(cfg, ams), rng=3)
    with hostapd(cfg, tmp_path, methods="TLS,PSK", tls=pki):
        r_tls, _ = _converse(cfg, tls_peer)
        r_psk, _ = _converse(cfg, psk_peer)  # type: ignore[arg-type]
    assert r_tls is not None and r_tls.success and r_tls.method == "EAP-TLS"
    assert r_tls.msk == tls_peer.msk
    assert r_psk is not None and r_psk.success and r_psk.method == "EAP-PSK"
    assert r_psk.msk == psk_peer.msk


def test_freeradius_refuses_a_device_certificate_of_another_identity(tmp_path: Path,
                                                                     pki: Pki) -> None:
    """The generated FreeRADIUS checks the device certificate's CN against the User-Name: the
    AMS's certificate does not authenticate ARS-1's identity."""
    port = free_udp_port()
    cfg = _cfg(port)
    dev = pki.devices["AMS"]
    ars1 = "0a0000000011@relaysec.test"
    peer = EapTlsPeer(ars1.encode(), cert=str(dev.cert), key=str(dev.key), ca=str(pki.ca.cert),
                      server_name=SERVER)
    with freeradius(cfg, tmp_path, pki):
        result, _ = _converse(cfg, peer, sid=(0x0A0000000011).to_bytes(6, "big"))
    assert result is not None and not result.success and result.reason == "access_reject"
    assert f"checking certificate CN ({NAI}) with xlat'ed value ({ars1})" in \
        (tmp_path / "server.log").read_text()
