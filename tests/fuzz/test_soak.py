"""A short stateful soak in CI (``tests/fuzz/soak.py``): all four cell configurations (both
security modes, relay control clear and sealed) attacked for 3 000 hostile frames each while they
go through data, TEK refresh, handovers and re-authentication; each then recovers with matching
keys and working traffic, no table past its cap, no (TEK, PN) sent twice."""

from __future__ import annotations

import pytest

from tests.fuzz import soak

# each round builds its cell from the same seeds as the others: the rounds repeat each other's
# keys by construction (every round is checked by its own nonce monitor inside soak.main)
pytestmark = pytest.mark.nonce_reuse_expected


def test_short_soak_of_every_cell_configuration(tmp_path, capsys) -> None:
    out = tmp_path / "soak.json"
    assert soak.main(["--frames", "12000", "--round", "3000", "--seed", "7",
                      "--json", str(out)]) == 0
    import json

    stats = json.loads(out.read_text())
    assert stats["rounds"] == 4 and stats["hostile_frames"] >= 12000
    assert stats["pns_checked"] > 0
    for kind in ("altered", "truncated", "replayed", "injected"):
        assert stats[kind] > 0, kind
