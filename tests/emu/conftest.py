"""Fixtures for the Pluto emulator tests.

Tests that need the libiio C library (through pylibiio/pyadi-iio) carry the ``libiio`` marker:
the root ``tests/conftest.py`` skips them with the reason on a developer machine without libiio
and fails them when ``RELAYSEC_REQUIRE_LIBIIO=1`` (set by ``.ci/run``). Tests that also need
libiio's command-line tools request :func:`iio_utils`, which follows the same rule.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hw.emu import LocalLoop, PlutoServer
from tests.conftest import REQUIRE_LIBIIO_ENV
from tests.emu.realtime import realtime_slot

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "examples" / "lab-3pluto.toml"
IIO_TOOLS = ("iio_info", "iio_attr", "iio_readdev", "iio_writedev")


def missing_iio_tools() -> str | None:
    """Why the libiio command-line tools cannot run here, or None when they can."""
    missing = [t for t in IIO_TOOLS if shutil.which(t) is None]
    return f"libiio-utils not installed (missing {', '.join(missing)})" if missing else None


def require_iio_tools() -> None:
    """Fail when the tools are missing and ``RELAYSEC_REQUIRE_LIBIIO=1``; else skip, with why."""
    problem = missing_iio_tools()
    if problem is None:
        return
    if os.environ.get(REQUIRE_LIBIIO_ENV, "") not in ("", "0"):
        pytest.fail(f"{problem}, but {REQUIRE_LIBIIO_ENV}=1 requires it (install Debian "
                    "libiio-utils: ./bootstrap --test)", pytrace=False)
    pytest.skip(problem)


@pytest.fixture
def iio_utils() -> None:
    """Require ``iio_info``/``iio_attr``/``iio_readdev``/``iio_writedev`` (Debian libiio-utils)."""
    require_iio_tools()


@pytest.fixture
def emulator() -> Iterator[PlutoServer]:
    """A stand-alone emulated Pluto (TX cabled to RX) on a free local port, unpaced."""
    with PlutoServer(data=LocalLoop(seed=1)) as srv:
        yield srv


@pytest.fixture
def pluto(emulator: PlutoServer) -> Iterator[object]:
    """``adi.Pluto`` connected to :func:`emulator`; buffers destroyed before the context dies.
    Only for tests marked ``libiio``."""
    import adi

    sdr = adi.Pluto(emulator.uri)
    try:
        yield sdr
    finally:
        sdr.tx_destroy_buffer()
        sdr.rx_destroy_buffer()
        del sdr


@pytest.fixture
def emulated_plutos() -> Iterator[list[str]]:
    """``relaysec emulate --radios 3`` in its own process (its own GIL, as in a rehearsal), on
    the wall clock as hardware is (Plutos need ``schedule.ota_speed`` 1); the three URIs it
    prints. Interrupted (Ctrl-C) at the end, and must exit cleanly."""
    with realtime_slot():
        yield from emulate3()


def emulate3(speed: float = 1.0) -> Iterator[list[str]]:
    """``relaysec emulate --radios 3 --speed SPEED`` in its own process; yields its three URIs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaysec", "emulate", "--radios", "3", "--seed", "5",
         "--snr", "25", "--speed", repr(float(speed))],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        uris = [proc.stdout.readline().decode().strip() for _ in range(3)]
        assert all(u.startswith("ip:127.0.0.1:") for u in uris), (uris, proc.stderr.read())
        yield uris
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
