"""Key hierarchy: Dot16KDF/CMAC/key-wrap vectors, the 16e chains and the 16m regression table."""

from __future__ import annotations

import pytest

from stack import keys
from stack.crypto.primitives import (
    aes_cmac,
    dot16kdf,
    unwrap_key,
    unwrap_key_padded,
    wrap_key,
    wrap_key_padded,
)
from stack.errors import IntegrityError, KeyLengthError, MalformedError, SecurityError
from stack.keys import AkContext
from tests.stack._vectors import h, load, n

CMAC = load("rfc4493_aes_cmac.txt")
WRAP = load("rfc3394_rfc5649_keywrap.txt")
E16 = load("dot16e_key_chains.txt")
M16 = load("relaysec_16m_regression.txt")
HIER = {n(v["cmac_key_count"]): v for k, v in M16.items() if k.startswith("hierarchy")}


@pytest.mark.parametrize("case", sorted(CMAC))
def test_rfc4493_aes_cmac(case: str) -> None:
    v = CMAC[case]
    assert aes_cmac(h(v["key"]), h(v["msg"])) == h(v["tag"])


@pytest.mark.parametrize("case", sorted(WRAP))
def test_key_wrap_vectors(case: str) -> None:
    v = WRAP[case]
    kek, key, wrapped = h(v["kek"]), h(v["key"]), h(v["wrapped"])
    assert wrap_key(kek, key) == wrapped
    assert unwrap_key(kek, wrapped) == key
    if v["variant"] == "5649":
        assert wrap_key_padded(kek, key) == wrapped
        assert unwrap_key_padded(kek, wrapped) == key


@pytest.mark.parametrize("case", sorted(WRAP))
def test_key_wrap_tamper_and_wrong_kek_rejected(case: str) -> None:
    v = WRAP[case]
    kek, wrapped = h(v["kek"]), bytearray(h(v["wrapped"]))
    wrapped[-1] ^= 1
    with pytest.raises(IntegrityError) as e:
        unwrap_key(kek, bytes(wrapped))
    assert e.value.reason == "bad_key_wrap"
    assert kek.hex() not in str(e.value)
    other = bytes(len(kek))
    with pytest.raises(IntegrityError):
        unwrap_key(other, h(v["wrapped"]))


def test_key_wrap_bad_lengths() -> None:
    with pytest.raises(MalformedError):
        unwrap_key(bytes(16), bytes(12))
    with pytest.raises(MalformedError):
        unwrap_key(bytes(16), bytes(8))
    with pytest.raises(KeyLengthError):
        wrap_key(bytes(15), bytes(16))
    with pytest.raises(MalformedError):
        wrap_key(bytes(16), b"")


@pytest.mark.parametrize("case", sorted(E16))
def test_dot16e_chain(case: str) -> None:
    v = E16[case]
    count = n(v.get("cmac_key_count", "0"))
    k = keys.derive_16e_keys(h(v["msk"]), h(v["ss_mac"]), h(v["bsid"]), cmac_key_count=count)
    assert k.pmk == h(v["pmk"])
    assert k.ak == h(v["ak"])
    assert k.akid == h(v["akid"])
    if "cmac_key_u" in v:
        assert k.cmac_key_u == h(v["cmac_key_u"])
        assert k.cmac_key_d == h(v["cmac_key_d"])
        assert k.kek == h(v["kek"])
    text = repr(k) + str(k)
    for secret in (k.pmk, k.ak, k.cmac_key_u, k.cmac_key_d, k.kek):
        assert secret.hex() not in text
    assert k.akid.hex() in text


def test_dot16e_vectors_need_rightmost_truncate() -> None:
    """Guard: a leftmost-Truncate Dot16KDF would not reproduce vector A's AK."""
    v = E16["vector A"]
    pmk = h(v["msk"])[:20]  # leftmost 160 bits
    assert keys.derive_16e_ak(pmk, h(v["ss_mac"]), h(v["bsid"])) != h(v["ak"])


@pytest.mark.parametrize("count", sorted(HIER))
def test_16m_hierarchy_functions(count: int) -> None:
    v = HIER[count]
    pmk = keys.derive_pmk(h(v["msk"]))
    assert pmk == h(v["msk"])[-20:]
    amsid_star = keys.derive_amsid_star(h(v["amsid"]), h(v["nonce_ams"]))
    assert amsid_star == h(v["amsid_star"])
    absid = h(v["absid"])
    ak = keys.derive_ak(pmk, amsid_star, absid, count)
    assert ak == h(v["ak"])
    assert keys.derive_akid(ak, n(v["pmk_sn"]), amsid_star, absid) == h(v["akid"])
    assert keys.derive_cmac_keys(ak) == (h(v["cmac_key_u"]), h(v["cmac_key_d"]))
    assert keys.derive_kek(ak) == h(v["kek"])
    said = n(v["said"])
    assert keys.derive_tek(ak, said, 0) == h(v["tek_counter0"])
    assert keys.derive_tek(ak, said, 1) == h(v["tek_counter1"])


