"""The libiio requirement rule: fail in CI (RELAYSEC_REQUIRE_LIBIIO=1), skip elsewhere."""

from __future__ import annotations

import pytest

from tests.emu import conftest


def test_missing_libiio_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(conftest.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="requires it"):
        conftest._unavailable("libiio missing")


def test_missing_libiio_skips_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(conftest.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="libiio missing"):
        conftest._unavailable("libiio missing")


def test_this_machine_has_libiio_or_says_why() -> None:
    problem = conftest.libiio_problem()
    assert problem is None or "libiio" in problem or "pyadi" in problem
