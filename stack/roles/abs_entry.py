"""The ABS's network entry (digest §2.1, §5.1, §6.2): initial ranging and STIDs, the half-open
attempts (admitted within caps, dropped, expired), EAP through the authenticator, key agreement
MSG#1-#2 under the AK of each candidate AMSID*, completion into a :class:`Context`, and
re-authentication of an established context.

A mixin of :class:`stack.roles.abs.AbsRole` (which holds the state named below and dispatches the
control messages here): the data and relay plumbing -- ARQ, the relay link, the receive path and
the dispatch table -- lives there, the AK's travels after an entry (AK Transfer, handover,
release) in :mod:`stack.roles.abs_keys`. Kept apart because entry changes with the threat model of
unauthenticated strangers and with EAP, the plumbing with ARQ and routing (as the ARS's
:mod:`stack.roles.ars_keys`).

Nothing an unauthenticated RNG-REQ starts touches an established context: an :class:`Entry` is
bounded in number and time, and only a completed one (EAP succeeded, MSG#2 verified under the new
AK, AK Transfer acknowledged) replaces the station's context (docs/threat-model.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

from stack.errors import MalformedError, ProtocolError, SecurityError
from stack.keys import AkContext, derive_amsid_star, derive_pmk
from stack.pkm import messages as m
from stack.roles.abs_state import Context, Entry, EntryPhase, _AkTx, _Sender, _victim
from stack.roles.config import AbsConfig, Lifetimes, Timers
from stack.roles.events import Attached, ContextReleased, EntryFailed
from stack.roles.ids import fmt_station, station_bytes, station_from_bytes
from stack.roles.link import Link
from stack.roles.subscriber import SECURITY_PARAMS

log = logging.getLogger("stack.roles")

_MAX_STARS = 16
"""AMSID*s (one per initial-ranging attempt) remembered per station to refuse replays."""


class NetworkEntry:
    """The entry side of the ABS (mixed into AbsRole): ranging, attempts, EAP, key agreement,
    completion and re-authentication."""

    station_id: int
    config: AbsConfig
    timers: Timers
    life: Lifetimes
    auth: Any
    distributed: bool
    peak_half_open: int
    _contexts: dict[int, Context]
    _entries: dict[int, Entry]
    _entries_of: dict[int, dict[int, Entry]]
    _entries_via: dict[int, dict[int, Entry]]
    _stars: dict[int, dict[bytes, None]]
    _stid_of: dict[int, int]
    _by_stid: dict[int, int]
    _akt: dict[tuple[int, int], _AkTx]
    _serial: int
    _next_stid: int
    _arq: dict[Hashable, Any]
    _grace: float
    # provided by AbsRole / KeyDistribution / RoleBase / ArqMixin
    _to_entry: Callable[[Entry, bytes, str, float], None]
    _to_ctx: Callable[[Context, bytes, str, float], None]
    _is_relay: Callable[[int], bool]
    _on_reentry: Callable[[bytes, int, float], None]
    _ak_transfer: Callable[..., None]
    _release: Callable[[int, int, int, bytes, float], None]
    _relay_restarted: Callable[[Context, float], None]
    _arq_close_hops: Callable[..., None]
    _arq_reset: Callable[[Hashable, float], None]
    _keys_event: Callable[..., None]
    _request: Callable[..., None]
    _answered: Callable[[Hashable], bool]
    _set_deadline: Callable[[Hashable, float | None], None]
    _emit: Callable[[Any], None]
    _random: Callable[[int], bytes]

    # -- ranging, STIDs and the attempts ----------------------------------------------------
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

    # -- EAP, key agreement, completion -----------------------------------------------------
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
