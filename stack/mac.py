"""Burst-level MAC data path on numpy buffers (ARCHITECTURE "data path", contracts A → C2/G).

A *burst* is the payload of one PHY burst: a concatenation of MPDUs, each delimited by the 11-bit
Length of its AGMH (digest §4.1). A burst belongs to one link, identified by one STID (the STID of
the subordinate station on the link, as in a 16m A-MAP allocation); the MPDUs in it may belong to
different SAs (lookup by ``(stid, fid)``) and plain MPDUs (e.g. FID 0 control before keys) may be
mixed in.

* :func:`build_burst` lays all MPDUs out in one ``uint8`` buffer, takes each SA's PNs as one
  block and seals all protected MPDUs with **one** call of the batch CCM engine, in place.
* :func:`open_burst` splits a received burst, drops what is malformed, of unknown SA / EKS or
  replayed before any crypto, opens all remaining protected MPDUs with **one** engine call in
  place, then records the PNs of those whose ICV verified. Rejections are counted by ``reason``
  (the ``.reason`` of the matching :mod:`stack.errors` exception) and never returned; no
  unauthenticated plaintext leaves (the engine zeroes failures).

Every per-MPDU step of both (checks, header layout, nonces, parsing, classification) runs in
compiled passes (:mod:`stack._burst`); the engine is called through
:func:`stack.crypto.ccm.run_in_place_trusted`, i.e. :func:`stack.crypto.seal_batch` /
:func:`~stack.crypto.open_batch` without re-checking arrays laid out here.

Relay encapsulation (digest §6.4 [D]): traffic on the ABS↔ARS relay link that concerns an AMS is
carried in relay MPDUs (FID :data:`RELAY_FID`) protected with the ARS's own SA. Their payload is a
sequence of inner items ``STID(12 bits) << 4 (2 bytes) | inner MPDU`` where each inner MPDU is
opaque (delimited by its own AGMH Length): see :func:`encapsulate_relay` and
:func:`decapsulate_relay`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from stack.crypto.ccm import run_in_place_trusted
from stack.crypto.ccm import warm_up as crypto_warm_up
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
from stack.sa import REPLAY_REASONS, SecurityAssociation

RELAY_FID = 15
"""FID of relay MPDUs on the ABS↔ARS link (digest §6.4; FID 15 is otherwise unused) [D]."""
RELAY_ITEM_HEADER_LEN = 2
_ICV_ROOM = bytes(ICV_LEN)
_HDR_ROOM = bytes(AGMH_LEN + EKS_PN_LEN)
_AGMH_ROOM = bytes(AGMH_LEN)
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


@dataclass(eq=False, slots=True)
class TxMpdu:
    """One MPDU to send: FID, payload, and the SA that protects it (``None``: plain MPDU).

    A plain slotted class, not a frozen dataclass: it is the one object per MPDU on the send
    path (a role's queue entry), and a frozen one costs three times as much to create.
    """

    fid: int
    payload: bytes | bytearray | memoryview | np.ndarray
    sa: SecurityAssociation | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        sa = "plain" if self.sa is None else f"said={self.sa.said}"
        return f"TxMpdu(fid={self.fid}, len={len(self.payload)}, {sa})"


_kernels: ModuleType | None = None
_NO_SA = np.full(16, -1, dtype=np.int64)
_NO_PLAIN = np.zeros(16, dtype=np.bool_)
_EARLY_REASONS = ((2, "unsupported_eh"), (3, "unknown_sa"), (4, "short_mpdu"))
"""``stack._burst`` RX kinds rejected by the header checks, and their reasons."""


def _k() -> ModuleType:
    """:mod:`stack._burst` (imports numba), loaded on the first burst, not with stack.mac."""
    global _kernels
    if _kernels is None:
        from stack import _burst

        _kernels = _burst
    return _kernels


def warm_up() -> float:
    """Compile (or load from numba's cache) the burst kernels and the default CCM engine;
    returns the seconds it took, so a runtime can do it before its first frame is due."""
    t0 = time.perf_counter()
    _k().warm_up()
    crypto_warm_up()
    return time.perf_counter() - t0


def _slow_validate(mpdus: Sequence[object]) -> None:
    """Find the first bad MPDU description and raise for it (a fast check failed)."""
    for i, m in enumerate(mpdus):
        if not isinstance(m, TxMpdu):
            raise MalformedError(f"MPDU {i}: expected TxMpdu, got {type(m).__name__}")
        require_uint(m.fid, 4, f"MPDU {i} FID")
        if m.sa is not None and not isinstance(m.sa, SecurityAssociation):
            raise MalformedError(f"MPDU {i}: sa must be a SecurityAssociation or None")


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

    Every input is validated before any PN is taken. The protected MPDUs of each SA take that
    SA's next PNs in this direction, in burst order, as one block (``sa.next_pns``); all are
    sealed in place by one engine call (what ``seal_batch`` runs, minus its argument checks:
    the arrays are laid out here). Raises :class:`MalformedError` for a bad FID/payload, and
    whatever an SA raises when it has too few PNs left on usable TEKs
    (:class:`KeyExhaustedError`, no PN taken from that SA).

    Per MPDU, the only Python work is reading the three fields of its :class:`TxMpdu` and one
    join of the payloads; checks, headers, PNs and nonces are written by one compiled pass
    (:mod:`stack._burst`).
    """
    stid = require_uint(stid, 12, "STID")
    kern = _k()
    n = len(mpdus)
    if not all(issubclass(t, TxMpdu) for t in set(map(type, mpdus))):
        _slow_validate(mpdus)
    fid_list = [m.fid for m in mpdus]
    payloads: list[object] = [m.payload for m in mpdus]
    sas = [m.sa for m in mpdus]
    if set(map(type, fid_list)) - {int} or (n and not 0 <= min(fid_list) <= max(fid_list) <= 15):
        _slow_validate(mpdus)
        fid_list = [int(f) for f in fid_list]
    if set(map(type, payloads)) - {bytes}:
        payloads = [_payload_view(p, i) for i, p in enumerate(payloads)]
    try:
        uniq = dict.fromkeys(sas)  # SAs in order of first use (None: plain)
    except TypeError:  # an unhashable object given as sa
        _slow_validate(mpdus)
        raise
    real = [sa for sa in uniq if sa is not None]
    if any(not isinstance(sa, SecurityAssociation) for sa in real):
        _slow_validate(mpdus)
    if None in uniq or len(real) > 1:
        which: dict[SecurityAssociation | None, int] = {sa: k for k, sa in enumerate(real)}
        which[None] = -1
        sa_idx = np.fromiter(map(which.__getitem__, sas), dtype=np.int64, count=n)
    else:
        sa_idx = np.zeros(n, dtype=np.int64)
    fids = np.array(fid_list, dtype=np.int64)
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)  # type: ignore[arg-type]
    code, i, counts = kern.tx_check(fids, lengths, sa_idx, len(real), MAX_PROTECTED_PAYLOAD,
                                    MAX_PLAIN_PAYLOAD)
    if code != kern.TX_OK:
        limit = MAX_PLAIN_PAYLOAD if sa_idx[i] < 0 else MAX_PROTECTED_PAYLOAD
        raise MalformedError(
            f"MPDU {i}: payload of {int(lengths[i])} bytes exceeds {limit} (11-bit Length)",
            reason="long_mpdu",
        )

    # all inputs valid: one block of PNs per SA (burst order), flattened into run tables
    key_slots: dict[bytes, int] = {}
    runs: list[tuple[int, int, int, int]] = []  # (first PN, count, EKS, key slot)
    first_run: list[int] = []
    for sa, count in zip(real, counts.tolist(), strict=True):
        first_run.append(len(runs))
        for tek, first, k in sa.next_pns(uplink, count, now=now) if count else ():
            runs.append((first, k, tek.eks, key_slots.setdefault(tek.key, len(key_slots))))
    n_prot = int(counts.sum())

    # lay the burst out with one join: header room, payload, ICV room per MPDU
    parts: list[object] = [None] * (3 * n)
    parts[1::3] = payloads
    if n_prot == n:
        parts[0::3] = [_HDR_ROOM] * n
        parts[2::3] = [_ICV_ROOM] * n
    else:
        flags = (sa_idx >= 0).tolist()
        parts[0::3] = [_HDR_ROOM if p else _AGMH_ROOM for p in flags]
        parts[2::3] = [_ICV_ROOM if p else b"" for p in flags]
    buf = np.frombuffer(bytearray().join(parts), dtype=np.uint8)  # type: ignore[arg-type]
    cols = np.array(runs, dtype=np.int64).reshape(-1, 4).T.copy()
    nonces, kidx, offs, lens = kern.tx_layout(
        buf, fids, lengths, sa_idx, np.array(first_run, dtype=np.int64), cols[0], cols[1],
        cols[2], cols[3], (stid << 4) | int(bool(uplink)), n_prot)
    if n_prot:
        keys = np.frombuffer(b"".join(key_slots), dtype=np.uint8).reshape(-1, 16).copy()
        run_in_place_trusted(keys, kidx, nonces, buf, offs, lens, decrypt=False, threads=threads,
                             engine=engine)
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

    The per-MPDU work (parsing, checks, nonces, result columns) is compiled
    (:mod:`stack._burst`); Python calls ``lookup`` once per distinct FID and checks and records
    the replay windows once per (SA, EKS) group (``SecurityAssociation.check_replay_many`` /
    ``record_many``). All candidates are opened with one batch call; PNs are recorded, in burst
    order, only for MPDUs whose ICV verified.
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
    kern = _k()
    rejected: Counter[str] = Counter()
    starts, tail, fid_mask = kern.rx_scan(buf)

    # one lookup per FID present: SA index per FID (-1: none), plain FIDs allowed
    sas: list[SecurityAssociation] = []
    sa_of_fid = _NO_SA.copy()
    plain_ok = _NO_PLAIN.copy()
    while fid_mask:
        f = (fid_mask & -fid_mask).bit_length() - 1
        fid_mask &= fid_mask - 1
        sa = lookup(stid, f)
        if sa is None:
            plain_ok[f] = f in plain_fids
            continue
        k = next((j for j, known in enumerate(sas) if known is sa), len(sas))
        if k == len(sas):
            sas.append(sa)
        sa_of_fid[f] = k
    kind, tab, groups, kind_count, batch, nonces = kern.rx_classify(
        buf, starts, sa_of_fid, plain_ok, (stid << 4) | int(bool(uplink)))
    length, pn = tab[1], tab[2]
    order, offs, lens = batch[0], batch[1], batch[2]
    n_cand = order.shape[0]

    # replay check per (SA, EKS) group, before any crypto; the batch rows were laid out for
    # every candidate, group by group: `keep` marks those still in once some were dropped
    key_slots: dict[bytes, int] = {}
    kidx = np.zeros(n_cand, dtype=np.int64)
    keep: np.ndarray | None = None
    checked: list[tuple[SecurityAssociation, int, int, int]] = []
    for g, a, b in groups.tolist():
        sa, e = sas[g // 4], g % 4
        try:
            tek, codes = sa.check_replay_many(e, pn[order[a:b]], uplink, now=now)
        except SecurityError as exc:
            rejected[exc.reason] += b - a
            codes = None
        else:
            kidx[a:b] = key_slots.setdefault(tek.key, len(key_slots))
            checked.append((sa, e, a, b))
            if not np.count_nonzero(codes):
                continue
            _count_codes(rejected, codes)
        if keep is None:
            keep = np.ones(n_cand, dtype=np.bool_)
        keep[a:b] = False if codes is None else codes == 0
        kind[order[a:b][~keep[a:b]]] = kern.RX_REJECTED

    if key_slots:
        keys = np.frombuffer(b"".join(key_slots), dtype=np.uint8).reshape(-1, 16).copy()
        if keep is None:
            ok = run_in_place_trusted(keys, kidx, nonces, buf, offs, lens, decrypt=True,
                                      threads=threads, engine=engine)
            failed = ~ok
        else:
            rows = np.flatnonzero(keep)
            ok = np.zeros(n_cand, dtype=np.bool_)
            ok[rows] = run_in_place_trusted(keys, kidx[rows], nonces[rows], buf, offs[rows],
                                            lens[rows], decrypt=True, threads=threads,
                                            engine=engine)
            failed = keep & ~ok
        n_failed = int(np.count_nonzero(failed))
        if n_failed:
            rejected["bad_icv"] += n_failed
            kind[order[failed]] = kern.RX_REJECTED
        for sa, e, a, b in checked:
            members = order[a:b] if keep is None and not n_failed else order[a:b][ok[a:b]]
            # records the PNs in burst order; also catches a PN repeated within this burst
            codes = sa.record_many(e, pn[members], uplink, now=now)
            kind[members] = kern.RX_ACCEPTED
            if np.count_nonzero(codes):  # rare: reject them and never return their plaintext
                _count_codes(rejected, codes)
                for c in members[codes > 0].tolist():
                    kind[c] = kern.RX_REJECTED
                    o = int(starts[c]) + AGMH_LEN + EKS_PN_LEN
                    buf[o : o + int(length[c]) - PROTECTED_OVERHEAD] = 0

    early = kind_count.tolist()
    for code, reason in _EARLY_REASONS:
        if early[code]:
            rejected[reason] += early[code]
    if tail:
        rejected["short_mpdu" if tail == kern.TAIL_SHORT else "bad_length"] += 1
    if stats is not None:
        stats.update(rejected)
    said_of_sa = np.array([sa.said for sa in sas] or [-1], dtype=np.int64)
    cols = kern.rx_result(kind, starts, tab, said_of_sa)
    return RxBurst(buf=buf, fid=cols[0], offset=cols[1], length=cols[2],
                   protected=cols[3].astype(np.bool_), eks=cols[4], pn=cols[5], said=cols[6],
                   rejected=rejected)


def _count_codes(rejected: Counter[str], codes: np.ndarray) -> None:
    """Add replay-window codes (``stack.sa.REPLAY_REASONS``) to the rejection counts."""
    for code, count in enumerate(np.bincount(codes, minlength=len(REPLAY_REASONS)).tolist()):
        if code and count:
            rejected[REPLAY_REASONS[code]] += count


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
