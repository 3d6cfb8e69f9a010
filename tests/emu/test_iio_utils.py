"""libiio's own command-line tools (Debian libiio-utils) against the emulated Pluto."""

from __future__ import annotations

import subprocess

import pytest

from hw.emu import PlutoServer

pytestmark = pytest.mark.libiio


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=30, check=False)


def test_iio_info_lists_the_pluto_devices(iio_utils, emulator: PlutoServer) -> None:
    res = _run("iio_info", "-u", emulator.uri)
    out = res.stdout.decode()
    assert res.returncode == 0, res.stderr.decode()
    assert "IIO context created with network backend" in out
    for dev in ("iio:device0: ad9361-phy", "iio:device1: xadc",
                "iio:device2: cf-ad9361-dds-core-lpc", "iio:device3: cf-ad9361-lpc"):
        assert dev in out
    assert "frequency value: 2400000000" in out
    assert "No trigger on this device" in out
    assert b"validity error" not in res.stderr  # the DTD and version attributes are right


def test_iio_attr_reads_and_writes(iio_utils, emulator: PlutoServer) -> None:
    uri = ("-u", emulator.uri)
    assert _run("iio_attr", *uri, "-c", "ad9361-phy", "altvoltage0", "frequency",
                "915000000").returncode == 0
    res = _run("iio_attr", *uri, "-c", "ad9361-phy", "altvoltage0", "frequency")
    assert res.stdout.strip() == b"915000000"
    res = _run("iio_attr", *uri, "-c", "ad9361-phy", "altvoltage0", "frequency", "1")
    assert res.returncode != 0  # out of range
    assert _run("iio_attr", *uri, "-D", "ad9361-phy", "loopback").stdout.strip() == b"0"


def test_iio_readdev_and_writedev_stream(iio_utils, emulator: PlutoServer) -> None:
    res = _run("iio_readdev", "-u", emulator.uri, "-b", "1024", "-s", "4096", "cf-ad9361-lpc")
    assert res.returncode == 0, res.stderr.decode()
    assert len(res.stdout) == 4 * 4096
    res = _run("iio_writedev", "-u", emulator.uri, "-b", "1024", "cf-ad9361-dds-core-lpc",
               stdin=bytes(4096))
    assert res.returncode == 0, res.stderr.decode()
