"""The batch AES-CCM API: published vectors, input validation, list and class forms.

Every test that touches an engine runs on each engine available on this machine.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM as PycaAESCCM

import stack.crypto as sc
from stack.crypto import AESCCM, available_engines, open_batch, open_many, seal_batch, seal_many
from stack.errors import IntegrityError, KeyLengthError, MalformedError
from tests.crypto._cavp import load, load_vector_file

VECTORS = os.path.join(os.path.dirname(__file__), "..", "vectors")
ENGINES = available_engines()


def _published() -> list[tuple[str, bytes, bytes, bytes, bytes, bytes, bytes]]:
    return load_vector_file(os.path.join(VECTORS, "ccm_rfc3610.txt")) + load_vector_file(
        os.path.join(VECTORS, "ccm_sp800_38c.txt")
    )


@pytest.mark.parametrize("row", _published(), ids=lambda r: r[0])
def test_published_vectors_class(row: tuple) -> None:
    _name, key, nonce, aad, pt, ct, tag = row
    c = AESCCM(key, tag_length=len(tag))
    assert c.encrypt(nonce, pt, aad) == ct + tag
    assert c.decrypt(nonce, ct + tag, aad) == pt
    bad = bytearray(ct + tag)
    bad[0] ^= 1
    with pytest.raises(IntegrityError) as ei:
        c.decrypt(nonce, bytes(bad), aad)
    assert ei.value.reason == "bad_icv"


def _batchable(name: str) -> list:
    return [c for c in load(name) if not c.aad and len(c.nonce) == 13 and len(c.key) == 16]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("tag_len", [4, 16])
def test_cavp_dvpt_vadt_batch(engine: str, tag_len: int) -> None:
    """All no-AAD, 13-byte-nonce CAVP decryption cases of one tag length, in one batch call."""
    cases = [c for c in _batchable("DVPT128.rsp") + _batchable("VADT128.rsp")]
    cases = [c for c in cases if c.tag_len == tag_len]
    assert len(cases) >= 20
    keys = np.array([list(c.key) for c in cases], np.uint8)
    nonces = np.array([list(c.nonce) for c in cases], np.uint8)
    lens = np.array([len(c.ct) - tag_len for c in cases], np.int64)
    offs = np.concatenate([[0], np.cumsum(lens + tag_len)[:-1]]).astype(np.int64)
    buf = np.frombuffer(b"".join(c.ct for c in cases), np.uint8).copy()
    kidx = np.arange(len(cases))
    ok = open_batch(keys, kidx, nonces, buf, offs, lens, engine=engine, tag_len=tag_len)
    assert ok.tolist() == [c.passes for c in cases]
    for i, c in enumerate(cases):
        got = buf[offs[i] : offs[i] + lens[i]].tobytes()
        assert got == (c.payload if c.passes else bytes(int(lens[i])))
    # Re-seal the passing ones and compare with the published ciphertext.
    good = [i for i, c in enumerate(cases) if c.passes]
    buf2 = np.zeros(int(offs[-1] + lens[-1] + tag_len), np.uint8)
    for i in good:
        buf2[offs[i] : offs[i] + lens[i]] = np.frombuffer(cases[i].payload, np.uint8)
    g = np.array(good)
    seal_batch(keys, kidx[g], nonces[g], buf2, offs[g], lens[g], engine=engine, tag_len=tag_len)
    for i in good:
        assert buf2[offs[i] : offs[i] + lens[i] + tag_len].tobytes() == cases[i].ct


@pytest.mark.parametrize("row", _published()[:3], ids=lambda r: r[0])
def test_class_roundtrip_matches_cavp_all(row: tuple) -> None:
    del row
    for c in load("DVPT128.rsp"):
        a = AESCCM(c.key, tag_length=c.tag_len)
        if c.passes:
            assert a.decrypt(c.nonce, c.ct, c.aad) == c.payload
            assert a.encrypt(c.nonce, c.payload, c.aad) == c.ct
        else:
            with pytest.raises(IntegrityError):
                a.decrypt(c.nonce, c.ct, c.aad)


def _batch(rng: np.random.Generator, lens: list[int], nkeys: int = 2) -> dict:
    n = len(lens)
    lens_a = np.array(lens, np.int64)
    offs = np.concatenate([[0], np.cumsum(lens_a + 8 + 3)[:-1]]).astype(np.int64)  # 3-byte gaps
    buf = rng.integers(0, 256, int(offs[-1] + lens_a[-1] + 8 + 5), dtype=np.uint8)
    return {
        "keys": rng.integers(0, 256, (nkeys, 16), dtype=np.uint8),
        "key_index": rng.integers(0, nkeys, n),
        "nonces": rng.integers(0, 256, (n, 13), dtype=np.uint8),
        "buf": buf,
        "offsets": offs,
        "lengths": lens_a,
    }


def _pyca_seal(b: dict, i: int, pt: bytes) -> bytes:
    key = b["keys"][b["key_index"][i]].tobytes()
    return PycaAESCCM(key, tag_length=8).encrypt(b["nonces"][i].tobytes(), pt, None)


@pytest.mark.parametrize("engine", ENGINES)
def test_seal_open_batch_matches_cryptography(engine: str) -> None:
    rng = np.random.default_rng(1)
    b = _batch(rng, [0, 1, 15, 16, 17, 31, 32, 33, 64, 100, 1500, 9000], nkeys=3)
    before = b["buf"].copy()
    seal_batch(**b, engine=engine)
    gaps = np.ones(before.shape, bool)
    for i, (o, ln) in enumerate(zip(b["offsets"], b["lengths"], strict=True)):
        want = _pyca_seal(b, i, before[o : o + ln].tobytes())
        assert b["buf"][o : o + ln + 8].tobytes() == want
        gaps[o : o + ln + 8] = False
    assert np.array_equal(b["buf"][gaps], before[gaps]), "bytes between items were touched"
    ok = open_batch(**b, engine=engine)
    assert ok.all()
    for o, ln in zip(b["offsets"], b["lengths"], strict=True):
        assert np.array_equal(b["buf"][o : o + ln], before[o : o + ln])


@pytest.mark.parametrize("engine", ENGINES)
def test_open_batch_tamper_is_per_item_and_zeroes(engine: str) -> None:
    rng = np.random.default_rng(2)
    b = _batch(rng, [40, 0, 300, 16, 77], nkeys=2)
    plain = b["buf"].copy()
    seal_batch(**b, engine=engine)
    o, ln = b["offsets"], b["lengths"]
    b["buf"][o[0] + 5] ^= 0x80  # ciphertext bit
    b["buf"][o[1] + ln[1]] ^= 1  # tag of the empty item
    b["buf"][o[3] + ln[3] + 7] ^= 1  # last tag byte
    ok = open_batch(**b, engine=engine)
    assert ok.tolist() == [False, False, True, False, True]
    for i in range(5):
        got = b["buf"][o[i] : o[i] + ln[i]]
        if ok[i]:
            assert np.array_equal(got, plain[o[i] : o[i] + ln[i]])
        else:
            assert not got.any()


@pytest.mark.parametrize("engine", ENGINES)
def test_wrong_key_or_nonce_fails(engine: str) -> None:
    rng = np.random.default_rng(3)
    b = _batch(rng, [50, 50], nkeys=2)
    b["key_index"] = np.array([0, 1])
    seal_batch(**b, engine=engine)
    b2 = dict(b, key_index=np.array([1, 1]))
    b2["nonces"] = b["nonces"].copy()
    b2["nonces"][1, 12] ^= 1
    assert open_batch(**b2, engine=engine).tolist() == [False, False]


@pytest.mark.parametrize("engine", ENGINES)
def test_many_roundtrip_and_tamper(engine: str) -> None:
    rng = np.random.default_rng(4)
    key = rng.bytes(16)
    nonces = [rng.bytes(13) for _ in range(20)]
    payloads = [rng.bytes(int(n)) for n in rng.integers(0, 200, 20)]
    sealed = seal_many(key, nonces, payloads, engine=engine)
    a = PycaAESCCM(key, tag_length=8)
    assert sealed == [a.encrypt(n, p, None) for n, p in zip(nonces, payloads, strict=True)]
    bad = list(sealed)
    bad[3] = bytes([bad[3][0] ^ 1]) + bad[3][1:]
    got = open_many(bytearray(key), nonces, bad, engine=engine)
    assert got[3] is None
    assert [g for i, g in enumerate(got) if i != 3] == [p for i, p in enumerate(payloads) if i != 3]
    assert seal_many(key, [], []) == [] and open_many(key, [], []) == []
    cls = AESCCM(key, engine=engine)
    assert cls.encrypt_many(nonces, payloads) == sealed
    assert cls.decrypt_many(nonces, sealed) == payloads


def test_default_engine_listed() -> None:
    assert "reference" in available_engines()
    assert sc.default_engine() in available_engines()
    st = sc.engine_status()
    assert set(st) == {"reference", "numba-aesni", "numba-table", "numba-vaes256",
                       "numba-vaes512"}
    from stack.crypto.ccm import ENGINES as ALL

    assert set(ALL) == set(st)


# ------------------------------------------------------------------ validation


def _good() -> dict:
    return _batch(np.random.default_rng(5), [10, 20])


@pytest.mark.parametrize(
    ("change", "exc"),
    [
        ({"keys": np.zeros((1, 24), np.uint8)}, KeyLengthError),
        ({"keys": np.zeros((1, 16), np.int8)}, MalformedError),
        ({"keys": np.zeros(16, np.uint8)}, MalformedError),
        ({"keys": np.zeros((0, 16), np.uint8)}, MalformedError),
        ({"keys": b"k" * 16}, MalformedError),
        ({"nonces": np.zeros((2, 12), np.uint8)}, KeyLengthError),
        ({"nonces": np.zeros((3, 13), np.uint8)}, MalformedError),
        ({"buf": np.zeros((2, 40), np.uint8)}, MalformedError),
        ({"buf": np.zeros(100, np.int16)}, MalformedError),
        ({"buf": np.zeros(200, np.uint8)[::2]}, MalformedError),
        ({"offsets": np.array([0, 10**9])}, MalformedError),
        ({"offsets": np.array([-1, 30])}, MalformedError),
        ({"offsets": np.array([0.0, 30.0])}, MalformedError),
        ({"offsets": np.array([0, 12])}, MalformedError),  # overlap: item 0 ends at 18
        ({"lengths": np.array([10, 70000])}, MalformedError),
        ({"lengths": np.array([-1, 20])}, MalformedError),
        ({"lengths": np.array([10])}, MalformedError),
        ({"key_index": np.array([0, 2])}, MalformedError),
        ({"key_index": np.array([-1, 0])}, MalformedError),
        ({"key_index": [0, 0]}, MalformedError),
    ],
)
def test_validation(change: dict, exc: type) -> None:
    b = _good()
    b.update(change)
    before = b["buf"].copy() if isinstance(b["buf"], np.ndarray) else None
    with pytest.raises(exc):
        seal_batch(**b)
    with pytest.raises(exc):
        open_batch(**b)
    if before is not None:
        assert np.array_equal(b["buf"], before), "buf touched before validation failed"


def test_validation_options() -> None:
    b = _good()
    with pytest.raises(MalformedError):
        seal_batch(**b, threads=0)
    with pytest.raises(MalformedError):
        seal_batch(**b, threads=True)
    with pytest.raises(MalformedError):
        seal_batch(**b, engine="openssl")
    with pytest.raises(KeyLengthError):
        seal_batch(**b, tag_len=5)
    ro = b["buf"].copy()
    ro.flags.writeable = False
    with pytest.raises(MalformedError):
        seal_batch(**dict(b, buf=ro))


def test_list_and_class_validation() -> None:
    with pytest.raises(KeyLengthError):
        seal_many(b"k" * 15, [b"n" * 13], [b""])
    with pytest.raises(KeyLengthError):
        seal_many(b"k" * 16, [b"n" * 12], [b""])
    with pytest.raises(MalformedError):
        seal_many(b"k" * 16, [b"n" * 13], [b"", b""])
    with pytest.raises(MalformedError):
        seal_many(b"k" * 16, [b"n" * 13], ["text"])  # type: ignore[list-item]
    with pytest.raises(MalformedError):
        open_many(b"k" * 16, [b"n" * 13], [b"short"])
    with pytest.raises(KeyLengthError):
        AESCCM(b"k" * 17)
    with pytest.raises(KeyLengthError):
        AESCCM(b"k" * 16, tag_length=3)
    c = AESCCM(b"\x42" * 16)
    assert "42" not in repr(c) and "B" not in repr(c)
    with pytest.raises(KeyLengthError):
        c.encrypt(b"n" * 6, b"x")
    with pytest.raises(MalformedError):
        c.decrypt(b"n" * 13, b"1234567")
    assert c.encrypt(b"n" * 13, b"x", None) == c.encrypt(b"n" * 13, b"x", b"")
    assert c.encrypt(bytearray(b"n" * 13), bytearray(b"x")) == c.encrypt(b"n" * 13, b"x")
    with pytest.raises(MalformedError):
        AESCCM(b"k" * 32).encrypt_many([b"n" * 13], [b"x"])


def test_empty_batch() -> None:
    b = _good()
    e = np.zeros(0, np.int64)
    seal_batch(b["keys"], e, np.zeros((0, 13), np.uint8), b["buf"], e, e)
    assert open_batch(b["keys"], e, np.zeros((0, 13), np.uint8), b["buf"], e, e).shape == (0,)


@pytest.mark.parametrize("engine", ENGINES)
def test_items_in_any_buffer_order(engine: str) -> None:
    """Offsets need not increase (only the written regions must be disjoint)."""
    rng = np.random.default_rng(9)
    b = _batch(rng, [30, 5, 70, 0, 16], nkeys=2)
    perm = np.array([3, 0, 4, 2, 1])
    shuffled = {k: (v[perm] if k != "keys" and k != "buf" else v) for k, v in b.items()}
    ref = dict(b, buf=b["buf"].copy())
    seal_batch(**ref, engine="reference")
    seal_batch(**shuffled, engine=engine)
    assert np.array_equal(shuffled["buf"], ref["buf"])
    assert open_batch(**shuffled, engine=engine).all()


def _out_case() -> dict:
    b = _good()
    b["out"] = np.zeros(100, np.uint8)
    b["out_offsets"] = np.array([0, 50])
    return b


@pytest.mark.parametrize(
    ("change", "exc", "match"),
    [
        ({"out": np.zeros(100, np.int8)}, MalformedError, "out must be a 1-D uint8"),
        ({"out": np.zeros(200, np.uint8)[::2]}, MalformedError, "C-contiguous"),
        ({"out": np.zeros(20, np.uint8)}, MalformedError, "past the end of out"),
        ({"out_offsets": np.array([0, 5])}, MalformedError, "overlap in out"),
        ({"out_offsets": np.array([60, 0])}, None, None),  # any order is fine when disjoint
        ({"out_offsets": np.array([0, 95])}, MalformedError, "past the end of out"),
        ({"out_offsets": np.array([0, -50])}, MalformedError, ">= 0"),
        ({"out_offsets": np.array([0])}, MalformedError, "2 entries"),
        ({"out": None}, MalformedError, "out_offsets needs out"),
    ],
)
def test_validation_out(change: dict, exc: type | None, match: str | None) -> None:
    b = _out_case()
    b.update(change)
    buf0 = b["buf"].copy()
    out0 = b["out"].copy() if isinstance(b["out"], np.ndarray) else None
    if exc is None:
        seal_batch(**b)
        assert open_batch(**dict(b, buf=b["out"].copy(), offsets=b["out_offsets"],
                                 out=b["buf"].copy(), out_offsets=b["offsets"])).all()
        return
    with pytest.raises(exc, match=match):
        seal_batch(**b)
    with pytest.raises(exc, match=match):
        open_batch(**b)
    assert np.array_equal(b["buf"], buf0)
    if out0 is not None:
        assert np.array_equal(b["out"], out0), "out touched before validation failed"


def test_validation_out_aliasing_and_readonly() -> None:
    b = _good()
    with pytest.raises(MalformedError, match="share memory"):
        seal_batch(**b, out=b["buf"])
    with pytest.raises(MalformedError, match="share memory"):
        seal_batch(**b, out=b["buf"][10:])
    ro = np.zeros(100, np.uint8)
    ro.flags.writeable = False
    with pytest.raises(MalformedError, match="writeable"):
        seal_batch(**b, out=ro)
    # A read-only input is fine when the output goes elsewhere, not in place.
    src = b["buf"].copy()
    src.flags.writeable = False
    seal_batch(**dict(b, buf=src), out=np.zeros(100, np.uint8))
    with pytest.raises(MalformedError, match="writeable"):
        seal_batch(**dict(b, buf=src))


def test_open_out_of_place_needs_room_for_tag_in_input() -> None:
    """Opening reads the tag after each ciphertext: the input must hold it."""
    b = _good()
    short = b["buf"][: int(b["offsets"][1] + b["lengths"][1]) + 4].copy()
    with pytest.raises(MalformedError, match="past the end of buf"):
        open_batch(**dict(b, buf=short), out=np.zeros(100, np.uint8))
    # Sealing out of place reads the payload only, so the same input is long enough.
    seal_batch(**dict(b, buf=short), out=np.zeros(100, np.uint8))


@pytest.mark.parametrize("engine", ENGINES)
def test_many_across_chunks(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list API works in chunks: results, order and per-item failures survive the seams."""
    from stack.crypto.ccm import lists

    monkeypatch.setattr(lists, "LIST_CHUNK", 300)
    monkeypatch.setattr(lists, "LIST_MIN_ITEMS", 3)
    rng = np.random.default_rng(21)
    key = rng.bytes(16)
    n = 41
    nonces = [rng.bytes(13) for _ in range(n)]
    payloads = [rng.bytes(int(x)) for x in rng.integers(0, 400, n)]
    payloads[7] = b""
    payloads[8] = bytearray(payloads[8])  # any bytes-like input
    a = PycaAESCCM(key, tag_length=8)
    want = [a.encrypt(nc, bytes(p), None) for nc, p in zip(nonces, payloads, strict=True)]
    assert seal_many(key, nonces, payloads, engine=engine) == want
    bad = list(want)
    for i in (0, 3, 20, 40):
        bad[i] = bad[i][:-1] + bytes([bad[i][-1] ^ 0x01])
    got = open_many(key, nonces, bad, engine=engine)
    assert [i for i, g in enumerate(got) if g is None] == [0, 3, 20, 40]
    assert all(g == bytes(p) for g, p in zip(got, payloads, strict=True) if g is not None)


