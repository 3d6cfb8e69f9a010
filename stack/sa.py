"""Security associations: the TEK pair of an SA, per-direction PNs, replay windows, lifetimes.

Digest §4.2 and §5.1. One :class:`SecurityAssociation` per SAID per AK context. It derives its
TEKs from the AK (16m TEKs are never transported): ``TEK = Dot16KDF(AK, SAID||COUNTER_TEK||"TEK",
128)``, ``EKS = COUNTER_TEK mod 4``. At most two TEKs are live; the receiver picks one by the EKS
of each MPDU.

PN rules (project defaults [D], digest §7.7):

* PN is 22 bits, kept per TEK and per direction (UL/DL share the TEK; the nonce carries the
  direction). The first PN sent is 1; a sender never sends PN 0 or 0x3FFFFF.
* A sender uses the *oldest* live TEK that is still usable; when that TEK reaches PN 2^21 (or half
  its lifetime) :meth:`SecurityAssociation.update_needed` turns true so the role runs a TEK update
  (PKMv3 TEK-Request/Reply). At PN 2^22-2 (the last one) the TEK is retired for that direction and
  the sender moves to the next TEK, or raises :class:`KeyExhaustedError` if there is none.
* A TEK is identified by its COUNTER_TEK. Re-installing a live counter changes nothing (its PNs
  continue); installing a counter at or below one seen before on this SA is refused, so a
  {TEK, PN} pair can never repeat — including after a TEK update.
* Receive: a window of W = 64 [D] PNs behind the highest accepted one, per TEK and direction.

Time is never read here: lifetimes are checked against the ``now`` (seconds, any epoch) the caller
passes. A TEK installed without a lifetime never expires; a TEK with a lifetime needs ``now``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from stack.errors import (
    KeyExhaustedError,
    KeyLengthError,
    MalformedError,
    ProtocolError,
    ReplayError,
    UnknownKeyError,
    require_uint,
)
from stack.keys import TEK_LEN, AkContext, eks_of
from stack.nonces import active as _nonce_monitors
from stack.nonces import report as _report_pns

PN_BITS = 22
PN_MAX = (1 << PN_BITS) - 1
"""Largest value of the 22-bit PN field (0x3FFFFF); never sent: the hard stop is here [D]."""
PN_LAST = PN_MAX - 1
"""Last PN a sender uses under one TEK and direction."""
PN_UPDATE_THRESHOLD = 1 << 21
"""PN at which a TEK update is requested (half the PN space) [D]."""
DEFAULT_REPLAY_WINDOW = 64
REPLAY_REASONS = ("", "pn_window", "pn_replay")
"""Reasons behind the codes of :meth:`ReplayWindow.check_many` / ``record_many`` (0 = accepted)."""
MAX_LIVE_TEKS = 2
REFRESH_FRACTION = 0.5
"""A TEK with a lifetime asks for an update after this fraction of it has elapsed [D]."""


_window_pass: Callable[..., tuple[np.ndarray, int, int]] | None = None
"""``stack._burst.window_pass`` (imports numba), loaded on the first batch replay check."""


def _dir(uplink: bool) -> str:
    return "UL" if uplink else "DL"


@dataclass(frozen=True, repr=False)
class Tek:
    """One traffic encryption key of an SA; ``repr`` shows SAID, COUNTER_TEK, EKS, never the key."""

    said: int
    counter_tek: int
    key: bytes
    installed_at: float | None = None
    lifetime: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != TEK_LEN:
            got = len(self.key) if isinstance(self.key, bytes) else type(self.key).__name__
            raise KeyLengthError(f"TEK must be {TEK_LEN} bytes, got {got}")
        if self.lifetime is not None and (self.installed_at is None or self.lifetime <= 0):
            raise MalformedError("a TEK lifetime needs a positive value and an install time")

    @property
    def eks(self) -> int:
        """Encryption key sequence: COUNTER_TEK mod 4."""
        return self.counter_tek % 4

    @cached_property
    def cipher(self) -> Any:
        """This key's AES-CCM with 8-byte ICVs (``cryptography``'s, whose key schedule is
        done once here rather than per MPDU), for MPDUs sealed or opened one at a time
        (``stack.mpdu.protect``/``unprotect``). It lives and dies with this TEK."""
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM

        return AESCCM(self.key, tag_length=8)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled and copied without :attr:`cipher` (an OpenSSL object), rebuilt on use."""
        state = dict(self.__dict__)
        state.pop("cipher", None)
        return state

    @property
    def not_after(self) -> float | None:
        """Time at which the TEK expires (None: no lifetime)."""
        if self.lifetime is None or self.installed_at is None:
            return None
        return self.installed_at + self.lifetime

    @property
    def refresh_at(self) -> float | None:
        """Time after which a TEK update is requested (None: no lifetime)."""
        if self.lifetime is None or self.installed_at is None:
            return None
        return self.installed_at + self.lifetime * REFRESH_FRACTION

    def expired(self, now: float | None) -> bool:
        """True when the TEK has a lifetime and ``now`` is at or past its end."""
        end = self.not_after
        if end is None:
            return False
        if now is None:
            raise ProtocolError(
                f"{self!r} has a lifetime: pass now= to use it", reason="now_required"
            )
        return now >= end

    def __repr__(self) -> str:
        return f"Tek(said={self.said}, counter_tek={self.counter_tek}, eks={self.eks})"

    __str__ = __repr__


