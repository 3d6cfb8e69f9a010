"""ARQ (``stack.arq``): the PDU codec, and a sender/receiver pair fed a program of SDUs, lost,
duplicated, reordered and forged PDUs and timer ticks.

Invariants: ``decode_arq`` accepts exactly what re-encodes to the same bytes and rejects the rest
with :class:`stack.errors.MalformedError`; the receiver delivers every SDU at most once, in
order, and only SDUs the sender offered (PDUs are honest: in the stack they arrive inside the
CCM envelope, so forged ones never reach ARQ); once the program ends and the link turns clean, every
SDU offered is delivered (or was counted as discarded at its lifetime); the sender never holds
more than a window of blocks on the air.
"""

from __future__ import annotations

from collections import deque

from stack.arq import (
    ArqData,
    ArqDiscard,
    ArqFeedback,
    ArqParams,
    ArqReceiver,
    ArqSender,
    decode_arq,
)
from stack.errors import MalformedError, SecurityError
from tests.fuzz._core import Reader, check

ALLOWED = (SecurityError,)

MAX_OPS = 64
PARAMS = ArqParams(window=8, rto_initial=0.05, rto_min=0.01, rto_max=0.2, lifetime=5.0, purge=6.0)


def _codec(raw: bytes) -> None:
    try:
        pdu = decode_arq(raw)
    except MalformedError:
        return
    check(pdu.encode() == raw, "not_canonical", raw.hex())


def one_input(data: bytes) -> None:
    """Run the program in ``data``."""
    r = Reader(data)
    if r.flag():
        _codec(r.blob())
        return
    tx, rx = ArqSender(PARAMS), ArqReceiver(PARAMS)
    now = 0.0
    offered: list[bytes] = []
    got: list[bytes] = []
    fwd: deque[bytes] = deque()   # PDUs on the way sender -> receiver
    back: deque[bytes] = deque()  # feedback on the way back

    def to_rx(pdu: bytes) -> None:
        msg = decode_arq(pdu)
        if isinstance(msg, ArqData):
            got.extend(rx.on_data(msg, now))
        elif isinstance(msg, ArqDiscard):
            got.extend(rx.on_discard(msg, now))
        back.append(rx.feedback().encode())

    def to_tx(pdu: bytes) -> None:
        msg = decode_arq(pdu)
        if isinstance(msg, ArqFeedback):
            for out, block in tx.on_feedback(msg, now):
                if block is not None:
                    block.on_air(now)
                fwd.append(out)

    def send(outs: list) -> None:
        for out, block in outs:
            if block is not None:
                block.on_air(now)
            fwd.append(out)

    for _ in range(MAX_OPS):
        if not r.remaining:
            break
        op = r.below(8)
        if op == 0:
            sdu = bytes([len(offered) & 0xFF]) + len(offered).to_bytes(4, "big")
            offered.append(sdu)
            send(tx.offer(sdu, now))
        elif op == 1 and fwd:
            to_rx(fwd.popleft())
        elif op == 2 and fwd:
            fwd.popleft()                     # lost
        elif op == 3 and fwd:
            fwd.append(fwd[0])                # duplicated
            fwd.rotate(r.below(3))            # and reordered
        elif op == 4 and back:
            to_tx(back.popleft()) if r.flag() else back.popleft()
        elif op == 5:
            now += r.below(40) / 100.0
            send(tx.on_timer(now))
            got.extend(rx.on_timer(now))
        elif op == 6:
            _codec(r.blob())  # raw bytes: only the codec (ARQ PDUs arrive authenticated)
        elif back:
            back.rotate(1)    # feedback reordered (a path change): a stale one comes later
        check(tx.next_sn - tx.base <= PARAMS.window, "window_exceeded",
              f"{tx.next_sn - tx.base}")
    # clean link from here: everything offered arrives (or was discarded, and counted)
    for _ in range(2000):
        if not tx.unacked() and not fwd:
            break
        while fwd:
            to_rx(fwd.popleft())
        while back:
            to_tx(back.popleft())
        now += 0.05
        send(tx.on_timer(now))
        got.extend(rx.on_timer(now))
    check(len(got) == len(set(got)), "duplicate_delivered", "")
    check(set(got) <= set(offered), "foreign_sdu", "")
    pos = [offered.index(g) for g in got]
    check(pos == sorted(pos), "out_of_order", "")
    missing = len(offered) - len(got)
    check(missing <= tx.stats["discarded"] + rx.stats["skipped"], "sdu_lost",
          f"{missing} missing, {tx.stats['discarded']} discarded")
