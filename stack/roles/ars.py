"""The ARS role: an AMS towards the ABS (own entry, own SA = relay link) and, in distributed
security mode, the AMS's key holder on the access link (digest §6.1, §6.3, §6.5).

This module relays: the receive paths from the AMSs and from the ABS, relay encapsulation, the
per-hop ARQ plumbing and its hops, the RERANGE hint. Holding the AMSs' keys -- ranging and
re-entry through us, AK Transfer and Context Release, the handover AKs held for expected
arrivals -- is the mixin :class:`stack.roles.ars_keys.ArsKeys`, which also says what strangers
can make an ARS keep (docs/threat-model.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, ItemsView
from typing import Any

from stack.errors import (
    MalformedError,
    ProtocolError,
    SecurityError,
    UnknownKeyError,
)
from stack.mac import decapsulate_relay, encapsulate_relay
from stack.pkm import messages as m
from stack.roles.arq_plumbing import ACCESS, RELAY
from stack.roles.ars_keys import ArsKeys, _HoWait
from stack.roles.base import RELAYED
from stack.roles.config import ArsConfig, SecurityMode
from stack.roles.framing import (
    CMAC_TUPLE_LEN,
    DATA_FIDS,
    FID_CONTROL,
    FID_RELAY,
    FIRST_DATA_FID,
    LAST_DATA_FID,
    RELAY_MANAGEMENT_CODES,
    control_message,
    control_mpdu,
    mpdu_fid,
    plain_mpdu,
    plain_payload,
    signed_body,
)
from stack.roles.ids import station_from_bytes
from stack.roles.link import KeyInfo, Link, PendingMpdu
from stack.roles.subscriber import SubscriberRole

_FROM_ABS_FIDS = DATA_FIDS | {FID_RELAY}
"""FIDs the ARS opens with its own (relay-link) SA."""

_RELAYED_SIGNED = frozenset({m.KeyAgreementMsg2, m.ReauthRequest})
"""Signed AMS control the ARS relays to the ABS. MSG#2 is signed under an AK the ARS does not
hold yet (entry); any other signed message is verified here first when the ARS holds the AMS's
keys (distributed mode), so a replay never reaches the ABS."""


class _StidMap:
    """AMS STID <-> station id, one to one both ways (an AMS has one STID; a STID names one AMS):
    both lookups are O(1) -- an ARS looks the sender's STID up for every MPDU it receives."""

    def __init__(self) -> None:
        self._station: dict[int, int] = {}
        self._stid: dict[int, int] = {}

    def bind(self, stid: int, station: int) -> list[int]:
        """Bind ``stid`` to ``station``; returns the STIDs the station held before (now unbound)."""
        old = self._stid.get(station)
        dropped = [old] if old is not None and old != stid else []
        for s in dropped:
            self._station.pop(s, None)
        prev = self._station.get(stid)
        if prev is not None and prev != station:
            self._stid.pop(prev, None)
        self._station[stid] = station
        self._stid[station] = stid
        return dropped

    def unbind(self, stid: int) -> int | None:
        station = self._station.pop(stid, None)
        if station is not None and self._stid.get(station) == stid:
            del self._stid[station]
        return station

    def stid_of(self, station: int) -> int:
        return self._stid.get(station, 0)

    def get(self, stid: int, default: int | None = None) -> int | None:
        return self._station.get(stid, default)

    def __getitem__(self, stid: int) -> int:
        return self._station[stid]

    def __contains__(self, stid: object) -> bool:
        return stid in self._station

    def __len__(self) -> int:
        return len(self._station)

    def items(self) -> ItemsView[int, int]:
        return self._station.items()


