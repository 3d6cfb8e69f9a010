"""A generic IIO context: devices, channels, attributes and their values, and its XML.

libiio clients learn the device model from the context XML (``PRINT``) and then read and write
attribute *values* one by one; the XML carries no values. This module holds that model, stores the
values and writes the XML that libiio 0.24/0.25 validates against its own DTD.
:class:`ContextBuilder` assembles a model in code (the Pluto's is :mod:`hw.emu.pluto_model`).

Attributes that name the same sysfs ``filename`` within a device share one stored value, as on a
real board: an attribute the driver declares *shared by type* (``in_voltage_rf_bandwidth``) is
seen through every input ``voltage`` channel of the device. The builder derives the filenames from
the kernel's IIO naming rules (``{in|out}_{type}{index}[_{extend}]_{attr}`` for a channel's own
attribute, ``{in|out}_{type}_{attr}`` when shared by type). Device-specific behaviour (range
checks, side effects) lives in a subclass; see :mod:`hw.emu.ad9361`.
"""

from __future__ import annotations

import copy
import errno
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar
from xml.sax.saxutils import quoteattr

from hw.emu.errors import IioError, enoent

#: libiio 0.24's XML header and DTD, byte for byte as the client library itself writes it
#: (``context.c``); the client parses the served XML with DTD validation against exactly this.
LIBIIO_XML_HEADER = (
    '<?xml version="1.0" encoding="utf-8"?>'
    "<!DOCTYPE context ["
    "<!ELEMENT context (device | context-attribute)*>"
    "<!ELEMENT context-attribute EMPTY>"
    "<!ELEMENT device (channel | attribute | debug-attribute | buffer-attribute)*>"
    "<!ELEMENT channel (scan-element?, attribute*)>"
    "<!ELEMENT attribute EMPTY>"
    "<!ELEMENT scan-element EMPTY>"
    "<!ELEMENT debug-attribute EMPTY>"
    "<!ELEMENT buffer-attribute EMPTY>"
    "<!ATTLIST context name CDATA #REQUIRED version-major CDATA #REQUIRED "
    "version-minor CDATA #REQUIRED version-git CDATA #REQUIRED description CDATA #IMPLIED>"
    "<!ATTLIST context-attribute name CDATA #REQUIRED value CDATA #REQUIRED>"
    "<!ATTLIST device id CDATA #REQUIRED name CDATA #IMPLIED label CDATA #IMPLIED>"
    "<!ATTLIST channel id CDATA #REQUIRED type (input|output) #REQUIRED name CDATA #IMPLIED>"
    "<!ATTLIST scan-element index CDATA #REQUIRED format CDATA #REQUIRED scale CDATA #IMPLIED>"
    "<!ATTLIST attribute name CDATA #REQUIRED filename CDATA #IMPLIED>"
    "<!ATTLIST debug-attribute name CDATA #REQUIRED>"
    "<!ATTLIST buffer-attribute name CDATA #REQUIRED>"
    "]>"
)

#: Version the emulated iiod reports (``version-git`` must be at least 7 characters).
VERSION_MAJOR = 0
VERSION_MINOR = 25
VERSION_GIT = "relaysec"

KIND_ATTR = "attr"
KIND_DEBUG = "debug"
KIND_BUFFER = "buffer"


@dataclass(frozen=True)
class Attribute:
    """One attribute: its name, optional sysfs filename and the key of its stored value."""

    name: str
    key: tuple[str, ...]
    filename: str | None = None


@dataclass
class Channel:
    """A channel; ``output`` selects the direction (``voltage0`` exists both ways on the phy)."""

    id: str
    output: bool
    name: str | None = None
    scan_index: int | None = None
    format: str | None = None
    scale: str | None = None
    attrs: dict[str, Attribute] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        """``"output"`` or ``"input"``, as in the XML."""
        return "output" if self.output else "input"


