"""Security state of one link end: the AK context, CMAC signer/verifier and the primary SA.

A *link* is the pair (subject, serving station): an AMS with its access station, or an ARS with the
ABS. The subject is the *subordinate* end (it sends uplink); the STID of the link is the subject's.
Both ends hold a :class:`Link` built from the same :class:`stack.keys.AkContext`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, SupportsIndex

import numpy as np

from stack import mpdu
from stack.cmac import CmacPnCounter, CmacSigner, CmacVerifier
from stack.crypto import aes_cmac
from stack.errors import MalformedError, SecurityError
from stack.keys import AkContext
from stack.mac import TxMpdu, open_burst
from stack.mpdu import PROTECTED_OVERHEAD
from stack.pkm.messages import Message, TekErrorCode, TekInvalid
from stack.sa import SecurityAssociation

KCV_LABEL = b"relaysec-kcv"


@dataclass(eq=False, repr=False, slots=True)
class PendingMpdu(TxMpdu):
    """A data MPDU queued for sealing in its burst's one batch call (``stack.mac.build_burst``).

    It *is* the :class:`stack.mac.TxMpdu` handed to ``build_burst`` (FID, plaintext, the SA that
    will protect it), plus the link's STID and direction that group it into a burst: the queue
    entry is the only per-MPDU object of the send path. Neither SA nor plaintext shows in ``repr``.
    """

    stid: int = 0
    uplink: bool = False
    tag: Any = None
    """Who wants to know when this MPDU goes on the air (an ARQ block, ``RoleBase``)."""

    def __len__(self) -> int:
        """Length of the MPDU once sealed (AGMH, EKS/PN and ICV included)."""
        return len(self.payload) + PROTECTED_OVERHEAD


def sealed_bytes(items: Iterable[bytes | PendingMpdu]) -> int:
    """``sum(map(len, items))`` of queue entries (clear MPDUs and pending ones, these at their
    sealed length) without a Python ``__len__`` call per pending MPDU: the schedulers ask for
    every queue's bytes several times a frame."""
    n = 0
    for x in items:
        n += len(x.payload) + PROTECTED_OVERHEAD if type(x) is PendingMpdu else len(x)
    return n


class MpduQueue(list):
    """One neighbour's output queue (clear MPDUs as bytes, data MPDUs as :class:`PendingMpdu`)
    that keeps ``nbytes``, what it holds as it will go on the air (:func:`sealed_bytes` of its
    entries): the schedulers ask for every queue's bytes several times a frame, and summing a
    queue entry by entry each time cost most of a frame's scheduling once a slow link had piled
    up hundreds of MPDUs. Every list operation that adds or removes entries keeps the count; a
    queued MPDU's payload is rewritten only through :meth:`rewrite` (an ARQ feedback riding on a
    queued block). A slice of it is a plain list; :meth:`tail` is the queue after a cut."""

    __slots__ = ("nbytes",)

    def __init__(self, items: Iterable[bytes | PendingMpdu] = ()) -> None:
        super().__init__(items)
        self.nbytes = sealed_bytes(self)

    def __reduce__(self) -> tuple[type[MpduQueue], tuple[list[bytes | PendingMpdu]]]:
        # pickle (a role's snapshot) and deepcopy rebuild the queue from its entries, counted
        # again (by default both put the entries back with append/extend, before or after the
        # count: unset, or counted twice)
        return MpduQueue, (list(self),)

    @classmethod
    def tail(cls, items: MpduQueue, cut: int) -> MpduQueue:
        """The entries of ``items`` from ``cut`` on, counted from ``items.nbytes`` less the
        ``cut`` entries before (the head a frame takes; the tail may be long)."""
        out = cls()
        list.extend(out, items[cut:])
        out.nbytes = items.nbytes - sealed_bytes(items[:cut])
        return out

    def rewrite(self, obj: PendingMpdu, payload: bytes) -> None:
        """Give ``obj``, queued here once (as every MPDU is), a new payload, and count its
        new length."""
        self.nbytes += len(payload) - len(obj.payload)
        obj.payload = payload

    def append(self, x: bytes | PendingMpdu) -> None:
        super().append(x)
        self.nbytes += sealed_bytes((x,))

    def insert(self, i: SupportsIndex, x: bytes | PendingMpdu) -> None:
        super().insert(i, x)
        self.nbytes += sealed_bytes((x,))

    def extend(self, xs: Iterable[bytes | PendingMpdu]) -> None:
        xs = list(xs)
        super().extend(xs)
        self.nbytes += sealed_bytes(xs)

    def __iadd__(self, xs: Iterable[bytes | PendingMpdu]) -> MpduQueue:  # type: ignore[override]
        self.extend(xs)
        return self

    def __imul__(self, n: SupportsIndex) -> MpduQueue:
        super().__imul__(n)
        self.nbytes = sealed_bytes(self)
        return self

    def __setitem__(self, i: SupportsIndex | slice, v: Any) -> None:
        old = self[i]
        if isinstance(i, slice):
            v = list(v)
            super().__setitem__(i, v)
            self.nbytes += sealed_bytes(v) - sealed_bytes(old)
        else:
            super().__setitem__(i, v)
            self.nbytes += sealed_bytes((v,)) - sealed_bytes((old,))

    def __delitem__(self, i: SupportsIndex | slice) -> None:
        old = self[i]
        super().__delitem__(i)
        self.nbytes -= sealed_bytes(old if isinstance(i, slice) else (old,))

    def pop(self, i: SupportsIndex = -1) -> bytes | PendingMpdu:
        x = super().pop(i)
        self.nbytes -= sealed_bytes((x,))
        return x

    def remove(self, x: bytes | PendingMpdu) -> None:
        super().remove(x)
        self.nbytes -= sealed_bytes((x,))

    def clear(self) -> None:
        super().clear()
        self.nbytes = 0


