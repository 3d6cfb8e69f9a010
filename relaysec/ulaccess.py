"""The UL-access half of a station's zone MAC (:class:`relaysec.zonemac.ZoneMac` mixes it in):
the owner of a UL-access zone grants its AMSs slots in it (queue reports, polls, contention
slots, arrival grants and, over the air, slots for AMSs about to arrive by handover,
addressed by STID), and an AMS decides which slot it sends in (its grants, or contention with
a random backoff). :mod:`relaysec.zonemac`'s module doc describes the rules; this module holds
them beside the DL allocation, which stays there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relaysec.linkadapt import ROBUST_MCS
from relaysec.scheduler import Demand

if TYPE_CHECKING:
    import random

    from phy.zone import Grant, ZoneModem
    from relaysec.scheduler import Scheduler
    from relaysec.zonemac import MacConfig

#: The address that every station accepts (contention grants).
BROADCAST = 0xFFFF

POLL_SOON_BYTES = 256
"""Over the air (a grant delay of frames), the slot granted to an AMS right after a control
message to it carries at least this much: its answer and a data MPDU (a 160-byte packet's
MPDU is ~210 bytes), rather than a queue report that asks for the real grant."""

#: Over the air, what each UL grant carries at least to an AMS that just re-entered by handover
#: (until it sends data; two grant delays at most): a few MPDUs, the probes and blocks that
#: waited while it moved.
ARRIVAL_BYTES = 1024

#: Burst addresses ``STID_ADDRESS | stid`` name an AMS by its 12-bit STID (station burst
#: addresses are 1..256, broadcast 0xFFFF): what a handover target that holds a pre-distributed
#: AK knows of the AMS it expects.
STID_ADDRESS = 0xE000


def stid_address(stid: int) -> int:
    """The burst address that names the AMS holding *stid* (1..4095) in a MAP."""
    if not 0 < stid < 1 << 12:
        raise ValueError(f"STID must be 1..4095, got {stid}")
    return STID_ADDRESS | stid


#: Over the air, the slot an ARS grants in each UL zone to an AMS it holds a pre-distributed
#: handover AK for, before the AMS arrives (``MacConfig.handover_slots`` frames at most): its
#: RNG-REQ, then the first data once our RNG-RSP reached it.
HANDOVER_SLOT_BYTES = 256


@dataclass
class _Subscriber:
    """An AMS this station has heard in its UL-access zone."""

    last_heard: int
    report: int = 0           # bytes it said it still has queued
    last_granted: int = -1
    poll_soon: bool = False   # we sent it a control message: poll it in the next UL zone
    last_data: int = -(10**9)  # frame it last sent us something (not a bare queue report)
    unit: int = 0             # bytes a grant must carry to be useful to it (its MPDU size)
    granted_bytes: int = 0    # what our last grant to it could carry
    arrived: int = -(10**9)   # frame its handover re-entry here completed


class UlAccess:
    """UL grants (owner side) and slot choice (AMS side) of :class:`relaysec.zonemac.ZoneMac`;
    the attributes below are the ZoneMac's."""

    config: MacConfig
    modem: ZoneModem
    role: Any
    subscribers: dict[int, _Subscriber]
    grants: dict[tuple[int, int], Grant]
    contention: dict[tuple[int, int], list[Grant]]
    ul_scheduler: Scheduler
    addr_of: Callable[[int], int]
    _rng: random.Random
    _backoff: dict[int, tuple[int, int | None]]
    _granted: dict[int, int]
    _slot_frame: dict[int, int]
    grants_heard: int
    grants_late: int
    grants_filled: int
    _announced: dict[int, int]
    request_only: bool
    _ul_turns: int
    _newcomer_at: int
    # provided by ZoneMac
    mcs_for: Callable[[int], str]
    _bpr: Callable[[str], float]
    _unit_ru: Callable[[int, str], int]

    def ul_grants(self, frame: int, zone_symbols: int) -> list[Grant]:
        """Grants of this station's UL-access zone of *frame* (``zone_symbols`` long): slots to
        AMSs with queue reports, polls of silent ones, and a contention slot (always when no
        known AMS waits; else every ``contention_every``-th zone)."""
        from phy.zone import Grant

        cfg = self.config
        out: list[Grant] = []
        room = zone_symbols
        slot_min = self.modem.overhead_symbols(1) + 2     # a one-symbol slot and its gap
        for sid in [s for s, sub in self.subscribers.items()
                    if frame - sub.last_heard > cfg.forget_after]:
            del self.subscribers[sid]
            self.ul_scheduler.forget(sid)
        # first what the known AMSs want -- their queue reports, or a poll to report in -- so
        # that contention slots never crowd them out of a short zone
        for sid in self.role.take_arrivals():
            sub = self.subscribers.get(sid)
            if sub is not None:
                sub.arrived = frame
        demands = []
        for sid, sub in self.subscribers.items():
            want = sub.report
            if cfg.grant_delay and sub.last_data <= sub.arrived \
                    and frame - sub.arrived <= 2 * cfg.grant_delay:
                # an AMS that just re-entered by handover: its first data (what it could not
                # send while it moved, and the blocks its old path lost) goes in the first
                # slot, not a queue report's grant cycle later (5 frames over the air)
                want = max(want, sub.unit, ARRIVAL_BYTES)
            active = frame - sub.last_data <= cfg.active_frames  # sent data lately: keep asking
            if want <= 0 and (sub.poll_soon or active or
                              frame - max(sub.last_granted, sub.last_heard) >= cfg.poll_every):
                want = 1   # poll: a minimal slot to report in
                if sub.poll_soon and cfg.grant_delay:
                    # over the air a poll, its report and then the grant cost two grant delays
                    # (6 frames at 20 ms): after a control exchange (a handover re-entry, a
                    # key agreement) the answer and the first data it releases go in one slot
                    want = max(sub.unit, POLL_SOON_BYTES)
                elif active and cfg.grant_delay and sub.unit:
                    # over the air an AMS sending a stream is polled with room for one MPDU:
                    # a bare poll only fetched its queue report, and its data went a grant
                    # delay later, in batches three frames apart
                    want = sub.unit
            if want > 0:
                # a grant too small for the AMS's next MPDU is wasted (it answers with its
                # queue report only): ask for at least its MPDU size, as far as one slot holds
                # (UL slots are whole symbols: the scheduler shares symbols here)
                mcs = self.mcs_for(sid)
                per_symbol = self._bpr(mcs) * self.modem.ru_per_symbol
                most = int((zone_symbols - slot_min) * per_symbol)
                unit = -(-self._unit_ru(sub.unit, mcs) // self.modem.ru_per_symbol)
                demands.append(Demand(sid, want, per_symbol,
                                      min_bytes=max(1, min(want, sub.unit, most)),
                                      unit_ru=unit if want > 1 else 0))
        # AMSs about to arrive by handover first: a slot of its own for each (over the air),
        # at the start of the zone; a ranging contention slot is then reserved only for those
        # left without one
        base = self._grant_handover_slots(frame, zone_symbols, slot_min, out)
        room -= base
        busy = bool(demands)
        self._ul_turns += 1
        # contention: whenever no known AMS waits, else every contention_every-th zone (so a
        # newcomer -- an entry, a handover re-entry -- is never starved by busy neighbours);
        # every quiet_every-th once nobody new was heard for quiet_after frames: a busy cell
        # whose AMSs have all entered paid a 7-symbol slot every fourth zone for entries that
        # did not come (one AMS behind an ARS: 1.48 -> 1.59 Mb/s at every eighth). The first
        # newcomer heard brings the faster rate back for the others of a crowd entering.
        every = cfg.contention_every if frame - self._newcomer_at <= cfg.quiet_after \
            else cfg.quiet_every
        # handover re-entries announced, less those granted a slot of their own above
        arrivals = max(0, self.role.expected_arrivals() - len(out))
        if room >= cfg.contention_symbols and (
                not busy or arrivals or self._ul_turns % every == 0):
            # slotted ALOHA: up to contention_slots slots (an AMS picks one at random) in an
            # otherwise idle zone; beside waiting AMSs one, and only if a slot still fits
            # -- or all of them while AMSs are about to arrive (a group handover: each mover's
            # re-entry contends), as long as one granted slot still fits beside them
            n = 1
            spare = 0 if not busy else slot_min
            while (not busy or arrivals) and n < cfg.contention_slots \
                    and room - (n + 1) * cfg.contention_symbols >= spare:
                n += 1
            if busy and room - cfg.contention_symbols < slot_min \
                    and self._ul_turns % every:
                n = 0
            # while AMSs are about to arrive the slots are for their ranging only (as 16m
            # reserves handover ranging opportunities), with a backoff window that spreads them
            # over the slots (about one contender per slot: slotted ALOHA's best); 0 leaves
            # each AMS to its own binary exponential backoff
            backoff = min(0xFFFF, max(1, -(-arrivals // max(n, 1)))) if arrivals else 0
            for _ in range(n):
                room -= cfg.contention_symbols
                out.append(Grant(BROADCAST, base + room, cfg.contention_symbols - 1, ROBUST_MCS,
                                 backoff))
        if room < slot_min or not demands:
            return out
        ru = self.modem.ru_per_symbol
        over = self.modem.overhead_symbols(1)
        n_slots = min(cfg.ul_slots, len(demands), room // slot_min)
        # every slot pays its own preamble, header and MAP, and is followed by an idle symbol
        # (AMSs' clocks differ by tens of us, as unsynchronised radios' do, and back-to-back
        # slots would overlap): the scheduler counts both as the overhead of each grant
        share = self.ul_scheduler.allocate(demands, room, alloc_overhead_ru=over + 1,
                                           max_allocs=n_slots, pack=True)
        start = base
        for sid, k in sorted(share.items()):
            length = over + k + 1
            mcs = self.mcs_for(sid)
            out.append(Grant(self.addr_of(sid), start, length - 1, mcs))  # + a gap symbol
            carried = self.modem.ru_capacity((length - 1 - over) * ru, mcs)
            sub = self.subscribers[sid]
            sub.last_granted = frame
            sub.poll_soon = False
            sub.granted_bytes = carried
            sub.report = max(0, sub.report - carried)
            self.ul_scheduler.served(sid, carried)
            start += length
        self.ul_scheduler.end_frame()
        return out

    def _grant_handover_slots(self, frame: int, zone_symbols: int, slot_min: int,
                              out: list[Grant]) -> int:
        """Grant the AMSs about to arrive by handover (the role holds their pre-distributed
        AKs: :meth:`stack.roles.ars.ArsRole.expected_stids`), over the air and for
        ``handover_slots`` frames after we learnt of each, a slot of their own at the start of
        the zone, appended to *out*; returns the symbols used. Each is granted to the AMS's
        STID (:func:`stid_address`: we know no more of it yet), at the most robust MCS (we
        never heard it), :data:`HANDOVER_SLOT_BYTES` long as far as room allows.

        Why: a slot granted only once we heard the AMS's RNG-REQ is a grant delay away by then,
        so well after our RNG-RSP reached it; with these, its RNG-REQ needs no contention and
        its first data after the RNG-RSP goes in the next UL zone (a 16m target ABS likewise
        allocates UL resources to a prepared AMS's STID at the handover's action time). At
        most ``ul_slots`` a zone, leaving room for one more slot (the AMSs served here stay
        served); the AMSs left without one contend as before."""
        from phy.zone import Grant

        cfg = self.config
        if not (cfg.grant_delay and cfg.handover_slots):
            return 0
        expected = set(self.role.expected_stids())
        for stid in [x for x in self._announced if x not in expected]:
            del self._announced[stid]
        over = self.modem.overhead_symbols(1)
        per_symbol = self._bpr(ROBUST_MCS) * self.modem.ru_per_symbol
        want = over + -(-HANDOVER_SLOT_BYTES // int(per_symbol)) + 1     # + the gap symbol
        room = zone_symbols - slot_min
        start = 0
        due = [x for x in sorted(expected)
               if frame - self._announced.setdefault(x, frame) < cfg.handover_slots]
        if len(due) > cfg.ul_slots:   # more movers than slots: they take turns
            k = self._ul_turns % len(due)
            due = (due[k:] + due[:k])[:cfg.ul_slots]
        for stid in due:
            length = min(want, room - start)
            if length < slot_min:
                break
            out.append(Grant(stid_address(stid), start, length - 1, ROBUST_MCS))
            start += length
        return start

    def slot(self, frame: int, owner: int) -> Grant | None:
        """This AMS's slot in *owner*'s UL-access zone of *frame*: its own grant, or the
        contention slot when it has something for *owner* and its backoff lets it."""
        if frame > self._slot_frame.get(owner, frame - 1):
            self._slot_frame[owner] = frame
        g = self.grants.pop((frame, owner), None)
        slots = self.contention.pop((frame, owner), None)
        c = self._rng.choice(slots) if slots else None
        self.request_only = False
        waiting = self.role.backlog().get(owner)
        if g is not None and waiting is None and STID_ADDRESS <= g.dst < BROADCAST:
            current = self.current_owner()
            if current is not None and owner != current:
                # a handover target's slot for our STID before we move, with nothing for it
                # yet: left empty. (A poll to our station address is answered even from a
                # station we left: the answer carries what the role owes it but has not
                # queued, such as the ARQ feedback for the blocks it still sends us.)
                return None
        if g is not None:
            self._backoff.pop(owner, None)   # the owner knows us: contention is over
            self._granted[owner] = frame
            return g
        since_grant = frame - self._granted.get(owner, -(10**9))
        if c is None or waiting is None:
            return None
        if self.config.contention_data:
            # over the air (frames of 100s of ms, a few AMSs): waiting for the next poll costs
            # more than a rare collision, so data may go in a contention slot too
            if c.backoff and owner == self.current_owner():
                return None
            return self._contend(frame, owner, c)
        if since_grant <= self.config.poll_every:
            return None   # the owner polls us anyway: leave the slots to newcomers
        # contention carries data never (a collision would lose it unheard: data has no
        # retransmission) and control only to an owner that does not know us yet (ranging at
        # entry or handover); otherwise it carries a bandwidth request, our queue report in a
        # header-only burst, and the owner grants the rest
        self.request_only = not waiting.control or since_grant <= 2 * self.config.poll_every
        if c.backoff and owner == self.current_owner():
            # the owner reserved its slots for AMSs about to arrive: not for us, whom it serves
            # (a station that served us before, before we moved away, is one we arrive at)
            return None
        return self._contend(frame, owner, c)

    def _contend(self, frame: int, owner: int, c: Grant) -> Grant | None:
        """Whether we send in contention slot *c* of *owner*'s zone (random backoff)."""
        # a first window of 2: AMSs that start together (a group entry or handover) do not all
        # collide on their first try
        window, since = self._backoff.get(owner, (2, None))
        if since is not None and frame - since > 4:
            # our last contention burst went unanswered: back off more (once per attempt)
            window, since = min(self.config.backoff_max, 2 * window), None
        # the owner's announced window (it knows how many AMSs are about to arrive) overrides
        # ours: on a first try it replaces it (one expected arrival: its reserved slot, taken
        # at once, not one time in two), after an unanswered try it overrides a smaller one
        span = c.backoff if c.backoff and since is None and owner not in self._backoff \
            else max(window, c.backoff)
        if self._rng.randrange(span) != 0:
            self._backoff[owner] = (window, since)
            return None
        self._backoff[owner] = (window, frame)
        return c

    def current_owner(self) -> int | None:
        """Our serving station: the role's, once it has one (an AMS that moved keeps being
        polled by its old station for a while, and the last grant would name that one --
        then the movers that had arrived took the target's reserved contention slots for
        their bandwidth requests and the last few movers' ranging never got through); before
        that, the station whose UL-access zone granted us last."""
        serving = getattr(self.role, "serving", None)
        if isinstance(serving, int):
            return serving
        return max(self._granted, key=self._granted.__getitem__, default=None)

    def note_grants(self, frame: int, owner: int, grants: Iterable[Grant]) -> None:
        """Grants a DL burst of *owner* announced to us (for the UL zone of *frame*)."""
        decided = self._slot_frame.get(owner)
        for g in grants:
            key = (frame + self.config.grant_delay, owner)
            if g.dst == BROADCAST:
                self.contention.setdefault(key, []).append(g)
            else:
                self.grants[key] = g
                self.grants_heard += 1
                if decided is not None and key[0] <= decided:
                    # heard after we chose what to send in that zone (over the air: a node
                    # decoding late; schedule.ota_grant_delay must cover it): it goes unused
                    self.grants_late += 1
        # drop grants for frames long past (a missed UL zone)
        for store in (self.grants, self.contention):
            for key in [k for k in store if k[0] < frame - 4]:
                del store[key]

    def heard(self, frame: int, peer: int, queue_report: int, *, subscriber: bool,
              data: bool = True, largest: int = 0) -> None:
        """A UL burst from AMS *peer* (in our UL-access zone) reported *queue_report* bytes
        (*data*: it carried more than the report; *largest*: its largest allocation's bytes)."""
        if not subscriber:
            return
        sub = self.subscribers.get(peer)
        if sub is None:
            sub = self.subscribers[peer] = _Subscriber(frame)
            self._newcomer_at = frame
        if data:
            sub.last_data = frame
            sub.unit = max(sub.unit, largest)
        elif queue_report and sub.last_granted == frame and sub.granted_bytes:
            # our grant was too small for its next MPDU: the next one carries twice as much
            sub.unit = max(sub.unit, 2 * sub.granted_bytes)
        sub.last_heard = frame
        sub.report = queue_report

    def queue_report(self) -> int:
        """Bytes this station still has queued (the zone header's queue-report field)."""
        return sum(b.nbytes for b in self.role.backlog().values())
