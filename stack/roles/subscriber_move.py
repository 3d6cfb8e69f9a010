"""Moving: the subscriber's handover re-entry at a target station and the station it left
(digest §6.5; docs/roles.md §11, "What the old path still carries").

A mixin of :class:`stack.roles.subscriber.SubscriberRole` (which holds the state named below):
entering and staying entered -- ranging, EAP, key agreement, TEK refresh, re-authentication,
the receive path -- lives there; what a move needs lives here: the signed handover RNG-REQ to
the target, its RNG-RSP (success switches the link; an unsigned ABORT only stops our retries),
and the station we left, whose held access hop still delivers what it had for us until the
grace ends. Kept apart because the two change for different reasons (the entry and key
hierarchy vs. the path and its ARQ), as :mod:`stack.roles.abs_keys` is on the ABS. The RERANGE
hint stays there: it re-enters at the serving station (a lost context), this mixin only lends
it :meth:`Handover.handover`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from stack.arq import ArqConnection
from stack.errors import MalformedError, ProtocolError
from stack.keys import AkContext
from stack.pkm import messages as m
from stack.roles.arq_plumbing import HOP, LEFT
from stack.roles.config import Lifetimes, Timers
from stack.roles.events import EntryFailed, HandoverComplete
from stack.roles.framing import (
    CMAC_TUPLE_LEN,
    FIRST_DATA_FID,
    LAST_DATA_FID,
    control_mpdu,
    mpdu_fid,
)
from stack.roles.ids import station_bytes
from stack.roles.link import Link, MpduQueue, PendingMpdu
from stack.roles.subscriber_phase import ENTERING, Phase


class Handover:
    """The moving side of a subscriber (mixed into SubscriberRole): handover re-entry at a
    target, its RNG-RSP, and the held hop of the station it left."""

    station_id: int
    timers: Timers
    life: Lifetimes
    serving: int | None
    stid: int | None
    phase: Phase
    cmac_key_count: int
    link: Link | None
    _amsid_star: bytes | None
    _peer: Any
    _pmk: bytes | None
    _pmk_pending: bytes | None
    _pmk_sn: int
    _new_link: Link | None
    _ka: tuple[bytes, bytes] | None
    _attaching: bool
    _ho: tuple[int, Link] | None
    _left: tuple[int, Link, float] | None
    _sent_tails: deque[bytes]
    _out: dict[int, MpduQueue]
    _deadlines: dict[Hashable, float]
    tx_dropped: Any
    arq_stats: Any
    _arq: dict[Hashable, ArqConnection]
    _arq_per_hop: bool
    _grace: float
    # provided by SubscriberRole / RoleBase / ArqMixin
    _schedule: Callable[[float], None]
    _open: Callable[[Link, bytes, float], tuple[int, int, bytes]]
    _keys_event: Callable[..., None]
    _queue: Callable[..., None]
    _request: Callable[..., None]
    _answered: Callable[[Hashable], bool]
    _set_deadline: Callable[[Hashable, float | None], None]
    _emit: Callable[[Any], None]
    _arq_forget: Callable[[Hashable], ArqConnection | None]
    _arq_arm: Callable[[Hashable], None]
    _arq_close: Callable[[Hashable], None]
    _arq_retune: Callable[[Hashable], None]
    _arq_path_changed: Callable[[Hashable, float], None]
    _arq_resend_carried: Callable[..., None]
    _arq_input: Callable[..., list[bytes]]
    _arq_deliver: Callable[..., None]

    # -- handover re-entry ------------------------------------------------------------------

    def handover(self, target: int, now: float) -> None:
        """Re-enter at ``target`` with CMAC_KEY_COUNT+1 and the AK derived for ``target``."""
        if self.link is None or self._pmk is None or self.stid is None:
            raise ProtocolError("handover needs an attached station with keys")
        if self._ka is not None and not self._attaching:
            # MSG#2 of a re-authentication is out: the ABS may already have switched to the new
            # AK, so the agreement must finish (MSG#3) before we move
            raise ProtocolError("re-authentication key agreement in progress; hand over after it",
                                reason="busy")
        if self.phase in ENTERING and not self._attaching:
            # a re-authentication still in EAP belongs to the old path: abandon it (the keys in
            # use stay; it is asked for again at the target)
            self._answered("reauth")
            self._answered("ka")
            self._pmk_pending, self._new_link, self._ka, self._peer = None, None, None, None
            self.phase = Phase.OPERATIONAL
            self._set_deadline("reauth", now + self.timers.give_up_after)
        self.cmac_key_count += 1
        ctx = AkContext.derive(self._pmk, pmk_sn=self._pmk_sn, amsid_star=self._amsid_star,
                               absid=station_bytes(target), cmac_key_count=self.cmac_key_count)
        link = Link(ctx, subject=self.station_id, peer=target, stid=self.stid, subordinate=True,
                    now=now, pn_refresh=self.life.pn_refresh)
        self._ho = (target, link)
        req = m.RngReq(purpose=m.RangingPurpose.HANDOVER_REENTRY,
                       cmac_key_count=self.cmac_key_count, target_id=station_bytes(target),
                       amsid=None, nonce_ams=None, stid=self.stid,
                       serving_id=station_bytes(self.serving or target))

        self._ho_sent = ()
        self._set_deadline("ho_abort", None)

        def send() -> None:
            signed = link.sign(req)
            self._ho_sent = (*self._ho_sent[-7:], signed[-CMAC_TUPLE_LEN:])
            self._queue(target, control_mpdu(signed), req.TITLE)

        def fail(now2: float) -> None:  # target silent: stay with the serving station
            if self._ho is not None and self._ho[0] == target:
                self._ho = None

        self._request("ho", target, "handover", send, now, on_fail=fail)

    def _on_ho_rsp(self, src: int, data: bytes, now: float) -> None:
        """RNG-RSP of the handover target. Success is CMAC-signed under the new AK and completes
        the handover. A refusal carries no CMAC (the target may hold no AK), so anyone can send
        one: it only stops our retransmissions; the handover is given up after ``rto`` more
        unless a signed success arrives meanwhile (docs/threat-model.md, spoofed ABORT)."""
        assert self._ho is not None
        target, link = self._ho
        try:
            msg = m.RngRsp.decode(data)  # refusals carry no CMAC
        except MalformedError:
            msg = m.RngRsp.decode(link.verify(data))
            if msg.status != m.RngStatus.SUCCESS or msg.purpose != \
                    m.RangingPurpose.HANDOVER_REENTRY:
                raise ProtocolError("signed RNG-RSP that is not a success",
                                    reason="malformed") from None
            self._answered("ho")
            self._set_deadline("ho_abort", None)
            left = self.link
            source, self.serving, self.link, self._ho = self.serving, target, link, None
            self._sent_tails.clear()  # a hint must answer something sent on this link
            # what still waits for the old station was sealed for a link that is over: it
            # could only be refused there (no ARQ forwards it yet), so it is dropped, counted
            stale = self._out.pop(source, []) if source is not None else []
            if stale:
                self.tx_dropped["left_station"] += len(stale)
            for x in stale:  # ARQ blocks among them go out again below, on the new link
                tag = x.tag if isinstance(x, PendingMpdu) else None
                if tag is not None:
                    tag.queued = tag.plain = False
                    if tag.block is not None:
                        tag.block.lost()
            carried = self._hold_left(source, left, now)
            for key in [k for k in self._arq if isinstance(k, tuple) and k[0] != LEFT]:
                self._arq_close(key)  # the access hop to the old station ended with it
            for key in [k for k in self._arq if not isinstance(k, tuple)]:
                # unacknowledged UL blocks: sent again after re-entry
                self._arq_retune(key)     # over the new path's hops, or direct
                self._arq_path_changed(key, now)   # (what the ABS lacks, by its report)
            for key, pdus in carried.items():   # what never reached the old station: at once
                self._arq_resend_carried(key, pdus, now)
            self._keys_event(link, "handover", peer=target)
            self._emit(HandoverComplete(ams=self.station_id, source=source, target=target,
                                        akid=link.ctx.akid.hex(),
                                        cmac_key_count=link.ctx.cmac_key_count))
            self._schedule(now)
            return
        if msg.status != m.RngStatus.ABORT or msg.purpose != m.RangingPurpose.HANDOVER_REENTRY:
            raise ProtocolError("unsigned RNG-RSP during a handover", reason="unexpected_message")
        if msg.request_cmac not in self._ho_sent:
            raise ProtocolError("RNG-RSP(ABORT) for no request of ours", reason="stale_rng_rsp")
        self._answered("ho")
        if "ho_abort" not in self._deadlines:
            self._set_deadline("ho_abort", now + self.timers.rto)

    def _ho_abort(self, now: float) -> None:
        if self._ho is not None:
            self._ho = None
            self._emit(EntryFailed(station=self.station_id, reason="handover_refused"))

    _ho_sent: tuple[bytes, ...] = ()  # CMAC tuples of our current handover request's copies

    # -- the station we left --------------------------------------------------------------
    def _hold_left(self, source: int | None, link: Link | None, now: float
                   ) -> dict[Hashable, list[bytes]]:
        """We moved away from *source*: its access hop's receiver and *link* stay for
        ``_grace``; returns the end-to-end PDUs that hop never sent, by FID (they go again at
        once on the new path). The old station still delivers what the ABS gave it before we
        moved; refused, those blocks were a gap the ABS sent again only once our status report
        had crossed the new path (a UL grant and two hops later)."""
        self._drop_left()
        carried: dict[Hashable, list[bytes]] = {}
        if source is None or link is None or not self._arq_per_hop:
            return carried
        for key in [k for k in self._arq if isinstance(k, tuple) and k[0] == HOP
                    and len(k) == 2]:
            conn = self._arq_forget(key)
            if conn is None:
                continue
            self.arq_stats["closed_unacked"] += conn.tx.unacked()
            # what it never sent: the hop blocks still queued for the old station (dropped
            # with the old link). Those sent and not yet acknowledged most likely arrived:
            # the old station forwards them (ArsRole._hops_end drains), and the ABS's status
            # report names any that did not -- resent now, they went ahead of new data
            carried.setdefault(key[1], []).extend(
                [b.sdu for b in conn.tx.blocks.values() if b.queued or b.last_tx is None]
                + list(conn.tx.waiting))
            conn.tx.blocks.clear()
            conn.tx.waiting.clear()
            held = (LEFT, key[1], source)
            self._arq[held] = conn
            self._arq_arm(held)
        self._left = (source, link, now + self._grace)
        self._set_deadline("left", now + self._grace)
        return carried

    def _drop_left(self) -> None:
        """Close the old station's held access hops (the grace ended, or we move again)."""
        self._left = None
        self._set_deadline("left", None)
        for key in [k for k in self._arq if isinstance(k, tuple) and k[0] == LEFT]:
            self._arq_close(key)

    def _left_open(self, src: int, mpdu: bytes, now: float) -> bool:
        """A data MPDU from the station we just left, within the grace: opened under its
        link and fed to the held hop (True), or not ours to take (False)."""
        left = self._left
        fid = mpdu_fid(mpdu)
        if left is None or src != left[0] or now >= left[2] \
                or not FIRST_DATA_FID <= fid <= LAST_DATA_FID \
                or (LEFT, fid, src) not in self._arq:
            return False
        fid, _eks, payload = self._open(left[1], mpdu, now)
        key = (LEFT, fid, src)
        self._arq_deliver(key, self._arq_input(key, payload, now), now)
        return True
