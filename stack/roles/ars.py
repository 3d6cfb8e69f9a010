"""The ARS role: an AMS towards the ABS (own entry, own SA = relay link) and, in distributed
security mode, the AMS's key holder on the access link (digest §6.1, §6.3, §6.5)."""

from __future__ import annotations

from typing import Any

from stack.crypto import unwrap_key_padded
from stack.errors import (
    IntegrityError,
    MalformedError,
    ProtocolError,
    SecurityError,
    UnknownKeyError,
)
from stack.keys import AkContext, derive_amsid_star
from stack.mac import decapsulate_relay, encapsulate_relay
from stack.pkm import messages as m
from stack.roles.config import ArsConfig, SecurityMode
from stack.roles.events import (
    AkTransferred,
    ContextReleased,
    HandoverComplete,
)
from stack.roles.framing import (
    DATA_FIDS,
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
from stack.roles.ids import station_bytes, station_from_bytes
from stack.roles.link import KeyInfo, Link
from stack.roles.subscriber import SubscriberRole

ARS_CMAC_PN_START = 0x800000
"""The ARS's downlink CMAC_PN for an AMS starts in the upper half of the space [D]: the ABS used the
lower half for the same AK during key agreement, and the AMS keeps one replay counter per AK."""

_MAX_STARS = 16
"""AMSID*s (initial-ranging attempts) remembered per AMS."""

_FROM_ABS_FIDS = DATA_FIDS | {FID_RELAY}
"""FIDs the ARS opens with its own (relay-link) SA."""


class ArsRole(SubscriberRole):
    """Access relay station."""

    def __init__(self, config: ArsConfig, rng: object = None) -> None:
        super().__init__(config, rng)
        self.mode = config.mode
        self.encrypt_relay_control = config.encrypt_relay_control
        self._txid = 0
        self._ams_links: dict[int, Link] = {}      # by AMS STID (distributed mode)
        self._stid_station: dict[int, int] = {}    # AMS STID -> station id
        # station -> AMSID*s seen at initial ranging (bounded, oldest first): a replayed old
        # RNG-REQ must not make us refuse the AK of the attempt that is actually running.
        self._entries: dict[int, dict[bytes, None]] = {}
        self._ho_wait: dict[int, tuple[int, bytes, m.RngReq]] = {}  # stid -> (station, req)

    @property
    def distributed(self) -> bool:
        return self.mode == SecurityMode.DISTRIBUTED

    def key_info(self, peer: int | None = None) -> KeyInfo | None:
        """``peer`` None/ABS: own relay link; an AMS id: that AMS's access link (distributed)."""
        if peer is None or peer == self.serving:
            return super().key_info()
        for stid, st in self._stid_station.items():
            if st == peer and stid in self._ams_links:
                return self._ams_links[stid].info()
        return None

    def serves(self, ams: int) -> bool:
        """True while this ARS holds an AMS key context for ``ams``."""
        return any(self._stid_station.get(s) == ams for s in self._ams_links)

    # -- receive ----------------------------------------------------------------------------
    def _on_mpdu(self, src: int, mpdu: bytes, now: float) -> None:
        if src == self.serving or (self._ho is not None and src == self._ho[0]):
            super()._on_mpdu(src, mpdu, now)
        else:
            self._from_ams(src, mpdu, now)

    def _rx_link(self, src: int) -> tuple[Link, frozenset[int]] | None:
        if src == self.serving:
            return None if self.link is None else (self.link, _FROM_ABS_FIDS)
        if self._ho is not None and src == self._ho[0]:
            return None
        if self.link is None or not self.distributed:
            return None
        link = self._ams_links.get(self._stid_of(src))
        return None if link is None else (link, DATA_FIDS)

    def _on_other_mpdu(self, src: int, fid: int, mpdu: bytes, now: float) -> None:
        if fid != FID_RELAY or self.link is None:
            raise MalformedError(f"unexpected FID {fid}", reason="bad_fid")
        _f, _e, payload = self._open(self.link, mpdu, now)
        self._on_opened(src, self.link, fid, payload, now)

    def _on_opened(self, src: int, link: Link, fid: int, payload: bytes, now: float) -> None:
        if link is not self.link:  # an AMS's access link: re-protect per hop towards the ABS
            self._up(link.stid, plain_mpdu(fid, payload), now)
        elif fid == FID_RELAY:
            self._maybe_refresh(now)
            for stid, inner in decapsulate_relay(payload):
                try:  # one bad item spoils no other
                    self._down(stid, inner, now)
                except SecurityError as exc:
                    self._reject(src, exc.reason, str(exc))
        else:
            super()._on_opened(src, link, fid, payload, now)

    def _on_unknown_eks(self, link: Link, now: float) -> None:
        if link is self.link:
            super()._on_unknown_eks(link, now)
        elif self._ams_links.get(link.stid) is link:
            body = self._send_tek_invalid(link, now)
            if body is not None:
                self._queue(link.subject, control_mpdu(body), m.TekInvalid.TITLE)

    def _stid_of(self, station: int) -> int:
        """STID of an AMS seen through this ARS (0 when not known)."""
        return next((s for s, st in self._stid_station.items() if st == station), 0)

    def _down(self, stid: int, inner: bytes, now: float) -> None:
        fid = mpdu_fid(inner)
        if fid == FID_CONTROL and stid == self.stid:  # our own control, sealed in our relay SA
            data = plain_payload(inner)
            assert self.serving is not None
            self._on_own_control(self.serving, m.message_class(data[0]), data, now, sealed=True)
            return
        if fid == FID_CONTROL:
            data = plain_payload(inner)
            if data[0] == m.RngRsp.CODE:
                try:
                    rsp = m.RngRsp.decode(data)
                except MalformedError:
                    rsp = None
                if rsp is not None and rsp.purpose == m.RangingPurpose.INITIAL_ENTRY:
                    st = station_from_bytes(rsp.amsid)
                    self._stid_station[rsp.stid] = st
                elif rsp is None and stid in self._ams_links:
                    self._answered(("notify", stid))  # ABS confirmed our handover notice
                    return
            station = self._stid_station.get(stid)
            if station is None:
                raise UnknownKeyError("control for an unknown AMS", reason="unknown_ams")
            self._queue(station, inner, "relayed")
            return
        station = self._stid_station.get(stid)
        if station is None:
            raise UnknownKeyError("data for an unknown AMS", reason="unknown_ams")
        if self.distributed:
            link = self._ams_links.get(stid)
            if link is None:
                raise UnknownKeyError("no AMS keys", reason="no_keys")
            self._queue(station, self._seal(link, fid, plain_payload(inner), now))
        else:
            self._queue(station, inner)

    def _up(self, stid: int, inner: bytes, now: float, title: str | None = None) -> None:
        assert self.link is not None and self.serving is not None
        self._queue(self.serving,
                    self._seal(self.link, FID_RELAY, encapsulate_relay([(stid, inner)]), now),
                    title)
        self._maybe_refresh(now)

    def _to_abs(self, body: bytes, title: str, now: float) -> None:
        """Relay management to the ABS: plain FID 0, or inside our relay SA when
        ``encrypt_relay_control`` (relay item carrying our own STID)."""
        assert self.serving is not None and self.stid is not None
        if self.encrypt_relay_control:
            self._up(self.stid, control_mpdu(body), now, title)
        else:
            self._queue(self.serving, control_mpdu(body), title)

    def _from_ams(self, src: int, mpdu: bytes, now: float) -> None:
        if self.link is None:
            raise UnknownKeyError("ARS not attached yet", reason="no_keys")
        fid = mpdu_fid(mpdu)
        stid = self._stid_of(src)
        if fid == FID_CONTROL:
            data = plain_payload(mpdu)
            cls = m.message_class(data[0])
            if cls is m.AkTransfer:
                raise ProtocolError("AK Transfer not from the ABS", reason="not_from_abs")
            if cls is m.RngReq:
                self._ams_ranging(src, data, now)
                return
            if cls is m.TekRequest and self.distributed:
                link = self._ams_links.get(stid)
                if link is None:
                    raise UnknownKeyError("TEK-Request from an AMS without keys", reason="no_keys")
                m.TekRequest.decode(link.verify(data))
                self._serve_tek_request(link, now)
                return
            self._up(stid, mpdu, now, "relayed")
            return
        if not FIRST_DATA_FID <= fid <= LAST_DATA_FID:
            raise MalformedError(f"unexpected FID {fid}", reason="bad_fid")
        if self.distributed:
            link = self._ams_links.get(stid)
            if link is None:
                raise UnknownKeyError("data from an AMS without keys", reason="no_keys")
            fid, _eks, payload = self._open(link, mpdu, now)
            self._on_opened(src, link, fid, payload, now)
        else:
            self._up(stid, mpdu, now)

    def _serve_tek_request(self, link: Link, now: float) -> None:
        self._queue(link.subject, control_mpdu(self._serve_tek(link, self.life.tek, now)),
                    m.TekReply.TITLE)

    def _ams_ranging(self, src: int, data: bytes, now: float) -> None:
        try:
            req = m.RngReq.decode(data)
        except MalformedError:
            req = None
        if req is not None and req.purpose == m.RangingPurpose.INITIAL_ENTRY:
            stars = self._entries.setdefault(src, {})
            stars[derive_amsid_star(req.amsid, req.nonce_ams)] = None
            while len(stars) > _MAX_STARS:
                del stars[next(iter(stars))]
            self._up(0, control_mpdu(data), now, "relayed")
            return
        if not self.distributed:
            body = m.RngReq.decode(data[:-11])
            self._stid_station[body.stid] = src
            self._up(body.stid, control_mpdu(data), now, "relayed")
            return
        body = m.RngReq.decode(data[:-11])
        stid = body.stid
        if station_from_bytes(body.target_id) != self.station_id:
            raise ProtocolError("re-entry request names another target", reason="wrong_target")
        link = self._ams_links.get(stid)
        if link is not None and link.ctx.cmac_key_count == body.cmac_key_count:
            self._complete_ho(src, stid, link, data, body, now)
            return
        waiting = self._ho_wait.get(stid)
        self._ho_wait[stid] = (src, data, body)
        if waiting is not None and waiting[2].cmac_key_count == body.cmac_key_count \
                and ("akreq", stid) in self._pending:
            return  # the AMS resent its request; our AK Request is still outstanding
        self._txid = (self._txid + 1) & 0xFF
        req2 = m.AkRequest(transaction_id=self._txid, ams_stid=stid,
                           cmac_key_count=body.cmac_key_count)
        own = self.link

        def send() -> None:
            self._to_abs(own.sign(req2), req2.TITLE, now)

        def fail(now2: float) -> None:  # the ABS never answered: refuse the re-entry
            wait = self._ho_wait.pop(stid, None)
            if wait is not None:
                rsp = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY,
                               status=m.RngStatus.ABORT, stid=stid, amsid=None)
                self._queue(wait[0], control_mpdu(rsp.encode()), rsp.TITLE)

        self._request(("akreq", stid), self.serving, "ak_request", send, now, on_fail=fail)

    def _complete_ho(self, src: int, stid: int, link: Link, data: bytes, body: m.RngReq,
                     now: float) -> None:
        link.verify(data)
        rsp = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY, status=m.RngStatus.SUCCESS,
                       stid=stid, amsid=None)
        self._queue(src, control_mpdu(link.sign(rsp)), rsp.TITLE)
        if self._stid_station.get(stid) == src and link.subject == src:
            return  # the AMS resent its request (our RNG-RSP was lost): answered again
        self._stid_station[stid] = src
        link.subject = src
        self._keys_event(link, "handover")
        self._emit(HandoverComplete(ams=src, source=station_from_bytes(body.serving_id),
                                    target=self.station_id, akid=link.ctx.akid.hex(),
                                    cmac_key_count=link.ctx.cmac_key_count))

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
        if src != self.serving and cls is m.AkTransfer:
            raise ProtocolError("AK Transfer not from the ABS", reason="not_from_abs")
        if self.encrypt_relay_control and not sealed and cls.CODE in RELAY_MANAGEMENT_CODES:
            raise ProtocolError(f"{cls.__name__} outside the relay SA", reason="not_encrypted")
        msg = m.decode(self.link.verify(data))
        if isinstance(msg, m.AkTransfer):
            self._on_ak_transfer(msg, now)
        elif isinstance(msg, m.ContextRelease):
            stid = msg.ams_stid
            link = self._ams_links.get(stid)
            station = self._stid_station.get(stid)
            if link is not None and link.ctx.akid == msg.akid:
                del self._ams_links[stid]
                self._stid_station.pop(stid, None)
                self._emit(ContextReleased(ams=link.subject, station=self.station_id))
            elif not self.distributed and station is not None:
                del self._stid_station[stid]  # centralized: only a forwarding entry to drop
                self._emit(ContextReleased(ams=station, station=self.station_id))
            ack = m.ContextReleaseAck(transaction_id=msg.transaction_id, ams_stid=msg.ams_stid)
            self._to_abs(self.link.sign(ack), ack.TITLE, now)
        else:
            raise ProtocolError(f"unexpected {type(msg).__name__}", reason="unexpected_message")

    def _on_ak_transfer(self, msg: m.AkTransfer, now: float) -> None:
        assert self.link is not None and self.serving is not None
        status = m.AkStatus.OK
        station = self._stid_station.get(msg.ams_stid)
        current = self._ams_links.get(msg.ams_stid)
        # An AK for CMAC_KEY_COUNT 0 follows EAP: it must be for an AMS that entered (or
        # re-authenticates) through us. Higher counts are handover AKs, possibly pre-distributed.
        known = station is not None and (
            msg.amsid_star in self._entries.get(station, {})
            or (current is not None and current.ctx.amsid_star == msg.amsid_star))
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
        if status != m.AkStatus.OK:
            reason = "unknown_ams" if status == m.AkStatus.UNKNOWN_AMS else "bad_ak"
            self._reject(self.serving, reason, "AK Transfer refused")
            return
        existing = self._ams_links.get(msg.ams_stid)
        if existing is not None and existing.ctx.akid == ctx.akid:
            return  # retransmission: ACK again, nothing else
        sa = msg.sa_context[0]
        link = Link(ctx, subject=station or 0, peer=self.station_id, stid=msg.ams_stid,
                    subordinate=False, said=sa.said, counter_tek=sa.counter_tek, now=now,
                    cmac_pn_start=ARS_CMAC_PN_START, pn_refresh=self.life.pn_refresh)
        self._ams_links[msg.ams_stid] = link
        self._emit(AkTransferred(ams=station or 0, ars=self.station_id, akid=ctx.akid.hex(),
                                 cmac_key_count=ctx.cmac_key_count))
        self._keys_event(link, "ak_transfer")
        wait = self._ho_wait.pop(msg.ams_stid, None)
        if wait is not None:
            self._answered(("akreq", msg.ams_stid))
            self._complete_ho(wait[0], msg.ams_stid, link, wait[1], wait[2], now)

    def send_data(self, dst: int, payload: bytes, now: float, *, fid: int = FIRST_DATA_FID,
                  ) -> None:
        """Own traffic to the ABS over the relay link."""
        super().send_data(dst, payload, now, fid=fid)


__all__: list[Any] = ["ArsRole"]
