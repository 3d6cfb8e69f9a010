"""The ABS role: the relay-link end, data and ARQ (end to end and per hop), the receive path and
control dispatch (digest §5.1, §6). Network entry -- ranging, attempts, EAP, key agreement --
lives in :mod:`stack.roles.abs_entry`, AK Transfer, AK Request, handover and release in
:mod:`stack.roles.abs_keys` (both mixed in); the per-station records in
:mod:`stack.roles.abs_state`. Sans-I/O; see docs/roles.md and docs/threat-model.md.

Per-station state is split in two, so that nothing a stranger sends can touch what an
authenticated station holds:

* an :class:`Entry` is one half-open network entry (or re-authentication) attempt. It is created
  by an unauthenticated AAI-RNG-REQ, bounded in number (per station, per access station and in
  total, oldest evicted first) and in time (it expires), runs EAP and key agreement, and never
  touches the station's established context;
* a :class:`Context` is an authenticated station: PMK, current AK context and where it is
  attached. It is created only when an entry completes (EAP succeeded, Key_Agreement-MSG#2 verified
  under the new AK, AK Transfer acknowledged) and replaced only by the next completed entry.

Both live here, created in ``__init__``; the mixins only use them.

Control messages are dispatched through one table, ``message class -> (handler, who may send
it)``; a message outside the table, or from a sender the table does not allow, is a table miss
(``unexpected_message``/``not_relay``), never a missing key.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from stack.errors import MalformedError, ProtocolError, SecurityError, UnknownKeyError
from stack.mac import decapsulate_relay, encapsulate_relay
from stack.pkm import messages as m
from stack.roles.abs_entry import NetworkEntry
from stack.roles.abs_keys import KeyDistribution
from stack.roles.abs_state import Context, Entry, EntryPhase, _AkTx, _Sender
from stack.roles.arq_plumbing import HOP, arq_of
from stack.roles.base import RoleBase
from stack.roles.config import AbsConfig, SecurityMode
from stack.roles.events import DataReceived
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
from stack.roles.link import KeyInfo, Link, PendingMpdu
from stack.roles.subscriber import _check_data

_PROTECTED_FIDS = frozenset(range(1, 16))
"""FIDs the ABS opens with a directly attached station's SA (then rejects what is not data or
relay, exactly as a one-by-one open would)."""


class AbsRole(KeyDistribution, NetworkEntry, RoleBase):
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

    # -- timers -----------------------------------------------------------------------------
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
