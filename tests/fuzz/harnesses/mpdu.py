"""Protected MPDUs: :func:`stack.mpdu.unprotect` with a fixed SA, and the plain-MPDU codec.

Input: a program of up to :data:`MAX_OPS` MPDUs received by one fresh SA (TEKs with COUNTER_TEK 0
and 1, i.e. EKS 0 and 1). Each is either raw bytes, or an MPDU sealed with a TEK of the SA (EKS,
PN, STID, direction and payload from the input) and then possibly altered: one byte changed, opened
as another STID or direction, or truncated. Raw bytes also go through ``parse_protected``,
``decode_plain`` and ``decode_agmh``.

Invariants: rejections are :class:`stack.errors.SecurityError`; an altered or raw MPDU is never
accepted; an unaltered one is accepted exactly when a model of the replay window (W = 64 behind the
highest PN per EKS and direction, PN 0 never) says so, and gives back its FID and payload; a plain
MPDU re-encodes to its input.
"""

from __future__ import annotations

import contextlib

from stack import mpdu
from stack.errors import SecurityError
from stack.keys import AkContext
from stack.sa import SecurityAssociation
from tests.fuzz._core import Reader, Violation, check

ALLOWED = (SecurityError,)

MAX_OPS = 16
WINDOW = 64
_ctx: AkContext | None = None
_teks: dict[int, bytes] = {}


def setup() -> None:
    """One AK context for every input; its TEKs for EKS 0 and 1."""
    global _ctx
    _ctx = AkContext.from_ak(bytes(range(20)), pmk_sn=1, amsid_star=bytes(6),
                             absid=bytes.fromhex("0000bb000001"), cmac_key_count=0)
    _teks.update({c % 4: _ctx.tek(1, c) for c in (0, 1)})


class _Window:
    """The receive-window contract of ``stack.sa.ReplayWindow``, written out directly."""

    def __init__(self) -> None:
        self.highest = 0
        self.seen: set[int] = set()

    def accepts(self, pn: int) -> bool:
        """Whether the window must accept ``pn`` now."""
        if pn == 0 or pn in self.seen:
            return False
        return pn > self.highest or self.highest - pn < WINDOW

    def record(self, pn: int) -> None:
        """Note ``pn`` as received."""
        self.seen.add(pn)
        self.highest = max(self.highest, pn)


def _raw(data: bytes) -> None:
    for fn in (mpdu.parse_protected, mpdu.decode_agmh):
        with contextlib.suppress(SecurityError):
            fn(data)
    try:
        fid, payload = mpdu.decode_plain(data)
    except SecurityError:
        pass
    else:
        check(mpdu.encode_plain(fid, payload) == data, "plain_not_canonical", "")


def one_input(data: bytes) -> None:
    """Run the program in ``data`` against a fresh SA."""
    assert _ctx is not None
    r = Reader(data)
    sa = SecurityAssociation.start(_ctx, 1)
    windows: dict[tuple[int, bool], _Window] = {}
    for _ in range(MAX_OPS):
        if not r.remaining:
            break
        kind = r.below(4)
        stid, uplink = r.u16() & 0xFFF, r.flag()
        if kind == 0:  # raw
            raw = r.blob(400)
            _raw(raw)
            try:
                mpdu.unprotect(sa, stid=stid, uplink=uplink, mpdu=raw)
            except SecurityError:
                continue
            raise Violation("raw_mpdu_accepted", f"{len(raw)} bytes")
        eks, pn = r.below(2), r.uint(3) & 0x3FFFFF
        fid = r.u8() & 0xF
        payload = r.blob(300)
        sealed = mpdu.seal(_teks[eks], stid=stid, fid=fid, eks=eks, pn=pn, uplink=uplink,
                           payload=payload)
        altered = kind != 1
        rx_stid, rx_uplink, wire = stid, uplink, sealed
        if kind == 2:  # one byte changed
            buf = bytearray(sealed)
            buf[r.below(len(buf))] ^= r.u8() or 1
            wire = bytes(buf)
        elif kind == 3:  # wrong station / direction, or truncated
            how = r.below(3)
            if how == 0:
                rx_stid = (stid + 1 + r.u8()) & 0xFFF
                altered = rx_stid != stid
            elif how == 1:
                rx_uplink = not uplink
            else:
                wire = sealed[: r.below(len(sealed))]
        try:
            got = mpdu.unprotect(sa, stid=rx_stid, uplink=rx_uplink, mpdu=wire)
        except SecurityError:
            got = None
        win = windows.setdefault((eks, uplink), _Window())
        if altered:
            check(got is None, "altered_mpdu_accepted", f"kind {kind}")
            continue
        want = win.accepts(pn)
        check((got is not None) == want, "replay_model_disagrees",
              f"eks {eks} pn {pn} highest {win.highest} accepted {got is not None}")
        if got is not None:
            check(got == (fid, eks, pn, payload), "wrong_plaintext", "")
            win.record(pn)