@pytest.mark.parametrize("count", sorted(HIER))
def test_ak_context(count: int) -> None:
    v = HIER[count]
    pmk = keys.derive_pmk(h(v["msk"]))
    ctx = AkContext.derive(
        pmk,
        pmk_sn=n(v["pmk_sn"]),
        amsid_star=h(v["amsid_star"]),
        absid=h(v["absid"]),
        cmac_key_count=count,
    )
    assert ctx.ak == h(v["ak"])
    assert ctx.akid == h(v["akid"])
    assert ctx.cmac_key_u == h(v["cmac_key_u"])
    assert ctx.cmac_key_d == h(v["cmac_key_d"])
    assert ctx.cmac_key(uplink=True) == ctx.cmac_key_u
    assert ctx.cmac_key(uplink=False) == ctx.cmac_key_d
    assert ctx.kek == h(v["kek"])
    assert ctx.tek(n(v["said"]), 1) == h(v["tek_counter1"])
    same = AkContext.from_ak(
        ctx.ak, pmk_sn=0, amsid_star=ctx.amsid_star, absid=ctx.absid, cmac_key_count=count
    )
    assert same == ctx
    text = repr(ctx) + str(ctx) + f"{ctx}" + repr([ctx])
    for secret in (pmk, ctx.ak, ctx.cmac_key_u, ctx.cmac_key_d, ctx.kek, ctx.tek(1, 0)):
        assert secret.hex() not in text
    assert ctx.akid.hex() in text
    with pytest.raises(AttributeError):
        ctx.ak = bytes(20)  # type: ignore[misc]


def test_ak_changes_with_count_and_station() -> None:
    v = HIER[0]
    pmk = keys.derive_pmk(h(v["msk"]))
    star = h(v["amsid_star"])
    a = keys.derive_ak(pmk, star, h(v["absid"]), 0)
    assert a != keys.derive_ak(pmk, star, h(v["absid"]), 1)
    assert a != keys.derive_ak(pmk, star, bytes.fromhex("000000000006"), 0)


def test_ak_transfer_wrap_vector() -> None:
    v = M16["AK Transfer wrap (6.3)"]
    kek_ars = keys.derive_kek(h(v["ak_ars"]))
    assert kek_ars == h(v["kek_ars"])
    assert wrap_key_padded(kek_ars, h(v["ams_ak"])) == h(v["wrapped"])
    assert wrap_key(kek_ars, h(v["ams_ak"])) == h(v["wrapped"])
    assert unwrap_key(kek_ars, h(v["wrapped"])) == h(v["ams_ak"])


def test_eks_of() -> None:
    assert [keys.eks_of(c) for c in range(6)] == [0, 1, 2, 3, 0, 1]
    assert keys.eks_of(0xFFFF) == 3
    with pytest.raises(MalformedError):
        keys.eks_of(0x10000)
    with pytest.raises(MalformedError):
        keys.eks_of(-1)


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda: keys.derive_pmk(bytes(63)), "MSK"),
        (lambda: keys.derive_pmk("x" * 64), "MSK"),
        (lambda: keys.derive_amsid_star(bytes(5), bytes(6)), "AMSID"),
        (lambda: keys.derive_amsid_star(bytes(6), bytes(8)), "NONCE_AMS"),
        (lambda: keys.derive_ak(bytes(16), bytes(6), bytes(6), 0), "PMK"),
        (lambda: keys.derive_ak(bytes(20), bytes(6), bytes(7), 0), "ABSID"),
        (lambda: keys.derive_akid(bytes(16), 0, bytes(6), bytes(6)), "AK"),
        (lambda: keys.derive_cmac_keys(bytes(21)), "AK"),
        (lambda: keys.derive_kek(bytes(0)), "AK"),
        (lambda: keys.derive_tek(bytes(20), 256, 0), "SAID"),
        (lambda: keys.derive_tek(bytes(20), 1, 1 << 16), "COUNTER_TEK"),
        (lambda: keys.derive_ak(bytes(20), bytes(6), bytes(6), -1), "CMAC_KEY_COUNT"),
        (lambda: keys.derive_akid(bytes(20), 16, bytes(6), bytes(6)), "PMK_SN"),
        (lambda: keys.derive_ak(bytes(20), bytes(6), bytes(6), True), "CMAC_KEY_COUNT"),
        (lambda: dot16kdf(bytes(15), b"", 128), "key"),
        (lambda: dot16kdf(bytes(16), b"", 12), "keylength"),
        (lambda: aes_cmac(bytes(20), b""), "CMAC key"),
    ],
)
def test_bad_inputs_name_the_field(call, what: str) -> None:
    with pytest.raises(SecurityError) as e:
        call()
    assert what in str(e.value)
    assert isinstance(e.value, (KeyLengthError, MalformedError))


def test_context_rejects_bad_field_sizes() -> None:
    v = HIER[0]
    ctx = AkContext.from_ak(
        h(v["ak"]), pmk_sn=0, amsid_star=h(v["amsid_star"]), absid=h(v["absid"]), cmac_key_count=0
    )
    with pytest.raises(KeyLengthError, match="KEK"):
        AkContext(**{**ctx.__dict__, "kek": bytes(15)})
    with pytest.raises(MalformedError, match="PMK_SN"):
        AkContext(**{**ctx.__dict__, "pmk_sn": 17})


def test_key_length_error_does_not_echo_key() -> None:
    key = bytes(range(1, 18))
    with pytest.raises(KeyLengthError) as e:
        keys.derive_cmac_keys(key)
    assert key.hex() not in str(e.value)