class ReplayWindow:
    """Sliding replay window over PNs: the highest accepted PN and a bitmap of the W below it.

    Accept a PN if it is above the highest, or within the window and not seen yet. PN 0 is never
    sent and always rejected. :meth:`check` does not change state; :meth:`record` checks and marks
    (call it only after the ICV verified).
    """

    __slots__ = ("_bitmap", "_highest", "size")

    def __init__(self, size: int = DEFAULT_REPLAY_WINDOW) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1 << 16:
            raise MalformedError(f"replay window must be 1..65536 PNs, got {size!r}")
        self.size = size
        self._highest = 0
        self._bitmap = 1  # bit i set = PN (highest - i) seen; PN 0 counts as seen

    @property
    def highest(self) -> int:
        """Highest PN accepted so far (0 before any)."""
        return self._highest

    def check(self, pn: int) -> None:
        """Raise :class:`ReplayError` if ``pn`` must not be accepted; never changes state."""
        if pn > self._highest:
            return
        back = self._highest - pn
        if back >= self.size:
            raise ReplayError(
                f"PN {pn} is behind the replay window ({self.size} below {self._highest})",
                reason="pn_window",
            )
        if (self._bitmap >> back) & 1:
            raise ReplayError(f"PN {pn} was already received", reason="pn_replay")

    def record(self, pn: int) -> None:
        """Check ``pn`` and mark it received."""
        self.check(pn)
        if pn > self._highest:
            shift = pn - self._highest
            self._bitmap = ((self._bitmap << shift) | 1) & ((1 << self.size) - 1)
            self._highest = pn
        else:
            self._bitmap |= 1 << (self._highest - pn)

    def check_many(self, pns: np.ndarray) -> np.ndarray:
        """:meth:`check` for each PN of ``pns`` against the current state; changes nothing.

        Returns one code per PN (``uint8``): 0 accept, else the index into
        :data:`REPLAY_REASONS` of the reason :meth:`check` would raise (1 ``pn_window``,
        2 ``pn_replay``). Duplicates *within* ``pns`` all pass here; :meth:`record_many` catches
        them. Raises :class:`MalformedError` for a PN outside the 22-bit range.
        """
        return self._pass(pns, record=False)

    def record_many(self, pns: np.ndarray) -> np.ndarray:
        """:meth:`record` each PN of ``pns`` in order; returns codes as :meth:`check_many`.

        A PN that fails (behind the window, or seen before -- also earlier in ``pns``) is
        skipped and leaves the state as it was, exactly as a :meth:`record` that raised.
        """
        return self._pass(pns, record=True)

    def _pass(self, pns: np.ndarray, *, record: bool) -> np.ndarray:
        arr = pns
        if not (type(arr) is np.ndarray and arr.dtype == np.int64 and arr.ndim == 1):
            arr = np.asarray(pns)
            if arr.ndim != 1 or arr.dtype.kind not in "iu":
                raise MalformedError("PNs must be a 1-D integer array")
            if arr.dtype == np.uint64 and arr.shape[0] and int(arr.max()) > PN_MAX:
                raise MalformedError(f"a PN is outside 0..{PN_MAX}")
            arr = arr.astype(np.int64)
        if self.size <= 64:  # compiled, one pass (the default window is 64)
            global _window_pass
            if _window_pass is None:
                from stack._burst import window_pass

                _window_pass = window_pass
            codes, highest, bitmap = _window_pass(
                np.ascontiguousarray(arr), self._highest, np.uint64(self._bitmap), self.size,
                np.uint64((1 << self.size) - 1), record)
            if arr.shape[0] and codes[0] == 3:
                raise MalformedError(f"a PN is outside 0..{PN_MAX}")
            if record:
                self._highest, self._bitmap = int(highest), int(bitmap)
            return codes
        if arr.shape[0] and (int(arr.min()) < 0 or int(arr.max()) > PN_MAX):
            raise MalformedError(f"a PN is outside 0..{PN_MAX}")  # before recording any
        codes = np.zeros(arr.shape[0], dtype=np.uint8)
        for k, pn in enumerate(arr.tolist()):
            try:
                self.record(pn) if record else self.check(pn)
            except ReplayError as exc:
                codes[k] = REPLAY_REASONS.index(exc.reason)
        return codes

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, highest={self._highest})"


