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
    monkeypatch.setattr(doctor, "probe_context", lambda uri: PLUTO_INFO)
    monkeypatch.setattr(doctor, "probe_avahi", lambda: True)
    return versions


PLUTO_INFO = doctor.DeviceInfo(
    description="192.168.2.1 Linux pluto 5.15 #1 SMP",
    model="Analog Devices PlutoSDR Rev.C (Z7010-AD9363A)",
    phy_model="ad9363a",
    firmware="v0.38",
    serial="104473dc59930010fbff2b00f0d71a8e1a",
    ranges={"lo": "[325000000 1 3800000000]", "rx_gain": "[-3 1 71]",
            "tx_gain": "[-89.750000 0.250000 0.000000]", "rx_bw": "[200000 1 56000000]",
            "tx_bw": "[200000 1 40000000]", "sample_rate": "[2083333 1 61440000]"},
    rx_lo_hz=2.4e9,
)


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
    assert f["pylibiio"].fix.startswith("pin the 0.x line: pip install 'pylibiio==0.25'")
    assert "bare `pip install pyadi-iio` pulls" in f["pylibiio"].fix


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


def no_daemon_scan(backend=None):
    """libiio 0.24 without avahi-daemon: the full scan dies on Avahi's NO_DAEMON (-26);
    a USB-only scan works."""
    if backend is None:
        raise OSError(26, "Text file busy")
    assert backend == "usb"
    return {"usb:1.5.5": "0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)), serial=1"}


def test_avahi_missing_named_and_usb_scanned(healthy, monkeypatch, capsys):
    monkeypatch.setattr(doctor, "probe_scan", no_daemon_scan)
    monkeypatch.setattr(doctor, "probe_avahi", lambda: False)
    f = by_check(doctor.diagnose())
    assert f["dns-sd"].status == doctor.WARN
    assert "NO_DAEMON" in f["dns-sd"].detail and "avahi-daemon is not running" in f["dns-sd"].detail
    assert "start avahi-daemon" in f["dns-sd"].fix and "iio_info -S usb" in f["dns-sd"].fix
    # the USB-only scan found the Pluto: the path works, and nobody is sent to udev rules
    assert f["scan"].status == doctor.OK and "usb:1.5.5" in f["scan"].detail
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "udev" not in out and "[warn] dns-sd" in out


def test_avahi_missing_and_no_pluto(healthy, monkeypatch):
    monkeypatch.setattr(doctor, "probe_scan",
                        lambda backend=None: {} if backend else no_daemon_scan())
    monkeypatch.setattr(doctor, "probe_avahi", lambda: False)
    f = by_check(doctor.diagnose())
    assert f["dns-sd"].status == doctor.WARN
    assert f["scan"].failed and "avahi-daemon" in f["scan"].detail
    assert "udev" not in f["scan"].fix


def test_text_file_busy_with_avahi_running_is_not_blamed_on_avahi(healthy, monkeypatch):
    def boom(backend=None):
        raise OSError(26, "Text file busy")

    monkeypatch.setattr(doctor, "probe_scan", boom)
    f = by_check(doctor.diagnose())
    assert "dns-sd" not in f and f["scan"].failed


def test_device_model_firmware_and_ranges(healthy):
    f = by_check(doctor.diagnose())
    assert "Z7010-AD9363A" in f["device"].detail and "serial 104473" in f["device"].detail
    assert f["firmware"].status == doctor.OK and "v0.38" in f["firmware"].detail
    assert "extended range off" in f["firmware"].detail
    assert "fw_setenv compatible ad9364" in f["firmware"].detail
    r = f["ranges"].detail
    assert "LO 325-3800 MHz" in r and "RX gain -3..71 dB at LO 2400 MHz" in r
    assert "TX attenuation -89.75..0 dB" in r
    # the AD9363A's silent clamp wins over what rf_bandwidth_available claims
    assert "RF bandwidth 0.2-20 MHz" in r and "clamps" in r


