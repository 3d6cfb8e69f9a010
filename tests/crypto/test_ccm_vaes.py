"""The VAES lanes: engine selection from CPU features, and the kernels' own properties.

Byte-exactness of every VAES engine against ``cryptography`` runs in ``test_ccm_engines.py`` and
``test_ccm_api.py`` (they cover every available engine); here: which engines are offered for
which features, the fallback and its override, lanes sharing an instruction holding different
keys and lengths, and the pin that keeps numba's cache honest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM as PycaAESCCM
from hypothesis import given, settings
from hypothesis import strategies as st

import stack.crypto as sc
from stack.crypto.ccm import _aesni, engines

VAES = [e for e in sc.available_engines() if e.startswith("numba-vaes")]


def test_aes_ir_pin_matches() -> None:
    """numba caches ``_aesni``'s kernels by the hash of ``_aesni.py`` alone; the pin makes an edit
    of the IR module change ``_aesni.py`` too. Fails until ``AES_IR_SHA256`` is updated."""
    src = Path(_aesni.__file__).with_name("_aes_ir.py").read_bytes()
    assert hashlib.sha256(src).hexdigest() == _aesni.AES_IR_SHA256, (
        "stack/crypto/ccm/_aes_ir.py changed: set AES_IR_SHA256 in _aesni.py to its sha256"
    )


def _status_with(monkeypatch: pytest.MonkeyPatch, host: dict[str, bool],
                 env: dict[str, str] | None = None) -> dict[str, str]:
    """Engine status for a pretend host CPU (nothing is compiled)."""
    import llvmlite.binding as llvm
    from numba.core import config

    monkeypatch.setattr(llvm, "get_host_cpu_features", lambda: host)
    monkeypatch.setattr(config, "CPU_NAME", None)
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    for k in ("RELAYSEC_CCM_NO_VAES", "RELAYSEC_CCM_NO_AESNI"):
        monkeypatch.delenv(k, raising=False)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(engines, "_status", {})
    monkeypatch.setattr(engines, "_fastest_name", None)
    return engines.engine_status()


ZEN3 = {"aes": True, "sse2": True, "avx2": True, "vaes": True, "avx512f": False}
ICELAKE = {"aes": True, "sse2": True, "avx2": True, "vaes": True, "avx512f": True}
HASWELL = {"aes": True, "sse2": True, "avx2": True}


@pytest.mark.parametrize(
    ("host", "env", "offered"),
    [
        (ICELAKE, None, ["numba-vaes512", "numba-vaes256", "numba-aesni"]),
        (ZEN3, None, ["numba-vaes256", "numba-aesni"]),
        (HASWELL, None, ["numba-aesni"]),
        ({"sse2": True}, None, []),
        (ICELAKE, {"RELAYSEC_CCM_NO_VAES": "1"}, ["numba-aesni"]),
        (ICELAKE, {"RELAYSEC_CCM_NO_AESNI": "1"}, []),
        (ICELAKE, {"RELAYSEC_CCM_NO_VAES": "0"}, ["numba-vaes512", "numba-vaes256",
                                                  "numba-aesni"]),
    ],
    ids=["avx512-vaes", "avx2-vaes", "aesni-only", "no-aes", "no-vaes-flag", "no-aesni-flag",
         "flag-0"],
)
def test_engines_offered_by_cpu_features(monkeypatch: pytest.MonkeyPatch, host: dict[str, bool],
                                         env: dict[str, str] | None, offered: list[str]) -> None:
    st_ = _status_with(monkeypatch, host, env)
    fast = [e for e in engines.ENGINES if e.startswith("numba-v") or e == "numba-aesni"]
    assert [e for e in fast if st_[e] == ""] == offered
    for e in fast:
        if e not in offered:
            assert st_[e], f"{e} unavailable without a reason"
    assert engines.available_engines()[0] == (offered[0] if offered else "numba-table")


def test_named_cpu_needs_explicit_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """When numba compiles for a named CPU, only features named in NUMBA_CPU_FEATURES count."""
    from numba.core import config

    _status_with(monkeypatch, ICELAKE)
    monkeypatch.setattr(engines, "_status", {})
    monkeypatch.setattr(config, "CPU_NAME", "icelake-server")
    monkeypatch.setattr(config, "CPU_FEATURES", "+aes,+sse2,+avx2,+vaes")
    st_ = engines.engine_status()
    assert st_["numba-aesni"] == "" and st_["numba-vaes256"] == ""
    assert "avx512f" in st_["numba-vaes512"]


def test_forcing_the_aesni_kernel_by_name() -> None:
    """``engine="numba-aesni"`` runs the AES-NI kernel wherever it is offered, VAES or not."""
    if "numba-aesni" not in sc.available_engines():
        pytest.skip("needs a CPU with AES-NI")
    key, nonce, p = bytes(range(16)), bytes(13), bytes(range(100))
    want = PycaAESCCM(key, tag_length=8).encrypt(nonce, p, None)
    assert sc.seal_many(key, [nonce], [p], engine="numba-aesni") == [want]


@pytest.mark.skipif(not VAES, reason="needs a CPU with VAES")
@pytest.mark.parametrize("engine", VAES)
@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), maxlen=st.sampled_from([48, 700]))
def test_lanes_sharing_an_instruction_keep_their_own_keys(engine: str, seed: int, n: int,
                                                          maxlen: int) -> None:
    """Every item under its own key, lengths mixed: the lanes packed into one VAES instruction
    hold different round keys, counters and MAC states (a mix-up shows as a wrong item)."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, maxlen + 1, n).astype(np.int64)
    keys = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    nonces = rng.integers(0, 256, (n, 13), dtype=np.uint8)
    offs = np.concatenate([[0], np.cumsum(lens + 8)[:-1]]).astype(np.int64)
    buf = rng.integers(0, 256, int(offs[-1] + lens[-1] + 8), dtype=np.uint8)
    kidx = np.arange(n, dtype=np.int64)
    ref = buf.copy()
    sc.seal_batch(keys, kidx, nonces, ref, offs, lens, engine="reference")
    sc.seal_batch(keys, kidx, nonces, buf, offs, lens, engine=engine)
    assert np.array_equal(buf, ref)
    bad = int(rng.integers(0, n))
    buf[int(offs[bad] + rng.integers(0, lens[bad] + 8))] ^= 0x80
    ok = sc.open_batch(keys, kidx, nonces, buf, offs, lens, engine=engine)
    assert ok.tolist() == [i != bad for i in range(n)]


