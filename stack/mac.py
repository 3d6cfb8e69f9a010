"""Burst-level MAC data path on numpy buffers (ARCHITECTURE "data path", contracts A → C2/G).

A *burst* is the payload of one PHY burst: a concatenation of MPDUs, each delimited by the 11-bit
Length of its AGMH (digest §4.1). A burst belongs to one link, identified by one STID (the STID of
the subordinate station on the link, as in a 16m A-MAP allocation); the MPDUs in it may belong to
different SAs (lookup by ``(stid, fid)``) and plain MPDUs (e.g. FID 0 control before keys) may be
mixed in.

* :func:`build_burst` lays all MPDUs out in one ``uint8`` buffer, takes one PN per protected MPDU
  from its SA and seals all of them with **one** :func:`stack.crypto.seal_batch` call, in place.
* :func:`open_burst` splits a received burst, drops what is malformed, of unknown SA / EKS or
  replayed before any crypto, opens all remaining protected MPDUs with **one**
  :func:`stack.crypto.open_batch` call in place, then records the PNs of those whose ICV verified.
  Rejections are counted by ``reason`` (the ``.reason`` of the matching :mod:`stack.errors`
  exception) and never returned; no unauthenticated plaintext leaves (open_batch zeroes failures).

Relay encapsulation (digest §6.4 [D]): traffic on the ABS↔ARS relay link that concerns an AMS is
carried in relay MPDUs (FID :data:`RELAY_FID`) protected with the ARS's own SA. Their payload is a
sequence of inner items ``STID(12 bits) << 4 (2 bytes) | inner MPDU`` where each inner MPDU is
opaque (delimited by its own AGMH Length): see :func:`encapsulate_relay` and
:func:`decapsulate_relay`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from stack.crypto import open_batch, seal_batch
from stack.errors import MalformedError, SecurityError, require_bytes, require_uint
from stack.mpdu import (
    AGMH_LEN,
    EKS_PN_LEN,
    ICV_LEN,
    MAX_MPDU_LEN,
    MAX_PLAIN_PAYLOAD,
    MAX_PROTECTED_PAYLOAD,
    PROTECTED_OVERHEAD,
    SaLookup,
)
from stack.sa import PN_MAX, SecurityAssociation

RELAY_FID = 15
"""FID of relay MPDUs on the ABS↔ARS link (digest §6.4; FID 15 is otherwise unused) [D]."""
RELAY_ITEM_HEADER_LEN = 2
_ICV_ROOM = bytes(ICV_LEN)
DEFAULT_PLAIN_FIDS: frozenset[int] = frozenset({0})
"""FIDs accepted unprotected when the lookup has no SA for them (control before keys)."""


def _payload_view(payload: object, i: int) -> bytes | bytearray | memoryview | np.ndarray:
    """The payload as a contiguous bytes-like object (no copy where possible)."""
    if isinstance(payload, np.ndarray):
        if payload.dtype != np.uint8 or payload.ndim != 1:
            raise MalformedError(f"MPDU {i}: payload array must be 1-D uint8")
        return np.ascontiguousarray(payload)
    if isinstance(payload, (bytes, bytearray)):
        return payload
    if isinstance(payload, memoryview):
        ok = payload.format == "B" and payload.ndim == 1 and payload.contiguous
        return payload if ok else payload.tobytes()
    raise MalformedError(f"MPDU {i}: payload must be bytes or a uint8 array")


@dataclass(frozen=True)
class TxMpdu:
    """One MPDU to send: FID, payload, and the SA that protects it (``None``: plain MPDU)."""

    fid: int
    payload: bytes | bytearray | memoryview | np.ndarray
    sa: SecurityAssociation | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        sa = "plain" if self.sa is None else f"said={self.sa.said}"
        return f"TxMpdu(fid={self.fid}, len={len(self.payload)}, {sa})"


def _nonce(agmh: int, stid_dir: int, ekspn: int) -> bytes:
    """13-byte CCM nonce of digest §4.2: AGMH(2) | STID<<4|DIR (2) | EKS/PN(3) | 0x00 * 6."""
    return ((agmh << 88) | (stid_dir << 72) | (ekspn << 48)).to_bytes(13, "big")


def _nonce_array(nonces: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(nonces), dtype=np.uint8).reshape(-1, 13)


def build_burst(
    stid: int,
    mpdus: Sequence[TxMpdu],
    *,
    uplink: bool,
    now: float | None = None,
    engine: str | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Assemble and seal one burst for the link of ``stid``; returns a new 1-D uint8 array.

    Every input is validated before any PN is taken. Each protected MPDU takes the next PN of its
    SA in this direction (``sa.next_pn(uplink, now=now)``); all are sealed in one
    ``seal_batch`` call. Raises :class:`MalformedError` for a bad FID/payload, and whatever the SA
    raises when it has no usable TEK (:class:`KeyExhaustedError`); PNs already taken by earlier
    MPDUs of the burst are then simply not used again.
    """
    stid = require_uint(stid, 12, "STID")
    views: list[bytes | bytearray | memoryview | np.ndarray] = []
    fids: list[int] = []
    for i, m in enumerate(mpdus):
        if not isinstance(m, TxMpdu):
            raise MalformedError(f"MPDU {i}: expected TxMpdu, got {type(m).__name__}")
        fid, sa, view = m.fid, m.sa, m.payload
        if type(fid) is not int or not 0 <= fid <= 15:
            fid = require_uint(fid, 4, f"MPDU {i} FID")
        if type(view) is not bytes:
            view = _payload_view(view, i)
        limit = MAX_PLAIN_PAYLOAD if sa is None else MAX_PROTECTED_PAYLOAD
        if len(view) > limit:
            raise MalformedError(
                f"MPDU {i}: payload of {len(view)} bytes exceeds {limit} (11-bit Length)",
                reason="long_mpdu",
            )
        if sa is not None and not isinstance(sa, SecurityAssociation):
            raise MalformedError(f"MPDU {i}: sa must be a SecurityAssociation or None")
        views.append(view)
        fids.append(fid)

    # all inputs valid: take the PNs and lay the burst out with one join (header bytes, payload,
    # room for the ICV), then seal every protected MPDU in place with one seal_batch call. Per
    # protected MPDU this loop does only: one next_pn, one 5-byte header, list appends; the
    # nonces are derived from the joined headers with numpy, not built one by one.
    parts: list[object] = []
    key_slots: dict[bytes, int] = {}
    key_index: list[int] = []
    headers: list[bytes] = []
    p_offset: list[int] = []
    p_length: list[int] = []
    last_tek = None
    slot = eks_bits = 0
    pos = 0
    for m, fid, view in zip(mpdus, fids, views, strict=True):
        size = len(view)
        sa = m.sa
        if sa is None:
            parts += (((fid << 12) | (size + AGMH_LEN)).to_bytes(2, "big"), view)
            pos += size + AGMH_LEN
            continue
        tek, pn = sa.next_pn(uplink, now=now)
        if tek is not last_tek:
            last_tek, eks_bits = tek, tek.eks << 22
            slot = key_slots.setdefault(tek.key, len(key_slots))
        hdr = ((((fid << 12) | (size + PROTECTED_OVERHEAD)) << 24) | eks_bits | pn).to_bytes(
            AGMH_LEN + EKS_PN_LEN, "big"
        )
        parts += (hdr, view, _ICV_ROOM)
        headers.append(hdr)
        key_index.append(slot)
        p_offset.append(pos + AGMH_LEN + EKS_PN_LEN)
        p_length.append(size)
        pos += size + PROTECTED_OVERHEAD
    buf = np.frombuffer(bytearray().join(parts), dtype=np.uint8)  # type: ignore[arg-type]

    if key_index:
        # nonce (digest §4.2) = AGMH(2) | STID<<4|DIR (2) | EKS/PN(3) | 0x00 * 6: the header
        # bytes already laid out, with the link's STID/direction in between
        hdrs = np.frombuffer(b"".join(headers), dtype=np.uint8).reshape(-1, AGMH_LEN + EKS_PN_LEN)
        nonces = np.zeros((hdrs.shape[0], 13), dtype=np.uint8)
        nonces[:, :AGMH_LEN] = hdrs[:, :AGMH_LEN]
        stid_dir = (stid << 4) | int(bool(uplink))
        nonces[:, AGMH_LEN] = stid_dir >> 8
        nonces[:, AGMH_LEN + 1] = stid_dir & 0xFF
        nonces[:, AGMH_LEN + 2 : 7] = hdrs[:, AGMH_LEN:]
        keys = np.frombuffer(b"".join(key_slots), dtype=np.uint8).reshape(-1, 16).copy()
        seal_batch(
            keys,
            np.asarray(key_index, dtype=np.int64),
            nonces,
            buf,
            np.asarray(p_offset, dtype=np.int64),
            np.asarray(p_length, dtype=np.int64),
            threads=threads,
            engine=engine,
        )
    return buf


