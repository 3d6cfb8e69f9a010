"""The security message sequence chart, built from role events (nothing is decrypted to draw it).

Every control message a role queues is reported as a :class:`stack.roles.ControlSent` event
(title, peer, whether it travels sealed inside a relay MPDU, whether it is relayed on); the other
role events (keys installed, handover complete, ...) are drawn as notes on their station. The
runtime stamps events with the time it collected them and the station that produced them.

:func:`describe_frame` names the MPDUs of a frame from their MAC headers only; the node uses it
to send clear control frames ahead of data in a zone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relaysec.report import MscEntry

#: Role events left out of the chart (data, and ``Attached``, which repeats the
#: ``KeysInstalled`` of the same instant). ``ControlSent`` becomes an arrow, not a note.
UNCHARTED_EVENTS = ("DataReceived", "Attached", "ControlSent")


def short_title(title: str) -> str:
    """A message title shortened for the sequence chart."""
    for junk in ("PKMv3 ", " (project-private)", " (project encoding)"):
        title = title.replace(junk, "")
    return title


def control_label(title: str, *, sealed: bool, relayed: bool) -> str:
    """Chart label of a control message: its short title, then how it travels."""
    label = short_title(title)
    if sealed and relayed:
        return f"{label} (relayed in relay MPDU)"
    if sealed:
        return f"{label} (in relay MPDU)"
    if relayed:
        return f"{label} (relayed)"
    return label


def event_note(ev: Any, name_of: Callable[[int], str]) -> str:
    """Identifiers of an event for the chart (never key values: events carry none)."""
    parts = []
    for key, name in (("cause", ""), ("akid", "AKID "), ("cmac_key_count", "CMAC_KEY_COUNT "),
                      ("counter_teks", "COUNTER_TEK "), ("status", "status "),
                      ("reason", ""), ("procedure", "")):
        val = getattr(ev, key, None)
        if val is None:
            continue
        if isinstance(val, tuple):
            val = "/".join(str(v) for v in val)
        parts.append(f"{name}{val}")
    if type(ev).__name__ == "Rejected" and getattr(ev, "link", None) is not None:
        parts.append(f"from {name_of(ev.link)}")
    return ", ".join(parts)


def chart_entry(t: float, station: str, ev: Any, name_of: Callable[[int], str]) -> MscEntry | None:
    """The chart entry of one role event of *station* at *t* (None: not charted)."""
    kind = type(ev).__name__
    if kind == "ControlSent":
        return MscEntry(t, station, name_of(ev.peer),
                        control_label(ev.title, sealed=ev.sealed, relayed=ev.relayed))
    if kind in UNCHARTED_EVENTS:
        return None
    return MscEntry(t, station, station, kind, event_note(ev, name_of))


def describe_frame(frame: bytes) -> list[tuple[str, str]]:
    """``(kind, title)`` of each MPDU of a frame: ``("control", title)`` for a control message
    sent in the clear (its type byte, which every receiver sees), ``("relay", "")`` for a relay
    MPDU (encrypted on the relay link: not opened), ``("data", "")`` for a data MPDU. Only the
    MAC headers are parsed; an unparseable frame is one ``("control", "(unparseable frame)")``."""
    from stack.pkm.messages import message_class
    from stack.roles.framing import FID_CONTROL, FID_RELAY, mpdu_fid, split_frame

    out: list[tuple[str, str]] = []
    try:
        mpdus = split_frame(frame)
    except Exception:
        return [("control", "(unparseable frame)")]
    for mpdu in mpdus:
        fid = mpdu_fid(mpdu)
        if fid == FID_CONTROL and len(mpdu) > 2:
            try:
                out.append(("control", message_class(mpdu[2]).TITLE))
            except Exception:
                out.append(("control", f"control code {mpdu[2]:#04x}"))
        elif fid == FID_RELAY:
            out.append(("relay", ""))
        else:
            out.append(("data", ""))
    return out


def clear_control_only(frame: bytes) -> bool:
    """Whether *frame* carries only control messages in the clear (PKMv3, ranging: no PN, so
    sending them ahead of data cannot trip a replay window)."""
    kinds = describe_frame(frame)
    return bool(kinds) and all(kind == "control" for kind, _ in kinds)