@dataclass
class Device:
    """A device with its channels and its device, debug and buffer attributes."""

    id: str
    name: str | None = None
    label: str | None = None
    channels: list[Channel] = field(default_factory=list)
    attrs: dict[str, Attribute] = field(default_factory=dict)
    debug_attrs: dict[str, Attribute] = field(default_factory=dict)
    buffer_attrs: dict[str, Attribute] = field(default_factory=dict)

    def channel(self, chan_id: str, output: bool) -> Channel:
        """The channel ``chan_id`` in the given direction; ``IioError(ENOENT)`` if absent."""
        for ch in self.channels:
            if ch.id == chan_id and ch.output == output:
                return ch
        raise enoent(f"{self.id}: no {'output' if output else 'input'} channel {chan_id!r}")

    def scan_channels(self) -> list[Channel]:
        """Channels in libiio's numbering: scan elements sorted by index first, then the rest.

        Bit ``N`` of a buffer mask is the ``N``-th channel of this list (libiio
        ``reorder_channels``).
        """
        scan = sorted((c for c in self.channels if c.scan_index is not None),
                      key=lambda c: c.scan_index or 0)
        return scan + [c for c in self.channels if c.scan_index is None]

    @property
    def buffer_capable(self) -> bool:
        """True when the device has scan elements (it can stream)."""
        return any(c.scan_index is not None for c in self.channels)


def _key(dev: Device, filename: str | None, *parts: str) -> tuple[str, ...]:
    return (dev.id, "file", filename) if filename else (dev.id, *parts)


#: How a channel attribute is shared (the kernel's ``info_mask_*`` / ``ext_info`` ``shared``):
#: ``SEPARATE`` belongs to one channel, ``BY_TYPE`` to every channel of the same type and
#: direction, ``BY_DIR`` to every channel of the direction, ``BY_ALL`` to the whole device.
SEPARATE = "separate"
BY_TYPE = "type"
BY_DIR = "dir"
BY_ALL = "all"
_SHARING = (SEPARATE, BY_TYPE, BY_DIR, BY_ALL)
_CHANNEL_ID = re.compile(r"^([a-z]+?)(\d+)$")


@dataclass(frozen=True)
class Attr:
    """A channel attribute to build: name, initial value, sharing, optional explicit filename."""

    name: str
    value: str
    share: str = SEPARATE
    filename: str | None = None


def sysfs_filename(chan_id: str, output: bool, extend: str | None, attr: str,
                   share: str) -> str:
    """The sysfs file a driver would create for ``attr`` of channel ``chan_id``.

    ``sysfs_filename("altvoltage0", True, "RX_LO", "frequency", SEPARATE)`` is
    ``out_altvoltage0_RX_LO_frequency``; shared by type it would be ``out_altvoltage_frequency``.
    """
    if share not in _SHARING:
        raise ValueError(f"unknown sharing {share!r}")
    direction = "out" if output else "in"
    if share == BY_ALL:
        return attr
    if share == BY_DIR:
        return f"{direction}_{attr}"
    m = _CHANNEL_ID.match(chan_id)
    if m is None:
        raise ValueError(f"channel id {chan_id!r} is not <type><index>; give a filename")
    if share == BY_TYPE:
        return f"{direction}_{m.group(1)}_{attr}"
    return f"{direction}_{chan_id}{'_' + extend if extend else ''}_{attr}"


