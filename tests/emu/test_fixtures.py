"""The libiio requirement rule (root ``tests/conftest.py`` for the ``libiio`` marker, and the
``iio_utils`` fixture here): fail in CI (RELAYSEC_REQUIRE_LIBIIO=1), skip elsewhere, with the
reason."""

from __future__ import annotations

import pytest

import tests.conftest as root
from tests.emu import conftest as emu


class _Item:
    """Just enough of a pytest item for the root setup hook."""

    def __init__(self, marked: bool) -> None:
        self.marked = marked

    def get_closest_marker(self, name: str) -> object | None:
        return object() if self.marked and name == "libiio" else None


@pytest.fixture
def no_libiio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(root, "libiio_problem", lambda: "pylibiio cannot load libiio (test)")


def test_marked_test_fails_without_libiio_when_required(
        no_libiio: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(root.REQUIRE_LIBIIO_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="requires it"):
        root.pytest_runtest_setup(_Item(marked=True))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, "0"])
def test_marked_test_skips_without_libiio_on_a_developer_machine(
        no_libiio: None, monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(root.REQUIRE_LIBIIO_ENV, raising=False)
    else:
        monkeypatch.setenv(root.REQUIRE_LIBIIO_ENV, value)
    with pytest.raises(pytest.skip.Exception, match="cannot load libiio"):
        root.pytest_runtest_setup(_Item(marked=True))  # type: ignore[arg-type]


def test_unmarked_test_runs_without_libiio(no_libiio: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(root.REQUIRE_LIBIIO_ENV, "1")
    root.pytest_runtest_setup(_Item(marked=False))  # type: ignore[arg-type]


def test_missing_iio_tools_fail_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emu.shutil, "which", lambda name: None)
    monkeypatch.setenv(root.REQUIRE_LIBIIO_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="missing iio_info"):
        emu.require_iio_tools()
    monkeypatch.setenv(root.REQUIRE_LIBIIO_ENV, "0")
    with pytest.raises(pytest.skip.Exception, match="libiio-utils not installed"):
        emu.require_iio_tools()


def test_this_machine_has_libiio_or_says_why() -> None:
    problem = root.libiio_problem()
    assert problem is None or "libiio" in problem or "pyadi" in problem
