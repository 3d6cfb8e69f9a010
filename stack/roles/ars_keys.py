"""The ARS's AMS keys (digest §6.1, §6.3, §6.5): initial ranging and handover re-entry
through us, AK Transfer and Context Release from the ABS, the handover AKs held for expected
arrivals, and TEK-Request / TEK-Invalid for the AMSs whose keys we hold.

A mixin of :class:`stack.roles.ars.ArsRole` (which holds the state named below): relaying --
the receive paths from the AMSs and from the ABS, relay encapsulation, per-hop ARQ -- lives
there; what an AMS's keys need here, when they are installed and when they go, lives here. Kept
apart because the two change for different reasons (ARQ and routing vs. the key hierarchy and
the threat model), as on the ABS (:mod:`stack.roles.abs_keys`).

What strangers can make an ARS keep is bounded (docs/threat-model.md): initial-ranging requests
are relayed at a limited rate and remembered for a bounded number of stations; handover requests
waiting for an AK and AKs waiting for their AMS are capped and expire. An AMS's key context is
installed only when the AMS's own CMAC-verified request (or the ABS's AK Transfer after its
entry) justifies it, and never replaces a live context before that.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stack.crypto import unwrap_key_padded
from stack.errors import (
    IntegrityError,
    MalformedError,
    ProtocolError,
    SecurityError,
    UnknownKeyError,
)
from stack.keys import AkContext, derive_amsid_star
from stack.pkm import messages as m
from stack.roles.base import RELAYED
from stack.roles.config import ArsConfig, Lifetimes, Timers
from stack.roles.events import (
    AkTransferred,
    ContextReleased,
    HandoverComplete,
)
from stack.roles.framing import (
    CMAC_TUPLE_LEN,
    RELAY_MANAGEMENT_CODES,
    control_mpdu,
    signed_body,
)
from stack.roles.ids import station_bytes, station_from_bytes
from stack.roles.link import Link, PendingMpdu

if TYPE_CHECKING:
    from stack.roles.ars import _StidMap


ARS_CMAC_PN_START = 0x800000
"""The ARS's downlink CMAC_PN for an AMS starts in the upper half of the space [D]: the ABS used the
lower half for the same AK during key agreement, and the AMS keeps one replay counter per AK."""

_MAX_STARS = 16
"""AMSID*s (initial-ranging attempts) remembered per AMS."""


@dataclass(eq=False)
class _HoWait:
    """A handover re-entry request waiting for the AK the ARS asked the ABS for."""

    src: int
    data: bytes = field(repr=False)
    body: m.RngReq
    since: float


class ArsKeys:
    """The AMS key holder side of the ARS (mixed into ArsRole): ranging and re-entry through us,
    AKs and releases from the ABS, TEKs for the AMSs we serve."""

    station_id: int
    timers: Timers
    life: Lifetimes
    link: Link | None
    serving: int | None
    distributed: bool
    encrypt_relay_control: bool
    _cfg: ArsConfig
    _txid: int
    _ams_links: dict[int, Link]
    _stid_station: _StidMap
    _entries: OrderedDict[int, dict[bytes, None]]
    _ho_wait: dict[int, _HoWait]
    _ho_aks: dict[tuple[int, int], tuple[Link, float]]
    _ho_fwd: OrderedDict[tuple[int, bytes], int]
    _ranging_tokens: float
    _ranging_at: float | None
    _ranging_last: OrderedDict[int, tuple[float, float]]
    _pending: dict[Hashable, Any]
    _grace: float
    # provided by ArsRole / SubscriberRole / RoleBase
    _up: Callable[..., tuple[int, bytes | PendingMpdu] | None]
    _to_abs: Callable[[bytes, str, float], None]
    _hops_end: Callable[..., None]
    _send_tek_invalid: Callable[[Link, float], bytes | None]
    _serve_tek: Callable[[Link, float, float], bytes]
    _keys_event: Callable[..., None]
    _arrived: Callable[[int], None]
    _queue: Callable[..., None]
    _request: Callable[..., None]
    _answered: Callable[[Hashable], bool]
    _set_deadline: Callable[[Hashable, float | None], None]
    _emit: Callable[[Any], None]
    _reject: Callable[..., None]

    def expected_arrivals(self) -> int:
        """Handover AKs held for AMSs that have not re-entered here yet (the ABS pre-distributed
        them): the MAC keeps contention slots open for them."""
        return len(self._ho_aks)

    def expected_stids(self) -> list[int]:
        """STIDs of the AMSs whose handover AKs the ABS pre-distributed to us and that have not
        re-entered here yet (an AMS keeps its STID across a handover): over the air the MAC
        grants each, by its STID, a UL slot of its own for a while (``relaysec.zonemac``), so
        its first data after our RNG-RSP goes in the next UL zone instead of a grant delay
        after we heard its RNG-REQ."""
        return sorted({stid for stid, _ in self._ho_aks})

    def serves(self, ams: int) -> bool:
        """True while this ARS holds an AMS key context for ``ams``."""
        return self._stid_station.stid_of(ams) in self._ams_links

    # -- TEKs of the AMSs we serve -----------------------------------------------------------
    def _on_unknown_eks(self, link: Link, now: float) -> None:
        """Unknown EKS: on our relay link the subordinate rule applies (nothing); from an AMS we
        serve, TEK-Invalid at most once per ``rto`` (see ``AbsRole._on_unknown_eks``)."""
        if link is not self.link and self._ams_links.get(link.stid) is link:
            body = self._send_tek_invalid(link, now)
            if body is not None:
                self._queue(link.subject, control_mpdu(body), m.TekInvalid.TITLE)

    def _serve_tek_request(self, link: Link, now: float) -> None:
        self._queue(link.subject, control_mpdu(self._serve_tek(link, self.life.tek, now)),
                    m.TekReply.TITLE)

    # -- ranging through us -----------------------------------------------------------------
    def _ranging_allowed(self, src: int, now: float) -> bool:
        """Rate limit on relaying unauthenticated initial ranging: a token bucket for the ARS
        and at most one request per ``rto / 2`` from one sender (an AMS retries every rto)."""
        cfg = self._cfg
        if self._ranging_at is not None:
            self._ranging_tokens = min(float(cfg.ranging_burst), self._ranging_tokens
                                       + (now - self._ranging_at) * cfg.max_ranging_per_s)
        self._ranging_at = now
        # per sender: a bucket of 3 requests refilled at one per rto (an AMS retries every rto)
        last = self._ranging_last.get(src)
        mine = 3.0 if last is None else min(3.0, last[1] + (now - last[0]) / self.timers.rto)
        if mine < 1.0 or self._ranging_tokens < 1.0:
            return False
        self._ranging_tokens -= 1.0
        self._ranging_last[src] = (now, mine - 1.0)
        self._ranging_last.move_to_end(src)
        while len(self._ranging_last) > cfg.max_known_stations:
            self._ranging_last.popitem(last=False)
        return True

    def _ams_ranging(self, src: int, data: bytes, now: float) -> None:
        try:
            req = m.RngReq.decode(data)
        except MalformedError:
            req = None
        if req is not None and req.purpose == m.RangingPurpose.INITIAL_ENTRY:
            if req.amsid is None or req.nonce_ams is None:
                raise MalformedError("initial ranging without AMSID", reason="malformed")
            if station_from_bytes(req.amsid) != src:
                raise ProtocolError("initial ranging for another station id",
                                    reason="wrong_link")
            if not self._ranging_allowed(src, now):
                raise ProtocolError("initial ranging over the rate limit",
                                    reason="rate_limited")
            stars = self._entries.setdefault(src, {})
            self._entries.move_to_end(src)
            stars[derive_amsid_star(req.amsid, req.nonce_ams)] = None
            while len(stars) > _MAX_STARS:
                del stars[next(iter(stars))]
            cfg = self._cfg
            while len(self._entries) > cfg.max_known_stations:
                self._entries.popitem(last=False)
            self._up(0, control_mpdu(data), now, RELAYED)
            return
        body = m.RngReq.decode(signed_body(data))
        if body.purpose != m.RangingPurpose.HANDOVER_REENTRY or body.stid is None:
            raise MalformedError("re-entry request without its fields", reason="malformed")
        if station_from_bytes(body.target_id) != self.station_id:
            raise ProtocolError("re-entry request names another target", reason="wrong_target")
        if not self.distributed:
            self._forward_reentry(src, body.stid, data, now)
            return
        self._distributed_reentry(src, body, data, now)

    def _forward_reentry(self, src: int, stid: int, data: bytes, now: float) -> None:
        """Centralized: relay the request; bind nothing until the ABS answers it (verified)."""
        cfg = self._cfg
        key = (stid, bytes(data[-CMAC_TUPLE_LEN:]))
        self._ho_fwd.setdefault(key, src)  # the first sender of a request keeps it
        self._ho_fwd.move_to_end(key)
        while len(self._ho_fwd) > cfg.max_pending_handovers:
            self._ho_fwd.popitem(last=False)
        self._up(stid, control_mpdu(data), now, RELAYED)

    def _distributed_reentry(self, src: int, body: m.RngReq, data: bytes, now: float) -> None:
        stid, count = body.stid, body.cmac_key_count
        assert stid is not None
        link = self._ams_links.get(stid)
        if link is not None and link.ctx.cmac_key_count == count:
            self._complete_ho(src, stid, link, data, body, now)
            return
        if link is not None and count <= link.ctx.cmac_key_count:
            raise ProtocolError("re-entry with a stale CMAC_KEY_COUNT", reason="stale_count")
        held = self._ho_aks.get((stid, count))
        if held is not None:  # pre-distributed by the ABS: verify, then install
            self._complete_ho(src, stid, held[0], data, body, now)
            return
        cfg = self._cfg
        waiting = self._ho_wait.get(stid)
        if waiting is None and len(self._ho_wait) >= cfg.max_pending_handovers:
            oldest = min(self._ho_wait, key=lambda s: self._ho_wait[s].since)
            self._ho_wait.pop(oldest)
            self._answered(("akreq", oldest))
        # The newest copy is what our AK Request carries next: a forged request racing the
        # AMS's delays it at most until the AMS's next retransmission.
        self._ho_wait[stid] = _HoWait(src, bytes(data), body, now)
        if waiting is not None and waiting.body.cmac_key_count == count \
                and ("akreq", stid) in self._pending:
            return  # our AK Request is still outstanding; it carries this copy from now on
        self._txid = (self._txid + 1) & 0xFF
        txid = self._txid

        def send() -> None:
            wait = self._ho_wait.get(stid)
            if wait is None or self.link is None:
                return
            req = m.AkRequest(transaction_id=txid, ams_stid=stid,
                              cmac_key_count=wait.body.cmac_key_count, rng_req=wait.data)
            self._to_abs(self.link.sign(req), req.TITLE, now)

        def fail(now2: float) -> None:  # the ABS never answered: refuse the re-entry
            wait = self._ho_wait.pop(stid, None)
            if wait is not None:
                rsp = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY,
                               status=m.RngStatus.ABORT, stid=stid, amsid=None,
                               request_cmac=wait.data[-CMAC_TUPLE_LEN:])
                self._queue(wait.src, control_mpdu(rsp.encode()), rsp.TITLE)

        self._request(("akreq", stid), self.serving, "ak_request", send, now, on_fail=fail)

    def _complete_ho(self, src: int, stid: int, link: Link, data: bytes, body: m.RngReq,
                     now: float) -> None:
        """The AMS's re-entry request verified under ``link``: install it (replacing any older
        context of the STID here) and answer; nothing changes if the CMAC does not verify."""
        link.verify(data)
        rsp = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY, status=m.RngStatus.SUCCESS,
                       stid=stid, amsid=None, request_cmac=bytes(data[-CMAC_TUPLE_LEN:]))
        self._queue(src, control_mpdu(link.sign(rsp)), rsp.TITLE)
        if self._ams_links.get(stid) is link and self._stid_station.get(stid) == src:
            return  # the AMS resent its request (our RNG-RSP was lost): answered again
        count = link.ctx.cmac_key_count
        for key in [k for k in self._ho_aks if k[0] == stid and k[1] <= count]:
            del self._ho_aks[key]
            self._set_deadline(("ho_ak", *key), None)
        self._hops_end(src)   # arriving by handover: both hops start afresh (so does the ABS)
        self._ams_links[stid] = link
        self._stid_station.bind(stid, src)
        link.subject = src
        self._keys_event(link, "handover")
        self._arrived(src)
        self._emit(HandoverComplete(ams=src, source=station_from_bytes(body.serving_id or
                                                                       bytes(6)),
                                    target=self.station_id, akid=link.ctx.akid.hex(),
                                    cmac_key_count=count))

        def send() -> None:
            self._up(stid, control_mpdu(data), now, "HO notify")

        self._request(("notify", stid), self.serving, "ho_notify", send, now)

    # -- own control from the ABS -----------------------------------------------------------
    def _on_other_control(self, src: int, cls: type[m.Message], data: bytes, now: float) -> None:
        self._on_own_control(src, cls, data, now, sealed=False)

    def _on_own_control(self, src: int, cls: type[m.Message], data: bytes, now: float, *,
                        sealed: bool) -> None:
        """Relay management addressed to this ARS (AK Transfer, Context Release)."""
        if self.link is None:
            raise UnknownKeyError("control before keys", reason="no_keys")
        if src != self.serving:
            raise ProtocolError(f"{cls.__name__} not from the ABS", reason="not_from_abs")
        if cls not in (m.AkTransfer, m.ContextRelease):
            raise ProtocolError(f"unexpected {cls.__name__}", reason="unexpected_message")
        if self.encrypt_relay_control and not sealed and cls.CODE in RELAY_MANAGEMENT_CODES:
            raise ProtocolError(f"{cls.__name__} outside the relay SA", reason="not_encrypted")
        msg = cls.decode(self.link.verify(data))
        if isinstance(msg, m.AkTransfer):
            self._on_ak_transfer(msg, now)
        elif isinstance(msg, m.ContextRelease):
            self._on_release(msg, now)

    def _on_release(self, msg: m.ContextRelease, now: float) -> None:
        assert self.link is not None
        stid = msg.ams_stid
        link = self._ams_links.get(stid)
        station = self._stid_station.get(stid)
        if link is not None and link.ctx.akid == msg.akid:
            del self._ams_links[stid]
            self._stid_station.unbind(stid)
            self._hops_end(link.subject, now, drain=(stid, link))
            self._emit(ContextReleased(ams=link.subject, station=self.station_id))
        elif not self.distributed and station is not None:
            self._stid_station.unbind(stid)  # centralized: only a forwarding entry to drop
            self._emit(ContextReleased(ams=station, station=self.station_id))
        ack = m.ContextReleaseAck(transaction_id=msg.transaction_id, ams_stid=msg.ams_stid)
        self._to_abs(self.link.sign(ack), ack.TITLE, now)

    def _on_ak_transfer(self, msg: m.AkTransfer, now: float) -> None:
        assert self.link is not None and self.serving is not None
        if not self.distributed:
            raise ProtocolError("AK Transfer in centralized mode", reason="unexpected_message")
        status = m.AkStatus.OK
        station = self._stid_station.get(msg.ams_stid)
        current = self._ams_links.get(msg.ams_stid)
        # An AK for CMAC_KEY_COUNT 0 follows EAP: it must be for an AMS that entered (or
        # re-authenticates) through us. Higher counts are handover AKs, held until the AMS's own
        # verified request installs them.
        known = station is not None and (
            msg.amsid_star in self._entries.get(station, {})
            or (current is not None and current.ctx.amsid_star == msg.amsid_star))
        ctx: AkContext | None = None
        if msg.cmac_key_count == 0 and not known:
            status = m.AkStatus.UNKNOWN_AMS
        else:
            try:
                ak = unwrap_key_padded(self.link.ctx.kek, msg.wrapped_ak)
                ctx = AkContext.from_ak(ak, pmk_sn=msg.ak_sn, amsid_star=msg.amsid_star,
                                        absid=station_bytes(self.station_id),
                                        cmac_key_count=msg.cmac_key_count)
                if ctx.akid != msg.akid:
                    raise IntegrityError("AKID mismatch", reason="bad_akid")
            except (IntegrityError, MalformedError):
                status = m.AkStatus.UNWRAP_FAILED
        ack = m.AkTransferAck(transaction_id=msg.transaction_id, ams_stid=msg.ams_stid,
                              akid=msg.akid, status=status)
        self._to_abs(self.link.sign(ack), ack.TITLE, now)
        if status != m.AkStatus.OK or ctx is None:
            reason = "unknown_ams" if status == m.AkStatus.UNKNOWN_AMS else "bad_ak"
            self._reject(self.serving, reason, "AK Transfer refused")
            return
        if current is not None and current.ctx.akid == ctx.akid:
            return  # retransmission: ACK again, nothing else
        held = self._ho_aks.get((msg.ams_stid, msg.cmac_key_count))
        if held is not None and held[0].ctx.akid == ctx.akid:
            return
        if current is not None and msg.cmac_key_count and \
                msg.cmac_key_count <= current.ctx.cmac_key_count:
            self._reject(self.serving, "stale_count", "AK Transfer for an older count")
            return
        sa = msg.sa_context[0] if msg.sa_context else m.SaContext(
            said=1, counter_tek=0, eks=0, tek_lifetime=msg.ak_lifetime)
        link = Link(ctx, subject=station or 0, peer=self.station_id, stid=msg.ams_stid,
                    subordinate=False, said=sa.said, counter_tek=sa.counter_tek, now=now,
                    cmac_pn_start=ARS_CMAC_PN_START, pn_refresh=self.life.pn_refresh)
        self._emit(AkTransferred(ams=station or 0, ars=self.station_id, akid=ctx.akid.hex(),
                                 cmac_key_count=ctx.cmac_key_count))
        if msg.cmac_key_count == 0:  # entry or re-authentication through us (ABS-verified)
            if current is None or current.ctx.amsid_star != ctx.amsid_star:
                self._hops_end(station or 0)   # a new entry (not a re-authentication): ARQ
                #                                starts afresh with it, as at the ABS
            else:  # re-authentication: the AMS sends under the old AK until its MSG#3
                link.accept_also(current, now + self._grace)
            self._ams_links[msg.ams_stid] = link
            self._keys_event(link, "ak_transfer")
            return
        cfg = self._cfg
        if len(self._ho_aks) >= cfg.max_pending_handovers:
            oldest = min(self._ho_aks, key=lambda k: self._ho_aks[k][1])
            del self._ho_aks[oldest]
        key = (msg.ams_stid, msg.cmac_key_count)
        self._ho_aks[key] = (link, now)
        self._set_deadline(("ho_ak", *key), now + max(float(msg.ak_lifetime), 1.0))
        wait = self._ho_wait.get(msg.ams_stid)
        if wait is not None and wait.body.cmac_key_count == msg.cmac_key_count:
            try:
                self._complete_ho(wait.src, msg.ams_stid, link, wait.data, wait.body, now)
            except SecurityError as exc:  # the waiting copy was not the AMS's: keep waiting
                self._reject(wait.src, exc.reason, str(exc))
                return
            self._ho_wait.pop(msg.ams_stid, None)
            self._answered(("akreq", msg.ams_stid))


__all__: list[Any] = ["ARS_CMAC_PN_START", "ArsKeys"]
