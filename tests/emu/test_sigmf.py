"""SigMF recordings: written, validated against the schema, read back intact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigmf import sigmffile

from hw.loopback import Medium
from hw.sigmf import (
    REDACTED,
    RecordingError,
    RecordingRadio,
    SigMFRecorder,
    read_recording,
)


def test_write_read_back_and_validate(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = (rng.standard_normal(1000) + 1j * rng.standard_normal(1000)).astype(np.complex64) / 8
    b = (rng.standard_normal(500) + 1j * rng.standard_normal(500)).astype(np.complex64) / 8
    cfg = {"profile": "P2.5", "links": {"snr_db": 25}, "psk": b"\x01" * 16,
           "auth": {"ams_psk_hex": "00ff"}, "seed": np.int64(3)}
    with SigMFRecorder(tmp_path / "caps" / "ars", sample_rate=2.8e6, frequency_hz=2.4e9,
                       seed=3, config=cfg, radio="ars", hw="emulated ADALM-Pluto",
                       bandwidth_hz=2.5e6) as rec:
        assert rec.write(a) == 0
        rec.retune(2.41e9)
        assert rec.write(b) == 1000
        rec.annotate(1100, 200, comment="crc ok", crc_ok=True, snr_db=np.float32(21.5), src=1,
                     dst=2)
        rec.annotate(10, 50, label="noise")
    meta = tmp_path / "caps" / "ars.sigmf-meta"
    assert meta.exists() and (tmp_path / "caps" / "ars.sigmf-data").exists()
    sigmffile.fromfile(str(meta)).validate()  # schema + checksum, independently of our reader
    got = read_recording(meta)
    np.testing.assert_array_equal(got.samples, np.concatenate([a, b]))
    assert (got.sample_rate, got.frequency_hz, got.seed, got.radio) == (2.8e6, 2.4e9, 3, "ars")
    assert got.datetime and got.datetime.endswith("Z")
    assert [c["core:frequency"] for c in got.captures] == [2.4e9, 2.41e9]
    assert [c["core:sample_start"] for c in got.captures] == [0, 1000]
    assert [x["core:sample_start"] for x in got.annotations] == [10, 1100]  # sorted
    burst = got.annotations[1]
    assert burst["relaysec:crc_ok"] is True and burst["relaysec:snr_db"] == 21.5
    assert burst["core:freq_lower_edge"] == pytest.approx(2.41e9 - 1.25e6)
    # secrets never reach the metadata
    assert got.config["psk"] == REDACTED and got.config["auth"]["ams_psk_hex"] == REDACTED
    assert got.config["links"] == {"snr_db": 25} and got.config["seed"] == 3
    assert "0101" not in meta.read_text() and "00ff" not in meta.read_text()


def test_tampered_data_fails_the_checksum(tmp_path: Path) -> None:
    with SigMFRecorder(tmp_path / "x", sample_rate=1e6, frequency_hz=1e9) as rec:
        rec.write(np.ones(64, np.complex64))
    data = tmp_path / "x.sigmf-data"
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(RecordingError):
        read_recording(tmp_path / "x.sigmf-meta")


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(RecordingError):
        SigMFRecorder(tmp_path / "y", sample_rate=0, frequency_hz=1e9)
    rec = SigMFRecorder(tmp_path / "y", sample_rate=1e6, frequency_hz=1e9)
    with pytest.raises(RecordingError):
        rec.write(np.zeros((2, 2), np.complex64))
    with pytest.raises(RecordingError):
        rec.annotate(-1, 5)
    rec.close()
    with pytest.raises(RecordingError):
        rec.write(np.zeros(4, np.complex64))
    with pytest.raises(RecordingError):
        read_recording(tmp_path / "missing.sigmf-meta")
    json.loads((tmp_path / "y.sigmf-meta").read_text())  # an empty recording is still valid


@settings(max_examples=20, deadline=None)
@given(chunks=st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_chunked_writes_concatenate(tmp_path_factory, chunks: list[int]) -> None:
    base = tmp_path_factory.mktemp("rec") / "r"
    rng = np.random.default_rng(len(chunks))
    parts = [(rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
             for n in chunks]
    with SigMFRecorder(base, sample_rate=1e6, frequency_hz=1e9) as rec:
        starts = [rec.write(p) for p in parts]
    assert starts == list(np.cumsum([0, *chunks])[:-1])
    got = read_recording(base)
    np.testing.assert_array_equal(got.samples, np.concatenate([np.zeros(0, np.complex64),
                                                               *parts]))


def test_recording_radio_records_what_it_receives(tmp_path: Path) -> None:
    m = Medium(1e6, seed=2)
    radio = m.add_radio("a")
    m.set_link("a", "a", snr_db=30)
    rec = SigMFRecorder(tmp_path / "a", sample_rate=1e6, frequency_hz=2.4e9, radio="a")
    with RecordingRadio(radio, rec) as rr:
        rr.transmit(0.2 * np.ones(100, np.complex64))
        start = rr.rx_index
        first = rr.receive(300)
        rr.annotate(start, 100, crc_ok=True)
        rr.tune(lo_hz=2.41e9)
        second = rr.receive(200)
        assert rr.stats.rx_samples == 500
    got = read_recording(tmp_path / "a")
    np.testing.assert_array_equal(got.samples, np.concatenate([first, second]))
    assert len(got.captures) == 2 and got.annotations[0]["relaysec:crc_ok"] is True
