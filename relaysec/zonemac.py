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
``contention_every``-th. An AMS that sent data in the last ``active_frames`` frames is polled
every frame (new packets need not wait for the next periodic poll; over the air, with room for
one MPDU).

The UL-access half (grants, contention, slot choice) lives in :mod:`relaysec.ulaccess`, mixed
into :class:`ZoneMac`; this module keeps the configuration and the DL allocation.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relaysec.linkadapt import ROBUST_MCS, LinkAdaptation, LinkAdaptationConfig
from relaysec.scheduler import Demand, Scheduler
from relaysec.ulaccess import (  # noqa: F401 - re-exported: they lived here before
    ARRIVAL_BYTES,
    BROADCAST,
    HANDOVER_SLOT_BYTES,
    POLL_SOON_BYTES,
    STID_ADDRESS,
    UlAccess,
    _Subscriber,
    stid_address,
)

if TYPE_CHECKING:
    from phy.zone import Grant, ZoneModem

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
    active_frames: int = 8             # frames after its last data an AMS is polled every frame
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
        for name in ("max_allocs", "ul_slots", "poll_every", "active_frames", "contention_every",
                     "quiet_every", "quiet_after",
                     "contention_symbols", "contention_slots", "backoff_max", "forget_after",
                     "block_bytes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"mac.{name} must be >= 1")


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
class ZoneMac(UlAccess):
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
        self._slot_frame: dict[int, int] = {}  # owner -> last UL-access frame we chose a slot in
        self.grants_heard = 0        # grants to us (not contention slots) heard in DL bursts
        self.grants_late = 0         # ... of them for a UL-access zone we had already decided
        self.grants_filled = 0       # ... of those still sent in (relaysec.ota_tx: slot ahead
        #                              of the TX horizon when the grant came)
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
