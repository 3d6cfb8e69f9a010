"""Received bursts: :func:`stack.mac.open_burst` against a per-MPDU model of its contract.

Input: up to :data:`MAX_BURSTS` bursts received in turn by one receiver (FID 2 and 3 protected by
two SAs under different AKs, FID 0 accepted plain, any other FID unknown). A burst is a list of
units, each an MPDU sealed with one of the SAs' TEKs (EKS, PN and payload from the input), a plain
MPDU, raw bytes, or a copy (possibly with one byte changed) of an earlier unit -- then optionally
truncated or padded. The same bytes go to ``open_burst`` (the compiled data path and the batch CCM
engine, as the roles use them; as bytes or, in place, as a uint8 array) and to the model, which
walks the MPDUs one by one through ``stack.mpdu`` and the scalar SA calls.

Invariants: ``open_burst`` never raises for burst content (its contract), accepts exactly the
model's MPDUs with the same FIDs, payloads, EKS and PNs, and counts the same rejections.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from stack import mpdu
from stack.errors import SecurityError
from stack.keys import AkContext
from stack.mac import open_burst
from stack.sa import SecurityAssociation
from tests.fuzz._core import Reader, check

ALLOWED: tuple[type[BaseException], ...] = ()
"""None: ``open_burst`` must not raise on any burst content."""

MAX_BURSTS = 4
MAX_UNITS = 12
STID = 0x133
PLAIN_FID = 0
SA_FIDS = (2, 3)
_ctxs: list[AkContext] = []


def setup() -> None:
    """Two AK contexts (one per SA)."""
    _ctxs[:] = [AkContext.from_ak(bytes([i]) * 20, pmk_sn=i, amsid_star=bytes(6),
                                  absid=bytes.fromhex("0000bb000001"), cmac_key_count=i)
                for i in (1, 2)]


def _receiver() -> dict[int, SecurityAssociation]:
    return {fid: SecurityAssociation.start(_ctxs[i], 1 + i) for i, fid in enumerate(SA_FIDS)}


def model_open(sas: dict[int, SecurityAssociation], data: bytes
               ) -> tuple[list[tuple[int, bytes, int, int]], Counter[str]]:
    """The contract of ``open_burst`` one MPDU at a time: split by AGMH Length (zero padding ends
    the burst, a bad Length or short tail counts once), EH refused, no SA -> plain only for FID 0,
    replay checked against the state before the burst, ICV, then PNs recorded in burst order."""
    rejected: Counter[str] = Counter()
    units: list[tuple[int, int, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            rejected["short_mpdu"] += 1
            break
        word = int.from_bytes(data[pos : pos + 2], "big")
        length = word & 0x7FF
        if word == 0 and not any(data[pos:]):
            break
        if length < 2 or pos + length > len(data):
            rejected["bad_length"] += 1
            break
        units.append((pos, word >> 12, data[pos : pos + length]))
        pos += length
    accepted: dict[int, tuple[int, bytes, int, int]] = {}
    passed = []
    for pos, fid, one in units:
        if one[0] & 0x08:
            rejected["unsupported_eh"] += 1
            continue
        sa = sas.get(fid)
        if sa is None:
            if fid == PLAIN_FID:
                accepted[pos] = (fid, one[2:], -1, -1)
            else:
                rejected["unknown_sa"] += 1
            continue
        if len(one) < mpdu.PROTECTED_OVERHEAD:
            rejected["short_mpdu"] += 1
            continue
        hdr = mpdu.parse_protected(one)
        try:
            tek = sa.check_replay(hdr.eks, hdr.pn, True)
            _f, eks, pn, payload = mpdu.unseal(tek.key, stid=STID, uplink=True, mpdu=one)
        except SecurityError as exc:
            rejected[exc.reason] += 1
            continue
        passed.append((pos, fid, sa, eks, pn, payload))
    for pos, fid, sa, eks, pn, payload in passed:
        try:
            sa.check_and_record(eks, pn, True)
        except SecurityError as exc:
            rejected[exc.reason] += 1
            continue
        accepted[pos] = (fid, payload, eks, pn)
    return [accepted[p] for p in sorted(accepted)], rejected


def _burst(r: Reader, units: list[bytes]) -> bytes:
    out = bytearray()
    for _ in range(1 + r.below(MAX_UNITS)):
        if not r.remaining:
            break
        kind = r.below(5)
        if kind == 0:  # sealed under SA k
            k = r.below(2)
            eks, pn = r.below(2), r.uint(3) & 0x3FFFFF
            tek = _ctxs[k].tek(1 + k, eks)
            fid = SA_FIDS[k] if r.u8() < 224 else r.u8() & 0xF
            unit = mpdu.seal(tek, stid=STID, fid=fid, eks=eks, pn=pn, uplink=True,
                             payload=r.blob(200))
        elif kind == 1:  # plain
            unit = mpdu.encode_plain(r.u8() & 0xF, r.blob(200))
        elif kind == 2:  # raw
            unit = r.blob(64)
        elif units:  # a copy of an earlier unit (replay), possibly with one byte changed
            unit = units[r.below(len(units))]
            if kind == 4 and unit:
                b = bytearray(unit)
                b[r.below(len(b))] ^= r.u8() or 1
                unit = bytes(b)
        else:
            continue
        units.append(unit)
        out += unit
    tail = r.below(4)
    if tail == 1 and out:
        del out[r.below(len(out)) :]
    elif tail == 2:
        out += bytes(r.below(8))
    return bytes(out)


def one_input(data: bytes) -> None:
    """Receive the bursts described by ``data`` with ``open_burst`` and with the model."""
    r = Reader(data)
    fast, model = _receiver(), _receiver()
    units: list[bytes] = []
    for _ in range(MAX_BURSTS):
        if not r.remaining:
            break
        burst = _burst(r, units)
        as_array = r.flag()
        arg = np.frombuffer(bytearray(burst), dtype=np.uint8) if as_array else burst
        rx = open_burst(STID, arg, uplink=True, lookup=lambda stid, fid: fast.get(fid)
                        if stid == STID else None)
        want, want_rej = model_open(model, burst)
        got = [(int(f), rx.payload(k), int(e), int(p))
               for k, (f, e, p) in enumerate(zip(rx.fid, rx.eks, rx.pn, strict=True))]
        check(got == want, "accepted_differs", f"open_burst {got!r:.200} model {want!r:.200}")
        check(rx.rejected == want_rej, "rejections_differ",
              f"open_burst {dict(rx.rejected)} model {dict(want_rej)}")
        check(rx.protected.tolist() == [e >= 0 for _f, _p, e, _n in want], "protected_flags", "")
