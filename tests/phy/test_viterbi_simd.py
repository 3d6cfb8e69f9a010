"""The int16 SIMD Viterbi (phy/viterbi.py) against the float32 decoder and the naive twin.

* identical decisions (packed words, every step from 6 on, and the decoded bits) to the float
  kernel on integer LLRs up to Q_MAX, i.e. without saturation -- including the split
  forward/traceback passes;
* hypothesis: bits equal to tests/phy/naive.py, split forced on short blocks;
* the same BER as the float decoder on the same noisy samples (stated tolerance), with a
  coarse-quantisation control showing the comparison can fail;
* the decoder choice: CPU features, the environment override, the forced float fallback.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from phy import kernels, viterbi
from phy.errors import PhyInputError
from phy.fec import PUNCTURE, ConvCode, conv_encode

from . import naive


@njit(cache=False)
def _float_words(llr: np.ndarray) -> np.ndarray:
    """The float32 kernel's packed decision words (its forward pass alone)."""
    n = llr.size // 2
    pm = np.full(64, -1.0e9, dtype=np.float32)
    pm[0] = 0.0
    dec = np.empty(n, dtype=np.uint64)
    kernels._viterbi_forward(llr, kernels.BFLY_SX, kernels.BFLY_SY, pm, dec, n)
    return dec


def _int_llrs(rng: np.random.Generator, n: int, sd: float, zeros: float = 0.0) -> np.ndarray:
    llr = np.clip(np.round(rng.normal(0, sd, 2 * n)), -viterbi.Q_MAX, viterbi.Q_MAX)
    llr[rng.random(2 * n) < zeros] = 0.0
    return llr.astype(np.float32)


@pytest.mark.parametrize("split_min", [0, 16, viterbi.SPLIT_MIN])
def test_identical_decisions_to_float_decoder_unsaturated(split_min: int) -> None:
    """Integer LLRs: float32 and int16 sums are exact, so every comparison agrees while no
    metric saturates; |llr| = Q_MAX everywhere is the worst case for the metric range."""
    rng = np.random.default_rng(51)
    cases = [_int_llrs(rng, n, sd, z) for n, sd, z in
             ((7, 3.0, 0.0), (200, 2.0, 0.4), (2501, 300.0, 0.0), (3000, 5.0, 0.3),
              (20_001, 120.0, 0.2))]
    cases.append(np.where(rng.random(2 * 4000) < 0.5, -1, 1).astype(np.float32) * viterbi.Q_MAX)
    for llr in cases:
        want = _float_words(llr)
        got = viterbi.acs_i16(llr, 1.0, split_min)
        assert np.array_equal(got[6:], want[6:]), llr.size
        assert np.array_equal(viterbi.viterbi_k7_i16(llr, 1.0, split_min),
                              kernels.viterbi_k7(llr, kernels.BFLY_SX, kernels.BFLY_SY))


def test_split_equals_one_chain_on_noisy_code_words() -> None:
    """The split forward pass and traceback are exact on real code words at low SNR (long
    survivor merges), where the second half's start guess is usually wrong."""
    rng = np.random.default_rng(52)
    bits = rng.integers(0, 2, 6000).astype(np.uint8)
    c = conv_encode(bits)
    for sigma in (1.2, 0.8, 0.5):
        y = (1.0 - 2.0 * c) + rng.normal(0, sigma, c.size)
        llr = np.clip(np.round(y * 60), -800, 800).astype(np.float32)
        one = viterbi.acs_i16(llr, 1.0, 0)
        assert np.array_equal(viterbi.acs_i16(llr, 1.0, 64), one), sigma
        out = kernels.v16_traceback(one, 0)
        assert np.array_equal(kernels.v16_traceback(one, 64), out), sigma
        assert np.array_equal(out, kernels.viterbi_k7(llr, kernels.BFLY_SX, kernels.BFLY_SY))


def _traceback_plain(dec: np.ndarray) -> np.ndarray:
    """One traceback chain from state 0 after the last step, in plain Python."""
    out = np.empty(dec.size, np.uint8)
    s = 0
    for t in range(dec.size - 1, -1, -1):
        out[t] = s >> 5
        s = 2 * (s & 31) + ((int(dec[t]) >> s) & 1)
    return out


