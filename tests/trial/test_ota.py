"""The over-the-air runtime (wall clock, ABS-master beacon timing) rehearsed on a wall-clock
loopback medium: the same path `--backend pluto` takes, minus pyadi-iio."""

from __future__ import annotations

import pytest

from relaysec.trial import PHASES, run_trial
from tests.emu.realtime import realtime_slot
from tests.trial.helpers import fast_config

# Wall-clock runs compete with whatever else the machine does: long frames, wide guards, more
# retries and a delivery ratio below 100 % keep them meaningful on a loaded 2-core host.
WALL = [("schedule.mode", "wall"), ("schedule.ota_frame_ms", 100.0),
        ("schedule.ota_guard_ms", 8.0), ("security.max_retries", 14),
        ("traffic.min_delivery", 0.75), ("schedule.ota_speed", 0.5)]


@pytest.mark.slow
def test_wall_clock_trial_with_abs_master_timing_passes():
    with realtime_slot():
        _test_wall_clock_trial_with_abs_master_timing_passes()


def _test_wall_clock_trial_with_abs_master_timing_passes():
    report, _ = run_trial(fast_config(*WALL))
    assert report["ok"], report["reason"]
    assert [p["name"] for p in report["phases"]] == list(PHASES)
    assert report["bytes"]["corrupted"] == 0
    # frames take wall time: 100 ms each
    t = report["timing"]
    assert t["sim_s"] == pytest.approx(t["frames"] * 0.100, rel=0.05)


def test_pluto_backend_without_uris_fails_cleanly():
    cfg = fast_config(("backend", "pluto"))
    report, _ = run_trial(cfg)
    assert not report["ok"]
    assert "uri" in report["reason"]


def test_a_node_behind_demodulates_what_has_queued_in_one_pass():
    """OtaNetwork._batch: a node that has fallen behind takes up to MAX_BATCH_CHUNKS queued
    chunks in one demodulation pass (the overlap a pass re-scans, longer than a chunk, is then
    paid once per batch), in order; a reader's error is handed over after the batch."""
    import queue as _queue
    from types import SimpleNamespace

    import numpy as np

    from relaysec.ota import MAX_BATCH_CHUNKS, OtaNetwork

    st = SimpleNamespace(queue=_queue.Queue())
    chunks = [np.full(3, k, np.complex64) for k in range(MAX_BATCH_CHUNKS + 2)]
    for c in chunks[1:]:
        st.queue.put(c)
    got = OtaNetwork._batch(None, st, chunks[0])  # type: ignore[arg-type]
    assert list(got.real) == [k for k in range(MAX_BATCH_CHUNKS) for _ in range(3)]
    assert st.queue.qsize() == 2                    # the rest waits for the next pass
    assert OtaNetwork._batch(None, st, chunks[0]).size == 9  # type: ignore[arg-type]
    err = OSError("radio gone")
    st.queue.put(np.zeros(3, np.complex64))
    st.queue.put(err)
    assert OtaNetwork._batch(None, st, chunks[0]).size == 6  # type: ignore[arg-type]
    assert st.queue.get_nowait() is err
    one = OtaNetwork._batch(None, st, chunks[0])    # type: ignore[arg-type]
    assert one is chunks[0]                         # caught up: the chunk as it came