def test_old_firmware_gets_the_old_extended_range_commands(healthy, monkeypatch):
    import dataclasses

    old = dataclasses.replace(PLUTO_INFO, firmware="v0.31")
    monkeypatch.setattr(doctor, "probe_context", lambda uri: old)
    f = by_check(doctor.diagnose())
    assert "fw_setenv attr_name compatible; fw_setenv attr_val ad9364" in f["firmware"].detail
    ext = dataclasses.replace(PLUTO_INFO, phy_model="ad9364")
    monkeypatch.setattr(doctor, "probe_context", lambda uri: ext)
    assert "extended range on" in by_check(doctor.diagnose())["firmware"].detail


def test_usb_uri_is_flagged_unstable(healthy):
    f = by_check(doctor.diagnose("usb:1.4.5"))
    assert f["uri"].status == doctor.WARN and "re-plugged" in f["uri"].detail
    assert "ip:192.168.2.1" in f["uri"].fix and "serial" in f["uri"].fix
    assert "uri" not in by_check(doctor.diagnose("ip:192.168.2.1"))


def test_pylibiio_1x_on_libiio_1x_warns_about_block_count(healthy, monkeypatch):
    monkeypatch.setattr(doctor, "probe_libiio", lambda: (1, 0, "v1.0"))
    healthy["pylibiio"] = "1.0"
    f = by_check(doctor.diagnose())
    assert f["pylibiio"].status == doctor.WARN
    assert "set_kernel_buffers_count" in f["pylibiio"].detail
    assert doctor.pluto_path_ok(list(f.values()))


def test_firmware_version_parse():
    assert doctor.firmware_version("v0.38") == (0, 38)
    assert doctor.firmware_version("v0.31-4-g1234") == (0, 31)
    assert doctor.firmware_version("unknown") is None


@pytest.mark.libiio
def test_doctor_reads_the_emulated_pluto_through_libiio(capsys):
    from hw.emu.server import PlutoServer

    with PlutoServer() as srv:
        f = by_check(doctor.diagnose(srv.uri, scan=False))
        assert f["device"].status == doctor.OK and "Z7010-AD9363A" in f["device"].detail
        assert "v0.38" in f["firmware"].detail and "ad9363a" in f["firmware"].detail
        r = f["ranges"].detail
        assert "LO 325-3800 MHz" in r and "RX gain -3..71 dB" in r and "0.2-20 MHz" in r
        assert cli.main(["doctor", "--no-scan", "--uri", srv.uri]) == 0
    assert "Pluto path: ready" in capsys.readouterr().out


@pytest.mark.libiio
def test_real_scan_without_avahi_names_the_cause():
    # this machine and CI run no avahi-daemon: libiio 0.24's full scan fails with NO_DAEMON
    if doctor.probe_avahi():
        pytest.skip("avahi-daemon runs here: the NO_DAEMON path cannot be observed")
    with pytest.raises(OSError) as err:
        doctor.probe_scan()
    assert err.value.errno == doctor.AVAHI_NO_DAEMON
    assert doctor.probe_scan("usb") == {}  # USB alone scans fine
    f = by_check(doctor.diagnose())
    assert f["dns-sd"].status == doctor.WARN and "start avahi-daemon" in f["dns-sd"].fix
    assert "udev" not in f["scan"].fix


def test_serial_uri_is_resolved_over_a_usb_scan(healthy, monkeypatch):
    opened = []

    def ctx(uri):
        opened.append(uri)
        return PLUTO_INFO

    monkeypatch.setattr(doctor, "probe_context", ctx)
    listing = {"usb:1.5.5": "0456:b673 (PlutoSDR), serial=104473dc59930010fbff2b00f0d71a8e1a"}
    monkeypatch.setattr(doctor, "probe_scan", lambda backend=None: listing)
    f = by_check(doctor.diagnose("serial:71a8e1a", scan=False))
    assert opened == ["usb:1.5.5"] and "uri" not in f
    assert f["device"].detail.startswith("serial:71a8e1a (usb:1.5.5): ")
    f = by_check(doctor.diagnose("serial:0000", scan=False))
    assert f["device"].failed and "no Pluto with serial ending '0000'" in f["device"].detail


