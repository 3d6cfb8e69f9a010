"""The subscriber side shared by the AMS and the ARS: entering -- ranging, the EAP peer, key
agreement (MSG#1/#3) -- the receive and dispatch path, the deadlines, the entry watchdog and its
failures, and the RERANGE hint (digest §5.1, §6.5). The ARS enters the network as an AMS does.

Moving (handover re-entry at a target, and the station left behind) is the mixin
:class:`stack.roles.subscriber_move.Handover`; the key life once entered (TEK refresh,
TEK-Reply/TEK-Invalid, re-authentication, AK expiry) is the mixin
:class:`stack.roles.subscriber_keys.KeyLife`; the phases are :mod:`stack.roles.subscriber_phase`
(importable from here too)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from itertools import pairwise
from typing import Any, ClassVar

from stack.errors import MalformedError, ProtocolError, UnknownKeyError
from stack.keys import AkContext, derive_amsid_star, derive_pmk
from stack.pkm import messages as m
from stack.pkm.eap import EapCode
from stack.pkm.eap_psk import EapPskPeer
from stack.roles.arq_plumbing import HOP, LEFT
from stack.roles.base import MAX_PAYLOAD, RoleBase, log
from stack.roles.config import SubscriberConfig
from stack.roles.events import Attached, DataReceived, EntryFailed, PeerLost
from stack.roles.framing import (
    CMAC_TUPLE_LEN,
    DATA_FIDS,
    FID_CONTROL,
    FIRST_DATA_FID,
    LAST_DATA_FID,
    control_message,
    control_mpdu,
    frame_bounds,
    mpdu_fid,
)
from stack.roles.ids import fmt_station, station_bytes
from stack.roles.link import KeyInfo, Link, PendingMpdu
from stack.roles.subscriber_keys import KeyLife
from stack.roles.subscriber_move import Handover
from stack.roles.subscriber_phase import ANY_PHASE, ENTERING, Phase

SECURITY_PARAMS = m.SecurityNegotiationParameters(
    pkm_version=3, auth_policy=1, mac_mode=1, pn_window_size=64, max_sas=1
)


class SubscriberRole(Handover, KeyLife, RoleBase):
    """AMS-like behaviour towards a serving station (ABS or ARS)."""

    def __init__(self, config: SubscriberConfig, rng: object = None) -> None:
        super().__init__(config.station_id, config.timers, rng)  # type: ignore[arg-type]
        self.config = config
        self.life = config.lifetimes
        self.serving: int | None = None
        self.stid: int | None = None
        self.phase = Phase.IDLE
        self._amsid = station_bytes(config.station_id)
        self._amsid_star: bytes | None = None
        self._nonce_ams6: bytes | None = None
        self._peer: Any = None   # the EAP peer of the entry in progress (handle(eap))
        self._pmk: bytes | None = None
        self._pmk_sn = 0
        self.cmac_key_count = 0
        self._new_link: Link | None = None
        self._ka: tuple[bytes, bytes] | None = None  # (NONCE_ABS, NONCE_AMS) of the agreement
        self._ak_lifetime = self.life.ak
        self.link: Link | None = None
        self._ho: tuple[int, Link] | None = None
        # after a handover, the station we left and its link: its data still opens until the
        # deadline, through the old access hop's receiver, kept as (LEFT, fid, station)
        self._left: tuple[int, Link, float] | None = None
        self._sent_tails: deque[bytes] = deque(maxlen=32)  # see frames_to_send
        self._arq_params = config.arq  # ARQ connections by FID, with the ABS (end to end)

    # -- commands ---------------------------------------------------------------------------
    def _new_peer(self) -> Any:
        """The EAP peer of a new entry: the configured factory's, else EAP-PSK."""
        if self.config.eap_peer is not None:
            return self.config.eap_peer()
        return EapPskPeer(self.config.identity or self._amsid, self.config.psk, rng=self._rng)

    def attach(self, via: int, now: float) -> None:
        """Start network entry at station ``via`` (an ARS or the ABS)."""
        self.serving = via
        self.phase = Phase.RANGING
        # A new attempt abandons whatever the previous one left half done (its EAP peer, the
        # pending PMK, key agreement and retransmissions); an established link stays usable
        # until the new entry completes.
        self._pmk_pending, self._new_link, self._ka = None, None, None
        self._answered("ka")
        self._answered("reauth")
        self._attaching = True
        if self.link is None:
            self.stid = None
        self._eap_failure_seen = False
        self._nonce_ams6 = self._random(6)
        self._amsid_star = derive_amsid_star(self._amsid, self._nonce_ams6)
        self._peer = self._new_peer()
        req = m.RngReq(purpose=m.RangingPurpose.INITIAL_ENTRY, cmac_key_count=0,
                       target_id=station_bytes(via), amsid=self._amsid,
                       nonce_ams=self._nonce_ams6, stid=None, serving_id=None)

        def send() -> None:
            self._send_plain(via, req)

        self._request("rng", via, "ranging", send, now, on_fail=self._entry_failed)
        self._watch_entry(now)

    def send_data(self, dst: int, payload: bytes, now: float, *, fid: int = FIRST_DATA_FID) -> None:
        """Queue ``payload`` to the network (sent to the serving station, protected)."""
        if self.link is None or self.serving is None:
            raise UnknownKeyError("no keys installed yet", reason="no_keys")
        _check_data(payload, fid)
        if self._arq_params is not None:
            self._arq_offer(fid, payload, now)
        else:
            self._queue(self.serving, self._seal(self.link, fid, payload, now))
        self._maybe_refresh(now)

    def _may_run_hops(self) -> bool:
        if self.config.abs_id is None:  # which serving station is a relay cannot be told
            raise MalformedError("per-hop ARQ needs SubscriberConfig.abs_id")
        return True

    def _arq_over_hops(self, key: Hashable) -> bool:
        """Our end-to-end connection ``key`` (a FID) runs over per-hop ARQ: we are served by
        an ARS in distributed mode (docs/roles.md §11)."""
        return (self._arq_per_hop and isinstance(key, int) and self.serving is not None
                and self.serving != self.config.abs_id)

    def _arq_transmit(self, key: Hashable, pdu: bytes, now: float
                      ) -> tuple[int, bytes | PendingMpdu] | None:
        if self.link is None or self.serving is None:
            return None
        if isinstance(key, tuple):   # (HOP, fid): the access hop to our ARS
            if key[0] == LEFT:
                return None   # the held hop of a station we left: it hears nothing from us
            fid = key[1]
        else:
            assert isinstance(key, int)
            if self._arq_over_hops(key):   # end to end, carried by the access hop's ARQ
                self._arq_offer((HOP, key), pdu, now)
                return None
            fid = key
        obj = self._seal(self.link, fid, pdu, now)
        self._queue(self.serving, obj)
        return self.serving, obj

    def _arq_wrap(self, key: Hashable, pdu: bytes) -> bytes | None:
        return pdu   # our data MPDUs carry the ARQ PDU as it is, on either layer

    def _arq_deliver(self, key: Hashable, sdus: list[bytes], now: float,
                     vias: list[object] | None = None) -> None:
        if isinstance(key, tuple):   # access-hop SDUs are end-to-end ARQ PDUs
            fid = key[1]
            # each end-to-end block is reported as come through the station whose hop
            # brought it (a held hop of the station we left fills gaps: _hold_left)
            hop_via = key[2] if key[0] == LEFT else self.serving
            for sdu in sdus:
                out = self._arq_input(fid, sdu, now, tag=hop_via)
                self._arq_deliver(fid, out, now, vias=self._arq[fid].rx.last_tags)
            return
        assert isinstance(key, int)
        src = self.serving or 0
        for i, sdu in enumerate(sdus):
            tag = vias[i] if vias is not None and i < len(vias) else None
            self._emit(DataReceived(src=self.config.abs_id or src, payload=sdu, fid=key,
                                    via=tag if isinstance(tag, int) else src))

    def key_info(self, peer: int | None = None) -> KeyInfo | None:
        """Identifiers/check values of this station's link to its serving station."""
        return None if self.link is None else self.link.info()

    # -- receive ----------------------------------------------------------------------------
    def _on_mpdu(self, src: int, mpdu: bytes, now: float) -> None:
        ho_target = self._ho[0] if self._ho else None
        if src not in (self.serving, ho_target):
            if self._left_open(src, mpdu, now):
                return
            raise ProtocolError("frame from a station that is not serving us", reason="wrong_link")
        fid = mpdu_fid(mpdu)
        if fid == FID_CONTROL:
            cls, data = control_message(mpdu)
            self._on_control(src, cls, data, now)
        elif FIRST_DATA_FID <= fid <= LAST_DATA_FID:
            if self.link is None or src != self.serving:
                raise UnknownKeyError("data before keys", reason="no_keys")
            fid, _eks, payload = self._open(self.link, mpdu, now)
            self._on_opened(src, self.link, fid, payload, now)
        else:
            self._on_other_mpdu(src, fid, mpdu, now)

    def _rx_link(self, src: int) -> tuple[Link, frozenset[int]] | None:
        if self.link is None or src != self.serving:
            return None
        return self.link, DATA_FIDS

    def _on_opened(self, src: int, link: Link, fid: int, payload: bytes, now: float) -> None:
        if self._arq_over_hops(fid):
            self._arq_deliver((HOP, fid), self._arq_input((HOP, fid), payload, now), now)
        elif self._arq_params is not None:
            for sdu in self._arq_input(fid, payload, now):
                self._emit(DataReceived(src=self.config.abs_id or src, payload=sdu, fid=fid,
                                        via=src))
        else:
            self._emit(DataReceived(src=self.config.abs_id or src, payload=payload, fid=fid,
                                    via=src))
        self._maybe_refresh(now)

    def _on_unknown_eks(self, link: Link, now: float) -> None:
        # An MPDU under an EKS we do not hold cannot be verified, so it triggers nothing (a
        # forged 16-byte frame must not start TEK updates, docs/threat-model.md). We are the
        # requester of TEK updates: our own TEK-Request retransmissions recover a lost reply.
        return

    def _on_other_mpdu(self, src: int, fid: int, mpdu: bytes, now: float) -> None:
        raise MalformedError(f"unexpected FID {fid}", reason="bad_fid")

    def _on_control(self, src: int, cls: type[m.Message], data: bytes, now: float) -> None:
        """Dispatch one control message from our serving (or handover target) station through
        the ``(message class) -> (handler, phases it is valid in)`` table; a message outside the
        table goes to :meth:`_on_other_control`, one in the wrong phase is refused."""
        entry = self._control_handlers.get(cls)
        if entry is None:
            self._on_other_control(src, cls, data, now)
            return
        handler, phases = entry
        if self.phase not in phases:
            raise ProtocolError(f"{cls.__name__} in phase {self.phase.value}",
                                reason="unexpected_message")
        handler(self, src, data, now)

    def _on_eap_message(self, src: int, data: bytes, now: float) -> None:
        self._on_eap(src, m.EapTransfer.decode(data), now)

    def _on_other_control(self, src: int, cls: type[m.Message], data: bytes, now: float) -> None:
        raise ProtocolError(f"unexpected {cls.__name__}", reason="unexpected_message")

    def _on_rng_rsp(self, src: int, data: bytes, now: float) -> None:
        if self._ho is not None and src == self._ho[0]:
            self._on_ho_rsp(src, data, now)
            return
        if self.link is not None and src == self.serving and self.phase == Phase.OPERATIONAL:
            self._on_rerange(src, data, now)
            return
        msg = m.RngRsp.decode(data)
        # Under loss the EAP conversation may overtake a lost RNG-RSP (the ABS starts EAP right
        # after answering), so the RSP is accepted until key agreement has used the STID.
        if msg.purpose != m.RangingPurpose.INITIAL_ENTRY or \
                self.phase not in ENTERING or \
                (self.stid is not None and msg.stid != self.stid):
            raise ProtocolError("RNG-RSP out of state", reason="unexpected_message")
        if msg.amsid != self._amsid or msg.status != m.RngStatus.SUCCESS:
            raise ProtocolError("RNG-RSP not for us or refused", reason="rng_refused")
        if msg.nonce_ams != self._nonce_ams6:
            # Unauthenticated, so bound to the request by its echo of this attempt's NONCE_AMS:
            # a replayed RNG-RSP of an earlier attempt must not stop our RNG-REQ retries.
            raise ProtocolError("RNG-RSP of an earlier entry attempt", reason="stale_rng_rsp")
        self._answered("rng")
        self.stid = msg.stid
        if self.phase == Phase.RANGING:
            self.phase = Phase.EAP
        self._watch_entry(now)

    def _on_rerange(self, src: int, data: bytes, now: float) -> None:
        """Our serving station says it holds no context for us (it restarted). Unsigned -- it
        shares no key with us any more -- so it is only a reason to re-enter there with the
        next CMAC_KEY_COUNT (a handover to the same station: fresh AK, the ABS verifies our
        request), at most once per retry span; our keys stay usable until that completes.
        A *signed* RNG-RSP here is our serving station's answer to a handover re-entry that
        is complete already (our request went twice, both answers got through): verified, it
        is counted as stale, not as malformed."""
        try:
            msg = m.RngRsp.decode(data)
        except MalformedError:
            assert self.link is not None
            signed = m.RngRsp.decode(self.link.verify(data))  # bad_cmac/cmac_replay if not
            if signed.purpose == m.RangingPurpose.HANDOVER_REENTRY and \
                    signed.status == m.RngStatus.SUCCESS:
                raise ProtocolError("RNG-RSP for a handover already complete",
                                    reason="stale_rng_rsp") from None
            raise
        if msg.purpose != m.RangingPurpose.HANDOVER_REENTRY or \
                msg.status != m.RngStatus.RERANGE:
            raise ProtocolError("RNG-RSP out of state", reason="unexpected_message")
        if self._ho is not None:
            raise ProtocolError("re-range hint during a handover", reason="unexpected_message")
        if msg.request_cmac not in self._sent_tails:
            raise ProtocolError("re-range hint for nothing we sent just now",
                                reason="stale_rng_rsp")
        self._sent_tails.remove(msg.request_cmac)  # one hint per MPDU, never again
        if self._rerange_at is not None and now - self._rerange_at < self.timers.give_up_after:
            raise ProtocolError("re-range hint within the retry span", reason="rate_limited")
        self._rerange_at = now
        self._sent_tails.clear()
        log.info("%s: %s holds no context for us; re-entering", fmt_station(self.station_id),
                 fmt_station(src))
        self._emit(PeerLost(peer=src, procedure="context_lost"))
        self.handover(src, now)

    _rerange_at: float | None = None

    def frames_to_send(self, now: float, max_bytes: int | None = None, *,
                       dst: int | None = None) -> list[tuple[int, bytes]]:
        """As :meth:`RoleBase.frames_to_send`; also remembers the last 11 bytes (ICV or CMAC
        tuple) of the first MPDUs of each frame to the serving station, which a RERANGE hint
        must echo."""
        out = super().frames_to_send(now, max_bytes, dst=dst)
        for to, frame in out:
            if to == self.serving:
                bounds = frame_bounds(frame)
                for a, b in pairwise(bounds[:5]):
                    if b - a >= 2 + CMAC_TUPLE_LEN:
                        self._sent_tails.append(frame[b - CMAC_TUPLE_LEN : b])
        return out

    def _on_eap(self, src: int, msg: m.EapTransfer, now: float) -> None:
        # EAP is unauthenticated: it is accepted only while an EAP conversation can be under
        # way, i.e. until Key_Agreement-MSG#1 verified under the new MSK (after that the
        # conversation is over: a late EAP-Failure is a forgery, RFC 3748 §7.16).
        if self._peer is None or self._ka is not None or \
                self.phase not in ENTERING:
            raise ProtocolError("EAP without an entry in progress", reason="unexpected_message")
        if msg.eap_payload[0] == EapCode.FAILURE:
            # EAP-Failure is unauthenticated: anyone can send one. It ends nothing by itself --
            # after a verified DONE_SUCCESS it is ignored outright, before it only names the
            # reason if the entry then stalls (RFC 3748 §4.2 lets the peer wait for a
            # protected result; docs/threat-model.md, spoofed EAP-Failure).
            self._eap_failure_seen = True
            raise ProtocolError("EAP-Failure ignored (unauthenticated)", reason="eap_failure")
        reply, result = self._peer.handle(msg.eap_payload)
        self._answered("reauth")  # a valid EAP packet answers our Reauth-Request
        if reply is not None:
            self._send_plain(src, m.EapTransfer(eap_payload=reply))
        self._watch_entry(now)
        if result is None:
            return
        if result.success:
            # Provisional until EAP-Success or a CMAC-verified MSG#1 (the peer's rule).
            if self._pmk_pending is None:
                self._pmk_pending = derive_pmk(result.msk)
                self.phase = Phase.KEY_AGREEMENT
        elif self._pmk_pending is None:
            # The method itself failed (the server's MAC_S or PCHANNEL did not verify): this
            # conversation cannot succeed any more.
            self._new_link = None
            self._auth_failed(now, result.reason)

    _eap_failure_seen = False

    _pmk_pending: bytes | None = None

    def _ak_ctx(self) -> AkContext:
        assert self._pmk_pending is not None and self.serving is not None
        return AkContext.derive(self._pmk_pending, pmk_sn=self._next_pmk_sn(),
                                amsid_star=self._amsid_star, absid=station_bytes(self.serving),
                                cmac_key_count=0)

    def _next_pmk_sn(self) -> int:
        if self._pmk is None or self._attaching:
            return 0  # a new entry starts a new PMK sequence at the ABS too
        return (self._pmk_sn + 1) % 16

    _attaching = False  # set by attach() until the entry completes or fails

    def _on_ka1(self, src: int, data: bytes, now: float) -> None:
        if self._pmk_pending is None or self.stid is None:
            raise ProtocolError("Key_Agreement-MSG#1 before EAP finished",
                                reason="unexpected_message")
        if self._new_link is None:
            self._new_link = Link(self._ak_ctx(), subject=self.station_id, peer=src,
                                  stid=self.stid, subordinate=True, now=now,
                                  pn_refresh=self.life.pn_refresh)
        link = self._new_link
        msg = m.KeyAgreementMsg1.decode(link.verify(data))
        if msg.akid != link.ctx.akid:
            raise ProtocolError("MSG#1 AKID does not match our AK", reason="bad_akid")
        if self.link is not None and self.link is not link:
            # re-authentication: an access RS seals under the new AK from its AK Transfer on,
            # a few frames before our MSG#3 arrives (Link.accept_also)
            self.link.accept_also(link, now + self.timers.give_up_after)
        if self._ka is None or self._ka[0] != msg.nonce_abs:
            self._ka = (msg.nonce_abs, self._random(8))
        self._ak_lifetime = float(msg.key_lifetime)
        reply = m.KeyAgreementMsg2(nonce_abs=msg.nonce_abs, nonce_ams=self._ka[1], akid=msg.akid,
                                   security_params=SECURITY_PARAMS)

        def send() -> None:
            self._queue(src, control_mpdu(link.sign(reply)), reply.TITLE)

        self._request("ka", src, "key_agreement", send, now, on_fail=self._ka_given_up)

    def _on_ka3(self, src: int, data: bytes, now: float) -> None:
        link = self._new_link
        if link is None or self._ka is None:
            raise ProtocolError("MSG#3 without an agreement", reason="unexpected_message")
        msg = m.KeyAgreementMsg3.decode(link.verify(data))
        if (msg.nonce_abs, msg.nonce_ams) != self._ka:
            raise ProtocolError("MSG#3 nonces do not match", reason="bad_nonce")
        if msg.akid != link.ctx.akid:
            raise ProtocolError("MSG#3 AKID does not match", reason="bad_akid")
        self._answered("ka")
        self._answered("rng")
        self._set_deadline("entry", None)
        reauth = not self._attaching and self._pmk is not None
        self._attaching = False
        self.cmac_key_count = 0
        self._pmk, self._pmk_sn = self._pmk_pending, link.ctx.pmk_sn
        self._pmk_pending, self._new_link, self._ka = None, None, None
        if reauth and self.link is not None:  # in flight under the old AK: still received
            link.accept_also(self.link, now + self._grace)
        self.link, self.phase = link, Phase.OPERATIONAL
        self._ak_expiry = now + self._ak_lifetime
        self._keys_event(link, "reauth" if reauth else "entry", peer=src)
        if not reauth:
            self._emit(Attached(station=self.station_id, via=src, stid=link.stid))
            for key in [k for k in self._arq if isinstance(k, tuple)]:
                self._arq_close(key)  # hops (ours, or an ARS's towards its AMSs) end with it
            for key in list(self._arq):  # a new entry: the network starts ARQ afresh too
                self._arq_reset(key, now)
        self._schedule(now)

    # -- deadlines, the entry watchdog, failures ---------------------------------------------
    def _on_deadline(self, key: Hashable, now: float) -> None:
        if key == "tek":
            self._start_refresh(now)
        elif key == "reauth":
            self.reauthenticate(now)
        elif key == "entry":
            self._entry_stalled(now)
        elif key == "ho_abort":
            self._ho_abort(now)
        elif key == "ak_expiry":
            self._ak_expired(now)
        elif key == "left":
            self._drop_left()

    def _watch_entry(self, now: float) -> None:
        """(Re)arm the entry watchdog. The authenticator drives EAP (only it retransmits) and
        the ABS sends MSG#1 once EAP succeeded, so while we wait for either nothing of ours is
        outstanding; if our peer went quiet (its EAP ended in a failure we never saw, it gave
        up), the entry must still end."""
        if self.phase in ENTERING:
            self._set_deadline("entry", now + self.timers.give_up_after)

    def _entry_stalled(self, now: float) -> None:
        if self.phase not in ENTERING:
            return
        if any(k in self._pending for k in ("rng", "ka", "reauth")):
            return  # a request of ours is outstanding: its own retries decide
        log.info("%s: entry stalled (no EAP/MSG#1 for %.1f s)", fmt_station(self.station_id),
                 self.timers.give_up_after)
        if self.serving is not None and not self._eap_failure_seen:
            self._emit(PeerLost(peer=self.serving, procedure="eap"))
        self._pmk_pending, self._new_link = None, None
        self._auth_failed(now, "eap_failure" if self._eap_failure_seen else "peer_lost")

    def _auth_failed(self, now: float, reason: str) -> None:
        """EAP failed or stalled: an entry fails (phase ``failed``); a re-authentication keeps
        the current keys and is retried later (docs/roles.md §4)."""
        self._set_deadline("entry", None)
        if self._attaching or self.link is None:
            self._entry_failed(now, reason)
            return
        self.phase, self._peer = Phase.OPERATIONAL, None
        self._set_deadline("reauth", now + self.life.reauth_margin * self._ak_lifetime / 2)
        self._emit(EntryFailed(station=self.station_id, reason=reason))

    _control_handlers: ClassVar[dict[type[m.Message],
                                     tuple[Callable[..., None], frozenset[Phase]]]] = {}  # below

    # -- helpers ----------------------------------------------------------------------------
    def _send_plain(self, dst: int, msg: m.Message) -> None:
        self._queue(dst, control_mpdu(msg.encode()), msg.TITLE)

    def _ka_given_up(self, now: float) -> None:
        """Our MSG#2 was never answered. In an entry, the entry failed. In a re-authentication
        the network may already have switched to the new AK (it does on our MSG#2; we would on
        its MSG#3): neither key set is known to be shared any more, so the station leaves them
        and enters again at its serving station, with an event (issue 17: never left running on
        keys that may carry nothing)."""
        if self._attaching or self.link is None or self.serving is None:
            self._entry_failed(now)
            return
        serving = self.serving
        log.info("%s: re-authentication unconfirmed; entering again", fmt_station(self.station_id))
        self._emit(EntryFailed(station=self.station_id, reason="reauth_unconfirmed"))
        self.link, self._ho = None, None
        for key in ("tek", "reauth", "ho", "ak_expiry"):
            self._answered(key)
            self._set_deadline(key, None)
        self.attach(serving, now)

    def _entry_failed(self, now: float, reason: str = "peer_lost") -> None:
        self.phase = Phase.FAILED
        self._attaching = False
        self._pmk_pending, self._new_link, self._ka = None, None, None
        self._set_deadline("entry", None)
        for key in ("rng", "ka"):
            self._answered(key)
        self._emit(EntryFailed(station=self.station_id, reason=reason))


SubscriberRole._control_handlers = {
    m.RngRsp: (SubscriberRole._on_rng_rsp, ANY_PHASE),
    m.EapTransfer: (SubscriberRole._on_eap_message, ENTERING),
    m.KeyAgreementMsg1: (SubscriberRole._on_ka1, ENTERING),
    m.KeyAgreementMsg3: (SubscriberRole._on_ka3, ENTERING),
    m.TekReply: (SubscriberRole._on_tek_message, ANY_PHASE),
    m.TekInvalid: (SubscriberRole._on_tek_message, ANY_PHASE),
}
"""What a subscriber accepts from its serving station, by message class; anything else goes to
``_on_other_control`` (the ARS's relay management) or is ``unexpected_message``."""


def _check_data(payload: bytes, fid: int) -> None:
    if not FIRST_DATA_FID <= fid <= LAST_DATA_FID:
        raise MalformedError(f"data FID must be {FIRST_DATA_FID}..{LAST_DATA_FID}, got {fid}")
    if len(payload) > MAX_PAYLOAD:
        raise MalformedError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
