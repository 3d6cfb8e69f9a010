"""Robustness (stated operating points, seeded) and malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phy
from phy import channel as ch


def _through(x: np.ndarray, modem: phy.BurstModem, rng: np.random.Generator, *, snr_db: float,
             offset: int, cfo_hz: float = 0.0, ppm: float = 0.0, model: str | None = None,
             tail: int = 1500) -> np.ndarray:
    buf = np.concatenate([np.zeros(offset, np.complex64), x, np.zeros(tail, np.complex64)])
    if model:
        buf = ch.multipath(buf, ch.tdl_impulse_response(model, modem.sample_rate, rng))
    if ppm:
        buf = ch.sfo(buf, ppm)
    if cfo_hz:
        buf = ch.cfo(buf, cfo_hz, modem.sample_rate, phase=float(rng.uniform(0, 2 * np.pi)))
    return ch.awgn(buf, ch.noise_variance_for(snr_db, modem.scale), rng)


@pytest.mark.parametrize("cfo_hz", [-60e3, -23e3, 0.0, 37e3, 60e3])
def test_cfo_60khz_unknown_offset_awgn_5mhz(cfo_hz: float) -> None:
    """5 MHz profile, QPSK-1/2, Es/N0 6 dB, CFO up to +-60 kHz (5.5 subcarrier spacings)."""
    rng = np.random.default_rng(int(abs(cfo_hz)) + 1)
    modem = phy.BurstModem("5MHz", "QPSK-1/2")
    for _ in range(4):
        payload = rng.bytes(500)
        off = int(rng.integers(0, 5000))
        y = _through(modem.modulate(payload, src=3, dst=9), modem, rng, snr_db=6.0, offset=off,
                     cfo_hz=cfo_hz)
        (b,) = modem.demodulate(y)
        assert b.crc_ok and b.payload == payload and (b.src, b.dst) == (3, 9)
        assert b.start == off
        assert abs(b.cfo_hz - cfo_hz) < 300.0
        assert 4.5 < b.snr_db < 7.5


@pytest.mark.parametrize(("mcs", "snr_db"), [("QPSK-1/2", 8.0), ("64QAM-3/4", 26.0)])
def test_sfo_25ppm_long_burst(mcs: str, snr_db: float) -> None:
    """4096-byte burst (the long-burst case), 25 ppm sampling-clock offset plus 25 ppm of
    CFO at 2.4 GHz (60 kHz): pilot slope tracking keeps it decodable; SFO estimated."""
    rng = np.random.default_rng(5)
    modem = phy.BurstModem("5MHz", mcs)
    payload = rng.bytes(4096)
    for ppm in (25.0, -25.0):
        y = _through(modem.modulate(payload), modem, rng, snr_db=snr_db, offset=1234,
                     ppm=ppm, cfo_hz=ppm * 2.4e3)
        (b,) = modem.demodulate(y)
        assert b.crc_ok and b.payload == payload
        assert abs(b.sfo_ppm - ppm) < 5.0


def test_ped_b_with_cfo_sfo_and_offset() -> None:
    """ITU Ped-B (block Rayleigh, 12 realisations), 5 MHz QPSK-1/2 at Es/N0 15 dB with CFO
    +-60 kHz and SFO +-25 ppm (alternating signs) and a random start: at least 11 of 12 bursts
    pass (fading can still produce a deep-faded realisation)."""
    rng = np.random.default_rng(9)
    modem = phy.BurstModem("5MHz", "QPSK-1/2")
    ok = 0
    for i in range(12):
        sign = 1.0 if i % 2 else -1.0
        payload = rng.bytes(1500)
        y = _through(modem.modulate(payload), modem, rng, snr_db=15.0,
                     offset=int(rng.integers(0, 3000)), cfo_hz=sign * 60e3, ppm=sign * 25.0,
                     model="pedB")
        got = modem.demodulate(y)
        ok += any(b.crc_ok and b.payload == payload and abs(b.cfo_hz - sign * 60e3) < 1e3
                  for b in got)
    assert ok >= 11


@pytest.mark.parametrize(("mcs", "snr_db"), [("QPSK-1/2", 12.0), ("16QAM-1/2", 20.0),
                                             ("64QAM-3/4", 30.0)])
def test_reported_snr_and_evm_track_the_channel(mcs: str, snr_db: float) -> None:
    """AWGN at a known Es/N0: the reported SNR is within 1 dB of it and the EVM within 1.5 dB of
    -SNR (EVM^2 = noise/signal per subcarrier; the channel estimate adds a few tenths of a dB)."""
    rng = np.random.default_rng(int(snr_db))
    modem = phy.BurstModem("5MHz", mcs)
    for _ in range(2):
        payload = rng.bytes(1000)
        y = _through(modem.modulate(payload), modem, rng, snr_db=snr_db, offset=700)
        (b,) = modem.demodulate(y)
        assert b.crc_ok and b.payload == payload
        assert abs(b.snr_db - snr_db) < 1.0
        assert abs(b.evm_db + snr_db) < 1.5


def test_pluto_profile_ped_b_16qam() -> None:
    rng = np.random.default_rng(21)
    modem = phy.BurstModem("P2.5", "16QAM-1/2")
    ok = 0
    for _ in range(8):
        payload = rng.bytes(800)
        y = _through(modem.modulate(payload), modem, rng, snr_db=20.0, offset=500,
                     cfo_hz=30e3, model="pedB")
        ok += any(b.crc_ok and b.payload == payload for b in modem.demodulate(y))
    assert ok >= 7


def test_two_plutos_at_20ppm_each_with_rx_dc_offset() -> None:
    """Worst case of digest §7: XOs +-20 ppm apart in opposite directions at 2.4 GHz -> 96 kHz
    CFO (8.8 subcarrier spacings) and 40 ppm SFO, plus a receiver DC offset at half the signal
    RMS (removed as the buffer mean) and silence-free noise around the burst."""
    rng = np.random.default_rng(33)
    modem = phy.BurstModem("5MHz", "QPSK-1/2")
    payload = rng.bytes(3000)
    y = _through(modem.modulate(payload, src=4, dst=5), modem, rng, snr_db=12.0, offset=2500,
                 cfo_hz=96e3, ppm=40.0)
    y = y + np.complex64(0.5 * modem.tx_rms * (1 + 1j) / np.sqrt(2))
    (b,) = modem.demodulate(y)
    assert b.crc_ok and b.payload == payload
    assert abs(b.cfo_hz - 96e3) < 300 and abs(b.sfo_ppm - 40) < 5


# ---- malformed input ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def modem() -> phy.BurstModem:
    return phy.BurstModem("P2.5", "QPSK-3/4")


def test_empty_and_short_buffers_give_no_burst(modem: phy.BurstModem) -> None:
    assert modem.demodulate(np.zeros(0, np.complex64)) == []
    assert modem.demodulate(np.zeros(10, np.complex128)) == []
    assert modem.demodulate(np.zeros(100_000, np.complex64)) == []


def test_noise_only_gives_no_burst(modem: phy.BurstModem) -> None:
    rng = np.random.default_rng(4)
    assert modem.demodulate(ch.awgn(np.zeros(300_000, np.complex64), 1.0, rng)) == []


@pytest.mark.parametrize(
    "bad",
    [
        np.array([1 + 1j, np.nan], np.complex64),
        np.array([np.inf, 0], np.complex128),
        np.zeros(100, np.int16),
        np.zeros(100, np.float32),
        np.zeros((10, 10), np.complex64),
        [0j] * 100,
        b"\x00" * 100,
    ],
    ids=["nan", "inf", "int16", "float32", "2d", "list", "bytes"],
)
def test_malformed_iq_raises_phy_error(modem: phy.BurstModem, bad: object) -> None:
    with pytest.raises(phy.PhyInputError) as e:
        modem.demodulate(bad)  # type: ignore[arg-type]
    assert str(e.value)


def test_bad_modulate_arguments(modem: phy.BurstModem) -> None:
    with pytest.raises(phy.PayloadTooLongError):
        modem.modulate(bytes(modem.max_payload + 1))
    for kw in ({"src": -1}, {"dst": 70000}, {"src": 1.5}):
        with pytest.raises(phy.PhyInputError):
            modem.modulate(b"x", **kw)  # type: ignore[arg-type]
    with pytest.raises(phy.PhyInputError):
        modem.modulate("text")  # type: ignore[arg-type]
    with pytest.raises(phy.PhyInputError):
        phy.BurstModem("5MHz", tx_rms=2.0)


def test_truncated_burst_is_not_reported(modem: phy.BurstModem) -> None:
    x = modem.modulate(bytes(range(200)))
    for cut in (x.size - 1, x.size - modem.grid.symbol_samples, x.size // 2, 500):
        assert modem.demodulate(x[:cut]) == []


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_corrupted_bursts_never_pass_crc_with_wrong_payload(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = phy.BurstModem("P2.5", "16QAM-3/4")
    payload = rng.bytes(int(rng.integers(1, 400)))
    x = m.modulate(payload).copy()
    kind = seed % 3
    if kind == 0:  # wipe a stretch of the data part
        a = int(rng.integers(3 * m.grid.symbol_samples, x.size - 10))
        x[a:a + int(rng.integers(10, 2000))] = 0
    elif kind == 1:  # heavy noise on everything after the header
        a = 3 * m.grid.symbol_samples
        x[a:] = ch.awgn(x[a:], float(rng.uniform(0.01, 1.0)), rng)
    else:  # random truncation plus garbage appended
        x = np.concatenate([x[: int(rng.integers(0, x.size))],
                            ch.awgn(np.zeros(3000, np.complex64), 0.05, rng)])
    for b in m.demodulate(x):
        assert not (b.crc_ok and b.payload != payload)