def test_traceback_chains_exact_on_arbitrary_decisions() -> None:
    """The four-chain traceback (guessed starts, re-traced from the exact state where they
    were wrong) equals one plain chain for any decision words: random ones (paths merge
    quickly), sparse ones (most decisions 0: long unmerged stretches), at every length
    around the quarter rounding and the 64-step minimum."""
    rng = np.random.default_rng(57)
    for sparse in (False, True):
        for n in [*range(1, 140), 190, 255, 256, 257, 1023, 4097]:
            dec = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2)
            dec += rng.integers(0, 2, n, dtype=np.uint64)
            if sparse:
                dec &= rng.integers(0, 2**63, n, dtype=np.uint64)
                dec &= rng.integers(0, 2**63, n, dtype=np.uint64)
            want = _traceback_plain(dec)
            for split_min in (0, 1, 64, 256):
                assert np.array_equal(kernels.v16_traceback(dec, split_min), want), (n, split_min)


@given(st.lists(st.integers(-40, 40), min_size=2, max_size=160), st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_equals_naive_twin(vals: list[int], split: int) -> None:
    llr = np.array(vals[: len(vals) // 2 * 2], np.float32)
    got = viterbi.viterbi_k7_i16(llr, 1.0, [0, 2, 16, 40][split])
    assert np.array_equal(got, naive.viterbi(llr))


@given(st.integers(1, 700), st.integers(0, 2**32 - 1),
       st.sampled_from([3.0, 60.0, 800.0, 1e6]), st.sampled_from([1.0, 0.25]))
@settings(max_examples=60, deadline=None)
def test_lanes_layout_takes_the_wide_layouts_decisions(n: int, seed: int, sd: float,
                                                       lim_frac: float) -> None:
    """The 128-bit-lane layout (phy.viterbi_lanes.v16_forward_lanes) and the wide one take
    the same decisions word for word and end on the same metrics on every table the decoder
    builds (LLRs clipped to Q_MAX; spreads far beyond it: every LLR clipped), from the
    unreachable states' floor at the start, on every length around the four-step groups."""
    from phy import viterbi_kernels as vk
    from phy import viterbi_lanes

    rng = np.random.default_rng(seed)
    lim = viterbi.Q_MAX * lim_frac
    tab = vk.v16_branch_table(rng.normal(0, sd, 2 * n).astype(np.float32), 1.0, lim)
    want = vk.v16_forward(tab, 0)
    assert np.array_equal(viterbi_lanes.v16_forward_lanes(tab), want)
    pm_wide = np.full(64, vk._V16_NEG, np.int16)
    pm_wide[0] = 0
    pm_lanes = pm_wide.copy()
    _acs_wide(tab, np.empty(n, np.uint64), pm_wide)
    _acs_lanes(tab, np.empty(n, np.uint64), pm_lanes)
    assert np.array_equal(pm_lanes, pm_wide)


@njit(cache=False)
def _acs_wide(tab: np.ndarray, dec: np.ndarray, pm: np.ndarray) -> None:
    kernels._v16_acs1(tab, dec, pm, pm, np.zeros(1, np.int64), tab.size)


@njit(cache=False)
def _acs_lanes(tab: np.ndarray, dec: np.ndarray, pm: np.ndarray) -> None:
    kernels._v16l_acs(tab, dec, pm, tab.size, kernels.V16L_SPREAD)


def test_lanes_layout_identical_to_float_decoder_and_naive_twin() -> None:
    """Unsaturated integer LLRs: the lane layout's words equal the float kernel's, and its
    bits the float decoder's and the naive twin's; the drop-in decodes code words."""
    rng = np.random.default_rng(58)
    for n, sd, z in ((7, 3.0, 0.0), (200, 2.0, 0.4), (2501, 300.0, 0.0), (20_001, 120.0, 0.2)):
        llr = _int_llrs(rng, n, sd, z)
        words = viterbi.acs_i16_lanes(llr, 1.0)
        assert np.array_equal(words[6:], _float_words(llr)[6:]), n
        bits = kernels.v16_traceback(words, 0)
        assert np.array_equal(bits, kernels.viterbi_k7(llr, kernels.BFLY_SX, kernels.BFLY_SY))
        if n <= 200:
            assert np.array_equal(bits, naive.viterbi(llr)), n
    info = rng.integers(0, 2, 3000).astype(np.uint8)
    y = (1.0 - 2.0 * conv_encode(info)) + rng.normal(0, 0.7, 2 * 3006)
    got = viterbi.viterbi_k7_simd_lanes((2 * y / 0.49).astype(np.float32))
    assert np.array_equal(got, viterbi.viterbi_k7_simd_wide((2 * y / 0.49).astype(np.float32)))
    assert np.count_nonzero(got[:3000] != info) < 30


def test_layout_choice_follows_avx512bw_and_the_override(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """"wide" where LLVM reports AVX-512BW (two-source word permutes), "lanes" elsewhere;
    RELAYSEC_VITERBI_LAYOUT forces either, and the decoder phy.viterbi exports is that
    layout's."""
    import llvmlite.binding as ll

    monkeypatch.delenv("RELAYSEC_VITERBI_LAYOUT", raising=False)
    has = bool(ll.get_host_cpu_features().get("avx512bw", False))
    assert viterbi.simd_layout() == ("wide" if has else "lanes")
    want = viterbi.viterbi_k7_simd_wide if has else viterbi.viterbi_k7_simd_lanes
    assert viterbi.viterbi_k7_simd is want
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: {"avx512bw": True, "avx2": True})
    assert viterbi.simd_layout() == "wide"
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: {"avx2": True})
    assert viterbi.simd_layout() == "lanes"
    monkeypatch.setenv("RELAYSEC_VITERBI_LAYOUT", "wide")
    assert viterbi.simd_layout() == "wide"
    monkeypatch.setenv("RELAYSEC_VITERBI_LAYOUT", "lanes")
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: {"avx512bw": True})
    assert viterbi.simd_layout() == "lanes"


def _ber(decode: object, rate: str, ebn0_db: float, n_bits: int, seed: int,
         fading: bool = False) -> tuple[int, int]:
    """(bit errors of ``decode``, of the float decoder) on the same noisy BPSK samples."""
    rng = np.random.default_rng(seed)
    code = ConvCode(rate, decoder="float")
    bits = rng.integers(0, 2, n_bits).astype(np.uint8)
    tx = 1.0 - 2.0 * code.encode(bits)
    r = float(code.rate)
    sigma = np.sqrt(1.0 / (2 * r * 10 ** (ebn0_db / 10)))
    gain = rng.rayleigh(np.sqrt(0.5), tx.size) if fading else np.ones(tx.size)
    y = gain * tx + rng.normal(0, sigma, tx.size)
    llr = (2 * gain * y / sigma**2).astype(np.float32)
    buf = np.zeros(code.input_size(n_bits), np.float32)
    buf[code.input_positions(n_bits)] = llr
    ref = kernels.viterbi_k7(buf, kernels.BFLY_SX, kernels.BFLY_SY)[:n_bits]
    got = decode(buf)[:n_bits]  # type: ignore[operator]
    return int(np.sum(got != bits)), int(np.sum(ref != bits))


@pytest.mark.parametrize(("rate", "ebn0", "fading"),
                         [("1/2", 2.0, False), ("1/2", 3.0, False), ("5/6", 4.5, False),
                          ("3/4", 7.0, True)])
def test_same_ber_as_float_decoder(rate: str, ebn0: float, fading: bool) -> None:
    """BER on the same noisy samples (4 x 60 000 bits): the int16 decoder's errors within
    5 % + 5 of the float decoder's, either way. The points give ~120-2200 float errors; the
    fading case spreads LLR magnitudes over > 30 dB (the scale's outlier rule), and its
    errors come in long bursts, so one 60 000-bit run alone differs by up to 10 % (measured
    both ways over 6 seeds: 3273 vs 3245 errors in total)."""
    e16, ef = np.sum([_ber(viterbi.viterbi_k7_simd, rate, ebn0, 60_000, seed, fading)
                      for seed in range(53, 57)], axis=0)
    assert ef >= 100, ef  # a point with errors to compare
    assert abs(e16 - ef) <= 0.05 * ef + 5, (e16, ef)


def test_ber_comparison_detects_coarse_quantisation() -> None:
    """Control: the same comparison with a scale that leaves the mean LLR at 1.5 levels
    (about 2-bit soft decisions) fails the tolerance above."""
    def coarse(buf: np.ndarray) -> np.ndarray:
        nz = buf[buf != 0]
        return viterbi.viterbi_k7_i16(buf, 1.5 / float(np.mean(np.abs(nz))))

    e_coarse, ef = np.sum([_ber(coarse, "1/2", 3.0, 60_000, seed) for seed in range(53, 57)],
                          axis=0)
    assert e_coarse > ef + 0.05 * ef + 5, (e_coarse, ef)


def test_scale_rule_and_non_finite_llrs() -> None:
    llr = np.array([0.0, 2.0, -4.0, 1.0] * 50, np.float32)  # mean 7/3, max 4
    assert viterbi.llr_scale(llr, 800.0, 50.0) == pytest.approx(200.0)  # max rule wins
    spiky = np.tile(llr, 10)
    spiky[kernels._V16_STRIDE] *= 1e5  # one sampled outlier: the mean rule wins, the rest clip
    smp = np.abs(spiky[:: kernels._V16_STRIDE])
    smp = smp[smp > 0]
    want = max(800.0 / smp.max(), 50.0 / smp.mean())
    assert want == pytest.approx(50.0 / smp.mean())
    assert viterbi.llr_scale(spiky, 800.0, 50.0) == pytest.approx(want)
    assert viterbi.llr_scale(np.zeros(10, np.float32), 800.0, 50.0) == 1.0
    tab = viterbi.branch_table(np.array([np.nan, 3.0, np.inf, -np.inf], np.float32), 1.0, 800.0)
    assert tab.view(np.int16).tolist() == [3, -3, 0, 1600]  # (s, d) per 32-bit word
    rng = np.random.default_rng(54)
    bits = rng.integers(0, 2, 300).astype(np.uint8)
    code = ConvCode("1/2", decoder="int16")
    llr = (1.0 - 2.0 * code.encode(bits)).astype(np.float32) * 4.0
    llr[5] = np.nan
    llr[9] = np.inf
    assert np.array_equal(code.decode(llr, bits.size), bits)


def test_decoder_choice_and_forced_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """int16 where the CPU has AVX2/AVX-512BW, float otherwise; the environment overrides;
    a forced float ConvCode really takes the float kernel and decodes the same bits."""
    monkeypatch.delenv("RELAYSEC_VITERBI", raising=False)
    monkeypatch.setattr(viterbi, "cpu_has_simd16", lambda: False)
    assert viterbi.default_decoder() == "float"
    assert ConvCode("1/2").decoder == "float"
    monkeypatch.setattr(viterbi, "cpu_has_simd16", lambda: True)
    assert viterbi.default_decoder() == "int16"
    monkeypatch.setenv("RELAYSEC_VITERBI", "float")
    assert ConvCode("3/4").decoder == "float"
    monkeypatch.setenv("RELAYSEC_VITERBI", "int16")
    monkeypatch.setattr(viterbi, "cpu_has_simd16", lambda: False)
    assert ConvCode("3/4").decoder == "int16"
    with pytest.raises(PhyInputError, match="unknown Viterbi decoder"):
        ConvCode("1/2", decoder="int8")

    calls: list[str] = []
    import phy.fec as fec

    real_f, real_i = fec.viterbi_k7, fec.viterbi_k7_simd
    monkeypatch.setattr(fec, "viterbi_k7", lambda *a: calls.append("float") or real_f(*a))
    monkeypatch.setattr(fec, "viterbi_k7_simd", lambda *a: calls.append("int16") or real_i(*a))
    rng = np.random.default_rng(55)
    for rate in PUNCTURE:
        bits = rng.integers(0, 2, 700).astype(np.uint8)
        outs = []
        for dec in ("float", "int16"):
            code = ConvCode(rate, decoder=dec)
            llr = (1.0 - 2.0 * code.encode(bits)).astype(np.float32)
            llr += rng.normal(0, 0.3, llr.size).astype(np.float32)
            outs.append(code.decode(llr, bits.size))
        assert np.array_equal(outs[0], bits) and np.array_equal(outs[1], bits), rate
    assert calls == ["float", "int16"] * len(PUNCTURE)


def test_cpu_feature_query_matches_llvm() -> None:
    import llvmlite.binding as ll

    f = ll.get_host_cpu_features()
    assert viterbi.cpu_has_simd16() == bool(f.get("avx2", False) or f.get("avx512bw", False))


def test_kernel_compiles_for_a_cpu_without_avx(tmp_path: object) -> None:
    """The int16 kernels (both layouts) are plain LLVM vector IR: compiled for baseline x86-64
    (SSE2 only, as numba would on a CPU without AVX) in a subprocess with its own cache, they
    use no 256- or 512-bit register and decode exactly like the float decoder (~10 s: a cold
    compile)."""
    import os
    import platform
    import subprocess
    import sys

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-64 target names")
    code = (
        "import re, numpy as np\n"
        "from phy import viterbi as V, kernels as K\n"
        "rng = np.random.default_rng(3)\n"
        "llr = np.clip(np.round(rng.normal(0, 100, 2 * 5000)), -800, 800).astype(np.float32)\n"
        "ref = K.viterbi_k7(llr, K.BFLY_SX, K.BFLY_SY)\n"
        "ok = np.array_equal(V.viterbi_k7_i16(llr), ref)\n"
        "ok = ok and np.array_equal(K.v16_traceback(K.acs_i16_lanes(llr), 0), ref)\n"
        "asm = ''.join(K.v16_forward.inspect_asm().values())\n"
        "asm += ''.join(K.v16_forward_lanes.inspect_asm().values())\n"
        "print(ok, len(re.findall('%[yz]mm', asm)), len(re.findall('paddsw', asm)))\n"
    )
    env = dict(os.environ, NUMBA_CPU_NAME="x86-64", NUMBA_CPU_FEATURES="",
               NUMBA_CACHE_DIR=str(tmp_path), NUMBA_DISABLE_CACHE="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                       text=True, timeout=300, check=True)
    ok, wide, paddsw = r.stdout.split()
    assert ok == "True" and wide == "0" and int(paddsw) > 0, r.stdout


def test_benchmark_runs_and_reports_both_decoders(tmp_path: object) -> None:
    """benchmarks/viterbi.py at a tiny size: both decoders timed in one run, the same bit
    errors on the same samples, the int16 decoder's parts, JSON with the machine and LLVM
    features."""
    import json
    import os

    from benchmarks import viterbi as bench

    out = os.path.join(str(tmp_path), "v.json")
    res = bench.main(["--sizes", "300", "1100", "--rounds", "2", "--repeats", "1", "--json", out])
    with open(out, encoding="utf-8") as fh:
        saved = json.load(fh)
    assert saved["sizes"] == json.loads(json.dumps(res["sizes"]))
    assert "cpu_model" in saved["machine"] and isinstance(saved["llvm_features"], list)
    for row in saved["sizes"]:
        assert set(row["mbit_s"]) == {"float", "int16", "wide", "lanes", "wide-1"}
        assert all(v > 0 for v in row["mbit_s"].values())
        assert len(row["ratio_rounds"]) == 2
        e = row["errors"]
        assert e["float"] == e["int16"] == e["wide"] == e["lanes"] == e["wide-1"], e
    assert [r["bits"] for r in saved["parts"]] == [300, 1100]
    for row in saved["parts"]:
        assert set(row["us"]) == {"scale", "table", "forward wide", "forward lanes",
                                  "traceback", "int16", "float"}
        assert all(v > 0 for v in row["us"].values())


def test_simd_ops_probe_measures_the_operations_it_names(tmp_path: object) -> None:
    """benchmarks/simd_ops.py: each row's loop compiles to the instruction it names (a
    saturating add is ``paddsw``, a plain one ``paddw``, ...), and a short run reports every
    operation at every width asked, the ACS step on 4 and 8 chains and a plausible clock, in
    JSON beside the machine."""
    import json
    import os

    import llvmlite.binding as ll

    from benchmarks import simd_ops

    _, tm = simd_ops._engine()
    want = {"add": "paddw", "adds": "paddsw", "max": "pmaxsw", "cmp->mask": "pcmpgtw"}
    for op, mnemonic in want.items():
        asm = tm.emit_assembly(ll.parse_assembly(simd_ops.op_ir(op, 16, 4)))
        assert mnemonic in asm, op
        others = set(want.values()) - {mnemonic, "paddw"}
        assert not any(m in asm for m in others), op
    acs = tm.emit_assembly(ll.parse_assembly(simd_ops.acs_ir(32, 4)))
    assert "pcmpgtw" in acs and "psubw" in acs and "paddsw" not in acs

    out = os.path.join(str(tmp_path), "s.json")
    res = simd_ops.main(["--iters", "20000", "--repeats", "1", "--widths", "8", "32",
                         "--json", out])
    with open(out, encoding="utf-8") as fh:
        saved = json.load(fh)
    assert saved["ops"] == json.loads(json.dumps(res["ops"]))
    assert "cpu_model" in saved["machine"]
    assert {(r["op"], r["lanes"]) for r in saved["ops"]} == {
        (op, w) for op in ("add", "adds", "max", "cmp->mask", "permute2") for w in (8, 32)}
    assert all(r["ns"] > 0 and r["cycles"] > 0 for r in saved["ops"])
    assert {(s["lanes"], s["chains"]) for s in saved["acs_step"]} == {
        (w, c) for w in (8, 32) for c in (4, 8)}
    assert 0.3 < saved["ghz_est"] < 10
    with pytest.raises(SystemExit):
        simd_ops.main(["--widths", "12"])