class IioContext:
    """An IIO context: devices and the stored attribute values, safe to share between threads.

    ``read_attr``/``write_attr`` are the operations the protocol server calls; subclasses
    override :meth:`check_write` (validation and side effects, raising :class:`IioError`) and
    :meth:`render` (values computed on read).
    """

    def __init__(self, name: str, description: str,
                 context_attrs: list[tuple[str, str]], devices: list[Device],
                 values: dict[tuple[str, ...], str]) -> None:
        self.name = name
        self.description = description
        self.context_attrs = list(context_attrs)
        self.devices = list(devices)
        self.values = dict(values)
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ lookup
    def device(self, ident: str) -> Device:
        """A device by id (``iio:device3``, what libiio sends) or by name."""
        for dev in self.devices:
            if dev.id == ident:
                return dev
        for dev in self.devices:
            if dev.name == ident or (dev.label and dev.label == ident):
                return dev
        raise IioError(errno.ENODEV, f"no device {ident!r}")

    def find(self, dev: Device, kind: str, attr: str, chan: Channel | None = None) -> Attribute:
        """The attribute ``attr`` of a device (``kind``) or of a channel; ENOENT if absent."""
        if chan is not None:
            table = chan.attrs
        else:
            table = {KIND_ATTR: dev.attrs, KIND_DEBUG: dev.debug_attrs,
                     KIND_BUFFER: dev.buffer_attrs}[kind]
        try:
            return table[attr]
        except KeyError:
            where = f"{dev.id} {chan.direction} {chan.id}" if chan else f"{dev.id} {kind}"
            raise enoent(f"{where}: no attribute {attr!r}") from None

    # ------------------------------------------------------------------ values
    def get(self, dev_name: str, attr: str, *, chan: str | None = None, output: bool = False,
            kind: str = KIND_ATTR) -> str:
        """Stored value by device *name*/id (for model code and tests; no rendering)."""
        dev = self.device(dev_name)
        ch = dev.channel(chan, output) if chan is not None else None
        return self.values[self.find(dev, kind, attr, ch).key]

    def set(self, dev_name: str, attr: str, value: str, *, chan: str | None = None,
            output: bool = False, kind: str = KIND_ATTR) -> None:
        """Store a value without checks (model code uses this for side effects)."""
        dev = self.device(dev_name)
        ch = dev.channel(chan, output) if chan is not None else None
        self.values[self.find(dev, kind, attr, ch).key] = value

    def read_attr(self, dev: Device, kind: str, attr: str, chan: Channel | None = None) -> str:
        """The value a client reads; ``IioError`` for unknown or unreadable attributes."""
        a = self.find(dev, kind, attr, chan)
        with self.lock:
            return self.render(dev, kind, a, chan, self.values.get(a.key, ""))

    def write_attr(self, dev: Device, kind: str, attr: str, value: str,
                   chan: Channel | None = None) -> None:
        """Validate and store a client's write (side effects included), atomically."""
        a = self.find(dev, kind, attr, chan)
        with self.lock:
            stored = self.check_write(dev, kind, a, chan, value)
            if stored is not None:
                self.values[a.key] = stored

    # Hooks for device models -------------------------------------------------
    def check_write(self, dev: Device, kind: str, attr: Attribute, chan: Channel | None,
                    value: str) -> str | None:
        """Validate a write; return the value to store (None: already stored). Default: as is."""
        return value

    def render(self, dev: Device, kind: str, attr: Attribute, chan: Channel | None,
               stored: str) -> str:
        """The value to report on read; default: the stored string."""
        return stored

    # ------------------------------------------------------------------ XML
    def to_xml(self) -> bytes:
        """The context XML as served by ``PRINT``: libiio's DTD, version attributes, no values."""
        out = [LIBIIO_XML_HEADER,
               f"<context name={quoteattr(self.name)} version-major=\"{VERSION_MAJOR}\" "
               f"version-minor=\"{VERSION_MINOR}\" version-git={quoteattr(VERSION_GIT)} "
               f"description={quoteattr(self.description)} >"]
        for name, value in self.context_attrs:
            out.append(f"<context-attribute name={quoteattr(name)} value={quoteattr(value)} />")
        for dev in self.devices:
            head = f"<device id={quoteattr(dev.id)}"
            if dev.name:
                head += f" name={quoteattr(dev.name)}"
            if dev.label:
                head += f" label={quoteattr(dev.label)}"
            out.append(head + " >")
            for ch in dev.channels:
                head = f"<channel id={quoteattr(ch.id)}"
                if ch.name:
                    head += f" name={quoteattr(ch.name)}"
                out.append(head + f" type=\"{ch.direction}\" >")
                if ch.scan_index is not None:
                    se = (f"<scan-element index=\"{ch.scan_index}\" "
                          f"format={quoteattr(ch.format or '')}")
                    if ch.scale:
                        se += f" scale={quoteattr(ch.scale)}"
                    out.append(se + " />")
                for a in ch.attrs.values():
                    el = f"<attribute name={quoteattr(a.name)}"
                    if a.filename:
                        el += f" filename={quoteattr(a.filename)}"
                    out.append(el + " />")
                out.append("</channel>")
            out.extend(f"<attribute name={quoteattr(n)} />" for n in dev.attrs)
            out.extend(f"<debug-attribute name={quoteattr(n)} />" for n in dev.debug_attrs)
            out.extend(f"<buffer-attribute name={quoteattr(n)} />" for n in dev.buffer_attrs)
            out.append("</device>")
        out.append("</context>")
        return "".join(out).encode()


