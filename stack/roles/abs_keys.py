"""The ABS's key service (digest §5.1, §6.3, §6.5): AK Transfer and its ACK, AK Request, handover
re-entry, Context Release, AK expiry and RS restarts, and TEK-Request / TEK-Invalid.

A mixin of :class:`stack.roles.abs.AbsRole` (which holds the state named below): the entry side
-- attempts, EAP, key agreement -- lives there, what an authenticated station's keys may reach
and where they move lives here. Every AK leaves only for an authenticated access RS
(``AbsConfig.relays``) and only on the ABS's own decision or the AMS's own verified request
(docs/threat-model.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from stack.crypto import wrap_key_padded
from stack.errors import MalformedError, ProtocolError, UnknownKeyError
from stack.keys import AkContext
from stack.mac import encapsulate_relay
from stack.pkm import messages as m
from stack.roles.abs_state import Context, Entry, _AkTx
from stack.roles.config import AbsConfig, Lifetimes
from stack.roles.events import (
    AkTransferred,
    ContextReleased,
    HandoverComplete,
    PeerLost,
)
from stack.roles.framing import CMAC_TUPLE_LEN, FID_RELAY, control_mpdu, signed_body
from stack.roles.ids import fmt_station, station_bytes, station_from_bytes
from stack.roles.link import Link

log = logging.getLogger("stack.roles")


class KeyDistribution:
    """AK Transfer / AK Request / handover / release side of the ABS (mixed into AbsRole)."""

    station_id: int
    config: AbsConfig
    life: Lifetimes
    _contexts: dict[int, Context]
    _entries_of: dict[int, dict[int, Entry]]
    _by_stid: dict[int, int]
    _akt: dict[tuple[int, int], _AkTx]
    _rel: dict[tuple[int, int], int]
    _txid: int
    _pending: dict[Any, Any]
    distributed: bool
    # provided by AbsRole / RoleBase
    _is_relay: Callable[[int], bool]
    _serve_tek: Callable[..., bytes]
    _send_tek_invalid: Callable[..., bytes | None]
    _relay: Callable[..., Any]
    _arq_moved: Callable[..., None]
    _arrived: Callable[[int], None]
    _arq_close_hops: Callable[..., None]
    _seal: Callable[..., Any]
    _queue: Callable[..., None]
    _to_ctx: Callable[..., None]
    _request: Callable[..., None]
    _answered: Callable[[Any], bool]
    _emit: Callable[[Any], None]
    _drop: Callable[..., None]
    _forget_if_unknown: Callable[[int], None]

    def prepare_handover(self, ams: int, targets: list[int], now: float) -> None:
        """AK pre-distribution (the ABS's own decision): AK Transfer for CMAC_KEY_COUNT+1 to each
        target access RS that is an authenticated relay."""
        c = self._contexts.get(ams)
        if c is None:
            raise UnknownKeyError("no context for that AMS", reason="unknown_ams")
        if not self.distributed:
            return
        for t in targets:
            if t == self.station_id or not self._is_relay(t) or (t, c.count + 1) in c.ho_links:
                continue  # not an RS, or that AK was given to it already (once per AK and RS)
            link = self._ho_link(c, t, c.count + 1, now)
            c.ho_links[(t, c.count + 1)] = link
            self._ak_transfer(c.station, c.stid, c.pmk_sn, link.ctx, t, now)

    def _expire_context(self, c: Context, now: float) -> None:
        """The station's AK lifetime is over (it did not re-authenticate in time): its keys
        carry nothing more here, and the access RS holding them is told to drop them."""
        log.info("%s: AK of %s expired; context dropped", fmt_station(self.station_id),
                 fmt_station(c.station))
        del self._contexts[c.station]
        self._arq_close_hops(c.station)
        if c.via != self.station_id and self._is_relay(c.via):  # keys / forwarding entry
            self._release(c.station, c.stid, c.via, c.link.ctx.akid, now)
        self._emit(ContextReleased(ams=c.station, station=self.station_id))
        for e in list(self._entries_of.get(c.station, {}).values()):
            if e.reauth:
                self._drop(e, now, "ak_expired")
        self._forget_if_unknown(c.station)

    def _relay_restarted(self, old: Context, now: float) -> None:
        """An access RS entered anew: whatever AMS contexts it held are gone with its old keys.
        Their AMSs re-enter there with the next CMAC_KEY_COUNT once the RS tells them it holds
        nothing for them (RNG-RSP RERANGE, docs/threat-model.md); the ABS stops expecting
        anything of the old relay context."""
        log.info("%s: access RS %s restarted", fmt_station(self.station_id),
                 fmt_station(old.station))
        self._emit(PeerLost(peer=old.station, procedure="relay_restarted"))
        for key in [k for k in self._akt if k[0] == old.station]:
            del self._akt[key]
            self._answered(("akt", *key))
        for key in [k for k in self._rel if k[0] == old.station]:
            del self._rel[key]
            self._answered(("rel", *key))

    def _new_txid(self, ars: int) -> int:
        for _ in range(256):
            self._txid = (self._txid + 1) & 0xFF
            if (ars, self._txid) not in self._akt and (ars, self._txid) not in self._rel:
                return self._txid
        raise ProtocolError("no transaction id left for that RS", reason="busy")

    def _ak_transfer(self, station: int, stid: int, pmk_sn: int, ctx: AkContext, ars: int,
                     now: float, then: Callable[[float], None] | None = None,
                     txid: int | None = None, serial: int | None = None) -> None:
        """Send the AK of ``ctx`` wrapped under the KEK of relay ``ars`` (and resend until ACK)."""
        ars_c = self._contexts.get(ars)
        if ars_c is None or not self._is_relay(ars):
            raise UnknownKeyError("AK Transfer to a station that is not an access RS",
                                  reason="not_relay")
        if any(a == ars and tx.ctx.akid == ctx.akid for (a, _t), tx in self._akt.items()):
            return  # already on its way (a retransmitted AK Request, a repeated request to
            #         pre-distribute): its own retransmissions deliver it, one transfer per AK
        if txid is None or (ars, txid) in self._akt:
            txid = self._new_txid(ars)
        self._akt[(ars, txid)] = _AkTx(station=station, stid=stid, ctx=ctx, then=then,
                                        serial=serial)

        def send() -> None:
            # Each (re)transmission goes under the RS's keys of *now*: when the RS
            # re-authenticates while a transfer is outstanding, a resend under its old
            # AK/KEK could only be refused there (bad ICV) until the transfer gave up.
            cur = self._contexts.get(ars)
            if cur is None:
                return
            msg = m.AkTransfer(
                transaction_id=txid, ams_stid=stid, amsid_star=ctx.amsid_star, akid=ctx.akid,
                ak_sn=pmk_sn, ak_lifetime=int(self.life.ak), cmac_key_count=ctx.cmac_key_count,
                sa_context=(m.SaContext(said=self.config.said, counter_tek=0, eks=0,
                                        tek_lifetime=int(self.life.tek)),),
                wrapped_ak=wrap_key_padded(cur.link.ctx.kek, ctx.ak))
            self._to_ars(cur, cur.link.sign(msg), msg.TITLE, now)

        def fail(now2: float) -> None:
            self._akt.pop((ars, txid), None)

        self._request(("akt", ars, txid), ars, "ak_transfer", send, now, on_fail=fail)

    def _on_akt_ack(self, ars: Context, msg: m.AkTransferAck, now: float) -> None:
        key = (ars.station, msg.transaction_id)
        tx = self._akt.get(key)
        if tx is None:
            raise ProtocolError("ACK for no outstanding AK Transfer", reason="unexpected_message")
        if msg.ams_stid != tx.stid or msg.akid != tx.ctx.akid:
            raise ProtocolError("ACK names another AMS or AK than the transfer",
                                reason="bad_ack")
        del self._akt[key]
        self._answered(("akt", *key))
        self._emit(AkTransferred(ams=tx.station, ars=ars.station, akid=tx.ctx.akid.hex(),
                                 cmac_key_count=tx.ctx.cmac_key_count, status=msg.status))
        if tx.then is not None and msg.status == m.AkStatus.OK:
            tx.then(now)

    def _on_ak_request(self, ars: Context, msg: m.AkRequest, now: float) -> None:
        """AK Request of an access RS (handover without pre-distribution). Authorised only by
        the AMS's own handover AAI-RNG-REQ to *this* RS, which the ABS verifies under the AK it
        would transfer: an RS alone can never obtain an AMS's AK (docs/threat-model.md)."""
        if not self.distributed:
            raise ProtocolError("AK Request in centralized mode", reason="unexpected_message")
        station = self._by_stid.get(msg.ams_stid)
        c = self._contexts.get(station) if station is not None else None
        if c is None or c.relay:
            raise UnknownKeyError("AK Request for an unknown AMS", reason="unknown_ams")
        req = m.RngReq.decode(signed_body(msg.rng_req))
        if req.purpose != m.RangingPurpose.HANDOVER_REENTRY or req.stid != msg.ams_stid \
                or req.cmac_key_count != msg.cmac_key_count \
                or station_from_bytes(req.target_id) != ars.station:
            raise ProtocolError("AK Request does not match the AMS's request",
                                reason="bad_request")
        if req.cmac_key_count <= c.count:
            raise ProtocolError("AK Request with a stale CMAC_KEY_COUNT", reason="stale_count")
        key = (ars.station, req.cmac_key_count)
        link = c.ho_links.get(key) or self._ho_link(c, ars.station, req.cmac_key_count, now)
        if c.ho_verified.get(key) != msg.rng_req:
            link.verify(msg.rng_req)  # bad_cmac: not the AMS's own request under this AK
        c.ho_links[key] = link
        c.ho_verified[key] = msg.rng_req
        self._ak_transfer(c.station, c.stid, c.pmk_sn, link.ctx, ars.station, now,
                          txid=msg.transaction_id)

    def _on_release_ack(self, ars: Context, msg: m.ContextReleaseAck, now: float) -> None:
        key = (ars.station, msg.transaction_id)
        if self._rel.pop(key, None) is None:
            raise ProtocolError("ACK for no outstanding release", reason="unexpected_message")
        self._answered(("rel", *key))

    def _ho_link(self, c: Context, target: int, count: int, now: float) -> Link:
        """The ABS end of the AK for (target, count): derived once, kept in ``ho_links`` only
        once something verified under it (a forged request leaves nothing behind)."""
        link = c.ho_links.get((target, count))
        if link is not None:
            return link
        ctx = AkContext.derive(c.pmk, pmk_sn=c.pmk_sn, amsid_star=c.amsid_star,
                               absid=station_bytes(target), cmac_key_count=count)
        return Link(ctx, subject=c.station, peer=target, stid=c.stid, subordinate=False,
                    now=now, pn_refresh=self.life.pn_refresh)

    def _on_reentry(self, data: bytes, via: int, now: float) -> None:
        """Handover AAI-RNG-REQ: from the AMS (target = this ABS), or relayed by the target RS
        once it answered the AMS (distributed: its notification; centralized: the request).
        Verified before anything is read into state; CMAC_KEY_COUNT only rises."""
        msg = m.RngReq.decode(signed_body(data))
        if msg.purpose != m.RangingPurpose.HANDOVER_REENTRY or msg.stid is None:
            raise MalformedError("re-entry request without its fields", reason="malformed")
        station = self._by_stid.get(msg.stid)
        c = self._contexts.get(station) if station is not None else None
        if c is None or c.relay:
            raise UnknownKeyError("re-entry of an unknown AMS", reason="unknown_ams")
        target = station_from_bytes(msg.target_id)
        if target != via:
            raise ProtocolError("re-entry request names another target", reason="wrong_target")
        if via != self.station_id and not self._is_relay(via):
            raise ProtocolError("re-entry relayed by a station that is not an access RS",
                                reason="not_relay")
        count = msg.cmac_key_count
        if count == c.count and c.via == via and data == c.ho_req and c.ho_rsp is not None:
            # the very request we accepted, again: the target RS resends its notification
            # until our answer gets through (identical bytes), so answer again, change nothing
            self._to_ctx(c, c.ho_rsp, m.RngRsp.TITLE, now)
            return
        if count == c.count and c.via == via:
            c.link.verify(data)  # a fresh retransmission (our RNG-RSP was lost), not a replay
            if c.ho_rsp is not None:  # answered again, naming this copy of the request
                rsp = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY,
                               status=m.RngStatus.SUCCESS, stid=c.stid, amsid=None,
                               request_cmac=bytes(data[-CMAC_TUPLE_LEN:]))
                c.ho_rsp, c.ho_req = c.link.sign(rsp), bytes(data)
                self._to_ctx(c, c.ho_rsp, m.RngRsp.TITLE, now)
            return
        if count <= c.count:
            raise ProtocolError("re-entry with a stale CMAC_KEY_COUNT", reason="stale_count")
        key = (target, count)
        link = self._ho_link(c, target, count, now)
        if c.ho_verified.get(key) != data:
            link.verify(data)
        old_via, old_link = c.via, c.link
        c.via, c.link, c.count, c.ka = target, link, count, None
        for e in [x for x in self._entries_of.get(c.station, {}).values() if x.reauth]:
            self._drop(e, now, "moved")  # a re-authentication on the old path is void now
        c.ho_links = {k: v for k, v in c.ho_links.items() if k[1] > count}
        c.ho_verified = {k: v for k, v in c.ho_verified.items() if k[1] > count}
        rsp = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY, status=m.RngStatus.SUCCESS,
                       stid=c.stid, amsid=None, request_cmac=bytes(data[-CMAC_TUPLE_LEN:]))
        c.ho_rsp, c.ho_req = link.sign(rsp), bytes(data)
        # A release still outstanding at the target (the AMS left it and came back) must stop
        # now: retransmitted later, it would drop the context the AMS just re-entered with.
        for k in [k for k, ams in self._rel.items() if k[0] == target and ams == c.station]:
            del self._rel[k]
            self._answered(("rel", *k))
        self._to_ctx(c, c.ho_rsp, rsp.TITLE, now)
        self._emit(HandoverComplete(ams=c.station, source=old_via, target=target,
                                    akid=link.ctx.akid.hex(), cmac_key_count=count))
        self._arq_moved(c.station, old_via, now)
        if target == self.station_id:
            self._arrived(c.station)   # re-entered here directly: our MAC grants it at once
        if old_via != target and old_via != self.station_id and self._is_relay(old_via):
            # Tell the old access RS to drop the AMS (keys in distributed mode, forwarding entry
            # in centralized mode). The AKID names the context so a late release never hits a
            # newer one.
            self._release(c.station, c.stid, old_via, old_link.ctx.akid, now)
        elif old_via == self.station_id and target != self.station_id:
            self._emit(ContextReleased(ams=c.station, station=self.station_id))

    def _release(self, station: int, stid: int, ars: int, akid: bytes, now: float) -> None:
        ars_c = self._contexts.get(ars)
        if ars_c is None:
            return
        txid = self._new_txid(ars)
        msg = m.ContextRelease(transaction_id=txid, ams_stid=stid, akid=akid,
                               reason=m.ReleaseReason.HANDOVER_COMPLETE)
        self._rel[(ars, txid)] = station

        def send() -> None:
            cur = self._contexts.get(ars)  # the RS's keys of now (see _ak_transfer)
            if cur is not None:
                self._to_ars(cur, cur.link.sign(msg), msg.TITLE, now)

        def fail(now2: float) -> None:
            self._rel.pop((ars, txid), None)

        self._request(("rel", ars, txid), ars, "context_release", send, now, on_fail=fail)

    def _to_ars(self, ars: Context, body: bytes, title: str, now: float) -> None:
        """Relay management to an ARS itself: plain FID 0, or inside its relay SA when
        ``encrypt_relay_control`` (relay item carrying the ARS's own STID)."""
        if not self.config.encrypt_relay_control:
            self._queue(ars.station, control_mpdu(body), title)
            return
        self._queue(ars.station, self._seal(
            ars.link, FID_RELAY, encapsulate_relay([(ars.stid, control_mpdu(body))]), now), title)

    def _on_tek_request(self, c: Context, msg: m.TekRequest, now: float) -> None:
        if c.via != self.station_id and self.distributed:
            raise ProtocolError("TEK-Request for an SA the access RS holds",
                                reason="unexpected_message")
        if msg.said != c.link.sa.said:
            raise UnknownKeyError(f"TEK-Request for unknown SAID {msg.said}",
                                  reason="unknown_said")
        self._to_ctx(c, self._serve_tek(c.link, self.life.tek, now), m.TekReply.TITLE, now)

    def _on_unknown_eks(self, link: Link, now: float) -> None:
        """MPDUs of ``link`` arrived under an EKS we do not hold (digest §5.1 step 4): answer
        TEK-Invalid, at most one per ``rto``. Unverifiable input, so it changes no key here;
        the subordinate acts on it only when its own last update is unconfirmed."""
        c = self._contexts.get(link.subject)
        if c is None or c.link is not link:
            return
        body = self._send_tek_invalid(link, now)
        if body is not None:
            self._to_ctx(c, body, m.TekInvalid.TITLE, now)
