"""Key life: what keeps a subscriber's keys current once it has entered -- TEK refresh
(TEK-Request, TEK-Reply, TEK-Invalid), re-authentication (Reauth-Request, then a new EAP and key
agreement through the entry path) and AK expiry (digest §6.3, §6.5; docs/roles.md §4).

A mixin of :class:`stack.roles.subscriber.SubscriberRole` (which holds the state named below):
entering -- attach, ranging, the EAP peer, Key_Agreement-MSG#1/#3 -- the receive and dispatch
path, the deadline dispatch and the entry watchdog live there, moving lives in
:class:`stack.roles.subscriber_move.Handover`; here is what happens to the keys between one
entry and the next: when they are refreshed, when they are replaced, when they end. Kept apart
because the key timers and their failure handling change for different reasons than how a
station enters or moves. MSG#3 (entry and re-authentication) and a completed handover hand
their new keys to :meth:`KeyLife._schedule`, which times all of this afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from stack.errors import MalformedError, ProtocolError, UnknownKeyError
from stack.pkm import messages as m
from stack.roles.base import log
from stack.roles.config import Lifetimes, Timers
from stack.roles.events import EntryFailed
from stack.roles.framing import control_mpdu
from stack.roles.ids import fmt_station
from stack.roles.link import Link
from stack.roles.subscriber_phase import Phase


class KeyLife:
    """The key life of a subscriber (mixed into SubscriberRole): TEK refresh, TEK-Reply and
    TEK-Invalid, re-authentication and AK expiry."""

    station_id: int
    timers: Timers
    life: Lifetimes
    serving: int | None
    phase: Phase
    link: Link | None
    _ho: tuple[int, Link] | None
    _peer: Any
    _eap_failure_seen: bool
    _ak_lifetime: float
    _pending: dict[Hashable, Any]
    _grace: float
    # provided by SubscriberRole / RoleBase (its SendPath: _queue)
    _new_peer: Callable[[], Any]
    _keys_event: Callable[..., None]
    _queue: Callable[..., None]
    _request: Callable[..., None]
    _answered: Callable[[Hashable], bool]
    _set_deadline: Callable[[Hashable, float | None], None]
    _emit: Callable[[Any], None]

    # -- TEK messages from the serving station ----------------------------------------------
    def _on_tek_message(self, src: int, data: bytes, now: float) -> None:
        if self.link is None or src != self.serving:
            raise UnknownKeyError("TEK message without keys", reason="no_keys")
        msg = m.decode(self.link.verify(data))
        if not isinstance(msg, (m.TekReply, m.TekInvalid)):
            raise MalformedError("not a TEK message", reason="malformed")
        if msg.said != self.link.sa.said:
            raise UnknownKeyError(f"{type(msg).__name__} for unknown SAID {msg.said}",
                                  reason="unknown_said")
        if isinstance(msg, m.TekReply):
            self._on_tek_reply(msg, now)
        elif self._tek_synced:
            # Verified, but the serving end sends TEK-Invalid for any MPDU under an EKS it does
            # not hold -- which a stranger can forge. While our own last TEK update was
            # confirmed we are provably in step, so it is no reason to change keys.
            raise ProtocolError("TEK-Invalid while our TEKs are confirmed",
                                reason="tek_in_sync")
        else:  # our last update was never confirmed: restart from TEK-Request
            self._start_refresh(now)

    # -- TEK refresh / re-authentication -----------------------------------------------------
    def _schedule(self, now: float) -> None:
        """New keys are in place (entry, re-authentication, handover): their TEK refresh and
        re-authentication are timed from now. A TEK-Request still outstanding asked about the
        old link's SA; its answer could only be refused, and left pending it would hold off
        every refresh of the new SA until it gave up (a relay SA ran 27 s unrefreshed that
        way in a 600 s soak), so it ends here."""
        self._answered("tek")
        self._tek_synced = True
        self._set_deadline("tek", now + self.life.tek * (1 - self.life.tek_refresh_margin))
        self._set_deadline("reauth", self._ak_expiry - self.life.reauth_margin * self._ak_lifetime)
        self._set_deadline("ak_expiry", self._ak_expiry)

    def _ak_expired(self, now: float) -> None:
        """The AK's lifetime is over and re-authentication did not complete in time: the keys
        carry nothing more; the station is detached, with an event (never left running on an
        expired AK)."""
        if self.link is None or now < self._ak_expiry:
            return
        log.info("%s: AK expired; detached", fmt_station(self.station_id))
        self.link, self._ho, self.phase, self._peer = None, None, Phase.FAILED, None
        for key in ("tek", "reauth", "ho"):
            self._answered(key)
            self._set_deadline(key, None)
        self._emit(EntryFailed(station=self.station_id, reason="ak_expired"))

    _ak_expiry = 0.0

    def _maybe_refresh(self, now: float) -> None:
        if self.link is not None and self.link.sa.update_needed(now):
            self._start_refresh(now)

    def _start_refresh(self, now: float) -> None:
        link, dst = self.link, self.serving
        if link is None or dst is None or "tek" in self._pending:
            return
        req = m.TekRequest(said=link.sa.said)

        def send() -> None:
            if self.link is link:
                self._queue(dst, control_mpdu(link.sign(req)), req.TITLE)

        def fail(now2: float) -> None:  # no TEK-Reply at all: we may be out of step
            if self.link is link:
                self._tek_synced = False
                self._set_deadline("tek", now2 + self.timers.give_up_after)  # try again later

        self._request("tek", dst, "tek_refresh", send, now, on_fail=fail)

    _tek_synced = True
    """False from a TEK update that got no TEK-Reply until the next confirmed one."""

    def _on_tek_reply(self, msg: m.TekReply, now: float) -> None:
        link = self.link
        assert link is not None
        ahead = msg.counter_tek - link.newest_counter
        if 1 <= ahead <= 3:
            # Normally one step; more when a reply was lost and the server moved on since.
            for c in range(link.newest_counter + 1, msg.counter_tek + 1):
                link.install(c, now, grace=self._grace)
            self._keys_event(link, "tek_refresh", peer=link.peer)
            self._set_deadline("tek", now + self.life.tek * (1 - self.life.tek_refresh_margin))
        elif ahead == 0:
            # a repeat of the reply we already installed (our earlier request was resent):
            # it answers nothing outstanding now, so a refresh in progress keeps its retries
            return
        else:
            raise ProtocolError("TEK-Reply with an unexpected COUNTER_TEK", reason="bad_counter")
        self._answered("tek")
        self._tek_synced = True

    def reauthenticate(self, now: float) -> None:
        """Ask for re-authentication (new EAP → new PMK SN → new AK → key agreement)."""
        link, dst = self.link, self.serving
        if link is None or dst is None:
            return
        if self._ho is not None:  # after the handover, on the new path
            self._set_deadline("reauth", now + self.timers.give_up_after)
            return
        self.phase = Phase.EAP
        self._eap_failure_seen = False
        self._peer = self._new_peer()
        req = m.ReauthRequest()

        def send() -> None:
            self._queue(dst, control_mpdu(link.sign(req)), req.TITLE)

        def fail(now2: float) -> None:  # no answer: keep the current keys, retry later
            if self.phase == Phase.EAP and self.link is link:
                self.phase, self._peer = Phase.OPERATIONAL, None
                self._set_deadline("reauth", now2 + self.life.reauth_margin * self._ak_lifetime / 2)

        self._request("reauth", dst, "reauth", send, now, on_fail=fail)
