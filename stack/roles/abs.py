"""The ABS role: authenticator front end, entry attempts and key agreement, the relay-link end and
control dispatch (digest §5.1, §6). AK Transfer, AK Request, handover and release live in
:mod:`stack.roles.abs_keys` (mixed in); the per-station records in :mod:`stack.roles.abs_state`.
Sans-I/O; see docs/roles.md and docs/threat-model.md.

Per-station state is split in two, so that nothing a stranger sends can touch what an
authenticated station holds:

* an :class:`Entry` is one half-open network entry (or re-authentication) attempt. It is created
  by an unauthenticated AAI-RNG-REQ, bounded in number (per station, per access station and in
  total, oldest evicted first) and in time (it expires), runs EAP and key agreement, and never
  touches the station's established context;
* a :class:`Context` is an authenticated station: PMK, current AK context and where it is
  attached. It is created only when an entry completes (EAP succeeded, Key_Agreement-MSG#2 verified
  under the new AK, AK Transfer acknowledged) and replaced only by the next completed entry.

Control messages are dispatched through one table, ``message class -> (handler, who may send
it)``; a message outside the table, or from a sender the table does not allow, is a table miss
(``unexpected_message``/``not_relay``), never a missing key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

from stack.errors import MalformedError, ProtocolError, SecurityError, UnknownKeyError
from stack.keys import AkContext, derive_amsid_star, derive_pmk
from stack.mac import decapsulate_relay, encapsulate_relay
from stack.pkm import messages as m
from stack.roles.abs_keys import KeyDistribution
from stack.roles.abs_state import Context, Entry, EntryPhase, _AkTx, _Sender, _victim
from stack.roles.arq_plumbing import HOP, arq_of
from stack.roles.base import RoleBase
from stack.roles.config import AbsConfig, SecurityMode
from stack.roles.events import (
    Attached,
    ContextReleased,
    DataReceived,
    EntryFailed,
)
from stack.roles.framing import (
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
)
from stack.roles.ids import fmt_station, station_bytes, station_from_bytes
from stack.roles.link import KeyInfo, Link, PendingMpdu
from stack.roles.subscriber import SECURITY_PARAMS, _check_data

log = logging.getLogger("stack.roles")

_PROTECTED_FIDS = frozenset(range(1, 16))
"""FIDs the ABS opens with a directly attached station's SA (then rejects what is not data or
relay, exactly as a one-by-one open would)."""

_MAX_STARS = 16
"""AMSID*s (one per initial-ranging attempt) remembered per station to refuse replays."""


class AbsRole(KeyDistribution, RoleBase):
    """Base station: authenticates AMSs/ARSs, runs key agreement, hands AKs to access RSs."""

    def __init__(self, config: AbsConfig, *, authenticator: Any, rng: object = None) -> None:
        super().__init__(config.station_id, config.timers, rng)  # type: ignore[arg-type]
        self.config = config
        self.life = config.lifetimes
        self._arq_params = config.arq  # ARQ connections by (station, FID), end to end
        self.auth = authenticator
        self._contexts: dict[int, Context] = {}
        self._entries: dict[int, Entry] = {}            # by serial, oldest first
        self._entries_of: dict[int, dict[int, Entry]] = {}  # station -> serial -> entry
        self._entries_via: dict[int, dict[int, Entry]] = {}  # access station -> serial -> entry
        self._stars: dict[int, dict[bytes, None]] = {}  # AMSID*s seen, stations with state only
        self._stid_of: dict[int, int] = {}
        # relay hops of AMSs that just moved away, still receiving until then (_arq_hold_hops)
        self._arq_held: dict[tuple[str, int, int, int], float] = {}
        self._by_stid: dict[int, int] = {}
        self._akt: dict[tuple[int, int], _AkTx] = {}   # (ARS, transaction id) -> transfer
        self._rel: dict[tuple[int, int], int] = {}     # (ARS, transaction id) -> AMS released
        self._serial = 0
        self._next_stid = config.first_stid
        self._txid = 0
        self.peak_half_open = 0
        self._handlers: dict[type[m.Message], tuple[Callable[..., None], str]] = {
            m.RngReq: (self._on_rng_req, "anyone"),
            m.EapTransfer: (self._on_eap, "entry"),
            m.KeyAgreementMsg2: (self._on_ka2, "entry"),
            m.TekRequest: (self._on_tek_request, "context"),
            m.ReauthRequest: (self._on_reauth_request, "context"),
            m.AkTransferAck: (self._on_akt_ack, "relay"),
            m.AkRequest: (self._on_ak_request, "relay"),
            m.ContextReleaseAck: (self._on_release_ack, "relay"),
        }

    @property
    def distributed(self) -> bool:
        return self.config.mode == SecurityMode.DISTRIBUTED

    def _may_run_hops(self) -> bool:
        return self.distributed

    # -- public -----------------------------------------------------------------------------
    def send_data(self, dst: int, payload: bytes, now: float, *, fid: int = FIRST_DATA_FID) -> None:
        """Queue data to AMS/ARS ``dst`` (through its access RS when it has one)."""
        _check_data(payload, fid)
        c = self._contexts.get(dst)
        if c is None:
            raise UnknownKeyError("no keys for that station", reason="no_keys")
        if self._arq_params is not None:
            self._arq_offer((dst, fid), payload, now)
            return
        if c.via == self.station_id:
            self._queue(dst, self._seal(c.link, fid, payload, now))
            return
        inner = plain_mpdu(fid, payload) if self.distributed else c.link.seal(fid, payload, now)
        self._relay(c.via, c.stid, inner, now)

    def _arq_over_hops(self, key: Hashable) -> bool:
        """End-to-end connection ``key`` = (station, FID) runs over per-hop ARQ now: the
        station is served by an ARS in distributed mode (docs/roles.md §11)."""
        if not self._arq_per_hop or not isinstance(key, tuple) or len(key) != 2:
            return False
        c = self._contexts.get(key[0])
        return c is not None and c.via != self.station_id

    def _arq_transmit(self, key: Hashable, pdu: bytes, now: float
                      ) -> tuple[int, bytes | PendingMpdu] | None:
        if isinstance(key, tuple) and key[0] == HOP:   # the relay hop to an ARS
            _h, ars, station, fid = key
            c = self._contexts.get(station)
            if c is None or not self._hop_open(c, ars, fid):
                return None   # the path ended: the connection is closed with it
            relayed = self._relay(ars, c.stid, plain_mpdu(fid, pdu), now)
            return None if relayed is None else (ars, relayed)
        station, fid = key  # type: ignore[misc]
        c = self._contexts.get(station)
        if c is None:
            return None
        if self._arq_over_hops(key):   # end to end, carried by the relay hop's ARQ
            self._arq_offer((HOP, c.via, station, fid), pdu, now)
            return None
        if c.via == self.station_id:
            obj = self._seal(c.link, fid, pdu, now)
            self._queue(station, obj)
            return station, obj
        inner = plain_mpdu(fid, pdu) if self.distributed else c.link.seal(fid, pdu, now)
        relayed = self._relay(c.via, c.stid, inner, now)
        return None if relayed is None else (c.via, relayed)

    def _arq_wrap(self, key: Hashable, pdu: bytes) -> bytes | None:
        if isinstance(key, tuple) and key[0] == HOP:   # as _relay encapsulates it
            c = self._contexts.get(key[2])
            return None if c is None or not self._hop_open(c, key[1], key[3]) else \
                encapsulate_relay([(c.stid, plain_mpdu(key[3], pdu))])
        c = self._contexts.get(key[0]) if isinstance(key, tuple) else None
        if c is None:
            return None
        if c.via == self.station_id:
            return pdu
        # relayed end to end: in the clear inside our relay SA in distributed mode; sealed
        # in the AMS's own SA (its PN taken) in centralized mode, so not rewritable
        return encapsulate_relay([(c.stid, plain_mpdu(key[1], pdu))]) if self.distributed \
            else None

    def _arq_deliver(self, key: Hashable, sdus: list[bytes], now: float,
                     vias: list[object] | None = None) -> None:
        if isinstance(key, tuple) and key[0] == HOP:   # hop SDUs are end-to-end ARQ PDUs
            e2e = (key[2], key[3])
            for sdu in sdus:
                # each end-to-end block is reported as come through the RS whose hop brought
                # it, whenever it is delivered: a held old hop (_arq_hold_hops) that fills a
                # gap releases blocks of both paths
                out = self._arq_input(e2e, sdu, now, tag=key[1])
                self._arq_deliver(e2e, out, now, vias=self._arq[e2e].rx.last_tags)
            return
        station, fid = key  # type: ignore[misc]
        c = self._contexts.get(station)
        via = station if c is None or c.via == self.station_id else c.via
        for i, sdu in enumerate(sdus):
            tag = vias[i] if vias is not None and i < len(vias) else None
            self._emit(DataReceived(src=station, payload=sdu, fid=fid,
                                    via=tag if isinstance(tag, int) else via))

    def _arq_moved(self, station: int, old_via: int, now: float) -> None:
        """``station`` handed over: its blocks still queued for the old path are taken back
        and every block it has not received goes out again on the new one once its status
        report is in (nothing waits for its timer, nothing is lost with the old path)."""
        if self._arq_params is None:
            return
        c = self._contexts.get(station)
        for key in [k for k in self._arq_held if k[2] == station
                    and (c is None or k[1] == c.via)]:
            # back at an RS whose hop was still held: that RS starts the hop afresh
            del self._arq_held[key]
            self._arq_close(key)
        carried: dict[Hashable, list[bytes]] = {}
        if self._arq_per_hop and old_via not in (station, self.station_id):
            carried = self._arq_hold_hops(station, old_via, now)
        else:
            self._arq_close_hops(station, old_via)
        if old_via != station:
            self._arq_unqueue(old_via, lambda k: not arq_of(k, station))
        for key in [k for k in self._arq if isinstance(k, tuple) and k[0] == station]:
            self._arq_retune(key)   # relayed per hop, or direct: its own timers
            self._arq_path_changed(key, now)   # status reports both ways, then resend
        for key, pdus in carried.items():   # what never reached the old RS: at once
            self._arq_resend_carried(key, pdus, now)

    def _arq_hold_hops(self, station: int, via: int, now: float
                       ) -> dict[Hashable, list[bytes]]:
        """The relay hops of ``station`` through its old access RS ``via`` after a handover:
        what they held to send is dropped, and what of it never went on the air is returned
        as the end-to-end PDUs it carried, by end-to-end connection (those go out again at
        once on the new path; a block sent and not yet acknowledged most likely reached the
        old RS, which delivers it), but they keep receiving for ``_grace``. The old RS
        forwards what the AMS gave it before it moved (:meth:`ArsRole._hops_end` drains);
        refused, those blocks were a gap that waited for a status report round trip on the
        new path (docs/roles.md section 11)."""
        held = [k for k in self._arq if isinstance(k, tuple) and k[0] == HOP
                and k[2] == station and k[1] == via]
        carried: dict[Hashable, list[bytes]] = {}
        for key in held:
            conn = self._arq[key]
            self.arq_stats["closed_unacked"] += conn.tx.unacked()
            carried.setdefault((station, key[3]), []).extend(
                [b.sdu for b in conn.tx.blocks.values() if b.queued or b.last_tx is None]
                + list(conn.tx.waiting))
            conn.tx.blocks.clear()
            conn.tx.waiting.clear()
            self._arq_held[key] = now + self._grace
            self._set_deadline(("hop_held", key), now + self._grace)
        self._arq_unqueue(via, lambda k: k not in held)
        return carried

    def _hop_open(self, c: Context, ars: int, fid: int) -> bool:
        """Whether relayed data of ``c`` from ``ars`` is taken: its access RS, or the one it
        just left while that hop is held (:meth:`_arq_hold_hops`)."""
        key = (HOP, ars, c.station, fid)
        return c.via == ars or (key in self._arq_held and key in self._arq)

    def _arq_close_hops(self, station: int, via: int | None = None) -> None:
        """Close the relay-hop ARQ connections of ``station`` (through ``via``, or any): the
        path ended; what they held is still held end to end and goes out on the new path."""
        gone = [k for k in self._arq if isinstance(k, tuple) and k[0] == HOP
                and k[2] == station and (via is None or k[1] == via)]
        for key in gone:
            self._arq_close(key)
        for ars in {k[1] for k in gone}:   # and their copies still queued for the ARS
            self._arq_unqueue(ars, lambda k: k not in gone)

    def key_info(self, peer: int) -> KeyInfo | None:
        c = self._contexts.get(peer)
        return None if c is None else c.link.info()

    def via_of(self, ams: int) -> int | None:
        """The access station the ABS believes ``ams`` is attached to."""
        c = self._contexts.get(ams)
        return None if c is None else c.via

    def context(self, station: int) -> Context | None:
        """The established context of ``station`` (None before it completed an entry)."""
        return self._contexts.get(station)

    @property
    def half_open(self) -> int:
        """Number of entry attempts in progress (bounded by ``AbsConfig.max_half_open``)."""
        return len(self._entries)

    def state_size(self) -> dict[str, int]:
        """Sizes of every table a stranger could try to grow (for tests and the threat model)."""
        return {"contexts": len(self._contexts), "entries": len(self._entries),
                "stations_with_entries": len(self._entries_of), "stars": len(self._stars),
                "stids": len(self._by_stid), "ak_transfers": len(self._akt),
                "releases": len(self._rel), "pending": len(self._pending),
                "deadlines": len(self._deadlines)}

    # -- output helpers ---------------------------------------------------------------------
    def _relay(self, via: int, stid: int, inner: bytes, now: float,
               title: str | None = None) -> bytes | PendingMpdu | None:
        ars = self._contexts.get(via)
        if ars is None:
            self.tx_dropped["no_relay_keys"] += 1
            return None
        relay = encapsulate_relay([(stid, inner)])
        obj = self._seal(ars.link, FID_RELAY, relay, now)
        self._queue(via, obj, title)
        return obj

    def _to(self, station: int, via: int, stid: int, body: bytes, title: str,
            now: float) -> None:
        """A control message to ``station`` attached at ``via`` (relayed when via is an RS)."""
        if via == self.station_id:
            self._queue(station, control_mpdu(body), title)
        else:
            self._relay(via, stid, control_mpdu(body), now, title)

    def _to_entry(self, e: Entry, body: bytes, title: str, now: float) -> None:
        self._to(e.station, e.via, e.stid, body, title, now)

    def _to_ctx(self, c: Context, body: bytes, title: str, now: float) -> None:
        self._to(c.station, c.via, c.stid, body, title, now)

    # -- receive ----------------------------------------------------------------------------
    def _is_relay(self, station: int) -> bool:
        """An authenticated station configured as an access RS, attached directly to us."""
        c = self._contexts.get(station)
        return (c is not None and c.relay and c.via == self.station_id)

    def _rx_link(self, src: int) -> tuple[Link, frozenset[int]] | None:
        c = self._contexts.get(src)
        if c is None or c.via != self.station_id:
            return None
        return c.link, _PROTECTED_FIDS

    def _on_mpdu(self, src: int, mpdu: bytes, now: float) -> None:
        fid = mpdu_fid(mpdu)
        if fid == FID_CONTROL:
            cls, data = control_message(mpdu)
            self._on_control(_Sender(src, self.station_id, direct=True), cls, data, now)
            return
        rx = self._rx_link(src)
        if rx is None:
            raise UnknownKeyError("protected MPDU from a station without keys", reason="no_keys")
        fid, _eks, payload = self._open(rx[0], mpdu, now)
        self._on_opened(src, rx[0], fid, payload, now)

    def _on_opened(self, src: int, link: Link, fid: int, payload: bytes, now: float) -> None:
        if FIRST_DATA_FID <= fid <= LAST_DATA_FID:
            if self._arq_params is not None:
                self._arq_deliver((src, fid), self._arq_input((src, fid), payload, now), now)
                return
            self._emit(DataReceived(src=src, payload=payload, fid=fid, via=src))
        elif fid == FID_RELAY:
            if not self._is_relay(src):
                raise ProtocolError("relay MPDU from a station that is not an access RS",
                                    reason="not_relay")
            for stid, inner in decapsulate_relay(payload):
                try:  # one bad item (e.g. an AMS MPDU failing its ICV) spoils no other
                    self._on_relayed(src, stid, inner, now)
                except SecurityError as exc:
                    self._reject(src, exc.reason, str(exc))
        else:
            raise MalformedError(f"unexpected FID {fid}", reason="bad_fid")

    def _on_relayed(self, ars: int, stid: int, inner: bytes, now: float) -> None:
        fid = mpdu_fid(inner)
        if fid == FID_CONTROL:
            cls, data = control_message(inner)
            if stid == self._contexts[ars].stid:  # the ARS's own control, sealed in its relay SA
                self._on_control(_Sender(ars, self.station_id, direct=True, sealed=True),
                                 cls, data, now)
            else:
                station = self._by_stid.get(stid, -1)
                self._on_control(_Sender(station, ars, direct=False, stid=stid), cls, data, now)
            return
        station = self._by_stid.get(stid)
        c = self._contexts.get(station) if station is not None else None
        if c is None:
            raise UnknownKeyError("relayed data for an unknown AMS", reason="unknown_ams")
        if not self._hop_open(c, ars, fid):  # e.g. the old path after a handover's grace
            raise ProtocolError("relayed data from an ARS not serving the AMS",
                                reason="wrong_link")
        if self.distributed:
            fid, payload = fid, plain_payload(inner)
        else:
            fid, _eks, payload = self._open(c.link, inner, now)
        if self._arq_per_hop:
            hop = (HOP, ars, c.station, fid)
            self._arq_deliver(hop, self._arq_input(hop, payload, now), now)
            return
        if self._arq_params is not None:
            self._arq_deliver((c.station, fid), self._arq_input((c.station, fid), payload, now),
                              now)
            return
        self._emit(DataReceived(src=c.station, payload=payload, fid=fid, via=ars))

    def _on_control(self, sender: _Sender, cls: type[m.Message], data: bytes,
                    now: float) -> None:
        """Dispatch one control message through the handler table."""
        entry = self._handlers.get(cls)
        if entry is None:
            raise ProtocolError(f"unexpected {cls.__name__}", reason="unexpected_message")
        handler, who = entry
        if cls.CODE in RELAY_MANAGEMENT_CODES and self.config.encrypt_relay_control \
                and not sender.sealed:
            raise ProtocolError(f"{cls.TITLE} outside the relay SA", reason="not_encrypted")
        if who in ("anyone", "entry"):  # unauthenticated (ranging) or bound to an attempt
            handler(sender, data, now)
            return
        c = self._contexts.get(sender.station)  # "context"/"relay": CMAC under its link
        if c is None:
            raise UnknownKeyError("control message from an unknown station",
                                  reason="unknown_station")
        if c.via != sender.via:  # only along the path the station is attached by (17.7)
            raise ProtocolError("control message not on the station's path",
                                reason="wrong_link")
        if who == "relay" and not (c.relay and sender.direct):
            raise ProtocolError(f"{cls.__name__} from a station that is not an access RS",
                                reason="not_relay")
        msg = cls.decode(c.link.verify(data))
        handler(c, msg, now)

    # -- entry ------------------------------------------------------------------------------
    def _on_rng_req(self, sender: _Sender, data: bytes, now: float) -> None:
        try:
            msg = m.RngReq.decode(data)
        except MalformedError:
            msg = None  # signed: a handover re-entry (the CMAC tuple makes plain decode fail)
        if msg is not None and msg.purpose == m.RangingPurpose.INITIAL_ENTRY:
            self._on_initial_ranging(msg, sender, now)
        else:
            self._on_reentry(data, sender.via, now)

    def _on_initial_ranging(self, msg: m.RngReq, sender: _Sender, now: float) -> None:
        """Initial-entry AAI-RNG-REQ (unauthenticated; docs/roles.md §6, docs/threat-model.md):

        * a duplicate of an attempt in progress (same AMSID*, same path) gets its RNG-RSP again;
        * an AMSID* seen before for this station is refused (``stale_entry``);
        * otherwise a new half-open :class:`Entry` starts, in parallel with any other attempt
          of the station and without touching its established context; the attempts are bounded
          (per station, per access station, in total; oldest evicted) and expire. Whichever
          completes EAP *and* key agreement replaces the context.
        """
        via = sender.via
        if msg.amsid is None or msg.nonce_ams is None:
            raise MalformedError("initial ranging without AMSID/NONCE_AMS", reason="malformed")
        station = station_from_bytes(msg.amsid)
        star = derive_amsid_star(msg.amsid, msg.nonce_ams)
        for e in self._entries_of.get(station, {}).values():
            if e.amsid_star == star and not e.reauth:
                if e.via == via and e.rsp is not None:
                    self._to_entry(e, e.rsp, m.RngRsp.TITLE, now)  # our RNG-RSP was lost
                    return
                raise ProtocolError("initial ranging of an attempt that is over",
                                    reason="stale_entry")
        c = self._contexts.get(station)
        if star in self._stars.get(station, {}) or (c is not None and c.amsid_star == star):
            raise ProtocolError("replayed initial ranging", reason="stale_entry")
        if c is not None and c.relay and via != self.station_id:
            raise ProtocolError("an access RS enters directly", reason="wrong_link")
        stid = self._stid_for(station)          # raises no_stid before anything is recorded
        self._serial += 1
        e = Entry(serial=self._serial, station=station, stid=stid, via=via, amsid_star=star,
                  started=now, session=self.auth.start(msg.amsid))
        self._admit(e, now)
        stars = self._stars.setdefault(station, {})
        stars[star] = None
        while len(stars) > _MAX_STARS:
            del stars[next(iter(stars))]
        rsp = m.RngRsp(purpose=m.RangingPurpose.INITIAL_ENTRY, status=m.RngStatus.SUCCESS,
                       stid=stid, amsid=msg.amsid, nonce_ams=msg.nonce_ams)
        e.rsp = rsp.encode()
        self._to_entry(e, e.rsp, rsp.TITLE, now)
        self._eap_request(e, now)

    def _stid_for(self, station: int) -> int:
        """The station's STID (kept while it has a context or an attempt), or a new one."""
        stid = self._stid_of.get(station)
        if stid is not None:
            return stid
        first, top = self.config.first_stid, 0xFFF
        span = top - first + 1
        for k in range(span):
            cand = first + (self._next_stid - first + k) % span
            if cand not in self._by_stid:
                self._next_stid = cand + 1 if cand < top else first
                self._stid_of[station] = cand
                self._by_stid[cand] = station
                return cand
        raise ProtocolError("no STID left", reason="no_stid")

    def _admit(self, e: Entry, now: float) -> None:
        """Record a new attempt within the caps, evicting the oldest attempt of the same scope
        (station, access station, everything) when one is full."""
        mine = self._entries_of.setdefault(e.station, {})
        while len(mine) >= self.config.max_attempts_per_station:
            self._drop(_victim(mine.values()), now, "evicted")
        same_via = self._entries_via.setdefault(e.via, {})
        while len(same_via) >= self.config.max_half_open_per_via:
            self._drop(_victim(same_via.values()), now, "evicted")
        while len(self._entries) >= self.config.max_half_open:
            self._drop(_victim(self._entries.values()), now, "evicted")
        self._entries[e.serial] = e
        self._entries_of.setdefault(e.station, {})[e.serial] = e
        self._entries_via.setdefault(e.via, {})[e.serial] = e
        self.peak_half_open = max(self.peak_half_open, len(self._entries))
        self._set_deadline(("expire", e.serial), now + self.config.entry_timeout_for(self.timers))

    def _drop(self, e: Entry, now: float, why: str) -> None:
        """End an attempt: stop its retransmissions and AK Transfers; if an access RS accepted
        its AK, ask the RS to release that context (by AKID, so a newer one is never hit)."""
        if self._entries.pop(e.serial, None) is None:
            return
        mine = self._entries_of.get(e.station)
        if mine is not None:
            mine.pop(e.serial, None)
            if not mine:
                del self._entries_of[e.station]
        via = self._entries_via.get(e.via)
        if via is not None:
            via.pop(e.serial, None)
            if not via:
                del self._entries_via[e.via]
        self._answered(e.key("eap"))
        self._answered(e.key("ka"))
        self._set_deadline(("expire", e.serial), None)
        for key in [k for k, t in self._akt.items() if t.serial == e.serial]:
            del self._akt[key]
            self._answered(("akt", *key))
        if e.transferred_to is not None and e.link is not None and self.distributed:
            self._release(e.station, e.stid, e.transferred_to, e.link.ctx.akid, now)
        log.debug("%s: entry attempt %d of %s ended: %s", fmt_station(self.station_id),
                  e.serial, fmt_station(e.station), why)
        self._forget_if_unknown(e.station)

    def _forget_if_unknown(self, station: int) -> None:
        """A station with neither a context nor an attempt keeps nothing: STID and AMSID*s go."""
        if station in self._contexts or station in self._entries_of:
            return
        stid = self._stid_of.pop(station, None)
        if stid is not None:
            self._by_stid.pop(stid, None)
        self._stars.pop(station, None)

    def _timer(self, now: float) -> None:
        # an asynchronous authenticator (RADIUS) answers between our calls: poll its sessions
        for e in [e for e in self._entries.values() if e.phase == EntryPhase.EAP]:
            reply, result = e.session.poll()
            if reply is not None or result is not None:
                self._eap_progress(e, reply, result, now)
        super()._timer(now)

    def _on_deadline(self, key: Any, now: float) -> None:
        if isinstance(key, tuple) and key[0] == "hop_held":
            if self._arq_held.pop(key[1], None) is not None:
                self._arq_close(key[1])
        elif isinstance(key, tuple) and key[0] == "expire":
            e = self._entries.get(key[1])
            if e is not None:
                self._drop(e, now, "expired")
        elif isinstance(key, tuple) and key[0] == "ak_expiry":
            c = self._contexts.get(key[1])
            if c is not None and c.expires <= now:
                self._expire_context(c, now)

    def _eap_request(self, e: Entry, now: float) -> None:
        session = e.session

        def send() -> None:
            # Only the newest attempt of a station retransmits: older ones still accept the
            # peer's answers but do not compete for its EAP state machine.
            newest = next(reversed(self._entries_of.get(e.station, {e.serial: e})))
            if session.pending is not None and (newest == e.serial or e.reauth):
                self._to_entry(e, m.EapTransfer(eap_payload=session.pending).encode(),
                               m.EapTransfer.TITLE, now)

        def fail(now2: float) -> None:  # the peer went silent: this EAP conversation is over
            self._drop(e, now2, "eap_timeout")

        self._request(e.key("eap"), e.via, "eap", send, now, on_fail=fail)

    def _candidates(self, sender: _Sender) -> list[Entry]:
        """The attempts of the sending station on the path the message came by, newest first."""
        cands = [e for e in self._entries_of.get(sender.station, {}).values()
                 if e.via == sender.via]
        if not cands:
            raise ProtocolError("entry message without an attempt on that path",
                                reason="unexpected_message")
        return cands[::-1]

    def _on_eap(self, sender: _Sender, data: bytes, now: float) -> None:
        msg = m.EapTransfer.decode(data)
        cands = self._candidates(sender)
        first: SecurityError | None = None
        for e in cands:
            if e.phase != EntryPhase.EAP:
                continue
            try:
                reply, result = e.session.handle(msg.eap_payload)
            except SecurityError as exc:  # not this conversation's packet: nothing changed
                first = first or exc
                continue
            self._eap_progress(e, reply, result, now)
            return
        raise first or ProtocolError("EAP without a conversation", reason="unexpected_message")

    def _eap_progress(self, e: Entry, reply: bytes | None, result: Any, now: float) -> None:
        e.answered = True
        self._answered(e.key("eap"))
        if result is None:
            self._eap_request(e, now)
            return
        if reply is not None:
            self._to_entry(e, m.EapTransfer(eap_payload=reply).encode(), m.EapTransfer.TITLE, now)
        if not result.success:
            self._drop(e, now, "eap_failure")  # the established context (if any) is untouched
            self._emit(EntryFailed(station=e.station, reason=result.reason))
            return
        e.pmk = derive_pmk(result.msk)
        e.phase, e.nonce_abs, e.session = EntryPhase.KEY_AGREEMENT, self._random(8), None
        self._refresh_candidates(e, now)

        def send() -> None:
            self._refresh_candidates(e, now)
            for link in e.candidates:
                msg1 = m.KeyAgreementMsg1(nonce_abs=e.nonce_abs or b"", akid=link.ctx.akid,
                                          key_lifetime=int(self.life.ak))
                self._to_entry(e, link.sign(msg1), msg1.TITLE, now)

        def fail(now2: float) -> None:  # no MSG#2: the agreement (and this attempt) is over
            self._drop(e, now2, "ka_timeout")

        self._request(e.key("ka"), e.via, "key_agreement", send, now, on_fail=fail)

    def _refresh_candidates(self, e: Entry, now: float) -> None:
        """AMSID* binding (docs/threat-model.md, "identity squatting"). EAP is unauthenticated,
        so the conversation the peer completed may belong to an attempt a stranger started with
        his own NONCE_AMS, or to the peer's previous attempt. MSG#1 is therefore offered under
        the AK of every AMSID* the station is ranging with on this path -- at most
        ``max_attempts_per_station``, kept up to date while MSG#1 is retransmitted -- and only
        the peer's own verifies at the peer; its MSG#2 picks that AK here."""
        if e.pmk is None or e.link is not None:
            return
        have = {(link.ctx.amsid_star, link.ctx.pmk_sn) for link in e.candidates}
        c = self._contexts.get(e.station)
        # (AMSID*, PMK SN): a new entry starts a PMK sequence at 0; re-authentication of the
        # established context continues it under the context's AMSID*
        wanted: list[tuple[bytes, int]] = []
        if c is not None and c.via == e.via:
            wanted.append((c.amsid_star, (c.pmk_sn + 1) % 16))
        if not e.reauth or c is None:
            wanted.append((e.amsid_star, 0))
        wanted += [(x.amsid_star, 0) for x in reversed(self._entries_of.get(e.station, {})
                                                       .values())
                   if x is not e and x.via == e.via and not x.reauth]
        new = [w for w in dict.fromkeys(wanted) if w not in have]
        if e.reauth:  # the peer asked to re-authenticate: its own context first
            new.sort(key=lambda w: c is None or w[0] != c.amsid_star)
        room = self.config.max_attempts_per_station - len(e.candidates)
        e.candidates += tuple(
            Link(AkContext.derive(e.pmk, pmk_sn=sn, amsid_star=star,
                                  absid=station_bytes(e.via), cmac_key_count=0),
                 subject=e.station, peer=e.via, stid=e.stid, subordinate=False, now=now,
                 pn_refresh=self.life.pn_refresh)
            for star, sn in new[: max(room, 0)])

    def _on_ka2(self, sender: _Sender, data: bytes, now: float) -> None:
        c = self._contexts.get(sender.station)
        if c is not None and c.ka is not None and c.via == sender.via:
            # A duplicate MSG#2 of the agreement that completed: our MSG#3 was lost.
            try:
                msg = m.KeyAgreementMsg2.decode(c.link.verify(data))
            except SecurityError:
                msg = None
            if msg is not None:
                nonce_abs, nonce_ams, msg3 = c.ka
                if (msg.nonce_abs, msg.nonce_ams, msg.akid) != (nonce_abs, nonce_ams,
                                                                 c.link.ctx.akid):
                    raise ProtocolError("MSG#2 does not match the agreement", reason="bad_nonce")
                self._to_ctx(c, c.link.sign(msg3), msg3.TITLE, now)
                return
        cands = self._candidates(sender)
        first: SecurityError | None = None
        for e in cands:
            if e.phase == EntryPhase.EAP:
                continue
            links = (e.link,) if e.link is not None else e.candidates
            for link in links:
                try:
                    msg = m.KeyAgreementMsg2.decode(link.verify(data))
                except SecurityError as exc:
                    first = first or exc
                    continue
                self._ka2_verified(e, link, msg, now)
                return
        raise first or ProtocolError("MSG#2 without an agreement", reason="unexpected_message")

    def _ka2_verified(self, e: Entry, link: Link, msg: m.KeyAgreementMsg2, now: float) -> None:
        if msg.nonce_abs != e.nonce_abs:
            raise ProtocolError("MSG#2 NONCE_ABS does not match", reason="bad_nonce")
        if msg.akid != link.ctx.akid:
            raise ProtocolError("MSG#2 AKID does not match", reason="bad_akid")
        if e.phase == EntryPhase.AK_TRANSFER:
            if e.nonce_ams != msg.nonce_ams:
                raise ProtocolError("MSG#2 NONCE_AMS changed", reason="bad_nonce")
            return  # AK Transfer in progress; MSG#3 follows its ACK
        self._answered(e.key("ka"))
        c = self._contexts.get(e.station)
        e.link, e.amsid_star, e.pmk_sn = link, link.ctx.amsid_star, link.ctx.pmk_sn
        e.reauth = c is not None and (c.amsid_star, (c.pmk_sn + 1) % 16) == (e.amsid_star,
                                                                             e.pmk_sn)
        e.candidates = ()
        e.nonce_ams, e.phase = msg.nonce_ams, EntryPhase.AK_TRANSFER
        msg3 = m.KeyAgreementMsg3(
            nonce_abs=e.nonce_abs, nonce_ams=msg.nonce_ams, akid=link.ctx.akid,
            sa_tek_updates=(m.SaTekUpdate(said=self.config.said, crypto_suite=1, counter_tek=0,
                                          eks=0, tek_lifetime=int(self.life.tek)),),
            security_params=SECURITY_PARAMS)
        e.msg3 = msg3
        if self.distributed and e.via != self.station_id:
            if not self._is_relay(e.via):
                self._drop(e, now, "relay_gone")
                raise ProtocolError("entry through a station that is not an access RS",
                                    reason="not_relay")

            def then(now2: float) -> None:
                e.transferred_to = e.via
                self._complete(e, now2)

            self._ak_transfer(e.station, e.stid, e.pmk_sn, link.ctx, e.via, now, then=then,
                              serial=e.serial)
        else:
            self._complete(e, now)

    def _complete(self, e: Entry, now: float) -> None:
        """An attempt completed: MSG#3 goes out and it becomes the station's context; every other
        attempt of the station ends, and the old context's access RS releases it (by AKID)."""
        if self._entries.get(e.serial) is not e:
            return
        old = self._contexts.get(e.station)
        if e.reauth and old is not None and old.via != e.via:
            self._drop(e, now, "moved")  # the station handed over meanwhile: start again there
            return
        link, msg3 = e.link, e.msg3
        assert link is not None and msg3 is not None and e.pmk is not None  # set by _ka2_verified
        relay = e.station in self.config.relays
        c = Context(station=e.station, stid=e.stid, via=e.via, amsid_star=e.amsid_star,
                    pmk=e.pmk, pmk_sn=e.pmk_sn, count=0, link=link, relay=relay,
                    ka=(e.nonce_abs or b"", e.nonce_ams or b"", msg3),
                    expires=now + self.life.ak)
        if old is not None and e.reauth:  # in flight under the old AK: still received
            link.accept_also(old.link, now + self._grace)
        self._contexts[e.station] = c
        self._set_deadline(("ak_expiry", e.station), c.expires)
        e.transferred_to = None  # now the context's: no release when the entry ends below
        for x in list(self._entries_of.get(e.station, {}).values()):
            self._drop(x, now, "completed" if x is e else "superseded")
        self._to_ctx(c, link.sign(msg3), msg3.TITLE, now)
        cause = "reauth" if (old is not None and e.reauth) else "entry"
        if old is not None:
            if old.via != c.via and old.via != self.station_id and self._is_relay(old.via):
                self._release(old.station, old.stid, old.via, old.link.ctx.akid, now)
            elif old.via == self.station_id and c.via != self.station_id:
                self._emit(ContextReleased(ams=c.station, station=self.station_id))
            if old.relay and not e.reauth:
                self._relay_restarted(old, now)
        self._keys_event(link, cause)
        if cause == "entry":
            self._emit(Attached(station=c.station, via=c.via, stid=c.stid))
            self._arq_close_hops(c.station)
            for key in [k for k in self._arq if isinstance(k, tuple) and k[0] == c.station]:
                self._arq_reset(key, now)  # the station entered anew: its ARQ state is gone

    def _on_reauth_request(self, c: Context, msg: m.ReauthRequest, now: float) -> None:
        if any(e.reauth for e in self._entries_of.get(c.station, {}).values()):
            return  # already running
        self._serial += 1
        e = Entry(serial=self._serial, station=c.station, stid=c.stid, via=c.via,
                  amsid_star=c.amsid_star, started=now, reauth=True,
                  session=self.auth.start(station_bytes(c.station)))
        self._admit(e, now)
        self._eap_request(e, now)

