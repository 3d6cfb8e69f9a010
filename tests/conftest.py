"""Project-wide test settings.

Hypothesis: no per-example deadline (the first example of a numba-backed property pays the JIT
compile), and in CI (``CI`` set) derandomized examples so a run is reproducible.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


REQUIRE_LIBIIO_ENV = "RELAYSEC_REQUIRE_LIBIIO"


def libiio_problem() -> str | None:
    """Why pyadi-iio cannot talk to the libiio C library here, or None when it can."""
    try:
        import iio  # pylibiio loads the C library at import
    except Exception as exc:  # OSError, ImportError, AttributeError from ctypes
        return f"pylibiio cannot load the libiio C library ({type(exc).__name__}: {exc})"
    try:
        import adi  # noqa: F401
    except Exception as exc:
        return f"pyadi-iio is not importable ({type(exc).__name__}: {exc})"
    if not getattr(iio, "version", None):
        return "pylibiio reports no libiio version"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``libiio`` skip (with the reason) on a machine without the libiio client
    stack, and fail when ``RELAYSEC_REQUIRE_LIBIIO=1`` (set by ``.ci/run``), so CI can never
    silently stop exercising the real Pluto code path."""
    if item.get_closest_marker("libiio") is None:
        return
    problem = libiio_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_LIBIIO_ENV, "") not in ("", "0"):
        pytest.fail(
            f"{problem}, but {REQUIRE_LIBIIO_ENV}=1 requires it "
            "(install Debian libiio0 and pylibiio 0.25: ./bootstrap --test)",
            pytrace=False,
        )
    pytest.skip(problem)
