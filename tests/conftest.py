"""Project-wide test settings.

Hypothesis: no per-example deadline (the first example of a numba-backed property pays the JIT
compile), and in CI (``CI`` set) derandomized examples so a run is reproducible.

Nonce monitor (issue 17): every test runs inside ``stack.nonces.monitoring()`` and fails when a
(TEK, direction, PN) was handed out twice, unless it is marked ``nonce_reuse_expected``.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest
from hypothesis import HealthCheck, settings

from stack.nonces import NonceMonitor, monitoring
from stack.roles.base import RoleBase

pytest_plugins = ["pytester"]  # tests/stack/test_nonce_monitor.py runs the monitor plugin inside

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

# A role bug must fail the test that meets it, not be counted as ``internal_error`` and carried
# on from (stack.roles.base.RoleBase.strict); subprocesses (node tests) inherit the setting.
os.environ["RELAYSEC_STRICT_ROLES"] = "1"
RoleBase.strict = True


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


NONCE_REUSE_MARK = "nonce_reuse_expected"
_nonce_monitor_key = pytest.StashKey[NonceMonitor]()
_nonce_reported_key = pytest.StashKey[int]()


def _nonce_failure(item: pytest.Item, mon: NonceMonitor) -> str | None:
    """The failure message for reuses not reported yet (None: nothing new, or reuse expected)."""
    if item.get_closest_marker(NONCE_REUSE_MARK) is not None:
        return None
    if mon.reused <= item.stash.get(_nonce_reported_key, 0):
        return None
    item.stash[_nonce_reported_key] = mon.reused
    return (f"{mon.describe()}\n(mark the test @pytest.mark.{NONCE_REUSE_MARK} only if it "
            "reuses a TEK and PN on purpose)")


@pytest.fixture(autouse=True)
def nonce_monitor(request: pytest.FixtureRequest) -> Iterator[NonceMonitor]:
    """The test's :class:`~stack.nonces.NonceMonitor`, active from setup to teardown."""
    with monitoring(name=request.node.nodeid) as mon:
        request.node.stash[_nonce_monitor_key] = mon
        yield mon
    message = _nonce_failure(request.node, mon)  # a reuse during fixture teardown
    if message is not None:
        pytest.fail(message, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail the test itself (not its teardown) when it reused a nonce."""
    result = yield
    mon = item.stash.get(_nonce_monitor_key, None)
    message = None if mon is None else _nonce_failure(item, mon)
    if message is not None:
        pytest.fail(message, pytrace=False)
    return result
