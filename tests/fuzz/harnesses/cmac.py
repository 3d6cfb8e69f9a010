"""The CMAC tuple of control messages (digest §3.1): ``split_cmac``, ``check_cmac``,
:class:`stack.cmac.CmacVerifier`.

Input: a program of up to :data:`MAX_OPS` messages verified by one fresh verifier per direction
(fixed AK context). Each is raw bytes, or a message with a genuine tuple (CMAC_PN, STID and FID from
the input) that is then kept, changed in one byte, or checked as another STID, FID or direction.

Invariants: rejections are :class:`stack.errors.SecurityError`; ``split_cmac`` cuts without losing
a byte; raw, altered or misaddressed messages are never accepted; a genuine one is accepted exactly
when its CMAC_PN is above the last one accepted in that direction, and gives back the message.
"""

from __future__ import annotations

from stack.cmac import CMAC_TUPLE_LEN, CmacVerifier, append_cmac, check_cmac, split_cmac
from stack.errors import SecurityError
from stack.keys import AkContext
from tests.fuzz._core import Reader, Violation, check

ALLOWED = (SecurityError,)

MAX_OPS = 12
_ctx: AkContext | None = None


def setup() -> None:
    """The AK context every input verifies under."""
    global _ctx
    _ctx = AkContext.from_ak(bytes(range(100, 120)), pmk_sn=3, amsid_star=bytes(range(6)),
                             absid=bytes.fromhex("0002aa000001"), cmac_key_count=2)


def _split(data: bytes) -> None:
    try:
        body, pn, value = split_cmac(data)
    except SecurityError:
        check(len(data) < CMAC_TUPLE_LEN, "split_refused", f"{len(data)} bytes")
        return
    check(body + pn.to_bytes(3, "big") + value == data, "split_loses_bytes", "")


def one_input(data: bytes) -> None:
    """Run the program in ``data``."""
    assert _ctx is not None
    r = Reader(data)
    verifiers = {up: CmacVerifier(_ctx, uplink=up) for up in (True, False)}
    for _ in range(MAX_OPS):
        if not r.remaining:
            break
        kind = r.below(4)
        uplink, stid, fid = r.flag(), r.u16() & 0xFFF, r.u8() & 0xF
        ver = verifiers[uplink]
        last = ver.last_pn
        if kind == 0:
            raw = r.blob()
            _split(raw)
            try:
                check_cmac(raw, _ctx, uplink=uplink, stid=stid, fid=fid, last_pn=r.uint(3))
                ver.verify(raw, stid=stid, fid=fid)
            except SecurityError:
                continue
            raise Violation("raw_message_accepted", f"{len(raw)} bytes")
        msg, pn = r.blob(), max(1, r.uint(3))
        wire = append_cmac(msg, _ctx, uplink=uplink, pn=pn, stid=stid, fid=fid)
        _split(wire)
        rx_stid, rx_fid, rx_uplink = stid, fid, uplink
        if kind == 2:
            b = bytearray(wire)
            b[r.below(len(b))] ^= r.u8() or 1
            wire = bytes(b)
        elif kind == 3:
            how = r.below(3)
            if how == 0:
                rx_stid ^= 1 + r.u8() % 0xFFF
            elif how == 1:
                rx_fid ^= 1 + r.u8() % 15
            else:
                rx_uplink = not uplink
        rx = verifiers[rx_uplink]
        rx_before = rx.last_pn
        try:
            body = rx.verify(wire, stid=rx_stid, fid=rx_fid)
        except SecurityError:
            body = None
        if kind != 1:
            check(body is None, "altered_message_accepted", f"kind {kind}")
            check(rx.last_pn == rx_before, "rejection_changed_state", "")
            continue
        check((body is not None) == (pn > last), "replay_rule", f"pn {pn} last {last}")
        if body is not None:
            check(body == msg and ver.last_pn == pn, "wrong_body_or_pn", "")
        else:
            check(ver.last_pn == last, "rejection_changed_state", "")
