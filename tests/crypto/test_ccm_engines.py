"""The numba engines agree byte for byte with the reference engine on `cryptography`.

Properties (hypothesis): random keys, nonces, payload lengths 0–9100, batches of 1–200 items of
mixed lengths under several keys, every length mod 16; per-item tamper detection with the failed
items' plaintext zeroed. Plus: engine selection is safe when AES-NI or VAES is reported absent
(checked in a subprocess, since compiling such code for a CPU without it aborts the interpreter).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stack.crypto import available_engines, open_batch, seal_batch

FAST = [e for e in available_engines() if e != "reference"]
pytestmark = pytest.mark.skipif(not FAST, reason="no numba engine on this machine")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _make(seed: int, lens: np.ndarray, nkeys: int, gap: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = lens.shape[0]
    offs = np.zeros(n, np.int64)
    if n > 1:
        offs[1:] = np.cumsum(lens[:-1] + 8 + gap)
    size = int(offs[-1] + lens[-1] + 8 + gap)
    return {
        "keys": rng.integers(0, 256, (nkeys, 16), dtype=np.uint8),
        "key_index": rng.integers(0, nkeys, n, dtype=np.int32),
        "nonces": rng.integers(0, 256, (n, 13), dtype=np.uint8),
        "buf": rng.integers(0, 256, size, dtype=np.uint8),
        "offsets": offs,
        "lengths": lens.astype(np.int64),
    }


def _check_engine(engine: str, b: dict, tamper_seed: int) -> None:
    plain = b["buf"].copy()
    ref = dict(b, buf=plain.copy())
    seal_batch(**ref, engine="reference")
    seal_batch(**b, engine=engine)
    assert np.array_equal(b["buf"], ref["buf"]), "sealed bytes differ from the reference"
    # Tamper with a random subset: one random bit of payload or tag per chosen item.
    rng = np.random.default_rng(tamper_seed)
    n = b["lengths"].shape[0]
    bad = rng.random(n) < 0.3
    for i in np.flatnonzero(bad):
        span = int(b["lengths"][i]) + 8
        pos = int(b["offsets"][i]) + int(rng.integers(0, span))
        b["buf"][pos] ^= np.uint8(1 << int(rng.integers(0, 8)))
    ok = open_batch(**b, engine=engine)
    assert np.array_equal(ok, ~bad)
    for i in range(n):
        o, ln = int(b["offsets"][i]), int(b["lengths"][i])
        got = b["buf"][o : o + ln]
        if bad[i]:
            assert not got.any(), f"item {i}: unauthenticated plaintext left in buf"
        else:
            assert np.array_equal(got, plain[o : o + ln]), f"item {i}: wrong plaintext"


@pytest.mark.parametrize("engine", FAST)
def test_every_length_mod_16(engine: str) -> None:
    lens = np.array(list(range(0, 50)) + [16 * 568 + r for r in range(16)] + [9100], np.int64)
    _check_engine(engine, _make(7, lens, nkeys=4, gap=1), tamper_seed=8)


@pytest.mark.parametrize("engine", FAST)
@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 200),
    maxlen=st.sampled_from([16, 100, 1500, 9100]),
    nkeys=st.integers(1, 5),
    gap=st.integers(0, 3),
)
def test_batches_match_reference(engine: str, seed: int, n: int, maxlen: int, nkeys: int,
                                 gap: int) -> None:
    lens = np.random.default_rng(seed ^ 0x5A5A).integers(0, maxlen + 1, n)
    _check_engine(engine, _make(seed, lens, nkeys, gap), tamper_seed=seed + 1)


@pytest.mark.parametrize("engine", FAST)
@settings(max_examples=25)
@given(
    key=st.binary(min_size=16, max_size=16),
    nonce=st.binary(min_size=13, max_size=13),
    payload=st.binary(max_size=9100),
    tag_len=st.sampled_from([4, 6, 8, 10, 12, 14, 16]),
)
def test_single_item_any_tag(engine: str, key: bytes, nonce: bytes, payload: bytes,
                             tag_len: int) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    args = {
        "keys": np.frombuffer(key, np.uint8).reshape(1, 16),
        "key_index": np.zeros(1, np.int64),
        "nonces": np.frombuffer(nonce, np.uint8).reshape(1, 13),
        "buf": np.frombuffer(payload + bytes(tag_len), np.uint8).copy(),
        "offsets": np.zeros(1, np.int64),
        "lengths": np.array([len(payload)]),
    }
    seal_batch(**args, engine=engine, tag_len=tag_len)
    assert args["buf"].tobytes() == AESCCM(key, tag_length=tag_len).encrypt(nonce, payload, None)
    assert open_batch(**args, engine=engine, tag_len=tag_len).tolist() == [True]
    assert args["buf"][: len(payload)].tobytes() == payload


@pytest.mark.parametrize("engine", FAST)
@pytest.mark.parametrize("threads", [2, 3])
def test_threads_match_serial(engine: str, threads: int) -> None:
    lens = np.random.default_rng(11).integers(0, 1600, 150)
    b = _make(12, lens, nkeys=3)
    b1 = dict(b, buf=b["buf"].copy())
    seal_batch(**b, engine=engine, threads=threads)
    seal_batch(**b1, engine=engine, threads=1)
    assert np.array_equal(b["buf"], b1["buf"])
    b["buf"][int(b["offsets"][100])] ^= 1
    ok = open_batch(**b, engine=engine, threads=threads)
    assert ok.sum() == 149 and not ok[100]


_PROBE = """
import numpy as np, stack.crypto as sc
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
print("ENGINES", ",".join(sc.available_engines()))
print("DEFAULT", sc.default_engine())
k = bytes(range(16)); n = bytes(13); p = bytes(range(40))
want = AESCCM(k, tag_length=8).encrypt(n, p, None)
buf = np.frombuffer(p + bytes(8), np.uint8).copy()
sc.seal_batch(np.frombuffer(k, np.uint8).reshape(1, 16), np.zeros(1, np.int64),
              np.zeros((1, 13), np.uint8), buf, np.zeros(1, np.int64), np.array([40]))
