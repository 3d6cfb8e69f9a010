"""Crashes found by the fuzz harnesses, each kept as a test once fixed (issue 11).

Every input in ``tests/fuzz/regressions/<harness>/`` is a crash the fuzzer found (its ``.txt``
says where and against which code), replayed through its harness: it must now pass. The tests
below state each decoder fix directly on the decoder's API. The role inputs crashed the roles
before their rewrite (issue 11) and pass on the rewritten ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fuzz import _core

pytestmark = pytest.mark.nonce_reuse_expected  # the harnesses restart from the same keys

REGRESSIONS = _core.FUZZ_DIR / "regressions"


def _inputs() -> list[object]:
    return [pytest.param(p.parent.name, p, id=f"{p.parent.name}/{p.name[:18]}")
            for p in sorted(REGRESSIONS.glob("*/crash-*")) if p.suffix != ".txt"]


@pytest.mark.parametrize(("name", "path"), _inputs())
def test_crash_input_now_passes(name: str, path: Path) -> None:
    _core.execute(_core.load(name), path.read_bytes())


# -- hw.sigmf ---------------------------------------------------------------------------------


def test_sigmf_recording_without_sample_rate_is_a_recording_error(tmp_path: Path) -> None:
    """core:sample_rate is optional in SigMF; read_recording raised KeyError without it."""
    from hw.sigmf import RecordingError, read_recording

    meta = {"global": {"core:datatype": "ci16_le", "core:version": "1.0.0"},
            "captures": [{"core:sample_start": 0}], "annotations": []}
    (tmp_path / "r.sigmf-meta").write_text(json.dumps(meta))
    (tmp_path / "r.sigmf-data").write_bytes(bytes(16))
    with pytest.raises(RecordingError, match="no core:sample_rate"):
        read_recording(tmp_path / "r")