class ArsRole(ArsKeys, SubscriberRole):
    """Access relay station."""

    def __init__(self, config: ArsConfig, rng: object = None) -> None:
        super().__init__(config, rng)
        self._cfg = config  # the ARS's own settings (self.config is typed as the subscriber's)
        self.mode = config.mode
        self.encrypt_relay_control = config.encrypt_relay_control
        self._txid = 0
        self._ams_links: dict[int, Link] = {}      # by AMS STID (distributed mode)
        self._stid_station = _StidMap()            # AMS STID <-> station id
        # station -> AMSID*s seen at initial ranging (bounded, least recently used first): a
        # replayed old RNG-REQ must not make us refuse the AK of the attempt actually running.
        self._entries: OrderedDict[int, dict[bytes, None]] = OrderedDict()
        self._ho_wait: dict[int, _HoWait] = {}     # stid -> request waiting for an AK
        self._ho_aks: dict[tuple[int, int], tuple[Link, float]] = {}  # (stid, count) -> AK
        self._ho_fwd: OrderedDict[tuple[int, bytes], int] = OrderedDict()  # centralized
        self._ranging_tokens = float(config.ranging_burst)
        self._ranging_at: float | None = None
        self._ranging_last: OrderedDict[int, tuple[float, float]] = OrderedDict()
        self._hinted: OrderedDict[int, float] = OrderedDict()  # sender -> last RERANGE hint
        # released AMS -> (STID, its old link): hops still draining (_hops_end)
        self._draining: dict[int, tuple[int, Link]] = {}

    @property
    def distributed(self) -> bool:
        return self.mode == SecurityMode.DISTRIBUTED

    def _may_run_hops(self) -> bool:
        return self.distributed

    def _arq_over_hops(self, key: Hashable) -> bool:
        return False   # our own traffic goes straight to the ABS: one hop, one ARQ layer

    # -- per-hop ARQ (distributed mode, docs/roles.md §11) ------------------------------------
    # (ACCESS, ams, fid) with the AMS over its access link, (RELAY, ams, fid) with the ABS over
    # our relay SA. An SDU of one hop (an end-to-end ARQ PDU, opaque here) is offered to the
    # other once its hop delivered it in order.
    def _arq_transmit(self, key: Hashable, pdu: bytes, now: float
                      ) -> tuple[int, bytes | PendingMpdu] | None:
        if not isinstance(key, tuple):
            return super()._arq_transmit(key, pdu, now)   # our own data with the ABS
        hop, station, fid = key
        stid = self._stid_of(station)
        if hop == ACCESS:
            link = self._ams_links.get(stid)
            if link is None and station in self._draining:
                link = self._draining[station][1]   # released: finishing what it holds
            if link is None:
                return None
            obj = self._seal(link, fid, pdu, now)
            self._queue(station, obj)
            return station, obj
        return self._up(stid, plain_mpdu(fid, pdu), now) if stid else None

    def _arq_wrap(self, key: Hashable, pdu: bytes) -> bytes | None:
        if not isinstance(key, tuple):
            return super()._arq_wrap(key, pdu)
        hop, station, fid = key
        if hop == ACCESS:
            return pdu
        stid = self._stid_of(station)   # as _up encapsulates it
        return encapsulate_relay([(stid, plain_mpdu(fid, pdu))]) if stid else None

    def _arq_deliver(self, key: Hashable, sdus: list[bytes], now: float) -> None:
        if not isinstance(key, tuple):
            super()._arq_deliver(key, sdus, now)
            return
        hop, station, fid = key
        onward = (RELAY if hop == ACCESS else ACCESS, station, fid)
        for sdu in sdus:
            self._arq_offer(onward, sdu, now)

    def _hop_input(self, hop: str, station: int, fid: int, payload: bytes, now: float) -> None:
        key = (hop, station, fid)
        self._arq_deliver(key, self._arq_input(key, payload, now), now)

    def _hops_end(self, station: int, now: float | None = None, *,
                  drain: tuple[int, Link] | None = None) -> None:
        """Close both hops of ``station`` (its keys here were released or replaced): what they
        held is still held end to end by the AMS and the ABS, and resent on the new path.

        With *drain*, the AMS's STID and link (a Context Release after a handover: 16m's
        resource retain time), both hops keep sending what they still hold for ``_grace``:
        the UL blocks the AMS gave us before it moved, to the ABS, which keeps that hop's
        receiver as long (``AbsRole._arq_hold_hops``), and the DL blocks the ABS gave us, to
        the AMS, which keeps our access hop's receiver and link as long
        (``SubscriberRole._hold_left``). Nothing new enters them: the ABS routes the AMS
        elsewhere and we take nothing more from it. Dropped here, they were gaps filled only
        once a status report had crossed the new path (a UL grant cycle and four hops)."""
        self._draining.pop(station, None)
        self._set_deadline(("drain", station), None)
        gone = [k for k in self._arq if isinstance(k, tuple) and k[1] == station]
        keep = [k for k in gone if drain is not None and now is not None
                and self._arq[k].tx.unacked()]
        for key in gone:
            if key not in keep:
                self._arq_close(key)
        if keep:
            assert now is not None
            self._draining[station] = drain
            self._set_deadline(("drain", station), now + self._grace)
        if gone:
            for dst in (station, self.serving):
                if dst is not None:
                    self._arq_unqueue(dst, lambda k: k not in gone or k in keep)

    def key_info(self, peer: int | None = None) -> KeyInfo | None:
        """``peer`` None/ABS: own relay link; an AMS id: that AMS's access link (distributed)."""
        if peer is None or peer == self.serving:
            return super().key_info()
        stid = self._stid_station.stid_of(peer)
        return self._ams_links[stid].info() if stid in self._ams_links else None

    def state_size(self) -> dict[str, int]:
        """Sizes of every table a stranger could try to grow (tests, threat model)."""
        return {"ams_links": len(self._ams_links), "stid_station": len(self._stid_station),
                "entries": len(self._entries), "ho_wait": len(self._ho_wait),
                "ho_aks": len(self._ho_aks), "ho_fwd": len(self._ho_fwd),
                "ranging_last": len(self._ranging_last), "hinted": len(self._hinted),
                "pending": len(self._pending),
                "deadlines": len(self._deadlines)}

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
        if fid != FID_RELAY or self.link is None or src != self.serving:
            raise MalformedError(f"unexpected FID {fid}", reason="bad_fid")
        _f, _e, payload = self._open(self.link, mpdu, now)
        self._on_opened(src, self.link, fid, payload, now)

    def _on_opened(self, src: int, link: Link, fid: int, payload: bytes, now: float) -> None:
        if link is not self.link:  # an AMS's access link: re-protect per hop towards the ABS
            if self._arq_per_hop:
                self._hop_input(ACCESS, src, fid, payload, now)
                return
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

    def _stid_of(self, station: int) -> int:
        """STID of an AMS seen through this ARS (0 when not known; a released AMS whose relay
        hop still drains keeps its STID for that hop)."""
        held = self._draining.get(station)
        return self._stid_station.stid_of(station) or (held[0] if held else 0)

    def _down(self, stid: int, inner: bytes, now: float) -> None:
        """One relay item from the ABS (authentic: it came in our relay SA)."""
        fid = mpdu_fid(inner)
        if fid == FID_CONTROL and stid == self.stid:  # our own control, sealed in our relay SA
            cls, data = control_message(inner)
            if self.serving is None:
                raise UnknownKeyError("control before attachment", reason="no_keys")
            self._on_own_control(self.serving, cls, data, now, sealed=True)
            return
        if fid == FID_CONTROL:
            cls, data = control_message(inner)
            if cls is m.RngRsp and self._on_rng_rsp_down(stid, data, inner, now):
                return
            station = self._stid_station.get(stid)
            if station is None:
                raise UnknownKeyError("control for an unknown AMS", reason="unknown_ams")
            self._queue(station, inner, RELAYED)
            return
        station = self._stid_station.get(stid)
        if station is None:
            raise UnknownKeyError("data for an unknown AMS", reason="unknown_ams")
        if self.distributed:
            link = self._ams_links.get(stid)
            if link is None:
                raise UnknownKeyError("no AMS keys", reason="no_keys")
            if self._arq_per_hop:
                self._hop_input(RELAY, station, fid, plain_payload(inner), now)
                return
            self._queue(station, self._seal(link, fid, plain_payload(inner), now))
        else:
            self._queue(station, inner)

    def _on_rng_rsp_down(self, stid: int, data: bytes, inner: bytes, now: float) -> bool:
        """An RNG-RSP from the ABS for an AMS; True when it was handled here."""
        try:
            rsp = m.RngRsp.decode(data)
        except MalformedError:
            rsp = None  # signed: a handover re-entry success
        if rsp is not None and rsp.purpose == m.RangingPurpose.INITIAL_ENTRY:
            if rsp.amsid is not None:  # the ABS assigned this STID to that station
                station = station_from_bytes(rsp.amsid)
                for old in self._stid_station.bind(rsp.stid, station):
                    self._ams_links.pop(old, None)  # a station has one STID: the old one is over
            return False
        if rsp is not None:
            return False
        if self.distributed:
            if stid in self._ams_links:
                self._answered(("notify", stid))  # the ABS confirmed our handover notice
                return True
            return False
        # Centralized: the ABS verified one re-entry request and answers it; the echoed CMAC
        # tuple names which request, hence which sender, so an unverified request never binds
        # the STID to its sender (docs/threat-model.md).
        body = m.RngRsp.decode(signed_body(data))
        src = self._ho_fwd.pop((stid, body.request_cmac or b""), None)
        if src is None:
            raise ProtocolError("handover RNG-RSP for no request we relayed",
                                reason="unexpected_message")
        self._stid_station.bind(stid, src)
        self._queue(src, inner, RELAYED)
        return True

    def _up(self, stid: int, inner: bytes, now: float, title: str | None = None
            ) -> tuple[int, bytes | PendingMpdu] | None:
        """One relay item to the ABS in our relay SA; returns the ABS and the queued MPDU
        (None: we hold no relay keys)."""
        if self.link is None or self.serving is None:
            self.tx_dropped["no_relay_keys"] += 1
            return None
        obj = self._seal(self.link, FID_RELAY, encapsulate_relay([(stid, inner)]), now)
        self._queue(self.serving, obj, title, inner=inner)
        self._maybe_refresh(now)
        return self.serving, obj

    def _to_abs(self, body: bytes, title: str, now: float) -> None:
        """Relay management to the ABS: plain FID 0, or inside our relay SA when
        ``encrypt_relay_control`` (relay item carrying our own STID)."""
        if self.serving is None or self.stid is None:
            self.tx_dropped["no_relay_keys"] += 1
            return
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
            cls, data = control_message(mpdu)
            if cls.CODE in RELAY_MANAGEMENT_CODES:
                raise ProtocolError(f"{cls.__name__} not from the ABS", reason="not_from_abs")
            if cls is m.RngReq:
                self._ams_ranging(src, data, now)
                return
            if cls is m.EapTransfer:
                if not stid:
                    raise UnknownKeyError("EAP from a station without a STID",
                                          reason="unknown_ams")
                self._up(stid, mpdu, now, RELAYED)
                return
            link = self._ams_links.get(stid) if self.distributed else None
            if cls is m.TekRequest and link is not None:
                msg = m.TekRequest.decode(link.verify(data))
                if msg.said != link.sa.said:
                    raise UnknownKeyError(f"TEK-Request for unknown SAID {msg.said}",
                                          reason="unknown_said")
                self._serve_tek_request(link, now)
                return
            if cls is m.TekRequest and self.distributed:
                self._hint_rerange(src, mpdu, now)  # a signed request we hold no keys for
                raise UnknownKeyError("TEK-Request from an AMS without keys", reason="no_keys")
            if cls not in _RELAYED_SIGNED and cls is not m.TekRequest:
                raise ProtocolError(f"unexpected {cls.__name__} from an AMS",
                                    reason="unexpected_message")
            if not stid:
                if cls is not m.KeyAgreementMsg2:
                    self._hint_rerange(src, mpdu, now)
                raise UnknownKeyError("control from a station without a STID",
                                      reason="unknown_ams")
            if link is not None and cls is not m.KeyAgreementMsg2:
                link.verify(data)  # CMAC_PN per AK: a replay stops here
            self._up(stid, mpdu, now, RELAYED)
            return
        if not FIRST_DATA_FID <= fid <= LAST_DATA_FID:
            raise MalformedError(f"unexpected FID {fid}", reason="bad_fid")
        if not stid:
            self._hint_rerange(src, mpdu, now)
            raise UnknownKeyError("data from an unknown station", reason="unknown_ams")
        if self.distributed:
            link = self._ams_links.get(stid)
            if link is None:
                self._hint_rerange(src, mpdu, now)
                raise UnknownKeyError("data from an AMS without keys", reason="no_keys")
            fid, _eks, payload = self._open(link, mpdu, now)
            self._on_opened(src, link, fid, payload, now)
        else:
            self._up(stid, mpdu, now)

    def _hint_rerange(self, src: int, mpdu: bytes, now: float) -> None:
        """An AMS talks to us as its serving station but we hold nothing for it (we restarted,
        or a release raced it): tell it, unsigned -- we share no key with it -- so it re-enters
        here with the next CMAC_KEY_COUNT. The hint echoes the last 11 bytes of the MPDU that
        prompted it (ICV or CMAC tuple), so the AMS takes it only as the answer to something it
        sent just now: a replayed hint is stale. At most once per ``rto`` per sender, for a
        bounded number of senders (docs/threat-model.md)."""
        cfg = self._cfg
        last = self._hinted.get(src)
        if last is not None and now - last < self.timers.rto:
            return
        self._hinted[src] = now
        self._hinted.move_to_end(src)
        while len(self._hinted) > cfg.max_known_stations:
            self._hinted.popitem(last=False)
        if len(mpdu) < 2 + CMAC_TUPLE_LEN:
            return
        rsp = m.RngRsp(purpose=m.RangingPurpose.HANDOVER_REENTRY, status=m.RngStatus.RERANGE,
                       stid=0, amsid=None, request_cmac=bytes(mpdu[-CMAC_TUPLE_LEN:]))
        self._queue(src, control_mpdu(rsp.encode()), rsp.TITLE)

    def _on_deadline(self, key: Any, now: float) -> None:
        if isinstance(key, tuple) and key[0] == "ho_ak":
            self._ho_aks.pop((key[1], key[2]), None)
            return
        if isinstance(key, tuple) and key[0] == "drain":
            if key[1] in self._draining:
                self._hops_end(key[1])
            return
        super()._on_deadline(key, now)

    def send_data(self, dst: int, payload: bytes, now: float, *, fid: int = FIRST_DATA_FID,
                  ) -> None:
        """Own traffic to the ABS over the relay link."""
        super().send_data(dst, payload, now, fid=fid)


__all__: list[Any] = ["ArsRole"]