@dataclass(frozen=True)
class RxMpdu:
    """One accepted MPDU: FID, payload, and (protected only) SAID, EKS and PN."""

    fid: int
    payload: bytes = field(repr=False)
    protected: bool
    said: int | None = None
    eks: int | None = None
    pn: int | None = None


@dataclass(frozen=True, eq=False)
class RxBurst:
    """Result of :func:`open_burst`: accepted MPDUs as arrays over ``buf`` plus rejection counts.

    Accepted MPDU ``k`` (in burst order) has FID ``fid[k]`` and its payload at
    ``buf[offset[k] : offset[k] + length[k]]`` (already decrypted in place); ``protected[k]``
    says whether it came through an SA (then ``eks[k]``/``pn[k]`` are set, else -1).
    """

    buf: np.ndarray = field(repr=False)
    fid: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    protected: np.ndarray
    eks: np.ndarray
    pn: np.ndarray
    said: np.ndarray
    rejected: Counter[str]

    def __len__(self) -> int:
        return int(self.fid.shape[0])

    def payload(self, k: int) -> bytes:
        """Payload of accepted MPDU ``k`` as bytes."""
        o = int(self.offset[k])
        return self.buf[o : o + int(self.length[k])].tobytes()

    def payloads(self) -> list[bytes]:
        """All accepted payloads, in burst order."""
        return [self.payload(k) for k in range(len(self))]

    def __iter__(self) -> Iterator[RxMpdu]:
        for k in range(len(self)):
            prot = bool(self.protected[k])
            yield RxMpdu(
                fid=int(self.fid[k]),
                payload=self.payload(k),
                protected=prot,
                said=int(self.said[k]) if prot else None,
                eks=int(self.eks[k]) if prot else None,
                pn=int(self.pn[k]) if prot else None,
            )

    @property
    def n_rejected(self) -> int:
        """Number of rejected MPDUs (or unparseable tails) in this burst."""
        return sum(self.rejected.values())