_ALT_REASONS = ("bad_icv", "unknown_eks", "pn_replay", "pn_window")
"""What an MPDU sealed under the other key set of :meth:`Link.accept_also` fails with here."""


def _less(rejected: Counter[str], n: int) -> Counter[str]:
    """``rejected`` with ``n`` refusals taken back (MPDUs the alternate keys then accepted:
    each was refused here under one of ``_ALT_REASONS``)."""
    out = Counter(rejected)
    for r in _ALT_REASONS:
        k = min(n, out[r])
        out[r] -= k
        n -= k
    return +out


def kcv(key: bytes) -> str:
    """Key check value: first 3 bytes of AES-CMAC(key, "relaysec-kcv"), hex. One-way, for tests."""
    return aes_cmac(key, KCV_LABEL)[:3].hex()


@dataclass(frozen=True)
class KeyInfo:
    """Identifiers and check values of one link end (docs/roles.md §6); no key material."""

    subject: int
    peer: int
    stid: int
    akid: str
    pmk_sn: int
    cmac_key_count: int
    said: int
    counter_teks: tuple[int, ...]
    tx_eks: int | None
    kcv_cmac_u: str
    kcv_cmac_d: str
    kcv_teks: tuple[str, ...]


class Link:
    """One end of a protected link. ``subordinate`` is True at the AMS/ARS end (sends uplink)."""

    def __init__(
        self,
        ctx: AkContext,
        *,
        subject: int,
        peer: int,
        stid: int,
        subordinate: bool,
        said: int = 1,
        cmac_pn_start: int = 0,
        cmac_rx_last: int = 0,
        counter_tek: int = 0,
        now: float | None = None,
        pn_refresh: int | None = None,
    ) -> None:
        self.ctx = ctx
        self.subject = subject
        self.peer = peer
        self.stid = stid
        self.subordinate = subordinate
        self.signer = CmacSigner(ctx, uplink=subordinate, counter=CmacPnCounter(cmac_pn_start))
        self.verifier = CmacVerifier(ctx, uplink=not subordinate, last_pn=cmac_rx_last)
        self.sa = SecurityAssociation(
            ctx, said, **({"update_threshold": pn_refresh} if pn_refresh else {})
        )
        self.sa.install(counter_tek, now=now)
        self.sa.install(counter_tek + 1, now=now)
        self.created = now
        self.tek_installed_at = now
        self._served_at: float | None = None  # when this end last served a TEK update
        self._invalid_sent_at: float | None = None  # when this end last sent TEK-Invalid
        self._alt: Link | None = None  # the keys this link replaced or is about to be replaced by
        self._alt_until = 0.0

    def accept_also(self, other: Link | None, until: float = 0.0) -> None:
        """Until ``until``, data MPDUs this link refuses (bad ICV, unknown EKS) are tried under
        ``other`` as well; None ends it.

        Re-authentication replaces a link's AK, and the two ends switch a few frames apart: MPDUs
        sealed under the old keys are still in flight after one end switched (the ABS at MSG#3,
        an access RS at the AK Transfer), and the RS seals under the new keys before its AMS
        holds MSG#3. Without this they were refused as forgeries (bad ICV, one burst's worth
        per re-authentication) and left to ARQ. Only data: control messages are verified under
        the current keys alone and retransmitted by their procedures. An MPDU accepted under
        ``other`` changes only ``other``'s replay state; the grace is short (``RoleBase._grace``)
        and during it a forged MPDU costs two ICV checks instead of one
        (docs/threat-model.md §3)."""
        if other is not None:
            other._alt = None  # no chains: at most two key sets per link end
        self._alt, self._alt_until = other, until

    def _alternate(self, now: float | None) -> Link | None:
        alt = self._alt
        if alt is not None and (now is None or now >= self._alt_until):
            self._alt = alt = None
        return alt

    # -- control --------------------------------------------------------------------------------
    def sign(self, msg: Message) -> bytes:
        """Encoded ``msg`` with the CMAC tuple of this end's sending direction."""
        return self.signer.protect(msg.encode(), stid=self.stid)

    def verify(self, data: bytes) -> bytes:
        """Check the CMAC tuple of a received control message; returns the message body."""
        return self.verifier.verify(data, stid=self.stid)

    # -- data ---------------------------------------------------------------------------------
    def seal(self, fid: int, payload: bytes, now: float | None = None) -> bytes:
        """Protected MPDU of ``payload`` in this end's sending direction."""
        return mpdu.protect(
            self.sa, stid=self.stid, fid=fid, uplink=self.subordinate, payload=payload
        )

    def defer(self, fid: int, payload: bytes) -> PendingMpdu:
        """Like :meth:`seal`, but the PN is taken and the MPDU sealed later, together with the
        other MPDUs of its burst (``RoleBase.frames_to_send``)."""
        if not 0 <= fid <= 15:
            raise MalformedError(f"FID must be 4 bits, got {fid}")
        if len(payload) > mpdu.MAX_PROTECTED_PAYLOAD:
            raise MalformedError(f"payload of {len(payload)} bytes exceeds "
                                 f"{mpdu.MAX_PROTECTED_PAYLOAD}", reason="long_mpdu")
        return PendingMpdu(fid, bytes(payload), self.sa, self.stid, self.subordinate)

    def open(self, data: bytes, now: float | None = None) -> tuple[int, int, bytes]:
        """Verify/decrypt a received protected MPDU; returns (FID, EKS, payload).

        MPDUs under the TEK retired by the last update stay receivable (with their replay window)
        until the grace time given to :meth:`install` ends (``stack.sa`` ``rx_grace``), so frames
        in flight across a TEK update are not lost.
        """
        try:
            fid, eks, _pn, payload = mpdu.unprotect(
                self.sa, stid=self.stid, uplink=not self.subordinate, mpdu=data, now=now
            )
        except SecurityError as exc:
            alt = self._alternate(now) if exc.reason in _ALT_REASONS else None
            if alt is None:
                raise
            try:
                return alt.open(data, now)
            except SecurityError:
                raise exc from None
        self.note_rx_eks(eks)
        return fid, eks, payload

    def open_many(
        self, mpdus: list[bytes] | np.ndarray | bytes | bytearray, now: float | None = None
    ) -> tuple[list[tuple[int, int, bytes]], Counter[str]]:
        """Open consecutive protected MPDUs of one received burst with **one**
        ``stack.mac.open_burst`` call (one ``open_batch`` over the burst buffer).

        ``mpdus``: the run as one buffer -- a writeable 1-D uint8 array (a view into the received
        frame, opened **in place**, no copy; what ``RoleBase.receive`` passes) or bytes-like
        (copied once) -- or, for callers holding separate MPDUs, a list of them (joined first).
        Same checks and the same outcome per MPDU as :meth:`open` one at a time (TEK by EKS,
        retired-TEK grace, replay window, ICV; PNs recorded only after the ICV verified).
        Returns the accepted ``(FID, EKS, payload)`` in burst order and the rejections counted by
        reason; rejected MPDUs change no state and none of their bytes are returned. While
        :meth:`accept_also` holds, the MPDUs refused are tried under the other keys in a second
        ``open_burst`` (then the run is copied once before the first).
        """
        burst = b"".join(mpdus) if isinstance(mpdus, list) else mpdus
        alt = self._alternate(now)
        spare = None if alt is None else bytes(burst)  # opened in place: keep the ciphertexts
        opened, rejected = self._open_burst(burst, now)
        if alt is not None and spare is not None and any(rejected[r] for r in _ALT_REASONS):
            more, _ = alt._open_burst(spare, now)  # what our keys refused, under the others
            if more:
                rejected = _less(rejected, len(more))
                opened = sorted(opened + more)  # burst order (offsets are distinct)
        return [x[1:] for x in opened], rejected

    def _open_burst(self, burst: Any, now: float | None
                    ) -> tuple[list[tuple[int, int, int, bytes]], Counter[str]]:
        """One ``open_burst`` under this link's SA: accepted ``(offset, FID, EKS, payload)``
        in burst order, and the rejections by reason."""
        rx = open_burst(self.stid, burst, uplink=not self.subordinate,
                        lookup=lambda _stid, _fid: self.sa, now=now, plain_fids=())
        eks = rx.eks.tolist()
        for e in set(eks):  # the confirmation depends only on which EKSs arrived
            self.note_rx_eks(e)
        data = rx.buf.tobytes()  # one copy; each payload is then a slice of it
        offsets = rx.offset.tolist()
        opened = [(o, fid, e, data[o : o + n]) for fid, e, o, n in zip(
            rx.fid.tolist(), eks, offsets, rx.length.tolist(), strict=True)]
        return opened, rx.rejected

    def tek_invalid(self, now: float, min_interval: float) -> bytes | None:
        """Signed PKMv3 TEK-Invalid (SAID, unknown EKS) for the peer, or None if one was sent
        less than ``min_interval`` seconds ago (unauthenticated input must not make us flood).

        Sent by the serving end when the subordinate's MPDUs arrive under an EKS it no longer
        (or never) holds; the subordinate restarts from TEK-Request (digest §5.1 step 4).
        """
        if self._invalid_sent_at is not None and now - self._invalid_sent_at < min_interval:
            return None
        self._invalid_sent_at = now
        return self.sign(TekInvalid(said=self.sa.said, error_code=TekErrorCode.UNKNOWN_EKS))

    def note_rx_eks(self, eks: int) -> None:
        """Record that an authenticated MPDU under ``eks`` arrived (TEK-update confirmation).

        After this end served a TEK update (live pair ``(c+1, c+2)``), the peer sends under
        ``c+1`` only once it has installed the new pair (before, it sends under ``c``); seeing
        ``c+1`` therefore confirms the update, so the next TEK-Request is a new one.
        """
        if self._served_at is not None and self.sa.teks and eks == self.sa.teks[0].eks:
            self._served_at = None

    def install(self, counter_tek: int, now: float | None = None, grace: float = 2.0) -> None:
        """Install TEK(counter_tek); the oldest live TEK retires, receivable ``grace`` s more."""
        if counter_tek in self.counters:
            return
        if now is None:
            self.sa.install(counter_tek)
        else:
            self.sa.install(counter_tek, now=now, rx_grace=grace)
        self.tek_installed_at = now

    def serve_tek_request(self, now: float, *, grace: float, retry_span: float) -> bool:
        """Serving end: answer a (verified) TEK-Request. Returns True if a new TEK was installed.

        A TEK-Request may be a retransmission (our TEK-Reply was lost): the next TEK is installed
        only when the last update is confirmed (:meth:`note_rx_eks`) or older than the
        requester's whole retransmission span ``retry_span``; otherwise the same COUNTER_TEK is
        announced again. The requester installs every counter up to the announced one, so both
        ends converge even if it missed a reply.
        """
        if self._served_at is not None and now - self._served_at <= retry_span:
            return False
        self.install(self.newest_counter + 1, now, grace=grace)
        self._served_at = now
        return True

    @property
    def newest_counter(self) -> int:
        """Highest COUNTER_TEK installed."""
        c = self.sa.highest_counter_tek
        return 0 if c is None else c

    @property
    def counters(self) -> tuple[int, ...]:
        """Live COUNTER_TEKs, oldest first."""
        return tuple(t.counter_tek for t in self.sa.teks)

    def tx_eks(self) -> int | None:
        """EKS the next MPDU sent from this end would use (None when none usable)."""
        try:
            return self.sa.tx_tek(self.subordinate).eks
        except SecurityError:
            return None

    def info(self) -> KeyInfo:
        """Identifiers and check values (compare both ends without exposing keys)."""
        return KeyInfo(
            subject=self.subject,
            peer=self.peer,
            stid=self.stid,
            akid=self.ctx.akid.hex(),
            pmk_sn=self.ctx.pmk_sn,
            cmac_key_count=self.ctx.cmac_key_count,
            said=self.sa.said,
            counter_teks=self.counters,
            tx_eks=self.tx_eks(),
            kcv_cmac_u=kcv(self.ctx.cmac_key_u),
            kcv_cmac_d=kcv(self.ctx.cmac_key_d),
            kcv_teks=tuple(kcv(t.key) for t in self.sa.teks),
        )

    def __repr__(self) -> str:
        return (
            f"Link(subject={self.subject:#x}, peer={self.peer:#x}, stid={self.stid:#x}, "
            f"akid={self.ctx.akid.hex()}, teks={self.counters})"
        )