C = TypeVar("C", bound=IioContext)


class DeviceBuilder:
    """Adds channels and attributes, with their initial values, to one device of a model."""

    def __init__(self, dev: Device, values: dict[tuple[str, ...], str]) -> None:
        self.dev = dev
        self._values = values

    def _store(self, key: tuple[str, ...], value: str, what: str) -> None:
        old = self._values.setdefault(key, value)
        if old != value:
            raise ValueError(f"{self.dev.id}: {what} shares a file whose value is {old!r}, "
                             f"not {value!r}")

    def channel(self, chan_id: str, *, output: bool, attrs: Iterable[Attr],
                name: str | None = None, scan: tuple[int, str] | None = None,
                scale: str | None = None) -> DeviceBuilder:
        """Add a channel; ``name`` is the driver's ``extend_name`` (``RX_LO``), ``scan`` the
        scan element ``(index, format)``. Returns ``self`` for chaining."""
        ch = Channel(id=chan_id, output=output, name=name)
        if scan is not None:
            ch.scan_index, ch.format = scan
            ch.scale = scale
        for a in attrs:
            if a.name in ch.attrs:
                raise ValueError(f"{self.dev.id} {chan_id}: attribute {a.name!r} twice")
            fname = a.filename or sysfs_filename(chan_id, output, name, a.name, a.share)
            key = _key(self.dev, fname)
            ch.attrs[a.name] = Attribute(a.name, key, fname)
            self._store(key, a.value, f"{chan_id} {a.name}")
        try:
            self.dev.channel(chan_id, output)
        except IioError:
            self.dev.channels.append(ch)
            return self
        raise ValueError(f"{self.dev.id}: channel {chan_id} ({ch.direction}) twice")

    def _add(self, table: dict[str, Attribute], kind: str, items: dict[str, str]) -> None:
        for aname, value in items.items():
            key = (self.dev.id, kind, aname)
            table[aname] = Attribute(aname, key)
            self._store(key, value, f"{kind} {aname}")

    def attrs(self, **items: str) -> DeviceBuilder:
        """Add device attributes ``name=value``."""
        self._add(self.dev.attrs, KIND_ATTR, items)
        return self

    def debug_attrs(self, **items: str) -> DeviceBuilder:
        """Add debug attributes ``name=value``."""
        self._add(self.dev.debug_attrs, KIND_DEBUG, items)
        return self

    def buffer_attrs(self, **items: str) -> DeviceBuilder:
        """Add buffer attributes ``name=value``."""
        self._add(self.dev.buffer_attrs, KIND_BUFFER, items)
        return self


class ContextBuilder:
    """Assembles an :class:`IioContext` (devices, channels, attributes, initial values) in code."""

    def __init__(self, name: str, description: str) -> None:
        self.name = name
        self.description = description
        self.context_attrs: list[tuple[str, str]] = []
        self.devices: list[Device] = []
        self.values: dict[tuple[str, ...], str] = {}

    def context_attr(self, name: str, value: str) -> ContextBuilder:
        """Add a context attribute (``hw_model``, ``fw_version`` …)."""
        self.context_attrs.append((name, value))
        return self

    def device(self, dev_id: str, name: str, label: str | None = None) -> DeviceBuilder:
        """Add a device ``iio:deviceN`` called ``name``; returns its builder."""
        if any(d.id == dev_id for d in self.devices):
            raise ValueError(f"device {dev_id} twice")
        dev = Device(id=dev_id, name=name, label=label)
        self.devices.append(dev)
        return DeviceBuilder(dev, self.values)

    def build(self, cls: type[C], **kwargs: object) -> C:
        """A fresh context of class ``cls`` (independent copies of everything built so far)."""
        return cls(self.name, self.description, list(self.context_attrs),
                   copy.deepcopy(self.devices), dict(self.values), **kwargs)