def open_burst(
    stid: int,
    burst: np.ndarray | bytes | bytearray,
    *,
    uplink: bool,
    lookup: SaLookup,
    now: float | None = None,
    plain_fids: Collection[int] = DEFAULT_PLAIN_FIDS,
    engine: str | None = None,
    threads: int = 1,
    stats: Counter[str] | None = None,
) -> RxBurst:
    """Split, check and open a received burst of the link of ``stid``.

    ``burst``: a writeable C-contiguous 1-D uint8 array is opened **in place** (ciphertexts become
    plaintexts, rejected ones are zeroed); bytes-like input is copied first. For each MPDU:
    ``lookup(stid, fid)`` gives its SA; with no SA, the MPDU is accepted as plain only if its FID
    is in ``plain_fids`` (else rejected ``unknown_sa``). Never raises for bad burst content:
    rejections are counted in ``RxBurst.rejected`` (and added to ``stats`` if given) under the
    reason of the matching exception: ``short_mpdu``, ``bad_length``, ``unsupported_eh``,
    ``unknown_sa``, ``unknown_eks``, ``tek_expired``, ``pn_replay``, ``pn_window``, ``bad_icv``.
    A bad Length makes the rest of the burst unparseable: it counts once. A zero AGMH followed by
    zeros only is padding and ends the burst silently.
    """
    stid = require_uint(stid, 12, "STID")
    if isinstance(burst, np.ndarray):
        if burst.dtype != np.uint8 or burst.ndim != 1:
            raise MalformedError("burst must be a 1-D uint8 array")
        buf = burst
        if not (buf.flags.c_contiguous and buf.flags.writeable):
            buf = buf.copy()
    elif isinstance(burst, (bytes, bytearray, memoryview)):
        buf = np.frombuffer(bytearray(burst), dtype=np.uint8)
    else:
        raise MalformedError(f"burst must be bytes or a uint8 array, got {type(burst).__name__}")
    plain = frozenset(plain_fids)
    rejected: Counter[str] = Counter()
    total = int(buf.shape[0])
    raw = memoryview(buf)  # int indexing without numpy scalars (the parse loop is per MPDU)

    # accepted entries: (position in burst, fid, offset, length, protected, eks, pn, said)
    accepted: list[tuple[int, int, int, int, bool, int, int, int]] = []
    # protected candidates that passed every check but the ICV:
    # (position in burst, fid, SA, key slot, eks, pn, payload length)
    cands: list[tuple[int, int, SecurityAssociation, int, int, int, int]] = []
    cand_nonce: list[bytes] = []
    stid_dir = (stid << 4) | int(bool(uplink))
    key_slots: dict[bytes, int] = {}

    pos = 0
    while pos < total:
        if total - pos < AGMH_LEN:
            rejected["short_mpdu"] += 1
            break
        word = (raw[pos] << 8) | raw[pos + 1]
        fid, eh, length = word >> 12, (word >> 11) & 1, word & 0x7FF
        if word == 0 and not buf[pos:].any():
            break  # zero padding up to the end of the burst
        if length < AGMH_LEN or pos + length > total:
            rejected["bad_length"] += 1
            break
        start = pos
        pos += length
        if eh:
            rejected["unsupported_eh"] += 1
            continue
        sa = lookup(stid, fid)
        if sa is None:
            if fid in plain:
                accepted.append(
                    (start, fid, start + AGMH_LEN, length - AGMH_LEN, False, -1, -1, -1)
                )
            else:
                rejected["unknown_sa"] += 1
            continue
        if length < PROTECTED_OVERHEAD:
            rejected["short_mpdu"] += 1
            continue
        ep = (raw[start + 2] << 16) | (raw[start + 3] << 8) | raw[start + 4]
        eks, pn = ep >> 22, ep & PN_MAX
        try:
            tek = sa.check_replay(eks, pn, uplink, now=now)
        except SecurityError as exc:
            rejected[exc.reason] += 1
            continue
        slot = key_slots.setdefault(tek.key, len(key_slots))
        cands.append((start, fid, sa, slot, eks, pn, length - PROTECTED_OVERHEAD))
        cand_nonce.append(_nonce(word, stid_dir, ep))

    if cands:
        starts, _, _, slots, _, _, lens = zip(*cands, strict=True)
        offsets = np.asarray(starts, dtype=np.int64) + (AGMH_LEN + EKS_PN_LEN)
        keys = np.frombuffer(b"".join(key_slots), dtype=np.uint8).reshape(-1, 16).copy()
        ok = open_batch(
            keys,
            np.asarray(slots, dtype=np.int64),
            _nonce_array(cand_nonce),
            buf,
            offsets,
            np.asarray(lens, dtype=np.int64),
            threads=threads,
            engine=engine,
        ).tolist()
        for (start, fid, sa, _, eks, pn, ln), good in zip(cands, ok, strict=True):
            o = start + AGMH_LEN + EKS_PN_LEN
            if not good:
                rejected["bad_icv"] += 1
                continue
            try:  # records the PN; also catches a duplicate PN within this burst
                sa.check_and_record(eks, pn, uplink, now=now)
            except SecurityError as exc:
                rejected[exc.reason] += 1
                buf[o : o + ln] = 0
                continue
            accepted.append((start, fid, o, ln, True, eks, pn, sa.said))

    accepted.sort()
    cols = list(zip(*accepted, strict=True)) if accepted else [()] * 8
    if stats is not None:
        stats.update(rejected)
    return RxBurst(
        buf=buf,
        fid=np.asarray(cols[1], dtype=np.int64),
        offset=np.asarray(cols[2], dtype=np.int64),
        length=np.asarray(cols[3], dtype=np.int64),
        protected=np.asarray(cols[4], dtype=bool),
        eks=np.asarray(cols[5], dtype=np.int64),
        pn=np.asarray(cols[6], dtype=np.int64),
        said=np.asarray(cols[7], dtype=np.int64),
        rejected=rejected,
    )


