"""The list API's address path (AES-NI, exact ``bytes``): the kernel reads the input ``bytes`` and
writes the result ``bytes`` where they lie. Byte-exact against ``cryptography``, per-item tag
failures, and nothing else in the interpreter written (inputs, the shared ``b""`` / one-byte
objects); the compiled header probe that replaces the Python passes over types, lengths and nonces.
"""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM as PycaAESCCM
from hypothesis import given, settings
from hypothesis import strategies as st

from stack.crypto import available_engines, open_many, seal_many
from stack.crypto.ccm import _layout, lists
from stack.errors import KeyLengthError, MalformedError

pytestmark = pytest.mark.skipif(
    "numba-aesni" not in available_engines() or _layout.BYTES_DATA is None,
    reason="address path needs AES-NI and CPython's bytes layout",
)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls of the address path (so a test fails if it silently took the join path)."""
    calls: list[int] = []
    real = lists._many_addr

    def wrapped(*a: object) -> list[bytes]:
        calls.append(len(a[3]))  # type: ignore[arg-type]
        return real(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(lists, "_many_addr", wrapped)
    return calls


def test_bytes_offset_probe() -> None:
    b = bytes(range(200))
    assert np.frombuffer(b, np.uint8).ctypes.data == id(b) + _layout.BYTES_DATA


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lens=st.lists(st.integers(0, 9100), min_size=1, max_size=40),
    flips=st.sets(st.integers(0, 39), max_size=6),
)
def test_address_path_matches_reference(seed: int, lens: list[int], flips: set[int]) -> None:
    rng = np.random.default_rng(seed)
    key = rng.bytes(16)
    n = len(lens)
    nonces = [rng.bytes(13) for _ in range(n)]
    payloads = [rng.bytes(m) for m in lens]
    keep = [bytes(p) for p in payloads]
    a = PycaAESCCM(key, tag_length=8)
    want = [a.encrypt(nc, p, None) for nc, p in zip(nonces, payloads, strict=True)]
    with pytest.MonkeyPatch.context() as mp:
        calls = _spy(mp)
        sealed = seal_many(key, nonces, payloads, engine="numba-aesni")
        assert sealed == want
        assert payloads == keep  # inputs only read
        bad = list(sealed)
        flipped = sorted(i for i in flips if i < n)
        for i in flipped:
            pos = int(rng.integers(0, len(bad[i])))
            bad[i] = bad[i][:pos] + bytes([bad[i][pos] ^ 0x80]) + bad[i][pos + 1 :]
        got = open_many(key, nonces, bad, engine="numba-aesni")
        # a 1-byte plaintext would need a 1-byte result (possibly a shared object): join path
        assert len(calls) == 1 + (1 not in lens)
    assert [i for i, g in enumerate(got) if g is None] == flipped
    assert all(g == p for g, p in zip(got, payloads, strict=True) if g is not None)
    # results are ordinary, distinct bytes objects with correct hashes
    assert all(type(s) is bytes for s in sealed)
    assert len({id(s) for s in sealed}) == n
    assert {s: i for i, s in enumerate(sealed)} == {w: i for i, w in enumerate(want)}
    assert bytes(1) == b"\x00" and b"\x00"[0:1] == bytes([0]) and len(b"") == 0


def test_address_path_by_default_and_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists of exact ``bytes`` take the address path at any size; lists with other bytes-like
    items, threads > 1 and 1-byte plaintexts to open take the join path; results are the same
    either way."""
    calls = _spy(monkeypatch)
    rng = np.random.default_rng(5)
    key = rng.bytes(16)
    a = PycaAESCCM(key, tag_length=8)

    def check(payloads: list, **kw: object) -> None:
        nonces = [rng.bytes(13) for _ in payloads]
        want = [a.encrypt(nc, bytes(p), None) for nc, p in zip(nonces, payloads, strict=True)]
        assert seal_many(key, nonces, payloads, engine="numba-aesni", **kw) == want
        assert open_many(key, nonces, want, engine="numba-aesni", **kw) == [bytes(p) for p in
                                                                             payloads]

    check([rng.bytes(1500) for _ in range(30)])
    assert calls == [30, 30]
    check([rng.bytes(64) for _ in range(30)])  # small items too (addresses cost ~nothing)
    assert calls == [30, 30, 30, 30]
    check([rng.bytes(1500) for _ in range(29)] + [bytearray(rng.bytes(1500))])
    assert calls == [30, 30, 30, 30, 30]  # the seal had a bytearray; the open gets bytes
    check([rng.bytes(1500) for _ in range(40)], threads=2)
    assert calls == [30, 30, 30, 30, 30]
    check([rng.bytes(9000), b"x", rng.bytes(3000)])
    assert calls == [30, 30, 30, 30, 30, 3]  # seal took it, open of the 1-byte plaintext not
    assert bytes(2) == b"\x00\x00" and bytes(1) == b"\x00"  # no shared object was written


