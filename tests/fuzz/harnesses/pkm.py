"""PKMv3 and relay control messages: :func:`stack.pkm.messages.decode` and each message class.

Input: byte 0 picks the mode. Mode 0: the rest goes to ``messages.decode`` as it is. Mode 1: byte 1
picks a message class (or a sub-record) and the rest is its body, so each field table gets its share
of the effort whatever code byte the fuzzer would have to guess.

Invariants (the codec is strict, so it is canonical): a decoded message re-encodes to exactly the
input; its own class's ``decode`` agrees and every other class's refuses it; ``expects_cmac`` on
the bytes agrees with ``requires_cmac`` on the message; repr never fails. Rejections are
:class:`stack.errors.SecurityError` (in practice ``MalformedError``) only.
"""

from __future__ import annotations

from stack.errors import SecurityError
from stack.pkm import messages as m
from tests.fuzz._core import Reader, Violation, check

ALLOWED = (SecurityError,)

_CLASSES: list[type[m.Message]] = []
_RECORDS = (m.SecurityNegotiationParameters, m.SaTekUpdate, m.SaContext)


def setup() -> None:
    """Freeze the class list (registry order) once."""
    _CLASSES[:] = [m.MESSAGES[c] for c in sorted(m.MESSAGES)]


def _check_message(data: bytes) -> None:
    try:
        cmac_expected = m.expects_cmac(data)
    except SecurityError:
        cmac_expected = None
    msg = m.decode(data)
    check(msg.encode() == data, "not_canonical", f"{type(msg).__name__} re-encodes differently")
    check(type(msg).decode(data) == msg, "class_decode_differs", type(msg).__name__)
    check(cmac_expected == m.requires_cmac(msg), "expects_cmac_disagrees", type(msg).__name__)
    check(m.message_class(data[0]) is type(msg), "wrong_class", type(msg).__name__)
    text = repr(msg)
    check(text.startswith(type(msg).__name__), "bad_repr", text[:40])
    for cls in _CLASSES:
        if cls is type(msg):
            continue
        try:
            cls.decode(data)
        except SecurityError:
            continue
        raise Violation("other_class_accepts", f"{cls.__name__} accepted a {type(msg).__name__}")


def _check_record(cls: type, body: bytes) -> None:
    rec, end = cls.decode_from(memoryview(body), 0)
    check(0 < end <= len(body), "bad_offset", f"{cls.__name__} end {end} of {len(body)}")
    check(rec.encode_body() == body[:end], "not_canonical", cls.__name__)
    repr(rec)


def one_input(data: bytes) -> None:
    """Decode ``data`` (see the module docstring for the layout)."""
    r = Reader(data)
    mode = r.u8() & 1
    if mode == 0:
        _check_message(r.rest())
        return
    k = r.below(len(_CLASSES) + len(_RECORDS))
    body = r.rest()
    if k < len(_CLASSES):
        cls = _CLASSES[k]
        wire = bytes([cls.CODE]) + body
        _check_message(wire)
        msg = cls.decode(wire)
        check(type(msg) is cls, "wrong_class", cls.__name__)
    else:
        _check_record(_RECORDS[k - len(_CLASSES)], body)
