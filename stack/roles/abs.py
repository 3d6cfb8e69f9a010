"""The ABS role: authenticator front end, key agreement, AK Transfer to access RSs, relay-link end,
handover anchor (digest §5.1, §6). Sans-I/O; see docs/roles.md."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from stack.crypto import wrap_key_padded
from stack.errors import MalformedError, ProtocolError, SecurityError, UnknownKeyError
from stack.keys import AkContext, derive_amsid_star, derive_pmk
from stack.mac import decapsulate_relay, encapsulate_relay
from stack.pkm import messages as m
from stack.roles.base import RoleBase
from stack.roles.config import AbsConfig, SecurityMode
from stack.roles.events import (
    AkTransferred,
    Attached,
    ContextReleased,
    DataReceived,
    EntryFailed,
    HandoverComplete,
)
from stack.roles.framing import (
    FID_CONTROL,
    FID_RELAY,
    FIRST_DATA_FID,
    LAST_DATA_FID,
    RELAY_MANAGEMENT_CODES,
    control_mpdu,
    mpdu_fid,
    plain_mpdu,
    plain_payload,
)
from stack.roles.ids import fmt_station, station_bytes, station_from_bytes
from stack.roles.link import KeyInfo, Link
from stack.roles.subscriber import SECURITY_PARAMS, _check_data

log = logging.getLogger("stack.roles")

_PROTECTED_FIDS = frozenset(range(1, 16))
"""FIDs the ABS opens with a directly attached station's SA (then rejects what is not data or
relay, exactly as a one-by-one open would)."""


@dataclass
class _Sub:
    """What the ABS knows about one AMS or ARS."""

    station: int
    stid: int
    via: int
    amsid_star: bytes
    session: Any = None
    pmk: bytes | None = None
    pmk_sn: int = -1
    count: int = 0
    link: Link | None = None          # ABS end (CMAC always; TEKs when the ABS terminates the SA)
    new_link: Link | None = None
    nonce_abs: bytes | None = None
    nonce_ams: bytes | None = None
    msg3: m.KeyAgreementMsg3 | None = None
    pending: dict = field(default_factory=dict)
    serial: int = 0                   # names this entry's retransmission keys

    def key(self, what: str) -> tuple:
        """Retransmission key of ``what`` (``eap``/``ka``) for this entry, distinct from any
        other entry of the same station (an established context and a parallel new entry)."""
        return (what, self.station, self.serial)

    @property
    def in_progress(self) -> bool:
        """Entry (or re-authentication) under way: EAP running or key agreement pending."""
        return self.session is not None or self.new_link is not None


_MAX_STARS = 16
"""AMSID*s (one per initial-ranging attempt) remembered per station to refuse replays."""


class AbsRole(RoleBase):
    """Base station: authenticates AMSs/ARSs, runs key agreement, hands AKs to access RSs."""

    def __init__(self, config: AbsConfig, *, authenticator: Any, rng: object = None) -> None:
        super().__init__(config.station_id, config.timers, rng)  # type: ignore[arg-type]
        self.config = config
        self.life = config.lifetimes
        self.auth = authenticator
        self._subs: dict[int, _Sub] = {}
        self._fresh: dict[int, _Sub] = {}   # parallel new entry of a station that holds keys
        self._stars: dict[int, dict[bytes, None]] = {}  # AMSID*s seen per station (bounded)
        self._serial = 0
        self._by_stid: dict[int, int] = {}
        self._next_stid = config.first_stid
        self._txid = 0

    @property
    def distributed(self) -> bool:
        return self.config.mode == SecurityMode.DISTRIBUTED

    # -- public -----------------------------------------------------------------------------
    def send_data(self, dst: int, payload: bytes, now: float, *, fid: int = FIRST_DATA_FID) -> None:
        """Queue data to AMS/ARS ``dst`` (through its access RS when it has one)."""
        _check_data(payload, fid)
        sub = self._subs.get(dst)
        if sub is None or sub.link is None:
            raise UnknownKeyError("no keys for that station", reason="no_keys")
        if sub.via == self.station_id:
            self._queue(dst, self._seal(sub.link, fid, payload, now))
            return
        inner = plain_mpdu(fid, payload) if self.distributed else sub.link.seal(fid, payload, now)
        self._relay(sub, inner, now)

    def prepare_handover(self, ams: int, targets: list[int], now: float) -> None:
        """AK pre-distribution: send AK Transfer for CMAC_KEY_COUNT+1 to each target RS."""
        sub = self._subs[ams]
        for t in targets:
            if t != self.station_id and t in self._subs and self.distributed:
                self._ak_transfer(sub, t, sub.count + 1, now, then=None)

    def key_info(self, peer: int) -> KeyInfo | None:
        sub = self._subs.get(peer)
        return None if sub is None or sub.link is None else sub.link.info()

    def via_of(self, ams: int) -> int | None:
        """The access station the ABS believes ``ams`` is attached to."""
        sub = self._subs.get(ams)
        return None if sub is None else sub.via

    # -- output helpers ---------------------------------------------------------------------
    def _relay(self, sub: _Sub, inner: bytes, now: float, title: str | None = None) -> None:
        ars = self._subs[sub.via]
        assert ars.link is not None
        relay = encapsulate_relay([(sub.stid, inner)])
        self._queue(sub.via, self._seal(ars.link, FID_RELAY, relay, now), title)

    def _to_ars(self, ars: _Sub, body: bytes, title: str, now: float) -> None:
        """Relay management to an ARS itself: plain FID 0, or inside its relay SA when
        ``encrypt_relay_control`` (relay item carrying the ARS's own STID)."""
        if not self.config.encrypt_relay_control:
            self._queue(ars.station, control_mpdu(body), title)
            return
        assert ars.link is not None
        self._queue(ars.station, self._seal(
            ars.link, FID_RELAY, encapsulate_relay([(ars.stid, control_mpdu(body))]), now), title)

    def _to_sub(self, sub: _Sub, body: bytes, title: str, now: float) -> None:
        if sub.via == self.station_id:
            self._queue(sub.station, control_mpdu(body), title)
        else:
            self._relay(sub, control_mpdu(body), now, title)

    # -- receive ----------------------------------------------------------------------------
    def _rx_link(self, src: int) -> tuple[Link, frozenset[int]] | None:
        sub = self._subs.get(src)
        if sub is None or sub.link is None or sub.via != self.station_id:
            return None
        return sub.link, _PROTECTED_FIDS

    def _on_mpdu(self, src: int, mpdu: bytes, now: float) -> None:
        fid = mpdu_fid(mpdu)
        if fid == FID_CONTROL:
            self._on_control(src, self.station_id, None, plain_payload(mpdu), now)
            return
        rx = self._rx_link(src)
        if rx is None:
            raise UnknownKeyError("protected MPDU from a station without keys", reason="no_keys")
        fid, _eks, payload = self._open(rx[0], mpdu, now)
        self._on_opened(src, rx[0], fid, payload, now)

    def _on_opened(self, src: int, link: Link, fid: int, payload: bytes, now: float) -> None:
        if FIRST_DATA_FID <= fid <= LAST_DATA_FID:
            self._emit(DataReceived(src=src, payload=payload, fid=fid, via=src))
        elif fid == FID_RELAY:
            for stid, inner in decapsulate_relay(payload):
                try:  # one bad item (e.g. an AMS MPDU failing its ICV) spoils no other
                    self._on_relayed(src, stid, inner, now)
                except SecurityError as exc:
                    self._reject(src, exc.reason, str(exc))
        else:
            raise MalformedError(f"unexpected FID {fid}", reason="bad_fid")

    def _on_unknown_eks(self, link: Link, now: float) -> None:
        sub = self._subs.get(link.subject)
        if sub is None or sub.link is not link:
            return
        body = self._send_tek_invalid(link, now)
        if body is not None:
            self._to_sub(sub, body, m.TekInvalid.TITLE, now)

    def _on_relayed(self, ars: int, stid: int, inner: bytes, now: float) -> None:
        fid = mpdu_fid(inner)
        if fid == FID_CONTROL:
            if stid == self._subs[ars].stid:  # the ARS's own control, sealed in its relay SA
                self._on_control(ars, self.station_id, None, plain_payload(inner), now,
                                 sealed=True)
            else:
                self._on_control(ars, ars, stid, plain_payload(inner), now)
            return
        station = self._by_stid.get(stid)
        sub = self._subs.get(station) if station is not None else None
        if sub is None:
            raise UnknownKeyError("relayed data for an unknown AMS", reason="unknown_ams")
        if sub.via != ars:  # e.g. the AMS's last packet on the old path after a handover
            raise ProtocolError("relayed data from an ARS not serving the AMS",
                                reason="wrong_link")
        if self.distributed:
            fid, payload = fid, plain_payload(inner)
        else:
            assert sub.link is not None
            fid, _eks, payload = self._open(sub.link, inner, now)
        self._emit(DataReceived(src=sub.station, payload=payload, fid=fid, via=ars))

    def _on_control(self, src: int, via: int, stid: int | None, data: bytes, now: float,
                    sealed: bool = False) -> None:
        cls = m.message_class(data[0])
        if cls.CODE in RELAY_MANAGEMENT_CODES and self.config.encrypt_relay_control \
                and not sealed:
            raise ProtocolError(f"{cls.TITLE} outside the relay SA", reason="not_encrypted")
        if cls is m.RngReq:
            try:
                msg = m.RngReq.decode(data)
            except MalformedError:
                msg = None
            if msg is not None and msg.purpose == m.RangingPurpose.INITIAL_ENTRY:
                self._on_initial_ranging(msg, via, now)
            else:
                self._on_reentry(data, via, now)
            return
        station = src if via == self.station_id else self._by_stid.get(stid, -1)
        sub = self._subs.get(station)
        fresh = self._fresh.get(station)
        if sub is None:
            raise UnknownKeyError("control message from an unknown station",
                                  reason="unknown_station")
        if cls in (m.EapTransfer, m.KeyAgreementMsg2):
            # Entry messages: a parallel new entry of this station (if any) first, then the
            # established context (re-authentication). Each checks EAP identifiers/RANDs or
            # the CMAC under its own AK, so a message fits at most one of them.
            cands = [x for x in (fresh, sub) if x is not None and
                     (x.via == via or (x is sub and via == self.station_id))]
            if not cands:
                raise ProtocolError("relayed by a station that does not serve it",
                                    reason="wrong_link")
            first: SecurityError | None = None
            for x in cands:
                try:
                    if cls is m.EapTransfer:
                        self._on_eap(x, m.EapTransfer.decode(data), now)
                    else:
                        self._on_ka2(x, data, now)
                    return
                except SecurityError as exc:
                    first = first or exc
            assert first is not None
            raise first
        if via != self.station_id and sub.via != via:
            raise ProtocolError("relayed by a station that does not serve it",
                                reason="wrong_link")
        else:
            if sub.link is None:
                raise UnknownKeyError("no keys for that station", reason="no_keys")
            msg = m.decode(sub.link.verify(data))
            self._on_protected(sub, msg, now)

    def _on_initial_ranging(self, msg: m.RngReq, via: int, now: float) -> None:
        """Initial-entry AAI-RNG-REQ (unauthenticated). docs/roles.md §6 "Entry restarts":

        * a duplicate of the attempt in progress (same AMSID*) gets the cached RNG-RSP again;
        * an AMSID* seen before for this station (a replay, or an attempt that is over) is
          refused (``stale_entry``);
        * a new AMSID* from a station whose entry never completed restarts its entry: the old
          attempt's EAP, key agreement and AK Transfer are abandoned (same STID);
        * a new AMSID* from a station holding keys starts a *parallel* entry; the established
          context stays untouched and is replaced only when the new entry completes (EAP with
          the station's PSK and key agreement), so a forged or replayed RNG-REQ cannot
          deauthenticate anyone.
        """
        station = station_from_bytes(msg.amsid)
        star = derive_amsid_star(msg.amsid, msg.nonce_ams)
        sub = self._subs.get(station)
        fresh = self._fresh.get(station)
        current = fresh or sub
        if current is not None and current.amsid_star == star:
            if current.link is None and current.in_progress and current.via == via:
                self._to_sub(current, current.pending["rsp"], m.RngRsp.TITLE, now)
                return
            raise ProtocolError("initial ranging of an entry that is over", reason="stale_entry")
        stars = self._stars.setdefault(station, {})
        if star in stars:
            raise ProtocolError("replayed initial ranging", reason="stale_entry")
        stars[star] = None
        while len(stars) > _MAX_STARS:
            del stars[next(iter(stars))]
        stid = sub.stid if sub is not None else self._new_stid()
        self._serial += 1
        new = _Sub(station=station, stid=stid, via=via, amsid_star=star, serial=self._serial)
        if sub is None or sub.link is None:
            if sub is not None:
                log.info("%s: entry of %s restarts", fmt_station(self.station_id),
                         fmt_station(station))
                self._abandon(sub, now)
            self._subs[station] = new
            self._by_stid[stid] = station
        else:
            if fresh is not None:
                self._abandon(fresh, now)
            log.info("%s: %s holds keys; new entry runs in parallel",
                     fmt_station(self.station_id), fmt_station(station))
            self._fresh[station] = new
        new.session = self.auth.start(msg.amsid)
        rsp = m.RngRsp(purpose=m.RangingPurpose.INITIAL_ENTRY, status=m.RngStatus.SUCCESS,
                       stid=stid, amsid=msg.amsid, nonce_ams=msg.nonce_ams)
        new.pending["rsp"] = rsp.encode()
        self._to_sub(new, rsp.encode(), rsp.TITLE, now)
        self._eap_request(new, now)

    def _abandon(self, sub: _Sub, now: float) -> None:
        """Drop an entry attempt that will not complete: stop its retransmissions (EAP, key
        agreement, AK Transfers) and, if an access RS may have accepted its AK, ask the RS to
        release that context (named by AKID, so a newer context is never hit)."""
        self._answered(sub.key("eap"))
        self._answered(sub.key("ka"))
        for key in [k for k in sub.pending if isinstance(k, tuple) and k[0] == "akt"]:
            self._answered(key)
        if self._fresh.get(sub.station) is sub:
            del self._fresh[sub.station]
        link = sub.new_link
        sub.session, sub.new_link = None, None
        if link is not None and self.distributed and sub.via != self.station_id \
                and sub.via in self._subs and self._subs[sub.via].link is not None:
            self._release(sub, sub.via, link.ctx.akid, now)

    def _new_stid(self) -> int:
        while self._next_stid in self._by_stid:
            self._next_stid += 1
        if self._next_stid > 0xFFF:
            raise ProtocolError("no STID left", reason="no_stid")
        return self._next_stid

    def _eap_request(self, sub: _Sub, now: float) -> None:
        session = sub.session

        def send() -> None:
            if session.pending is not None:
                self._to_sub(sub, m.EapTransfer(eap_payload=session.pending).encode(),
                             m.EapTransfer.TITLE, now)

        def fail(now2: float) -> None:  # the peer went silent: this EAP conversation is over
            if sub.session is session:
                sub.session = None
                if self._fresh.get(sub.station) is sub:
                    del self._fresh[sub.station]

        self._request(sub.key("eap"), sub.via, "eap", send, now, on_fail=fail)

    def _on_eap(self, sub: _Sub, msg: m.EapTransfer, now: float) -> None:
        if sub.session is None:
            raise ProtocolError("EAP without a conversation", reason="unexpected_message")
        reply, result = sub.session.handle(msg.eap_payload)
        self._answered(sub.key("eap"))
        if result is None:
            self._eap_request(sub, now)
            return
        if reply is not None:
            self._to_sub(sub, m.EapTransfer(eap_payload=reply).encode(), m.EapTransfer.TITLE, now)
        sub.session = None
        if not result.success:
            if self._fresh.get(sub.station) is sub:
                del self._fresh[sub.station]  # the established context (if any) is untouched
            self._emit(EntryFailed(station=sub.station, reason=result.reason))
            return
        sub.pmk = derive_pmk(result.msk)
        sub.pmk_sn = (sub.pmk_sn + 1) % 16
        sub.count = 0
        ctx = AkContext.derive(sub.pmk, pmk_sn=sub.pmk_sn, amsid_star=sub.amsid_star,
                               absid=station_bytes(sub.via), cmac_key_count=0)
        sub.new_link = Link(ctx, subject=sub.station, peer=sub.via, stid=sub.stid,
                            subordinate=False, now=now, pn_refresh=self.life.pn_refresh)
        sub.nonce_abs, sub.msg3 = self._random(8), None
        link = sub.new_link
        msg1 = m.KeyAgreementMsg1(nonce_abs=sub.nonce_abs, akid=ctx.akid,
                                  key_lifetime=int(self.life.ak))

        def send() -> None:
            self._to_sub(sub, link.sign(msg1), msg1.TITLE, now)

        def fail(now2: float) -> None:  # no MSG#2: the agreement (and this attempt) is over
            if sub.new_link is link:
                sub.new_link = None
                if self._fresh.get(sub.station) is sub:
                    del self._fresh[sub.station]

        self._request(sub.key("ka"), sub.via, "key_agreement", send, now, on_fail=fail)

    def _on_ka2(self, sub: _Sub, data: bytes, now: float) -> None:
        link = sub.new_link or sub.link
        if link is None:
            raise ProtocolError("MSG#2 without an agreement", reason="unexpected_message")
        msg = m.KeyAgreementMsg2.decode(link.verify(data))
        if msg.nonce_abs != sub.nonce_abs:
            raise ProtocolError("MSG#2 NONCE_ABS does not match", reason="bad_nonce")
        if msg.akid != link.ctx.akid:
            raise ProtocolError("MSG#2 AKID does not match", reason="bad_akid")
        if sub.msg3 is not None:  # duplicate MSG#2: our MSG#3 was lost
            if sub.nonce_ams != msg.nonce_ams:
                raise ProtocolError("MSG#2 NONCE_AMS changed", reason="bad_nonce")
            self._to_sub(sub, link.sign(sub.msg3), sub.msg3.TITLE, now)
            return
        if not self._answered(sub.key("ka")):
            return  # AK Transfer in progress; MSG#3 follows its ACK
        sub.nonce_ams = msg.nonce_ams
        msg3 = m.KeyAgreementMsg3(
            nonce_abs=sub.nonce_abs, nonce_ams=msg.nonce_ams, akid=link.ctx.akid,
            sa_tek_updates=(m.SaTekUpdate(said=self.config.said, crypto_suite=1, counter_tek=0,
                                          eks=0, tek_lifetime=int(self.life.tek)),),
            security_params=SECURITY_PARAMS)

        def finish(now2: float) -> None:
            sub.msg3 = msg3
            self._to_sub(sub, link.sign(msg3), msg3.TITLE, now2)
            cause = "entry" if sub.link is None else "reauth"
            if self._fresh.get(sub.station) is sub:
                self._promote(sub, now2)
            sub.link, sub.new_link = link, None
            self._keys_event(link, cause)
            if cause == "entry":
                self._emit(Attached(station=sub.station, via=sub.via, stid=sub.stid))

        if self.distributed and sub.via != self.station_id:
            self._ak_transfer(sub, sub.via, 0, now, then=finish, ctx=link.ctx)
        else:
            finish(now)

    def _promote(self, new: _Sub, now: float) -> None:
        """A parallel entry completed: it replaces the station's established context. The old
        context's procedures stop; the access RS that held it releases it (by AKID)."""
        del self._fresh[new.station]
        old = self._subs[new.station]
        old_link = old.link
        self._abandon(old, now)
        self._subs[new.station] = new
        if old.via != new.via and old.via != self.station_id and old_link is not None:
            self._release(old, old.via, old_link.ctx.akid, now)
        elif old.via == self.station_id and new.via != self.station_id:
            self._emit(ContextReleased(ams=new.station, station=self.station_id))

    # -- AK Transfer ------------------------------------------------------------------------
    def _ak_transfer(self, sub: _Sub, ars: int, count: int, now: float, then: Any,
                     ctx: AkContext | None = None, txid: int | None = None) -> None:
        ars_sub = self._subs.get(ars)
        if ars_sub is None or ars_sub.link is None or sub.pmk is None:
            raise UnknownKeyError("AK Transfer to a station without keys", reason="no_keys")
        if ctx is None:
            ctx = AkContext.derive(sub.pmk, pmk_sn=sub.pmk_sn, amsid_star=sub.amsid_star,
                                   absid=station_bytes(ars), cmac_key_count=count)
        if txid is None:
            self._txid = (self._txid + 1) & 0xFF
            txid = self._txid
        msg = m.AkTransfer(
            transaction_id=txid, ams_stid=sub.stid, amsid_star=sub.amsid_star, akid=ctx.akid,
            ak_sn=sub.pmk_sn, ak_lifetime=int(self.life.ak), cmac_key_count=count,
            sa_context=(m.SaContext(said=self.config.said, counter_tek=0, eks=0,
                                    tek_lifetime=int(self.life.tek)),),
            wrapped_ak=wrap_key_padded(ars_sub.link.ctx.kek, ctx.ak))
        ars_link = ars_sub.link
        sub.pending[("akt", ars, txid)] = (then, ctx)

        def send() -> None:
            self._to_ars(ars_sub, ars_link.sign(msg), msg.TITLE, now)

        self._request(("akt", ars, txid), ars, "ak_transfer", send, now)

    def _on_protected(self, sub: _Sub, msg: m.Message, now: float) -> None:
        if isinstance(msg, m.AkTransferAck):
            self._on_akt_ack(sub, msg, now)
        elif isinstance(msg, m.AkRequest):
            ams = self._subs.get(self._by_stid.get(msg.ams_stid, -1))
            if ams is None or msg.cmac_key_count <= ams.count:
                raise ProtocolError("AK Request for an unknown AMS or stale count",
                                    reason="unknown_ams")
            self._ak_transfer(ams, sub.station, msg.cmac_key_count, now, then=None,
                              txid=msg.transaction_id)
        elif isinstance(msg, m.ContextReleaseAck):
            self._answered(("rel", sub.station, msg.transaction_id))
        elif isinstance(msg, m.TekRequest):
            self._serve_tek_request(sub, now)
        elif isinstance(msg, m.ReauthRequest):
            if sub.session is None:
                sub.session = self.auth.start(station_bytes(sub.station))
                self._eap_request(sub, now)
        else:
            raise ProtocolError(f"unexpected {type(msg).__name__}", reason="unexpected_message")

    def _on_akt_ack(self, ars: _Sub, msg: m.AkTransferAck, now: float) -> None:
        ams = self._subs.get(self._by_stid.get(msg.ams_stid, -1))
        if ams is None:
            raise UnknownKeyError("ACK for an unknown AMS", reason="unknown_ams")
        key = ("akt", ars.station, msg.transaction_id)
        fresh = self._fresh.get(ams.station)
        if fresh is not None and key in fresh.pending:
            ams = fresh
        if not self._answered(key):
            return
        then, ctx = ams.pending.pop(key)
        self._emit(AkTransferred(ams=ams.station, ars=ars.station, akid=ctx.akid.hex(),
                                 cmac_key_count=ctx.cmac_key_count, status=msg.status))
        if then is not None and msg.status == m.AkStatus.OK:
            then(now)

    def _serve_tek_request(self, sub: _Sub, now: float) -> None:
        assert sub.link is not None
        self._to_sub(sub, self._serve_tek(sub.link, self.life.tek, now), m.TekReply.TITLE, now)

    # -- handover ---------------------------------------------------------------------------
    def _on_reentry(self, data: bytes, via: int, now: float) -> None:
        body = data[: -11]
        msg = m.RngReq.decode(body)
        sub = self._subs.get(self._by_stid.get(msg.stid or -1, -1))
        if sub is None or sub.pmk is None:
            raise UnknownKeyError("re-entry of an unknown AMS", reason="unknown_ams")
        target = station_from_bytes(msg.target_id)
        if target != via or (msg.cmac_key_count <= sub.count and sub.via == via):
            if sub.via == via and sub.link is not None and \
                    sub.link.ctx.cmac_key_count == msg.cmac_key_count:
                self._to_sub(sub, sub.pending["ho_rsp"], m.RngRsp.TITLE, now)  # lost RSP
                return
            raise ProtocolError("re-entry with a stale CMAC_KEY_COUNT", reason="stale_count")
        ctx = AkContext.derive(sub.pmk, pmk_sn=sub.pmk_sn, amsid_star=sub.amsid_star,
                               absid=station_bytes(target), cmac_key_count=msg.cmac_key_count)
        link = Link(ctx, subject=sub.station, peer=target, stid=sub.stid, subordinate=False,
                    now=now, pn_refresh=self.life.pn_refresh)
        link.verify(data)
        old_via, old_link = sub.via, sub.link
        sub.via, sub.link, sub.count = target, link, msg.cmac_key_count
        rsp = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY, status=m.RngStatus.SUCCESS,
                       stid=sub.stid, amsid=None)
        sub.pending["ho_rsp"] = link.sign(rsp)
        self._to_sub(sub, sub.pending["ho_rsp"], rsp.TITLE, now)
        self._emit(HandoverComplete(ams=sub.station, source=old_via, target=target,
                                    akid=ctx.akid.hex(), cmac_key_count=ctx.cmac_key_count))
        if old_via != target and old_via != self.station_id:
            # Tell the old access RS to drop the AMS (keys in distributed mode, forwarding entry in
            # centralized mode). The AKID names the context so a late release never hits a newer.
            akid = old_link.ctx.akid if old_link is not None else bytes(8)
            self._release(sub, old_via, akid, now)
        elif old_via == self.station_id and target != self.station_id:
            self._emit(ContextReleased(ams=sub.station, station=self.station_id))

    def _release(self, sub: _Sub, ars: int, akid: bytes, now: float) -> None:
        ars_sub = self._subs[ars]
        assert ars_sub.link is not None
        self._txid = (self._txid + 1) & 0xFF
        txid = self._txid
        # The ARS context's AKID is that of the AK derived for the ARS at the AMS's count there.
        msg = m.ContextRelease(transaction_id=txid, ams_stid=sub.stid, akid=akid,
                               reason=m.ReleaseReason.HANDOVER_COMPLETE)
        link = ars_sub.link

        def send() -> None:
            self._to_ars(ars_sub, link.sign(msg), msg.TITLE, now)

        self._request(("rel", ars, txid), ars, "context_release", send, now)
