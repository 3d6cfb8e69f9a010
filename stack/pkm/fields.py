"""Field vocabulary for the PKMv3 / relay control-message codec.

A message is a frozen, keyword-only dataclass whose fields are declared with the helpers below
(``u8()``, ``u16()``, ``stid()``, ``fixed(6)``, ``var_bytes()``, ``list_of(Record)``,
``when(pred, ...)``). Each helper returns a :func:`dataclasses.field` whose metadata holds a
:class:`Codec`; the class body *is* the field table (the scapy ``fields_desc`` habit), and both
:meth:`Record.encode` and :meth:`Record.decode_from` walk that one table, in declaration order.

Wire rules (spec digest §5.2 [D]): fixed-width big-endian fields, no padding, no TLVs; a
length-prefixed field carries its length big-endian in 1 or 2 bytes; a list carries its element
count in 1 byte. Values are checked when a record is *constructed* (so a record that exists is
encodable) and again on decode; every failure raises :class:`stack.errors.MalformedError` naming the
record and the field. Error messages give lengths and integer values, never byte contents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from stack.errors import MalformedError

__all__ = [
    "Codec",
    "Embedded",
    "FixedBytes",
    "ListOf",
    "Record",
    "Stid",
    "UInt",
    "VarBytes",
    "When",
    "fixed",
    "list_of",
    "stid",
    "sub",
    "u8",
    "u16",
    "u24",
    "u32",
    "u48",
    "var_bytes",
    "when",
]

_META = "pkm_codec"
R = TypeVar("R", bound="Record")


def _err(owner: str, name: str, what: str) -> MalformedError:
    return MalformedError(f"{owner}.{name}: {what}", reason="malformed")


class Codec:
    """One field's wire format. Subclasses implement check/encode/decode."""

    def check(self, owner: str, name: str, value: Any) -> None:
        raise NotImplementedError

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, owner: str, name: str, buf: memoryview, off: int) -> tuple[Any, int]:
        raise NotImplementedError

    def describe(self) -> str:
        """Short human description for docs/tables, e.g. ``uint16`` or ``bytes[6]``."""
        raise NotImplementedError

    @staticmethod
    def _take(owner: str, name: str, buf: memoryview, off: int, n: int) -> bytes:
        if off + n > len(buf):
            raise _err(owner, name, f"truncated: need {n} bytes at offset {off}, "
                                    f"only {max(0, len(buf) - off)} left")
        return bytes(buf[off : off + n])


