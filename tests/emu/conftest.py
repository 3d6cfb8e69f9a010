"""Fixtures for the Pluto emulator tests.

Tests that need the libiio C library (through pylibiio/pyadi-iio) or the libiio command-line tools
request ``libiio`` / ``iio_utils``. On a developer machine without them they are skipped with the
reason; when ``RELAYSEC_REQUIRE_LIBIIO=1`` (set by ``.ci/run``) a missing library is a test
*failure*, so CI can never silently stop exercising the real client stack.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from hw.emu import LocalLoop, PlutoServer

REQUIRE_ENV = "RELAYSEC_REQUIRE_LIBIIO"


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def _unavailable(reason: str) -> None:
    if _required():
        pytest.fail(f"{reason}, but {REQUIRE_ENV}=1 requires it (install Debian libiio0, "
                    "libiio-utils and pylibiio 0.25: ./bootstrap --test)", pytrace=False)
    pytest.skip(reason)


def libiio_problem() -> str | None:
    """Why pyadi-iio cannot talk to libiio here, or None when it can."""
    try:
        import iio  # pylibiio: loads the C library at import
    except Exception as exc:  # OSError, ImportError, AttributeError from ctypes
        return f"pylibiio cannot load the libiio C library ({type(exc).__name__}: {exc})"
    try:
        import adi  # noqa: F401
    except Exception as exc:
        return f"pyadi-iio is not importable ({type(exc).__name__}: {exc})"
    if not getattr(iio, "version", None):
        return "pylibiio reports no libiio version"
    return None


@pytest.fixture
def libiio() -> None:
    """Require libiio + pylibiio + pyadi-iio (fail in CI, skip on a dev box without them)."""
    problem = libiio_problem()
    if problem:
        _unavailable(problem)


@pytest.fixture
def iio_utils() -> None:
    """Require ``iio_info``/``iio_attr``/``iio_readdev``/``iio_writedev`` (Debian libiio-utils)."""
    missing = [t for t in ("iio_info", "iio_attr", "iio_readdev", "iio_writedev")
               if shutil.which(t) is None]
    if missing:
        _unavailable(f"libiio-utils not installed (missing {', '.join(missing)})")


@pytest.fixture
def emulator() -> Iterator[PlutoServer]:
    """A stand-alone emulated Pluto (TX cabled to RX) on a free local port, unpaced."""
    with PlutoServer(data=LocalLoop(seed=1)) as srv:
        yield srv


@pytest.fixture
def pluto(libiio: None, emulator: PlutoServer) -> Iterator[object]:
    """``adi.Pluto`` connected to :func:`emulator`; buffers destroyed before the context dies."""
    import adi

    sdr = adi.Pluto(emulator.uri)
    try:
        yield sdr
    finally:
        sdr.tx_destroy_buffer()
        sdr.rx_destroy_buffer()
        del sdr
