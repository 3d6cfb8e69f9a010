"""The transmit side of :class:`relaysec.ota.OtaNetwork`: when each local node hands its zone
bursts to its radio, and how a radio without a streaming timeline learns its TX latency.

Kept apart from the receive side (``relaysec/ota.py``: reading, demodulating, following the
ABS's frame) because it changes for other reasons -- how early a radio must be given a burst,
which zones a node sends in -- and :class:`OtaNetwork` is the one place both meet. A mixin: the
network holds the state named below; a node's state (``_NodeState``) is the one of ota.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from hw.radio import StreamingRadio
from relaysec.schedule import FrameSchedule

#: UL slots passed without a grant that a node keeps for a grant heard late (a few frames').
OPEN_SLOTS_KEPT = 8

#: Checks of a node's TX horizon further apart than this do not count towards the largest step
#: the horizon moves by (:meth:`OtaTransmit._gate`).
TX_STEP_WINDOW_S = 0.05


class OtaTransmit:
    """Zone-burst hand-over of :class:`relaysec.ota.OtaNetwork` (see the module doc)."""

    schedule: FrameSchedule
    states: dict[str, Any]
    clock: Callable[[], float]
    t0: float
    chunk: int
    early: int
    build_ahead: int
    abs_build_ahead: int
    _owned_ul: dict[str, Any]
    now: float      # OtaNetwork's property: seconds since the network started

    def _maybe_transmit(self, st: Any) -> None:
        """Build and hand over each of *st*'s zone bursts once its zone comes within reach of
        the TX horizon (see the comments below); skipped cheaply while the last check showed
        none can come due yet (the main loop asks thousands of times a second)."""
        if st.open_slots and any((k, o) in st.node.mac.grants for k, o, *_ in st.open_slots):
            self._fill_open_slots(st)   # (a dict lookup each: the loop asks thousands of times
            #                             a second, and an AMS has an open slot most frames)
        if st.tx_gate and self.clock() < st.tx_gate and st.timing.frame_start == st.tx_gate_fs:
            return
        st.tx_gate = 0.0
        node = st.node
        if not st.is_master and not st.timing.locked(st.rx_index):
            return
        assert st.timing.frame_start is not None
        # The samples we are reading are older than "now" by the RX pipeline delay (kernel
        # buffers, a busy host), so estimate where now is on the RX sample axis: wall clock
        # minus the smallest recent delay.
        if st.d0 is None:
            return
        timed = node.radio.caps.timed_tx
        air_now = int((self.clock() - self.t0) * self.schedule.sample_rate - st.d0)
        if node.radio.caps.stream:
            # A streaming radio says exactly how early a burst must be handed over: build each
            # zone burst once its start comes within `build_ahead` of that horizon (the ABS:
            # `abs_build_ahead`, its burst being every other node's frame reference).
            h = cast(StreamingRadio, node.radio).tx_horizon()
            if h is None:
                return            # measuring its TX->RX offset: stay silent meanwhile
            horizon = h + (self.abs_build_ahead if st.is_master else self.build_ahead)
            late = h
        elif timed:
            # The radio places a burst at a sample (loopback): give it the zone a few chunks
            # ahead, never a zone already in the past.
            horizon, late = air_now + 3 * self.chunk, air_now + self.chunk
        else:
            # A Pluto transmits "now" and the burst reaches the air `latency` later (USB, libiio,
            # iiod); `latency` is learnt from the node hearing its own bursts. Hand the burst
            # over when now + latency reaches the zone start (within one slack period).
            horizon = air_now + int(st.latency) + self.early
            late = air_now + int(st.latency) - self.schedule.zones[0].guard // 2
        # the horizon's largest step between two checks close in time (a check after a long
        # silence, e.g. while unlocked, says nothing about how it moves)
        t = self.clock()
        if st.tx_last_h is not None and horizon > st.tx_last_h \
                and t - st.tx_last_t < TX_STEP_WINDOW_S:
            st.tx_h_step = max(st.tx_h_step, horizon - st.tx_last_h)
        st.tx_last_h, st.tx_last_t = horizon, t
        # a streaming radio's horizon moves only when its worker claims a TX block: until then
        # a check finds what the last one left (every zone it reached is built or skipped), so
        # it builds nothing -- most checks the gate lets through are such repeats
        seen = (horizon, st.timing.frame_start)
        if seen != st.tx_seen:
            self._hand_over(st, horizon, late, timed)
            st.tx_seen = seen
        self._gate(st, horizon)

    def _gate(self, st: Any, horizon: int) -> None:
        """Skip *st*'s next checks until its earliest zone still to build could come due: the
        horizon moves with the air, a streaming radio's in whole TX blocks (the worker claims
        one a block's air time after the other), so from a horizon ``H`` it reaches at most
        ``H + step`` at once and then a step per step of air -- with the largest step seen
        between two checks as the margin (a catch-up of several blocks after a stall shows as
        one larger step and widens it), no zone is reached before the clock passes the gate.
        A new frame start (a beacon, a re-anchor, lost RX samples) reopens it. With four
        nodes the main loop checked ~7 000 times a second, most checks finding nothing due;
        with 6 ms TX blocks about a third of them are now skipped (the horizon reaches a zone
        only when the worker claims a block, an instant the gate cannot know, so the last
        block's worth of air before each zone is still checked in full)."""
        if not st.tx_h_step:
            return                # how the horizon moves is not known yet
        frame_len = self.schedule.frame_len
        fs0 = st.timing.frame_start
        due = min((fs0 + max(st.next_frame.get(zi, 0), 0) * frame_len + zone.start
                   for zi, zone in self._tx_zones(st)), default=None)
        if due is None:
            return
        slack = due - horizon - st.tx_h_step
        if slack > 0:
            st.tx_gate = self.clock() + slack / self.schedule.sample_rate
            st.tx_gate_fs = fs0

    def _hand_over(self, st: Any, horizon: int, late: int, timed: bool) -> None:
        """Build and hand over every zone burst of *st* whose zone start *horizon* has passed
        and that is not yet built (never one that starts before *late*: skipped, counted)."""
        node = st.node
        for zi, zone in self._tx_zones(st):
            k = (horizon - st.timing.frame_start - zone.start) // self.schedule.frame_len
            if k < st.next_frame.get(zi, 0) or k < 0:
                continue
            st.next_frame[zi] = k + 1
            zone_start = st.timing.frame_start + k * self.schedule.frame_len + zone.start
            if zone_start < late:
                st.missed += 1
                continue  # missed this zone (processing fell behind): never transmit late
            now = self.now
            node.poll(now)
            # the ABS's zone burst always sits `lead` into its zone (the others' frame
            # reference); other Pluto pushes start with their burst (or their slot's offset)
            lead = zone.guard // 2 if (timed or st.is_master) else 0
            if zone.shared:
                owner_id = self._station_id(zone.tx)
                iq = None if owner_id is None else node.build_slot(
                    now, frame=k, owner=owner_id, lead=lead)
                if iq is None and owner_id is not None and node.radio.caps.stream:
                    st.open_slots.append((k, owner_id, zone_start, lead, st.timing.frame_start))
                    del st.open_slots[:-OPEN_SLOTS_KEPT]
            else:
                ul = self._owned_ul.get(node.name) if zone.name != "UL-relay" else None
                ul_symbols = None if ul is None else (ul.length - ul.guard // 2) // node.sym
                iq, _ = node.build_zone(now, zone.length, frame=k, kind=zone.name, lead=lead,
                                        ul_symbols=ul_symbols, force=st.is_master)
            if iq is None:
                continue
            if node.radio.caps.stream:
                self._place(st, iq, zone_start)
                continue
            if timed:
                node.transmit(iq, at=zone_start)
                continue
            # Handed over early: lead the burst with zeros up to its zone start (as estimated
            # from the learnt latency), so it still lands on time.
            air_call = int((self.clock() - self.t0) * self.schedule.sample_rate - st.d0)
            pre = min(max(zone_start - (air_call + int(st.latency)), 0), self.early)
            if pre:
                iq = np.concatenate([np.zeros(pre, np.complex64), iq])
            # Pad pushes to a length that only grows: a Pluto (pyadi-iio) re-creates its TX
            # buffer whenever the length changes, which costs round trips and jitter.
            st.push_len = max(st.push_len, iq.size)
            if iq.size < st.push_len:
                iq = np.concatenate([iq, np.zeros(st.push_len - iq.size, np.complex64)])
            node.transmit(iq)
            st.pushes.append(air_call + pre + lead)
            del st.pushes[:-8]

    def _fill_open_slots(self, st: Any) -> None:
        """Send in a UL slot passed without a grant once its grant is heard, while the slot
        is still ahead of the TX horizon. A slot is decided ``build_ahead`` before the horizon
        reaches it (the loop's slack); a grant decoded in between used to be lost with its
        slot (counted late): on 4 emulated Plutos 12 of 14 late grants came within those 14
        ms. Only a grant fills one (a contention slot was decided with its draw)."""
        node = st.node
        h = cast(StreamingRadio, node.radio).tx_horizon()
        keep = []
        for k, owner, zone_start, lead, fs in st.open_slots:
            if h is None or zone_start < h or fs != st.timing.frame_start:
                continue          # past the horizon, re-measuring, or the frame grid moved
                #                   (a re-anchor, lost RX samples): that slot is gone
            if (k, owner) not in node.mac.grants:
                keep.append((k, owner, zone_start, lead, fs))
                continue
            iq = node.build_slot(self.now, frame=k, owner=owner, lead=lead)
            if iq is not None and self._place(st, iq, zone_start):
                node.mac.grants_filled += 1
        st.open_slots[:] = keep

    @staticmethod
    def _place(st: Any, iq: Any, zone_start: int) -> bool:
        """Hand a streaming radio *iq* at RX-axis sample *zone_start*; False (counted missed)
        when the horizon passed it while it was built. Where its first sample went is kept:
        an own burst heard back is compared with it (``OtaNetwork._track``), and one
        missing there would be matched with another and move the radio's offset."""
        if st.node.transmit(iq, at=zone_start) is False:
            st.missed += 1
            return False
        first = np.flatnonzero(iq)
        if first.size:
            st.placed.append(zone_start + int(first[0]))
            del st.placed[:-16]
        return True

    def _tx_zones(self, st: Any) -> list[tuple[int, Any]]:
        """The zones *st*'s node may transmit in, with their index: its own, and every
        UL-access zone for an AMS (its slots there are granted); the owner only listens in
        its UL-access zone. Kept per node (the main loop asks thousands of times a second)."""
        if st.tx_zones is None:
            node = st.node
            st.tx_zones = [(zi, z) for zi, z in enumerate(self.schedule.zones)
                           if (node.is_ams if z.shared else z.tx == node.name)]
        return st.tx_zones

    def _station_id(self, name: str) -> int | None:
        for st in self.states.values():
            for sid, n in st.node.addressing.names.items():
                if n == name:
                    return sid
        return None

    def _learn_latency(self, st: Any, abs_start: int) -> None:
        """This node heard its own burst starting at *abs_start*: the first burst of a push
        lands `latency` after the call, so update the estimate (EWMA) from the nearest push."""
        if not st.pushes:
            return
        call = min(st.pushes, key=lambda c: abs(abs_start - c))
        sample = abs_start - call
        if not 0 <= sample < self.schedule.frame_len // 2:
            return
        st.pushes.remove(call)
        st.latency = sample if st.latency_n == 0 else 0.7 * st.latency + 0.3 * sample
        st.latency_n += 1