# ---------------------------------------------------------------- relaysec doctor --latency


class _StreamRadio:
    """A streaming radio over the fake DMA of tests/emu/test_timeline.py: the real
    StreamTimeline, a device whose TX->RX offset is ``delay`` samples."""

    def __init__(self, *, delay: int = 555, underflow_after: int | None = None) -> None:
        from types import SimpleNamespace

        from tests.emu.test_timeline import FakeDma

        self.dev = FakeDma(block=1000, delay=delay)
        self.config = SimpleNamespace(rx_buffer_size=2000)
        self.tl = None
        self.reads = 0
        self.base = 0
        self.underflow_after = underflow_after

    def start_stream(self):
        from hw.timeline import StreamTimeline

        self.tl = StreamTimeline(self.dev.push, sample_rate=1e6, block=1000,
                                 flags=self.dev.flags, flag_period_s=0.002)
        self.tl.start()
        while not self.tl.ready:
            self.receive(2000)
        self.base = self.dev.delivered      # RX index 0 is the first sample read from now on
        return self.tl

    def receive(self, n):
        import time

        self.reads += 1
        if self.underflow_after is not None and self.reads == self.underflow_after:
            self.dev.play(dry=100)          # the DAC runs dry once
            self.dev.flag_under = True
        iq, start = self.dev.rx(n)
        self.tl.on_rx(iq, start)
        time.sleep(0.0002)
        return iq

    def tx_horizon(self):
        h = self.tl.horizon()
        return None if h is None else h - self.base

    def transmit(self, iq, *, at):
        return self.tl.place(iq, at + self.base)

    def close(self):
        self.dev.close()
        if self.tl is not None:
            self.tl.stop()


def test_latency_check_reports_offset_and_zero_jitter_on_a_continuous_stream():
    from hw.latency import format_latency, measure_latency

    rep = measure_latency("fake:", seconds=0.4, sample_rate=1e6, every_s=0.01,
                          radio_factory=lambda uri, sample_rate: _StreamRadio(delay=555))
    assert rep.problem is None and rep.offset == 555
    assert rep.heard >= 5 and rep.heard <= rep.placed
    assert rep.errors and all(e == 0 for e in rep.errors)
    assert rep.ok
    s = rep.suggestion()
    assert s["ota_guard_ms"] == 0.1 and s["ota_frame_ms"] == 20 and s["ota_grant_delay"] >= 1
    text = format_latency(rep)
    assert "TX->RX offset   555 samples" in text and text.endswith("latency check: ok")
    assert "--set schedule.ota_frame_ms=20 " in text


def test_latency_check_fails_with_the_fix_when_the_stream_breaks():
    from hw.latency import format_latency, measure_latency

    rep = measure_latency("fake:", seconds=0.4, sample_rate=1e6, every_s=0.01,
                          radio_factory=lambda uri, sample_rate: _StreamRadio(
                              underflow_after=40))
    assert rep.underflows >= 1 and not rep.ok
    text = format_latency(rep)
    assert "latency check: FAILED" in text and "the stream broke" in text
    assert "suggest         nothing until the stream holds" in text


def test_latency_check_of_a_radio_that_cannot_hear_itself(monkeypatch, capsys):
    from hw import latency

    class Deaf(_StreamRadio):
        def start_stream(self):
            raise OSError("did not hear its own probe within 2 s")

    rep = latency.measure_latency("fake:", seconds=0.1,
                                  radio_factory=lambda uri, sample_rate: Deaf())
    assert not rep.ok and "did not hear its own probe" in rep.problem
    monkeypatch.setattr(latency, "measure_latency", lambda uri, seconds: rep)
    assert cli.main(["doctor", "--latency", "ip:127.0.0.1:1"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] did not hear its own probe" in out and "fix:" in out
