"""BurstModem end to end: exact round trip without a channel, burst search in a stream, API."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phy
from phy import channel as ch


@pytest.mark.parametrize("profile", phy.profiles())
def test_roundtrip_every_mcs_exact(profile: str) -> None:
    rng = np.random.default_rng(1)
    for mcs in phy.mcs_table():
        modem = phy.BurstModem(profile, mcs)
        payload = rng.bytes(int(rng.integers(0, 700)))
        x = modem.modulate(payload, src=7, dst=65535)
        assert x.dtype == np.complex64
        assert x.size == modem.burst_samples(len(payload))
        off = int(rng.integers(0, 2000))
        buf = np.concatenate([np.zeros(off, np.complex64), x, np.zeros(300, np.complex64)])
        bursts = modem.demodulate(buf)
        assert len(bursts) == 1, (profile, mcs)
        b = bursts[0]
        assert b.crc_ok and b.payload == payload
        assert (b.src, b.dst, b.start, b.mcs) == (7, 65535, off, mcs)
        assert abs(b.cfo_hz) < 1.0


def test_profiles_and_mcs_names() -> None:
    names = phy.profiles()
    for want in ("5MHz", "10MHz", "20MHz", "P2.5"):
        assert want in names
    assert phy.get_profile("pluto").name == "P2.5"
    assert phy.get_profile("P10").sample_rate == 11.2e6
    assert phy.mcs_table()[0] == "QPSK-1/2" and phy.mcs_table()[-1] == "64QAM-5/6"
    assert len(phy.mcs_table()) == 8
    with pytest.raises(phy.PhyError):
        phy.BurstModem("7MHz")
    with pytest.raises(phy.PhyError):
        phy.BurstModem("5MHz", "256QAM-1/2")


def test_numerology_matches_digest_tables() -> None:
    rows = {"5MHz": (5.6e6, 512, 64, 48), "10MHz": (11.2e6, 1024, 128, 48),
            "20MHz": (22.4e6, 2048, 256, 48), "5MHz-cp16": (5.6e6, 512, 32, 51),
            "P2.5": (2.8e6, 256, 32, 48)}
    for name, (fs, nfft, cp, spf) in rows.items():
        p = phy.get_profile(name)
        assert (p.sample_rate, p.nfft, p.cp, p.symbols_per_frame) == (fs, nfft, cp, spf)
        assert p.subcarrier_spacing == pytest.approx(10937.5)
    prus = [phy.get_profile(n).n_pru for n in ("5MHz", "10MHz", "20MHz", "P2.5")]
    assert prus == [24, 48, 96, 12]


def test_output_scaling_and_parameter() -> None:
    rng = np.random.default_rng(2)
    payload = rng.bytes(2000)
    x = phy.BurstModem("5MHz", tx_rms=0.25).modulate(payload)
    assert np.sqrt(np.mean(np.abs(x) ** 2)) == pytest.approx(0.25, rel=0.05)
    assert np.max(np.abs(x)) <= 1.0 + 1e-6
    y = phy.BurstModem("5MHz", tx_rms=0.1).modulate(payload)
    assert np.sqrt(np.mean(np.abs(y) ** 2)) == pytest.approx(0.1, rel=0.05)
    u = phy.BurstModem("5MHz", tx_rms=None).modulate(payload)
    grid = phy.ResourceGrid("5MHz")
    assert np.mean(np.abs(u) ** 2) == pytest.approx(grid.n_used / grid.nfft, rel=0.05)


def test_several_bursts_in_noise_different_mcs_and_stations() -> None:
    rng = np.random.default_rng(3)
    tx = [phy.BurstModem("10MHz", m) for m in ("QPSK-1/2", "16QAM-3/4", "64QAM-2/3")]
    rx = phy.BurstModem("10MHz")  # RX learns the MCS from the header
    parts, expect, pos = [], [], 0
    for i, m in enumerate(tx):
        gap = int(rng.integers(100, 5000))
        payload = rng.bytes(300 + 200 * i)
        x = m.modulate(payload, src=i, dst=10 + i)
        parts += [np.zeros(gap, np.complex64), x]
        pos += gap
        expect.append((pos, payload, i, 10 + i))
        pos += x.size
    parts.append(np.zeros(777, np.complex64))
    buf = ch.awgn(np.concatenate(parts), ch.noise_variance_for(30, rx.scale), rng)
    got = rx.demodulate(buf)
    assert [(b.start, b.payload, b.src, b.dst) for b in got] == expect
    assert all(b.crc_ok for b in got)
    assert all(25 < b.snr_db < 35 for b in got)


def test_burst_geometry_for_runtime() -> None:
    m = phy.BurstModem("5MHz", "QPSK-1/2")
    assert m.max_payload >= 4096
    assert m.sample_rate == 5.6e6
    assert m.burst_samples(0) == 4 * 576  # preamble x2, header, one data symbol
    n = m.burst_samples(4096)
    assert n == m.modulate(bytes(4096)).size
    assert m.burst_samples(4096, "64QAM-5/6") < n
    with pytest.raises(phy.PayloadTooLongError):
        m.burst_samples(m.max_payload + 1)


def test_back_to_back_bursts_and_burst_at_buffer_edges() -> None:
    for profile in ("P2.5", "10MHz-cp16"):
        m = phy.BurstModem(profile, "16QAM-1/2")
        a, b = m.modulate(b"first" * 30, src=1), m.modulate(b"second" * 20, src=2)
        got = m.demodulate(np.concatenate([a, b]))  # no gap, first at 0, second ends the buffer
        assert [(x.start, x.src, x.crc_ok) for x in got] == [(0, 1, True), (a.size, 2, True)]


def test_burst_repr_hides_payload() -> None:
    m = phy.BurstModem("P2.5")
    (b,) = m.demodulate(m.modulate(b"SECRET-ISH BYTES"))
    assert "SECRET" not in repr(b) and b.payload_len == 16


@given(st.binary(max_size=1500), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
       st.sampled_from(phy.mcs_table()), st.integers(0, 3000))
@settings(max_examples=30, deadline=None)
def test_roundtrip_property(payload: bytes, src: int, dst: int, mcs: str, off: int) -> None:
    m = phy.BurstModem("P2.5", mcs)
    x = m.modulate(payload, src=src, dst=dst)
    buf = np.concatenate([np.zeros(off, np.complex64), x, np.zeros(100, np.complex64)])
    (b,) = m.demodulate(buf)
    got = (b.payload, b.crc_ok, b.src, b.dst, b.start, b.mcs)
    assert got == (payload, True, src, dst, off, mcs)


@pytest.mark.parametrize("profile", ["P2.5", "5MHz"])
def test_robust_symbols_and_air_mapping_equal_their_definitions(profile: str) -> None:
    """The one-gather robust block equals its definition (code word repeated over the symbols,
    scrambled, interleaved per symbol, QPSK), and the burst's FFT bins placed from the grown
    template equal the direct placement of preamble, data and pilots, for bursts shorter and
    longer than the table (which then grows)."""
    import scipy.fft as sp_fft

    from phy import qam
    from phy.interleaver import interleave
    from phy.modem_format import _fec, _pad_bits

    rng = np.random.default_rng(50)
    m = phy.BurstModem(profile, shaping=False, tx_rms=None)
    g = m.grid
    ncb = 2 * g.n_data
    for n_bits, n_sym in [(80, 1), (200, 2), (1000, 3), (72 * 30, 15)]:
        bits = rng.integers(0, 2, n_bits).astype(np.uint8)
        coded = _fec("1/2").encode(bits)
        want = qam.modulate(interleave(np.resize(coded, n_sym * ncb) ^ _pad_bits(n_sym * ncb),
                                       ncb, 2), 2).reshape(n_sym, g.n_data)
        assert m._robust_symbols(bits, n_sym).tobytes() == want.tobytes()
    for n_sym in (1, 5, 40, 3, 90, 17):
        q = (rng.normal(size=(n_sym, g.n_data)) + 1j * rng.normal(size=(n_sym, g.n_data))
             ).astype(np.complex64)
        full = np.zeros((2 + n_sym, g.nfft), np.complex64)
        full[:2] = m._pre_bins
        pv = g.pilot_values(n_sym)
        for l in range(n_sym):
            full[2 + l, g.used_bins[g.data_positions(l)]] = q[l]
            full[2 + l, g.used_bins[g.pilot_positions(l)]] = pv[l]
        want = g.add_cp(sp_fft.ifft(full, axis=1, norm="ortho"))
        assert m._to_air(q).tobytes() == want.tobytes()
