"""`relaysec doctor` / hw.doctor: each known failure becomes a one-line fix and a non-zero exit."""

from __future__ import annotations

import json

import pytest

from hw import doctor
from relaysec import cli


@pytest.fixture
def healthy(monkeypatch):
    """A machine where everything works and one Pluto is on USB."""
    monkeypatch.setattr(doctor, "probe_libiio", lambda: (0, 24, "v0.24"))
    versions = {"pylibiio": "0.25", "pyadi-iio": "0.0.21"}
    monkeypatch.setattr(doctor, "probe_dist_version", lambda d: versions.get(d))
    monkeypatch.setattr(doctor, "probe_import", lambda m: object())
    monkeypatch.setattr(
        doctor,
        "probe_scan",
        lambda: {"usb:1.5.5": "0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)), serial=1"},
    )
    monkeypatch.setattr(doctor, "probe_usb", lambda: [])
    monkeypatch.setattr(doctor, "probe_context", lambda uri: "PlutoSDR Rev.C (Z7010-AD9363A)")
    return versions


def by_check(findings):
    return {f.check: f for f in findings}


def test_healthy_machine(healthy, capsys):
    f = doctor.diagnose()
    assert doctor.pluto_path_ok(f)
    assert by_check(f)["libiio"].detail == "libiio C library 0.24 (v0.24)"
    assert "usb:1.5.5" in by_check(f)["scan"].detail
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "pyadi-iio 0.0.21" in out and "Pluto path: ready" in out


def test_missing_libiio(healthy, monkeypatch, capsys):
    monkeypatch.setattr(doctor, "probe_libiio", lambda: None)
    f = by_check(doctor.diagnose())
    assert f["libiio"].failed and "apt install libiio0" in f["libiio"].fix
    assert f["device"].status == doctor.SKIP
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] libiio" in out and "fix: sudo apt install libiio0" in out


def test_pylibiio_1x_against_libiio_0x(healthy, monkeypatch):
    healthy["pylibiio"] = "1.0"
    f = by_check(doctor.diagnose())
    assert f["pylibiio"].failed
    assert "1.0" in f["pylibiio"].detail and "0.24" in f["pylibiio"].detail
    assert f["pylibiio"].fix.startswith("pip install 'pylibiio==0.25'")


def test_missing_python_packages(healthy):
    del healthy["pylibiio"]
    del healthy["pyadi-iio"]
    f = by_check(doctor.diagnose())
    assert f["pylibiio"].failed and f["pyadi-iio"].failed
    assert "pyadi-iio" in f["pyadi-iio"].fix


def test_pyadi_import_error(healthy, monkeypatch):
    def imp(m):
        if m == "adi":
            raise ImportError("numpy ABI mismatch")
        return object()

    monkeypatch.setattr(doctor, "probe_import", imp)
    f = by_check(doctor.diagnose())
    assert f["pyadi-iio"].failed and "numpy ABI mismatch" in f["pyadi-iio"].detail


def test_no_device(healthy, monkeypatch):
    monkeypatch.setattr(doctor, "probe_scan", lambda: {"local:": "Local devices"})
    f = by_check(doctor.diagnose())
    assert f["scan"].failed and "no Pluto found" in f["scan"].detail
    assert "iio_info -s" in f["scan"].fix


def test_scan_error_is_reported(healthy, monkeypatch):
    def boom():
        raise OSError(26, "Text file busy")

    monkeypatch.setattr(doctor, "probe_scan", boom)
    f = by_check(doctor.diagnose())
    assert f["scan"].failed and "Text file busy" in f["scan"].detail


def test_usb_permissions(healthy, monkeypatch):
    monkeypatch.setattr(doctor, "probe_scan", lambda: {})
    monkeypatch.setattr(
        doctor,
        "probe_usb",
        lambda: [{"path": "/sys/x", "node": "/dev/bus/usb/001/007", "access": False, "dfu": False}],
    )
    f = by_check(doctor.diagnose())
    assert f["scan"].failed and "/dev/bus/usb/001/007" in f["scan"].detail
    assert "udev" in f["scan"].fix


def test_dfu_mode(healthy, monkeypatch):
    monkeypatch.setattr(doctor, "probe_scan", lambda: {})
    monkeypatch.setattr(
        doctor, "probe_usb", lambda: [{"path": "/sys/x", "node": "", "access": False, "dfu": True}]
    )
    assert "DFU" in by_check(doctor.diagnose())["scan"].detail


def test_explicit_uri(healthy, monkeypatch, capsys):
    monkeypatch.setattr(doctor, "probe_scan", lambda: {})
    f = by_check(doctor.diagnose("ip:192.168.2.1"))
    assert f["device"].status == doctor.OK and "AD9363A" in f["device"].detail
    assert doctor.pluto_path_ok(list(f.values()))

    def refuse(uri):
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(doctor, "probe_context", refuse)
    assert cli.main(["doctor", "--uri", "ip:10.9.9.9", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert any("Connection refused" in x["detail"] for x in data["findings"])


def test_probe_usb_reads_sysfs(tmp_path):
    dev = tmp_path / "1-2"
    dev.mkdir()
    (dev / "idVendor").write_text("0456\n")
    (dev / "idProduct").write_text("b673\n")
    (dev / "busnum").write_text("1\n")
    (dev / "devnum").write_text("7\n")
    other = tmp_path / "1-3"
    other.mkdir()
    (other / "idVendor").write_text("1d6b\n")
    (other / "idProduct").write_text("0002\n")
    found = doctor.probe_usb(str(tmp_path))
    assert len(found) == 1 and found[0]["node"] == "/dev/bus/usb/001/007"
    assert found[0]["dfu"] is False


def test_real_probes_do_not_crash():
    # on this machine libiio 0.24 + pylibiio 0.25 are installed (pyproject pins them)
    lib = doctor.probe_libiio()
    assert lib is None or (isinstance(lib[0], int) and isinstance(lib[2], str))
    findings = doctor.diagnose(scan=False)
    assert all(f.status in (doctor.OK, doctor.FAIL, doctor.SKIP, doctor.WARN) for f in findings)