@pytest.mark.skipif(not VAES, reason="needs a CPU with VAES")
@pytest.mark.parametrize("engine", VAES)
def test_long_and_short_runs_of_whole_blocks(engine: str) -> None:
    """Payloads around the fused loop's long-run threshold (keys on the stack or not), and the
    largest CCM payload, in both directions."""
    rng = np.random.default_rng(5)
    key = rng.bytes(16)
    sizes = [16 * 15, 16 * 16, 16 * 16 + 1, 16 * 17 - 1, 65535, 0, 1, 15, 16, 17]
    payloads = [rng.bytes(m) for m in sizes]
    nonces = [rng.bytes(13) for _ in sizes]
    a = PycaAESCCM(key, tag_length=8)
    want = [a.encrypt(nc, p, None) for nc, p in zip(nonces, payloads, strict=True)]
    assert sc.seal_many(key, nonces, payloads, engine=engine) == want
    assert sc.open_many(key, nonces, want, engine=engine) == payloads


@pytest.mark.skipif(not VAES, reason="needs a CPU with VAES")
@pytest.mark.parametrize("engine", VAES)
@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), blocks=st.sampled_from([0, 1, 4, 20, 93]),
       n=st.integers(1, 24), mixed_classes=st.booleans())
def test_last_block_of_every_size_ends_the_fused_run(engine: str, seed: int, blocks: int, n: int,
                                                     mixed_classes: bool) -> None:
    """Groups whose items end with a last block of 1..16 bytes, or all end on a whole block (the
    fused loop runs that block and the tag step itself: with byte-masked loads and stores on
    VAES-512, through a 16-byte window ending at the item's end on VAES-256, whose low bytes
    must be the previous block's *output*), mixed with groups where it cannot (block counts
    differ, some items end a block earlier, items under 16 bytes without byte masks):
    byte-exact against ``cryptography`` out of place and in place, guard bytes around every item
    untouched in both buffers, a tampered item zeroed."""
    rng = np.random.default_rng(seed)
    lens = (16 * blocks + rng.integers(0, 17, n)).astype(np.int64)
    if seed % 3 == 0:  # every item ends on a whole block
        lens = (16 * blocks + 16 * rng.integers(0, 2, n)).astype(np.int64)
    if mixed_classes:
        lens[rng.random(n) < 0.3] += 16 * int(rng.integers(1, 3))
    gap = 5
    offs = np.concatenate([[gap], np.cumsum(lens + 8 + gap)[:-1] + gap]).astype(np.int64)
    size = int(offs[-1] + lens[-1] + 8 + gap)
    guard = np.full(size, 0xA5, np.uint8)
    plain = guard.copy()
    for o, m in zip(offs.tolist(), lens.tolist(), strict=True):
        plain[o : o + m] = rng.integers(0, 256, m, dtype=np.uint8)
    key = rng.integers(0, 256, (1, 16), dtype=np.uint8)
    kidx = np.zeros(n, np.int64)
    nonces = rng.integers(0, 256, (n, 13), dtype=np.uint8)
    a = PycaAESCCM(key.tobytes(), tag_length=8)
    want = guard.copy()
    for i, (o, m) in enumerate(zip(offs.tolist(), lens.tolist(), strict=True)):
        want[o : o + m + 8] = np.frombuffer(
            a.encrypt(nonces[i].tobytes(), plain[o : o + m].tobytes(), None), np.uint8)
    out = guard.copy()
    sc.seal_batch(key, kidx, nonces, plain, offs, lens, out=out, engine=engine)
    assert np.array_equal(out, want)
    inplace = plain.copy()
    sc.seal_batch(key, kidx, nonces, inplace, offs, lens, engine=engine)
    assert np.array_equal(inplace, want)
    bad = int(rng.integers(0, n))
    out[int(offs[bad] + rng.integers(0, lens[bad] + 8))] ^= 0x01
    opened = guard.copy()
    ok = sc.open_batch(key, kidx, nonces, out, offs, lens, out=opened, engine=engine)
    assert ok.tolist() == [i != bad for i in range(n)]
    expect = plain.copy()
    for o, m in zip(offs.tolist(), lens.tolist(), strict=True):
        expect[o + m : o + m + 8] = 0xA5  # open writes the payload only, not the tag's bytes
    expect[offs[bad] : offs[bad] + lens[bad]] = 0
    assert np.array_equal(opened, expect)