def test_header_probe_reads_types_lengths_and_nonces() -> None:
    """The compiled header probe gives what ``len``/``type``/``b"".join`` would, and declines
    (``None``) for anything but exact ``bytes`` -- the general path then decides."""
    assert _layout.BYTES_WORDS == (1, 2)
    rng = np.random.default_rng(11)
    items = [rng.bytes(m) for m in (0, 1, 13, 700, 9000)]
    nonces = [rng.bytes(13) for _ in items]
    probed = lists._probe(items, nonces)
    assert probed is not None
    lens, nc, ids = probed
    assert lens.tolist() == [len(x) for x in items]
    assert nc.tobytes() == b"".join(nonces)
    assert ids.tolist() == [id(x) for x in items]

    class Sub(bytes):
        pass

    for bad_items, bad_nonces in (
        ([*items[:4], bytearray(items[4])], nonces),
        ([*items[:4], memoryview(items[4])], nonces),
        ([*items[:4], Sub(items[4])], nonces),
        (items, [*nonces[:4], bytearray(nonces[4])]),
        (items, [*nonces[:4], Sub(nonces[4])]),
        (items, [*nonces[:4], nonces[4][:12]]),
    ):
        assert lists._probe(bad_items, bad_nonces) is None


def test_lists_the_probe_declines_still_work_or_fail_clearly() -> None:
    rng = np.random.default_rng(12)
    key = rng.bytes(16)
    a = PycaAESCCM(key, tag_length=8)
    payloads = [rng.bytes(1500) for _ in range(20)]
    nonces = [rng.bytes(13) for _ in payloads]
    want = [a.encrypt(nc, p, None) for nc, p in zip(nonces, payloads, strict=True)]
    mixed = [bytearray(p) if i % 3 == 0 else p for i, p in enumerate(payloads)]
    nonce_forms = [bytearray(nc) if i % 4 == 0 else nc for i, nc in enumerate(nonces)]
    assert seal_many(key, nonce_forms, mixed, engine="numba-aesni") == want
    assert open_many(key, nonce_forms, want, engine="numba-aesni") == payloads
    with pytest.raises(KeyLengthError, match="nonce 3 must be 13 bytes"):
        seal_many(key, [*nonces[:3], nonces[3][:12], *nonces[4:]], payloads, engine="numba-aesni")
    with pytest.raises(MalformedError, match="20 nonces for 19 items"):
        seal_many(key, nonces, payloads[:19], engine="numba-aesni")
    with pytest.raises(MalformedError, match="bytes-like"):
        seal_many(key, nonces, [*payloads[:19], 12345], engine="numba-aesni")  # type: ignore[list-item]


def test_new_bytes_are_fresh_uninitialized_results_with_exact_refcounts() -> None:
    """The compiled allocation of result objects: right sizes and addresses, a list the caller
    alone holds, distinct objects (never the shared one-byte ones), and a clean MemoryError."""
    import sys

    sizes = np.array([0, 1, 1, 13, 600, 70000], np.int64)
    objs, at = _layout.new_bytes(sizes)
    assert [len(b) for b in objs] == sizes.tolist()
    assert at.tolist() == [id(b) for b in objs]
    assert all(type(b) is bytes for b in objs)
    control = [bytes(13)]  # what Python itself makes: the same counts, nothing leaked
    assert sys.getrefcount(objs) == sys.getrefcount(control)
    assert sys.getrefcount(objs[3]) == sys.getrefcount(control[0])
    single = b"\x00?"[:1]  # CPython's shared one-byte object
    assert objs[1] is not objs[2] and objs[1] is not single and objs[2] is not single
    with pytest.raises(MemoryError):
        _layout.new_bytes(np.array([5, 1 << 62], np.int64))
    assert bytes(3) == b"\x00\x00\x00"  # the interpreter carries on (no error left set)
