"""802.16m (PKMv3) key hierarchy, plus the 802.16e (PKMv2) chain used to check Dot16KDF.

One pure function per key; each docstring names the clause and restates the formula of the spec
digest (``shared/spec/security.md`` §2). All integers are big-endian, ``||`` is concatenation,
``Truncate`` keeps the rightmost bits (digest §1.1, verified against the public 16e vectors).

Key material is held in :class:`AkContext` / :class:`Dot16eKeys`, frozen dataclasses whose ``repr``
shows identifiers (AKID, counters) and never key bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack.crypto.primitives import aes_ecb_encrypt, dot16kdf
from stack.errors import KeyLengthError, require_uint

MSK_LEN = 64
PMK_LEN = 20
AK_LEN = 20
AKID_LEN = 8
MAC_ADDR_LEN = 6
"""Length of AMSID, AMSID*, ABSID, SS MAC address and BSID (48 bits)."""
NONCE_AMS_LEN = 6
CMAC_KEY_LEN = 16
KEK_LEN = 16
TEK_LEN = 16


def _need_bytes(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise KeyLengthError(f"{what} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != length:
        raise KeyLengthError(f"{what} must be {length} bytes, got {len(value)}")
    return value


# ---------------------------------------------------------------------------------------------
# 802.16m PKMv3 (802.16m-2011 16.2.5.2; digest §2.1)
# ---------------------------------------------------------------------------------------------


def derive_pmk(msk: bytes) -> bytes:
    """PMK = Truncate(MSK, 160): the last 20 bytes of the 64-byte MSK.

    802.16m-2011 16.2.5.2.1 (same rule as 802.16-2009 7.2.2.2.1); digest §2.1.
    """
    msk = _need_bytes(msk, MSK_LEN, "MSK")
    return msk[-PMK_LEN:]


def derive_amsid_star(amsid: bytes, nonce_ams: bytes) -> bytes:
    """AMSID* = Dot16KDF(AMSID || 80 zero bits, NONCE_AMS, 48) — the AMS privacy identifier.

    802.16m-2011 16.2.5.2.1 (AMS identity privacy); digest §2.1. The 48-bit AMS MAC address is
    padded to a 128-bit CMAC key; NONCE_AMS (6 bytes) is the astring.
    """
    amsid = _need_bytes(amsid, MAC_ADDR_LEN, "AMSID")
    nonce_ams = _need_bytes(nonce_ams, NONCE_AMS_LEN, "NONCE_AMS")
    return dot16kdf(amsid + bytes(10), nonce_ams, 48)


def derive_ak(pmk: bytes, amsid_star: bytes, absid: bytes, cmac_key_count: int) -> bytes:
    """AK = Dot16KDF(PMK, AMSID* || ABSID || CMAC_KEY_COUNT || "AK", 160).

    802.16m-2011 16.2.5.2.1; digest §2.1. CMAC_KEY_COUNT is 16 bits big-endian. ABSID is the 48-bit
    id of the station the AMS is attached to (for an AMS behind an access RS: that RS's id, §6.5).
    """
    pmk = _need_bytes(pmk, PMK_LEN, "PMK")
    amsid_star = _need_bytes(amsid_star, MAC_ADDR_LEN, "AMSID*")
    absid = _need_bytes(absid, MAC_ADDR_LEN, "ABSID")
    count = require_uint(cmac_key_count, 16, "CMAC_KEY_COUNT")
    return dot16kdf(pmk, amsid_star + absid + count.to_bytes(2, "big") + b"AK", 160)


def derive_akid(ak: bytes, pmk_sn: int, amsid_star: bytes, absid: bytes) -> bytes:
    """AKID = Dot16KDF(AK, (0b0000 || PMK_SN) || AMSID* || ABSID || "AK", 64).

    Project default [D] (digest §7.2): the 802.16-2009 7.2.2.2.3 form with the 16m identifiers.
    PMK_SN is 4 bits, carried in the low nibble of one byte.
    """
    ak = _need_bytes(ak, AK_LEN, "AK")
    sn = require_uint(pmk_sn, 4, "PMK_SN")
    amsid_star = _need_bytes(amsid_star, MAC_ADDR_LEN, "AMSID*")
    absid = _need_bytes(absid, MAC_ADDR_LEN, "ABSID")
    return dot16kdf(ak, bytes([sn]) + amsid_star + absid + b"AK", 64)


def derive_cmac_keys(ak: bytes) -> tuple[bytes, bytes]:
    """CMAC_KEY_U || CMAC_KEY_D = Dot16KDF(AK, "CMAC_KEYS", 256); U = first 16 B, D = last 16 B.

    802.16m-2011 16.2.5.2.2; digest §2.1.
    """
    ak = _need_bytes(ak, AK_LEN, "AK")
    out = dot16kdf(ak, b"CMAC_KEYS", 256)
    return out[:CMAC_KEY_LEN], out[CMAC_KEY_LEN:]


def derive_kek(ak: bytes) -> bytes:
    """KEK = Dot16KDF(AK, "KEK", 128).

    Project default [D] (digest §7.3): 16m unicast TEKs are derived, so the KEK serves group keys
    and the relay AK Transfer (KEK_ARS is this KEK of the ARS's own AK).
    """
    ak = _need_bytes(ak, AK_LEN, "AK")
    return dot16kdf(ak, b"KEK", 128)


def derive_tek(ak: bytes, said: int, counter_tek: int) -> bytes:
    """TEK = Dot16KDF(AK, SAID || COUNTER_TEK || "TEK", 128).

    802.16m-2011 16.2.5.2.3; digest §2.1. Widths: SAID 1 byte [R], COUNTER_TEK 2 bytes
    big-endian [D].
    """
    ak = _need_bytes(ak, AK_LEN, "AK")
    said = require_uint(said, 8, "SAID")
    counter = require_uint(counter_tek, 16, "COUNTER_TEK")
    return dot16kdf(ak, bytes([said]) + counter.to_bytes(2, "big") + b"TEK", 128)


def eks_of(counter_tek: int) -> int:
    """EKS = COUNTER_TEK mod 4: the 2-bit index of a TEK among an SA's live TEKs [D, §2.1]."""
    return require_uint(counter_tek, 16, "COUNTER_TEK") % 4


@dataclass(frozen=True, repr=False)
class AkContext:
    """One AK and everything derived from it (digest §2.1): AKID, CMAC_KEY_U/D, KEK.

    Build it with :meth:`derive` (from the PMK, at the authenticator and the AMS) or
    :meth:`from_ak` (from a transferred AK, at the access RS). ``repr``/``str`` show the AKID and
    the public identifiers, never a key.
    """

    ak: bytes
    akid: bytes
    pmk_sn: int
    amsid_star: bytes
    absid: bytes
    cmac_key_count: int
    cmac_key_u: bytes
    cmac_key_d: bytes
    kek: bytes

    def __post_init__(self) -> None:
        _need_bytes(self.ak, AK_LEN, "AK")
        _need_bytes(self.akid, AKID_LEN, "AKID")
        require_uint(self.pmk_sn, 4, "PMK_SN")
        _need_bytes(self.amsid_star, MAC_ADDR_LEN, "AMSID*")
        _need_bytes(self.absid, MAC_ADDR_LEN, "ABSID")
        require_uint(self.cmac_key_count, 16, "CMAC_KEY_COUNT")
        _need_bytes(self.cmac_key_u, CMAC_KEY_LEN, "CMAC_KEY_U")
        _need_bytes(self.cmac_key_d, CMAC_KEY_LEN, "CMAC_KEY_D")
        _need_bytes(self.kek, KEK_LEN, "KEK")

    @classmethod
    def from_ak(
        cls, ak: bytes, *, pmk_sn: int, amsid_star: bytes, absid: bytes, cmac_key_count: int
    ) -> AkContext:
        """Context of a known AK (e.g. from a PKMv3 AK Transfer): derives AKID and lower keys."""
        ak = _need_bytes(ak, AK_LEN, "AK")
        u, d = derive_cmac_keys(ak)
        return cls(
            ak=ak,
            akid=derive_akid(ak, pmk_sn, amsid_star, absid),
            pmk_sn=pmk_sn,
            amsid_star=bytes(amsid_star),
            absid=bytes(absid),
            cmac_key_count=cmac_key_count,
            cmac_key_u=u,
            cmac_key_d=d,
            kek=derive_kek(ak),
        )

    @classmethod
    def derive(
        cls, pmk: bytes, *, pmk_sn: int, amsid_star: bytes, absid: bytes, cmac_key_count: int
    ) -> AkContext:
        """AK context from the PMK: AK = Dot16KDF(PMK, AMSID*||ABSID||CMAC_KEY_COUNT||"AK", 160)."""
        ak = derive_ak(pmk, amsid_star, absid, cmac_key_count)
        return cls.from_ak(
            ak, pmk_sn=pmk_sn, amsid_star=amsid_star, absid=absid, cmac_key_count=cmac_key_count
        )

    def cmac_key(self, *, uplink: bool) -> bytes:
        """CMAC_KEY_U for uplink (towards the ABS / serving station), CMAC_KEY_D for downlink."""
        return self.cmac_key_u if uplink else self.cmac_key_d

    def tek(self, said: int, counter_tek: int) -> bytes:
        """TEK(SAID, COUNTER_TEK) of this AK (see :func:`derive_tek`)."""
        return derive_tek(self.ak, said, counter_tek)

    def __repr__(self) -> str:
        return (
            f"AkContext(akid={self.akid.hex()}, pmk_sn={self.pmk_sn}, "
            f"amsid_star={self.amsid_star.hex()}, absid={self.absid.hex()}, "
            f"cmac_key_count={self.cmac_key_count})"
        )

    __str__ = __repr__


# ---------------------------------------------------------------------------------------------
# 802.16-2009 PKMv2 ("16e"), EAP-only, CMAC mode (7.2.2.2; digest §2.2). Kept to reproduce the
# public 16e derivation vectors (digest §8.4), which are the only external check of Dot16KDF.
# ---------------------------------------------------------------------------------------------


def derive_16e_ak(pmk: bytes, ss_mac: bytes, bsid: bytes) -> bytes:
    """16e AK = Dot16KDF(PMK, SS_MAC || BSID || "AK", 160) (802.16-2009 7.2.2.2.2, EAP-only)."""
    pmk = _need_bytes(pmk, PMK_LEN, "PMK")
    ss_mac = _need_bytes(ss_mac, MAC_ADDR_LEN, "SS MAC address")
    bsid = _need_bytes(bsid, MAC_ADDR_LEN, "BSID")
    return dot16kdf(pmk, ss_mac + bsid + b"AK", 160)


def derive_16e_akid(ak: bytes, pmk_sn: int, ss_mac: bytes, bsid: bytes) -> bytes:
    """16e AKID = Dot16KDF(AK, (0b0000 || PMK_SN) || SS_MAC || BSID || "AK", 64) (7.2.2.2.3)."""
    ak = _need_bytes(ak, AK_LEN, "AK")
    sn = require_uint(pmk_sn, 4, "PMK_SN")
    ss_mac = _need_bytes(ss_mac, MAC_ADDR_LEN, "SS MAC address")
    bsid = _need_bytes(bsid, MAC_ADDR_LEN, "BSID")
    return dot16kdf(ak, bytes([sn]) + ss_mac + bsid + b"AK", 64)


def derive_16e_cmac_keys_kek(
    ak: bytes, ss_mac: bytes, bsid: bytes, cmac_key_count: int
) -> tuple[bytes, bytes, bytes]:
    """16e (CMAC_KEY_U, CMAC_KEY_D, KEK) (802.16-2009 7.2.2.2.9–7.2.2.2.10).

    CMAC_PREKEY_U || CMAC_PREKEY_D || KEK = Dot16KDF(AK, SS_MAC || BSID || "CMAC_KEYS+KEK", 384);
    CMAC_KEY_x = AES-128-ECB(CMAC_PREKEY_x, 14 zero bytes || CMAC_KEY_COUNT(16 bits)).
    """
    ak = _need_bytes(ak, AK_LEN, "AK")
    ss_mac = _need_bytes(ss_mac, MAC_ADDR_LEN, "SS MAC address")
    bsid = _need_bytes(bsid, MAC_ADDR_LEN, "BSID")
    count = require_uint(cmac_key_count, 16, "CMAC_KEY_COUNT")
    out = dot16kdf(ak, ss_mac + bsid + b"CMAC_KEYS+KEK", 384)
    pre_u, pre_d, kek = out[0:16], out[16:32], out[32:48]
    block = bytes(14) + count.to_bytes(2, "big")
    return aes_ecb_encrypt(pre_u, block), aes_ecb_encrypt(pre_d, block), kek


@dataclass(frozen=True, repr=False)
class Dot16eKeys:
    """The 16e (PKMv2, EAP-only, CMAC mode) key chain of one MSK; repr shows the AKID only."""

    pmk: bytes
    ak: bytes
    akid: bytes
    cmac_key_u: bytes
    cmac_key_d: bytes
    kek: bytes

    def __repr__(self) -> str:
        return f"Dot16eKeys(akid={self.akid.hex()})"

    __str__ = __repr__


def derive_16e_keys(
    msk: bytes, ss_mac: bytes, bsid: bytes, *, cmac_key_count: int = 0, pmk_sn: int = 0
) -> Dot16eKeys:
    """Whole 16e chain MSK → PMK → AK → AKID, CMAC_KEY_U/D, KEK (digest §2.2)."""
    pmk = derive_pmk(msk)
    ak = derive_16e_ak(pmk, ss_mac, bsid)
    u, d, kek = derive_16e_cmac_keys_kek(ak, ss_mac, bsid, cmac_key_count)
    return Dot16eKeys(
        pmk=pmk,
        ak=ak,
        akid=derive_16e_akid(ak, pmk_sn, ss_mac, bsid),
        cmac_key_u=u,
        cmac_key_d=d,
        kek=kek,
    )