def test_many_validation_more() -> None:
    key, nc = b"k" * 16, [b"n" * 13]
    with pytest.raises(MalformedError, match="longer than 65535"):
        seal_many(key, nc, [bytes(70000)])
    with pytest.raises(MalformedError, match="itemsize"):
        seal_many(key, nc, [memoryview(np.zeros(4, np.int32))])
    with pytest.raises(MalformedError, match="threads"):
        seal_many(key, nc, [b"x"], threads=0)
    with pytest.raises(MalformedError, match="unknown CCM engine"):
        open_many(key, nc, [bytes(20)], engine="nope")
    with pytest.raises(MalformedError, match="bytes-like"):
        open_many(key, nc, [12345])  # type: ignore[list-item]


def test_one_single_message_ccm() -> None:
    """The MPDU codec, ``stack.crypto`` and ``primitives`` all use the one AEAD class's form."""
    import stack.mpdu as mpdu
    from stack.crypto import ccm, primitives
    from stack.crypto.ccm import aead

    for f in (mpdu.ccm_encrypt, primitives.ccm_encrypt, sc.ccm_encrypt, ccm.ccm_encrypt):
        assert f is aead.ccm_encrypt
    for f in (mpdu.ccm_decrypt, primitives.ccm_decrypt, sc.ccm_decrypt, ccm.ccm_decrypt):
        assert f is aead.ccm_decrypt


def test_class_refuses_non_bytes_payload_and_aad() -> None:
    """An int where bytes belong is refused, not turned into that many zero bytes."""
    c = AESCCM(bytes(16))
    with pytest.raises(MalformedError, match="CCM payload"):
        c.encrypt(bytes(13), 5)  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="CCM AAD"):
        c.encrypt(bytes(13), b"x", 3)  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="CCM input"):
        c.decrypt(bytes(13), "x" * 20)  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="too long"):
        AESCCM(bytes(16)).encrypt(bytes(13), bytes(1 << 16))


def test_single_message_path_imports_no_numba() -> None:
    """The MPDU codec's CCM runs on ``cryptography`` alone: no engine probing, no numba import."""
    import subprocess
    import sys

    code = ("import sys, stack.mpdu as m; from stack.crypto.ccm import AESCCM\n"
            "m.ccm_decrypt(bytes(16), bytes(13), m.ccm_encrypt(bytes(16), bytes(13), b'x'))\n"
            "AESCCM(bytes(16), engine='reference').encrypt(bytes(13), b'y')\n"
            "print('numba' in sys.modules)")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "False"
