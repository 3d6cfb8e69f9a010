"""A station's MAC over zone bursts: who gets how much of a zone, at which MCS, and UL grants.

Per zone it transmits in (its DL or DL-access zone, an ARS's UL-relay zone), a station asks its
role what waits per neighbour (:meth:`stack.roles.base.RoleBase.backlog`), shares the zone's
resource units among those neighbours with a :class:`relaysec.scheduler.Scheduler`, pulls each
neighbour's frame sized to its allocation and sends them all in **one zone burst**
(:class:`phy.ZoneModem`): one preamble and one MAP for the whole zone. The MCS of each allocation
follows that link's :class:`relaysec.linkadapt.LinkAdaptation`, fed with the SNR this station
measures on the same link in the other direction (TDD reciprocity: the loopback medium's links are
symmetric, and a lab's are nearly so); control messages in the clear and the MAP go at the most
robust MCS.

A station that owns a UL-access zone grants its AMSs time slots in it through UL-grant entries of
its DL MAP: the scheduler shares the zone among AMSs by their queue reports (the queue-report
field of each AMS's last UL burst: bandwidth requests piggybacked on UL data); an AMS heard
before but silent is polled with a small grant every ``poll_every`` frames; the last
``contention_symbols`` of the zone are a *contention* slot (a grant to the broadcast address)
where an AMS without a grant sends (initial ranging, a handover re-entry), with a random backoff
that doubles while it goes unanswered -- in every zone where no known AMS waits or where AMSs
are about to arrive (an ARS holding pre-distributed handover AKs), else every
``contention_every``-th. An AMS that sent data in the last ``poll_every`` frames is polled every
frame (new packets need not wait for the next periodic poll).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relaysec.linkadapt import ROBUST_MCS, LinkAdaptation, LinkAdaptationConfig
from relaysec.scheduler import Demand, Scheduler

if TYPE_CHECKING:
    from phy.zone import Grant, ZoneModem

#: The address that every station accepts (contention grants).
BROADCAST = 0xFFFF


ARQ_FEEDBACK_SLACK = 24
"""Bytes of an ARQ feedback MPDU, rounded up (a 21-byte MPDU: header, PN, bitmap, ICV): the room
a zone or a UL slot sized in whole MPDUs keeps for one queued between them."""


@dataclass(frozen=True)
class MacConfig:
    """Tuning of :class:`ZoneMac` (``[mac]`` in the trial config)."""

    policy: str = "rr"                 # "rr" or "pf" (relaysec.scheduler)
    link_adaptation: bool = True       # False: every data allocation at ``max_mcs``
    max_mcs: str = "16QAM-3/4"         # ceiling of link adaptation; the data MCS without it
    max_allocs: int = 16               # DL allocations per zone burst
    ul_slots: int = 2                  # granted UL slots per UL-access zone and frame
    poll_every: int = 8                # frames between polls of a silent AMS
    contention_every: int = 4          # UL-access zones between contention slots when busy
    quiet_every: int = 8               # ... once no newcomer was heard for quiet_after frames
    quiet_after: int = 100
    contention_symbols: int = 7        # length of the contention slot
    contention_slots: int = 3          # contention slots per UL-access zone, room permitting
    backoff_max: int = 4               # largest contention backoff window
    forget_after: int = 400            # frames after which a silent AMS is no longer polled
    grant_delay: int = 0               # frames between a grant and the UL zone it is for
    block_bytes: int = 600             # largest allocation (16m's largest FEC block: 4800 bits)
    contention_data: bool = False      # a known AMS may send data in a contention slot
    handover_slots: int = 0            # frames an AMS announced by a handover AK gets a UL
    #                                    slot of its own before it arrives (0: none)
    unit_slack: int = 0                # bytes a unit keeps beside its MPDU for a small one
    #                                    queued between (ARQ feedback: ARQ_FEEDBACK_SLACK)

    def __post_init__(self) -> None:
        if self.policy not in ("rr", "pf"):
            raise ValueError(f"mac.policy must be 'rr' or 'pf', got {self.policy!r}")
        for name in ("max_allocs", "ul_slots", "poll_every", "contention_every",
                     "quiet_every", "quiet_after",
                     "contention_symbols", "contention_slots", "backoff_max", "forget_after",
                     "block_bytes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"mac.{name} must be >= 1")


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


@dataclass
class ZoneStats:
    """What one station put in its zone bursts (for efficiency figures)."""

    bursts: int = 0
    symbols: int = 0              # zone-burst symbols sent (preamble, header, MAP, data)
    capacity_bits: int = 0        # information bits those symbols carry at the MCS used
    data_bursts: int = 0          # bursts with at least one allocation
    allocations: int = 0
    payload_bytes: int = 0


@dataclass
class ZoneMac:
    """The MAC of one station; see the module doc. *addr_of*/*station_of* translate station ids
    and 16-bit burst addresses; *abs_id* is the ABS's station id."""

    station_id: int
    modem: ZoneModem
    role: Any
    config: MacConfig
    addr_of: Callable[[int], int]
    station_of: Callable[[int], int | None]
    abs_id: int
    profile: str
    seed: int = 0
    la: dict[int, LinkAdaptation] = field(default_factory=dict)
    subscribers: dict[int, _Subscriber] = field(default_factory=dict)
    grants: dict[tuple[int, int], Grant] = field(default_factory=dict)   # (frame, owner) -> mine
    contention: dict[tuple[int, int], list[Grant]] = field(default_factory=dict)
    stats: ZoneStats = field(default_factory=ZoneStats)

    def __post_init__(self) -> None:
        self.scheduler = Scheduler(self.config.policy)
        self.ul_scheduler = Scheduler(self.config.policy)
        self._rng = random.Random(self.seed)
        # contention backoff per owner: (window, frame of our last contention burst)
        self._backoff: dict[int, tuple[int, int | None]] = {}
        self._granted: dict[int, int] = {}   # owner -> frame of its last grant to us
        self.request_only = False    # the last contention slot is for a bandwidth request only
        self._ul_turns = 0
        self._newcomer_at = 0        # frame an AMS was last heard here for the first time
        self._announced: dict[int, int] = {}   # AMS about to arrive -> frame we learnt of it
        self._bytes_per_ru: dict[str, float] = {}
        sym = self.modem.grid.symbol_samples
        self.sym = sym
        if hasattr(self.role, "mpdu_limit"):   # an MPDU must fit one allocation block: a
            # feedback piggybacked on a queued block never grows it past that (stack.roles)
            self.role.mpdu_limit = min(self.config.block_bytes, self.modem.max_payload)

    # ------------------------------------------------------------------ link adaptation

    def mcs_for(self, peer: int) -> str:
        """The data MCS towards *peer* now."""
        if not self.config.link_adaptation:
            return self.config.max_mcs
        la = self.la.get(peer)
        return ROBUST_MCS if la is None else la.mcs

    def observe(self, peer: int, snr_db: float) -> None:
        """A burst from *peer* was received at *snr_db* (reciprocity: our link to it)."""
        if not self.config.link_adaptation:
            return
        la = self.la.get(peer)
        if la is None:
            la = self.la[peer] = LinkAdaptation(
                LinkAdaptationConfig(max_mcs=self.config.max_mcs), profile=self.profile)
        la.observe(snr_db, True)

    def marginal(self, peer: int) -> bool:
        """The link to *peer* is below what the most robust MCS needs (PER well above 1 %):
        allocations then carry one MPDU each, so a lost one loses as little as possible."""
        la = self.la.get(peer)
        snr = None if la is None else la.effective_snr_db
        return snr is not None and snr < la.table()[ROBUST_MCS]

    def _mcs(self, peer: int, control: bool, head: int, n_ru: int) -> str:
        """Control at the most robust MCS when the zone can carry it so, else the link's."""
        if control and self.modem.rus_for(min(head, self.modem.max_payload),
                                          ROBUST_MCS) <= n_ru:
            return ROBUST_MCS
        return self.mcs_for(peer)

    def airtime_bytes(self, peer: int, nbytes: int, *, control: bool = False) -> int:
        """*nbytes* for *peer* as the bytes the configured top MCS would carry in the same air
        (control goes at the most robust MCS): a frame planner that sizes zones at the top MCS
        counts a slower link's bytes this way."""
        if not control and (peer not in self.la or not self.config.link_adaptation):
            return nbytes    # a link not measured yet: no better guess than the top MCS
        mcs = ROBUST_MCS if control else self.mcs_for(peer)
        if mcs == self.config.max_mcs:
            return nbytes
        return -(-nbytes * int(1000 * self._bpr(self.config.max_mcs))
                 // max(1, int(1000 * self._bpr(mcs))))

    def _unit_ru(self, mpdu: int, mcs: str) -> int:
        """RUs of one whole MPDU of *mpdu* bytes when an allocation block holds only one (MPDUs
        are not fragmented: RUs beyond the last whole MPDU carry nothing); else 0. With ARQ a
        unit keeps ``unit_slack`` bytes for a feedback queued between two MPDUs: a UL slot of
        exactly three MPDUs carried a feedback and two, a third of the uplink lost."""
        if mpdu <= 0 or 2 * mpdu <= self.config.block_bytes or mpdu > self.modem.max_payload:
            return 0
        return self.modem.rus_for(min(mpdu + self.config.unit_slack, self.config.block_bytes,
                                      self.modem.max_payload), mcs)

    def _bpr(self, mcs: str) -> float:
        if mcs not in self._bytes_per_ru:
            n = 4 * self.modem.ru_per_symbol
            self._bytes_per_ru[mcs] = max(1, self.modem.ru_capacity(n, mcs)) / n
        return self._bytes_per_ru[mcs]

    # ------------------------------------------------------------------ transmit

    def allocations(self, now: float, n_symbols: int, *, peers: Callable[[int], bool],
                    grants: list[Grant], tap: Callable[[int, bytes], list[bytes]] | None = None,
                    max_allocs: int | None = None) -> list[tuple[int, bytes, str]]:
        """``(peer, frame, mcs)`` for a zone burst of *n_symbols* symbols carrying *grants*:
        the role's queued frames for the neighbours *peers* accepts, shared by the scheduler."""
        backlog = {d: b for d, b in self.role.backlog().items() if peers(d)}
        if not backlog:
            return []
        cap = min(self.config.max_allocs if max_allocs is None else max_allocs, len(backlog))
        zm = self.modem
        # MAP entries: the grants, and an allocation per block (a destination may get several)
        rough = (n_symbols - zm.overhead_symbols(0)) * zm.ru_per_symbol
        room = int(rough * self._bpr(self.config.max_mcs))
        blocks = -(-room // self.config.block_bytes)
        # no more entries than allocations the zone can hold: a MAP symbol reserved for
        # destinations that cannot be served in this zone is a data symbol lost
        smallest = max(1, min(self.config.block_bytes, min(b.head for b in backlog.values())))
        entries = min(len(grants) + min(max(cap, blocks), max(1, room // smallest)),
                      zm.max_entries)
        reserve = zm.overhead_symbols(entries)
        while entries < zm.max_entries and zm.overhead_symbols(entries + 1) == reserve:
            entries += 1        # what the reserved MAP symbols hold anyway
        data_syms = min(n_symbols - reserve, zm.max_data_symbols)
        if data_syms <= 0:
            return []
        n_ru = data_syms * zm.ru_per_symbol
        slots = entries - len(grants)    # allocations the MAP can still announce
        mcs = {d: self._mcs(d, b.control, b.head, n_ru) for d, b in backlog.items()}
        demands = [Demand(d, b.nbytes, self._bpr(mcs[d]), min_bytes=b.head,
                          unit_ru=self._unit_ru(b.head, mcs[d]))
                   for d, b in backlog.items()]
        # a MAP entry costs 72 coded bits at QPSK-1/2: about 4 RUs of 17 QPSK subcarriers
        # admit only as many destinations as the MAP can announce (the round robin then rotates
        # over those actually served)
        share = self.scheduler.allocate(demands, n_ru, alloc_overhead_ru=0.0,
                                        max_allocs=max(1, min(cap, slots)))
        out: list[tuple[int, bytes, str]] = []
        used = 0
        for d, k in share.items():
            # the scheduler counts bytes per RU on average; the first MPDU must fit exactly
            k = max(k, self.modem.rus_for(min(backlog[d].head, self.modem.max_payload), mcs[d]))
            if used + k > n_ru:
                continue
            if slots <= 0:
                break
            for f in self.pull(now, d, self.modem.ru_capacity(k, mcs[d]), mcs[d],
                               room_ru=n_ru - used, tap=tap, max_blocks=slots):
                used += self.modem.rus_for(len(f), mcs[d])
                out.append((d, f, mcs[d]))
                slots -= 1
                self.scheduler.served(d, len(f))
            sub = self.subscribers.get(d)
            if sub is not None and backlog[d].control:
                sub.poll_soon = True   # a control exchange: let it answer at once
        self.scheduler.end_frame()
        return out

    def pull(self, now: float, dst: int, room: int, mcs: str, *, room_ru: int,
             tap: Callable[[int, bytes], list[bytes]] | None = None,
             max_blocks: int | None = None) -> list[bytes]:
        """Frames for *dst* filling up to *room* bytes, each at most ``block_bytes`` (one
        allocation each, with its own CRC: a lost allocation loses one block, not the zone's
        whole share -- 16m's FEC blocks), within *room_ru* RUs and *max_blocks* blocks."""
        out: list[bytes] = []
        used = 0
        while room > 0 and (max_blocks is None or len(out) < max_blocks):
            # what the RUs left can carry as one more allocation (each block pays its own CRC)
            left = room_ru - used
            cap = min(room, self.config.block_bytes,
                      self.modem.ru_capacity(left, mcs) if left > 0 else -1)
            waiting = self.role.backlog().get(dst)
            if waiting is None or cap <= 0 or waiting.head > cap:
                break
            if tap is not None:   # test-only attacker: leave it room for a replayed copy
                half = self.modem.ru_capacity(left // 2, mcs) if left > 1 else -1
                cap = max(waiting.head, min(cap, half))
            if self.marginal(dst):
                cap = waiting.head   # below the most robust MCS's threshold: one MPDU a block
            frames = self.role.frames_to_send(now, cap, dst=dst)
            if not frames:
                break
            for _, frame in frames:
                room -= len(frame)
                if tap is None:
                    used += self.modem.rus_for(len(frame), mcs)
                    out.append(frame)
                    continue
                # test-only attacker on the air: what it sends instead (altered, dropped,
                # replayed copies) goes on the air where it fits
                for f in tap(dst, frame):
                    need = self.modem.rus_for(len(f), mcs)
                    if used + need <= room_ru:
                        used += need
                        out.append(f)
        return out

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
            active = frame - sub.last_data <= cfg.poll_every     # sent data lately: keep asking
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
        for g in grants:
            key = (frame + self.config.grant_delay, owner)
            if g.dst == BROADCAST:
                self.contention.setdefault(key, []).append(g)
            else:
                self.grants[key] = g
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