class UInt(Codec):
    """Unsigned big-endian integer of ``nbytes`` bytes, optionally limited to ``max_value`` or to a
    set of ``choices`` (e.g. status codes); anything else is an out-of-range value."""

    def __init__(
        self,
        nbytes: int,
        *,
        max_value: int | None = None,
        choices: Mapping[int, str] | None = None,
    ) -> None:
        self.nbytes = nbytes
        self.max_value = (1 << (8 * nbytes)) - 1 if max_value is None else max_value
        self.choices = dict(choices) if choices is not None else None

    def check(self, owner: str, name: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _err(owner, name, f"expected int, got {type(value).__name__}")
        if not 0 <= value <= self.max_value:
            raise _err(owner, name, f"value {value} outside 0..{self.max_value}")
        if self.choices is not None and value not in self.choices:
            raise _err(owner, name, f"value {value} not one of {sorted(self.choices)}")

    def encode(self, value: int) -> bytes:
        return value.to_bytes(self.nbytes, "big")

    def decode(self, owner: str, name: str, buf: memoryview, off: int) -> tuple[int, int]:
        raw = self._take(owner, name, buf, off, self.nbytes)
        value = int.from_bytes(raw, "big")
        self.check(owner, name, value)
        return value, off + self.nbytes

    def describe(self) -> str:
        s = f"uint{8 * self.nbytes}"
        if self.choices is not None:
            s += " {" + ", ".join(f"{k}={v}" for k, v in sorted(self.choices.items())) + "}"
        elif self.max_value != (1 << (8 * self.nbytes)) - 1:
            s += f" (0..{self.max_value})"
        return s


class Stid(Codec):
    """12-bit station id in the top bits of 2 bytes, low 4 bits zero (``STID << 4``)."""

    def check(self, owner: str, name: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _err(owner, name, f"expected int STID, got {type(value).__name__}")
        if not 0 <= value <= 0xFFF:
            raise _err(owner, name, f"STID {value} outside 0..4095")

    def encode(self, value: int) -> bytes:
        return (value << 4).to_bytes(2, "big")

    def decode(self, owner: str, name: str, buf: memoryview, off: int) -> tuple[int, int]:
        raw = int.from_bytes(self._take(owner, name, buf, off, 2), "big")
        if raw & 0xF:
            raise _err(owner, name, f"reserved low 4 bits of the STID field are {raw & 0xF:#x}, "
                                    "must be 0")
        return raw >> 4, off + 2

    def describe(self) -> str:
        return "uint16 = STID(12 bits) << 4"


def _check_bytes(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bytes):
        raise _err(owner, name, f"expected bytes, got {type(value).__name__}")


class FixedBytes(Codec):
    """Exactly ``n`` opaque bytes."""

    def __init__(self, n: int) -> None:
        self.n = n

    def check(self, owner: str, name: str, value: Any) -> None:
        _check_bytes(owner, name, value)
        if len(value) != self.n:
            raise _err(owner, name, f"need exactly {self.n} bytes, got {len(value)}")

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, owner: str, name: str, buf: memoryview, off: int) -> tuple[bytes, int]:
        return self._take(owner, name, buf, off, self.n), off + self.n

    def describe(self) -> str:
        return f"bytes[{self.n}]"


class VarBytes(Codec):
    """Length-prefixed bytes: a ``len_bytes``-byte big-endian length, then that many bytes."""

    def __init__(self, len_bytes: int = 2, *, min_len: int = 0, max_len: int | None = None):
        self.len_bytes = len_bytes
        self.min_len = min_len
        cap = (1 << (8 * len_bytes)) - 1
        self.max_len = cap if max_len is None else min(max_len, cap)

    def check(self, owner: str, name: str, value: Any) -> None:
        _check_bytes(owner, name, value)
        if not self.min_len <= len(value) <= self.max_len:
            raise _err(owner, name, f"length {len(value)} outside {self.min_len}..{self.max_len}")

    def encode(self, value: bytes) -> bytes:
        return len(value).to_bytes(self.len_bytes, "big") + value

    def decode(self, owner: str, name: str, buf: memoryview, off: int) -> tuple[bytes, int]:
        n = int.from_bytes(self._take(owner, name, buf, off, self.len_bytes), "big")
        off += self.len_bytes
        if not self.min_len <= n <= self.max_len:
            raise _err(owner, name, f"length field {n} outside {self.min_len}..{self.max_len}")
        if off + n > len(buf):
            raise _err(owner, name, f"length field says {n} bytes, only {len(buf) - off} left")
        return bytes(buf[off : off + n]), off + n

    def describe(self) -> str:
        return f"len(uint{8 * self.len_bytes}) + bytes"


class ListOf(Codec):
    """A 1-byte element count, then that many sub-records of type ``record``."""

    def __init__(self, record: type[Record], *, max_count: int = 255) -> None:
        self.record = record
        self.max_count = max_count

    def check(self, owner: str, name: str, value: Any) -> None:
        if not isinstance(value, tuple):
            raise _err(owner, name, f"expected a tuple of {self.record.__name__}, "
                                    f"got {type(value).__name__}")
        if len(value) > self.max_count:
            raise _err(owner, name, f"{len(value)} elements, at most {self.max_count}")
        for i, item in enumerate(value):
            if not isinstance(item, self.record):
                raise _err(owner, f"{name}[{i}]", f"expected {self.record.__name__}, "
                                                  f"got {type(item).__name__}")

    def encode(self, value: tuple[Record, ...]) -> bytes:
        return bytes([len(value)]) + b"".join(item.encode_body() for item in value)

    def decode(self, owner: str, name: str, buf: memoryview, off: int) -> tuple[tuple, int]:
        n = self._take(owner, name, buf, off, 1)[0]
        off += 1
        if n > self.max_count:
            raise _err(owner, name, f"count {n} exceeds {self.max_count}")
        items = []
        for i in range(n):
            item, off = self.record.decode_from(buf, off, context=f"{owner}.{name}[{i}]")
            items.append(item)
        return tuple(items), off

    def describe(self) -> str:
        return f"count(uint8) + n × {self.record.__name__}"


class Embedded(Codec):
    """One sub-record of fixed type, inline (no length or count)."""

    def __init__(self, record: type[Record]) -> None:
        self.record = record

    def check(self, owner: str, name: str, value: Any) -> None:
        if not isinstance(value, self.record):
            raise _err(owner, name, f"expected {self.record.__name__}, got {type(value).__name__}")

    def encode(self, value: Record) -> bytes:
        return value.encode_body()

    def decode(self, owner: str, name: str, buf: memoryview, off: int) -> tuple[Record, int]:
        return self.record.decode_from(buf, off, context=f"{owner}.{name}")

    def describe(self) -> str:
        return self.record.__name__


class When(Codec):
    """A field present only when ``predicate(values_so_far)`` holds; absent means ``None``.

    The predicate sees a dict of the fields decoded (or declared) before this one, so presence is
    decided by earlier fields only — the decoder never guesses."""

    def __init__(self, predicate: Callable[[Mapping[str, Any]], bool], inner: Codec, doc: str):
        self.predicate = predicate
        self.inner = inner
        self.doc = doc

    def check(self, owner: str, name: str, value: Any) -> None:  # pragma: no cover - see Record
        if value is not None:
            self.inner.check(owner, name, value)

    def encode(self, value: Any) -> bytes:
        return b"" if value is None else self.inner.encode(value)

    def decode(self, owner: str, name: str, buf: memoryview, off: int) -> tuple[Any, int]:
        return self.inner.decode(owner, name, buf, off)

    def describe(self) -> str:
        return f"{self.inner.describe()} (only if {self.doc})"


# ---- declaration helpers ---------------------------------------------------------------------


def _field(codec: Codec, doc: str, default: Any = dataclasses.MISSING) -> Any:
    return dataclasses.field(default=default, metadata={_META: codec, "doc": doc})


def u8(doc: str = "", **kw: Any) -> Any:
    """1-byte unsigned field (``max_value=`` / ``choices=`` restrict it)."""
    return _field(UInt(1, **kw), doc)


def u16(doc: str = "", **kw: Any) -> Any:
    """2-byte big-endian unsigned field."""
    return _field(UInt(2, **kw), doc)


def u24(doc: str = "", **kw: Any) -> Any:
    """3-byte big-endian unsigned field."""
    return _field(UInt(3, **kw), doc)


def u32(doc: str = "", **kw: Any) -> Any:
    """4-byte big-endian unsigned field."""
    return _field(UInt(4, **kw), doc)


def u48(doc: str = "", **kw: Any) -> Any:
    """6-byte big-endian unsigned field."""
    return _field(UInt(6, **kw), doc)


def stid(doc: str = "") -> Any:
    """12-bit STID followed by 4 zero bits (2 bytes)."""
    return _field(Stid(), doc)


def fixed(n: int, doc: str = "") -> Any:
    """Exactly ``n`` bytes."""
    return _field(FixedBytes(n), doc)


def var_bytes(doc: str = "", *, len_bytes: int = 2, min_len: int = 0,
              max_len: int | None = None) -> Any:
    """Length-prefixed bytes (``len_bytes``-byte big-endian length)."""
    return _field(VarBytes(len_bytes, min_len=min_len, max_len=max_len), doc)


def list_of(record: type[Record], doc: str = "", *, max_count: int = 255) -> Any:
    """A counted list (1-byte count) of ``record`` sub-records; the value is a tuple."""
    return _field(ListOf(record, max_count=max_count), doc)


def sub(record: type[Record], doc: str = "") -> Any:
    """One inline sub-record of type ``record``."""
    return _field(Embedded(record), doc)


def when(predicate: Callable[[Mapping[str, Any]], bool], inner: Any, cond_doc: str) -> Any:
    """Make the field declared by ``inner`` (e.g. ``fixed(6)``) conditional; default ``None``."""
    codec = inner.metadata[_META]
    return _field(When(predicate, codec, cond_doc), inner.metadata["doc"], default=None)


# ---- records ---------------------------------------------------------------------------------


class Record:
    """Base of every wire record (sub-records and messages).

    Subclasses are ``@dataclass(frozen=True, kw_only=True)`` classes whose fields come from the
    helpers above. Construction validates every field, so ``encode()`` cannot fail on a record
    that exists, and a decoded record went through the same checks."""

    _table: ClassVar[tuple[tuple[str, Codec], ...]] = ()

    @classmethod
    def table(cls) -> tuple[tuple[str, Codec], ...]:
        """The field table: ``(name, codec)`` pairs in wire order."""
        if "_table" not in cls.__dict__:
            rows = []
            for f in dataclasses.fields(cls):  # type: ignore[arg-type]
                codec = f.metadata.get(_META)
                if codec is None:
                    raise TypeError(f"{cls.__name__}.{f.name} has no wire codec")
                rows.append((f.name, codec))
            cls._table = tuple(rows)
        return cls._table

    @classmethod
    def field_docs(cls) -> list[tuple[str, str, str]]:
        """``(name, format, description)`` per field, for generated documentation."""
        docs = {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return [(n, c.describe(), docs[n]) for n, c in cls.table()]

    def __post_init__(self) -> None:
        owner = type(self).__name__
        seen: dict[str, Any] = {}
        for name, codec in self.table():
            value = getattr(self, name)
            if isinstance(codec, When):
                present = bool(codec.predicate(seen))
                if present and value is None:
                    raise _err(owner, name, f"required when {codec.doc}")
                if not present and value is not None:
                    raise _err(owner, name, f"must be None unless {codec.doc}")
                if value is not None:
                    codec.inner.check(owner, name, value)
            else:
                codec.check(owner, name, value)
            seen[name] = value
        self._validate()

    def _validate(self) -> None:
        """Cross-field rules; override and raise MalformedError (via :meth:`_bad`)."""

    def _bad(self, name: str, what: str) -> MalformedError:
        return _err(type(self).__name__, name, what)

    def encode_body(self) -> bytes:
        """The record's fields on the wire (no message code)."""
        return b"".join(codec.encode(getattr(self, name)) for name, codec in self.table())

    @classmethod
    def decode_from(cls: type[R], buf: memoryview, off: int, *,
                    context: str | None = None) -> tuple[R, int]:
        """Decode one record starting at ``off``; return it and the offset after it."""
        owner = context or cls.__name__
        values: dict[str, Any] = {}
        for name, codec in cls.table():
            if isinstance(codec, When) and not codec.predicate(values):
                values[name] = None
                continue
            values[name], off = codec.decode(owner, name, buf, off)
        try:
            return cls(**values), off
        except MalformedError as exc:
            if context is None:
                raise
            raise MalformedError(f"{context}: {exc}", reason=exc.reason) from None

    def __repr__(self) -> str:
        parts = []
        for name, _codec in self.table():
            v = getattr(self, name)
            if isinstance(v, bytes):
                # Short identifiers (AKID, nonces, station ids) are shown; anything longer (wrapped
                # keys, EAP payloads) only by size, so a repr never carries key material.
                parts.append(f"{name}={v.hex()}" if len(v) <= 8 else f"{name}=<{len(v)} B>")
            else:
                parts.append(f"{name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"