# ---------------------------------------------------------------------------------------------
# Relay encapsulation (digest §6.4 [D])
# ---------------------------------------------------------------------------------------------


def _check_inner(mpdu: bytes, i: int) -> None:
    if len(mpdu) < AGMH_LEN or len(mpdu) > MAX_MPDU_LEN:
        raise MalformedError(f"relay item {i}: inner MPDU of {len(mpdu)} bytes", reason="bad_relay")
    length = int.from_bytes(mpdu[:2], "big") & 0x7FF
    if length != len(mpdu):
        raise MalformedError(
            f"relay item {i}: inner AGMH Length {length} != {len(mpdu)} bytes", reason="bad_relay"
        )


def encapsulate_relay(items: Sequence[tuple[int, bytes]]) -> bytes:
    """Relay-MPDU payload carrying ``(ams_stid, inner_mpdu)`` items: ``STID<<4 (2) | MPDU`` each.

    Inner MPDUs are opaque (plain or protected on their own hop) but must be well framed (their
    AGMH Length equals their size). The result must fit one protected MPDU
    (:data:`~stack.mpdu.MAX_PROTECTED_PAYLOAD`); use :func:`pack_relay` to split many items.
    """
    out = bytearray()
    for i, (stid, mpdu) in enumerate(items):
        stid = require_uint(stid, 12, f"relay item {i} STID")
        mpdu = require_bytes(mpdu, f"relay item {i} MPDU")
        _check_inner(mpdu, i)
        out += (stid << 4).to_bytes(2, "big") + mpdu
    if len(out) > MAX_PROTECTED_PAYLOAD:
        raise MalformedError(
            f"relay payload of {len(out)} bytes exceeds {MAX_PROTECTED_PAYLOAD}", reason="long_mpdu"
        )
    return bytes(out)