print("OK", sc.seal_many(k, [n], [p]) == [want] and buf.tobytes() == want)
"""


def _probe(env_extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ, **env_extra)
    env.pop("RELAYSEC_CCM_ENGINE", None)
    r = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"probe died (rc={r.returncode}): {r.stderr[-2000:]}"
    return dict(line.split(" ", 1) for line in r.stdout.splitlines())


@pytest.mark.parametrize(
    "env",
    [{"RELAYSEC_CCM_NO_AESNI": "1"}, {"NUMBA_CPU_NAME": "generic"}],
    ids=["forced-flag", "numba-generic-cpu"],
)
def test_fallback_selected_without_aesni(env: dict[str, str]) -> None:
    """With AES-NI reported absent, auto picks the table engine, and it is correct (no abort)."""
    out = _probe(env)
    assert "numba-aesni" not in out["ENGINES"].split(",")
    assert out["DEFAULT"] == "numba-table"
    assert out["OK"] == "True"


_HOST_AESNI = "numba-aesni" in available_engines()


@pytest.mark.skipif(not _HOST_AESNI, reason="needs a CPU with AES-NI")
@pytest.mark.parametrize(
    "env",
    [{"RELAYSEC_CCM_NO_VAES": "1"},
     # numba compiling for a CPU with AES-NI but no VAES: the VAES kernels must stay unoffered
     # (compiling them for that CPU would abort the interpreter)
     {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+aes,+sse2,+avx2"}],
    ids=["forced-flag", "numba-haswell"],
)
def test_aesni_kernel_selected_without_vaes(env: dict[str, str]) -> None:
    """With VAES reported absent, auto picks the AES-NI kernel, and it is correct (no abort)."""
    out = _probe(env)
    engines = out["ENGINES"].split(",")
    assert "numba-vaes256" not in engines and "numba-vaes512" not in engines
    assert out["DEFAULT"] == "numba-aesni"
    assert out["OK"] == "True"


def test_env_engine_override() -> None:
    env = dict(os.environ, RELAYSEC_CCM_ENGINE="reference")
    r = subprocess.run(
        [sys.executable, "-c", "import stack.crypto as sc; print(sc.default_engine())"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.stdout.strip() == "reference"


def _check_out_of_place(engine: str, b: dict, seed: int) -> None:
    """Seal from a read-only ``buf`` into ``out`` at other offsets, then open back into a third
    buffer: same bytes as the reference in place, inputs untouched, bytes between items kept."""
    rng = np.random.default_rng(seed)
    ref = dict(b, buf=b["buf"].copy())
    seal_batch(**ref, engine="reference")
    src = b["buf"].copy()
    src.flags.writeable = False
    lens, offs = b["lengths"], b["offsets"]
    n = lens.shape[0]
    gaps = rng.integers(0, 4, n)
    oofs = np.cumsum(np.concatenate([[gaps[0]], lens[:-1] + 8 + gaps[1:]])).astype(np.int64)
    order = rng.permutation(n)  # written regions need not be in buffer order
    out = rng.integers(0, 256, int(oofs[-1] + lens[-1] + 8 + 2), dtype=np.uint8)
    before = out.copy()
    kw = {"keys": b["keys"], "key_index": b["key_index"][order], "nonces": b["nonces"][order]}
    seal_batch(**kw, buf=src, offsets=offs[order], lengths=lens[order], out=out,
               out_offsets=oofs[order], engine=engine)
    assert np.array_equal(src, b["buf"]), "seal wrote to its input"
    touched = np.zeros(out.shape, bool)
    for i in range(n):
        o, q, ln = int(offs[i]), int(oofs[i]), int(lens[i])
        assert np.array_equal(out[q : q + ln + 8], ref["buf"][o : o + ln + 8]), f"item {i}"
        touched[q : q + ln + 8] = True
    assert np.array_equal(out[~touched], before[~touched]), "bytes between items were touched"
    # Open from out (tamper with one item) into a fresh buffer laid out like the original.
    sealed = out.copy()
    bad = int(rng.integers(0, n))
    sealed[int(oofs[bad]) + int(rng.integers(0, int(lens[bad]) + 8))] ^= 0x10
    sealed.flags.writeable = False
    plain = np.full(b["buf"].shape, 0xAA, np.uint8)
    ok = open_batch(**kw, buf=sealed, offsets=oofs[order], lengths=lens[order], out=plain,
                    out_offsets=offs[order], engine=engine)
    assert ok.tolist() == [int(i) != bad for i in order]
    for i in range(n):
        o, ln = int(offs[i]), int(lens[i])
        want = np.zeros(ln, np.uint8) if i == bad else b["buf"][o : o + ln]
        assert np.array_equal(plain[o : o + ln], want), f"item {i}"
        assert (plain[o + ln : o + ln + 8] == 0xAA).all(), "open wrote where the tag was"


@pytest.mark.parametrize("engine", [*FAST, "reference"])
@settings(max_examples=15)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    maxlen=st.sampled_from([16, 100, 1500, 9100]),
    nkeys=st.integers(1, 3),
)
def test_out_of_place_matches_in_place(engine: str, seed: int, n: int, maxlen: int,
                                       nkeys: int) -> None:
    lens = np.random.default_rng(seed ^ 0xA5A5).integers(0, maxlen + 1, n)
    _check_out_of_place(engine, _make(seed, lens, nkeys, gap=1), seed + 2)


def test_schedule_order_groups_by_length() -> None:
    """AES-NI schedule: a stable permutation by block count (arrival order if already sorted)."""
    if "numba-aesni" not in FAST:
        pytest.skip("no AES-NI engine here")
    from stack.crypto.ccm._aesni import schedule_order

    lens = np.random.default_rng(3).integers(0, 2000, 500)
    order = schedule_order(lens)
    assert sorted(order.tolist()) == list(range(500))
    assert (np.diff((lens[order] + 15) // 16) >= 0).all()
    assert schedule_order(np.sort(lens)).tolist() == list(range(500))
    assert schedule_order(np.array([40, 17, 3, 33, 48])).tolist() == [2, 1, 0, 3, 4]


@pytest.mark.parametrize("engine", FAST)
def test_trusted_path_takes_strided_nonces(engine: str) -> None:
    """``run_in_place_trusted`` (the MAC's path, no validation) with a column slice as nonces."""
    from stack.crypto.ccm import run_in_place_trusted

    rng = np.random.default_rng(17)
    lens = rng.integers(0, 100, 20).astype(np.int64)
    b = _make(17, lens, nkeys=2)
    wide = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    wide[:, 3:16] = b["nonces"]
    ref = dict(b, buf=b["buf"].copy())
    seal_batch(**ref, engine="reference")
    run_in_place_trusted(b["keys"], b["key_index"].astype(np.int64), wide[:, 3:16], b["buf"],
                         b["offsets"], b["lengths"], decrypt=False, engine=engine)
    assert np.array_equal(b["buf"], ref["buf"])
