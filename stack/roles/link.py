"""Security state of one link end: the AK context, CMAC signer/verifier and the primary SA.

A *link* is the pair (subject, serving station): an AMS with its access station, or an ARS with the
ABS. The subject is the *subordinate* end (it sends uplink); the STID of the link is the subject's.
Both ends hold a :class:`Link` built from the same :class:`stack.keys.AkContext`.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack import mpdu
from stack.cmac import CmacPnCounter, CmacSigner, CmacVerifier
from stack.crypto import aes_cmac
from stack.errors import UnknownKeyError
from stack.keys import AkContext
from stack.pkm.messages import Message
from stack.sa import ReplayWindow, SecurityAssociation, Tek

KCV_LABEL = b"relaysec-kcv"


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
        self._retired: tuple[Tek, ReplayWindow, float] | None = None
        self.tek_installed_at = now

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

    def open(self, data: bytes, now: float | None = None) -> tuple[int, int, bytes]:
        """Verify/decrypt a received protected MPDU; returns (FID, EKS, payload).

        MPDUs under the TEK retired by the last update are still accepted (with their replay
        window) until the grace time ends, so frames in flight across a TEK update are not lost.
        """
        uplink = not self.subordinate
        try:
            fid, eks, _pn, payload = mpdu.unprotect(
                self.sa, stid=self.stid, uplink=uplink, mpdu=data
            )
        except UnknownKeyError:
            hdr = mpdu.parse_protected(data)
            ret = self._retired
            if ret is None or ret[0].eks != hdr.eks or now is None or now > ret[2]:
                raise
            ret[1].check(hdr.pn)
            fid, eks, _pn, payload = mpdu.unseal(ret[0].key, stid=self.stid, uplink=uplink,
                                                 mpdu=data)
            ret[1].record(hdr.pn)
        return fid, eks, payload

    def install(self, counter_tek: int, now: float | None = None, grace: float = 2.0) -> None:
        """Install TEK(counter_tek); the oldest live TEK retires, receivable ``grace`` s more."""
        if counter_tek in self.counters:
            return
        if len(self.sa.teks) >= 2:
            # TODO(A): stack.sa could expose a retired TEK's receive window; read it here.
            oldest = self.sa._live[0]
            window = oldest.rx[not self.subordinate]
            self._retired = (oldest.tek, window, (now or 0.0) + grace)
        self.sa.install(counter_tek, now=now)
        self.tek_installed_at = now

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
        except Exception:
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
