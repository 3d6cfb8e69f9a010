"""Shared AK contexts for the stack tests (from the §8.5 regression vectors, or random)."""

from __future__ import annotations

from hypothesis import strategies as st

from stack.keys import AkContext
from tests.stack._vectors import h, load, n

M16 = load("relaysec_16m_regression.txt")


def vector_ctx(count: int = 0) -> AkContext:
    """The AK context of the §8.5 table for CMAC_KEY_COUNT ``count`` (0 or 1)."""
    v = M16[f"hierarchy: CMAC_KEY_COUNT {count}"]
    return AkContext.from_ak(
        h(v["ak"]),
        pmk_sn=n(v["pmk_sn"]),
        amsid_star=h(v["amsid_star"]),
        absid=h(v["absid"]),
        cmac_key_count=count,
    )


def secrets_of(ctx: AkContext) -> list[str]:
    """Hex of every key held by ``ctx`` plus a few of its TEKs (must never be printed)."""
    keys = [ctx.ak, ctx.cmac_key_u, ctx.cmac_key_d, ctx.kek]
    keys += [ctx.tek(s, c) for s in (0, 1, 2) for c in range(4)]
    return [k.hex() for k in keys]


ak_contexts = st.builds(
    lambda ak, sn, star, absid, count: AkContext.from_ak(
        ak, pmk_sn=sn, amsid_star=star, absid=absid, cmac_key_count=count
    ),
    st.binary(min_size=20, max_size=20),
    st.integers(0, 15),
    st.binary(min_size=6, max_size=6),
    st.binary(min_size=6, max_size=6),
    st.integers(0, 0xFFFF),
)