class _TekState:
    """Mutable per-TEK counters: last PN sent and receive window, per direction."""

    __slots__ = ("rx", "tek", "tx_last")

    def __init__(self, tek: Tek, window: int) -> None:
        self.tek = tek
        self.tx_last = {True: 0, False: 0}
        self.rx = {True: ReplayWindow(window), False: ReplayWindow(window)}


class SecurityAssociation:
    """SA state for one SAID under one AK context (digest §4.2, §5.1).

    Mutable (PN counters, replay windows) but pure: no I/O, no clock. Build one with
    :meth:`start` (installs COUNTER_TEK c and c+1, as after key agreement) or construct it empty and
    :meth:`install` TEKs. ``update_threshold`` and ``pn_last`` exist so tests can reach the PN
    limits quickly; leave them at their defaults otherwise.
    """

    def __init__(
        self,
        ctx: AkContext,
        said: int,
        *,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
        update_threshold: int = PN_UPDATE_THRESHOLD,
        pn_last: int = PN_LAST,
    ) -> None:
        if not isinstance(ctx, AkContext):
            raise MalformedError(f"SA needs an AkContext, got {type(ctx).__name__}")
        said = require_uint(said, 8, "SAID")
        if require_uint(pn_last, PN_BITS, "pn_last") < 1 or pn_last > PN_LAST:
            raise MalformedError(f"pn_last must be 1..{PN_LAST}, got {pn_last}")
        if not 1 <= require_uint(update_threshold, PN_BITS, "update_threshold") <= pn_last:
            raise MalformedError(f"update_threshold must be 1..pn_last, got {update_threshold}")
        ReplayWindow(replay_window)  # validates the size
        self._ctx = ctx
        self.said = said
        self.replay_window = replay_window
        self.update_threshold = update_threshold
        self.pn_last = pn_last
        self._live: list[_TekState] = []  # oldest first, at most MAX_LIVE_TEKS
        self._retired: _TekState | None = None  # receive-only during its grace time
        self._retired_until: float | None = None
        self._highest_counter = -1

    @classmethod
    def start(
        cls,
        ctx: AkContext,
        said: int,
        *,
        counter_tek: int = 0,
        now: float | None = None,
        lifetime: float | None = None,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
    ) -> SecurityAssociation:
        """SA after key agreement: TEK(c) and TEK(c+1) installed, c = 0 by default [D §5.1]."""
        sa = cls(ctx, said, replay_window=replay_window)
        sa.install(counter_tek, now=now, lifetime=lifetime)
        sa.install(counter_tek + 1, now=now, lifetime=lifetime)
        return sa

    # -- keys -------------------------------------------------------------------------------

    @property
    def akid(self) -> bytes:
        """AKID of the AK the TEKs derive from."""
        return self._ctx.akid

    @property
    def ctx(self) -> AkContext:
        """The AK context the TEKs derive from."""
        return self._ctx

    @property
    def teks(self) -> tuple[Tek, ...]:
        """Live TEKs, oldest (lowest COUNTER_TEK) first."""
        return tuple(s.tek for s in self._live)

    @property
    def retired_tek(self) -> Tek | None:
        """The TEK retired by the last install, while it is still receivable (else None)."""
        return None if self._retired is None else self._retired.tek

    @property
    def highest_counter_tek(self) -> int | None:
        """Highest COUNTER_TEK ever installed on this SA (None before any)."""
        return None if self._highest_counter < 0 else self._highest_counter

    def install(
        self,
        counter_tek: int,
        *,
        now: float | None = None,
        lifetime: float | None = None,
        rx_grace: float | None = None,
    ) -> Tek:
        """Derive and install TEK(COUNTER_TEK); keeps the two newest, retiring the oldest.

        Installing a live counter again returns it unchanged (PNs continue). A counter at or below
        one installed before (and no longer live) raises :class:`ProtocolError`
        (``stale_counter_tek``), as does one whose EKS would equal the other live TEK's
        (``eks_collision``).

        ``rx_grace`` (seconds, needs ``now``): the TEK retired by this install stays *receivable*
        (never used to send) until ``now + rx_grace``, so MPDUs in flight across a TEK update
        are not lost; its replay window carries on. Without it the retired TEK is gone at once.
        """
        eks_of(counter_tek)  # validates the 16-bit range
        for state in self._live:
            if state.tek.counter_tek == counter_tek:
                return state.tek
        if counter_tek <= self._highest_counter:
            raise ProtocolError(
                f"COUNTER_TEK {counter_tek} is not above {self._highest_counter} already used on "
                f"SAID {self.said}; reinstalling it would reuse PNs",
                reason="stale_counter_tek",
            )
        keep = self._live[-(MAX_LIVE_TEKS - 1) :] if MAX_LIVE_TEKS > 1 else []
        for state in keep:
            if state.tek.eks == counter_tek % 4:
                raise ProtocolError(
                    f"COUNTER_TEK {counter_tek} has the same EKS as live COUNTER_TEK "
                    f"{state.tek.counter_tek} on SAID {self.said}",
                    reason="eks_collision",
                )
        if (lifetime is not None or rx_grace is not None) and now is None:
            raise ProtocolError("a TEK lifetime or rx_grace needs now=", reason="now_required")
        if rx_grace is not None and not rx_grace >= 0:
            raise MalformedError(f"rx_grace must be >= 0 seconds, got {rx_grace!r}")
        tek = Tek(
            said=self.said,
            counter_tek=counter_tek,
            key=self._ctx.tek(self.said, counter_tek),
            installed_at=now,
            lifetime=lifetime,
        )
        evicted = self._live[: len(self._live) - len(keep)]
        if evicted and rx_grace is not None and now is not None:
            self._retired, self._retired_until = evicted[-1], now + rx_grace
        elif evicted:
            self._retired, self._retired_until = None, None
        self._live = [*keep, _TekState(tek, self.replay_window)]
        self._highest_counter = counter_tek
        return tek

    def tek_for_eks(self, eks: int, *, now: float | None = None) -> Tek:
        """The receivable TEK with this EKS (live, or retired within its ``rx_grace``).

        :class:`UnknownKeyError` (``unknown_eks``) if none, :class:`KeyExhaustedError`
        (``tek_expired``) if its lifetime is over.
        """
        return self._state_for_eks(eks, now).tek

    def _state_for_eks(self, eks: int, now: float | None) -> _TekState:
        eks = require_uint(eks, 2, "EKS")
        for state in self._live:
            if state.tek.eks == eks:
                if state.tek.expired(now):
                    raise KeyExhaustedError(f"{state.tek!r} lifetime is over", reason="tek_expired")
                return state
        ret = self._retired
        if ret is not None and ret.tek.eks == eks:
            until = self._retired_until
            # without a time the grace cannot be confirmed: treat the retired TEK as gone
            if now is not None and until is not None and now <= until and not ret.tek.expired(now):
                return ret
        raise UnknownKeyError(
            f"no live TEK with EKS {eks} on SAID {self.said} (live: "
            f"{[s.tek.eks for s in self._live]})",
            reason="unknown_eks",
        )

    # -- transmit ---------------------------------------------------------------------------

    def _tx_state(self, uplink: bool, now: float | None) -> _TekState:
        for state in self._live:
            if state.tx_last[uplink] < self.pn_last and not state.tek.expired(now):
                return state
        raise KeyExhaustedError(
            f"SAID {self.said}: no usable TEK to send {_dir(uplink)} (PN space used up or lifetime "
            "over); run a TEK update",
            reason="no_usable_tek",
        )

    def tx_tek(self, uplink: bool, *, now: float | None = None) -> Tek:
        """The TEK the next MPDU in this direction will use (does not consume a PN)."""
        return self._tx_state(uplink, now).tek

    def next_pn(self, uplink: bool, *, now: float | None = None) -> tuple[Tek, int]:
        """Reserve the next PN to send in this direction: returns (TEK to use, PN).

        PNs start at 1 per TEK and direction and are never handed out twice.
        """
        state = self._tx_state(uplink, now)
        state.tx_last[uplink] += 1
        if _nonce_monitors:  # issue 17: report every PN sent (empty list: one check)
            _report_pns(state.tek, uplink, state.tx_last[uplink])
        return state.tek, state.tx_last[uplink]

    def next_pns(
        self, uplink: bool, n: int, *, now: float | None = None
    ) -> list[tuple[Tek, int, int]]:
        """Reserve the next ``n`` PNs in this direction at once, as ``n`` :meth:`next_pn` calls
        would hand them out: returns runs ``(TEK, first PN, count)`` in order (two runs when the
        block crosses from a used-up TEK to the next one).

        All or nothing: if fewer than ``n`` PNs are left on usable TEKs, raises
        :class:`KeyExhaustedError` (``no_usable_tek``) and reserves none.
        """
        n = require_uint(n, 32, "PN count")
        runs: list[tuple[_TekState, int, int]] = []
        need = n
        for state in self._live:
            if not need:
                break
            last = state.tx_last[uplink]
            if last >= self.pn_last or state.tek.expired(now):
                continue
            take = min(need, self.pn_last - last)
            runs.append((state, last + 1, take))
            need -= take
        if need:
            raise KeyExhaustedError(
                f"SAID {self.said}: {need} of {n} PNs to send {_dir(uplink)} are not available "
                "(PN space used up or lifetime over); run a TEK update",
                reason="no_usable_tek",
            )
        for state, first, take in runs:
            state.tx_last[uplink] = first + take - 1
        if _nonce_monitors:  # issue 17: report every PN block sent
            for state, first, take in runs:
                _report_pns(state.tek, uplink, first, take)
        return [(state.tek, first, take) for state, first, take in runs]

    def update_needed(self, now: float | None = None) -> bool:
        """True when the role should run a TEK update (PKMv3 TEK-Request) on this SA.

        That is: fewer than two usable TEKs, or the oldest usable one has reached the PN update
        threshold in either direction (sent or received) or half its lifetime. Cheap (a role
        asks after every MPDU it queues): no allocation, attribute reads only.
        """
        last = self.pn_last
        oldest: _TekState | None = None
        usable = 0
        for s in self._live:
            tx = s.tx_last
            if tx[True] >= last or tx[False] >= last or s.tek.expired(now):
                continue
            usable += 1
            if oldest is None:
                oldest = s
        if usable < MAX_LIVE_TEKS or oldest is None:
            return True
        thr = self.update_threshold
        tx, rx = oldest.tx_last, oldest.rx
        if (tx[True] >= thr or tx[False] >= thr or rx[True].highest >= thr
                or rx[False].highest >= thr):
            return True
        refresh = oldest.tek.refresh_at
        return refresh is not None and now is not None and now >= refresh

    # -- receive ----------------------------------------------------------------------------

    def _check_pn_range(self, pn: int) -> None:
        require_uint(pn, PN_BITS, "PN")

    def check_replay(self, eks: int, pn: int, uplink: bool, *, now: float | None = None) -> Tek:
        """Look up the TEK for ``eks`` and check ``pn`` against its window; changes nothing.

        Use before decrypting to drop replays early; :meth:`check_and_record` after the ICV passed.
        """
        self._check_pn_range(pn)
        state = self._state_for_eks(eks, now)
        state.rx[uplink].check(pn)
        return state.tek

    def check_and_record(self, eks: int, pn: int, uplink: bool, *, now: float | None = None) -> Tek:
        """Accept ``pn`` under the TEK of ``eks`` in this direction (after the ICV verified).

        Raises :class:`UnknownKeyError` (``unknown_eks``), :class:`KeyExhaustedError`
        (``tek_expired``) or :class:`ReplayError` (``pn_replay`` / ``pn_window``).
        """
        self._check_pn_range(pn)
        state = self._state_for_eks(eks, now)
        state.rx[uplink].record(pn)
        return state.tek

    def check_replay_many(
        self, eks: int, pns: np.ndarray, uplink: bool, *, now: float | None = None
    ) -> tuple[Tek, np.ndarray]:
        """:meth:`check_replay` for many PNs under one EKS: the TEK, and one code per PN (0 =
        accept, else an index into :data:`REPLAY_REASONS`). Changes nothing; a missing or
        expired TEK raises as in :meth:`check_replay` (it concerns every PN alike)."""
        state = self._state_for_eks(eks, now)
        return state.tek, state.rx[uplink].check_many(pns)

    def record_many(
        self, eks: int, pns: np.ndarray, uplink: bool, *, now: float | None = None
    ) -> np.ndarray:
        """:meth:`check_and_record` for many PNs under one EKS, in order (after their ICVs
        verified); returns one code per PN as :meth:`check_replay_many`. A PN that fails is not
        recorded."""
        state = self._state_for_eks(eks, now)
        return state.rx[uplink].record_many(pns)

    def __repr__(self) -> str:
        live = ", ".join(
            f"c{s.tek.counter_tek}/eks{s.tek.eks} tx UL {s.tx_last[True]} DL {s.tx_last[False]}"
            for s in self._live
        )
        return f"SecurityAssociation(said={self.said}, akid={self.akid.hex()}, teks=[{live}])"

    __str__ = __repr__