def pack_relay(
    items: Sequence[tuple[int, bytes]], max_payload: int = MAX_PROTECTED_PAYLOAD
) -> list[bytes]:
    """Group ``(ams_stid, inner_mpdu)`` items greedily, in order, into relay-MPDU payloads."""
    if not RELAY_ITEM_HEADER_LEN + AGMH_LEN <= max_payload <= MAX_PROTECTED_PAYLOAD:
        raise MalformedError(f"max_payload must be 4..{MAX_PROTECTED_PAYLOAD}, got {max_payload}")
    out: list[bytes] = []
    group: list[tuple[int, bytes]] = []
    size = 0
    for i, (stid, mpdu) in enumerate(items):
        need = RELAY_ITEM_HEADER_LEN + len(mpdu)
        if need > max_payload:
            raise MalformedError(
                f"relay item {i} ({need} bytes) does not fit a {max_payload}-byte relay payload",
                reason="long_mpdu",
            )
        if size + need > max_payload:
            out.append(encapsulate_relay(group))
            group, size = [], 0
        group.append((stid, mpdu))
        size += need
    if group:
        out.append(encapsulate_relay(group))
    return out


def decapsulate_relay(payload: bytes) -> list[tuple[int, bytes]]:
    """Split a relay-MPDU payload into ``(ams_stid, inner_mpdu)`` items; strict.

    Raises :class:`MalformedError` (reason ``bad_relay``) for a truncated item, a nonzero
    reserved nibble, an inner MPDU whose Length runs past the end, or an empty payload.
    """
    data = require_bytes(payload, "relay payload")
    if not data:
        raise MalformedError("empty relay payload", reason="bad_relay")
    items: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < RELAY_ITEM_HEADER_LEN + AGMH_LEN:
            raise MalformedError(f"relay item {len(items)} truncated", reason="bad_relay")
        word = int.from_bytes(data[pos : pos + 2], "big")
        if word & 0xF:
            raise MalformedError(
                f"relay item {len(items)}: reserved bits set in the STID field", reason="bad_relay"
            )
        start = pos + RELAY_ITEM_HEADER_LEN
        length = int.from_bytes(data[start : start + 2], "big") & 0x7FF
        if length < AGMH_LEN or start + length > len(data):
            raise MalformedError(
                f"relay item {len(items)}: inner Length {length} runs past the payload",
                reason="bad_relay",
            )
        items.append((word >> 4, data[start : start + length]))
        pos = start + length
    return items
